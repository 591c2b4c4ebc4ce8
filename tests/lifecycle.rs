//! Connection and process lifecycle seen from outside: slow clients get 408, idle keep-alive
//! connections are closed, the in-flight limit answers 503 with retry-after, and SIGTERM drains
//! (in-flight requests finish, /-/ready turns 503, exit status 0).
//!
//! Nothing here measures time: short timeouts are configured and the tests wait (boundedly) for the
//! outcome they cause.

mod support;

use std::time::Duration;

use support::cluster::metric;
use support::*;

/// The value of `switchyard_in_flight_requests` in `/-/metrics`.
fn in_flight(gw: &Gateway) -> u64 {
    metric(gw, "switchyard_in_flight_requests")
}

/// Starts a slow call (`/echo/delay/{ms}`) on its own thread and waits until the gateway counts it.
fn slow_call_in_flight(gw: &Gateway, ms: u64) -> std::thread::JoinHandle<Resp> {
    let url = gw.url(&format!("/echo/delay/{ms}"));
    let call = std::thread::spawn(move || http("GET", url).send());
    assert!(
        poll_until(400, || in_flight(gw) >= 1),
        "the slow call never showed up as in flight"
    );
    call
}

#[test]
fn slow_header_section_gets_408_and_close() {
    let gw = Gateway::builder()
        .args(&["--header-timeout-ms", "200"])
        .start();
    let mut c = RawConn::connect(gw.addr);
    c.send(b"GET /-/health HTTP/1.1\r\nHost: x\r\n");
    let (bytes, closed) = c.read_to_close();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
    assert!(closed, "connection closed after the 408");
}

#[test]
fn slow_body_gets_408_and_close() {
    let gw = Gateway::builder()
        .args(&["--body-timeout-ms", "200"])
        .start();
    let _echo = Echo::registered(&gw, "echo", "e1");
    let mut c = RawConn::connect(gw.addr);
    c.send(b"POST /echo/raw HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab");
    let (bytes, closed) = c.read_to_close();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(closed);
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let gw = Gateway::builder()
        .args(&["--idle-timeout-ms", "200"])
        .start();
    let mut c = RawConn::connect(gw.addr);
    c.send(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    // Nothing more is sent: the gateway closes the idle connection without a response.
    assert!(c.expect_closed(), "idle connection was not closed");
}

#[test]
fn in_flight_limit_answers_503_with_retry_after() {
    let gw = Gateway::builder()
        .shards(Some(1))
        .args(&["--max-in-flight", "1"])
        .start();
    let _echo = Echo::registered(&gw, "echo", "e1");
    let slow = slow_call_in_flight(&gw, 3000);
    let r = gw.get("/echo/now");
    assert_error(&r, 503, "OVERLOADED");
    assert_eq!(r.header("retry-after"), Some("1"));
    // The gateway's own endpoints stay reachable under overload (HAProxy keeps checking them).
    assert_eq!(gw.get("/-/health").status, 200);
    assert_eq!(slow.join().expect("slow call").status, 200);
    assert_eq!(gw.get("/echo/now").status, 200, "the slot is free again");
}

#[test]
fn sigterm_finishes_in_flight_requests_and_reports_not_ready() {
    let mut gw = Gateway::builder().shards(Some(1)).start();
    let _echo = Echo::registered(&gw, "echo", "e1");
    // A keep-alive connection opened before the signal, to watch /-/ready during the drain.
    let mut watcher = RawConn::connect(gw.addr);
    watcher.send(b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(watcher.read_response(false).status, 200);

    let slow = slow_call_in_flight(&gw, 3000);
    gw.proc.signal(libc::SIGTERM);
    // Until the drain is seen, /-/ready stays 200 on the kept-alive connection; then 503 and close.
    let mut saw_not_ready = false;
    for _ in 0..400 {
        watcher.send(b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = watcher.read_response(false);
        if r.status == 503 {
            assert_eq!(r.header("connection"), Some("close"));
            saw_not_ready = true;
            break;
        }
        assert_eq!(r.status, 200);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(saw_not_ready, "/-/ready never turned 503 during the drain");
    let r = slow.join().expect("slow call");
    assert_eq!(
        r.status,
        200,
        "the in-flight request finished: {}",
        r.text()
    );
    let status = gw.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", gw.proc.describe());
}

#[test]
fn connections_over_the_limit_are_closed_at_once() {
    let gw = Gateway::builder()
        .shards(Some(1))
        .args(&["--max-connections", "1"])
        .start();
    // Readiness polling may have left a connection closing; wait until the shard counts none.
    assert!(poll_until(400, || metric(
        &gw,
        "switchyard_connections_open"
    ) <= 1));
    let mut first = RawConn::connect(gw.addr);
    first.send(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(first.read_response(false).status, 200);
    // The second connection is accepted by the kernel, then closed without an answer.
    let mut second = RawConn::connect(gw.addr);
    second.send(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n");
    let (bytes, closed) = second.read_to_close();
    assert!(
        bytes.is_empty() && closed,
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    // The first one still works, and once it is gone new connections are served again.
    first.send(b"GET /-/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(first.read_response(false).status, 200);
    drop(first);
    assert!(poll_until(400, || health_probe(gw.addr)), "served again");
    assert!(metric(&gw, "switchyard_connections_refused_total") >= 1);
}
