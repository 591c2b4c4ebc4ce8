//! HTTP/1.1 request heads: httparse does the zero-copy tokenising; this file adds the framing rules
//! a gateway must enforce so that it and the servers around it agree on where a request ends.
//!
//! Refused with 400 (and the connection closed): Content-Length together with Transfer-Encoding,
//! repeated or malformed Content-Length, any transfer coding but a single `chunked`, obs-fold
//! continuation lines (httparse rejects them in requests), header values that are not UTF-8, a
//! missing Host in HTTP/1.1, a repeated one in any version, a Host (or absolute-form authority)
//! that is not `host[:port]` or has an empty host. Refused with 431: a header section or header
//! count over the limit.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};

use crate::error::GatewayError;
use crate::http::Field;
use crate::request_id::RequestId;

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    /// Method.
    pub method: http::Method,
    /// Path (percent-encoding kept).
    pub path: Bytes,
    /// Query without `?`.
    pub query: Bytes,
    /// Headers, names lower-case, in order.
    pub headers: Vec<Field>,
    /// Body framing.
    pub framing: Framing,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// HTTP/1.0 (`false` for 1.1).
    pub http10: bool,
}

/// What is known of a request whose head or body was refused, for its error answer: the path
/// (which names its service), the client's `x-request-id`, and whether it was a HEAD (answered
/// without a body). Each is `None`/`false` when the head did not parse far enough to tell.
#[derive(Debug, Default)]
pub struct Seen {
    /// The request's path, percent-encoding kept.
    pub path: Option<Bytes>,
    /// The client's own request id, if it sent a usable one.
    pub request_id: Option<RequestId>,
    /// The request was a HEAD.
    pub head_only: bool,
}

impl Seen {
    /// What a head refused before it parsed (too large, or malformed: obs-fold, a control
    /// character in a value) tells: its request line, if httparse got through it (it fills it in
    /// before the fields), whose path names the service the answer is about and whose method
    /// says whether it was a HEAD, and the client's `x-request-id` if one of the complete field
    /// lines among `read` (the bytes of the head read so far) carries it.
    fn of_unparsed(req: &httparse::Request<'_, '_>, read: &[u8]) -> Seen {
        Seen {
            path: req
                .path
                .and_then(|target| path_of(Bytes::copy_from_slice(target.as_bytes()))),
            request_id: request_id_among_lines(read),
            head_only: req.method == Some("HEAD"),
        }
    }

    /// What a parsed head tells.
    pub fn of(head: &Head) -> Seen {
        Seen {
            path: Some(head.path.clone()),
            request_id: RequestId::sent_in(&head.headers),
            head_only: head.method == http::Method::HEAD,
        }
    }
}

/// The path of a refused request's `target`, if it has one, for its error answer.
fn path_of(target: Bytes) -> Option<Bytes> {
    origin_form(target)
        .ok()
        .map(|target| split_path_query(target).0)
}

/// The first usable `x-request-id` among the complete field lines of `head` (a head's bytes as
/// read, the request line first, perhaps cut off anywhere): for the answer to a head too large or
/// with too many fields to parse. A line cut off at the end of `head` is not taken: its value may
/// go on.
fn request_id_among_lines(head: &[u8]) -> Option<RequestId> {
    const NAME: &[u8] = b"x-request-id:";
    let complete = &head[..head.iter().rposition(|&b| b == b'\n')?];
    complete
        .split(|&b| b == b'\n')
        .skip(1)
        .filter(|line| line.len() > NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME))
        .find_map(|line| {
            let value = line[NAME.len()..].trim_ascii();
            RequestId::from_client(&Bytes::copy_from_slice(value))
        })
}

/// Limits the parser enforces.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Bytes in the request line plus header section.
    pub max_header_bytes: usize,
    /// Number of headers.
    pub max_headers: usize,
}

/// Most headers httparse is ever given room for (the configuration ceiling, plus one to detect overflow).
const HEADER_SLOTS: usize = crate::config::MAX_HEADERS_CEILING + 1;
/// Header spans kept on the stack while parsing; a request with more spills to the heap.
const INLINE_HEADERS: usize = 32;
/// Longest Content-Length value accepted: 19 digits always fit in a u64.
const MAX_CONTENT_LENGTH_DIGITS: usize = 19;

/// Parses the head at the start of `buf`. `Ok(None)` means more bytes are needed; on success the
/// head's bytes are split off `buf` (names lower-cased in place, values shared, not copied).
pub fn parse_head(buf: &mut BytesMut, limits: HeadLimits) -> Result<Option<Head>, GatewayError> {
    parse_head_into(buf, limits, &mut Vec::new(), &mut Seen::default())
}

/// [`parse_head`], collecting the headers into `spare` (an empty list kept by the connection from
/// its last request, so a request reuses its predecessor's allocation); a complete head takes it.
/// A refused head leaves what it told in `seen`: all of it when it was read whole and refused
/// for its framing or a header value; its request line (and, when complete, its
/// `x-request-id`) when refused for its size.
pub fn parse_head_into(
    buf: &mut BytesMut,
    limits: HeadLimits,
    spare: &mut Vec<Field>,
    seen: &mut Seen,
) -> Result<Option<Head>, GatewayError> {
    struct Spans {
        method: (usize, usize),
        target: (usize, usize),
        headers: usize,
        http10: bool,
        len: usize,
    }
    let slots = (limits.max_headers + 1).min(HEADER_SLOTS);
    // Header spans live on the stack for the usual request; only one with more headers than
    // INLINE_HEADERS pays for a heap buffer. The stack array is left uninitialised: zeroing its
    // 1 KiB cost more than parsing a tiny request's few headers.
    let mut inline = [const { MaybeUninit::<HeaderSpan>::uninit() }; INLINE_HEADERS];
    let mut spilled: Vec<HeaderSpan> = Vec::new();
    let spans = {
        let base = buf.as_ptr() as usize;
        let span = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
        let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
        let mut req = httparse::Request::new(&mut []);
        let status = req.parse_with_uninit_headers(&buf[..], &mut storage[..slots]);
        match status {
            Ok(httparse::Status::Partial) => {
                if buf.len() > limits.max_header_bytes {
                    *seen = Seen::of_unparsed(&req, buf);
                    return Err(GatewayError::headers_too_large("header section"));
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => {
                *seen = Seen::of_unparsed(&req, buf);
                return Err(GatewayError::headers_too_large("header count"));
            }
            Err(e) => {
                *seen = Seen::of_unparsed(&req, buf);
                return Err(GatewayError::bad_request(format!("malformed request: {e}")));
            }
            Ok(httparse::Status::Complete(len)) => {
                if len > limits.max_header_bytes || req.headers.len() > limits.max_headers {
                    *seen = Seen::of_unparsed(&req, &buf[..len]);
                    return Err(GatewayError::headers_too_large(
                        if len > limits.max_header_bytes {
                            "header section"
                        } else {
                            "header count"
                        },
                    ));
                }
                let n = req.headers.len();
                let found = req
                    .headers
                    .iter()
                    .map(|h| (span(h.name.as_bytes()), span(h.value)));
                if n <= INLINE_HEADERS {
                    for (slot, span) in inline.iter_mut().zip(found) {
                        slot.write(span);
                    }
                } else {
                    spilled.extend(found);
                }
                Spans {
                    method: span(req.method.unwrap_or_default().as_bytes()),
                    target: span(req.path.unwrap_or_default().as_bytes()),
                    headers: n,
                    http10: req.version == Some(0),
                    len,
                }
            }
        }
    };
    let header_spans: &[HeaderSpan] = if spans.headers <= INLINE_HEADERS {
        let written = &inline[..spans.headers];
        // SAFETY: the loop above wrote the first `spans.headers` slots (one per header, and
        // there are that many), and `MaybeUninit<T>` has the layout of `T`.
        unsafe { &*(std::ptr::from_ref(written) as *const [HeaderSpan]) }
    } else {
        &spilled
    };
    for &((start, len), _) in header_spans {
        buf[start..start + len].make_ascii_lowercase();
    }
    let head = buf.split_to(spans.len).freeze();
    let spans = HeadSpans {
        method: spans.method,
        target: spans.target,
        headers: header_spans,
        http10: spans.http10,
    };
    let parsed = read_fields(&head, &spans, spare);
    if parsed.is_err() {
        *seen = spans.seen(&head);
    }
    parsed.map(Some)
}

/// Where a header's name and value lie in a head: (start, len) each.
type HeaderSpan = ((usize, usize), (usize, usize));

/// Where a complete head's parts lie in its bytes: (start, len) each.
struct HeadSpans<'a> {
    method: (usize, usize),
    target: (usize, usize),
    headers: &'a [HeaderSpan],
    http10: bool,
}

impl HeadSpans<'_> {
    /// What a refused head tells (the error path only: it slices and scans again).
    fn seen(&self, head: &Bytes) -> Seen {
        let slice = |(start, len): (usize, usize)| head.slice(start..start + len);
        Seen {
            path: path_of(slice(self.target)),
            request_id: self
                .headers
                .iter()
                .find(|&&(name, _)| &slice(name)[..] == b"x-request-id")
                .and_then(|&(_, value)| RequestId::from_client(&slice(value))),
            head_only: slice(self.method).as_ref() == b"HEAD",
        }
    }
}

/// The head's request line and fields, checked: the framing rules of the module docs.
fn read_fields(
    head: &Bytes,
    spans: &HeadSpans<'_>,
    spare: &mut Vec<Field>,
) -> Result<Head, GatewayError> {
    let header_spans = spans.headers;
    let slice = |(start, len): (usize, usize)| head.slice(start..start + len);

    let method = http::Method::from_bytes(&head[spans.method.0..][..spans.method.1])
        .map_err(|_| GatewayError::bad_request("malformed method"))?;
    crate::http::check_method(&method)?;
    let target = slice(spans.target);
    let (authority, target) = split_target(target)?;
    let (path, query) = split_path_query(target);

    let mut headers = std::mem::take(spare);
    headers.clear();
    headers.reserve(header_spans.len());
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut hosts = 0;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for &(name, value) in header_spans {
        let field = Field {
            name: slice(name),
            value: slice(value),
        };
        if !crate::utf8::is_text(&field.value) {
            return Err(GatewayError::bad_request(format!(
                "header `{}` has a value that is not UTF-8",
                field.name_str()
            )));
        }
        match field.name.as_ref() {
            b"content-length" => {
                if content_length.is_some() {
                    return Err(GatewayError::bad_request("repeated Content-Length"));
                }
                content_length = Some(parse_content_length(&field.value)?);
            }
            b"transfer-encoding" => {
                if chunked {
                    return Err(GatewayError::bad_request("repeated Transfer-Encoding"));
                }
                if !field.value.eq_ignore_ascii_case(b"chunked") {
                    return Err(GatewayError::bad_request(
                        "only `Transfer-Encoding: chunked` is accepted",
                    ));
                }
                chunked = true;
            }
            b"host" => {
                crate::http::check_host(&field.value)?;
                hosts += 1;
            }
            b"connection" => {
                for token in field.value_str().split(',').map(str::trim) {
                    close |= token.eq_ignore_ascii_case("close");
                    keep_alive_token |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
            b"expect" => expect_continue = field.value.eq_ignore_ascii_case(b"100-continue"),
            _ => {}
        }
        headers.push(field);
    }
    // An absolute-form target's authority is the request's host, whatever Host said.
    if let Some(authority) = authority {
        crate::http::check_host(&authority)?;
        match headers.iter_mut().find(|f| f.name.as_ref() == b"host") {
            Some(host) => host.value = authority,
            None => headers.push(Field {
                name: Bytes::from_static(b"host"),
                value: authority,
            }),
        }
    }
    if chunked && content_length.is_some() {
        return Err(GatewayError::bad_request(
            "Content-Length and Transfer-Encoding together",
        ));
    }
    if chunked && spans.http10 {
        return Err(GatewayError::bad_request(
            "Transfer-Encoding is not allowed in HTTP/1.0",
        ));
    }
    // RFC 9112 §3.2: more than one Host is invalid whatever the version (nginx refuses it in
    // HTTP/1.0 too: the backend would have to pick one); only HTTP/1.1 must send one.
    if hosts > 1 || (!spans.http10 && hosts == 0) {
        return Err(GatewayError::bad_request(
            "HTTP/1.1 requests need exactly one Host header, HTTP/1.0 ones at most one",
        ));
    }
    let framing = match (chunked, content_length) {
        (true, _) => Framing::Chunked,
        (false, Some(0)) | (false, None) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
    };
    Ok(Head {
        method,
        path,
        query,
        headers,
        framing,
        keep_alive: if spans.http10 {
            keep_alive_token && !close
        } else {
            !close
        },
        expect_continue: expect_continue && !spans.http10,
        http10: spans.http10,
    })
}

fn parse_content_length(value: &[u8]) -> Result<u64, GatewayError> {
    let bad = || GatewayError::bad_request("malformed Content-Length");
    if value.is_empty()
        || value.len() > MAX_CONTENT_LENGTH_DIGITS
        || !value.iter().all(u8::is_ascii_digit)
    {
        return Err(bad());
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}

/// Reduces a request target to origin form (`/path?query`); absolute-form targets (`http://host/p`)
/// are accepted as RFC 9112 asks of servers. Takes the target, which is usually the result.
fn origin_form(target: Bytes) -> Result<Bytes, GatewayError> {
    split_target(target).map(|(_, target)| target)
}

/// [`origin_form`], and the authority of an absolute-form target (userinfo dropped), which
/// stands for the Host header (RFC 9112 §3.2.2: a server ignores Host then).
fn split_target(target: Bytes) -> Result<(Option<Bytes>, Bytes), GatewayError> {
    if target.first() == Some(&b'/') {
        return Ok((None, target));
    }
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = target.slice(scheme.len()..);
            let end = rest
                .iter()
                .position(|&c| matches!(c, b'/' | b'?' | b'#'))
                .unwrap_or(rest.len());
            let authority = rest.slice(..end);
            let host = match authority.iter().rposition(|&c| c == b'@') {
                Some(at) => authority.slice(at + 1..),
                None => authority,
            };
            let path = match rest.get(end) {
                Some(b'/') => rest.slice(end..),
                Some(_) => {
                    let mut t = BytesMut::with_capacity(rest.len() - end + 1);
                    t.extend_from_slice(b"/");
                    t.extend_from_slice(&rest[end..]);
                    t.freeze()
                }
                None => Bytes::from_static(b"/"),
            };
            // RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid, not one that
            // leaves the host to the Host header.
            if host.is_empty() {
                return Err(GatewayError::bad_request(
                    "request target has an empty host",
                ));
            }
            return Ok((Some(host), path));
        }
    }
    Err(GatewayError::bad_request(
        "request target must be a path starting with `/`",
    ))
}

/// Splits an origin-form target into path and query (without `?`), dropping a fragment: `#` has
/// no place in a request target (RFC 9112 §3.2), and over HTTP/2 the http crate drops it and what
/// follows from `:path`, so `/a?x=1#f` reaches a backend as path `/a` and query `x=1` over either
/// protocol. One pass over the target, as the split alone took; without a query or fragment the
/// path is the target as it is.
fn split_path_query(target: Bytes) -> (Bytes, Bytes) {
    let Some(at) = target.iter().position(|&c| c == b'?' || c == b'#') else {
        return (target, Bytes::new());
    };
    if target[at] == b'#' {
        return (target.slice(..at), Bytes::new());
    }
    let end = target[at + 1..]
        .iter()
        .position(|&c| c == b'#')
        .map_or(target.len(), |n| at + 1 + n);
    (target.slice(..at), target.slice(at + 1..end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const LIMITS: HeadLimits = HeadLimits {
        max_header_bytes: 1024,
        max_headers: 8,
    };

    fn parse(text: &[u8]) -> Result<Option<Head>, GatewayError> {
        parse_head(&mut BytesMut::from(text), LIMITS)
    }

    fn kind(text: &[u8]) -> ErrorKind {
        parse(text).unwrap_err().kind
    }

    #[test]
    fn parses_a_head_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            &b"POST /users/a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-Multi: 1\r\nx-multi: 2\r\nContent-Length: 3\r\n\r\nabcGET"[..],
        );
        let head = parse_head(&mut buf, LIMITS).unwrap().unwrap();
        assert_eq!(head.method, http::Method::POST);
        assert_eq!(&head.path[..], b"/users/a%20b");
        assert_eq!(&head.query[..], b"x=1");
        let names: Vec<_> = head.headers.iter().map(|f| f.name_str()).collect();
        assert_eq!(names, ["host", "x-multi", "x-multi", "content-length"]);
        assert_eq!(head.headers[2].value_str(), "2");
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"abcGET");
    }

    #[test]
    fn a_head_refused_after_it_was_read_tells_its_path_id_and_method() {
        let parse_seeing = |text: &[u8]| {
            let mut seen = Seen::default();
            let parsed = parse_head_into(
                &mut BytesMut::from(text),
                LIMITS,
                &mut Vec::new(),
                &mut seen,
            );
            (parsed, seen)
        };
        let id = |seen: &Seen| seen.request_id.as_ref().map(|id| id.as_str().to_owned());
        let (refused, seen) = parse_seeing(b"HEAD http://gw/users/a?x=1 HTTP/1.1\r\nHost: h\r\nX-Request-ID: rid-7\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(refused.unwrap_err().kind, ErrorKind::BadRequest);
        assert_eq!(seen.path.as_deref(), Some(&b"/users/a"[..]));
        assert_eq!(id(&seen).as_deref(), Some("rid-7"));
        assert!(seen.head_only);

        // One httparse refuses (obs-fold here) tells what its request line and complete lines do.
        let (refused, seen) = parse_seeing(
            b"GET /users/b HTTP/1.1\r\nHost: h\r\nX-Request-Id: rid-9\r\nX-F: a\r\n b\r\n\r\n",
        );
        assert!(refused.is_err());
        assert_eq!(seen.path.as_deref(), Some(&b"/users/b"[..]));
        assert_eq!(id(&seen).as_deref(), Some("rid-9"));

        // A head that parses, or one that is not HTTP, tells nothing here.
        let (parsed, seen) =
            parse_seeing(b"GET /users HTTP/1.1\r\nHost: h\r\nX-Request-Id: rid-8\r\n\r\n");
        assert!(parsed.unwrap().is_some());
        assert!(seen.path.is_none() && seen.request_id.is_none() && !seen.head_only);
        let (refused, seen) = parse_seeing(b"HELLO THERE\r\n\r\n");
        assert!(refused.is_err());
        assert!(seen.path.is_none() && seen.request_id.is_none() && !seen.head_only);
    }

    #[test]
    fn heads_at_and_past_the_inline_spans_read_every_header() {
        let limits = HeadLimits {
            max_header_bytes: 4096,
            max_headers: 64,
        };
        for count in [INLINE_HEADERS - 1, INLINE_HEADERS, INLINE_HEADERS + 1, 64] {
            let mut text = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
            for i in 1..count {
                text.extend_from_slice(format!("X-Field-{i}: value {i}\r\n").as_bytes());
            }
            text.extend_from_slice(b"\r\n");
            let head = parse_head(&mut BytesMut::from(&text[..]), limits)
                .unwrap()
                .unwrap();
            assert_eq!(head.headers.len(), count);
            for (i, field) in head.headers.iter().enumerate().skip(1) {
                assert_eq!(field.name_str(), format!("x-field-{i}"));
                assert_eq!(field.value_str(), format!("value {i}"));
            }
        }
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: h\r\n").unwrap().is_none());
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let cases: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3a\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Bad: \xff\xfe\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost:   \r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET nopath HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h:80x\r\n\r\n",
            b"GET http://a%zz/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET http:///a HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET http://u@/a HTTP/1.1\r\nHost: h\r\n\r\n",
        ];
        for case in cases {
            assert_eq!(
                kind(case),
                ErrorKind::BadRequest,
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn an_oversized_head_s_request_id_is_found_among_its_complete_lines() {
        let id = |head: &[u8]| request_id_among_lines(head).map(|id| id.as_str().to_string());
        let head = b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-ID:  rid-1 \r\nX-Big: aaaa";
        assert_eq!(id(head).as_deref(), Some("rid-1"));
        // Cut off in the id's own line: its value may go on, so it is not taken.
        assert_eq!(id(b"GET /a HTTP/1.1\r\nHost: h\r\nx-request-id: ri"), None);
        // The request line is not a field; an unusable id is passed over for a later one.
        assert_eq!(id(b"GET /x-request-id:a HTTP/1.1\r\nHost: h\r\n"), None);
        let twice = b"GET / HTTP/1.1\r\nx-request-id: \r\nx-request-id: rid-2\r\nX: y";
        assert_eq!(id(twice).as_deref(), Some("rid-2"));
        assert_eq!(id(b"GET / HTTP/1.1"), None);
    }

    #[test]
    fn limits_give_431() {
        let many: Vec<u8> = [
            &b"GET / HTTP/1.1\r\nHost: h\r\n"[..],
            &b"a: b\r\n".repeat(9),
            b"\r\n",
        ]
        .concat();
        assert_eq!(kind(&many), ErrorKind::HeadersTooLarge);
        let long = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "v".repeat(2000)
        );
        assert_eq!(kind(long.as_bytes()), ErrorKind::HeadersTooLarge);
        let endless = format!("GET / HTTP/1.1\r\nX: {}", "v".repeat(2000));
        assert_eq!(kind(endless.as_bytes()), ErrorKind::HeadersTooLarge);
    }

    #[test]
    fn connection_semantics() {
        let h = parse(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive && h.http10);
        let h = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.expect_continue);
        assert_eq!(h.framing, Framing::Chunked);
    }

    #[test]
    fn absolute_form_targets_become_paths() {
        let h = parse(b"GET http://gw:8080/users/1?q HTTP/1.1\r\nHost: gw\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((&h.path[..], &h.query[..]), (&b"/users/1"[..], &b"q"[..]));
        let h = parse(b"GET http://gw?q HTTP/1.1\r\nHost: gw\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((&h.path[..], &h.query[..]), (&b"/"[..], &b"q"[..]));
    }

    #[test]
    fn a_fragment_is_dropped_as_the_http_crate_drops_it() {
        for (target, path, query) in [
            ("/a#frag", "/a", ""),
            ("/a?x=1#frag", "/a", "x=1"),
            ("/a#f?x=1", "/a", ""),
            ("/a?x=1#f#g?h", "/a", "x=1"),
            ("/a?#", "/a", ""),
            ("/#", "/", ""),
            ("/a/b%20c?x=1&y", "/a/b%20c", "x=1&y"),
            ("/a", "/a", ""),
        ] {
            let h = parse(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
                .unwrap()
                .unwrap();
            let got = (
                std::str::from_utf8(&h.path).unwrap(),
                std::str::from_utf8(&h.query).unwrap(),
            );
            assert_eq!(got, (path, query), "{target}");
            // What an HTTP/2 request's `:path` becomes (`crate::http::h2` takes it from the
            // http crate).
            let h2: http::uri::PathAndQuery = target.parse().unwrap();
            assert_eq!(
                (h2.path(), h2.query().unwrap_or_default()),
                got,
                "{target} over HTTP/2"
            );
        }
        for (target, path, query) in [
            ("http://h#f", "/", ""),
            ("http://h?q#f", "/", "q"),
            ("http://h/p#f?q", "/p", ""),
        ] {
            let h = parse(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
                .unwrap()
                .unwrap();
            assert_eq!(
                (&h.path[..], &h.query[..]),
                (path.as_bytes(), query.as_bytes()),
                "{target}"
            );
        }
    }

    #[test]
    fn an_absolute_form_target_names_the_host() {
        let host = |text: &[u8]| {
            let h = parse(text).unwrap().unwrap();
            let hosts: Vec<_> = h
                .headers
                .iter()
                .filter(|f| f.name_str() == "host")
                .map(|f| f.value_str().to_string())
                .collect();
            hosts
        };
        // RFC 9112 §3.2.2: the target's authority, not Host.
        assert_eq!(
            host(b"GET http://other.example:81/a HTTP/1.1\r\nHost: gw\r\n\r\n"),
            ["other.example:81"]
        );
        assert_eq!(
            host(b"GET https://u:p@h.example?q HTTP/1.1\r\nHost: gw\r\n\r\n"),
            ["h.example"]
        );
        // HTTP/1.0 needs no Host: the authority becomes one.
        assert_eq!(
            host(b"GET http://h.example/ HTTP/1.0\r\n\r\n"),
            ["h.example"]
        );
        // Origin form keeps Host as sent.
        assert_eq!(host(b"GET /a HTTP/1.1\r\nHost: gw\r\n\r\n"), ["gw"]);
    }
}
