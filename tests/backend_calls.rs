//! How calls reach a backend (CONTRACT §1): the `grpc-timeout` header carries the deadline left
//! when the call is sent, after any wait for a stream slot on a backend that allows few
//! concurrent streams; and how the answer's status is read (only from its trailers, or from a
//! Trailers-Only answer's one header block, as gRPC over HTTP/2 specifies).

mod support;

use std::time::{Duration, Instant};

use support::cluster::metric;
use support::scripted::{self, Answer, ScriptedBackend};
use support::*;

/// The gateway's default deadline for a call (`--request-timeout-ms`).
const DEADLINE_MS: u64 = 10_000;
/// How long the test makes a call wait for a stream slot: long enough that a `grpc-timeout`
/// computed before the wait is told from one computed after it, whatever the machine's speed.
const SLOT_WAIT: Duration = Duration::from_secs(1);

/// `grpc-timeout: {n}m` as milliseconds.
fn millis(grpc_timeout: &serde_json::Value) -> u64 {
    let text = grpc_timeout.as_str().expect("a grpc-timeout was sent");
    text.strip_suffix('m')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("grpc-timeout {text:?} is not in milliseconds"))
}

/// Sends `/svc/hold/first` and `/svc/hold/second`, each held by the backend (whose script holds
/// `/hold/{tag}` calls) on a connection's only stream: the first connection's, then (as the pool
/// opens a second when the first is full) the second's. Each connection's SETTINGS are known to
/// the gateway before the next call, so no stream is opened past the limit.
fn hold_both_connections(
    gw: &Gateway,
    backend: &ScriptedBackend,
) -> [std::thread::JoinHandle<Resp>; 2] {
    let hold = |tag: &str| {
        let url = gw.url(&format!("/svc/hold/{tag}"));
        std::thread::spawn(move || http("GET", url).send())
    };
    let first = hold("first");
    backend.wait_for_calls("the first held call", |calls| calls.len() == 1);
    backend.wait_settled(1);
    let second = hold("second");
    backend.wait_for_calls("the second held call", |calls| calls.len() == 2);
    backend.wait_settled(2);
    assert_eq!(backend.connections(), 2);
    [first, second]
}

/// Sends `path` once both connections are held: the call waits in the gateway for a slot.
fn call_waiting_for_a_slot(gw: &Gateway, path: &str) -> std::thread::JoinHandle<Resp> {
    let url = gw.url(path);
    let waiting = std::thread::spawn(move || http("GET", url).send());
    assert!(
        poll_until(READY_TRIES, || metric(gw, "switchyard_in_flight_requests")
            == 3),
        "the third call never reached the gateway"
    );
    waiting
}

#[test]
fn grpc_timeout_is_the_deadline_left_when_the_call_is_sent() {
    // One shard: one pool, whose two connections the calls below fill.
    let gw = Gateway::builder().shards(Some(1)).start();
    let backend = ScriptedBackend::builder()
        .max_concurrent_streams(1)
        .start(|call| match call.path.strip_prefix("/hold/") {
            Some(tag) => Answer::Hold(tag.into(), Box::new(Answer::describe(call))),
            None => Answer::describe(call),
        });
    register(&gw, "svc", "s1", &backend.addr);
    let [first, second] = hold_both_connections(&gw, &backend);

    // The third call waits in the gateway for a slot, for SLOT_WAIT at least.
    let sent = Instant::now();
    let waiting = call_waiting_for_a_slot(&gw, "/svc/deadline");
    let queued = Instant::now();
    std::thread::sleep(SLOT_WAIT);
    let released = Instant::now();
    backend.release("first");
    let r = waiting.join().unwrap();
    let answered = Instant::now();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["conn"], 1, "it took the slot the first call left: {v}");
    // The call's deadline counts from when the gateway read it (after `sent`, before `queued`),
    // and its head was sent once the slot was free (after `released`) and before the answer:
    // so the timeout it carried lies between these bounds.
    let timeout = millis(&v["grpc_timeout"]);
    let waited_at_least = released.duration_since(queued).as_millis() as u64;
    let took_at_most = answered.duration_since(sent).as_millis() as u64;
    assert!(
        timeout <= DEADLINE_MS - waited_at_least,
        "grpc-timeout {timeout}m, but the call waited {waited_at_least} ms of its {DEADLINE_MS} \
         for its slot"
    );
    assert!(
        timeout >= DEADLINE_MS - took_at_most,
        "grpc-timeout {timeout}m, but the call was answered {took_at_most} ms after it was sent"
    );

    backend.release("second");
    for held in [first, second] {
        let r = held.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // No call was sent twice, nor refused for going past the backend's stream limit.
    assert_eq!(backend.calls().len(), 3);
}

#[test]
fn a_call_waiting_for_a_slot_gets_a_new_connection_when_its_backend_drains_the_old_ones() {
    // Both connections the pool may have are full (one stream each); a third call waits for a
    // slot; then the backend drains both connections (GOAWAY) while their calls go on. The third
    // call must not wait for those calls to end, but take a new connection.
    let gw = Gateway::builder()
        .shards(Some(1))
        .args(&["--request-timeout-ms", "8000"])
        .start();
    let backend = ScriptedBackend::builder()
        .max_concurrent_streams(1)
        .start(|call| match call.path.strip_prefix("/hold/") {
            // Held; once let go, GOAWAY on its connection, and held again.
            Some(tag) => Answer::Hold(
                tag.into(),
                Box::new(Answer::GoAwayThen(Box::new(Answer::Hold(
                    format!("{tag}-drained"),
                    Box::new(Answer::describe(call)),
                )))),
            ),
            None => Answer::describe(call),
        });
    register(&gw, "svc", "s1", &backend.addr);
    let [first, second] = hold_both_connections(&gw, &backend);
    let third = call_waiting_for_a_slot(&gw, "/svc/third");
    // Both connections drained, their calls still held.
    backend.release("first");
    backend.release("second");
    let r = third.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["conn"], 3, "a new connection: {}", r.text());

    backend.release("first-drained");
    backend.release("second-drained");
    for held in [first, second] {
        let r = held.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[test]
fn a_backend_that_answers_before_reading_the_whole_request_keeps_its_stream_slots() {
    // The backend answers each call after the first frame of its 200 KB request and never resets
    // the stream; the rest of the request waits for a window it will not open. The gateway's
    // handles were dropped with that data queued, and h2 kept such a stream (and its slot of the
    // backend's two) for the connection's life: the third call waited out its deadline (504). It
    // now resets the stream once the answer is in.
    let gw = Gateway::builder()
        .shards(Some(1))
        .args(&["--request-timeout-ms", "5000"])
        .start();
    let backend = ScriptedBackend::builder()
        .max_concurrent_streams(2)
        .answer_early()
        .start(|_| Answer::Reply(scripted::json_reply(200, "{}".into())));
    register(&gw, "svc", "s1", &backend.addr);
    let body = binary_body(200_000);
    for i in 0..6 {
        let r = http("POST", gw.url(&format!("/svc/{i}")))
            .body(&body)
            .send();
        assert_eq!(r.status, 200, "call {i}: {}", r.text());
    }
    assert_eq!(backend.calls().len(), 6);
}

/// `(name, value)` pairs as the scripted backend takes them.
fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[test]
fn the_status_is_read_from_the_trailers_not_the_headers_before_the_message() {
    // Each answer is a header block that does not end the stream, a message, then trailers; the
    // path says which fields each block carries. A grpc-status in the first block is not the
    // call's status (grpc-go and gRPC's C core ignore it); it was taken for it, over the
    // trailers (the first two rows were answered 502 and 404, the third 403). Two differing
    // grpc-status in the trailers were read as the first (200 for the fourth row).
    let gw = Gateway::start();
    let backend = ScriptedBackend::start(|call| {
        let (status, head, trailers) = match call.path.as_str() {
            "/ok-then-not-found" => (
                200,
                fields(&[("grpc-status", "0")]),
                fields(&[
                    ("grpc-status", "5"),
                    ("grpc-message", "from%20the%20trailers"),
                ]),
            ),
            "/not-found-then-ok" => (
                200,
                fields(&[("grpc-status", "5"), ("grpc-message", "from the head")]),
                fields(&[("grpc-status", "0")]),
            ),
            "/denied-then-none" => (
                200,
                fields(&[("grpc-status", "7")]),
                fields(&[("x-t", "1")]),
            ),
            "/ok-and-not-found" => (
                200,
                vec![],
                fields(&[("grpc-status", "0"), ("grpc-status", "5")]),
            ),
            "/not-found-twice" => (
                200,
                vec![],
                fields(&[("grpc-status", "5"), ("grpc-status", "5")]),
            ),
            // Not an HTTP 200: mapped from its HTTP status, the grpc-status beside it ignored.
            "/unavailable-then-not-found" => (
                503,
                fields(&[("grpc-status", "5")]),
                fields(&[("grpc-status", "5")]),
            ),
            other => panic!("no such answer: {other}"),
        };
        Answer::Full {
            status,
            head,
            message: scripted::json_reply(200, r#"{"ok":true}"#.into()),
            trailers,
        }
    });
    register(&gw, "svc", "s1", &backend.addr);
    let err = assert_error(&gw.get("/svc/ok-then-not-found"), 404, "NOT_FOUND");
    assert_eq!(err["message"], "from the trailers");
    let r = gw.get("/svc/not-found-then-ok");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"ok": true}));
    let err = assert_error(
        &gw.get("/svc/denied-then-none"),
        502,
        "UPSTREAM_PROTOCOL_ERROR",
    );
    assert_eq!(err["message"], "backend answer has no grpc-status");
    let err = assert_error(
        &gw.get("/svc/ok-and-not-found"),
        502,
        "UPSTREAM_PROTOCOL_ERROR",
    );
    assert_eq!(
        err["message"],
        "backend sent conflicting grpc-status values"
    );
    let err = assert_error(&gw.get("/svc/not-found-twice"), 404, "NOT_FOUND");
    assert_eq!(err["message"], "NOT_FOUND");
    let err = assert_error(
        &gw.get("/svc/unavailable-then-not-found"),
        503,
        "UNAVAILABLE",
    );
    assert_eq!(
        err["message"],
        "backend answered HTTP 503 instead of a gRPC response"
    );
    // Every call was answered: none was sent twice.
    assert_eq!(backend.calls().len(), 6);
}

#[test]
fn calls_carry_the_address_as_registered_as_their_authority() {
    // A gRPC client sends its target as given (`localhost:PORT`), and name-based virtual hosts
    // in front of a backend (nginx `grpc_pass` behind a `server_name`, Envoy, an ingress) route
    // on it: the gateway sent the address the name resolved to, and such a proxy answered 404.
    let gw = Gateway::start();
    let backend = ScriptedBackend::start(Answer::describe);
    let by_name = format!("localhost:{}", backend.socket.port());
    assert_eq!(register(&gw, "named", "n1", &by_name).status, 201);
    assert_eq!(register(&gw, "numbered", "i1", &backend.addr).status, 201);
    assert_eq!(gw.get("/named/by-name").status, 200);
    assert_eq!(gw.get_h2("/numbered/by-ip").status, 200);
    let calls = backend.calls();
    let authorities: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c.path.as_str(), c.authority.as_str()))
        .collect();
    assert_eq!(
        authorities,
        [
            ("/by-name", by_name.as_str()),
            ("/by-ip", backend.addr.as_str())
        ]
    );
}

#[test]
fn an_instance_that_moves_leaves_no_connection_to_its_old_address() {
    // A blue-green switch: the instance is registered again at the new backend while the old one
    // still runs. The gateway's connection to the old one is closed, not kept idle for as long
    // as the gateway runs (the pool for an address went only with a removal).
    let gw = Gateway::builder().shards(Some(1)).start();
    let blue = ScriptedBackend::start(Answer::describe);
    let green = ScriptedBackend::start(Answer::describe);
    register(&gw, "svc", "s1", &blue.addr);
    assert_eq!(gw.get("/svc/before").status, 200);
    assert_eq!(blue.connections(), 1);
    register(&gw, "svc", "s1", &green.addr);
    let r = gw.get("/svc/after");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(green.calls().len(), 1);
    blue.wait_ended(1);
    // Registered again where it is (a heartbeat), the instance keeps its connection.
    register(&gw, "svc", "s1", &green.addr);
    assert_eq!(gw.get("/svc/again").status, 200);
    assert_eq!(green.connections(), 1);
}
