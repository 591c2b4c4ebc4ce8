//! `switchyard-load open` against servers on 127.0.0.1 that misbehave on purpose: an answer that
//! comes in time piece by piece but late as a whole, an HTTP/2 server that sends GOAWAY every few
//! requests (as nginx does after `keepalive_requests`), and one whose first connection fails its
//! handshake. The real binary runs each schedule; its JSON report is checked.
//!
//! Each server stops by itself (a bound on its life); each run of the binary is bounded and
//! killed past it. The outcomes do not depend on the machine's speed: a late answer is late by
//! construction (it is sent after the deadline has passed), and a timely one has the whole
//! timeout (seconds) to arrive.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use switchyard::io::TokioIo;

const LOAD_BIN: &str = env!("CARGO_BIN_EXE_switchyard-load");
/// Bound of one run of the binary: its schedule lasts a second, its requests end by their
/// deadlines a few seconds later.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// How long a test server lives at most.
const SERVER_LIFE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(10);

/// What a run's JSON report says: answers that counted as successes, and errors.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    ok: u64,
    errors: u64,
}

/// Runs `switchyard-load open` with `args` (bounded) and reads its report.
fn open(args: &[&str]) -> Counts {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchyard-load-test-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).expect("temp dir");
    let _cleanup = RemoveOnDrop(dir.clone());
    let report = dir.join("report.json");
    let mut child = Command::new(LOAD_BIN)
        .arg("open")
        .args(args)
        .arg("--json")
        .arg(&report)
        .stdin(Stdio::null())
        .stdout(fs::File::create(dir.join("stdout")).expect("stdout file"))
        .stderr(fs::File::create(dir.join("stderr")).expect("stderr file"))
        .spawn()
        .expect("start switchyard-load");
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "switchyard-load {args:?} still running after {RUN_LIMIT:?}; stderr: {}",
                fs::read_to_string(dir.join("stderr")).unwrap_or_default()
            );
        }
        thread::sleep(POLL);
    };
    let said = || {
        format!(
            "stdout: {}\nstderr: {}",
            fs::read_to_string(dir.join("stdout")).unwrap_or_default(),
            fs::read_to_string(dir.join("stderr")).unwrap_or_default()
        )
    };
    assert!(
        status.success(),
        "switchyard-load {args:?}: {status}\n{}",
        said()
    );
    let text = fs::read_to_string(&report).unwrap_or_else(|e| panic!("report: {e}\n{}", said()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON report");
    Counts {
        ok: v["requests"].as_u64().expect("requests"),
        errors: v["errors"].as_u64().expect("errors"),
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Accepts one connection before `deadline`, or `None`.
fn accept_by(listener: &TcpListener, deadline: Instant) -> Option<TcpStream> {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).expect("blocking connection");
                return Some(conn);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

/// An HTTP/1.1 server whose first connection answers each request in two halves, `half` apart and
/// the first `half` after the request: each read of the answer comes within `half`, the whole
/// answer after twice that. Later connections answer at once.
fn slow_first_connection_server(half: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    thread::spawn(move || {
        let end = Instant::now() + SERVER_LIFE;
        let mut first = true;
        while let Some(conn) = accept_by(&listener, end) {
            let slow = std::mem::take(&mut first);
            thread::spawn(move || serve_h1(conn, slow, half, end));
        }
    });
    addr
}

fn serve_h1(mut conn: TcpStream, slow: bool, half: Duration, end: Instant) {
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n";
    conn.set_read_timeout(Some(POLL * 10))
        .expect("read timeout");
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    while Instant::now() < end {
        // One answer per request head (the client sends GETs without a body).
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..at + 4);
            let sent = if slow {
                thread::sleep(half);
                conn.write_all(HEAD)
                    .and_then(|()| {
                        thread::sleep(half);
                        conn.write_all(b"ok")
                    })
                    .is_ok()
            } else {
                conn.write_all(&[HEAD, b"ok"].concat()).is_ok()
            };
            if !sent {
                return;
            }
            continue;
        }
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// The deadline is the scheduled time plus `--timeout-ms` for the whole answer, not for each read:
/// an answer whose every piece comes within the timeout of the one before, but whose last piece
/// comes after the deadline, is an error.
#[test]
fn an_answer_complete_after_the_deadline_is_an_error_though_each_read_was_in_time() {
    let addr = slow_first_connection_server(Duration::from_millis(1500)).to_string();
    // Two requests, one per connection: the first connection's (slow: complete 3 s after it was
    // sent) and the second's (at once), with 2 s each to be answered.
    let counts = open(&[
        "--url",
        &format!("http://{addr}/slow"),
        "--rate",
        "2",
        "--connections",
        "2",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--timeout-ms",
        "2000",
    ]);
    assert_eq!(counts, Counts { ok: 1, errors: 1 });
}

/// An HTTP/2 server on a glommio executor of its own: it fails the handshake of its first
/// connection (closes it at once) when `close_first`, and ends every connection gracefully (GOAWAY)
/// after `per_connection` requests, as nginx does after `keepalive_requests`. Returns its address
/// and the count of requests it answered.
fn h2_server(close_first: bool, per_connection: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let served = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let counter = served.clone();
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(256 << 10)
        .spawn(move || async move {
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            tx.send(listener.local_addr().expect("local_addr"))
                .expect("the test waits for the address");
            let serve = async {
                let mut first = close_first;
                while let Ok(stream) = listener.accept().await {
                    if std::mem::take(&mut first) {
                        drop(stream);
                        continue;
                    }
                    glommio::spawn_local(serve_h2(stream, per_connection, counter.clone()))
                        .detach();
                }
            };
            futures_lite::future::or(serve, glommio::timer::sleep(SERVER_LIFE)).await;
        })
        .expect("server executor");
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the HTTP/2 server listens");
    (addr, served)
}

async fn serve_h2(
    stream: glommio::net::TcpStream,
    per_connection: usize,
    served: Arc<AtomicUsize>,
) {
    let Ok(mut conn) = h2::server::handshake(TokioIo::new(stream)).await else {
        return;
    };
    let mut here = 0;
    while let Some(Ok((_request, mut respond))) = conn.accept().await {
        let answer = http::Response::builder().status(200).body(()).unwrap();
        if respond.send_response(answer, true).is_err() {
            return;
        }
        served.fetch_add(1, Ordering::SeqCst);
        here += 1;
        if here == per_connection {
            conn.graceful_shutdown();
        }
    }
}

/// Arguments of an HTTP/2 run of 100 requests over one connection, 5 s each to be answered.
fn h2_run(addr: SocketAddr) -> Vec<String> {
    [
        "--url",
        &format!("http://{addr}/h2"),
        "--http2",
        "--rate",
        "100",
        "--connections",
        "1",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--timeout-ms",
        "5000",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A GOAWAY ends the connection, not the run: the generator connects again, and a request the
/// server did not take (started after the GOAWAY, or beyond its last stream) goes on the new
/// connection. So every request is answered, once, though the server takes only 25 per connection.
/// (25, not fewer: a request is tried on at most three connections, and a generator that fell
/// behind on a loaded machine may start many at once.)
#[test]
fn h2_connects_again_after_a_goaway_and_loses_no_request() {
    every_request_answered_once(h2_server(false, 25));
}

/// A connection whose handshake fails leaves none of its share of the schedule unsent or
/// uncounted: the requests go on the next connection.
#[test]
fn h2_connects_again_after_a_failed_handshake_and_counts_every_request() {
    every_request_answered_once(h2_server(true, usize::MAX));
}

/// Runs [`h2_run`]'s 100 requests against `server` (its address and its count of requests
/// answered): every one is answered, with no error, and the server answered each once.
fn every_request_answered_once((addr, served): (SocketAddr, Arc<AtomicUsize>)) {
    let args = h2_run(addr);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(open(&args), Counts { ok: 100, errors: 0 });
    assert_eq!(
        served.load(Ordering::SeqCst),
        100,
        "requests the server answered"
    );
}
