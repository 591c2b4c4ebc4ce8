//! The echo's gRPC server: h2c (prior-knowledge HTTP/2) on glommio sockets, one task per
//! connection and one per stream.
//!
//! The connection task only drives the h2 connection (`accept` is what polls its I/O) and hands
//! each stream to its own task, so a `/delay` call never holds up the calls multiplexed beside it.
//! Each stream task collects one bounded gRPC message, decodes a `ForwardingReq`, asks
//! [`routes`](super::routes) what to do and does it. Large answers are sent as the peer's flow
//! control allows instead of being queued in h2 all at once.

use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use glommio::net::{TcpListener, TcpStream};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use prost::Message;

use super::grpc_frame::{self, code, FrameError};
use super::routes::{self, Action, GARBAGE_PAYLOAD, INSTANCE_HEADER};
use crate::io::{BodyCollector, TokioIo};
use crate::proto::{ForwardingReq, SEND_PATH};

/// Largest request message accepted: four times the gateway's default body limit, so any
/// request the gateway forwards fits, while one stream cannot buffer without bound.
pub const MAX_REQUEST_MESSAGE: usize = 16 * 1024 * 1024;

/// Concurrent streams per connection: plenty for a load test over one connection, and a bound
/// on the tasks (and buffered requests) one client can hold open.
const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// Streams the gateway may reset before this server has taken them up, at once, before the `h2`
/// crate ends the connection: as many as it may open. A gateway cancels a call when its client
/// goes away, and many clients going together sent more than the crate's default of 20 in one
/// read: the connection ended, and every other call on it with it.
const MAX_PENDING_ACCEPT_RESETS: usize = MAX_CONCURRENT_STREAMS as usize;

/// Largest request header block: the gateway sends a handful of gRPC headers (client headers
/// travel inside the message), so h2's 16 MiB default would only serve a misbehaving peer.
const MAX_HEADER_LIST: u32 = 16 * 1024;

/// Per-stream receive window: a typical request arrives without waiting for a WINDOW_UPDATE.
const STREAM_WINDOW: u32 = 1024 * 1024;

/// Connection receive window: several full stream windows in flight at once.
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// Answers up to this size are handed to h2 in one piece; bigger ones wait for send capacity
/// chunk by chunk, so a `/bytes/{n}` answer is not duplicated into h2's send queue.
const UNCHUNKED_ANSWER: usize = 64 * 1024;

/// gRPC's status field and message, and the instance id, as names built once: inserting by
/// `&str` parses the name again on every answer.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const INSTANCE: HeaderName = HeaderName::from_static(INSTANCE_HEADER);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What every stream of one backend shares.
#[derive(Debug)]
pub(super) struct Instance {
    /// The instance id reported in `x-echo-instance`.
    id: String,
    /// The id as gRPC response metadata, when it is a valid header value.
    header: Option<HeaderValue>,
}

impl Instance {
    pub(super) fn new(id: String) -> Self {
        let header = HeaderValue::from_str(&id).ok();
        Self { id, header }
    }

    /// The instance id.
    pub(super) fn id(&self) -> &str {
        &self.id
    }
}

/// Accepts connections for as long as the executor runs, serving each with `serve_connection`
/// (the gRPC face's or the HTTP/1.1 face's) in its own task.
pub(super) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    instance: Rc<Instance>,
    serve_connection: F,
) where
    F: Fn(TcpStream, Rc<Instance>) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(serve_connection(stream, instance.clone())).detach();
            }
            Err(error) => {
                tracing::warn!(%error, "echo backend: accept failed");
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

pub(super) async fn serve_connection(stream: TcpStream, instance: Rc<Instance>) {
    // Answers are small and latency matters more than packet count.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "echo backend: cannot set TCP_NODELAY");
    }
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .handshake::<_, Bytes>(TokioIo::new(stream));
    let mut connection = match handshake.await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::debug!(%error, "echo backend: HTTP/2 handshake failed");
            return;
        }
    };
    // Calls are accepted in rounds. Every accept flushes what h2 has queued, and glommio runs a
    // task it spawns at once, so a call answered as it was accepted went out in a write of its
    // own (one `sendmsg` per call under load). A round accepts every call that has arrived, then
    // starts their tasks (each answers at once when it can), and the next round's first accept
    // writes those answers together. A lone call is accepted, answered and written as before.
    // A round holds at most MAX_CONCURRENT_STREAMS calls.
    let mut round = Vec::new();
    loop {
        let after = poll_fn(|cx| loop {
            match connection.poll_accept(cx) {
                Poll::Ready(Some(Ok(call))) => round.push(call),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(AfterRound::Failed(error)),
                Poll::Ready(None) => return Poll::Ready(AfterRound::Closed),
                Poll::Pending if round.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(AfterRound::More),
            }
        })
        .await;
        for (request, respond) in round.drain(..) {
            glommio::spawn_local(serve_stream(request, respond, instance.clone())).detach();
        }
        match after {
            AfterRound::More => {}
            AfterRound::Closed => return,
            AfterRound::Failed(error) => {
                tracing::debug!(%error, "echo backend: connection ended");
                return;
            }
        }
    }
}

/// What follows a round of accepted calls.
enum AfterRound {
    /// The connection is open: accept the next round.
    More,
    /// The client closed the connection.
    Closed,
    /// The connection failed.
    Failed(h2::Error),
}

async fn serve_stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    instance: Rc<Instance>,
) {
    // The only failures left here are the peer going away mid-answer; nobody is left to tell.
    if let Err(error) = answer(request, &mut respond, &instance).await {
        tracing::debug!(%error, "echo backend: stream ended before the answer was sent");
    }
}

async fn answer(
    request: Request<RecvStream>,
    respond: &mut SendResponse<Bytes>,
    instance: &Instance,
) -> Result<(), h2::Error> {
    if request.method() != Method::POST || request.uri().path() != SEND_PATH {
        let message = format!("unknown method {}", request.uri().path());
        return send_error(
            respond,
            instance,
            StatusCode::OK,
            code::UNIMPLEMENTED,
            &message,
        );
    }
    let is_grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
    if !is_grpc {
        // The gRPC HTTP/2 spec answers a non-gRPC content-type with HTTP 415.
        let status = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return send_error(
            respond,
            instance,
            status,
            code::INTERNAL,
            "content-type is not application/grpc",
        );
    }
    let body = match read_body(request.into_body()).await? {
        Ok(body) => body,
        Err(error) => {
            return send_error(
                respond,
                instance,
                StatusCode::OK,
                error.grpc_code(),
                &error.to_string(),
            )
        }
    };
    let req = match ForwardingReq::decode(body) {
        Ok(req) => req,
        Err(error) => {
            let message = format!("request is not a ForwardingReq: {error}");
            return send_error(respond, instance, StatusCode::OK, code::INTERNAL, &message);
        }
    };
    match routes::respond(&req, &instance.id) {
        Action::Reply(resp) => {
            send_message(respond, instance, grpc_frame::encode_message(&resp)).await
        }
        Action::Delayed(wait, resp) => {
            if wait_unless_reset(respond, wait).await {
                send_message(respond, instance, grpc_frame::encode_message(&resp)).await
            } else {
                Ok(())
            }
        }
        Action::GrpcError { code, message } => {
            send_error(respond, instance, StatusCode::OK, code, &message)
        }
        Action::Reset => {
            respond.send_reset(Reason::INTERNAL_ERROR);
            Ok(())
        }
        Action::Garbage => {
            send_message(respond, instance, grpc_frame::encode(GARBAGE_PAYLOAD)).await
        }
        Action::NotGrpc(resp) => {
            let mut head = grpc_response(instance, StatusCode::OK);
            head.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/html"),
            );
            send_answer(respond, head, grpc_frame::encode_message(&resp)).await
        }
    }
}

/// Collects the request body and returns the payload of its one gRPC message. The outer error
/// is the stream failing; the inner one a body that is not one acceptable message.
async fn read_body(mut body: RecvStream) -> Result<Result<Bytes, FrameError>, h2::Error> {
    // A gateway sends a call's message in one DATA frame, kept as h2 handed it over (the HTTP/1.1
    // face, too, takes a body without copying it); only a message split over frames is joined.
    let mut received = BodyCollector::default();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        // Bytes are counted against MAX_REQUEST_MESSAGE below, so the window can reopen at once.
        body.flow_control().release_capacity(chunk.len())?;
        received.push(chunk);
        if let Err(error) = grpc_frame::check_prefix(received.as_slice(), MAX_REQUEST_MESSAGE) {
            return Ok(Err(error));
        }
    }
    let received = received.into_bytes();
    Ok(grpc_frame::decode_unary(&received, MAX_REQUEST_MESSAGE)
        .map(|payload| received.slice_ref(payload)))
}

/// Sleeps for `wait`, returning `false` early if the caller resets the stream (a gateway whose
/// deadline passed), so abandoned delays do not keep tasks alive.
async fn wait_unless_reset(respond: &mut SendResponse<Bytes>, wait: Duration) -> bool {
    let slept = async {
        glommio::timer::sleep(wait).await;
        true
    };
    let reset = async {
        let _ = poll_fn(|cx| respond.poll_reset(cx)).await;
        false
    };
    futures_lite::future::or(slept, reset).await
}

/// Sends a successful answer: headers, the framed message, then `grpc-status: 0` trailers.
async fn send_message(
    respond: &mut SendResponse<Bytes>,
    instance: &Instance,
    framed: Bytes,
) -> Result<(), h2::Error> {
    send_answer(respond, grpc_response(instance, StatusCode::OK), framed).await
}

/// Sends `head`, the framed message, then `grpc-status: 0` trailers.
async fn send_answer(
    respond: &mut SendResponse<Bytes>,
    head: Response<()>,
    framed: Bytes,
) -> Result<(), h2::Error> {
    let mut stream = respond.send_response(head, false)?;
    send_data(&mut stream, framed).await?;
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert(GRPC_STATUS, HeaderValue::from(code::OK));
    stream.send_trailers(trailers)
}

/// Sends `data` on `stream` (not ending it), as the peer's flow control allows: a big answer waits
/// for capacity chunk by chunk rather than sitting whole in h2's send queue.
pub async fn send_data(stream: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), h2::Error> {
    if data.len() <= UNCHUNKED_ANSWER {
        return stream.send_data(data, false);
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(granted) => granted?,
            // The stream closed under us: the peer reset it.
            None => return Err(Reason::CANCEL.into()),
        };
        let chunk = data.split_to(granted.min(data.len()));
        stream.send_data(chunk, false)?;
    }
    Ok(())
}

/// Sends a trailers-only error answer: one HEADERS frame with END_STREAM.
fn send_error(
    respond: &mut SendResponse<Bytes>,
    instance: &Instance,
    status: StatusCode,
    grpc_code: u32,
    message: &str,
) -> Result<(), h2::Error> {
    let mut response = grpc_response(instance, status);
    let headers = response.headers_mut();
    headers.insert(GRPC_STATUS, HeaderValue::from(grpc_code));
    let message = grpc_frame::encode_grpc_message(message);
    if let Ok(message) = HeaderValue::try_from(message) {
        headers.insert(GRPC_MESSAGE, message);
    }
    respond.send_response(response, true).map(drop)
}

fn grpc_response(instance: &Instance, status: StatusCode) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    if let Some(id) = &instance.header {
        headers.insert(INSTANCE, id.clone());
    }
    response
}
