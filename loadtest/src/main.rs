//! Run with: loadtest/run (the whole comparison), or on its own:
//! `cargo run --release -p switchyard-load -- open --url http://127.0.0.1:8080/echo/hello --rate 2000`
//!
//! `switchyard-load`: an open-loop load generator for the performance comparison in `loadtest/run`.
//!
//! `open`: requests are sent at a constant arrival rate, spread over N connections, each request at
//! its own scheduled time whatever happened to the ones before it, and its latency is measured from
//! that scheduled time, not from when it was actually written. A server that stalls therefore shows
//! the full delay its clients would have seen (no coordinated omission, as in wrk2). HTTP/1.1 keeps
//! one request in flight per connection (a late answer delays the next send, and that delay is
//! counted); HTTP/2 (prior knowledge) multiplexes every scheduled request as its own stream, makes
//! the connection again when the server ends it (GOAWAY, close) and sends a request the server did
//! not take (a refused stream, one beyond a GOAWAY's last stream) again. Latencies go into an HDR
//! histogram (1 µs to 60 s, 3 significant digits). The schedule begins `START_DELAY` (200 ms)
//! after the run is set up, runs `--warmup` seconds unrecorded, then `--duration` seconds
//! recorded: it ends 200 ms + `--warmup` + `--duration` after the set-up. A request still
//! unanswered `--timeout-ms` after its scheduled time is an error (every connect, write and read
//! for it ends then), so the run is over at most `--timeout-ms` after the schedule.
//! With `--grpc` it calls a backend's `ForwardingService/Send` directly (HTTP/2), carrying the
//! `ForwardingReq` a gateway would send for the URL's `/{service}/{rest}`: the backend's gRPC face
//! measured the way `loadtest/run` measures its HTTP/1.1 face for the direct call.
//!
//! `idle`: opens N keep-alive connections, makes one request on each (so the proxy has set up
//! whatever per-connection state it keeps), prints `idle: N connections open`, and holds them for
//! `--hold` seconds, so the caller can read the proxy's RSS with that many idle clients.
//!
//! Everything runs on one glommio executor (one thread, optionally pinned with `--cpu`), like the
//! gateway itself: no locks, the histogram is the executor's own.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use serde::Serialize;
use switchyard::io::TokioIo;

/// Memory glommio locks for io_uring buffers: small, so the default `ulimit -l` is enough.
const IO_MEMORY: usize = 512 * 1024;
/// Highest latency the histogram records (µs); slower answers are clamped to it.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Time from setting up a run to its first scheduled request: every connection task is spawned
/// and waiting for its first slot by then, so the generator's own start-up does not make the first
/// requests late.
const START_DELAY: Duration = Duration::from_millis(200);
/// Read buffer of `idle`'s one request per connection: the small answer it asks for fits many
/// times over (the buffer is not grown; a larger answer fails the run).
const IDLE_READ_BUF: usize = 64 * 1024;
/// How long `idle` waits for each read of that answer: a proxy that has not answered one small
/// request by then is broken, and the run fails instead of hanging.
const IDLE_READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(
    name = "switchyard-load",
    version,
    about = "Open-loop HTTP load generator"
)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Constant-rate open-loop run; prints a text summary and optionally writes JSON.
    Open(OpenArgs),
    /// Hold N idle keep-alive connections (each after one request) for a while.
    Idle(IdleArgs),
}

#[derive(Debug, clap::Args)]
struct OpenArgs {
    /// Target, `http://host:port/path?query`.
    #[arg(long)]
    url: String,
    /// Requests per second, over all connections.
    #[arg(long)]
    rate: f64,
    /// Connections (HTTP/1.1: one request in flight each).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured duration in seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up seconds at the same rate, not recorded.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Send a POST with a body of this many bytes (0: GET without a body).
    #[arg(long, default_value_t = 0)]
    body_bytes: usize,
    /// Use HTTP/2 with prior knowledge instead of HTTP/1.1.
    #[arg(long)]
    http2: bool,
    /// Call a backend directly over gRPC (`ForwardingService/Send`, HTTP/2 with prior knowledge)
    /// with the `ForwardingReq` a gateway sends for the URL's path (`/{service}/{rest}`): the
    /// gateway's request without the gateway, as a baseline for its own share of the latency.
    #[arg(long)]
    grpc: bool,
    /// A request unanswered this long after its scheduled time is an error.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Pin the generator to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Write the JSON report here too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Label put in the report.
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Debug, clap::Args)]
struct IdleArgs {
    /// Target, `http://host:port/path`.
    #[arg(long)]
    url: String,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Seconds to hold them once all are open.
    #[arg(long, default_value_t = 5.0)]
    hold: f64,
}

/// The target of a run, split from its URL.
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{url}`: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| format!("`{authority}`: {e}"))?
            .next()
            .ok_or_else(|| format!("`{authority}` resolves to nothing"))?;
        Ok(Target {
            addr,
            authority: authority.to_owned(),
            path_and_query: path.to_owned(),
        })
    }
}

/// The JSON report of an open-loop run.
#[derive(Debug, Serialize)]
struct Report {
    label: String,
    url: String,
    protocol: &'static str,
    connections: usize,
    body_bytes: usize,
    rate_offered: f64,
    rate_achieved: f64,
    duration_s: f64,
    requests: u64,
    errors: u64,
    latency_us: Latency,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
}

/// What every connection task of a run shares (one thread, so plain cells).
struct Run {
    start: Instant,
    record_from: Instant,
    end: Instant,
    interval_ns: f64,
    connections: usize,
    timeout: Duration,
    histogram: RefCell<Histogram<u64>>,
    ok: Cell<u64>,
    errors: Cell<u64>,
}

impl Run {
    /// The scheduled time of request `k` of connection `conn`.
    fn scheduled(&self, conn: usize, k: u64) -> Instant {
        let index = k * self.connections as u64 + conn as u64;
        self.start + Duration::from_nanos((index as f64 * self.interval_ns) as u64)
    }

    /// Waits for connection `conn`'s next slot (`k` counts its slots) and returns the slot's
    /// scheduled time, or `None` once the schedule is over.
    async fn next_slot(&self, conn: usize, k: &mut u64) -> Option<Instant> {
        let scheduled = self.scheduled(conn, *k);
        *k += 1;
        if scheduled >= self.end {
            return None;
        }
        sleep_until(scheduled).await;
        Some(scheduled)
    }

    fn record(&self, scheduled: Instant, ok: bool) {
        if scheduled < self.record_from {
            return;
        }
        if ok {
            let us = scheduled.elapsed().as_micros() as u64;
            let _ = self
                .histogram
                .borrow_mut()
                .record(us.clamp(1, MAX_LATENCY_US));
            self.ok.set(self.ok.get() + 1);
        } else {
            self.errors.set(self.errors.get() + 1);
        }
    }
}

fn main() {
    let args = Args::parse();
    let result = match args.mode {
        Mode::Open(open) => run_open(open),
        Mode::Idle(idle) => run_idle(idle),
    };
    if let Err(message) = result {
        eprintln!("switchyard-load: {message}");
        std::process::exit(2);
    }
}

fn run_open(args: OpenArgs) -> Result<(), String> {
    if args.rate.is_nan()
        || args.rate <= 0.0
        || args.connections == 0
        || args.duration.is_nan()
        || args.duration <= 0.0
    {
        return Err("--rate, --connections and --duration must be positive".into());
    }
    let target = Target::parse(&args.url)?;
    let placement = match args.cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    LocalExecutorBuilder::new(placement)
        .name("load")
        .io_memory(IO_MEMORY)
        .spawn(move || async move { open_loop(args, target).await })
        .map_err(|e| format!("cannot start the executor: {e}"))?
        .join()
        .map_err(|e| format!("executor failed: {e}"))?
}

async fn open_loop(args: OpenArgs, target: Target) -> Result<(), String> {
    let body = Bytes::from(vec![b'x'; args.body_bytes]);
    let request = Rc::new(h1_request(&target, &body));
    let call = if args.grpc {
        H2Call::grpc(&target, &body)
    } else {
        H2Call::plain(&target, body.clone())
    };
    let start = Instant::now() + START_DELAY;
    let warmup = Duration::from_secs_f64(args.warmup);
    let run = Rc::new(Run {
        start,
        record_from: start + warmup,
        end: start + warmup + Duration::from_secs_f64(args.duration),
        interval_ns: 1e9 / args.rate,
        connections: args.connections,
        timeout: Duration::from_millis(args.timeout_ms),
        histogram: RefCell::new(
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"),
        ),
        ok: Cell::new(0),
        errors: Cell::new(0),
    });
    let mut tasks = Vec::with_capacity(args.connections);
    for conn in 0..args.connections {
        let run = run.clone();
        let target = target.clone();
        let task = if args.http2 || args.grpc {
            glommio::spawn_local(h2_connection(run, conn, target, call.clone())).detach()
        } else {
            glommio::spawn_local(h1_connection(run, conn, target.addr, request.clone())).detach()
        };
        tasks.push(task);
    }
    for task in tasks {
        task.await;
    }
    let h = run.histogram.borrow();
    let duration = args.duration;
    let report = Report {
        label: args.label.clone(),
        url: args.url.clone(),
        protocol: match (args.grpc, args.http2) {
            (true, _) => "grpc",
            (false, true) => "h2",
            (false, false) => "http/1.1",
        },
        connections: args.connections,
        body_bytes: args.body_bytes,
        rate_offered: args.rate,
        rate_achieved: run.ok.get() as f64 / duration,
        duration_s: duration,
        requests: run.ok.get(),
        errors: run.errors.get(),
        latency_us: Latency {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        },
    };
    let l = &report.latency_us;
    println!(
        "{} {} {} conns, offered {:.0}/s, achieved {:.0}/s, {} ok, {} errors; latency µs p50 {} p90 {} p99 {} p99.9 {} max {}",
        report.label, report.protocol, report.connections, report.rate_offered, report.rate_achieved,
        report.requests, report.errors, l.p50, l.p90, l.p99, l.p999, l.max
    );
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn h1_request(target: &Target, body: &Bytes) -> Vec<u8> {
    let mut r = Vec::with_capacity(256 + body.len());
    if body.is_empty() {
        let _ = write!(
            r,
            "GET {} HTTP/1.1\r\nhost: {}\r\nuser-agent: switchyard-load\r\n\r\n",
            target.path_and_query, target.authority
        );
    } else {
        let _ = write!(
            r,
            "POST {} HTTP/1.1\r\nhost: {}\r\nuser-agent: switchyard-load\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
            target.path_and_query, target.authority, body.len()
        );
        r.extend_from_slice(body);
    }
    r
}

/// Waits until `at` (no-op if it has passed).
async fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        glommio::timer::sleep(at - now).await;
    }
}

/// One HTTP/1.1 connection's share of the schedule: request `k` goes at `scheduled(conn, k)`, or
/// as soon as the answer to the one before it is in. Each request's connect, write and reads end
/// by its deadline (its scheduled time plus the timeout): one that misses it is an error, and its
/// connection, which may still bring the late answer, is closed.
async fn h1_connection(run: Rc<Run>, conn: usize, addr: SocketAddr, request: Rc<Vec<u8>>) {
    let mut stream: Option<TcpStream> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0usize;
    let mut k = 0u64;
    while let Some(scheduled) = run.next_slot(conn, &mut k).await {
        let deadline = scheduled + run.timeout;
        // One request in flight per connection: a late answer to the one before may have used up
        // this one's time already.
        if Instant::now() >= deadline {
            run.record(scheduled, false);
            continue;
        }
        let exchange = async {
            if stream.is_none() {
                let s = TcpStream::connect(addr).await.map_err(drop)?;
                let _ = s.set_nodelay(true);
                stream = Some(s);
                have = 0;
            }
            let s = stream.as_mut().expect("connected above");
            s.write_all(&request).await.map_err(drop)?;
            read_h1_response(s, &mut buf, &mut have).await
        };
        let outcome = within(deadline, exchange).await;
        match outcome {
            Some(Ok(status_ok)) => run.record(scheduled, status_ok),
            Some(Err(())) | None => {
                run.record(scheduled, false);
                stream = None;
            }
        }
    }
}

/// Runs `work` until `deadline`: its output, or `None` when the deadline came first (the work is
/// dropped unfinished).
async fn within<T>(deadline: Instant, work: impl Future<Output = T>) -> Option<T> {
    let left = deadline.saturating_duration_since(Instant::now());
    glommio::timer::timeout(left, async {
        Ok::<_, glommio::GlommioError<()>>(work.await)
    })
    .await
    .ok()
}

/// Reads one response; `Ok(true)` for a 2xx, `Ok(false)` for another status, `Err` when the
/// connection broke or timed out. Bytes after the response stay at the front of `buf`.
async fn read_h1_response(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    have: &mut usize,
) -> Result<bool, ()> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = response.parse(&buf[..*have]).map_err(drop)? {
            let status = response.code.unwrap_or(0);
            let length = content_length(response.headers).ok_or(())?;
            let total = head + length;
            if total > buf.len() {
                buf.resize(total, 0);
            }
            while *have < total {
                let n = s.read(&mut buf[*have..]).await.map_err(drop)?;
                if n == 0 {
                    return Err(());
                }
                *have += n;
            }
            buf.copy_within(total..*have, 0);
            *have -= total;
            return Ok((200..300).contains(&status));
        }
        if *have == buf.len() {
            return Err(());
        }
        let n = s.read(&mut buf[*have..]).await.map_err(drop)?;
        if n == 0 {
            return Err(());
        }
        *have += n;
    }
}

/// One HTTP/2 connection's share of the schedule: each request is its own stream, started at its
/// scheduled time, however many are still in flight, and ended by its deadline (its scheduled
/// time plus the timeout). The connection is made again whenever it is over: the server ended it
/// (GOAWAY, as nginx does after `keepalive_requests`, or a close) or it could not be made.
async fn h2_connection(run: Rc<Run>, conn: usize, target: Target, call: H2Call) {
    let link = Rc::new(H2Link::new(target.addr));
    let calls = glommio::sync::Gate::new();
    let mut k = 0u64;
    while let Some(scheduled) = run.next_slot(conn, &mut k).await {
        let (run, link, call) = (run.clone(), link.clone(), call.clone());
        calls
            .spawn(async move {
                let answered = within(scheduled + run.timeout, h2_request(&link, call)).await;
                run.record(scheduled, answered == Some(true));
            })
            .expect("the gate stays open until the schedule is over")
            .detach();
    }
    // Every call ends by its deadline.
    let _ = calls.close().await;
}

/// How many times one request may be tried: a connection that did not take it (it could not be
/// made, the server refused the stream or excluded it with a GOAWAY) left it unprocessed, so it is
/// sent again, on a new connection where the old one is over; a server's routine connection
/// turnover costs no request. Every try ends by the request's deadline.
const H2_TRIES: usize = 3;

/// One request: true for a 2xx (with `grpc-status: 0` for gRPC), false for another answer or a
/// failure.
async fn h2_request(link: &H2Link, call: H2Call) -> bool {
    for _ in 0..H2_TRIES {
        let Ok(live) = link.live().await else {
            continue;
        };
        match h2_call(live.send.clone(), call.clone()).await {
            Ok(ok) => return ok,
            Err(Unanswered::ConnectionGone) => live.over.set(true),
            Err(Unanswered::StreamRefused) => {}
            Err(Unanswered::Failed) => return false,
        }
    }
    false
}

/// The HTTP/2 connection of one share of the schedule, made when a request finds none live.
struct H2Link {
    addr: SocketAddr,
    live: RefCell<Option<H2Live>>,
    /// One connection attempt at a time: requests that find none live wait for it.
    connecting: glommio::sync::Semaphore,
}

/// A connection requests can be started on.
#[derive(Clone)]
struct H2Live {
    send: h2::client::SendRequest<Bytes>,
    /// Set once it takes no more requests: its driver ended (the connection is closed), or a
    /// request could not start a stream on it or was excluded by a GOAWAY.
    over: Rc<Cell<bool>>,
}

impl H2Link {
    fn new(addr: SocketAddr) -> H2Link {
        H2Link {
            addr,
            live: RefCell::new(None),
            connecting: glommio::sync::Semaphore::new(1),
        }
    }

    fn current(&self) -> Option<H2Live> {
        self.live
            .borrow()
            .as_ref()
            .filter(|live| !live.over.get())
            .cloned()
    }

    /// The live connection, made if there is none: connected, and the handshake over (see below),
    /// so that a connection the server drops at once takes no request.
    async fn live(&self) -> Result<H2Live, ()> {
        if let Some(live) = self.current() {
            return Ok(live);
        }
        let _only_one = self.connecting.acquire_permit(1).await.map_err(drop)?;
        // Made while this request waited for the permit?
        if let Some(live) = self.current() {
            return Ok(live);
        }
        let stream = TcpStream::connect(self.addr).await.map_err(drop)?;
        let _ = stream.set_nodelay(true);
        let (send, mut connection) = h2::client::handshake(TokioIo::new(stream))
            .await
            .map_err(drop)?;
        let mut ping = connection.ping_pong().ok_or(())?;
        let over = Rc::new(Cell::new(false));
        let ended = over.clone();
        glommio::spawn_local(async move {
            let _ = connection.await;
            ended.set(true);
        })
        .detach();
        // h2's handshake only writes the client's preface. Ours is over once the server has
        // answered a PING, which it does after its own preface (SETTINGS): a request started
        // before that could fail with the connection without its having been taken.
        ping.ping(h2::Ping::opaque()).await.map_err(drop)?;
        let live = H2Live { send, over };
        *self.live.borrow_mut() = Some(live.clone());
        Ok(live)
    }
}

/// Why an HTTP/2 request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unanswered {
    /// The connection takes no more requests, and did not take this one: it never left (no
    /// new stream could be started), or a GOAWAY's last stream id is below its stream. It was not
    /// processed (RFC 9113 §6.8) and may go on another connection.
    ConnectionGone,
    /// The server refused its stream (REFUSED_STREAM): not processed (RFC 9113 §8.7), and the
    /// connection may take the next one.
    StreamRefused,
    /// It was sent and then failed: it may have been processed.
    Failed,
}

impl Unanswered {
    /// What a failure of a request already sent says.
    fn of(e: &h2::Error) -> Unanswered {
        if e.is_remote() && e.is_go_away() {
            Unanswered::ConnectionGone
        } else if e.is_remote() && e.reason() == Some(h2::Reason::REFUSED_STREAM) {
            Unanswered::StreamRefused
        } else {
            Unanswered::Failed
        }
    }
}

/// What every HTTP/2 call of a run sends.
#[derive(Debug, Clone)]
struct H2Call {
    uri: http::Uri,
    method: http::Method,
    /// `content-type: application/grpc` and `te: trailers`, and success needs `grpc-status: 0`.
    grpc: bool,
    body: Bytes,
}

impl H2Call {
    /// The URL's request: GET, or POST with `body`.
    fn plain(target: &Target, body: Bytes) -> H2Call {
        H2Call {
            uri: format!("http://{}{}", target.authority, target.path_and_query)
                .parse()
                .expect("valid uri"),
            method: method_for(&body),
            grpc: false,
            body,
        }
    }

    /// The `ForwardingService/Send` call a gateway makes for the URL's request (contract §2:
    /// `/{service}/{rest}?{query}`), in one gRPC message.
    fn grpc(target: &Target, body: &Bytes) -> H2Call {
        // Split as the gateway splits a request target.
        let (path, query) =
            switchyard::http::Request::split_target(Bytes::from(target.path_and_query.clone()));
        let (service, rest) = switchyard::rest::split_path(&path);
        let header = |name: &str, value: &str| switchyard::proto::Header {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        let mut headers = vec![
            header("host", &target.authority),
            header("user-agent", "switchyard-load"),
        ];
        if !body.is_empty() {
            headers.push(header("content-type", "application/octet-stream"));
            headers.push(header("content-length", &body.len().to_string()));
        }
        let message = switchyard::proto::ForwardingReq {
            method: method_for(body).as_str().to_owned(),
            path: String::from_utf8_lossy(rest).into_owned(),
            query: String::from_utf8_lossy(&query).into_owned(),
            headers,
            body: body.clone(),
            service: String::from_utf8_lossy(service).into_owned(),
            request_id: "0".repeat(32),
            remote_addr: "127.0.0.1:1".to_owned(),
            graphql_field: String::new(),
        };
        H2Call {
            uri: format!(
                "http://{}{}",
                target.authority,
                switchyard::proto::SEND_PATH
            )
            .parse()
            .expect("valid uri"),
            method: http::Method::POST,
            grpc: true,
            body: switchyard::sample_backend::grpc_frame::encode_message(&message),
        }
    }
}

/// The method of the run's requests: GET, or POST when they carry a body.
fn method_for(body: &[u8]) -> http::Method {
    if body.is_empty() {
        http::Method::GET
    } else {
        http::Method::POST
    }
}

/// Sends one request and reads its answer: `Ok(true)` for a success (see [`h2_request`]), or why
/// there was none.
async fn h2_call(send: h2::client::SendRequest<Bytes>, call: H2Call) -> Result<bool, Unanswered> {
    // Until a stream is started, a failure means the connection starts no more.
    let mut send = send.ready().await.map_err(|_| Unanswered::ConnectionGone)?;
    let mut request = http::Request::builder()
        .method(call.method)
        .uri(call.uri)
        .header("user-agent", "switchyard-load");
    if call.grpc {
        request = request
            .header("content-type", "application/grpc")
            .header("te", "trailers");
    }
    let request = request.body(()).map_err(|_| Unanswered::Failed)?;
    let (response, mut stream) = send
        .send_request(request, call.body.is_empty())
        .map_err(|_| Unanswered::ConnectionGone)?;
    if !call.body.is_empty() {
        stream
            .send_data(call.body, true)
            .map_err(|e| Unanswered::of(&e))?;
    }
    let response = response.await.map_err(|e| Unanswered::of(&e))?;
    let mut ok = response.status().is_success();
    let grpc_status =
        |fields: &http::HeaderMap| fields.get("grpc-status").map(|v| v.as_bytes() == b"0");
    let mut answered = grpc_status(response.headers());
    let mut body = response.into_body();
    // An answer has begun: the request was processed, whatever happens to the rest.
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|_| Unanswered::Failed)?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    if call.grpc {
        if let Some(trailers) = body.trailers().await.map_err(|_| Unanswered::Failed)? {
            answered = answered.or(grpc_status(&trailers));
        }
        ok &= answered == Some(true);
    }
    Ok(ok)
}

/// Opens `connections` keep-alive connections with one request each and holds them.
fn run_idle(args: IdleArgs) -> Result<(), String> {
    let target = Target::parse(&args.url)?;
    let request = h1_request(&target, &Bytes::new());
    let mut open = Vec::with_capacity(args.connections);
    let mut buf = vec![0u8; IDLE_READ_BUF];
    for i in 0..args.connections {
        let mut s = StdStream::connect(target.addr)
            .map_err(|e| format!("connection {i}: cannot connect: {e}"))?;
        s.set_read_timeout(Some(IDLE_READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.write_all(&request)
            .map_err(|e| format!("connection {i}: {e}"))?;
        // Read until the end of the head and the announced body.
        let mut have = 0;
        loop {
            let n = s
                .read(&mut buf[have..])
                .map_err(|e| format!("connection {i}: {e}"))?;
            if n == 0 {
                return Err(format!("connection {i}: closed before answering"));
            }
            have += n;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(head)) = response.parse(&buf[..have]) {
                let length = content_length(response.headers).unwrap_or(0);
                if response.code.is_none_or(|c| !(200..300).contains(&c)) {
                    return Err(format!("connection {i}: status {:?}", response.code));
                }
                if have >= head + length {
                    break;
                }
            }
        }
        open.push(s);
    }
    println!("idle: {} connections open", open.len());
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_secs_f64(args.hold));
    drop(open);
    Ok(())
}

/// The Content-Length of a parsed response head, if present and valid.
fn content_length(headers: &[httparse::Header<'_>]) -> Option<usize> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn a_grpc_call_carries_the_request_a_gateway_would_send() {
        let target = Target::parse("http://127.0.0.1:9/echo/hello/there?x=1").unwrap();
        let call = H2Call::grpc(&target, &Bytes::from_static(b"abc"));
        assert_eq!(call.uri.path(), switchyard::proto::SEND_PATH);
        assert_eq!(call.method, http::Method::POST);
        assert!(call.grpc);
        // One uncompressed, length-prefixed message.
        assert_eq!(call.body[0], 0);
        let len = u32::from_be_bytes(call.body[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, call.body.len() - 5);
        let req = switchyard::proto::ForwardingReq::decode(&call.body[5..]).unwrap();
        assert_eq!(
            (
                &req.method[..],
                &req.service[..],
                &req.path[..],
                &req.query[..]
            ),
            ("POST", "echo", "/hello/there", "x=1")
        );
        assert_eq!(&req.body[..], b"abc");
        assert!(req.headers.iter().any(|h| h.name == "host"));
        let get = H2Call::grpc(
            &Target::parse("http://127.0.0.1:9/echo").unwrap(),
            &Bytes::new(),
        );
        let req = switchyard::proto::ForwardingReq::decode(&get.body[5..]).unwrap();
        assert_eq!((&req.method[..], &req.path[..]), ("GET", "/"));
    }
}
