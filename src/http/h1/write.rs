//! HTTP/1.1 response encoding into the connection's reused output buffer.

use crate::http::Response;

/// Bodies at least this long are not copied behind their head into the connection's output but
/// written from where they lie, head and body in one vectored send ([`encode_head`]). Below it the
/// copy costs less than the vectored send's extra setup (a 4 KiB POST measured the same either
/// way), and pipelined answers queue in one buffer for one write; above it a body of up to the
/// answer limit (4 MiB) would double the connection's memory while it is written.
pub const DIRECT_BODY: usize = 16 << 10;

/// Appends `response` to `out`. `head_request` leaves the body out (keeping its length), `close`
/// announces the end of the connection, `http10` makes keep-alive explicit for HTTP/1.0 clients.
pub fn encode(
    out: &mut Vec<u8>,
    response: &Response,
    head_request: bool,
    close: bool,
    http10: bool,
) {
    if encode_head(out, response, head_request, close, http10) {
        out.extend_from_slice(&response.body);
    }
}

/// Appends `response`'s head to `out`, as [`encode`] writes it; returns whether its body is to be
/// written after it (not for HEAD, 1xx, 204 and 304).
pub fn encode_head(
    out: &mut Vec<u8>,
    response: &Response,
    head_request: bool,
    close: bool,
    http10: bool,
) -> bool {
    let status = response.status;
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(digits.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut dated = false;
    for (name, value) in response.fields() {
        dated |= name == "date";
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(&crate::http::date::current());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(length) = response.content_length(head_request) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(digits.format(length).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    !head_request && !response.bodiless_status()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `encode`'s output, its `date` line (checked, then taken out: it changes every second).
    fn encoded(r: &Response, head_request: bool, close: bool, http10: bool) -> String {
        let mut out = Vec::new();
        encode(&mut out, r, head_request, close, http10);
        let text = String::from_utf8(out).unwrap();
        let date = format!(
            "date: {}\r\n",
            std::str::from_utf8(&crate::http::date::current()).unwrap()
        );
        assert_eq!(text.matches("\r\ndate: ").count(), 1, "one date: {text:?}");
        text.replacen(&date, "", 1)
    }

    #[test]
    fn encodes_status_headers_length_and_body() {
        let mut r = Response::new(201, &b"hi"[..]);
        r.push_header("x-a", "1");
        r.push_header("x-a", "2");
        assert_eq!(
            encoded(&r, false, false, false),
            "HTTP/1.1 201 Created\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 2\r\n\r\nhi"
        );
    }

    #[test]
    fn head_keeps_the_length_but_not_the_body() {
        let r = Response::new(200, &b"hello"[..]);
        assert_eq!(
            encoded(&r, true, true, false),
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn no_content_has_no_length() {
        let r = Response::new(204, &b""[..]);
        assert_eq!(
            encoded(&r, false, false, true),
            "HTTP/1.1 204 No Content\r\nconnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn a_date_of_the_answer_is_kept_not_doubled() {
        let mut r = Response::new(200, &b""[..]);
        r.push_header("date", "Sun, 06 Nov 1994 08:49:37 GMT");
        let mut out = Vec::new();
        encode(&mut out, &r, false, false, false);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("date: ").count(), 1, "{text:?}");
        assert!(text.contains("date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
    }
}
