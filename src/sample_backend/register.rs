//! Registers an echo instance with a gateway: one blocking HTTP/1.1 `PUT` over a std socket.
//!
//! Registration happens once, at start-up, before anything else needs the thread, so a plain
//! blocking client with bounded timeouts is simpler and easier to trust than an async one.
//! Only `http://host[:port]` base URLs are supported; the gateway's admin API is cleartext.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Bound on connecting and on each read or write: a gateway that does not answer in this time
/// is treated as down rather than hanging the start-up.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response head read: the status line and a few headers fit many times over.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Registers (or updates) `service`/`instance` at `address` with the gateway at
/// `gateway_base_url` (e.g. `http://127.0.0.1:8080`), sending `authorization: Bearer <token>`
/// when a token is given. Returns the HTTP status the gateway answered (201 created, 200
/// updated, 4xx/5xx refused); the caller decides what counts as success.
pub fn register(
    gateway_base_url: &str,
    service: &str,
    instance: &str,
    address: &str,
    token: Option<&str>,
) -> Result<u16, String> {
    let authority = parse_base_url(gateway_base_url)?;
    for (what, value) in [("service", service), ("instance", instance)] {
        if !is_path_segment(value) {
            return Err(format!(
                "{what} name {value:?} must be 1 to 128 of A-Z a-z 0-9 . _ -"
            ));
        }
    }
    if let Some(token) = token {
        if http::HeaderValue::from_str(token).is_err() {
            return Err("token contains characters not allowed in a header".to_owned());
        }
    }
    let request = build_request(authority, service, instance, address, token);
    let mut stream = connect(authority)?;
    stream
        .write_all(&request)
        .map_err(|e| format!("cannot send the registration to {authority}: {e}"))?;
    read_status(&mut stream).map_err(|e| format!("bad answer from {authority}: {e}"))
}

/// Returns the `host:port` of an `http://host:port` URL (a trailing `/` is allowed).
fn parse_base_url(url: &str) -> Result<&str, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("gateway URL {url:?} must start with http://"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(format!("gateway URL {url:?} must be http://host:port"));
    }
    Ok(authority)
}

/// Instance ids and service names as the contract allows them (`^[A-Za-z0-9._-]{1,128}$`;
/// service names are stricter and checked by the gateway). Anything else could break the
/// request line.
fn is_path_segment(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn build_request(
    authority: &str,
    service: &str,
    instance: &str,
    address: &str,
    token: Option<&str>,
) -> Vec<u8> {
    let body = serde_json::json!({ "address": address }).to_string();
    let mut request = format!(
        "PUT /-/services/{service}/instances/{instance} HTTP/1.1\r\n\
         host: {authority}\r\n\
         content-type: application/json\r\n\
         content-length: {}\r\n\
         connection: close\r\n",
        body.len()
    );
    if let Some(token) = token {
        request.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    request.into_bytes()
}

fn connect(authority: &str) -> Result<TcpStream, String> {
    // A URL without a port means port 80, as in any HTTP client.
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addrs = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?;
    let mut last_error = format!("{authority} resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(stream) => {
                let timeouts = stream
                    .set_read_timeout(Some(IO_TIMEOUT))
                    .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)));
                timeouts.map_err(|e| format!("cannot set socket timeouts: {e}"))?;
                return Ok(stream);
            }
            Err(e) => last_error = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last_error)
}

/// Reads the response head and returns its status code.
fn read_status(stream: &mut impl Read) -> Result<u16, String> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                return response.code.ok_or_else(|| "no status code".to_owned());
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(e.to_string()),
        }
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err("response head too large".to_owned());
        }
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the response head ended".to_owned());
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    #[test]
    fn base_urls_must_be_http_host_port() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:8080"),
            Ok("127.0.0.1:8080")
        );
        assert_eq!(parse_base_url("http://gw:80/"), Ok("gw:80"));
        assert!(parse_base_url("https://gw:443").is_err());
        assert!(parse_base_url("http://gw:80/prefix").is_err());
        assert!(parse_base_url("http://").is_err());
    }

    #[test]
    fn names_that_would_break_the_request_line_are_refused() {
        let url = "http://127.0.0.1:1";
        assert!(register(url, "echo", "a b", "x:1", None).is_err());
        assert!(register(url, "echo/x", "e1", "x:1", None).is_err());
        assert!(register(url, "echo", "e1", "x:1", Some("t\r\nx: y")).is_err());
    }

    #[test]
    fn status_is_read_from_the_response_head() {
        assert_eq!(
            read_status(&mut &b"HTTP/1.1 201 Created\r\n\r\n"[..]),
            Ok(201)
        );
        assert!(read_status(&mut &b"HTTP/1.1 201 Cre"[..]).is_err());
        assert!(read_status(&mut &b"garbage\r\n\r\n"[..]).is_err());
    }

    #[test]
    fn puts_the_registration_and_returns_the_status() {
        let gateway = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", gateway.local_addr().unwrap());
        let fake = thread::spawn(move || {
            let (mut conn, _) = gateway.accept().unwrap();
            conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut request = Vec::new();
            // The client closes nothing before reading, so read until the body is complete.
            let mut chunk = [0u8; 1024];
            while !request.ends_with(b"}") && request.len() < MAX_RESPONSE_HEAD {
                let n = conn.read(&mut chunk).unwrap();
                assert_ne!(n, 0, "client closed early");
                request.extend_from_slice(&chunk[..n]);
            }
            conn.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let status = register(&url, "echo", "e1", "127.0.0.1:5000", Some("s3cret")).unwrap();
        assert_eq!(status, 201);
        let request = fake.join().unwrap();
        assert!(request.starts_with("PUT /-/services/echo/instances/e1 HTTP/1.1\r\n"));
        assert!(request.contains("\r\nauthorization: Bearer s3cret\r\n"));
        assert!(request.contains("\r\ncontent-length: 28\r\n"));
        assert!(request.ends_with("\r\n\r\n{\"address\":\"127.0.0.1:5000\"}"));
    }
}
