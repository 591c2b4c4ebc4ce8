//! HTTP/1.1 connections: keep-alive, pipelining, Content-Length and chunked bodies,
//! `Expect: 100-continue` (invited only when the router would take the request: one it refuses is
//! answered at once), HEAD, and the timeouts and limits that keep a slow or hostile client from
//! holding a shard's memory or connections.
//!
//! Requests on one connection are served in order (as HTTP/1.1 requires of pipelined requests),
//! and each answer is written as soon as it is made, before the next pipelined request's call
//! starts: a slow call never holds the answers before it (nginx and HAProxy answer likewise).
//!
//! Memory: a connection's task holds only what it needs to read and write. Answering a request
//! (routing and the upstream call, most of the state) runs in a box the connection allocates at
//! its first request and reuses for every later one; the box and the read and write buffers are
//! freed when the client stays quiet, so an idle keep-alive connection costs its socket and a
//! small task.

pub mod chunked;
pub mod parse;
pub mod write;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;

use crate::error::GatewayError;
use crate::http::{Field, Request, RequestHead, Response};
use crate::shard::{BodyHold, Shard};
use parse::{Framing, Head, HeadLimits, Seen};

/// Largest read from the socket at a time (bodies, lingering close).
const READ_CHUNK: usize = 16 << 10;
/// Least read size while a head is expected (see [`head_read_size`]); also the read size while
/// waiting for a client to hang up, where any bytes are a pipelined request.
const HEAD_READ: usize = 4 << 10;
/// A connection's read buffer when it starts and after an idle spell: a typical head and a body
/// of a few KiB fit whole, so reading the body never has to move bytes the head still refers to
/// (with a 4 KiB buffer, every 4 KiB POST reallocated mid-body). Larger requests grow it.
pub const READ_BUFFER: usize = 8 << 10;
/// Longest lingering close after an error answer (nginx's `lingering_timeout` is 5 s).
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
/// Most input read and dropped during a lingering close.
const LINGER_BYTES: usize = 8 << 20;
/// Initial size of a connection's output buffer: a typical response head and small body.
const OUT_CAPACITY: usize = 4096;
/// How long an idle keep-alive connection keeps its buffers: far longer than the gap between a
/// busy client's requests, far shorter than the idle timeout a quiet client may sit through.
const BUFFER_HOLD: std::time::Duration = std::time::Duration::from_millis(200);

enum Read {
    Data,
    Closed,
    TimedOut,
}

/// What a connection keeps from one request to the next, so that the next allocates nothing.
/// `A` is the type of [`answer`]'s future (an `async fn`'s type cannot be named).
struct Buffers<A> {
    /// Bytes read and not yet parsed.
    read: BytesMut,
    /// Responses not yet written.
    out: Vec<u8>,
    /// The body of the last response in `out`, when it is written from where it lies
    /// ([`write::DIRECT_BODY`]); empty otherwise. Written, with `out`, before anything else.
    body: Bytes,
    /// The last request's header list, emptied, for the next head.
    fields: Vec<Field>,
    /// When the head whose first bytes are in `read` must be complete: set when they arrive
    /// without the rest of it (or by `serve_connection`, for bytes read while it told HTTP/2
    /// apart), cleared when the head is complete.
    head_deadline: Option<Instant>,
    /// Where a request is answered: the state of the upstream call is most of a connection's
    /// state, so it lives here, boxed once and reused for every request (see [`reuse`]), instead
    /// of sizing the connection's task for the whole time the client idles.
    answering: Option<Pin<Box<A>>>,
    /// Held from a request's first bytes until the connection waits idle again: a draining
    /// shard waits for the requests its clients are still sending.
    receiving: Option<crate::shard::Receiving>,
}

impl<A> Buffers<A> {
    /// Gives the memory back while the connection idles (see [`read_idle`]).
    fn free(&mut self) {
        self.read = BytesMut::new();
        self.out = Vec::new();
        self.body = Bytes::new();
        self.fields = Vec::new();
        self.answering = None;
    }
}

/// Puts `future` into `slot`'s box, allocating a box only when the slot has none: every request
/// on a connection after its first is answered in the same allocation.
fn reuse<F: Future>(slot: &mut Option<Pin<Box<F>>>, future: F) -> Pin<&mut F> {
    match slot {
        Some(boxed) => {
            boxed.set(future);
            boxed.as_mut()
        }
        None => slot.insert(Box::pin(future)).as_mut(),
    }
}

/// Answers one request. It owns what it uses (and hands the request back for its header list),
/// so its future can live in the connection's reused box.
async fn answer(shard: Rc<Shard>, request: Request) -> (Request, Response) {
    let response = crate::router::handle(&shard, &request, None).await;
    (request, response)
}

/// A request read off the connection, with what writing its response needs to know.
struct Incoming {
    request: Request,
    /// The body's share of the shard's request-body budget, given back once answered.
    body_hold: Option<BodyHold>,
    head_only: bool,
    keep_alive: bool,
    http10: bool,
}

/// Reads more bytes into `buf`, giving up at `deadline`.
async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut, deadline: Instant) -> Read {
    read_up_to(stream, buf, head_read_size(buf), deadline).await
}

/// How much to read while a head is expected: the room left in a connection's buffer (at least
/// [`HEAD_READ`]), so that a body of a few KiB sent with its head arrives in the same read; a
/// 4 KiB POST took two. The bytes go straight into the buffer's spare capacity, so a large read
/// costs nothing when little arrives.
pub fn head_read_size(buf: &BytesMut) -> usize {
    (buf.capacity().max(READ_BUFFER) - buf.len()).max(HEAD_READ)
}

/// Reads at most `want` more bytes into `buf`, giving up at `deadline`. Nothing is zeroed per
/// read, and `buf` grows only by what arrived ([`crate::io::read_append`]).
async fn read_up_to(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    want: usize,
    deadline: Instant,
) -> Read {
    let left = deadline.saturating_duration_since(Instant::now());
    read_within(stream, buf, want, left).await
}

/// Reads at most `want` more bytes into `buf`, giving up after `limit` without any (at once for a
/// zero `limit`). glommio reads the clock for the limit only if the read has to wait.
async fn read_within(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    want: usize,
    limit: Duration,
) -> Read {
    if limit.is_zero() || stream.set_read_timeout(Some(limit)).is_err() {
        return Read::TimedOut;
    }
    match crate::io::read_append(stream, buf, want).await {
        Ok(0) => Read::Closed,
        Ok(_) => Read::Data,
        Err(e) => {
            if e.kind() == std::io::ErrorKind::TimedOut {
                Read::TimedOut
            } else {
                Read::Closed
            }
        }
    }
}

/// Waits for the first bytes of the next request on a keep-alive connection. A client that sends
/// it soon finds the connection's buffers in place (no allocation on the hot path); one that stays
/// quiet for longer than [`BUFFER_HOLD`] has them freed while it idles, so ten thousand idle clients
/// cost their sockets and tasks, not 12 KiB of buffers and a call's state each. When it speaks
/// again, the buffers come back with its first bytes.
///
/// The waits are durations, not deadlines: a request's turn reads no clock for them (glommio reads
/// it only when a read has to wait), and the idle timeout counts from when the wait began.
async fn read_idle<A>(stream: &mut TcpStream, bufs: &mut Buffers<A>, idle: Duration) -> Read {
    let hold = BUFFER_HOLD.min(idle);
    let want = head_read_size(&bufs.read);
    match read_within(stream, &mut bufs.read, want, hold).await {
        Read::TimedOut if hold < idle => {}
        other => return other,
    }
    bufs.free();
    // The bytes land in the shard's read buffer and only what arrived is copied into the
    // emptied `bufs.read`, so the wait itself holds no buffer.
    let want = head_read_size(&bufs.read);
    let read = read_within(stream, &mut bufs.read, want, idle - hold).await;
    if let Read::Data = read {
        bufs.read
            .reserve(READ_BUFFER.saturating_sub(bufs.read.len()));
        bufs.out.reserve(OUT_CAPACITY);
    }
    read
}

/// Serves HTTP/1.x on `stream`; `buf` holds bytes already read, whose head must be complete by
/// `head_deadline` when that is known (the header timeout counts from the connection's first
/// bytes, however long telling HTTP/2 apart took). (The stream is borrowed from the
/// connection's task rather than moved in, so the task does not hold it twice; and not an `async
/// fn`, which would also hold each argument twice, see `serve_connection`.)
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn holds its arguments twice"
)]
pub fn serve<'a>(
    shard: &'a Rc<Shard>,
    stream: &'a mut TcpStream,
    buf: BytesMut,
    head_deadline: Option<Instant>,
    remote: SocketAddr,
) -> impl Future<Output = ()> + 'a {
    // Made before the block and captured, so the task holds the buffers once: made inside it,
    // they sat beside the arguments they were made of (`buf`, `head_deadline`), 32 bytes more
    // per connection.
    let receiving = (!buf.is_empty()).then(|| shard.receiving());
    let mut bufs = Buffers {
        read: buf,
        out: Vec::with_capacity(OUT_CAPACITY),
        body: Bytes::new(),
        fields: Vec::new(),
        head_deadline,
        answering: None,
        receiving,
    };
    async move {
        let config = &shard.config;
        let _ = stream.set_write_timeout(Some(config.idle_timeout));
        let limits = HeadLimits {
            max_header_bytes: config.max_header_bytes,
            max_headers: config.max_headers,
        };
        let mut refused = false;
        // Bytes handed over by `serve_connection` when the header timeout ran out while it told
        // HTTP/2 apart are a stalled preface's first bytes ("PRI * HTTP/2.0\r\n" parses as a
        // request line of version 2.0): 408, as a slow head gets, not the 400 their parse gives.
        let mut expired = bufs
            .head_deadline
            .is_some_and(|until| Instant::now() >= until);
        loop {
            // What is known of a request refused before routing, for its answer: its service,
            // the client's request id, whether it was a HEAD.
            let mut seen = Seen::default();
            let read = if std::mem::take(&mut expired) {
                Err(GatewayError::head_timed_out())
            } else {
                read_request(shard, stream, &mut bufs, limits, remote, &mut seen).await
            };
            let Incoming {
                request,
                body_hold,
                head_only,
                keep_alive,
                http10,
            } = match read {
                Ok(Some(incoming)) => incoming,
                Ok(None) => break,
                Err(e) => {
                    let request_id = seen
                        .request_id
                        .take()
                        .unwrap_or_else(|| shard.new_request_id());
                    let service = seen
                        .path
                        .as_deref()
                        .and_then(crate::utf8::text)
                        .and_then(crate::rest::service_of);
                    let response = e.answer(service, request_id);
                    shard.metrics.count_response(response.status);
                    write::encode(&mut bufs.out, &response, seen.head_only, true, false);
                    refused = true;
                    break;
                }
            };
            // The request and its response live in this block only: held across the write
            // below, they made every connection's task 320 bytes larger, idle ones included.
            let close = {
                let answered = {
                    let Buffers {
                        read,
                        answering,
                        head_deadline,
                        ..
                    } = &mut bufs;
                    // The answer is polled in its box, the hang-up watch beside it (a combinator
                    // would move the answer's future through its own state first).
                    let mut answering = reuse(answering, answer(shard.clone(), request));
                    let mut hang_up =
                        std::pin::pin!(hung_up(stream, read, limits.max_header_bytes, || {
                            head_deadline.get_or_insert_with(|| {
                                Instant::now() + shard.config.header_timeout
                            });
                        }));
                    std::future::poll_fn(|cx| match answering.as_mut().poll(cx) {
                        Poll::Ready(answered) => Poll::Ready(Some(answered)),
                        Poll::Pending => hang_up.as_mut().poll(cx).map(|()| None),
                    })
                    .await
                };
                // The body went with the answer's future: its share of the budget goes too.
                drop(body_hold);
                let Some(answered) = answered else {
                    // The client went away: dropping the call now cancels it at the backend (h2
                    // resets its stream), as nginx and Envoy do, instead of holding an in-flight
                    // slot until the backend answers.
                    drop(bufs.answering.take());
                    shard.metrics.client_aborts.inc();
                    return;
                };
                respond(shard, &mut bufs, answered, head_only, keep_alive, http10)
            };
            if close {
                break;
            }
            // Written now, not queued behind the next pipelined request: its call may be slow.
            // (Answers used to be queued until the input ran dry, which held a pipelined answer
            // for as long as every call after it took.)
            if write_out(stream, &mut bufs.out, &mut bufs.body)
                .await
                .is_err()
            {
                return;
            }
        }
        if !bufs.out.is_empty() {
            let _ = write_out(stream, &mut bufs.out, &mut bufs.body).await;
        }
        if refused {
            linger(stream).await;
        }
        let _ = stream.close().await;
    }
}

/// Encodes `response` to `request` into the connection's output; the request's header list goes
/// back to the connection for the next request. Returns whether the connection closes after it.
fn respond<A>(
    shard: &Shard,
    bufs: &mut Buffers<A>,
    (request, response): (Request, Response),
    head_only: bool,
    keep_alive: bool,
    http10: bool,
) -> bool {
    let close = response.close || !keep_alive || shard.is_draining();
    if write::encode_head(&mut bufs.out, &response, head_only, close, http10) {
        if response.body.len() >= write::DIRECT_BODY {
            bufs.body = response.body;
        } else {
            bufs.out.extend_from_slice(&response.body);
        }
    }
    bufs.fields = request.headers;
    bufs.fields.clear();
    close
}

/// Resolves when the client closes the connection (or it fails) while its request is answered.
/// Bytes that arrive meanwhile, a pipelined request, are kept in `buf` (`arrived` is called for
/// them: the next head's time counts from its first byte); past `limit` of them it stops reading
/// and never resolves. An end of input counts as going away even if it is only the client's half
/// of the connection, as nginx counts it (a client that half-closes and still waits for the
/// answer is rare; one that hung up is not).
async fn hung_up(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    limit: usize,
    mut arrived: impl FnMut(),
) {
    // The wait for the answer has no read deadline of its own (the call has its deadline).
    let _ = stream.set_read_timeout(None);
    while buf.len() < limit {
        match crate::io::read_append(stream, buf, HEAD_READ).await {
            Ok(0) | Err(_) => return,
            Ok(_) => arrived(),
        }
    }
    std::future::pending().await
}

/// Lingering close (as nginx does): after an error answer the client may still be sending the
/// request we refused; closing with unread input makes the kernel send a reset, which can destroy
/// the answer before the client reads it. So: stop writing, then read and drop input until the
/// client closes, bounded in bytes and time.
async fn linger(stream: &mut TcpStream) {
    if stream.shutdown(std::net::Shutdown::Write).await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut sink = BytesMut::new();
    let mut drained = 0;
    while drained < LINGER_BYTES {
        sink.clear();
        match read_up_to(stream, &mut sink, READ_CHUNK, deadline).await {
            Read::Data => drained += sink.len(),
            Read::Closed | Read::TimedOut => return,
        }
    }
}

/// Reads one request: its head and its whole body. `Ok(None)`: the client closed or idled out.
///
/// An idle keep-alive connection waits in here, so its state is part of every idle connection's:
/// not an `async fn`, which would hold each argument twice (see `serve_connection`).
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn holds its arguments twice"
)]
fn read_request<'a, A: 'a>(
    shard: &'a Rc<Shard>,
    stream: &'a mut TcpStream,
    bufs: &'a mut Buffers<A>,
    limits: HeadLimits,
    remote: SocketAddr,
    seen: &'a mut Seen,
) -> impl Future<Output = Result<Option<Incoming>, GatewayError>> + 'a {
    async move {
        let config = &shard.config;
        let Some(head) = read_head(shard, stream, bufs, limits, seen).await? else {
            return Ok(None);
        };
        let Buffers {
            read: buf,
            out,
            head_deadline,
            ..
        } = bufs;
        let max_body = shard.max_body_bytes(&head.path);
        if let Framing::Length(n) = head.framing {
            if n > max_body as u64 {
                *seen = Seen::of(&head);
                return Err(GatewayError::body_too_large());
            }
        }
        // The interim answer is written by `read_body`, so the head is held across one wait only
        // (held across two, it had a fixed place in this state: 160 bytes more while idle).
        let continue_first =
            head.expect_continue && head.framing != Framing::None && buf.is_empty();
        // A request the router will refuse whatever its body (an unknown service, a method or
        // registry write an endpoint refuses, the in-flight limit) is answered now, without
        // `100 Continue`: the point of the expectation is that the client need not upload a
        // body that will be refused (RFC 9110 §10.1.1; nginx answers so). As after any refusal
        // while a request is read, the connection then closes after a lingering close, since
        // the body may follow or not. A request that will not wait for the interim answer
        // (its body came along) is routed once, after it is read, as usual.
        if continue_first {
            let request_head = RequestHead {
                method: &head.method,
                path: &head.path,
                headers: &head.headers,
                remote,
            };
            if let Err(refused) = crate::router::route(shard, &request_head) {
                *seen = Seen::of(&head);
                return Err(refused);
            }
        }
        // The body's share of the shard's budget for request bodies: a declared length all at
        // once, before any of it is read; a chunked body's as it arrives (`read_body`).
        let declared = match head.framing {
            Framing::None => None,
            Framing::Length(n) => Some(n as usize),
            Framing::Chunked => Some(0),
        };
        let body_hold = match declared.map(|n| shard.hold_body(&head.path, n)) {
            None => None,
            Some(Ok(hold)) => hold,
            Some(Err(refused)) => {
                *seen = Seen::of(&head);
                return Err(refused);
            }
        };
        let body = match body_at_hand(buf, head.framing) {
            Some(body) => body,
            // Boxed: its state beside the head was this future's largest, and so every idle
            // connection's task size (see `body_at_hand`).
            None => {
                let body = Box::pin(read_body(
                    stream,
                    buf,
                    continue_first.then_some(out),
                    body_hold.as_ref(),
                    head.framing,
                    max_body,
                    config,
                ))
                .await;
                body.inspect_err(|_| *seen = Seen::of(&head))?
            }
        };
        // Bytes left after the body are the next, pipelined request's: its head's time counts
        // from now, when they came, not from when this request has been answered.
        if !buf.is_empty() {
            *head_deadline = Some(Instant::now() + config.header_timeout);
        }
        let Head {
            method,
            path,
            query,
            headers,
            keep_alive,
            http10,
            ..
        } = head;
        Ok(Some(Incoming {
            body_hold,
            head_only: method == http::Method::HEAD,
            keep_alive,
            http10,
            request: Request {
                method,
                path,
                query,
                headers,
                body,
                remote,
            },
        }))
    }
}

/// Writes the queued responses, `out` and the last one's directly written `body`, and empties
/// both.
async fn write_out(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    body: &mut Bytes,
) -> std::io::Result<()> {
    let written = if body.is_empty() {
        stream.write_all(out).await
    } else {
        crate::io::write_all_two(stream, out, body).await
    };
    out.clear();
    *body = Bytes::new();
    written
}

/// Reads until a whole head is buffered. `Ok(None)` when the client closed or idled out between requests.
async fn read_head<A>(
    shard: &Rc<Shard>,
    stream: &mut TcpStream,
    bufs: &mut Buffers<A>,
    limits: HeadLimits,
    seen: &mut Seen,
) -> Result<Option<Head>, GatewayError> {
    let config = &shard.config;
    // The header deadline runs from the first bytes of the head; it is set only when those bytes
    // did not hold the whole head (a head that arrives in one read costs no clock read for it).
    loop {
        if !bufs.read.is_empty() {
            // A head is judged by its bytes however late it is looked at: one that came whole
            // behind a slow answer (pipelined) and is malformed is a 400, not a 408.
            if let Some(head) =
                parse::parse_head_into(&mut bufs.read, limits, &mut bufs.fields, seen)?
            {
                bufs.head_deadline = None;
                return Ok(Some(head));
            }
            if bufs.head_deadline.is_none() {
                bufs.head_deadline = Some(Instant::now() + config.header_timeout);
            }
        }
        let read = match bufs.head_deadline {
            Some(until) => read_more(stream, &mut bufs.read, until).await,
            // Between requests a connection closes once the drain is over (see `crate::drain`):
            // left open, it would get no answer until the process exited (a pooled client,
            // HAProxy, would lose the request it sent on it).
            None if shard.is_closing() => return Ok(None),
            None => {
                bufs.receiving = None;
                let closing = async {
                    shard.drain_closing().await;
                    Read::Closed
                };
                let read =
                    futures_lite::future::or(read_idle(stream, bufs, config.idle_timeout), closing)
                        .await;
                if let Read::Data = read {
                    bufs.receiving = Some(shard.receiving());
                }
                read
            }
        };
        match read {
            Read::Data => {}
            Read::Closed => return Ok(None),
            Read::TimedOut if bufs.read.is_empty() => return Ok(None),
            Read::TimedOut => return Err(GatewayError::head_timed_out()),
        }
    }
}

/// The body when nothing has to be waited for: none, or one whose `Content-Length` bytes came with
/// the head (a typical POST of a few KiB: see [`head_read_size`]). Otherwise `None`, and the body
/// is read by [`read_body`] in a box of its own, allocated for that request only: inline, its state
/// and the head beside it were the largest of `read_request`'s, and an idle connection's task is
/// as large as the largest state (1,104 bytes, a 1,280-byte allocator bin, before this).
fn body_at_hand(buf: &mut BytesMut, framing: Framing) -> Option<Bytes> {
    match framing {
        Framing::None => Some(Bytes::new()),
        Framing::Length(n) if buf.len() as u64 >= n => Some(split_body(buf, n as usize)),
        Framing::Length(_) | Framing::Chunked => None,
    }
}

/// Splits a body of `n` bytes off the front of `buf`. A body larger than the connection's usual
/// buffer made that buffer grow to hold it, and the two would go on sharing one allocation: the
/// connection, which keeps its buffer while busy, would hold the body's size of memory long after
/// the body was sent and dropped (50 connections that had each sent a 4 MB POST held 156 MB of
/// RSS while busy). Then `buf` is given storage of its own, the usual size, with what followed the body (a
/// pipelined request, usually nothing) copied into it.
fn split_body(buf: &mut BytesMut, n: usize) -> Bytes {
    let body = buf.split_to(n).freeze();
    if n > READ_BUFFER {
        let mut own = BytesMut::with_capacity(READ_BUFFER.max(buf.len()));
        own.extend_from_slice(buf);
        *buf = own;
    }
    body
}

/// Reads a body framed by `framing` that [`body_at_hand`] could not take (still on its way, or
/// chunked); with `continue_to`, after writing `100 Continue` there. The body has
/// `--body-timeout-ms` to arrive from the first time it is waited for (a chunked body already
/// buffered whole reads no clock), a chunked body's trailers `--max-header-bytes`. A chunked
/// body grows `hold` as it arrives (a declared length was held whole before).
/// `Framing::None` never comes here, but answers an empty body all the same.
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    continue_to: Option<&mut Vec<u8>>,
    hold: Option<&BodyHold>,
    framing: Framing,
    max_body: usize,
    config: &crate::config::Config,
) -> Result<Bytes, GatewayError> {
    let limit = config.body_timeout;
    if let Some(out) = continue_to {
        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        // A body written from where it lies went out with its head (`serve`): none waits here.
        write_out(stream, out, &mut Bytes::new())
            .await
            .map_err(|_| GatewayError::bad_request("client went away"))?;
    }
    // The time left for the body: all of `limit` at the first wait, which starts it, then what
    // remains of it. One clock reading per wait.
    let mut deadline = None::<Instant>;
    let mut left = || match deadline {
        None => {
            deadline = Some(Instant::now() + limit);
            limit
        }
        Some(at) => at.saturating_duration_since(Instant::now()),
    };
    let closed = || GatewayError::bad_request("connection closed before the body was complete");
    match framing {
        Framing::None => Ok(Bytes::new()),
        Framing::Length(n) => {
            let n = n as usize;
            while buf.len() < n {
                let want = (n - buf.len()).clamp(HEAD_READ, READ_CHUNK);
                match read_within(stream, buf, want, left()).await {
                    Read::Data => {}
                    Read::Closed => return Err(closed()),
                    Read::TimedOut => return Err(GatewayError::body_timed_out()),
                }
            }
            Ok(split_body(buf, n))
        }
        Framing::Chunked => {
            let mut state = chunked::State::Size;
            let mut body = BytesMut::new();
            loop {
                let done = chunked::decode(
                    buf,
                    &mut state,
                    &mut body,
                    max_body,
                    config.max_header_bytes,
                )?;
                if let Some(hold) = hold {
                    hold.grow_to(body.len())?;
                }
                if done {
                    return Ok(body.freeze());
                }
                match read_within(stream, buf, READ_CHUNK, left()).await {
                    Read::Data => {}
                    Read::Closed => return Err(closed()),
                    Read::TimedOut => return Err(GatewayError::body_timed_out()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_came_with_its_head_is_taken_without_a_wait() {
        // A body and the next pipelined request: the body is taken, the request stays.
        let mut buf = BytesMut::from(&b"helloGET / HTTP/1.1\r\n"[..]);
        let body = body_at_hand(&mut buf, Framing::Length(5)).expect("all five bytes are here");
        assert_eq!(
            (&body[..], &buf[..]),
            (&b"hello"[..], &b"GET / HTTP/1.1\r\n"[..])
        );
        assert_eq!(
            body_at_hand(&mut buf, Framing::None).as_deref(),
            Some(&b""[..])
        );
        // A body still on its way, or a chunked one, is read by `read_body`; nothing is taken.
        assert_eq!(body_at_hand(&mut buf, Framing::Length(100)), None);
        assert_eq!(body_at_hand(&mut buf, Framing::Chunked), None);
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn a_head_read_fills_the_buffer_so_a_small_body_comes_with_its_head() {
        let mut buf = BytesMut::with_capacity(READ_BUFFER);
        assert_eq!(head_read_size(&buf), READ_BUFFER);
        buf.extend_from_slice(&[b'x'; 100]);
        assert_eq!(head_read_size(&buf), READ_BUFFER - 100);
        // Freed while idle: the first read may fill what the buffer will be given back.
        assert_eq!(head_read_size(&BytesMut::new()), READ_BUFFER);
        // A full (grown) buffer still reads a head's worth.
        let mut full = BytesMut::with_capacity(3 * READ_BUFFER);
        full.resize(full.capacity(), b'x');
        assert_eq!(head_read_size(&full), HEAD_READ);
    }

    async fn double(x: u32) -> u32 {
        futures_lite::future::yield_now().await;
        x * 2
    }

    #[test]
    fn reuse_answers_every_request_in_one_box() {
        futures_lite::future::block_on(async {
            let mut slot = None;
            let first = reuse(&mut slot, double(1));
            let at = &*first as *const _;
            assert_eq!(first.await, 2);
            let second = reuse(&mut slot, double(20));
            assert_eq!(&*second as *const _, at, "the second request got a new box");
            assert_eq!(second.await, 40);
            // A box whose future was dropped unfinished is reused as well.
            let mut third = reuse(&mut slot, double(300));
            assert!(futures_lite::future::poll_once(third.as_mut())
                .await
                .is_none());
            assert_eq!(reuse(&mut slot, double(4000)).await, 8000);
        });
    }
}
