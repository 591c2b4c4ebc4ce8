//! Connection and process lifecycle seen from outside: slow clients get 408, idle keep-alive
//! connections are closed, the in-flight limit answers 503 with retry-after, and SIGTERM drains
//! (in-flight requests finish, /-/ready turns 503, HTTP/2 connections get GOAWAY, exit status 0).
//!
//! Nothing here measures time: short timeouts are configured and the tests wait (boundedly) for the
//! outcome they cause.

mod support;

use std::time::Duration;

use support::cluster::metric;
use support::scripted::{Answer, ScriptedBackend};
use support::*;
use switchyard::proto::ForwardingResp;

/// The value of `switchyard_in_flight_requests` in `/-/metrics`.
fn in_flight(gw: &Gateway) -> u64 {
    metric(gw, "switchyard_in_flight_requests")
}

/// Waits until the gateway counts a call in flight (the one the test just sent).
fn await_call_in_flight(gw: &Gateway) {
    assert!(
        poll_until(400, || in_flight(gw) >= 1),
        "the call never showed up as in flight"
    );
}

/// Starts a slow call (`/echo/delay/{ms}`) on its own thread and waits until the gateway counts it.
fn slow_call_in_flight(gw: &Gateway, ms: u64) -> std::thread::JoinHandle<Resp> {
    let url = gw.url(&format!("/echo/delay/{ms}"));
    let call = std::thread::spawn(move || http("GET", url).send());
    await_call_in_flight(gw);
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
fn a_pipelined_head_has_the_header_timeout_from_its_first_byte() {
    // The next request's first byte comes with the first request; its head is finished only
    // after the first answer, 300 ms later, plus 300 ms: past the 500 ms from its first byte, so
    // 408. (Its clock used to start only once the call before it was answered: 200.)
    let (gw, _echo) = one_shard_gateway(&["--header-timeout-ms", "500"]);
    let mut c = RawConn::connect(gw.addr);
    c.send(b"GET /echo/delay/300 HTTP/1.1\r\nHost: x\r\n\r\nG");
    let first = c.read_response(false);
    assert_eq!(first.status, 200, "{}", first.text());
    // A lower bound on the head's age when it is finished, not a wait for something to happen.
    std::thread::sleep(Duration::from_millis(300));
    let finished = c.try_send(b"ET /echo/late HTTP/1.1\r\nHost: x\r\n\r\n");
    let (bytes, _) = c.read_to_close();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "finished: {finished}, answer: {text}"
    );
}

#[test]
fn a_malformed_pipelined_head_that_came_whole_behind_a_slow_answer_gets_400() {
    // Its bytes came whole with the first request; they are looked at only after the first answer,
    // past the header timeout. The head was on time and is malformed: 400, not 408 (which a client
    // takes as "send it again").
    let (gw, _echo) = one_shard_gateway(&["--header-timeout-ms", "200"]);
    for malformed in [
        &b"POST /echo/raw HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"GET /echo/x HTTP/1.1\r\n\r\n",
    ] {
        let mut c = RawConn::connect(gw.addr);
        let mut both = b"GET /echo/delay/600 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        both.extend_from_slice(malformed);
        c.send(&both);
        let first = c.read_response(false);
        assert_eq!(first.status, 200, "{}", first.text());
        let (bytes, _) = c.read_to_close();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    }
}

#[test]
fn a_stalled_http2_preface_gets_408_as_a_slow_head_does() {
    // The preface's first line parses as an HTTP/1.1 request line with version 2.0: once its time
    // was up it was answered 400 "invalid HTTP version", where a slow head gets 408.
    let gw = Gateway::builder()
        .args(&["--header-timeout-ms", "200"])
        .start();
    for part in [
        &b"PRI * HTTP/2.0\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n",
        b"PRI",
    ] {
        let mut c = RawConn::connect(gw.addr);
        c.send(part);
        let (bytes, closed) = c.read_to_close();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("HTTP/1.1 408 "), "{part:?}: {text}");
        assert!(closed, "{part:?}: connection closed after the 408");
    }
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
    let (gw, _echo) = one_shard_gateway(&["--max-in-flight", "1"]);
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
fn request_bodies_beyond_the_shards_body_memory_are_refused_with_503() {
    // One shard holding at most 100,000 bytes of request bodies. A client sending a 100,000-byte
    // body slowly holds all of them from its head on; a 30,000-byte body meanwhile would go
    // beyond: 503 OVERLOADED with retry-after, over HTTP/1.1 and HTTP/2 alike, while a registry
    // write still goes through. Once the first has been answered the second goes through, and a
    // body alone may take more than the budget.
    let (gw, echo) = one_shard_gateway(&["--max-body-memory-bytes", "100000"]);
    let held = || metric(&gw, "switchyard_request_body_bytes");
    let mut slow = RawConn::connect(gw.addr);
    slow.send(b"POST /echo/raw HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    slow.send(&[b'a'; 1000]);
    assert!(
        poll_until(READY_TRIES, || held() == 100_000),
        "the slow body is held: {}",
        held()
    );
    let second = vec![b'b'; 30_000];
    for h2 in [false, true] {
        let post = http("POST", gw.url("/echo/raw")).body(&second);
        let r = if h2 { post.h2() } else { post }.send();
        let err = assert_error(&r, 503, "OVERLOADED");
        assert_eq!(
            err["message"],
            "the gateway holds too many request bodies at once"
        );
        assert_eq!(r.header("retry-after"), Some("1"), "h2 {h2}");
        // The gateway's own endpoints are exempt, as from the in-flight limit.
        let register = http("PUT", gw.url("/-/services/other/instances/o1"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"address":"{}"}}"#, echo.addr));
        let r = if h2 { register.h2() } else { register }.send();
        assert!(r.status == 200 || r.status == 201, "h2 {h2}: {}", r.status);
    }
    slow.send(&[b'a'; 99_000]);
    let answer = slow.read_response(false);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len(), 100_000, "the slow body echoed whole");
    assert!(
        poll_until(READY_TRIES, || held() == 0),
        "answered bodies are given back: {}",
        held()
    );
    for h2 in [false, true] {
        let post = http("POST", gw.url("/echo/raw")).body(&second);
        let r = if h2 { post.h2() } else { post }.send();
        assert_eq!(r.status, 200, "h2 {h2}");
        let alone = http("POST", gw.url("/echo/raw")).body(vec![b'c'; 150_000]);
        let r = if h2 { alone.h2() } else { alone }.send();
        assert_eq!(r.status, 200, "a body alone may pass the budget (h2 {h2})");
    }
    assert_eq!(held(), 0);
}

/// A keep-alive connection, opened before a signal, to watch `/-/ready` during the drain.
fn ready_watcher(gw: &Gateway) -> RawConn {
    let mut watcher = RawConn::connect(gw.addr);
    watcher.send(b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(watcher.read_response(false).status, 200);
    watcher
}

/// Until the drain is seen, /-/ready stays 200 on the watcher's kept-alive connection; then 503,
/// with `connection: close`.
fn await_not_ready(watcher: &mut RawConn) {
    for _ in 0..400 {
        watcher.send(b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = watcher.read_response(false);
        if r.status == 503 {
            assert_eq!(r.header("connection"), Some("close"));
            return;
        }
        assert_eq!(r.status, 200);
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("/-/ready never turned 503 during the drain");
}

/// Waits for a call started by [`slow_call_in_flight`] and checks that it was answered.
fn assert_finished(slow: std::thread::JoinHandle<Resp>) {
    let r = slow.join().expect("slow call");
    assert_eq!(
        r.status,
        200,
        "the in-flight request finished: {}",
        r.text()
    );
}

#[test]
fn sigterm_finishes_in_flight_requests_and_reports_not_ready() {
    let (mut gw, _echo) = one_shard_gateway(&[]);
    let mut watcher = ready_watcher(&gw);

    let slow = slow_call_in_flight(&gw, 3000);
    gw.proc.signal(libc::SIGTERM);
    await_not_ready(&mut watcher);
    assert_finished(slow);
    let status = gw.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", gw.proc.describe());
}

#[test]
fn sighup_and_sigusr_are_logged_and_ignored_not_fatal() {
    // Their default action kills the process, in-flight requests and all; an operator's habitual
    // `kill -HUP` (nginx's reload) or an ssh session's end must not.
    let (mut gw, _echo) = one_shard_gateway(&[]);
    let slow = slow_call_in_flight(&gw, 1000);
    for sig in [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2] {
        gw.proc.signal(sig);
    }
    // Each is logged once received, so the gateway has outlived all three once three lines are there.
    let logged = poll_until(1000, || {
        gw.proc.stderr().matches("signal ignored").count() == 3
    });
    assert!(logged, "{}", gw.proc.describe());
    assert!(gw.proc.try_exit().is_none(), "{}", gw.proc.describe());
    assert_finished(slow);
    assert_eq!(gw.get("/-/health").status, 200);
    gw.proc.signal(libc::SIGTERM);
    let status = gw.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", gw.proc.describe());
}

#[test]
fn sigterm_waits_for_a_request_still_being_sent() {
    let (mut gw, _echo) = one_shard_gateway(&[]);
    // A request whose body is still to come: the 100 Continue says the gateway has its head and
    // waits for the body.
    let mut sending = RawConn::connect(gw.addr);
    sending.send(
        b"POST /echo/raw HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    assert!(sending.read_head().starts_with("HTTP/1.1 100 "));
    let mut watcher = ready_watcher(&gw);

    gw.proc.signal(libc::SIGTERM);
    // Had the shard counted itself idle, it would have closed the watcher's idle connection and
    // exited instead.
    await_not_ready(&mut watcher);
    // The rest of the body: the request is answered in full, then the process exits.
    sending.send(b"hello");
    let r = sending.read_response(false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello");
    let status = gw.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", gw.proc.describe());
}

#[test]
fn over_http2_a_client_that_cancels_slow_requests_keeps_its_connection() {
    // Cancelling requests that have run for a while (a search typed further, a page left) is no
    // attack: 101 of them, each cancelled after more than a second, and the connection serves on.
    let (gw, _echo) = patient_gateway();
    let mut c = h2_raw(&gw);
    let ids: Vec<u32> = (0..101).map(|i| 1 + 2 * i).collect();
    for &id in &ids {
        h2_get(&mut c, id, "/echo/delay/5000", Some("x"), None);
    }
    assert!(
        poll_until(400, || in_flight(&gw) >= 101),
        "the calls never got in flight"
    );
    // A lower bound on the requests' age, not a wait for something to happen.
    std::thread::sleep(Duration::from_millis(1100));
    for &id in &ids {
        h2_reset(&mut c, id, CANCEL);
    }
    // Every cancellation seen (a judgement would come with the next stream).
    assert!(
        poll_until(400, || metric(&gw, "switchyard_client_aborts_total") >= 101),
        "the cancellations never reached the gateway"
    );
    let next = 1 + 2 * 101;
    h2_get(&mut c, next, "/echo/hello", Some("x"), None);
    let (frames, _) = h2_read_for(&mut c, Duration::from_secs(5));
    assert!(
        !frames.iter().any(|f| f.kind == FRAME_GOAWAY),
        "no GOAWAY for a client that cancels slow requests"
    );
    let answer = frames
        .iter()
        .find(|f| f.kind == FRAME_HEADERS && f.stream == next)
        .expect("the next request is answered");
    assert_eq!(answer.payload.first(), Some(&0x88), "status 200");
}

#[test]
fn over_http2_a_request_refused_by_its_head_is_answered_before_its_body() {
    // expect: 100-continue and a lower-case method (400): the client sends no body until it has
    // an answer, so the answer must not wait for the body (the gateway's body timeout is longer
    // than the read below).
    let (gw, _echo) = one_shard_gateway(&["--body-timeout-ms", "60000"]);
    let mut c = h2_raw(&gw);
    let mut block = vec![0x02, 4];
    block.extend_from_slice(b"post");
    block.extend_from_slice(&[0x86, 0x44, 9]);
    block.extend_from_slice(b"/echo/raw");
    block.extend_from_slice(&[0x41, 1, b'x']);
    // expect (static index 35), literal without indexing.
    block.extend_from_slice(&[0x0f, 35 - 15, 12]);
    block.extend_from_slice(b"100-continue");
    // END_HEADERS only: the body is still to come.
    let mut headers = vec![0, 0, block.len() as u8, FRAME_HEADERS, 0x04, 0, 0, 0, 1];
    headers.extend_from_slice(&block);
    c.send(&headers);
    let (frames, _) = h2_read_for(&mut c, Duration::from_secs(10));
    let answer = frames
        .iter()
        .find(|f| f.kind == FRAME_HEADERS && f.stream == 1)
        .expect("an answer before the body");
    assert_eq!(answer.payload.first(), Some(&0x8c), "status 400");
}

/// One HTTP/2 frame as read off the wire.
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

const FRAME_HEADERS: u8 = 1;
const FRAME_DATA: u8 = 0;
const FRAME_RST_STREAM: u8 = 3;
const FRAME_SETTINGS: u8 = 4;
const FRAME_PING: u8 = 6;
const FRAME_GOAWAY: u8 = 7;
const FRAME_WINDOW_UPDATE: u8 = 8;
const FRAME_CONTINUATION: u8 = 9;
const FLAG_END_HEADERS: u8 = 4;
const FLAG_END_STREAM: u8 = 1;
const FLAG_ACK: u8 = 1;
/// RST_STREAM and GOAWAY error codes (RFC 9113 §7).
const PROTOCOL_ERROR: u32 = 0x1;
const FLOW_CONTROL_ERROR: u32 = 0x3;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;
/// SETTINGS_INITIAL_WINDOW_SIZE (RFC 9113 §6.5.2).
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 4;

/// Opens an HTTP/2 connection by hand: the preface and an empty SETTINGS frame.
fn h2_raw(gw: &Gateway) -> RawConn {
    h2_raw_with(gw, &[])
}

/// Opens an HTTP/2 connection by hand: the preface and a SETTINGS frame with `settings`, then
/// acknowledges the gateway's SETTINGS (sent before it is read: the gateway sends them first).
fn h2_raw_with(gw: &Gateway, settings: &[(u16, u32)]) -> RawConn {
    let mut c = RawConn::connect(gw.addr);
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    let len = 6 * settings.len();
    hello.extend_from_slice(&[0, 0, len as u8, FRAME_SETTINGS, 0, 0, 0, 0, 0]);
    for (id, value) in settings {
        hello.extend_from_slice(&id.to_be_bytes());
        hello.extend_from_slice(&value.to_be_bytes());
    }
    hello.extend_from_slice(&[0, 0, 0, FRAME_SETTINGS, FLAG_ACK, 0, 0, 0, 0]);
    c.send(&hello);
    c
}

/// Resets stream `id` with `code`.
fn h2_reset(c: &mut RawConn, id: u32, code: u32) {
    c.send(&h2_reset_frame(id, code));
}

/// A RST_STREAM frame for stream `id` with `code`.
fn h2_reset_frame(id: u32, code: u32) -> Vec<u8> {
    let mut rst = vec![0, 0, 4, FRAME_RST_STREAM, 0];
    rst.extend_from_slice(&id.to_be_bytes());
    rst.extend_from_slice(&code.to_be_bytes());
    rst
}

/// Sends `GET http://x{path}` as stream 1: one HEADERS frame with END_STREAM | END_HEADERS, its
/// block HPACK literals without Huffman (`:path` and `:authority` with indexed names).
fn h2_get_stream_1(c: &mut RawConn, path: &str) {
    h2_get_stream_1_named(c, path, Some("x"), None);
}

/// [`h2_get_stream_1`] with the given `:authority` and `host` header, each left out when `None`.
fn h2_get_stream_1_named(c: &mut RawConn, path: &str, authority: Option<&str>, host: Option<&str>) {
    h2_get(c, 1, path, authority, host);
}

/// [`h2_get_stream_1_named`] on stream `id`.
fn h2_get(c: &mut RawConn, id: u32, path: &str, authority: Option<&str>, host: Option<&str>) {
    c.send(&h2_get_frame(id, path, authority, host));
}

/// `n` client stream ids from `first` on (odd, two apart).
fn stream_ids(first: u32, n: u32) -> Vec<u32> {
    (0..n).map(|i| first + 2 * i).collect()
}

/// A GET of `path` (`:authority: x`) on each stream of `ids`, as one write.
fn h2_get_frames(ids: &[u32], path: &str) -> Vec<u8> {
    ids.iter()
        .flat_map(|&id| h2_get_frame(id, path, Some("x"), None))
        .collect()
}

/// The HEADERS frame [`h2_get`] sends.
fn h2_get_frame(id: u32, path: &str, authority: Option<&str>, host: Option<&str>) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x44, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    if let Some(authority) = authority {
        block.extend_from_slice(&[0x41, authority.len() as u8]);
        block.extend_from_slice(authority.as_bytes());
    }
    if let Some(host) = host {
        // Literal without indexing, indexed name `host` (static index 38).
        block.extend_from_slice(&[0x0f, 38 - 15, host.len() as u8]);
        block.extend_from_slice(host.as_bytes());
    }
    let mut headers = vec![0, 0, block.len() as u8, FRAME_HEADERS, 0x05];
    headers.extend_from_slice(&id.to_be_bytes());
    headers.extend_from_slice(&block);
    headers
}

/// Reads frames until the gateway closes the connection (or `RAW_READ_LIMIT` passes), answering
/// its PINGs as a client must (a graceful GOAWAY waits for one round trip).
fn h2_frames_until_close(c: &mut RawConn) -> Vec<Frame> {
    h2_read_until_close(c, true).0
}

/// Reads frames until the gateway closes the connection (`true`) or `RAW_READ_LIMIT` passes
/// (`false`), answering its PINGs if `answer_pings`.
fn h2_read_until_close(c: &mut RawConn, answer_pings: bool) -> (Vec<Frame>, bool) {
    h2_read(c, answer_pings, RAW_READ_LIMIT)
}

/// Reads frames for `limit` or until the gateway closes the connection (`true`), answering PINGs.
fn h2_read_for(c: &mut RawConn, limit: Duration) -> (Vec<Frame>, bool) {
    h2_read(c, true, limit)
}

fn h2_read(c: &mut RawConn, answer_pings: bool, limit: Duration) -> (Vec<Frame>, bool) {
    use std::io::{Read, Write};
    let mut closed = false;
    let deadline = std::time::Instant::now() + limit;
    c.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // A frame read in part when the time runs out stays in `c.buf` for the next read: dropped,
    // the next read would take the middle of a frame for a frame's head.
    let (buf, mut frames) = (&mut c.buf, Vec::new());
    let mut chunk = [0u8; 16 << 10];
    while std::time::Instant::now() < deadline {
        match c.stream.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let frame = Frame {
                kind: buf[3],
                flags: buf[4],
                stream: u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
                payload: buf[9..9 + len].to_vec(),
            };
            buf.drain(..9 + len);
            if answer_pings && frame.kind == FRAME_PING && frame.flags & FLAG_ACK == 0 {
                let mut ack = vec![0, 0, 8, FRAME_PING, FLAG_ACK, 0, 0, 0, 0];
                ack.extend_from_slice(&frame.payload);
                let _ = c.stream.write_all(&ack);
            }
            frames.push(frame);
        }
    }
    (frames, closed)
}

/// Reads frames (answering PINGs) until `done` holds for all those read so far, the gateway closes
/// the connection, or `limit` passes; returns them.
fn h2_read_until(c: &mut RawConn, limit: Duration, done: impl Fn(&[Frame]) -> bool) -> Vec<Frame> {
    let deadline = std::time::Instant::now() + limit;
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        let (frames, closed) = h2_read_for(c, Duration::from_millis(100));
        seen.extend(frames);
        if closed || done(&seen) {
            break;
        }
    }
    seen
}

/// A WINDOW_UPDATE frame opening stream `id`'s window (the connection's for 0) by `increment`.
fn h2_window_update_frame(id: u32, increment: u32) -> Vec<u8> {
    let mut update = vec![0, 0, 4, FRAME_WINDOW_UPDATE, 0];
    update.extend_from_slice(&id.to_be_bytes());
    update.extend_from_slice(&increment.to_be_bytes());
    update
}

/// Opens the windows of the connection and of each stream of `ids` by `size`, then reads until
/// every one of them has ended or the connection closes (at most 20 s): each stream's body, and
/// the streams that ended.
fn h2_read_all(
    c: &mut RawConn,
    ids: &[u32],
    size: u32,
) -> (
    std::collections::HashMap<u32, Vec<u8>>,
    std::collections::HashSet<u32>,
) {
    c.send(&h2_window_update_frame(0, ids.len() as u32 * size));
    for &id in ids {
        c.send(&h2_window_update_frame(id, size));
    }
    let data = |f: &&Frame| f.kind == FRAME_DATA;
    let ends = |f: &&Frame| data(f) && f.flags & FLAG_END_STREAM != 0;
    let frames = h2_read_until(c, Duration::from_secs(20), |seen| {
        seen.iter().filter(ends).count() == ids.len()
    });
    let mut received = std::collections::HashMap::<u32, Vec<u8>>::new();
    for f in frames.iter().filter(data) {
        received
            .entry(f.stream)
            .or_default()
            .extend_from_slice(&f.payload);
    }
    (
        received,
        frames.iter().filter(ends).map(|f| f.stream).collect(),
    )
}

/// The error code of the first RST_STREAM of stream `id` among `frames`, if there is one.
fn reset_code(frames: &[Frame], id: u32) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.kind == FRAME_RST_STREAM && f.stream == id)
        .map(error_code)
}

/// The error code of a RST_STREAM or GOAWAY frame.
fn error_code(frame: &Frame) -> u32 {
    let at = if frame.kind == FRAME_GOAWAY { 4 } else { 0 };
    u32::from_be_bytes(frame.payload[at..at + 4].try_into().expect("an error code"))
}

#[test]
fn over_http2_an_answer_the_client_takes_no_window_for_is_reset() {
    // The client opens no stream window: the answer's body cannot go out. After the idle timeout
    // the stream is reset and its body dropped, and then the connection idles out.
    let (gw, _echo) = quickly_idle_gateway();
    let mut c = h2_raw_with(&gw, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]);
    h2_get_stream_1(&mut c, "/echo/bytes/100000");
    let (frames, closed) = h2_read_until_close(&mut c, true);
    assert!(closed, "the connection was closed");
    assert!(
        frames
            .iter()
            .any(|f| f.kind == FRAME_HEADERS && f.stream == 1),
        "the answer's head went out"
    );
    assert!(
        !frames.iter().any(|f| f.kind == FRAME_DATA && f.stream == 1),
        "no body without a window"
    );
    assert_eq!(reset_code(&frames, 1).expect("stream 1 reset"), CANCEL);
}

#[test]
fn over_http2_a_window_opened_a_byte_at_a_time_does_not_keep_an_answer() {
    // The client opens its stream window one byte four times per idle timeout: each opening lets
    // a byte out, but the answer never moves on by a frame's worth, so the stream is reset as
    // if no window had opened (it was kept as long as the trickle lasted).
    let (gw, _echo) = quickly_idle_gateway();
    let mut c = h2_raw_with(&gw, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]);
    h2_get_stream_1(&mut c, "/echo/bytes/100000");
    let mut seen = Vec::new();
    // Forty openings: ten idle timeouts, far past the one the reset is due after.
    for _ in 0..40 {
        c.send(&h2_window_update_frame(1, 1));
        let (frames, closed) = h2_read_for(&mut c, Duration::from_millis(75));
        seen.extend(frames);
        if closed || reset_code(&seen, 1).is_some() {
            break;
        }
    }
    assert_eq!(
        reset_code(&seen, 1).expect("stream 1 reset while its window opened a byte at a time"),
        CANCEL
    );
    let sent: usize = seen
        .iter()
        .filter(|f| f.kind == FRAME_DATA && f.stream == 1)
        .map(|f| f.payload.len())
        .sum();
    assert!(
        sent < 100,
        "a byte per opening went out, not the answer: {sent}"
    );
}

#[test]
fn over_http2_answers_a_client_does_not_read_wait_at_their_backend() {
    // Twenty streams ask for 3 MB answers and open no window to read them. Five fit the
    // connection's 16 MiB answer budget; the other fifteen wait at the backend, each within its
    // stream window, without holding up another client's call on the same backend connection.
    // Once the client reads, every answer arrives whole.
    const STREAMS: u32 = 20;
    const SIZE: usize = 3_000_000;
    let (gw, _echo) = patient_gateway();
    let waits = || metric(&gw, "switchyard_answer_budget_waits_total");
    let mut c = h2_raw_with(&gw, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]);
    let ids = stream_ids(1, STREAMS);
    for &id in &ids {
        h2_get(&mut c, id, &format!("/echo/bytes/{SIZE}"), Some("x"), None);
    }
    assert!(
        poll_until(400, || waits() >= 15),
        "fifteen answers wait for the budget: {}",
        waits()
    );
    let other = gw.get("/echo/bytes/10");
    assert_eq!(
        other.status, 200,
        "another client's call goes through meanwhile"
    );
    // The client reads: windows for the connection and for every stream.
    let (received, ended) = h2_read_all(&mut c, &ids, SIZE as u32);
    for id in &ids {
        assert_eq!(
            received.get(id).map(Vec::len),
            Some(SIZE),
            "stream {id}'s answer, whole"
        );
    }
    assert_eq!(ended.len(), ids.len(), "every stream ended");
    assert_eq!(waits(), 15, "five answers fit the budget at once");
}

#[test]
fn over_http2_a_head_answer_does_not_wait_for_the_answer_budget() {
    // Four unread answers of 4 MB hold the connection's 16 MiB budget; a HEAD of the same size
    // on that connection is answered at once, its body never sent.
    let (gw, _echo) = patient_gateway();
    let mut c = h2_raw_with(&gw, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]);
    for id in [1, 3, 5, 7] {
        h2_get(&mut c, id, "/echo/bytes/4000000", Some("x"), None);
    }
    let heads = |seen: &[Frame]| seen.iter().filter(|f| f.kind == FRAME_HEADERS).count();
    let seen = h2_read_until(&mut c, Duration::from_secs(5), |seen| heads(seen) == 4);
    assert_eq!(heads(&seen), 4, "the four answers hold the budget");
    // HEAD: `:method` as a literal with its indexed name (static index 2).
    let mut head = h2_get_frame(9, "/echo/bytes/4000000", Some("x"), None);
    head.splice(9..10, [0x02, 4, b'H', b'E', b'A', b'D']);
    head[2] += 5;
    c.send(&head);
    let is_answer = |f: &Frame| f.kind == FRAME_HEADERS && f.stream == 9;
    let seen = h2_read_until(&mut c, Duration::from_secs(5), |seen| {
        seen.iter().any(is_answer)
    });
    let answered = seen
        .into_iter()
        .find(is_answer)
        .expect("the HEAD answered while the budget is held");
    // `:status: 200` is static index 8.
    assert_eq!(answered.payload.first(), Some(&0x88));
    assert!(answered.flags & FLAG_END_STREAM != 0, "no body follows");
}

#[test]
fn over_http2_graphql_answers_a_client_does_not_read_are_built_a_few_at_a_time() {
    // Twenty streams ask GraphQL for 3 MB answers and open no window to read them. GraphQL
    // answers are built whole, so they cannot wait at their backend. As their calls answer, each
    // takes one of the connection's eight places to be built in: the first five fit the 16 MiB
    // answer budget once built and give their places back, the next eight find the budget spent
    // and keep theirs, and the last seven wait for a place with their calls' answers: fifteen
    // waits. Once the client reads, every answer arrives whole.
    const STREAMS: u32 = 20;
    let value = format!("\"{}\"", "x".repeat(3_000_000));
    let answer = value.clone();
    let backend = ScriptedBackend::start(move |_| {
        Answer::Reply(ForwardingResp {
            status_code: 200,
            headers: Vec::new(),
            body: answer.clone().into_bytes().into(),
        })
    });
    let gw = Gateway::builder()
        .shards(Some(1))
        .args(&["--request-timeout-ms", "120000"])
        .start();
    register(&gw, "svc", "s1", &backend.addr);
    let waits = || metric(&gw, "switchyard_answer_budget_waits_total");
    let mut c = h2_raw_with(&gw, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]);
    let ids = stream_ids(1, STREAMS);
    for &id in &ids {
        h2_get(&mut c, id, "/graphql?query=%7Bsvc%7D", Some("x"), None);
    }
    assert!(
        poll_until(400, || waits() >= 15),
        "fifteen waits: {}",
        waits()
    );
    assert_eq!(
        metric(&gw, "switchyard_in_flight_requests"),
        7,
        "the seven queries waiting for a place are not built yet"
    );
    let whole = format!("{{\"data\":{{\"svc\":{value}}}}}");
    let (received, _) = h2_read_all(&mut c, &ids, whole.len() as u32);
    for id in &ids {
        let body = received.get(id).map(|b| b.as_slice());
        assert!(
            body == Some(whole.as_bytes()),
            "stream {id}'s answer, whole"
        );
    }
}

#[test]
fn over_http2_graphql_queries_waiting_for_their_backends_hold_no_place() {
    // Twenty queries on one connection, read as they come, each calling a backend that answers
    // only once all twenty calls have reached it: a query waiting for its backend does not hold
    // one of the connection's eight places to build answers in, so all twenty are called at once.
    const STREAMS: u32 = 20;
    let backend =
        ScriptedBackend::start(|call| Answer::Hold("all".into(), Box::new(Answer::describe(call))));
    let gw = Gateway::builder().shards(Some(1)).start();
    register(&gw, "svc", "s1", &backend.addr);
    let mut c = h2_raw_with(&gw, &[]);
    let ids = stream_ids(1, STREAMS);
    for &id in &ids {
        h2_get(&mut c, id, "/graphql?query=%7Bsvc%7D", Some("x"), None);
    }
    backend.wait_for_calls("every query's call", |calls| calls.len() == ids.len());
    backend.release("all");
    let ended = |seen: &[Frame]| {
        seen.iter()
            .filter(|f| f.kind == FRAME_DATA && f.flags & FLAG_END_STREAM != 0)
            .count()
    };
    let seen = h2_read_until(&mut c, Duration::from_secs(10), |seen| {
        ended(seen) == ids.len()
    });
    assert_eq!(ended(&seen), ids.len(), "every query answered");
}

#[test]
fn clients_that_go_away_mid_answer_do_not_end_the_backend_connection() {
    // Each round a client asks for 128 answers of 1 MiB, reads none, and closes its connection
    // once the backend has every call: the gateway cancels 128 calls whose answers are still
    // arriving. h2 ended a connection once it had reset 1,024 streams over its life (each frame
    // of a cancelled answer that came after h2 forgot the stream counted), so the gateway ended
    // its own backend connection and failed the other calls on it; now it stays.
    const ROUNDS: usize = 12;
    const STREAMS: u32 = 128;
    let backend = ScriptedBackend::start(|_| {
        Answer::Reply(ForwardingResp {
            status_code: 200,
            headers: Vec::new(),
            body: vec![b'x'; 1 << 20].into(),
        })
    });
    let gw = Gateway::builder().shards(Some(1)).start();
    register(&gw, "svc", "s1", &backend.addr);
    for round in 1..=ROUNDS {
        let mut c = h2_raw_with(&gw, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]);
        let path = format!("/svc/round{round}");
        c.send(&h2_get_frames(&stream_ids(1, STREAMS), &path));
        backend.wait_for_calls("the round's calls", |calls| {
            calls.len() >= round * STREAMS as usize
        });
        drop(c);
    }
    let last = gw.get("/svc/last");
    assert_eq!(last.status, 200);
    let calls = backend.calls();
    let last = calls
        .iter()
        .find(|c| c.path == "/last")
        .expect("the last call");
    assert_eq!(last.conn, 1, "the gateway kept its backend connection");
    assert_eq!(backend.connections(), 1);
}

#[test]
fn over_http2_trailers_with_a_pseudo_header_reset_the_stream() {
    // RFC 9113 §8.1: trailers carry no pseudo-header fields; a request with them is malformed, a
    // stream error, and is not served.
    let (gw, _echo) = one_shard_gateway(&[]);
    let mut c = h2_raw(&gw);
    let mut head = h2_get_frame(1, "/echo/x", Some("x"), None);
    head[4] = 0x04; // END_HEADERS alone: the trailers end the stream.
    c.send(&head);
    // `:path: /b`, a literal with the indexed name `:path` (static index 4).
    let block = [0x04, 2, b'/', b'b'];
    let mut trailers = vec![0, 0, block.len() as u8, FRAME_HEADERS, 0x05, 0, 0, 0, 1];
    trailers.extend_from_slice(&block);
    c.send(&trailers);
    let seen = h2_read_until(&mut c, Duration::from_secs(5), |seen| {
        seen.iter().any(|f| {
            f.stream == 1
                && (f.kind == FRAME_RST_STREAM
                    || (f.kind == FRAME_DATA || f.kind == FRAME_HEADERS)
                        && f.flags & FLAG_END_STREAM != 0)
        })
    });
    assert!(
        !seen
            .iter()
            .any(|f| f.kind == FRAME_HEADERS && f.stream == 1),
        "the request was not answered"
    );
    assert_eq!(
        reset_code(&seen, 1).expect("stream 1 reset"),
        PROTOCOL_ERROR
    );
    assert_eq!(metric(&gw, "switchyard_upstream_calls_total"), 0);
}

#[test]
fn over_http2_a_client_that_never_answers_the_goaway_ping_is_closed() {
    // Idle: GOAWAY and its PING go out; the client says nothing, and the connection still ends.
    let (gw, _echo) = quickly_idle_gateway();
    let mut c = h2_raw(&gw);
    let (frames, closed) = h2_read_until_close(&mut c, false);
    assert!(frames.iter().any(|f| f.kind == FRAME_GOAWAY), "GOAWAY sent");
    assert!(closed, "the connection was closed");
}

#[test]
fn over_http2_an_initial_window_size_above_the_maximum_is_a_flow_control_error() {
    // RFC 9113 §6.5.2: a SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 is a connection error of type
    // FLOW_CONTROL_ERROR (h2spec 6.5.2 and 6.9.2 check it); the h2 crate said PROTOCOL_ERROR.
    let (gw, _echo) = patient_gateway();
    let mut c = h2_raw_with(&gw, &[(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 31)]);
    let frames = h2_frames_until_close(&mut c);
    let goaway = frames
        .iter()
        .find(|f| f.kind == FRAME_GOAWAY)
        .expect("GOAWAY for a window size over the maximum");
    assert_eq!(error_code(goaway), FLOW_CONTROL_ERROR);
}

#[test]
fn over_http2_the_largest_initial_window_size_is_taken() {
    // The bound's other side: 2^31-1 itself is a window size, and a request is answered under it.
    let (gw, _echo) = patient_gateway();
    let mut c = h2_raw_with(&gw, &[(SETTINGS_INITIAL_WINDOW_SIZE, (1 << 31) - 1)]);
    h2_get_stream_1(&mut c, "/echo/hello");
    let ended = |f: &Frame| f.stream == 1 && f.flags & FLAG_END_STREAM != 0;
    let frames = h2_read_until(&mut c, RAW_READ_LIMIT, |seen| seen.iter().any(ended));
    assert!(
        frames.iter().any(|f| f.kind == FRAME_DATA && f.stream == 1),
        "stream 1 answered"
    );
    assert!(!frames.iter().any(|f| f.kind == FRAME_GOAWAY), "no GOAWAY");
}

/// A GET of `path` on stream `id` with `more` HPACK representations after its pseudo-headers,
/// which are literals without indexing (so the dynamic table holds only what `more` puts there).
fn h2_get_frame_with(id: u32, path: &str, more: &[u8]) -> Vec<u8> {
    let mut block = h2_get_pseudo_fields(path);
    block.extend_from_slice(more);
    let mut headers = vec![0, 0, block.len() as u8, FRAME_HEADERS, 0x05];
    headers.extend_from_slice(&id.to_be_bytes());
    headers.extend_from_slice(&block);
    headers
}

/// The HPACK representation of a GET of `path` with `:authority: x`, its `:path` and
/// `:authority` literals without indexing.
fn h2_get_pseudo_fields(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 1, b'x']);
    block
}

/// An HPACK literal with incremental indexing and a new name.
fn hpack_indexed_literal(name: &str, value: &str) -> Vec<u8> {
    let mut field = vec![0x40, name.len() as u8];
    field.extend_from_slice(name.as_bytes());
    field.push(value.len() as u8);
    field.extend_from_slice(value.as_bytes());
    field
}

#[test]
fn over_http2_a_malformed_header_field_resets_its_stream_only() {
    // RFC 9113 §8.1.1: a request with a field HTTP/2 does not allow (an upper-case name, a value
    // with a line feed, an unknown pseudo-header) is malformed, a stream error. The h2 crate took
    // it for a broken compression context and ended the connection, every other request on it
    // with it. The field still takes its place in the HPACK table: stream 3 names the valid field
    // added after it by its index, stream 5 the malformed one.
    let (gw, _echo) = patient_gateway();
    let mut c = h2_raw(&gw);
    let mut fields = hpack_indexed_literal("X-Bad", "1");
    fields.extend(hpack_indexed_literal("x-good", "yes"));
    let mut frames = h2_get_frame_with(1, "/echo/a", &fields);
    frames.extend(h2_get_frame_with(3, "/echo/b", &[0x80 | 62]));
    frames.extend(h2_get_frame_with(5, "/echo/c", &[0x80 | 63]));
    let mut more = hpack_indexed_literal("x-lf", "a\nb");
    more.extend(hpack_indexed_literal(":foo", "1"));
    frames.extend(h2_get_frame_with(7, "/echo/d", &more));
    frames.extend(h2_get_frame_with(9, "/echo/e", &[]));
    c.send(&frames);
    let ended = |f: &Frame, id: u32| {
        f.stream == id && f.kind == FRAME_DATA && f.flags & FLAG_END_STREAM != 0
    };
    let frames = h2_read_until(&mut c, Duration::from_secs(10), |frames| {
        frames.iter().any(|f| f.kind == FRAME_GOAWAY)
            || (frames.iter().any(|f| ended(f, 3)) && frames.iter().any(|f| ended(f, 9)))
    });
    assert!(
        !frames.iter().any(|f| f.kind == FRAME_GOAWAY),
        "no GOAWAY for a malformed request"
    );
    for id in [1, 5, 7] {
        assert_eq!(reset_code(&frames, id), Some(PROTOCOL_ERROR), "stream {id}");
    }
    let body = |id: u32| -> serde_json::Value {
        let bytes: Vec<u8> = frames
            .iter()
            .filter(|f| f.kind == FRAME_DATA && f.stream == id)
            .flat_map(|f| f.payload.iter().copied())
            .collect();
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("stream {id}'s echo: {e}"))
    };
    let echoed = body(3);
    assert_eq!(echoed["path"], "/b");
    assert!(
        echoed["headers"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["x-good", "yes"])),
        "{echoed}"
    );
    assert_eq!(body(9)["path"], "/e");
}

/// A HEADERS frame on stream `id` that ends its stream, carrying `fragment` of a header block
/// whose CONTINUATION frames follow (no END_HEADERS).
fn h2_headers_to_continue(id: u32, fragment: &[u8]) -> Vec<u8> {
    let mut frame = vec![0, 0, fragment.len() as u8, FRAME_HEADERS, FLAG_END_STREAM];
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(fragment);
    frame
}

/// The CONTINUATION frame that ends stream `id`'s header block with `fragment`.
fn h2_last_continuation(id: u32, fragment: &[u8]) -> Vec<u8> {
    let mut frame = vec![
        0,
        0,
        fragment.len() as u8,
        FRAME_CONTINUATION,
        FLAG_END_HEADERS,
    ];
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(fragment);
    frame
}

#[test]
fn over_http2_a_malformed_field_in_a_continued_block_resets_its_stream_only() {
    // A malformed field before a CONTINUATION: the stream was reset at once, and the
    // CONTINUATION, left without a block, ended the connection. And a fragment that ended inside
    // the field after a malformed one (here a connection-specific field, which h2 checks after
    // decoding) forgot the malformed one: the request went on without it.
    let (gw, _echo) = patient_gateway();
    let mut c = h2_raw(&gw);
    let mut frames = Vec::new();
    let mut first = h2_get_pseudo_fields("/echo/a");
    first.extend(hpack_indexed_literal("X-Bad", "1"));
    frames.extend(h2_headers_to_continue(1, &first));
    frames.extend(h2_last_continuation(
        1,
        &hpack_indexed_literal("x-more", "2"),
    ));
    let mut block = h2_get_pseudo_fields("/echo/b");
    block.extend(hpack_indexed_literal("connection", "x"));
    block.extend(hpack_indexed_literal("x-after", "1"));
    let cut = block.len() - 2;
    frames.extend(h2_headers_to_continue(3, &block[..cut]));
    frames.extend(h2_last_continuation(3, &block[cut..]));
    frames.extend(h2_get_frame_with(5, "/echo/c", &[]));
    c.send(&frames);
    let ended = |f: &Frame| f.stream == 5 && f.kind == FRAME_DATA && f.flags & FLAG_END_STREAM != 0;
    let frames = h2_read_until(&mut c, Duration::from_secs(10), |frames| {
        frames.iter().any(|f| f.kind == FRAME_GOAWAY || ended(f))
    });
    assert!(
        !frames.iter().any(|f| f.kind == FRAME_GOAWAY),
        "no GOAWAY for a malformed request"
    );
    for id in [1, 3] {
        assert_eq!(reset_code(&frames, id), Some(PROTOCOL_ERROR), "stream {id}");
    }
    assert!(frames.iter().any(ended), "stream 5 answered");
}

#[test]
fn over_http2_a_header_block_left_open_has_the_header_timeout() {
    // HEADERS without END_HEADERS, and the CONTINUATION that would end the block never sent: no
    // other frame may come meanwhile, so once --header-timeout-ms has passed the connection gets
    // GOAWAY PROTOCOL_ERROR and is closed, as an unfinished HTTP/1.1 head gets 408. It lived
    // until the idle timeout (here ten minutes), with a stream open on it for as long as that
    // stream lasted too; stream 1 below is one, kept by a call far longer than the read.
    let (gw, _echo) = one_shard_gateway(&[
        "--header-timeout-ms",
        "300",
        "--idle-timeout-ms",
        "600000",
        "--request-timeout-ms",
        "600000",
    ]);
    let mut c = h2_raw(&gw);
    h2_get(&mut c, 1, "/echo/delay/60000", Some("x"), None);
    c.send(&h2_headers_to_continue(3, &h2_get_pseudo_fields("/echo/a")));
    let (frames, closed) = h2_read_until_close(&mut c, true);
    let goaway = frames
        .iter()
        .find(|f| f.kind == FRAME_GOAWAY)
        .expect("GOAWAY");
    assert_eq!(error_code(goaway), PROTOCOL_ERROR);
    assert!(closed, "the connection was closed");
}

#[test]
fn over_http2_a_zero_window_update_on_a_stream_resets_that_stream_only() {
    // RFC 9113 §6.9: a zero increment is a stream error on a stream (a connection error only on
    // the connection); the h2 crate ended the whole connection, the other request with it.
    let (gw, _echo) = patient_gateway();
    let mut c = h2_raw(&gw);
    h2_get(&mut c, 1, "/echo/delay/300", Some("x"), None);
    h2_get(&mut c, 3, "/echo/delay/5000", Some("x"), None);
    c.send(&h2_window_update_frame(3, 0));
    let frames = h2_read_until(&mut c, Duration::from_secs(10), |frames| {
        frames
            .iter()
            .any(|f| f.kind == FRAME_GOAWAY || (f.kind == FRAME_HEADERS && f.stream == 1))
    });
    assert!(
        !frames.iter().any(|f| f.kind == FRAME_GOAWAY),
        "no GOAWAY for a stream's zero WINDOW_UPDATE"
    );
    assert_eq!(reset_code(&frames, 3), Some(PROTOCOL_ERROR));
    let answer = frames
        .iter()
        .find(|f| f.kind == FRAME_HEADERS && f.stream == 1)
        .expect("the other request is answered");
    assert_eq!(answer.payload.first(), Some(&0x88), "status 200");
}

#[test]
fn over_http2_a_burst_of_cancelled_requests_keeps_the_connection() {
    // A client that abandons 200 requests at once, before the gateway has taken them up: the
    // `h2` crate ended the connection after 20 such resets (its default; 128 after the first
    // fix, which took a reset stream for an open one), and the request still running on it with
    // it. The gateway's own rapid-reset rule judges these; after 300 answered requests 200
    // resets are not most of the connection's streams.
    let (gw, _echo) = patient_gateway();
    let mut c = h2_raw(&gw);
    let mut next = 1u32;
    for _batch in 0..3 {
        let ids = stream_ids(next, 100);
        next += 200;
        c.send(&h2_get_frames(&ids, "/-/health"));
        let frames = h2_read_until(&mut c, Duration::from_secs(10), |frames| {
            frames.iter().filter(|f| f.kind == FRAME_HEADERS).count() >= ids.len()
        });
        assert_eq!(
            frames.iter().filter(|f| f.kind == FRAME_HEADERS).count(),
            ids.len(),
            "the batch is answered"
        );
    }
    let slow = next;
    h2_get(&mut c, slow, "/echo/delay/300", Some("x"), None);
    await_call_in_flight(&gw);
    let burst: Vec<u8> = (1..=200u32)
        .map(|i| slow + 2 * i)
        .flat_map(|id| {
            let mut frames = h2_get_frame(id, "/echo/delay/5000", Some("x"), None);
            frames.extend(h2_reset_frame(id, CANCEL));
            frames
        })
        .collect();
    c.send(&burst);
    let frames = h2_read_until(&mut c, Duration::from_secs(10), |frames| {
        frames
            .iter()
            .any(|f| f.kind == FRAME_GOAWAY || (f.kind == FRAME_HEADERS && f.stream == slow))
    });
    let goaway = frames.iter().find(|f| f.kind == FRAME_GOAWAY);
    assert!(
        goaway.is_none(),
        "GOAWAY for a burst of cancelled requests: {:?}",
        goaway.map(|f| String::from_utf8_lossy(&f.payload[8..]).into_owned())
    );
    let answer = frames
        .iter()
        .find(|f| f.kind == FRAME_HEADERS && f.stream == slow)
        .expect("the request in flight is answered");
    assert_eq!(answer.payload.first(), Some(&0x88), "status 200");
}

#[test]
fn over_http2_a_client_that_resets_most_of_its_streams_is_closed() {
    // The rapid-reset shape (CVE-2023-44487): every stream starts a backend call, which the
    // client's reset cancels. Rounds of 100 until the gateway sends GOAWAY (bounded). Each round's
    // resets wait until its calls are in flight: streams reset before the gateway accepts them are
    // the `h2` crate's to bound, and it does.
    let (gw, _echo) = patient_gateway();
    let mut c = h2_raw(&gw);
    let mut next = 1u32;
    let mut calm = None;
    for _round in 0..20 {
        let ids = stream_ids(next, 100);
        next += 200;
        // A write fails once the gateway has closed the connection (its GOAWAY is read below):
        // it may do so while a round is on its way.
        if !c.try_send(&h2_get_frames(&ids, "/echo/delay/5000")) {
            break;
        }
        // Until the calls are in flight, or the gateway has closed the connection (then only the
        // scrape's own connection is open, and the GOAWAY is among the frames read below).
        let closed = || metric(&gw, "switchyard_connections_open") <= 1;
        assert!(
            poll_until(400, || in_flight(&gw) >= 100 || closed()),
            "the round's calls never got in flight"
        );
        if closed() {
            break;
        }
        let resets: Vec<u8> = ids
            .iter()
            .flat_map(|&id| h2_reset_frame(id, CANCEL))
            .collect();
        if !c.try_send(&resets) {
            break;
        }
        let (frames, closed) = h2_read_for(&mut c, Duration::from_millis(100));
        calm = frames.into_iter().find(|f| f.kind == FRAME_GOAWAY);
        if calm.is_some() || closed {
            break;
        }
    }
    if calm.is_none() {
        calm = h2_read_for(&mut c, Duration::from_millis(100))
            .0
            .into_iter()
            .find(|f| f.kind == FRAME_GOAWAY);
    }
    let goaway = calm.expect("GOAWAY for a client that resets most of its streams");
    assert_eq!(error_code(&goaway), ENHANCE_YOUR_CALM);
    assert!(
        metric(&gw, "switchyard_upstream_calls_total") < 20 * 100,
        "the connection was closed before every round's calls were made"
    );
}

#[test]
fn sigterm_sends_goaway_to_http2_connections_and_finishes_their_streams() {
    let (mut gw, _echo) = one_shard_gateway(&[]);
    let mut idle = h2_raw(&gw);
    let mut busy = h2_raw(&gw);
    h2_get_stream_1(&mut busy, "/echo/delay/1500");
    await_call_in_flight(&gw);

    gw.proc.signal(libc::SIGTERM);
    let idle_frames = h2_frames_until_close(&mut idle);
    assert!(
        idle_frames.iter().any(|f| f.kind == FRAME_GOAWAY),
        "an idle HTTP/2 connection gets GOAWAY before it is closed"
    );
    let frames = h2_frames_until_close(&mut busy);
    let goaway = frames.iter().position(|f| f.kind == FRAME_GOAWAY);
    assert!(goaway.is_some(), "the busy connection gets GOAWAY too");
    // The stream opened before the drain is answered in full: `:status 200` (static index 8) and
    // its body, ended.
    stream_1_answered(&frames);
    let status = gw.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", gw.proc.describe());
}

#[test]
fn a_draining_gateway_answers_on_every_idle_connection_then_closes_them() {
    // Two shards: the kernel spreads the connections over both, so some idle connections sit on
    // a shard with nothing in flight while the other shard's call keeps the process draining.
    let mut gw = Gateway::builder().shards(Some(2)).start();
    let _echo = Echo::registered(&gw, "echo", "e1");
    let open = |n| -> Vec<RawConn> {
        (0..n)
            .map(|_| {
                let mut c = RawConn::connect(gw.addr);
                c.send(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n");
                assert_eq!(c.read_response(false).status, 200);
                c
            })
            .collect()
    };
    let (asking, silent) = (open(8), open(8));
    let slow = slow_call_in_flight(&gw, 3000);
    gw.proc.signal(libc::SIGTERM);
    // Every kept-alive connection still gets an answer while the process drains: 503 from
    // /-/ready once its shard has seen the drain, and the connection closed after it.
    for mut c in asking {
        let mut answered = None;
        for _ in 0..400 {
            c.send(b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n");
            let r = c.read_response(false);
            if r.status == 503 {
                answered = Some(r);
                break;
            }
            assert_eq!(r.status, 200);
            std::thread::sleep(Duration::from_millis(5));
        }
        let r = answered.expect("/-/ready never turned 503 during the drain");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.expect_closed(), "closed after its answer");
    }
    assert_eq!(slow.join().expect("slow call").status, 200);
    // Once the drain is over the connections that stayed idle are closed, with nothing sent.
    for mut c in silent {
        assert!(c.expect_closed(), "an idle connection was left open");
    }
    let status = gw.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", gw.proc.describe());
}

#[test]
fn an_http2_call_longer_than_the_idle_timeout_is_answered_then_the_connection_idles_out() {
    let (gw, _echo) = quickly_idle_gateway();
    let mut c = h2_raw(&gw);
    // Four idle timeouts long: the connection is busy, not idle, while its stream is open.
    h2_get_stream_1(&mut c, "/echo/delay/1200");
    let frames = h2_frames_until_close(&mut c);
    let end = stream_1_answered(&frames);
    // Then idle: closed with GOAWAY, not cut off.
    let goaway = frames.iter().position(|f| f.kind == FRAME_GOAWAY);
    assert!(
        goaway > Some(end),
        "GOAWAY after the answer: {goaway:?} vs {end}"
    );
}

#[test]
fn over_http2_the_authority_is_the_host_the_backend_sees() {
    // The connection idles out after the answer, which ends the read below.
    let (gw, _echo) = quickly_idle_gateway();
    let mut c = h2_raw(&gw);
    // RFC 9113 §8.3.1: :authority stands over a `host` header that differs.
    h2_get_stream_1_named(&mut c, "/echo/hello", Some("x"), Some("b.example"));
    let frames = h2_frames_until_close(&mut c);
    stream_1_answered(&frames);
    let seen: serde_json::Value =
        serde_json::from_slice(&stream_1_body(&frames)).expect("the echo's JSON");
    assert_eq!(echoed_values(&seen, "host"), ["x"]);
}

#[test]
fn over_http2_a_request_needs_an_authority_or_one_host() {
    let (gw, _echo) = quickly_idle_gateway();
    // A host header alone names the authority, as in HTTP/1.1.
    let mut c = h2_raw(&gw);
    h2_get_stream_1_named(&mut c, "/echo/hello", None, Some("h.example"));
    let frames = h2_frames_until_close(&mut c);
    stream_1_answered(&frames);
    let seen: serde_json::Value =
        serde_json::from_slice(&stream_1_body(&frames)).expect("the echo's JSON");
    assert_eq!(echoed_values(&seen, "host"), ["h.example"]);
    // Neither: malformed (RFC 9113 §8.3.1), refused as nginx refuses it.
    let mut c = h2_raw(&gw);
    h2_get_stream_1_named(&mut c, "/echo/hello", None, None);
    let error = stream_1_refused_400(&h2_frames_until_close(&mut c));
    assert_eq!(error["error"]["service"], "echo");
}

#[test]
fn over_http2_a_host_standing_for_the_authority_must_be_a_host() {
    let (gw, _echo) = quickly_idle_gateway();
    // RFC 9112 §3.2, which HTTP/2 keeps for the host header: `a/b` would reach the backend as a
    // Host it could take for a path.
    let mut c = h2_raw(&gw);
    h2_get_stream_1_named(&mut c, "/echo/hello", None, Some("a/b"));
    let error = stream_1_refused_400(&h2_frames_until_close(&mut c));
    assert_eq!(error["error"]["code"], "BAD_REQUEST", "{error}");
    // :authority is held to the same rule: the http crate's URI parser takes `h:80x`.
    let mut c = h2_raw(&gw);
    h2_get_stream_1_named(&mut c, "/echo/hello", Some("h:80x"), None);
    let error = stream_1_refused_400(&h2_frames_until_close(&mut c));
    assert_eq!(error["error"]["code"], "BAD_REQUEST", "{error}");
}

/// Checks that stream 1 was answered `:status 400` (static index 12) among `frames`; returns the
/// error's JSON body.
fn stream_1_refused_400(frames: &[Frame]) -> serde_json::Value {
    let answer = frames
        .iter()
        .find(|f| f.kind == FRAME_HEADERS && f.stream == 1)
        .expect("response headers on stream 1");
    assert_eq!(answer.payload.first(), Some(&0x8c), "status 400");
    serde_json::from_slice(&stream_1_body(frames)).expect("the error's JSON")
}

/// The DATA payload of stream 1 among `frames`.
fn stream_1_body(frames: &[Frame]) -> Vec<u8> {
    frames
        .iter()
        .filter(|f| f.kind == FRAME_DATA && f.stream == 1)
        .flat_map(|f| f.payload.iter().copied())
        .collect()
}

/// A one-shard gateway whose connections idle out after 300 ms, with the echo backend registered.
fn quickly_idle_gateway() -> (Gateway, Echo) {
    one_shard_gateway(&["--idle-timeout-ms", "300"])
}

/// A one-shard gateway started with `args`, with the echo backend registered.
fn one_shard_gateway(args: &[&str]) -> (Gateway, Echo) {
    let gw = Gateway::builder().shards(Some(1)).args(args).start();
    let echo = Echo::registered(&gw, "echo", "e1");
    (gw, echo)
}

/// Checks that stream 1 was answered `:status 200` (static index 8) and ended among `frames`;
/// returns the index of the frame that ended it.
fn stream_1_answered(frames: &[Frame]) -> usize {
    let answer = frames
        .iter()
        .find(|f| f.kind == FRAME_HEADERS && f.stream == 1)
        .expect("response headers on stream 1");
    assert_eq!(answer.payload.first(), Some(&0x88), "status 200");
    frames
        .iter()
        .position(|f| {
            f.stream == 1
                && f.flags & FLAG_END_STREAM != 0
                && (f.kind == FRAME_DATA || f.kind == FRAME_HEADERS)
        })
        .expect("stream 1 ended")
}

/// A gateway whose calls may take a minute, with the echo backend registered.
fn patient_gateway() -> (Gateway, Echo) {
    one_shard_gateway(&["--request-timeout-ms", "120000"])
}

#[test]
fn a_client_that_hangs_up_cancels_its_backend_call() {
    let (gw, _echo) = patient_gateway();
    let mut c = RawConn::connect(gw.addr);
    c.send(b"GET /echo/delay/60000 HTTP/1.1\r\nHost: x\r\n\r\n");
    await_call_in_flight(&gw);
    drop(c);
    assert_call_cancelled(&gw);
}

/// The one call in flight was cancelled: its slot is free (without cancellation it stays taken
/// for the minute the backend takes) and it was counted as a client abort.
fn assert_call_cancelled(gw: &Gateway) {
    assert!(
        poll_until(400, || in_flight(gw) == 0),
        "the call outlived its client"
    );
    assert_eq!(metric(gw, "switchyard_client_aborts_total"), 1);
}

#[test]
fn an_http2_stream_reset_by_its_client_cancels_its_backend_call() {
    let (gw, _echo) = patient_gateway();
    let mut c = h2_raw(&gw);
    h2_get_stream_1(&mut c, "/echo/delay/60000");
    await_call_in_flight(&gw);
    // RST_STREAM (type 3) on stream 1 with CANCEL (8); the connection stays open.
    c.send(&[0, 0, 4, 3, 0, 0, 0, 0, 1, 0, 0, 0, 8]);
    assert_call_cancelled(&gw);
}

#[test]
fn a_request_pipelined_while_the_previous_one_is_answered_is_served() {
    let (gw, _echo) = patient_gateway();
    let mut c = RawConn::connect(gw.addr);
    c.send(b"GET /echo/delay/300 HTTP/1.1\r\nHost: x\r\n\r\n");
    await_call_in_flight(&gw);
    // Arrives while the gateway watches the connection for a hang-up.
    c.send(b"GET /echo/second HTTP/1.1\r\nHost: x\r\n\r\n");
    let first = c.read_response(false);
    let second = c.read_response(false);
    assert_eq!((first.status, second.status), (200, 200));
    assert!(second.text().contains("/second"), "{}", second.text());
    assert_eq!(metric(&gw, "switchyard_client_aborts_total"), 0);
}

#[test]
fn connections_over_the_limit_are_closed_at_once() {
    let gw = Gateway::builder()
        .shards(Some(1))
        .args(&["--max-connections", "1"])
        .start();
    // Readiness polling may have left a connection closing, and while it counts, a connection
    // of ours would be the one over the limit.
    await_no_connections(&gw);
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
    await_no_connections(&gw);
    assert!(metric(&gw, "switchyard_connections_refused_total") >= 1);
}

/// Waits (bounded) until no connection to the gateway counts any more, looking at the kernel's
/// socket table: a check over a connection (a scrape of `/-/metrics`, a health probe) would take
/// the one slot of a `--max-connections 1` gateway, be refused while another connection still
/// counts, and leave a closing connection of its own behind.
fn await_no_connections(gw: &Gateway) {
    assert!(
        poll_until(400, || !connections_held(gw.addr.port())),
        "connections to {} never went away\n{}",
        gw.addr,
        gw.proc.describe()
    );
}
