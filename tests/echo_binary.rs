//! Starts the real `switchyard-echo` binary and checks what scripts and tests rely on: the
//! listening line on stdout with the real port, registration with a gateway, exit statuses.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the binary may take to print a line or exit before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> (Running, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-echo"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start switchyard-echo");
    let stdout = child.stdout.take().unwrap();
    (Running(child), lines(stdout))
}

/// Reads stdout on a helper thread so the test can wait for a line with a deadline.
fn lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn listening_addr(line: &str) -> SocketAddr {
    line.strip_prefix("switchyard-echo listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("an ip:port")
}

/// A one-shot fake gateway: answers the first request with `status`, hands back what it got.
/// Fails (its thread panics, so the join does) if no request comes whole within `WAIT`.
fn fake_gateway(status: u16) -> (String, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        let mut conn = accept_by(&listener, deadline);
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        while !request.ends_with(b"}") && request.len() < 64 * 1024 {
            assert!(
                Instant::now() < deadline,
                "the request did not come whole within {WAIT:?}: {:?}",
                String::from_utf8_lossy(&request)
            );
            let n = conn.read(&mut chunk).unwrap();
            assert_ne!(n, 0, "client closed before sending its body");
            request.extend_from_slice(&chunk[..n]);
        }
        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
        conn.write_all(answer.as_bytes()).unwrap();
        String::from_utf8(request).unwrap()
    });
    (url, handle)
}

/// Accepts one connection on `listener` before `deadline`; panics if none comes (an echo that
/// never registers must fail the test, not hang it).
fn accept_by(listener: &TcpListener, deadline: Instant) -> TcpStream {
    const POLL: Duration = Duration::from_millis(20);
    listener.set_nonblocking(true).unwrap();
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).unwrap();
                return conn;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no connection to the fake gateway within {WAIT:?}"
                );
                thread::sleep(POLL);
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn prints_the_bound_port_then_serves() {
    let (_echo, lines) = start(&["--listen", "127.0.0.1:0", "--instance", "bin-1"]);
    let addr = listening_addr(&lines.recv_timeout(WAIT).expect("listening line"));
    assert_ne!(addr.port(), 0);
    TcpStream::connect_timeout(&addr, WAIT).expect("the echo accepts connections");
}

#[test]
fn registers_with_the_gateway_after_listening() {
    let (url, gateway) = fake_gateway(201);
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--instance",
        "bin-2",
        "--service",
        "users",
        "--register",
        &url,
        "--token",
        "tk",
    ];
    let (_echo, lines) = start(&args);
    let addr = listening_addr(&lines.recv_timeout(WAIT).expect("listening line"));
    assert_eq!(
        lines.recv_timeout(WAIT).expect("registered line"),
        format!("registered users/bin-2 at {url}")
    );
    let request = gateway.join().expect("the fake gateway got a request");
    assert!(request.starts_with("PUT /-/services/users/instances/bin-2 HTTP/1.1\r\n"));
    assert!(request.contains("authorization: Bearer tk\r\n"));
    assert!(request.ends_with(&format!("{{\"address\":\"{addr}\"}}")));
}

#[test]
fn exits_1_when_registration_is_refused() {
    let (url, gateway) = fake_gateway(403);
    let (mut echo, _lines) = start(&["--listen", "127.0.0.1:0", "--register", &url]);
    gateway.join().expect("the fake gateway got a request");
    let status = wait_for_exit(&mut echo.0);
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    echo.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("status 403"), "stderr: {stderr}");
}

#[test]
fn exits_2_on_bad_options() {
    let (mut echo, _lines) = start(&["--listen", "not-an-address"]);
    assert_eq!(wait_for_exit(&mut echo.0).code(), Some(2));
}

/// Polls for the child's exit with a deadline (std has no wait-with-timeout).
fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    const POLL: Duration = Duration::from_millis(20);
    for _ in 0..(WAIT.as_millis() / POLL.as_millis()) {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        thread::sleep(POLL);
    }
    panic!("switchyard-echo did not exit within {WAIT:?}");
}

/// The HTTP/1.1 face (`--http1-listen`, used by the load test's peers) answers the same routes,
/// below a service prefix as the gateway would have forwarded them.
#[test]
fn http1_face_answers_the_same_routes() {
    let (_echo, lines) = start(&[
        "--listen",
        "127.0.0.1:0",
        "--http1-listen",
        "127.0.0.1:0",
        "--instance",
        "bin-h1",
    ]);
    let _grpc = lines.recv_timeout(WAIT).expect("gRPC listening line");
    let line = lines.recv_timeout(WAIT).expect("HTTP/1.1 listening line");
    let addr: SocketAddr = line
        .strip_prefix("switchyard-echo listening on ")
        .and_then(|rest| rest.strip_suffix(" (HTTP/1.1)"))
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .parse()
        .expect("an ip:port");
    let mut s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"POST /echo/raw HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-echo-instance: bin-h1"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\nhello"), "{answer}");
}
