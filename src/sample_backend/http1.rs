//! The echo's plain HTTP/1.1 face, for the load test's peers (nginx, HAProxy, the direct call):
//! the same [`routes`](super::routes) behind a minimal keep-alive HTTP/1.1 server, so every proxy
//! in a comparison puts its request in front of the same work.
//!
//! A request for `/{service}/{rest}` is turned into the `ForwardingReq` the gateway would have sent
//! for it (service from the first segment, path below it, hop-by-hop headers dropped, the peer's
//! address as `remote_addr`) and answered with the route's `ForwardingResp` as HTTP/1.1. Bodies are
//! `Content-Length` framed only (no chunked requests: the proxies under test never send them);
//! gRPC errors become their mapped HTTP status, `/rst` and `/garbage` close the connection.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;

use super::routes::{self, Action, INSTANCE_HEADER};
use super::server::Instance;
use crate::error::GrpcCode;
use crate::proto::{ForwardingReq, ForwardingResp, Header};
use crate::upstream::is_hop_by_hop;

/// Bytes read at a time; a load-test request fits in one read.
const READ_CHUNK: usize = 16 * 1024;
/// Most headers a request may carry.
const MAX_HEADERS: usize = 64;
/// Largest request head or body accepted; more closes the connection.
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// A parsed request: the message to route and whether to keep the connection.
struct Parsed {
    req: ForwardingReq,
    keep_alive: bool,
    head: bool,
}

pub(super) async fn serve_connection(mut stream: TcpStream, instance: Rc<Instance>) {
    let _ = stream.set_nodelay(true);
    let remote = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(4096);
    loop {
        let parsed = loop {
            match parse(&mut buf, &remote) {
                Ok(Some(parsed)) => break parsed,
                Ok(None) => {}
                Err(()) => {
                    let _ = stream
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                }
            }
            // Answers to pipelined requests go out before waiting for more input.
            if !out.is_empty() {
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
            if buf.len() > MAX_REQUEST {
                return;
            }
            match crate::io::read_append(&mut stream, &mut buf, READ_CHUNK).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let answer = match routes::respond(&parsed.req, instance.id()) {
            // Over HTTP/1.1 there is no gRPC content-type to get wrong: the plain answer.
            Action::Reply(resp) | Action::NotGrpc(resp) => Some(resp),
            Action::Delayed(wait, resp) => {
                glommio::timer::sleep(wait).await;
                Some(resp)
            }
            Action::GrpcError { code, message } => {
                let status = GrpcCode::from_status(code).http_status();
                Some(ForwardingResp {
                    status_code: status.into(),
                    headers: vec![Header {
                        name: "content-type".into(),
                        value: "text/plain".into(),
                    }],
                    body: message.into(),
                })
            }
            Action::Reset | Action::Garbage => None,
        };
        let Some(resp) = answer else {
            return;
        };
        encode(
            &mut out,
            &resp,
            instance.id(),
            parsed.head,
            !parsed.keep_alive,
        );
        if !parsed.keep_alive {
            let _ = stream.write_all(&out).await;
            return;
        }
    }
}

/// Parses one request from the front of `buf`; `Ok(None)` when more bytes are needed.
fn parse(buf: &mut BytesMut, remote: &str) -> Result<Option<Parsed>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let mut content_length = 0usize;
    let mut keep_alive = request.version == Some(1);
    let mut request_id = String::new();
    let mut fields = Vec::with_capacity(request.headers.len());
    for h in request.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = std::str::from_utf8(h.value).map_err(drop)?;
        match name.as_str() {
            "content-length" => content_length = value.trim().parse().map_err(drop)?,
            "transfer-encoding" => return Err(()),
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        keep_alive = true;
                    }
                }
            }
            "x-request-id" => request_id = value.to_owned(),
            _ => {}
        }
        if !is_hop_by_hop(name.as_bytes()) {
            fields.push(Header {
                name,
                value: value.to_owned(),
            });
        }
    }
    if content_length > MAX_REQUEST {
        return Err(());
    }
    if buf.len() < head_len + content_length {
        return Ok(None);
    }
    let method = request.method.unwrap_or("GET").to_owned();
    let target = request.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let below = path.strip_prefix('/').unwrap_or(path);
    let (service, rest) = match below.find('/') {
        Some(i) => (&below[..i], &below[i..]),
        None => (below, "/"),
    };
    let mut req = ForwardingReq {
        method,
        path: rest.to_owned(),
        query: query.to_owned(),
        headers: fields,
        body: Bytes::new(),
        service: service.to_owned(),
        request_id,
        remote_addr: remote.to_owned(),
        graphql_field: String::new(),
    };
    let head = req.method == "HEAD";
    let _ = buf.split_to(head_len);
    req.body = buf.split_to(content_length).freeze();
    Ok(Some(Parsed {
        req,
        keep_alive,
        head,
    }))
}

/// Appends `resp` as an HTTP/1.1 response to `out`.
fn encode(out: &mut Vec<u8>, resp: &ForwardingResp, instance: &str, head: bool, close: bool) {
    use std::io::Write;
    let status = match resp.status_code {
        0 => 200,
        s => s,
    };
    let reason = u16::try_from(status)
        .ok()
        .and_then(|s| http::StatusCode::from_u16(s).ok())
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\n");
    // Routes' answers name the instance already; error answers built here do not.
    if !resp.headers.iter().any(|h| h.name == INSTANCE_HEADER) {
        let _ = write!(out, "{INSTANCE_HEADER}: {instance}\r\n");
    }
    for h in &resp.headers {
        if h.name.eq_ignore_ascii_case("content-length") || is_hop_by_hop(h.name.as_bytes()) {
            continue;
        }
        let _ = write!(out, "{}: {}\r\n", h.name, h.value);
    }
    let _ = write!(out, "content-length: {}\r\n", resp.body.len());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(&resp.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_become_forwarding_reqs() {
        let mut buf = BytesMut::from(
            &b"POST /echo/raw?x=1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nX-Request-Id: r1\r\nContent-Length: 3\r\n\r\nabcGET"[..],
        );
        let parsed = parse(&mut buf, "127.0.0.1:9").unwrap().unwrap();
        assert!(parsed.keep_alive);
        let req = parsed.req;
        assert_eq!(
            (
                req.method.as_str(),
                req.service.as_str(),
                req.path.as_str(),
                req.query.as_str()
            ),
            ("POST", "echo", "/raw", "x=1")
        );
        assert_eq!(req.request_id, "r1");
        assert_eq!(&req.body[..], b"abc");
        let names: Vec<_> = req.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["host", "x-request-id", "content-length"]);
        assert_eq!(&buf[..], b"GET");
        assert!(parse(&mut buf, "x").unwrap().is_none());
    }

    #[test]
    fn answers_are_http1() {
        let mut out = Vec::new();
        let resp = ForwardingResp {
            status_code: 201,
            headers: vec![Header {
                name: "x-a".into(),
                value: "1".into(),
            }],
            body: Bytes::from_static(b"hi"),
        };
        encode(&mut out, &resp, "e1", false, false);
        assert_eq!(
            out,
            b"HTTP/1.1 201 Created\r\nx-echo-instance: e1\r\nx-a: 1\r\ncontent-length: 2\r\n\r\nhi"
        );
    }
}
