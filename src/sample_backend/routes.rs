//! What the echo answers, chosen by `ForwardingReq.path` (the path below the service):
//!
//! | path | answer |
//! |---|---|
//! | anything else | 200, the request described as JSON (instance, service, method, path, query, headers, body, body_len, request_id, remote_addr, graphql_field) |
//! | `/status/{code}` | that status (200–599), the same JSON |
//! | `/delay/{ms}` | the JSON after `ms` milliseconds (up to 60,000), or nothing if the caller gives up |
//! | `/raw` | the request body back, with the request's `content-type` |
//! | `/bytes/{n}` | `n` bytes of `x` (up to 64 MiB), `application/octet-stream` |
//! | `/json/users`, `/json/users/{id}`, `/json/echo` | two users as JSON, one user (404 if unknown), the JSON body back (400 if not JSON) |
//! | `/json/nested/{depth}` | `depth` arrays nested in one another, `[[...]]` (up to 1,000,000 levels) |
//! | `/grpc-error/{code}` | a trailers-only answer with that `grpc-status` and `grpc-message: echo error {code}` |
//! | `/rst` | the stream reset (`INTERNAL_ERROR`), no answer |
//! | `/garbage` | status 200 with a gRPC message that is not a `ForwardingResp` |
//! | `/not-grpc` | the JSON, framed as gRPC, but with `content-type: text/html` |
//!
//! A request header `x-echo-set: name=value` becomes a response header; every answer names the
//! instance in `x-echo-instance`.
//!
//! Pure functions from a decoded request to an [`Action`]: no I/O, no clock, so every path and
//! every refused parameter is unit-tested without a socket. The server carries the action out
//! (sleeping, resetting, framing). Parameters a client controls are bounded by the constants
//! below; a parameter that is malformed or over its bound gets status 400 with
//! `{"error":"..."}` rather than being clamped, so a test that asks for too much notices.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::proto::{ForwardingReq, ForwardingResp, Header};

/// Longest `/delay/{ms}`: longer than any sensible gateway deadline, short enough that a stray
/// request cannot pin a task for long.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// Largest `/bytes/{n}` body: well over the gateway's 4 MiB answer limit (to test it), small
/// enough that a few concurrent calls cannot exhaust memory.
pub const MAX_BYTES_BODY: usize = 64 * 1024 * 1024;

/// Deepest `/json/nested/{depth}`: far beyond any JSON nesting limit (serde_json's is 128), to test
/// them, and 2 bytes per level keeps the answer under the gateway's 4 MiB answer limit.
pub const MAX_NESTED_DEPTH: usize = 1_000_000;

/// Status codes `/status/{code}` accepts: final HTTP statuses only (1xx cannot end a response).
pub const STATUS_RANGE: std::ops::RangeInclusive<u16> = 200..=599;

/// Request header whose `name=value` values become response headers.
pub const ECHO_SET_HEADER: &str = "x-echo-set";

/// Response header naming the instance that answered.
pub const INSTANCE_HEADER: &str = "x-echo-instance";

/// The `/garbage` payload: field 1 with wire type 7, which no protobuf decoder accepts.
pub const GARBAGE_PAYLOAD: &[u8] = b"\x0fnot a ForwardingResp";

const JSON: &str = "application/json";
const OCTET_STREAM: &str = "application/octet-stream";

/// The two users `/json/users` serves, as literal JSON so the key order is fixed.
const USERS: [(u64, &str); 2] = [
    (
        1,
        r#"{"id":1,"name":"Ada Lovelace","email":"ada@example.com","address":{"city":"London","zip":"N1"},"tags":["math","poet"]}"#,
    ),
    (
        2,
        r#"{"id":2,"name":"Alan Turing","email":"alan@example.com","address":{"city":"Wilmslow","zip":"SK9"},"tags":["cs"]}"#,
    ),
];

/// What the server does with one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Answer with this message now.
    Reply(ForwardingResp),
    /// Wait this long (or until the caller gives up), then answer with this message.
    Delayed(Duration, ForwardingResp),
    /// Answer trailers-only with this gRPC status and (unencoded) message.
    GrpcError {
        /// The `grpc-status` value.
        code: u32,
        /// The `grpc-message` value before percent-encoding.
        message: String,
    },
    /// Reset the stream with INTERNAL_ERROR and send nothing.
    Reset,
    /// Answer status 200 with a gRPC message that is not a valid `ForwardingResp`.
    Garbage,
    /// Answer with this message, but under a content-type that is not gRPC's.
    NotGrpc(ForwardingResp),
}

/// The route a path selects, with its parsed parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Default,
    Raw,
    Status(u16),
    GrpcError(u32),
    Delay(Duration),
    Bytes(usize),
    Rst,
    Garbage,
    NotGrpc,
    Users,
    User(&'a str),
    JsonEcho,
    Nested(usize),
}

/// A path parameter that is malformed or out of bounds; answered with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BadParam(&'static str);

/// Decides the answer to `req` for the echo instance named `instance`.
pub fn respond(req: &ForwardingReq, instance: &str) -> Action {
    let route = match parse_route(&req.path) {
        Ok(route) => route,
        Err(BadParam(why)) => return Action::Reply(error_reply(req, instance, 400, why)),
    };
    match route {
        Route::Default => Action::Reply(echo_reply(req, instance, 200)),
        Route::Status(status) => Action::Reply(echo_reply(req, instance, status)),
        Route::Delay(wait) => Action::Delayed(wait, echo_reply(req, instance, 200)),
        Route::Raw => {
            let content_type = header(req, "content-type");
            Action::Reply(reply(req, instance, 200, content_type, req.body.clone()))
        }
        Route::GrpcError(code) => Action::GrpcError {
            code,
            message: format!("echo error {code}"),
        },
        Route::Bytes(n) => {
            let body = Bytes::from(vec![b'x'; n]);
            Action::Reply(reply(req, instance, 200, Some(OCTET_STREAM), body))
        }
        Route::Rst => Action::Reset,
        Route::Garbage => Action::Garbage,
        Route::NotGrpc => Action::NotGrpc(echo_reply(req, instance, 200)),
        Route::Users => {
            let list = format!("[{}]", USERS.map(|(_, json)| json).join(","));
            Action::Reply(reply(req, instance, 200, Some(JSON), Bytes::from(list)))
        }
        Route::User(id) => {
            let found = id
                .parse::<u64>()
                .ok()
                .and_then(|id| USERS.iter().find(|(uid, _)| *uid == id));
            Action::Reply(match found {
                Some((_, json)) => reply(
                    req,
                    instance,
                    200,
                    Some(JSON),
                    Bytes::from_static(json.as_bytes()),
                ),
                None => error_reply(req, instance, 404, "no such user"),
            })
        }
        Route::Nested(depth) => {
            let mut body = Vec::with_capacity(2 * depth);
            body.resize(depth, b'[');
            body.resize(2 * depth, b']');
            Action::Reply(reply(req, instance, 200, Some(JSON), Bytes::from(body)))
        }
        Route::JsonEcho => {
            // Validate only, then send the caller's bytes back: re-serialising would reorder keys.
            Action::Reply(
                match serde_json::from_slice::<serde::de::IgnoredAny>(&req.body) {
                    Ok(_) => reply(req, instance, 200, Some(JSON), req.body.clone()),
                    Err(_) => error_reply(req, instance, 400, "body is not JSON"),
                },
            )
        }
    }
}

fn parse_route(path: &str) -> Result<Route<'_>, BadParam> {
    let Some(rest) = path.strip_prefix('/') else {
        return Ok(Route::Default);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    Ok(match segments.as_slice() {
        ["raw"] => Route::Raw,
        ["rst"] => Route::Rst,
        ["garbage"] => Route::Garbage,
        ["not-grpc"] => Route::NotGrpc,
        ["status", code] => Route::Status(
            code.parse()
                .ok()
                .filter(|c| STATUS_RANGE.contains(c))
                .ok_or(BadParam("status code must be a number from 200 to 599"))?,
        ),
        ["grpc-error", code] => Route::GrpcError(
            code.parse()
                .map_err(|_| BadParam("gRPC code must be a non-negative number"))?,
        ),
        ["delay", ms] => Route::Delay(
            ms.parse()
                .ok()
                .map(Duration::from_millis)
                .filter(|d| *d <= MAX_DELAY)
                .ok_or(BadParam(
                    "delay must be a number of milliseconds up to 60000",
                ))?,
        ),
        ["bytes", n] => Route::Bytes(
            n.parse()
                .ok()
                .filter(|n| *n <= MAX_BYTES_BODY)
                .ok_or(BadParam("byte count must be a number up to 67108864"))?,
        ),
        ["json", "users"] => Route::Users,
        ["json", "users", id] => Route::User(id),
        ["json", "echo"] => Route::JsonEcho,
        ["json", "nested", depth] => Route::Nested(
            depth
                .parse()
                .ok()
                .filter(|n| *n <= MAX_NESTED_DEPTH)
                .ok_or(BadParam("nesting depth must be a number up to 1000000"))?,
        ),
        _ => Route::Default,
    })
}

/// The default answer: the request described as JSON.
fn echo_reply(req: &ForwardingReq, instance: &str, status: u16) -> ForwardingResp {
    /// Field order is the order the module docs list; serde keeps struct order.
    #[derive(Serialize)]
    struct Echo<'a> {
        instance: &'a str,
        service: &'a str,
        method: &'a str,
        path: &'a str,
        query: &'a str,
        headers: Vec<[&'a str; 2]>,
        body: Cow<'a, str>,
        body_len: usize,
        request_id: &'a str,
        remote_addr: &'a str,
        graphql_field: &'a str,
    }
    let echo = Echo {
        instance,
        service: &req.service,
        method: &req.method,
        path: &req.path,
        query: &req.query,
        headers: req.headers.iter().map(|h| [&*h.name, &*h.value]).collect(),
        body: String::from_utf8_lossy(&req.body),
        body_len: req.body.len(),
        request_id: &req.request_id,
        remote_addr: &req.remote_addr,
        graphql_field: &req.graphql_field,
    };
    let body = serde_json::to_vec(&echo).expect("strings and numbers always serialise");
    reply(req, instance, status, Some(JSON), Bytes::from(body))
}

fn error_reply(req: &ForwardingReq, instance: &str, status: u16, why: &str) -> ForwardingResp {
    let body =
        serde_json::to_vec(&serde_json::json!({ "error": why })).expect("a string serialises");
    reply(req, instance, status, Some(JSON), Bytes::from(body))
}

/// Builds an answer with the headers every answer carries: content-type (when there is one),
/// `x-echo-instance`, then one header per valid `x-echo-set`, in request order.
fn reply(
    req: &ForwardingReq,
    instance: &str,
    status: u16,
    content_type: Option<&str>,
    body: Bytes,
) -> ForwardingResp {
    let mut headers = Vec::with_capacity(2);
    if let Some(content_type) = content_type {
        headers.push(new_header("content-type", content_type));
    }
    headers.push(new_header(INSTANCE_HEADER, instance));
    headers.extend(
        req.headers
            .iter()
            .filter(|h| h.name == ECHO_SET_HEADER)
            .filter_map(|h| parse_echo_set(&h.value))
            .map(|(name, value)| Header {
                name,
                value: value.to_owned(),
            }),
    );
    ForwardingResp {
        status_code: i32::from(status),
        headers,
        body,
    }
}

/// Parses one `x-echo-set` value, `name=value`, into a lower-case header name and its value.
///
/// Values that would not make a valid HTTP header (empty or non-token name, control characters
/// in the value) are ignored, so the echo cannot be used to split a response.
fn parse_echo_set(value: &str) -> Option<(String, &str)> {
    let (name, value) = value.split_once('=')?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
    let value = value.trim();
    http::HeaderValue::from_str(value).ok()?;
    Some((name.as_str().to_owned(), value))
}

fn header<'a>(req: &'a ForwardingReq, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name == name)
        .map(|h| h.value.as_str())
}

fn new_header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
