//! One unary gRPC call over an h2 stream: request headers and the framed message, then the answer's
//! headers, message and trailers (or a trailers-only answer), checked against the gRPC protocol.
//!
//! The call's status is read from the answer's last header block only: its trailers, or the one
//! header block of a Trailers-Only answer (a HEADERS frame that ends the stream). gRPC over HTTP/2
//! puts it nowhere else (`Response → (Response-Headers *Length-Prefixed-Message Trailers) /
//! Trailers-Only`), and grpc-go and gRPC's C core read it nowhere else: a `grpc-status` (and its
//! `grpc-message`) in the header block that a message follows is not the status, and is ignored.
//! An answer whose status block carries `grpc-status` more than once with different values is a
//! 502 (see [`GrpcFields::outcome`]).

use std::time::Duration;

use crate::io::BodyCollector;
use h2::client::RequestHead;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, TE};

use crate::error::{ErrorKind, GatewayError, GrpcCode};
use crate::upstream::budget::AnswerHold;
use crate::upstream::codec::{announced_length, decode_framed, RequestMessage, GRPC_PREFIX_LEN};
use crate::upstream::pool::{Lease, MAX_ANSWER_HEADER_LIST};
use crate::upstream::reply::Reply;

/// gRPC's status trailer (or header, in a trailers-only answer). A `HeaderName` built once: a
/// lookup by `&str` parses the name again on every call.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// gRPC's status message, percent-encoded.
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// The call's deadline, sent to the backend.
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// Longest `grpc-message` copied into the client's error body, in bytes of UTF-8 (a longer one
/// is cut at a character boundary and ends with `…`): a message is for the person reading the
/// error, gRPC's own are a line, and a backend that sends a stack trace should not make every
/// error body that large.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// How far a failed call got, which decides whether it may be sent to another instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// The backend did not process the call: the connection failed before its stream was
    /// opened, the backend refused the stream (`REFUSED_STREAM`, RFC 9113 §8.7), or its GOAWAY
    /// left the stream out (a last stream id below it, §6.8: a backend shutting down). Safe to
    /// send again, whatever the method.
    NotProcessed,
    /// The connection broke (reset, closed, GOAWAY) after the call was sent and before any
    /// answer arrived: the backend may or may not have processed it. Safe to send again only
    /// for an idempotent method.
    MaybeProcessed,
    /// The backend answered, or broke the protocol on a live connection: never sent again.
    Answered,
}

/// A failed call: the client's error, and how far the call got.
#[derive(Debug)]
pub struct CallFailure {
    /// The error for the client if the call is not sent again.
    pub error: GatewayError,
    /// How far the call got.
    pub reached: Reached,
}

impl From<GatewayError> for CallFailure {
    fn from(error: GatewayError) -> Self {
        CallFailure {
            error,
            reached: Reached::Answered,
        }
    }
}

/// How far a call got that failed with `e` before its answer's headers arrived.
///
/// h2 fails a stream with the backend's own GOAWAY error only when the frame's last stream id is
/// below the stream (streams at or below it go on, and fail later with whatever ends the
/// connection), so that error means the backend never processed the call.
fn reached_before_answer(e: &h2::Error) -> Reached {
    let refused = e.is_reset() && e.reason() == Some(h2::Reason::REFUSED_STREAM);
    if e.is_remote() && (refused || e.is_go_away()) {
        Reached::NotProcessed
    } else if e.is_io() || e.is_go_away() {
        Reached::MaybeProcessed
    } else {
        Reached::Answered
    }
}

/// Sends `frame` (a framed `ForwardingReq`) on `lease` and decodes the answer. `deadline` is
/// what is left of the call's deadline now, as the head is sent; `hold`, for a call made for an
/// HTTP/2 client, takes the answer's share of its connection's budget.
///
/// The request goes out on the lease's own handle (a clone of the connection's, made when it was
/// lent): cloning it once more here cost two atomic reference counts up and down per call. The
/// handle is not polled for readiness first: the pool lends only a connection that takes
/// streams and has a slot free, and a clone has no stream of its own waiting to open, so h2's
/// `poll_ready` would answer at once; `send_request_head` makes the same checks and refuses the
/// call (not processed) if the connection failed or its backend's GOAWAY came in meanwhile.
pub async fn unary(
    lease: &mut Lease,
    frame: RequestMessage,
    deadline: Duration,
    max_message: usize,
    hold: Option<&AnswerHold>,
) -> Result<Reply, CallFailure> {
    // The header carries whole milliseconds: nearby deadlines share one head.
    let timeout = Duration::from_millis(deadline.as_millis() as u64);
    let head = lease.request_head(timeout, |uri| request_head(uri, timeout));
    let sent = lease
        .send
        .send_request_head(&head, false)
        .map_err(|e| ("refused the call", e));
    let lease = &*lease;
    let broken = |what: &str, e: &h2::Error| {
        if e.is_go_away() || e.is_io() {
            lease.ended_by_backend();
        }
        GatewayError::upstream_protocol(format!("backend {what}: {e}"))
    };
    let failed = |what: &str, e: h2::Error, reached: Reached| CallFailure {
        error: broken(what, &e),
        reached,
    };
    let (response, mut stream) =
        sent.map_err(|(what, e)| failed(what, e, Reached::NotProcessed))?;
    stream.send_data(frame, true).map_err(|e| {
        let reached = reached_before_answer(&e);
        failed("refused the request body", e, reached)
    })?;
    // Its fields as received: a backend repeats the same header block and trailers on every
    // call, and h2 shares one decoding of each instead of copying it into a map per call.
    let (response, fields) = response.received().await.map_err(|e| {
        let reached = reached_before_answer(&e);
        // h2 resets a stream itself when the answer's head is malformed or over the header
        // list limit; the backend did not reset anything.
        if e.is_reset() && e.is_library() {
            let what = format!(
                "sent an answer head that is malformed or over the {MAX_ANSWER_HEADER_LIST}-byte \
                 header list limit"
            );
            return failed(&what, e, reached);
        }
        failed("reset the call", e, reached)
    })?;
    // The backend processed a call on this connection: it works (see `pool`).
    lease.answered();
    let answer = read_answer(response, &fields, max_message, hold, broken).await;
    // The backend answered before taking the whole request and did not reset the stream
    // (RFC 9113 §8.1 asks it to): the rest would wait for a window it need never open, and h2
    // would keep the stream, and its slot, for the connection's life.
    if stream.is_send_pending() {
        stream.send_reset(h2::Reason::CANCEL);
    }
    answer.map_err(|error| {
        // An error's answer is small: the message's share goes back at once.
        if let Some(hold) = hold {
            hold.give_back();
        }
        CallFailure::from(error)
    })
}

/// What went wrong with an answer whose headers had arrived, for the client's error: the
/// backend's reset, its connection's end, or h2 refusing what it sent (a body longer than its
/// content-length, a frame over the size limit, a pseudo-header in the trailers).
fn answer_broken(e: &h2::Error) -> &'static str {
    if e.is_reset() && e.is_remote() {
        "reset the answer"
    } else if e.is_go_away() || e.is_io() {
        "lost its connection during the answer"
    } else {
        "sent an answer that breaks HTTP/2"
    }
}

/// Reads and checks the answer whose headers (`fields`, as received) arrived, its message's
/// share of the budget taken by `hold`; `broken` maps an h2 error to the client's.
async fn read_answer(
    response: http::Response<h2::RecvStream>,
    fields: &HeaderMap,
    max_message: usize,
    hold: Option<&AnswerHold>,
    broken: impl Fn(&str, &h2::Error) -> GatewayError,
) -> Result<Reply, GatewayError> {
    let (head, mut body) = response.into_parts();
    let fields = GrpcFields::of(fields);
    // Trailers-Only: the header block ended the stream, so it carries the status and there is no
    // message. A `grpc-status` is taken whatever the HTTP status beside it (gRPC's HTTP mapping
    // is only for answers without one). In a header block that does not end the stream it is
    // not the status (module docs): the answer is read on, to its trailers. Whether the block
    // ended the stream is asked only when it has a `grpc-status`, as a usual answer's has none.
    if fields.status.is_some() && body.is_end_stream() {
        fields.outcome()?;
        return Err(GatewayError::upstream_protocol(
            "backend sent grpc-status 0 without a message",
        ));
    }
    if head.status != http::StatusCode::OK {
        let status = head.status.as_u16();
        return Err(GatewayError::new(
            ErrorKind::Grpc(GrpcCode::from_http_status(status)),
            format!("backend answered HTTP {status} instead of a gRPC response"),
        ));
    }
    // A gRPC answer says so (gRPC over HTTP/2, "Responses"); anything else is some other server
    // at the backend's address, whatever its body happens to decode as.
    let content_type = fields.content_type.map(HeaderValue::as_bytes);
    if !content_type.is_some_and(is_grpc_content_type) {
        return Err(GatewayError::upstream_protocol(format!(
            "backend answered content-type `{}` instead of application/grpc",
            String::from_utf8_lossy(content_type.unwrap_or_default()).escape_default()
        )));
    }
    let limit = max_message + GRPC_PREFIX_LEN;
    let over_limit = || {
        GatewayError::upstream_protocol(format!(
            "backend answer is over the {max_message}-byte limit"
        ))
    };
    let mut message = BodyCollector::default();
    // Bytes received and not yet given back to the backend's flow control: until the message's
    // length is known and its share of the client connection's budget taken, the backend may
    // send no more than its stream window (see `budget`).
    let mut unreleased = 0;
    let mut announced = false;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| broken(answer_broken(&e), &e))?;
        if message.len() + chunk.len() > limit {
            return Err(over_limit());
        }
        unreleased += chunk.len();
        message.push(chunk);
        if !announced {
            let Some(length) = announced_length(message.as_slice()) else {
                continue;
            };
            // Refused from its prefix: nothing more of an answer over the limit is read.
            if length > max_message {
                return Err(over_limit());
            }
            if let Some(hold) = hold {
                hold.take(GRPC_PREFIX_LEN + length).await;
            }
            message.expect(GRPC_PREFIX_LEN + length);
            announced = true;
        }
        let _ = body.flow_control().release_capacity(unreleased);
        unreleased = 0;
    }
    let trailers = body
        .received_trailers()
        .await
        .map_err(|e| broken(answer_broken(&e), &e))?
        .ok_or_else(|| GatewayError::upstream_protocol("backend answer has no trailers"))?;
    GrpcFields::of(&trailers).outcome()?;
    decode_framed(message.into_bytes()).map_err(|e| GatewayError::upstream_protocol(e.to_string()))
}

/// The fields of an answer's headers or trailers the call reads, each its first value.
#[derive(Default)]
struct GrpcFields<'a> {
    status: Option<&'a HeaderValue>,
    /// A later `grpc-status` differs from the first.
    conflicting_status: bool,
    message: Option<&'a HeaderValue>,
    content_type: Option<&'a HeaderValue>,
}

impl<'a> GrpcFields<'a> {
    /// One walk over `map`: an answer carries a handful of fields, and a lookup by name hashes
    /// the name first (three or four lookups per call cost more than reading them all once).
    fn of(map: &'a HeaderMap) -> GrpcFields<'a> {
        let mut fields = GrpcFields::default();
        for (name, value) in map {
            let slot = if name == CONTENT_TYPE {
                &mut fields.content_type
            } else if name == GRPC_STATUS {
                if let Some(first) = fields.status {
                    fields.conflicting_status |= first != value;
                }
                &mut fields.status
            } else if name == GRPC_MESSAGE {
                &mut fields.message
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        fields
    }

    /// The call's outcome when these are the fields of the answer's status block (its trailers,
    /// or a Trailers-Only answer's one header block): `Ok` for grpc-status 0, the mapped error
    /// for another status, a 502 when there is none or it is malformed.
    ///
    /// A `grpc-status` repeated with different values is a 502 too. gRPC specifies one; grpcio and
    /// grpc-go take the last, and an HTTP/2 proxy in front of the backend may take the first: an
    /// answer that reads as two outcomes is the backend's fault, and choosing one could pass a
    /// failure off as a success (as two differing `Content-Length`s make a message invalid, RFC
    /// 9110 §8.6). Repeats of one value are that value; of several `grpc-message`s, the first is
    /// the message.
    fn outcome(&self) -> Result<(), GatewayError> {
        let status = self
            .status
            .ok_or_else(|| GatewayError::upstream_protocol("backend answer has no grpc-status"))?;
        if self.conflicting_status {
            return Err(GatewayError::upstream_protocol(
                "backend sent conflicting grpc-status values",
            ));
        }
        grpc_error(status, self.message).map_or(Ok(()), Err)
    }
}

/// `application/grpc`, alone or with a `+format` suffix or parameters (media types are
/// case-insensitive).
fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    value.len() >= GRPC.len()
        && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(value.get(GRPC.len()), None | Some(b'+' | b';'))
}

/// `None` for grpc-status 0, the mapped error otherwise.
fn grpc_error(status: &HeaderValue, message: Option<&HeaderValue>) -> Option<GatewayError> {
    let code = crate::utf8::text(status.as_bytes()).and_then(|s| s.trim().parse::<u32>().ok());
    let Some(code) = code else {
        return Some(GatewayError::upstream_protocol(
            "backend sent a malformed grpc-status",
        ));
    };
    let code = GrpcCode::from_status(code);
    if code == GrpcCode::Ok {
        return None;
    }
    let message = message
        .map(|m| percent_decode(m.as_bytes(), MAX_ERROR_MESSAGE))
        .unwrap_or_else(|| code.name().to_string());
    Some(GatewayError::new(ErrorKind::Grpc(code), message))
}

/// grpc-message is percent-encoded UTF-8 (gRPC over HTTP/2, "Responses"). A message over `max`
/// bytes is cut at the last character boundary within them and ends with `…`.
fn percent_decode(raw: &[u8], max: usize) -> String {
    // Decoding stops a character's length past `max`: enough to tell a message that is longer.
    const UTF8_MAX: usize = 4;
    let mut out = Vec::with_capacity(raw.len().min(max + UTF8_MAX));
    let mut i = 0;
    while i < raw.len() && out.len() <= max + UTF8_MAX {
        if raw[i] == b'%' && i + 2 < raw.len() {
            let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The head of a call to `uri` (the Send method on one instance) carrying `timeout`: POST with
/// `content-type`, `te` and `grpc-timeout`. Built when a pool's last head carried another
/// timeout (`Lease::request_head`), and then sent on every call that carries the same.
fn request_head(uri: &http::Uri, timeout: Duration) -> RequestHead {
    let mut request = http::Request::post(uri.clone())
        .body(())
        .expect("static request parts");
    let headers = request.headers_mut();
    headers.reserve(3);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(GRPC_TIMEOUT, grpc_timeout(timeout));
    RequestHead::new(request).expect("a valid request for the instance's URI")
}

/// The `grpc-timeout` header for `deadline`: milliseconds, or seconds when that would not fit the
/// protocol's 8 digits.
fn grpc_timeout(deadline: Duration) -> HeaderValue {
    const MAX_DIGITS_VALUE: u128 = 99_999_999;
    let ms = deadline.as_millis().max(1);
    let text = if ms <= MAX_DIGITS_VALUE {
        format!("{ms}m")
    } else {
        format!("{}S", (deadline.as_secs() as u128).min(MAX_DIGITS_VALUE))
    };
    HeaderValue::from_str(&text).expect("digits and a unit letter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_h2_raised_itself_is_never_resent() {
        // Only the backend's own REFUSED_STREAM means "not processed"; a broken connection (an
        // I/O error, which h2 does not let a test build) is covered by tests/failover.rs.
        let local = h2::Error::from(h2::Reason::REFUSED_STREAM);
        assert_eq!(reached_before_answer(&local), Reached::Answered);
        let internal = h2::Error::from(h2::Reason::INTERNAL_ERROR);
        assert_eq!(reached_before_answer(&internal), Reached::Answered);
    }

    #[test]
    fn grpc_timeouts() {
        assert_eq!(grpc_timeout(Duration::from_millis(250)), "250m");
        assert_eq!(grpc_timeout(Duration::from_micros(10)), "1m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
    }

    /// Calls through a pool to an h2 server in the same executor: every call carries the gRPC
    /// request head for its deadline, whether the pool's last head is sent again (same whole
    /// milliseconds) or a new one is built (another timeout, then back).
    #[test]
    fn calls_carry_the_grpc_request_head_for_their_deadline() {
        use crate::io::TokioIo;
        use crate::upstream::pool::InstancePool;
        use std::time::Instant;

        let deadlines = [
            (Duration::from_millis(250), "250m"),
            (Duration::from_micros(250_400), "250m"),
            (Duration::from_secs(200_000), "200000S"),
            (Duration::from_micros(10), "1m"),
            (Duration::from_millis(250), "250m"),
        ];
        crate::upstream::pool::tests::with_backend(move |listener, addr| async move {
            let server = glommio::spawn_local(async move {
                let stream = listener.accept().await.unwrap();
                let mut conn = h2::server::handshake(TokioIo::new(stream)).await.unwrap();
                let mut heads = Vec::new();
                for _ in 0..deadlines.len() {
                    let (request, mut respond) = conn.accept().await.unwrap().unwrap();
                    heads.push(request.into_parts().0);
                    let answer = http::Response::builder()
                        .header(CONTENT_TYPE, "application/grpc")
                        .header(GRPC_STATUS, "12")
                        .body(())
                        .unwrap();
                    respond.send_response(answer, true).unwrap();
                }
                // Writes the last answer; ends when the client closes the connection.
                let _ = conn.accept().await;
                heads
            });
            let pool = InstancePool::new(
                crate::upstream::pool::tests::at(addr),
                crate::upstream::down_marks::MarkSlot::detached(),
            );
            let connect = Duration::from_secs(5);
            let mut lease = pool.checkout(connect, Instant::now()).await.unwrap();
            for (deadline, _) in deadlines {
                let failure = unary(
                    &mut lease,
                    RequestMessage::from_static(b"\0\0\0\0\0"),
                    deadline,
                    64,
                    None,
                )
                .await
                .expect_err("the server answers UNIMPLEMENTED");
                assert_eq!(failure.error.kind, ErrorKind::Grpc(GrpcCode::Unimplemented));
            }
            drop((lease, pool));
            let heads = server.await;
            assert_eq!(heads.len(), deadlines.len());
            for (head, (deadline, timeout)) in heads.iter().zip(deadlines) {
                assert_eq!(head.method, http::Method::POST);
                assert_eq!(head.uri.path(), crate::proto::SEND_PATH);
                assert_eq!(head.uri.authority().unwrap().as_str(), addr.to_string());
                assert_eq!(head.headers.len(), 3, "{deadline:?}");
                assert_eq!(head.headers[&GRPC_TIMEOUT], timeout, "{deadline:?}");
                assert_eq!(head.headers[CONTENT_TYPE], "application/grpc");
                assert_eq!(head.headers[TE], "trailers");
            }
        });
    }

    #[test]
    fn grpc_fields_are_the_first_values_of_their_names() {
        let mut map = HeaderMap::new();
        map.insert("x-other", HeaderValue::from_static("1"));
        map.append(&GRPC_STATUS, HeaderValue::from_static("5"));
        map.append(&GRPC_STATUS, HeaderValue::from_static("0"));
        map.append(&GRPC_MESSAGE, HeaderValue::from_static("gone"));
        let fields = GrpcFields::of(&map);
        assert_eq!(fields.status.unwrap(), map.get(&GRPC_STATUS).unwrap());
        assert_eq!(fields.message.unwrap(), "gone");
        assert!(fields.content_type.is_none());
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        let fields = GrpcFields::of(&map);
        assert_eq!(fields.content_type.unwrap(), "application/grpc");
        assert_eq!(fields.status.unwrap(), "5");
        assert!(fields.conflicting_status, "5 then 0");
    }

    #[test]
    fn a_status_block_has_one_grpc_status() {
        let outcome = |fields: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in fields {
                map.append(*name, HeaderValue::from_static(value));
            }
            GrpcFields::of(&map)
                .outcome()
                .map_err(|e| (e.kind.code(), e.message.into_owned()))
        };
        let protocol = |message: &str| Err(("UPSTREAM_PROTOCOL_ERROR", message.to_string()));
        assert_eq!(outcome(&[("grpc-status", "0")]), Ok(()));
        assert_eq!(
            outcome(&[("grpc-status", "5"), ("grpc-message", "gone")]),
            Err(("NOT_FOUND", "gone".to_string()))
        );
        assert_eq!(
            outcome(&[("x-t", "1")]),
            protocol("backend answer has no grpc-status")
        );
        // Repeated with different values, in either order: neither is the outcome.
        for repeated in [["0", "5"], ["5", "0"], ["5", "7"]] {
            assert_eq!(
                outcome(&[("grpc-status", repeated[0]), ("grpc-status", repeated[1])]),
                protocol("backend sent conflicting grpc-status values"),
                "{repeated:?}"
            );
        }
        // Repeated with one value, it is that value; the first message is the message.
        assert_eq!(
            outcome(&[("grpc-status", "0"), ("grpc-status", "0")]),
            Ok(())
        );
        assert_eq!(
            outcome(&[
                ("grpc-status", "5"),
                ("grpc-message", "first"),
                ("grpc-status", "5"),
                ("grpc-message", "second"),
            ]),
            Err(("NOT_FOUND", "first".to_string()))
        );
    }

    #[test]
    fn grpc_content_types() {
        for ok in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC",
            "application/grpc; charset=utf-8",
        ] {
            assert!(is_grpc_content_type(ok.as_bytes()), "{ok}");
        }
        for bad in ["text/html", "application/grpc-web", "application/grp", ""] {
            assert!(!is_grpc_content_type(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        let decode = |raw: &[u8]| percent_decode(raw, MAX_ERROR_MESSAGE);
        assert_eq!(decode(b"no%20such%20user"), "no such user");
        assert_eq!(decode(b"100%"), "100%");
        assert_eq!(decode(b"caf%C3%A9"), "café");
        assert_eq!(decode(b"%zz"), "%zz");
    }

    #[test]
    fn long_grpc_messages_are_cut_at_a_character_boundary() {
        // 4 bytes: whole; 5 bytes ("é" is two): cut after "ab", before the "é" that would not fit.
        assert_eq!(percent_decode(b"abcd", 4), "abcd");
        assert_eq!(percent_decode(b"ab%C3%A9%C3%A9", 4), "abé…");
        assert_eq!(percent_decode(b"abc%C3%A9", 4), "abc…");
        let long = "%E2%98%83".repeat(MAX_ERROR_MESSAGE); // a snowman: three bytes each
        let cut = percent_decode(long.as_bytes(), MAX_ERROR_MESSAGE);
        assert!(cut.ends_with('…'));
        assert_eq!(cut.len(), MAX_ERROR_MESSAGE / 3 * 3 + '…'.len_utf8());
        assert!(cut.trim_end_matches('…').chars().all(|c| c == '☃'));
    }

    #[test]
    fn grpc_statuses_map_to_errors() {
        let e = grpc_error(
            &HeaderValue::from_static("7"),
            Some(&HeaderValue::from_static("nope")),
        )
        .unwrap();
        assert_eq!(
            (e.kind.status(), e.kind.code(), &*e.message),
            (403, "PERMISSION_DENIED", "nope")
        );
        assert!(grpc_error(&HeaderValue::from_static("0"), None).is_none());
        assert_eq!(
            grpc_error(&HeaderValue::from_static("x"), None)
                .unwrap()
                .kind,
            ErrorKind::UpstreamProtocol
        );
    }
}
