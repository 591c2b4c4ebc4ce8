//! HTTP/2 with prior knowledge (h2c) on the client listener, served by the `h2` crate.
//!
//! Each stream runs in its own task on the shard, so one slow backend call does not hold up the
//! other streams of the connection. The connection is closed with GOAWAY when it has been idle for
//! the idle timeout or as soon as the shard starts draining (idle or not); its open streams then
//! finish, and the draining shard waits for that (up to the grace period) before it exits.
//!
//! A request is held to HTTP/1.1's limits, measured on what is forwarded as HTTP/1.1 measures its
//! head (`check_header_limits`), so the same request passes or fails over either protocol. One
//! that is refused, from its head or its body, is answered at once, whatever of its body is still
//! to come; the stream then reads and drops what follows for a short while ([`LINGER`], one
//! stream window) before it is reset with `NO_ERROR`, as RFC 9113 §8.1 has a server that
//! answered early ask the client to stop (`linger`).
//!
//! What a client controls is bounded:
//! - A header block left open (HEADERS without END_HEADERS) holds up every frame of the
//!   connection until its last CONTINUATION comes (RFC 9113 §6.10): it has `--header-timeout-ms`
//!   from when it is seen, as an HTTP/1.1 head has, and then the connection gets GOAWAY
//!   `PROTOCOL_ERROR` (no stream exists yet to answer 408 on). The `h2` crate has no timers; a
//!   vendored patch tells whether a block is open, and `next_stream` times it.
//! - An answer's body goes out as the client's flow-control window opens. The stream's task
//!   waits for the window (the stream stays open, so the connection is not idle), and a client
//!   that opens none for `--idle-timeout-ms` has the stream reset and its body dropped, as nginx's
//!   `send_timeout` does, instead of the body waiting in the connection for as long as it lives.
//! - The answers its streams hold, from their first bytes from the backend until they have gone
//!   out, are bounded by the connection's [`ANSWER_BUDGET`]: a client that reads nothing holds
//!   that much, and its further answers wait at their backends (`upstream::budget`). Answers the
//!   gateway builds whole (GraphQL, `/-/`) are built a few at a time
//!   ([`BUILT_AT_ONCE`](crate::upstream::budget::BUILT_AT_ONCE)) and take their share once built.
//! - After GOAWAY, a connection with nothing open is closed [`GOAWAY_GRACE`] later even if the
//!   client never answers the PING that ends a graceful shutdown (or sends nothing at all).
//! - A client that resets most of the streams it opens before they are answered, each within
//!   [`PREMATURE_RESET`] of its opening (the "rapid reset" of CVE-2023-44487: each one starts a
//!   backend call, which the reset cancels) loses the connection with GOAWAY `ENHANCE_YOUR_CALM`
//!   once [`RESETS_JUDGED_AFTER`] such resets are over half its streams (the `h2` crate only
//!   bounds resets of streams not yet accepted, to [`MAX_PENDING_ACCEPT_RESETS`] at once).

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use glommio::net::TcpStream;
use glommio::timer::Deadline;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};

use crate::error::GatewayError;
use crate::http::{Field, Request, Response};
use crate::io::{BodyCollector, TokioIo};
use crate::request_id::RequestId;
use crate::shard::{BodyHold, Shard};
use crate::upstream::budget::{AnswerBudget, AnswerHold, ANSWER_BUDGET};

/// Streams a client may have open at once on one connection (Envoy's default is 2^31; nginx uses 128).
const MAX_CONCURRENT_STREAMS: u32 = 128;
/// Streams a client may reset before the gateway has taken them up, at once, before the `h2`
/// crate ends the connection. The crate's default, 20, ended it when a page abandoned its
/// requests together, and every request still running on it. A reset stream no longer counts
/// against [`MAX_CONCURRENT_STREAMS`], so a client with two streams open can reset any number in
/// one burst; the rapid reset this guards against is judged by the gateway's own rule
/// ([`RESETS_JUDGED_AFTER`]), and this bound only keeps one read's worth of them from queueing
/// without limit (1,024 such streams are about 30 KiB of frames).
const MAX_PENDING_ACCEPT_RESETS: usize = 1024;
/// Least per-stream receive window: a 1 MiB body arrives without waiting for updates.
const MIN_STREAM_WINDOW: u32 = 1 << 20;
/// Most per-stream receive window: what a client may send on a stream ahead of the gateway's
/// reading, and of a refused body after its answer ([`linger`]); a body limit above it (or a
/// service's own limit above the gateway's, `--config`) only means its uploads wait for updates.
const MAX_STREAM_WINDOW: u32 = 16 << 20;
/// Least connection receive window: room for a few streams' bodies at once.
const MIN_CONNECTION_WINDOW: u32 = 8 << 20;
/// The header list size the `h2` crate enforces while decoding (RFC 9113's measure: name, value
/// and 32 bytes per field, pseudo-headers included), as a multiple of `--max-header-bytes`: it
/// bounds what HPACK decoding may allocate, and lists it lets through are held to the limit by
/// [`check_header_limits`], with the JSON 431 every other refusal has; only larger ones get the
/// crate's bare 431. RFC 9113's measure is 28 bytes more per field than HTTP/1.1's, 36 per cookie
/// crumb: a list within the limit meets the cap only with hundreds of crumbs (about 800 at the
/// default limits) or a limit below about 3 KB.
const H2_HEADER_LIST_CAP_FACTOR: usize = 2;
/// How long the rest of a refused request's body is read and dropped after its answer (as
/// HTTP/1.1's lingering close) before the stream is reset: time for the answer to reach a client
/// still sending (or waiting for `100 Continue`) and for it to stop.
const LINGER: Duration = Duration::from_secs(2);
/// Least an answer must go out by, within the send timeout, for the client to count as reading
/// it: one default-sized frame, which a client reading normally opens at once. A window opened a
/// byte every few seconds kept 128 answers of 4 MiB in memory on one connection for as long as
/// the client kept it up.
const MIN_SEND_PROGRESS: usize = 16 << 10;
/// How long a connection that sent GOAWAY and has nothing open waits for the client's last frames
/// (the PING that completes a graceful shutdown, streams already on their way) before it closes:
/// many round trips on any network a gateway serves.
const GOAWAY_GRACE: Duration = Duration::from_secs(1);
/// Client resets of unanswered streams a connection may make before they are judged; then, if
/// they are more than half of its streams, it is closed. Real clients cancel a few requests, not
/// most of them, and a hundred backend calls is a small price to find out.
const RESETS_JUDGED_AFTER: usize = 100;
/// A reset counts towards [`RESETS_JUDGED_AFTER`] only if it comes this soon after its stream
/// opened (Envoy's `premature_reset_min_stream_lifetime`): the attack opens and cancels at once,
/// while a client that cancels a slow request (a search typed further, a page left) does so
/// later, and must not lose its connection and its other requests for it.
const PREMATURE_RESET: Duration = Duration::from_secs(1);

/// The per-stream receive window: a whole body at `--max-body-bytes` (the next power of two up;
/// a connection's streams may be for any service, and all share the one SETTINGS), within
/// [`MIN_STREAM_WINDOW`] and [`MAX_STREAM_WINDOW`], so that an upload within the limit never
/// waits for a WINDOW_UPDATE. curl before 8.1 (7.88 in Debian 12, 7.81 in Ubuntu 22.04)
/// stalls for up to a second each time a stream's send window runs out and only then reads the
/// update: 32 parallel 4 MB uploads with curl took 6.4 s through one shard with a 1 MiB window,
/// 0.9 s with the 4 MiB one the default limit gets (h2load's, 0.6 s with either).
fn stream_window(max_body_bytes: usize) -> u32 {
    let whole = max_body_bytes
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX);
    u32::try_from(whole)
        .unwrap_or(u32::MAX)
        .clamp(MIN_STREAM_WINDOW, MAX_STREAM_WINDOW)
}

/// The connection receive window: two streams' windows, so that a second upload on a connection
/// does not wait for the first one's update, and at least [`MIN_CONNECTION_WINDOW`].
fn connection_window(stream_window: u32) -> u32 {
    stream_window.saturating_mul(2).max(MIN_CONNECTION_WINDOW)
}

/// Serves HTTP/2 on `stream`; `prefix` holds the bytes already read (the preface).
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, prefix: Bytes, remote: SocketAddr) {
    let config = &shard.config;
    let _ = stream.set_write_timeout(Some(config.idle_timeout));
    let window = stream_window(config.default_service.max_body_bytes);
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_header_list_size(
            u32::try_from(
                config
                    .max_header_bytes
                    .saturating_mul(H2_HEADER_LIST_CAP_FACTOR),
            )
            .unwrap_or(u32::MAX),
        )
        .initial_window_size(window)
        .initial_connection_window_size(connection_window(window));
    let handshake = builder.handshake::<_, Bytes>(TokioIo::with_replay(stream, prefix));
    let mut conn = match crate::timeout::within(config.header_timeout, handshake).await {
        Some(Ok(conn)) => conn,
        _ => return,
    };
    let _open = shard.h2_connection();
    let budget = AnswerBudget::new(ANSWER_BUDGET, shard.metrics.clone());
    let streams = Rc::new(OpenStreams::default());
    let mut shutting_down = false;
    // Kept across turns: one waiter slot for the connection's life.
    let mut drain = std::pin::pin!(shard.drain_started());
    // Kept across turns too: a header block left open is timed from when it was first seen.
    let mut open_block = None;
    loop {
        let turn = if shutting_down {
            // GOAWAY is out: let the open streams finish; `accept` ends when they have, or when
            // nothing has been open for the grace (a client that never acknowledges the PING).
            let accept = async { Turn::Stream(conn.accept().await) };
            if streams.open.get() == 0 {
                crate::timeout::within(GOAWAY_GRACE, accept)
                    .await
                    .unwrap_or(Turn::Stream(None))
            } else {
                let idle = async {
                    streams.all_closed().await;
                    Turn::Idle
                };
                futures_lite::future::or(accept, idle).await
            }
        } else {
            let accept = next_stream(&mut conn, &mut open_block, config.header_timeout);
            let drain = async {
                drain.as_mut().await;
                Turn::GoAway
            };
            let next = futures_lite::future::or(accept, drain);
            // While streams are open the connection is busy; once none is, it may idle out.
            if streams.open.get() == 0 {
                crate::timeout::within(config.idle_timeout, next)
                    .await
                    .unwrap_or(Turn::GoAway)
            } else {
                let idle = async {
                    streams.all_closed().await;
                    Turn::Idle
                };
                futures_lite::future::or(next, idle).await
            }
        };
        let (request, respond) = match turn {
            Turn::Idle => continue,
            Turn::GoAway => {
                conn.graceful_shutdown();
                shutting_down = true;
                continue;
            }
            Turn::HeaderTimeout => {
                tracing::debug!(%remote, "HTTP/2 header block left open; closing");
                conn.abrupt_shutdown(Reason::PROTOCOL_ERROR);
                shutting_down = true;
                continue;
            }
            Turn::Stream(Some(Ok(stream))) => stream,
            Turn::Stream(_) => break,
        };
        if streams.reset_too_often() && !shutting_down {
            tracing::warn!(%remote, "HTTP/2 client resets most of its streams; closing");
            conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
            shutting_down = true;
            continue;
        }
        streams.opened();
        let (shard, streams, hold) = (shard.clone(), streams.clone(), budget.hold());
        glommio::spawn_local(async move {
            serve_stream(&shard, request, respond, remote, &streams, &hold).await;
            streams.closed();
        })
        .detach();
    }
}

/// What ends one wait of a connection's loop.
#[allow(
    clippy::large_enum_variant,
    reason = "one turn's outcome, matched at once; boxing the stream would allocate per request"
)]
enum Turn {
    /// A new stream, the connection's end (`None`) or its failure.
    Stream(Accepted),
    /// Time to send GOAWAY: idle for the idle timeout, or the shard is draining.
    GoAway,
    /// A header block has been open for the header timeout (see [`next_stream`]).
    HeaderTimeout,
    /// The last open stream ended: the idle timer starts.
    Idle,
}

/// The connection's next stream ([`Turn::Stream`]), or [`Turn::HeaderTimeout`] once the client
/// has left a header block open (HEADERS without END_HEADERS, the CONTINUATION that ends it not
/// come) for `header_timeout`: no other frame may come meanwhile, so every stream of the
/// connection waits on it. `open_block` is that block's deadline, set when it is first seen open
/// (after the read that took its HEADERS frame) and cleared once it is closed; the caller keeps it
/// across calls, so that a block is timed once however many turns it spans.
async fn next_stream(
    conn: &mut h2::server::Connection<TokioIo<TcpStream>, Bytes>,
    open_block: &mut Option<Deadline>,
    header_timeout: Duration,
) -> Turn {
    std::future::poll_fn(|cx| {
        // Reads every frame received: the block's state is then up to date.
        if let Poll::Ready(accepted) = conn.poll_accept(cx) {
            return Poll::Ready(Turn::Stream(accepted));
        }
        if !conn.is_header_block_open() {
            *open_block = None;
            return Poll::Pending;
        }
        let deadline =
            open_block.get_or_insert_with(|| Deadline::at(Instant::now() + header_timeout));
        std::pin::Pin::new(deadline)
            .poll(cx)
            .map(|()| Turn::HeaderTimeout)
    })
    .await
}

/// The streams a connection is serving, and its task, waiting for the last one to end so that
/// its idle timer starts then (not only when the next stream or frame arrives).
#[derive(Default)]
struct OpenStreams {
    open: Cell<usize>,
    waiting: Cell<Option<Waker>>,
    /// Streams accepted over the connection's life.
    accepted: Cell<usize>,
    /// Of those, the ones the client reset before their answer, soon after opening them.
    reset_early: Cell<usize>,
}

impl OpenStreams {
    fn opened(&self) {
        self.open.set(self.open.get() + 1);
        self.accepted.set(self.accepted.get() + 1);
    }

    fn reset_by_client(&self) {
        self.reset_early.set(self.reset_early.get() + 1);
    }

    /// Whether the client resets so many of its streams before their answers that it is
    /// treated as an attack (see the module docs).
    fn reset_too_often(&self) -> bool {
        let resets = self.reset_early.get();
        resets >= RESETS_JUDGED_AFTER && resets * 2 > self.accepted.get()
    }

    fn closed(&self) {
        self.open.set(self.open.get() - 1);
        if self.open.get() == 0 {
            if let Some(waker) = self.waiting.take() {
                waker.wake();
            }
        }
    }

    /// Resolves once no stream is open.
    fn all_closed(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.open.get() == 0 {
                Poll::Ready(())
            } else {
                self.waiting.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
    }
}

/// What `accept` yields: a new stream, the connection's end (`None`) or its failure.
type Accepted = Option<Result<(http::Request<RecvStream>, SendResponse<Bytes>), h2::Error>>;

async fn serve_stream(
    shard: &Rc<Shard>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    remote: SocketAddr,
    streams: &OpenStreams,
    hold: &AnswerHold,
) {
    let head_request = request.method() == http::Method::HEAD;
    let send_timeout = shard.config.idle_timeout;
    let opened = Instant::now();
    let service = crate::rest::service_of(request.uri().path()).map(str::to_string);
    let response = match read_request(shard, request, &mut respond, remote).await {
        // The body's share of the shard's request-body budget goes with the request.
        Ok((request, _body_hold)) => {
            let answer = async { Some(answer(shard, &request, hold, head_request).await) };
            // A client that resets the stream (or the connection) has gone away: dropping the
            // call cancels it at the backend too.
            let reset = async {
                let _ = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
                None
            };
            match futures_lite::future::or(answer, reset).await {
                Some(response) => response,
                None => {
                    shard.metrics.client_aborts.inc();
                    if opened.elapsed() < PREMATURE_RESET {
                        streams.reset_by_client();
                    }
                    return;
                }
            }
        }
        Err(Refused {
            error,
            unread,
            request_id,
        }) => {
            shard.metrics.count_response(error.kind.status());
            let answer = error_answer(shard, error, service.as_deref(), request_id);
            let _ = send_response(&mut respond, answer, head_request, send_timeout).await;
            let mut unread = unread;
            linger(
                &mut unread,
                stream_window(shard.config.default_service.max_body_bytes),
            )
            .await;
            return;
        }
    };
    let sent = send_response(&mut respond, response, head_request, send_timeout).await;
    if let Err(SendFailure::Head(e, request_id)) = sent {
        // Header text is checked before it gets here (`upstream::into_response`); whatever
        // still does not fit an HTTP/2 head is the backend's answer failing, told as such.
        let error = GatewayError::upstream_protocol(format!(
            "the backend's answer cannot be sent over HTTP/2: {e}"
        ));
        let answer = error_answer(shard, error, service.as_deref(), request_id);
        let _ = send_response(&mut respond, answer, head_request, send_timeout).await;
    }
}

/// Answers `request` within the connection's answer budget (`upstream::budget`): a REST answer
/// takes its share as its backend's answer arrives; an answer the gateway builds whole (GraphQL,
/// `/-/`) takes one of the connection's places to be built in once its first part is in memory
/// (a `/-/` answer before it is made, a GraphQL answer as its first call's answer arrives), and
/// its size of the budget once built. A HEAD answer's body is dropped as it is sent: it takes
/// nothing of the budget.
async fn answer(
    shard: &Rc<Shard>,
    request: &Request,
    hold: &AnswerHold,
    head_request: bool,
) -> Response {
    if !crate::router::builds_whole(&request.path) {
        let hold = (!head_request).then_some(hold);
        return crate::router::handle(shard, request, hold).await;
    }
    if crate::admin::is_admin_path(&request.path) {
        hold.take_place().await;
    }
    let response = crate::router::handle(shard, request, Some(hold)).await;
    // A GraphQL answer that called no backend (or whose calls failed) is made here.
    hold.take_place().await;
    if !head_request {
        hold.take(response.body.len()).await;
    }
    hold.give_place_back();
    response
}

/// The answer to `error` ([`GatewayError::answer`]), under the client's request id or a new one.
/// Not counted here: a refused request's answer is counted where it is made, and one replacing an
/// answer that could not be sent is not counted again (the router counted the one it replaces).
fn error_answer(
    shard: &Shard,
    error: GatewayError,
    service: Option<&str>,
    request_id: Option<RequestId>,
) -> Response {
    error.answer(
        service,
        request_id.unwrap_or_else(|| shard.new_request_id()),
    )
}

/// A request refused while it was read, with the client's own request id if it sent a usable one.
/// It is answered at once, whatever of its body is still to come.
struct Refused {
    error: GatewayError,
    /// What is left of its body: read and dropped after the answer, for a while ([`linger`]).
    unread: RecvStream,
    request_id: Option<RequestId>,
}

async fn read_request(
    shard: &Rc<Shard>,
    request: http::Request<RecvStream>,
    respond: &mut SendResponse<Bytes>,
    remote: SocketAddr,
) -> Result<(Request, Option<BodyHold>), Refused> {
    let (parts, mut body) = request.into_parts();
    match read_parts(shard, &parts, &mut body, respond, remote).await {
        Ok(request) => Ok(request),
        Err(error) => Err(Refused {
            error,
            unread: body,
            request_id: parts
                .headers
                .get("x-request-id")
                .and_then(|v| RequestId::from_client(&Bytes::copy_from_slice(v.as_bytes()))),
        }),
    }
}

/// The request of `parts` and `body`, checked against the limits, and its body's share of the
/// shard's request-body budget (none without a body). A client that expects `100 Continue` gets
/// it only if the router would take the request. A refusal returns at once, what is left of the
/// body unread (RFC 9110 §10.1.1 for a client waiting for `100 Continue`; RFC 9113 §8.1 lets a
/// server answer before the whole request has come).
async fn read_parts(
    shard: &Rc<Shard>,
    parts: &http::request::Parts,
    body: &mut RecvStream,
    respond: &mut SendResponse<Bytes>,
    remote: SocketAddr,
) -> Result<(Request, Option<BodyHold>), GatewayError> {
    let deadline = Instant::now() + shard.config.body_timeout;
    crate::http::check_method(&parts.method)?;
    // RFC 9110 §8.6 lets a recipient take repeats of one length for that length (the h2 crate
    // does; differing ones reset the stream): refused as HTTP/1.1 refuses them (smuggling-shaped
    // framing; nginx too), rather than forwarded twice.
    if parts
        .headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(GatewayError::bad_request("repeated Content-Length"));
    }
    let mut headers = Vec::with_capacity(parts.headers.len() + 1);
    // HTTP/1.1 backends and the REST contract both expect a Host; HTTP/2 carries it as :authority,
    // which stands over a `host` header that differs (RFC 9113 §8.3.1; userinfo dropped).
    let authority = parts.uri.authority().map(|a| {
        a.as_str()
            .rsplit_once('@')
            .map_or(a.as_str(), |(_, host)| host)
    });
    match authority {
        Some(authority) => {
            // The http crate's URI parser takes `h:80x` or `[zz]` for an authority: checked as
            // HTTP/1.1 checks its Host.
            crate::http::check_host(authority.as_bytes())?;
            headers.push(Field::new(
                Bytes::from_static(b"host"),
                Bytes::copy_from_slice(authority.as_bytes()),
            ));
        }
        // RFC 9113 §8.3.1: an http request names its authority one way or the other; nginx
        // refuses one that does not (as HTTP/1.1 refuses a missing or repeated Host).
        None if parts.headers.get_all(http::header::HOST).iter().count() != 1 => {
            return Err(GatewayError::bad_request(
                "HTTP/2 requests need :authority or exactly one host header",
            ))
        }
        // The host header stands for the authority: checked as HTTP/1.1 checks it.
        None => {
            if let Some(host) = parts.headers.get(http::header::HOST) {
                crate::http::check_host(host.as_bytes())?;
            }
        }
    }
    // Where the first `cookie` field went: HTTP/2 may split a cookie header into crumbs, which
    // are joined again before leaving HTTP/2 (RFC 9113 §8.2.3), so a backend sees one header.
    let mut cookie: Option<usize> = None;
    for (name, value) in &parts.headers {
        if authority.is_some() && name == http::header::HOST {
            continue;
        }
        // Surrounding spaces and tabs are not part of a value (RFC 9110 §5.5); HTTP/2 calls a
        // value with them malformed (RFC 9113 §8.2.1). They are dropped, as HTTP/1.1's parser
        // drops them, so a backend sees the same value over either protocol.
        let value = value.as_bytes().trim_ascii();
        if !crate::utf8::is_text(value) {
            return Err(GatewayError::bad_request(format!(
                "header `{name}` has a value that is not UTF-8"
            )));
        }
        if name == http::header::COOKIE {
            if let Some(first) = cookie {
                let joined = &mut headers[first].value;
                let mut crumbs = BytesMut::with_capacity(joined.len() + 2 + value.len());
                crumbs.extend_from_slice(joined);
                crumbs.extend_from_slice(b"; ");
                crumbs.extend_from_slice(value);
                *joined = crumbs.freeze();
                continue;
            }
            cookie = Some(headers.len());
        }
        headers.push(Field::new(
            Bytes::copy_from_slice(name.as_str().as_bytes()),
            Bytes::copy_from_slice(value),
        ));
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .ok_or_else(|| GatewayError::bad_request("missing :path"))?;
    if !path_and_query.as_str().starts_with('/') {
        return Err(GatewayError::bad_request(
            "request target must be a path starting with `/`",
        ));
    }
    check_header_limits(
        &parts.method,
        path_and_query.as_str(),
        &headers,
        &shard.config,
    )?;
    let target = Bytes::copy_from_slice(path_and_query.as_str().as_bytes());
    let (path, query) = Request::split_target(target);

    let max_body = shard.max_body_bytes(&path);
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(GatewayError::body_too_large());
    }
    // The body's share of the shard's budget for request bodies: a declared length whole before
    // any of it is read, the rest as it arrives.
    let body_hold = if body.is_end_stream() {
        None
    } else {
        shard.hold_body(&path, declared.map_or(0, |n| n as usize))?
    };
    // A client that expects `100 Continue` sends no body until it is invited to.
    let expects_continue = !body.is_end_stream()
        && parts
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        let head = crate::http::RequestHead {
            method: &parts.method,
            path: &path,
            headers: &headers,
            remote,
        };
        // Routed again once the body is in (the registry or the load may have changed); the
        // route, and the in-flight slot it holds, go now.
        drop(crate::router::route(shard, &head)?);
        let interim = http::Response::builder()
            .status(http::StatusCode::CONTINUE)
            .body(())
            .expect("a static interim response");
        let _ = respond.send_informational(interim);
    }
    let mut collected = BodyCollector::default();
    // Within the limit and held against the shard's body memory: joined in one allocation.
    if let (Some(len), Some(_)) = (declared, &body_hold) {
        collected.expect(len as usize);
    }
    loop {
        let chunk = match crate::timeout::until(deadline, body.data()).await {
            None => return Err(GatewayError::body_timed_out()),
            Some(None) => break,
            Some(Some(Err(e))) => {
                return Err(GatewayError::bad_request(format!("stream error: {e}")))
            }
            Some(Some(Ok(chunk))) => chunk,
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        if collected.len() + chunk.len() > max_body {
            return Err(GatewayError::body_too_large());
        }
        if let Some(hold) = &body_hold {
            hold.grow_to(collected.len() + chunk.len())?;
        }
        collected.push(chunk);
    }
    let body = collected.into_bytes();
    let request = Request {
        method: parts.method.clone(),
        path,
        query,
        headers,
        body,
        remote,
    };
    Ok((request, body_hold))
}

/// The header limits HTTP/1.1 requests have (`--max-headers`, `--max-header-bytes`), applied to
/// the request's `headers` as they are forwarded (`:authority` as the `host` it becomes, cookie
/// crumbs joined into one `cookie`, values trimmed) and measured as the HTTP/1.1 head that would
/// carry them, as HTTP/1.1 measures the head it reads: the request line (`METHOD target
/// HTTP/1.1`, which stands for the other pseudo-headers), a `name: value` line per header and the
/// blank line that ends the head. A request within the limits over one protocol is within them
/// over the other. (RFC 9113's measure, 32 bytes more per field, counted 100 crumbs of one
/// cookie as 100 headers and 4 KiB where HTTP/1.1 counts one line of 700 bytes.)
fn check_header_limits(
    method: &http::Method,
    target: &str,
    headers: &[Field],
    config: &crate::config::Config,
) -> Result<(), GatewayError> {
    if headers.len() > config.max_headers {
        return Err(GatewayError::headers_too_large("header count"));
    }
    let size = method.as_str().len()
        + target.len()
        + "  HTTP/1.1\r\n".len()
        + headers
            .iter()
            .map(|f| f.name.len() + ": ".len() + f.value.len() + "\r\n".len())
            .sum::<usize>()
        + "\r\n".len();
    if size > config.max_header_bytes {
        return Err(GatewayError::headers_too_large("header section"));
    }
    Ok(())
}

/// Reads and drops what the client still sends of a refused request's body after its answer, for
/// [`LINGER`] and one stream `window` at most: what a client may have on its way when the answer
/// leaves. A client still sending after that is not reading its answer (a fast 6 MB upload over
/// a 4 MB limit was read to its end, with no bound on a larger one). The stream is then dropped,
/// and the `h2` crate resets it with `NO_ERROR` if the client is still sending: RFC 9113 §8.1's
/// way of asking a client to stop a request whose complete answer it has. Resetting it right after the answer made curl 7.88
/// report no answer at all for a request refused before `100 Continue`; waiting for the rest of the
/// body before answering made a client that sends it slowly wait for its answer as long.
async fn linger(body: &mut RecvStream, window: u32) {
    let deadline = Instant::now() + LINGER;
    let mut discarded = 0;
    while discarded < window as usize {
        match crate::timeout::until(deadline, body.data()).await {
            Some(Some(Ok(chunk))) => {
                discarded += chunk.len();
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            _ => return,
        }
    }
}

/// Sends `response`, its body as the client's window allows; a client whose window does not move
/// it on by [`MIN_SEND_PROGRESS`] within `send_timeout` has the stream reset (the body is dropped
/// with it).
async fn send_response(
    respond: &mut SendResponse<Bytes>,
    response: Response,
    head_request: bool,
    send_timeout: Duration,
) -> Result<(), SendFailure> {
    let bodiless = head_request || response.body.is_empty() || response.bodiless_status();
    let mut head = http::Response::builder().status(response.status);
    let mut dated = false;
    for (name, value) in response.fields() {
        dated |= name == "date";
        head = head.header(name, value);
    }
    if !dated {
        let date = crate::http::date::current();
        head = head.header(
            http::header::DATE,
            http::HeaderValue::from_bytes(&date).expect("an IMF-fixdate is a header value"),
        );
    }
    if let Some(length) = response.content_length(head_request) {
        head = head.header(http::header::CONTENT_LENGTH, length);
    }
    let head = match head.body(()) {
        Ok(head) => head,
        Err(e) => return Err(SendFailure::Head(e, response.request_id)),
    };
    let mut stream = respond
        .send_response(head, bodiless)
        .map_err(|_| SendFailure::Stream)?;
    if bodiless {
        return Ok(());
    }
    let mut body = response.body;
    stream.reserve_capacity(body.len());
    // The send timeout runs from the last time the window moved the answer on by
    // MIN_SEND_PROGRESS: opening it a byte at a time does not keep the answer alive.
    let mut deadline = Instant::now() + send_timeout;
    let mut progress = 0;
    while !body.is_empty() {
        let window = std::future::poll_fn(|cx| stream.poll_capacity(cx));
        let granted = match crate::timeout::until(deadline, window).await {
            Some(Some(Ok(granted))) => granted,
            Some(_) => return Err(SendFailure::Stream),
            None => {
                stream.send_reset(Reason::CANCEL);
                return Err(SendFailure::Stream);
            }
        };
        if granted == 0 {
            continue;
        }
        let chunk = body.split_to(granted.min(body.len()));
        progress += chunk.len();
        if progress >= MIN_SEND_PROGRESS {
            deadline = Instant::now() + send_timeout;
            progress = 0;
        }
        stream
            .send_data(chunk, body.is_empty())
            .map_err(|_| SendFailure::Stream)?;
    }
    Ok(())
}

/// Why a response did not go out.
enum SendFailure {
    /// The response has a header HTTP/2 cannot carry (the `http` crate refused it): nothing was
    /// sent, so an error answer can be (under the response's request id).
    Head(http::Error, Option<RequestId>),
    /// The stream is gone (the client reset it, or the connection failed).
    Stream,
}
