//! The client side: HTTP/1.1 and HTTP/2 (prior knowledge) on one listener, both turned into the
//! same protocol-neutral [`Request`] and written back from the same [`Response`].
//!
//! The two codecs differ only in framing; everything after them (routing, limits, errors) sees one
//! shape, so a behaviour is written once. [`serve_connection`] reads the first bytes of a new
//! connection and hands it to the codec the HTTP/2 connection preface calls for.

pub mod date;
pub mod h1;
pub mod h2;

use crate::request_id::RequestId;
use crate::upstream::reply::ReplyHeaders;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use glommio::net::TcpStream;

use crate::shard::Shard;

/// A request header: name lower-case, name and value valid UTF-8 (checked by the codec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Lower-case name.
    pub name: Bytes,
    /// Value, without surrounding whitespace.
    pub value: Bytes,
}

impl Field {
    /// A field from static text (tests, internal requests).
    pub fn new(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Field {
        Field {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The name as text.
    pub fn name_str(&self) -> &str {
        crate::utf8::text(&self.name).unwrap_or_default()
    }

    /// The value as text.
    pub fn value_str(&self) -> &str {
        crate::utf8::text(&self.value).unwrap_or_default()
    }
}

/// A complete client request, whichever protocol carried it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method, as sent (upper-case for the standard ones).
    pub method: http::Method,
    /// Raw path, percent-encoding kept, starting with `/`.
    pub path: Bytes,
    /// Raw query string without `?` (empty when none).
    pub query: Bytes,
    /// Headers in the order received, repeats kept, without pseudo-headers.
    pub headers: Vec<Field>,
    /// The whole body (de-chunked).
    pub body: Bytes,
    /// The client's address as the gateway saw it.
    pub remote: SocketAddr,
}

impl Request {
    /// The path as text (the codecs only accept ASCII targets).
    pub fn path_str(&self) -> &str {
        crate::utf8::text(&self.path).unwrap_or("/")
    }

    /// The query as text.
    pub fn query_str(&self) -> &str {
        crate::utf8::text(&self.query).unwrap_or_default()
    }

    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head().header(name)
    }

    /// The request but for its body: what routing looks at.
    pub fn head(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
            remote: self.remote,
        }
    }

    /// Splits a raw request target into path and query. Takes the target: without a query it is
    /// the path as it is (a `Bytes` clone and drop are an atomic count each).
    pub fn split_target(target: Bytes) -> (Bytes, Bytes) {
        match target.iter().position(|&c| c == b'?') {
            Some(i) => (target.slice(..i), target.slice(i + 1..)),
            None => (target, Bytes::new()),
        }
    }
}

/// A request without its body, borrowed: all [`crate::router::route`] needs to tell where a
/// request goes, so a codec can ask before it reads (or invites) the body.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// Method.
    pub method: &'a http::Method,
    /// Raw path, percent-encoding kept, starting with `/`.
    pub path: &'a [u8],
    /// Headers in the order received (see [`Request::headers`]).
    pub headers: &'a [Field],
    /// The client's address.
    pub remote: SocketAddr,
}

impl<'a> RequestHead<'a> {
    /// The path as text (the codecs only accept ASCII targets).
    pub fn path_str(&self) -> &'a str {
        crate::utf8::text(self.path).unwrap_or("/")
    }

    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|f| f.name.as_ref() == name.as_bytes())
            .map(Field::value_str)
    }
}

/// A response, whichever protocol carries it back.
///
/// Its header fields come from three places, written in this order by [`Response::fields`]: the
/// backend's answer (kept in its encoding, so a forwarded answer costs no allocation), headers the
/// gateway adds, and the request id. None is ever hop-by-hop or framing: the codec adds its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// A backend's headers, checked by [`crate::upstream::into_response`]: lower-case names,
    /// values safe to write. Fields the gateway does not forward are skipped when written.
    pub backend_headers: ReplyHeaders,
    /// Headers the gateway adds, in order.
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// Written last as `x-request-id`.
    pub request_id: Option<RequestId>,
    /// The body.
    pub body: Bytes,
    /// Close the client connection after this response.
    pub close: bool,
}

impl Response {
    /// A response with no headers.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            backend_headers: ReplyHeaders::default(),
            headers: Vec::new(),
            request_id: None,
            body: body.into(),
            close: false,
        }
    }

    /// A JSON response.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Response {
        let mut r = Response::new(status, body);
        r.push_header("content-type", "application/json");
        r
    }

    /// Appends a header.
    pub fn push_header(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) {
        self.headers.push((name.into(), value.into()));
    }

    /// Every header field to write, in order (see the type's docs). A backend's values lose
    /// leading and trailing whitespace, which is not part of a field value (RFC 9110 §5.5) and
    /// makes an HTTP/2 message malformed (RFC 9113 §8.2.1).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.backend_headers
            .iter()
            .filter(|(name, _)| crate::upstream::forwards_response_header(name))
            .map(|(name, value)| (name, value.trim_matches([' ', '\t'])))
            .chain(self.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref())))
            .chain(
                self.request_id
                    .as_ref()
                    .map(|id| ("x-request-id", id.as_str())),
            )
    }

    /// Whether the status forbids a body and a `content-length` (1xx, 204, 304: RFC 9110 §8.6).
    pub fn bodiless_status(&self) -> bool {
        self.status < 200 || self.status == 204 || self.status == 304
    }

    /// The `content-length` to send: none for a status that has no body (1xx, 204, 304, RFC 9110
    /// §8.6); else the body's, except for a HEAD answered without a body: the
    /// length the backend declared, the one a GET would have (RFC 9110 §9.3.2), as nginx passes it
    /// on; or none when the backend declared none or none usable (not a length, or lengths that
    /// differ; repeats of one length are that length, RFC 9110 §8.6), rather than claim the
    /// resource is empty. (A backend header list the gateway had to copy, for upper-case names,
    /// no longer holds it: such a HEAD announces none either.)
    pub fn content_length(&self, head_request: bool) -> Option<u64> {
        if self.bodiless_status() {
            return None;
        }
        if !(head_request && self.body.is_empty()) {
            return Some(self.body.len() as u64);
        }
        let mut declared = None;
        let values = self
            .backend_headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .flat_map(|(_, value)| value.split(','));
        for value in values {
            let value = value.trim_matches([' ', '\t']);
            let length = match value.bytes().all(|b| b.is_ascii_digit()) {
                true => value.parse::<u64>().ok()?,
                false => return None,
            };
            if declared.is_some_and(|d| d != length) {
                return None;
            }
            declared = Some(length);
        }
        declared
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Refuses a method with lower-case letters. Methods are case-sensitive (RFC 9110 §9.1), every
/// registered one is upper-case, and `ForwardingReq.method` promises upper-case: `get` is refused
/// with 400, as nginx does, rather than passed on as another method or silently changed.
pub fn check_method(method: &http::Method) -> Result<(), crate::error::GatewayError> {
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(crate::error::GatewayError::bad_request(format!(
            "method `{}` is not upper-case",
            method.as_str().escape_default()
        )));
    }
    Ok(())
}

/// Refuses a Host value that is not `host[:port]` (RFC 9112 §3.2: a server answers 400 to a Host
/// with an invalid value). The Host is forwarded, and backends build URLs and pick virtual hosts
/// from it: `a/b`, `a b` or `a@b` would reach them as something else than a host. Accepted: a
/// registered name (letters, digits, `-._~`, `!$&'()*+,;=`, `%HH`), which covers IPv4 and is
/// not empty, or an IP literal in brackets, each with an optional port of digits.
pub fn check_host(value: &[u8]) -> Result<(), crate::error::GatewayError> {
    if valid_host(value) {
        Ok(())
    } else {
        Err(crate::error::GatewayError::bad_request(format!(
            "Host `{}` is not host[:port]",
            value.escape_ascii()
        )))
    }
}

fn valid_host(value: &[u8]) -> bool {
    let (host_ok, port) = if let Some(literal) = value.strip_prefix(b"[") {
        let Some(end) = literal.iter().position(|&b| b == b']') else {
            return false;
        };
        let port = match &literal[end + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return false,
        };
        (valid_ip_literal(&literal[..end]), port)
    } else {
        // RFC 9110 §4.2.1: an http URI's host is never empty (nginx refuses an empty Host too).
        let (name, port) = match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        };
        (!name.is_empty() && valid_reg_name(name), port)
    };
    host_ok && port.is_none_or(|p| p.iter().all(u8::is_ascii_digit))
}

/// What lies between `[` and `]`: an IPv6 address, with a zone id (RFC 6874: `%25` and the
/// zone's unreserved or percent-encoded characters), or RFC 3986's IPvFuture (`v`, hex digits,
/// `.`, then unreserved, sub-delims or `:`).
fn valid_ip_literal(inside: &[u8]) -> bool {
    if let Some(future) = inside.strip_prefix(b"v").or(inside.strip_prefix(b"V")) {
        let Some(dot) = future.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, rest) = (&future[..dot], &future[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !rest.is_empty()
            && rest.iter().all(|&b| b == b':' || reg_name_byte(b));
    }
    let (address, zone) = match inside.windows(3).position(|w| w == b"%25") {
        Some(at) => (&inside[..at], Some(&inside[at + 3..])),
        None => (inside, None),
    };
    let zone_ok = zone.is_none_or(|z| !z.is_empty() && valid_reg_name(z));
    zone_ok && std::str::from_utf8(address).is_ok_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
}

/// RFC 3986's reg-name: unreserved, sub-delims and percent-encoded octets.
fn valid_reg_name(name: &[u8]) -> bool {
    let mut rest = name;
    while let Some((&b, tail)) = rest.split_first() {
        rest = match b {
            b'%' => match tail {
                [h, l, tail @ ..] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => tail,
                _ => return false,
            },
            _ if reg_name_byte(b) => tail,
            _ => return false,
        };
    }
    true
}

fn reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
}

/// The HTTP/2 connection preface a prior-knowledge client starts with.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Counts a client connection closed (`switchyard_connections_open`) when dropped.
struct OpenConnection(Rc<Shard>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.metrics.connections_open.dec();
    }
}

/// Serves one accepted client connection until it closes.
///
/// Not an `async fn`: one moves its arguments into locals when first polled and keeps both
/// places in the task, 240 bytes per connection (the socket alone is 200), idle or not. The
/// block below uses the captured arguments in place.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn holds its arguments twice"
)]
pub fn serve_connection(
    shard: Rc<Shard>,
    mut stream: TcpStream,
    remote: SocketAddr,
) -> impl std::future::Future<Output = ()> {
    async move {
        // Counted open by the accept loop (before it spawned this), closed here.
        let _open = OpenConnection(shard.clone());
        let _ = stream.set_nodelay(true);
        let mut buf = BytesMut::with_capacity(h1::READ_BUFFER);
        // A client that connects and says nothing is dropped after the idle timeout.
        if stream
            .set_read_timeout(Some(shard.config.idle_timeout))
            .is_err()
        {
            return;
        }
        // Read until the bytes so far either differ from the preface or complete it. Once the
        // first bytes are in, the rest of the preface, or of the HTTP/1.1 head they begin, has
        // what is left of the header timeout, counted from the first read (each read waiting the
        // idle timeout, a client trickling the preface a byte at a time kept the connection for
        // as long as it liked). The usual first read holds a whole head or preface, and reads
        // no clock for it.
        let mut head_deadline = None::<Instant>;
        let is_h2 = loop {
            let n = buf.len();
            let common = n.min(H2_PREFACE.len());
            if buf[..common] != H2_PREFACE[..common] {
                break Some(false);
            }
            if n >= H2_PREFACE.len() {
                break Some(true);
            }
            if n > 0 {
                let left = match head_deadline {
                    None => {
                        head_deadline = Some(Instant::now() + shard.config.header_timeout);
                        shard.config.header_timeout
                    }
                    Some(at) => at.saturating_duration_since(Instant::now()),
                };
                // Out of time: the bytes so far go to the HTTP/1.1 codec, which finds its
                // deadline passed and answers 408 as it does to a slow head.
                if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                    break Some(false);
                }
            }
            let want = h1::head_read_size(&buf);
            match crate::io::read_append(&mut stream, &mut buf, want).await {
                Ok(0) => break None,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut && n > 0 => break Some(false),
                Err(_) => break None,
                Ok(_) => {}
            }
        };
        match is_h2 {
            // Boxed (one allocation per HTTP/2 connection, not per request): the HTTP/2 server's
            // state is the largest branch and would otherwise size every connection's task, idle
            // HTTP/1.1 keep-alive connections included.
            Some(true) => {
                // The HTTP/2 server has its own idle timer, which counts only time without open
                // streams and ends with GOAWAY; this one would cut a long call off mid-stream.
                if stream.set_read_timeout(None).is_err() {
                    return;
                }
                Box::pin(h2::serve(shard, stream, buf.freeze(), remote)).await
            }
            Some(false) => h1::serve(&shard, &mut stream, buf, head_deadline, remote).await,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn hosts_are_names_or_ip_literals_with_an_optional_port() {
        let valid = [
            "h",
            "h.example:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "[::ffff:127.0.0.1]",
            "[fe80::1%25eth0]:81",
            "[v1.fe80::a+en1]",
            "a%41b",
            "h:",
            "xn--bcher-kva.example",
        ];
        for host in valid {
            assert!(valid_host(host.as_bytes()), "{host}");
        }
        let invalid = [
            "",
            ":80",
            "a/b",
            "a b",
            "a@b",
            "a?b",
            "a#b",
            "h:80x",
            "h:80:81",
            "[::1",
            "[]",
            "[::1]x",
            "[::1]:8a",
            "a%4",
            "a%zz",
            "é",
            "a\\b",
            "[zz]",
            "[.]",
            "[:::::::::]",
            "[fe80::1%eth0]",
            "[fe80::1%25]",
            "[v1.]",
            "[v.x]",
            "[vz.x]",
        ];
        for host in invalid {
            assert!(!valid_host(host.as_bytes()), "{host}");
        }
    }
}
