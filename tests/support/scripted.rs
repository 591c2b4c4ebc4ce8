//! A gRPC backend whose every answer the test decides: [`ScriptedBackend`].
//!
//! The echo (`switchyard-echo`) answers well; this backend misbehaves on purpose, at the HTTP/2
//! level the echo never reaches: a GOAWAY on the connection of a given call, a refused stream, an
//! HTTP status other than 200, a header block past the gateway's limits, a `grpc-status` where
//! none belongs, a stream limit of one, a call held open until the test lets it go, a GOAWAY that
//! says the calls in flight were not processed. It runs in the test process (h2's server on a
//! glommio executor of its own thread), so it tells the test what happened without a log to
//! parse: every call it received, on which connection, with which `:authority` and
//! `grpc-timeout`, and which connections have applied its SETTINGS. Waits are bounded, as everywhere in `support`.

use std::collections::HashSet;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use prost::Message;
use switchyard::io::TokioIo;
use switchyard::proto::{ForwardingReq, ForwardingResp, Header};
use switchyard::sample_backend::grpc_frame;

/// How long a test waits for the backend to see what it expects (as the readiness polls).
const WAIT_LIMIT: Duration = Duration::from_secs(10);
/// Memory glommio locks for this executor's io_uring buffers: small, so that the test process
/// stays within a default 8 MiB `ulimit -l` (as `h2_parallel`'s executor).
const IO_MEMORY: usize = 256 << 10;
/// Connection receive window of a backend that answers early: room for the unread rest of a
/// thousand calls' stream windows.
const EARLY_CONNECTION_WINDOW: u32 = 64 << 20;
/// Largest call message read: well over anything a test sends (the gateway's default body limit
/// is 4 MiB).
const MAX_MESSAGE: usize = 64 << 20;

/// One call as the backend received it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The connection it came on: 1 for the first one accepted, and so on.
    pub conn: usize,
    /// Its HTTP/2 stream id.
    pub stream: u32,
    /// Its `:authority`, as sent.
    pub authority: String,
    /// `ForwardingReq.path`.
    pub path: String,
    /// `ForwardingReq.request_id`.
    pub request_id: String,
    /// How many calls with this request id have arrived, this one included (a call sent again
    /// carries the same id).
    pub attempt: usize,
    /// The `grpc-timeout` header, as sent.
    pub grpc_timeout: Option<String>,
    /// The body's length.
    pub body_len: usize,
}

/// What the backend does with a call.
pub enum Answer {
    /// A gRPC answer with this message, then `grpc-status: 0`.
    Reply(ForwardingResp),
    /// As `Reply`, with these fields added to the HTTP/2 header block (gRPC metadata).
    ReplyWithMetadata(ForwardingResp, Vec<(String, String)>),
    /// One header block ending the stream: this `:status` and these fields (a trailers-only
    /// gRPC answer, or an answer that is not gRPC at all).
    Head(u16, Vec<(String, String)>),
    /// A gRPC answer whose every part the test gives: a header block with this `:status` and
    /// these fields beside `content-type: application/grpc`, the message, and these trailers in
    /// place of `grpc-status: 0` (repeats kept).
    Full {
        status: u16,
        head: Vec<(String, String)>,
        message: ForwardingResp,
        trailers: Vec<(String, String)>,
    },
    /// RST_STREAM(REFUSED_STREAM): the call was not processed.
    Refuse,
    /// A graceful GOAWAY (NO_ERROR) on the call's connection, the way gRPC servers drain one
    /// (last stream id 2^31-1, then, a round trip later, the last stream processed); then this
    /// answer, written after the GOAWAY.
    GoAwayThen(Box<Answer>),
    /// Held until the test calls [`ScriptedBackend::release`] with this tag, then this answer.
    Hold(String, Box<Answer>),
}

impl Answer {
    /// The usual answer: status 200, the call described as JSON (`conn`, `stream`, `path`,
    /// `attempt`, `grpc_timeout`, `body_len`).
    pub fn describe(call: &Call) -> Answer {
        let body = serde_json::json!({
            "conn": call.conn,
            "stream": call.stream,
            "path": call.path,
            "attempt": call.attempt,
            "grpc_timeout": call.grpc_timeout,
            "body_len": call.body_len,
        });
        Answer::Reply(json_reply(200, body.to_string()))
    }
}

/// A `ForwardingResp` with `status_code` and a JSON body.
pub fn json_reply(status_code: i32, body: String) -> ForwardingResp {
    ForwardingResp {
        status_code,
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body: body.into(),
    }
}

type Script = dyn Fn(&Call) -> Answer + Send + Sync;

/// What the backend's thread and the test share.
#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// Connections accepted so far.
    accepted: usize,
    /// Connections whose peer has acknowledged the backend's SETTINGS (a PING sent after them
    /// came back): the gateway knows their stream limit.
    settled: HashSet<usize>,
    /// Connections that have ended (the gateway closed them, or they broke).
    ended: HashSet<usize>,
    /// Tags the test has released.
    released: HashSet<String>,
    /// Held calls waiting for a release.
    holders: Vec<Waker>,
    /// Every call is answered after its first DATA frame, and its stream never reset.
    answer_early: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.state.lock().unwrap());
        self.changed.notify_all();
        out
    }
}

/// How a backend that serves nothing ends every connection, right after the handshake (its
/// SETTINGS sent, the client's preface read): a backend shutting down, overloaded or broken that
/// still accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndAtOnce {
    /// GOAWAY (NO_ERROR) with last stream id 0 (no call processed), then a close.
    GoAway,
    /// A close without a word.
    Close,
}

/// Options for a [`ScriptedBackend`].
#[derive(Default)]
pub struct ScriptedBuilder {
    max_concurrent_streams: Option<u32>,
    end_at_once: Option<EndAtOnce>,
    answer_early: bool,
    go_away_first_after: Option<usize>,
}

impl ScriptedBuilder {
    /// Advertises `SETTINGS_MAX_CONCURRENT_STREAMS` (h2's default: none).
    pub fn max_concurrent_streams(mut self, n: u32) -> Self {
        self.max_concurrent_streams = Some(n);
        self
    }

    /// Answers every call after the first DATA frame of its request, before reading the rest,
    /// and never resets its stream (RFC 9113 §8.1 asks for RST_STREAM(NO_ERROR) then; grpc-go
    /// and hyper send it, some servers do not). The script still decides the answer, but its
    /// call carries no path or request id (the request message was not read whole).
    pub fn answer_early(mut self) -> Self {
        self.answer_early = true;
        self
    }

    /// Ends every connection right after its handshake, as `how` says, serving no call.
    pub fn end_connections_at_once(mut self, how: EndAtOnce) -> Self {
        self.end_at_once = Some(how);
        self
    }

    /// Once `calls` calls have come whole on the first connection, sends GOAWAY (NO_ERROR) on it
    /// with last stream id 0: none of them was processed (RFC 9113 §6.8), and none is answered.
    /// The calls are recorded (connection 1, no `grpc-timeout`: their header blocks are not
    /// decoded); later connections are served as usual. h2's server cannot send that GOAWAY (it
    /// names the last stream it received), so that connection is served by hand.
    pub fn go_away_unprocessed_on_first_connection(mut self, calls: usize) -> Self {
        self.go_away_first_after = Some(calls);
        self
    }

    /// Starts the backend on 127.0.0.1 with `script` deciding every answer.
    pub fn start(
        self,
        script: impl Fn(&Call) -> Answer + Send + Sync + 'static,
    ) -> ScriptedBackend {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                answer_early: self.answer_early,
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound, bound_at) = std::sync::mpsc::sync_channel(1);
        let thread = {
            let shared = shared.clone();
            let script: Arc<Script> = Arc::new(script);
            let mcs = self.max_concurrent_streams;
            let end_at_once = self.end_at_once;
            let go_away_first_after = self.go_away_first_after;
            std::thread::spawn(move || {
                glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                    .io_memory(IO_MEMORY)
                    .make()
                    .expect("scripted backend executor")
                    .run(async move {
                        let listener =
                            switchyard::listener::bind_exclusive("127.0.0.1:0".parse().unwrap())
                                .expect("bind 127.0.0.1:0");
                        bound
                            .send(listener.local_addr().expect("local_addr"))
                            .expect("the test waits for the address");
                        let how = Serving {
                            mcs,
                            end_at_once,
                            go_away_first_after,
                        };
                        let accepting = accept(listener, shared, script, how);
                        futures_lite::future::or(accepting, async {
                            let _ = stopped.await;
                        })
                        .await
                    })
            })
        };
        let socket = bound_at.recv().expect("scripted backend started");
        ScriptedBackend {
            addr: socket.to_string(),
            socket,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

/// A running scripted backend; stops when dropped.
pub struct ScriptedBackend {
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub socket: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedBackend {
    /// A backend with h2's default settings.
    pub fn start(script: impl Fn(&Call) -> Answer + Send + Sync + 'static) -> ScriptedBackend {
        ScriptedBuilder::default().start(script)
    }

    pub fn builder() -> ScriptedBuilder {
        ScriptedBuilder::default()
    }

    /// Every call received so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.state.lock().unwrap().calls.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.state.lock().unwrap().accepted
    }

    /// Waits (bounded) until `cond` holds for the calls received; returns them.
    pub fn wait_for_calls(&self, what: &str, cond: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        self.wait_until(what, |s| cond(&s.calls).then(|| s.calls.clone()))
    }

    /// Waits (bounded) until connection `conn` has applied the backend's SETTINGS.
    pub fn wait_settled(&self, conn: usize) {
        self.wait_until(&format!("connection {conn} settled"), |s| {
            s.settled.contains(&conn).then_some(())
        })
    }

    /// Waits (bounded) until connection `conn` has ended.
    pub fn wait_ended(&self, conn: usize) {
        self.wait_until(&format!("end of connection {conn}"), |s| {
            s.ended.contains(&conn).then_some(())
        })
    }

    /// Lets the calls held under `tag` be answered.
    pub fn release(&self, tag: &str) {
        let holders = self.shared.update(|s| {
            s.released.insert(tag.to_string());
            std::mem::take(&mut s.holders)
        });
        for waker in holders {
            waker.wake();
        }
    }

    fn wait_until<T>(&self, what: &str, mut ready: impl FnMut(&State) -> Option<T>) -> T {
        let guard = self.shared.state.lock().unwrap();
        let (guard, _) = self
            .shared
            .changed
            .wait_timeout_while(guard, WAIT_LIMIT, |s| ready(s).is_none())
            .unwrap();
        ready(&guard).unwrap_or_else(|| {
            panic!(
                "scripted backend: no {what} within {WAIT_LIMIT:?}; calls: {:#?}",
                guard.calls
            )
        })
    }
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        // Held calls end with the executor.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How connections are served (the builder's options).
struct Serving {
    mcs: Option<u32>,
    end_at_once: Option<EndAtOnce>,
    go_away_first_after: Option<usize>,
}

async fn accept(
    listener: glommio::net::TcpListener,
    shared: Arc<Shared>,
    script: Arc<Script>,
    how: Serving,
) {
    loop {
        let Ok(stream) = listener.accept().await else {
            continue;
        };
        let conn = shared.update(|s| {
            s.accepted += 1;
            s.accepted
        });
        match (how.end_at_once, how.go_away_first_after) {
            (Some(ending), _) => {
                glommio::spawn_local(end(stream, ending)).detach();
            }
            (None, Some(calls)) if conn == 1 => {
                let refusing = go_away_unprocessed(stream, calls, shared.clone());
                glommio::spawn_local(refusing).detach();
            }
            (None, _) => {
                let serving = serve(stream, conn, shared.clone(), script.clone(), how.mcs);
                glommio::spawn_local(serving).detach();
            }
        }
    }
}

/// HTTP/2 as [`go_away_unprocessed`] speaks it by hand (RFC 9113 §3.4, §4.1, §6).
mod frame {
    /// The client's connection preface.
    pub const PREFACE_LEN: usize = 24;
    /// A frame's head: length (3 bytes), type, flags, stream id (4 bytes).
    pub const HEAD_LEN: usize = 9;
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    /// On DATA and HEADERS.
    pub const END_STREAM: u8 = 0x1;
    /// On SETTINGS and PING.
    pub const ACK: u8 = 0x1;

    /// A frame on the connection (stream 0).
    pub fn connection(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len())
            .expect("a short payload")
            .to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
    }
}

/// Serves a connection by hand (see [`ScriptedBuilder::go_away_unprocessed_on_first_connection`]):
/// the defaults for SETTINGS, PINGs answered, each call recorded as its request message ends,
/// and after the `calls`th, GOAWAY (NO_ERROR) with last stream id 0. Then reads on, answering
/// nothing, until the gateway closes the connection (or the backend stops).
async fn go_away_unprocessed(
    mut stream: glommio::net::TcpStream,
    calls: usize,
    shared: Arc<Shared>,
) {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let mut preface = [0; frame::PREFACE_LEN];
    if stream.read_exact(&mut preface).await.is_err() {
        return;
    }
    let settings = frame::connection(frame::SETTINGS, 0, &[]);
    if stream.write_all(&settings).await.is_err() {
        return;
    }
    let mut messages: std::collections::HashMap<u32, Vec<u8>> = Default::default();
    let mut ended = 0;
    loop {
        let mut head = [0; frame::HEAD_LEN];
        if stream.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        if stream.read_exact(&mut payload).await.is_err() {
            return;
        }
        let mut reply = Vec::new();
        match kind {
            frame::SETTINGS if flags & frame::ACK == 0 => {
                reply = frame::connection(frame::SETTINGS, frame::ACK, &[]);
            }
            // The gateway lends a connection only once its handshake PING is answered.
            frame::PING if flags & frame::ACK == 0 => {
                reply = frame::connection(frame::PING, frame::ACK, &payload);
            }
            // The gateway pads nothing, and its header blocks are not read.
            frame::HEADERS | frame::DATA => {
                let message = messages.entry(id).or_default();
                if kind == frame::DATA {
                    message.extend_from_slice(&payload);
                }
                if flags & frame::END_STREAM != 0 {
                    let message = messages.remove(&id).unwrap_or_default();
                    record(&shared, 1, id, String::new(), None, &message);
                    ended += 1;
                    if ended == calls {
                        // Last stream id 0, NO_ERROR.
                        reply = frame::connection(frame::GOAWAY, 0, &[0; 8]);
                    }
                }
            }
            _ => {}
        }
        if !reply.is_empty() && stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// Ends a connection right after its handshake, as `how` says.
async fn end(stream: glommio::net::TcpStream, how: EndAtOnce) {
    let handshake = h2::server::Builder::new().handshake::<_, Bytes>(TokioIo::new(stream));
    let Ok(mut connection) = handshake.await else {
        return;
    };
    if how == EndAtOnce::GoAway {
        // GOAWAY with the last stream processed (none), flushed, then the close.
        connection.abrupt_shutdown(Reason::NO_ERROR);
        let _ = poll_fn(|cx| connection.poll_closed(cx)).await;
    }
}

/// Serves one connection: accepts its calls, each answered in a task of its own, and carries
/// out the GOAWAYs they ask for (only the connection's owner can send one).
async fn serve(
    stream: glommio::net::TcpStream,
    conn: usize,
    shared: Arc<Shared>,
    script: Arc<Script>,
    mcs: Option<u32>,
) {
    let mut builder = h2::server::Builder::new();
    if let Some(n) = mcs {
        builder.max_concurrent_streams(n);
    }
    if shared.state.lock().unwrap().answer_early {
        // A call's unread request holds its stream's window (64 KiB) for good, and a connection
        // window of that size would run out after one call: here it does not.
        builder.initial_connection_window_size(EARLY_CONNECTION_WINDOW);
    }
    let Ok(mut connection) = builder.handshake::<_, Bytes>(TokioIo::new(stream)).await else {
        return;
    };
    // A PING sent after the SETTINGS comes back once the peer has read (and so applied) them.
    if let Some(mut ping_pong) = connection.ping_pong() {
        let shared = shared.clone();
        glommio::spawn_local(async move {
            if ping_pong.ping(h2::Ping::opaque()).await.is_ok() {
                shared.update(|s| s.settled.insert(conn));
            }
        })
        .detach();
    }
    let (go_away, mut go_away_asked) = mpsc::unbounded::<oneshot::Sender<()>>();
    let go_away = Rc::new(go_away);
    enum Event {
        // Boxed: an accepted call is far larger than the other events.
        Call(Box<(http::Request<RecvStream>, SendResponse<Bytes>)>),
        GoAway(oneshot::Sender<()>),
        End,
    }
    loop {
        let event = poll_fn(|cx| {
            if let Poll::Ready(Some(done)) = go_away_asked.poll_next_unpin(cx) {
                return Poll::Ready(Event::GoAway(done));
            }
            match connection.poll_accept(cx) {
                Poll::Ready(Some(Ok(call))) => Poll::Ready(Event::Call(Box::new(call))),
                Poll::Ready(_) => Poll::Ready(Event::End),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match event {
            Event::Call(accepted) => {
                let (request, respond) = *accepted;
                let task = call(
                    request,
                    respond,
                    conn,
                    shared.clone(),
                    script.clone(),
                    go_away.clone(),
                );
                glommio::spawn_local(task).detach();
            }
            // Queued before any frame of the answer that asked for it (see `Answer::GoAwayThen`).
            Event::GoAway(done) => {
                connection.graceful_shutdown();
                let _ = done.send(());
            }
            Event::End => {
                shared.update(|s| s.ended.insert(conn));
                return;
            }
        }
    }
}

async fn call(
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    conn: usize,
    shared: Arc<Shared>,
    script: Arc<Script>,
    go_away: Rc<mpsc::UnboundedSender<oneshot::Sender<()>>>,
) {
    let stream = u32::from(respond.stream_id());
    let authority = request
        .uri()
        .authority()
        .map_or_else(String::new, |a| a.to_string());
    let grpc_timeout = request
        .headers()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = request.into_body();
    let mut message = Vec::new();
    if shared.state.lock().unwrap().answer_early {
        let _ = body.data().await;
        // Never dropped: h2 would reset the stream.
        std::mem::forget(body);
    } else {
        while let Some(chunk) = body.data().await {
            let Ok(chunk) = chunk else { return };
            let _ = body.flow_control().release_capacity(chunk.len());
            message.extend_from_slice(&chunk);
        }
    }
    let call = record(&shared, conn, stream, authority, grpc_timeout, &message);
    let mut answer = script(&call);
    loop {
        answer = match answer {
            Answer::GoAwayThen(then) => {
                let (done, sent) = oneshot::channel();
                if go_away.unbounded_send(done).is_ok() {
                    let _ = sent.await;
                }
                *then
            }
            Answer::Hold(tag, then) => {
                poll_fn(|cx| {
                    let mut s = shared.state.lock().unwrap();
                    if s.released.contains(&tag) {
                        Poll::Ready(())
                    } else {
                        s.holders.push(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
                *then
            }
            Answer::Refuse => {
                respond.send_reset(Reason::REFUSED_STREAM);
                return;
            }
            Answer::Head(status, fields) => {
                let mut head = Response::builder().status(status).body(()).unwrap();
                append(head.headers_mut(), &fields);
                let _ = respond.send_response(head, true);
                return;
            }
            Answer::Reply(resp) => {
                let _ = reply(&mut respond, &resp, &[]).await;
                return;
            }
            Answer::ReplyWithMetadata(resp, metadata) => {
                let _ = reply(&mut respond, &resp, &metadata).await;
                return;
            }
            Answer::Full {
                status,
                head,
                message,
                trailers,
            } => {
                let _ = full_reply(&mut respond, status, &head, &message, &trailers).await;
                return;
            }
        }
    }
}

/// Records the call whose framed request `message` came on stream `stream` of connection `conn`.
fn record(
    shared: &Shared,
    conn: usize,
    stream: u32,
    authority: String,
    grpc_timeout: Option<String>,
    message: &[u8],
) -> Call {
    let req = grpc_frame::decode_unary(message, MAX_MESSAGE)
        .ok()
        .and_then(|payload| ForwardingReq::decode(payload).ok())
        .unwrap_or_default();
    shared.update(|s| {
        let attempt = 1 + s
            .calls
            .iter()
            .filter(|c| c.request_id == req.request_id)
            .count();
        let call = Call {
            conn,
            stream,
            authority,
            path: req.path.clone(),
            request_id: req.request_id.clone(),
            attempt,
            grpc_timeout,
            body_len: req.body.len(),
        };
        s.calls.push(call.clone());
        call
    })
}

/// A gRPC answer: the header block (with `metadata`), the framed message, `grpc-status: 0`.
async fn reply(
    respond: &mut SendResponse<Bytes>,
    resp: &ForwardingResp,
    metadata: &[(String, String)],
) -> Result<(), h2::Error> {
    let ok = [("grpc-status".to_string(), "0".to_string())];
    full_reply(respond, 200, metadata, resp, &ok).await
}

/// A gRPC answer: a header block with `status` and `head` (beside the content-type), the framed
/// message, then `trailers`.
async fn full_reply(
    respond: &mut SendResponse<Bytes>,
    status: u16,
    head: &[(String, String)],
    resp: &ForwardingResp,
    trailers: &[(String, String)],
) -> Result<(), h2::Error> {
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    append(response.headers_mut(), head);
    let mut stream = respond.send_response(response, false)?;
    // As the peer's flow control allows: an answer may be larger than a window.
    switchyard::sample_backend::send_data(&mut stream, grpc_frame::encode_message(resp)).await?;
    let mut fields = HeaderMap::new();
    append(&mut fields, trailers);
    stream.send_trailers(fields)
}

fn append(headers: &mut HeaderMap, fields: &[(String, String)]) {
    for (name, value) in fields {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
}
