//! Every error the gateway produces itself (CONTRACT §3, SPEC "Gateway error codes"): exact
//! status, `content-type: application/json`, `{"error":{code,message,service,request_id}}` and an
//! `x-request-id` header equal to `error.request_id`. Malformed HTTP/1.1 framing must also close
//! the connection, so nothing smuggled after it is ever read as a request.

mod support;

use support::scripted::{json_reply, Answer, ScriptedBackend};
use support::*;
use switchyard::proto::Header;

fn setup_with(gw: Gateway) -> (Gateway, Echo) {
    let echo = Echo::registered(&gw, "echo", "e1");
    (gw, echo)
}

// ----- routing and instances -----------------------------------------------------------------

#[test]
fn unknown_service_is_404() {
    let (gw, _echo) = setup_with(Gateway::start());
    for h2 in [false, true] {
        let r = if h2 {
            gw.get_h2("/nosuch/x")
        } else {
            gw.get("/nosuch/x")
        };
        let err = assert_error(&r, 404, "SERVICE_NOT_FOUND");
        // The contract allows the name or null; the name is what a client can act on.
        assert!(
            err["service"] == "nosuch" || err["service"].is_null(),
            "service in {err}"
        );
    }
}

#[test]
fn error_keeps_the_client_request_id() {
    let gw = Gateway::start();
    let r = http("GET", gw.url("/nosuch"))
        .header("x-request-id", "rid-from-client")
        .send();
    let err = assert_error(&r, 404, "SERVICE_NOT_FOUND");
    assert_eq!(err["request_id"], "rid-from-client");
}

#[test]
fn a_request_refused_while_it_is_read_keeps_the_client_request_id() {
    let gw = Gateway::builder()
        .args(&["--max-body-bytes", "1000"])
        .start();
    let (gw, _echo) = setup_with(gw);
    // Refused for its body, after the head was read: over HTTP/1.1 and HTTP/2.
    for h2 in [false, true] {
        let mut req = http("POST", gw.url("/echo/raw"))
            .header("x-request-id", "rid-413")
            .body(vec![b'a'; 5000]);
        if h2 {
            req = req.h2();
        }
        let r = req.send();
        let err = assert_error(&r, 413, "BODY_TOO_LARGE");
        assert_eq!(err["request_id"], "rid-413", "h2 {h2}");
        assert_eq!(err["service"], "echo", "h2 {h2}");
    }
    // Refused for its framing, as its head is checked: the head was read whole, so its id and
    // its service are known. An id that is not usable (a control character) is replaced by a
    // generated one, as on any other answer.
    for (sent, kept) in [("rid-smuggle", true), ("a\tb", false)] {
        let req = format!(
            "POST /echo/a HTTP/1.1\r\nHost: gw\r\nX-Request-Id: {sent}\r\n\
             Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        );
        let reply = raw_exchange(gw.addr, req.as_bytes());
        let err = assert_error(&reply.response(), 400, "BAD_REQUEST");
        let id = err["request_id"].as_str().unwrap_or_default();
        if kept {
            assert_eq!(id, sent);
        } else {
            assert!(
                id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()),
                "{id:?}"
            );
        }
        assert_eq!(err["service"], "echo", "{sent:?}");
    }
}

#[test]
fn a_head_request_refused_while_it_is_read_gets_no_body() {
    let gw = Gateway::builder()
        .args(&["--max-body-bytes", "1000"])
        .start();
    let (gw, _echo) = setup_with(gw);
    let reply = raw_exchange(
        gw.addr,
        b"HEAD /echo/a HTTP/1.1\r\nHost: gw\r\nContent-Length: 99999\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&reply.bytes);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "a HEAD answer ends with its head: {text:?}"
    );
    assert!(
        text.to_ascii_lowercase().contains("content-length: "),
        "the length the body would have had is kept: {text:?}"
    );
    assert!(reply.closed, "a refused request closes the connection");
}

#[test]
fn backend_down_is_503_no_healthy_instance() {
    let gw = Gateway::start();
    let dead = DeadAddr::new();
    register(&gw, "down", "d1", &dead.addr);
    let err = assert_error(&gw.get("/down/x"), 503, "NO_HEALTHY_INSTANCE");
    assert_eq!(err["service"], "down");
}

// ----- deadlines -----------------------------------------------------------------------------

#[test]
fn per_service_timeout_from_config_is_504() {
    // A delay 25 times the deadline: the outcome does not depend on how fast the machine is.
    let gw = Gateway::builder()
        .config("[services.slow]\ntimeout_ms = 200\n")
        .start();
    let echo = Echo::start("s1");
    register(&gw, "slow", "s1", &echo.addr);
    register(&gw, "echo", "e1", &echo.addr);
    let err = assert_error(&gw.get("/slow/delay/5000"), 504, "UPSTREAM_TIMEOUT");
    assert_eq!(err["service"], "slow");
    // The setting is per service: the same delay-free path elsewhere is fine, and a short delay
    // under the default deadline (10 s) still succeeds on another service.
    assert_echo_ok(&gw.get("/slow/fast"));
    assert_echo_ok(&gw.get("/echo/delay/300"));
}

#[test]
fn request_timeout_flag_is_504() {
    let gw = Gateway::builder()
        .args(&["--request-timeout-ms", "200"])
        .start();
    let (gw, _echo) = setup_with(gw);
    let err = assert_error(&gw.get("/echo/delay/5000"), 504, "UPSTREAM_TIMEOUT");
    assert_eq!(err["service"], "echo");
    let err = assert_error(&gw.get_h2("/echo/delay/5000"), 504, "UPSTREAM_TIMEOUT");
    assert_eq!(err["service"], "echo");
}

#[test]
fn request_timeout_from_environment_is_504() {
    let gw = Gateway::builder()
        .env("SWITCHYARD_REQUEST_TIMEOUT_MS", "200")
        .start();
    let (gw, _echo) = setup_with(gw);
    assert_error(&gw.get("/echo/delay/5000"), 504, "UPSTREAM_TIMEOUT");
}

/// The tests keep a `SWITCHYARD_*` variable exported in the developer's shell from the gateways
/// they start, but a variable a test sets itself is the test's: the test above, run by a copy of
/// this test binary whose own environment exports another value, still gets its 200 ms.
#[test]
fn a_variable_the_test_sets_wins_over_the_same_one_exported() {
    const TEST: &str = "request_timeout_from_environment_is_504";
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args(["--exact", TEST, "--test-threads", "1"])
        .env("SWITCHYARD_REQUEST_TIMEOUT_MS", "60000");
    let ran = run_bounded(TEST, cmd, std::time::Duration::from_secs(120));
    assert!(
        ran.status.success() && ran.stdout.contains("test result: ok. 1 passed"),
        "{TEST} with SWITCHYARD_REQUEST_TIMEOUT_MS=60000 exported: {:?}\n{}\n{}",
        ran.status,
        ran.stdout,
        ran.stderr
    );
}

// ----- backend gRPC errors -------------------------------------------------------------------

#[test]
fn grpc_status_codes_map_like_grpc_gateway() {
    let (gw, _echo) = setup_with(Gateway::start());
    let table = [
        (1, 499, "CANCELLED"),
        (2, 500, "UNKNOWN"),
        (3, 400, "INVALID_ARGUMENT"),
        (4, 504, "DEADLINE_EXCEEDED"),
        (5, 404, "NOT_FOUND"),
        (6, 409, "ALREADY_EXISTS"),
        (7, 403, "PERMISSION_DENIED"),
        (8, 429, "RESOURCE_EXHAUSTED"),
        (9, 400, "FAILED_PRECONDITION"),
        (10, 409, "ABORTED"),
        (11, 400, "OUT_OF_RANGE"),
        (12, 501, "UNIMPLEMENTED"),
        (13, 500, "INTERNAL"),
        (14, 503, "UNAVAILABLE"),
        (15, 500, "DATA_LOSS"),
        (16, 401, "UNAUTHENTICATED"),
    ];
    for (code, status, name) in table {
        let r = gw.get(&format!("/echo/grpc-error/{code}"));
        let err = assert_error(&r, status, name);
        assert_eq!(err["message"], format!("echo error {code}"), "grpc-message");
        assert_eq!(err["service"], "echo");
    }
    // Same mapping over HTTP/2.
    assert_error(&gw.get_h2("/echo/grpc-error/7"), 403, "PERMISSION_DENIED");
}

/// A backend (or a proxy in front of it) that answers an HTTP status of its own: `/{http}` is
/// answered with that `:status` and no gRPC fields, `/{http}/{grpc-status}` with that status and
/// a `grpc-status` too.
fn http_status_backend() -> ScriptedBackend {
    ScriptedBackend::start(|call| {
        let mut parts = call.path.trim_start_matches('/').split('/');
        let http: u16 = parts.next().unwrap().parse().expect("an HTTP status");
        let fields = match parts.next() {
            None => vec![("content-type".into(), "text/plain".into())],
            Some(code) => vec![
                ("content-type".into(), "application/grpc".into()),
                ("grpc-status".into(), code.into()),
                ("grpc-message".into(), "from%20the%20backend".into()),
            ],
        };
        Answer::Head(http, fields)
    })
}

#[test]
fn backend_http_statuses_map_like_grpc_then_like_grpc_gateway() {
    let gw = Gateway::start();
    let backend = http_status_backend();
    register(&gw, "svc", "s1", &backend.addr);
    // gRPC's mapping for answers without grpc-status, then contract §3's.
    let table = [
        (400, 500, "INTERNAL"),
        (401, 401, "UNAUTHENTICATED"),
        (403, 403, "PERMISSION_DENIED"),
        (404, 501, "UNIMPLEMENTED"),
        (429, 503, "UNAVAILABLE"),
        (502, 503, "UNAVAILABLE"),
        (503, 503, "UNAVAILABLE"),
        (504, 503, "UNAVAILABLE"),
        (418, 500, "UNKNOWN"),
        (500, 500, "UNKNOWN"),
    ];
    for (http, status, code) in table {
        for h2 in [false, true] {
            let path = format!("/svc/{http}");
            let r = if h2 { gw.get_h2(&path) } else { gw.get(&path) };
            let err = assert_error(&r, status, code);
            assert_eq!(
                err["message"],
                format!("backend answered HTTP {http} instead of a gRPC response")
            );
            assert_eq!(err["service"], "svc");
        }
    }
    // A grpc-status beside the HTTP status is the answer (the mapping is for answers without one).
    let err = assert_error(&gw.get("/svc/503/5"), 404, "NOT_FOUND");
    assert_eq!(err["message"], "from the backend");
    // Each of these calls was answered, so none was sent twice.
    assert_eq!(backend.calls().len(), 2 * table.len() + 1);
}

/// A backend whose answers are as large as the path asks:
/// - `/headers/{n}/{bytes}`: a `ForwardingResp` with `n` headers `x-h{i}` of `bytes` bytes each;
/// - `/metadata/{bytes}`: a gRPC answer whose HTTP/2 header block carries a field of `bytes` bytes;
/// - `/message/{n}`: grpc-status 13 with a grpc-message of `n` snowmen (three bytes each).
fn big_answer_backend() -> ScriptedBackend {
    ScriptedBackend::start(|call| {
        let parts: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
        let number = |i: usize| -> usize { parts[i].parse().expect("a number") };
        match parts[0] {
            "headers" => {
                let mut resp = json_reply(200, "{}".into());
                resp.headers = (0..number(1))
                    .map(|i| Header {
                        name: format!("x-h{i}"),
                        value: "v".repeat(number(2)),
                    })
                    .collect();
                Answer::Reply(resp)
            }
            "metadata" => Answer::ReplyWithMetadata(
                json_reply(200, "{}".into()),
                vec![("x-big".into(), "m".repeat(number(1)))],
            ),
            "message" => Answer::Head(
                200,
                vec![
                    ("content-type".into(), "application/grpc".into()),
                    ("grpc-status".into(), "13".into()),
                    ("grpc-message".into(), "%E2%98%83".repeat(number(1))),
                ],
            ),
            other => panic!("no such answer: {other}"),
        }
    })
}

#[test]
fn backend_answer_headers_over_the_limits_are_502() {
    let gw = Gateway::start();
    let backend = big_answer_backend();
    register(&gw, "big", "b1", &backend.addr);
    for h2 in [false, true] {
        let get = |path: &str| if h2 { gw.get_h2(path) } else { gw.get(path) };
        // At the limits the client's request headers have (--max-headers 100, --max-header-bytes
        // 32768), the answer goes through.
        let r = get("/big/headers/100/1");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-h99"), Some("v"));
        // `x-hN: ` and CRLF around 3000 bytes: ten headers are 30,080 bytes, eleven 33,089.
        let r = get("/big/headers/10/3000");
        assert_eq!(r.status, 200, "{}", r.text());
        for (path, over) in [
            ("/big/headers/101/1", "101 headers (at most 100)"),
            ("/big/headers/11/3000", "33089 bytes (at most 32768)"),
        ] {
            let err = assert_error(&get(path), 502, "UPSTREAM_PROTOCOL_ERROR");
            assert_eq!(
                err["message"],
                format!("backend answer headers over the limit: {over}"),
                "h2 {h2}"
            );
            assert_eq!(err["service"], "big");
        }
    }
}

#[test]
fn backend_header_block_over_the_header_list_limit_is_502() {
    let gw = Gateway::start();
    let backend = big_answer_backend();
    register(&gw, "big", "b1", &backend.addr);
    for h2 in [false, true] {
        let get = |path: &str| if h2 { gw.get_h2(path) } else { gw.get(path) };
        // gRPC metadata past the 64 KiB header list the gateway takes from a backend: the call's
        // stream is reset, not the connection, and the next answer on it goes through.
        let err = assert_error(&get("/big/metadata/70000"), 502, "UPSTREAM_PROTOCOL_ERROR");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.starts_with(
                "backend sent an answer head that is malformed or over the 65536-byte header \
                 list limit: "
            ),
            "{message}"
        );
        let r = get("/big/metadata/1000");
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.header("x-big").is_none(),
            "gRPC metadata is not forwarded"
        );
    }
}

#[test]
fn an_answer_h2_refuses_is_told_from_a_reset() {
    // A content-length shorter than the message: h2 refuses the DATA past it. That is the
    // backend breaking HTTP/2, not resetting the call.
    let gw = Gateway::start();
    let backend = ScriptedBackend::start(|_| {
        Answer::ReplyWithMetadata(
            json_reply(200, "{}".into()),
            vec![("content-length".into(), "3".into())],
        )
    });
    register(&gw, "bad", "b1", &backend.addr);
    let err = assert_error(&gw.get("/bad/x"), 502, "UPSTREAM_PROTOCOL_ERROR");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.starts_with("backend sent an answer that breaks HTTP/2: "),
        "{message}"
    );
}

#[test]
fn long_grpc_message_is_cut_in_the_error_body() {
    let gw = Gateway::start();
    let backend = big_answer_backend();
    register(&gw, "big", "b1", &backend.addr);
    let err = assert_error(&gw.get("/big/message/5000"), 500, "INTERNAL");
    // 1024 bytes at most: 341 snowmen (1023 bytes), then the mark of a cut.
    let message = err["message"].as_str().unwrap();
    assert_eq!(message, format!("{}…", "☃".repeat(341)));
    let err = assert_error(&gw.get("/big/message/3"), 500, "INTERNAL");
    assert_eq!(err["message"], "☃☃☃");
}

#[test]
fn backend_rst_is_502() {
    let (gw, _echo) = setup_with(Gateway::start());
    let err = assert_error(&gw.get("/echo/rst"), 502, "UPSTREAM_PROTOCOL_ERROR");
    assert_eq!(err["service"], "echo");
    // The gateway recovers: the next request on the same backend works.
    assert_echo_ok(&gw.get("/echo/after-rst"));
}

#[test]
fn backend_garbage_protobuf_is_502() {
    let (gw, _echo) = setup_with(Gateway::start());
    assert_error(&gw.get("/echo/garbage"), 502, "UPSTREAM_PROTOCOL_ERROR");
    assert_echo_ok(&gw.get("/echo/after-garbage"));
}

#[test]
fn backend_answer_that_is_not_grpc_is_502() {
    let (gw, _echo) = setup_with(Gateway::start());
    // A well-framed, decodable message under `content-type: text/html`.
    let err = assert_error(&gw.get("/echo/not-grpc"), 502, "UPSTREAM_PROTOCOL_ERROR");
    assert!(
        err["message"].as_str().unwrap().contains("text/html"),
        "{err}"
    );
    assert_echo_ok(&gw.get("/echo/after-not-grpc"));
}

#[test]
fn backend_answer_over_max_grpc_message_is_502() {
    let gw = Gateway::builder()
        .args(&["--max-grpc-message-bytes", "4096"])
        .start();
    let (gw, _echo) = setup_with(gw);
    let ok = gw.get("/echo/bytes/1000");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body.len(), 1000);
    assert_error(&gw.get("/echo/bytes/20000"), 502, "UPSTREAM_PROTOCOL_ERROR");
}

// ----- limits ---------------------------------------------------------------------------------

#[test]
fn body_over_limit_is_413_content_length() {
    let gw = Gateway::builder()
        .args(&["--max-body-bytes", "1000"])
        .start();
    let (gw, _echo) = setup_with(gw);
    let ok = http("POST", gw.url("/echo/raw"))
        .body(vec![b'a'; 1000])
        .send();
    assert_eq!(ok.status, 200, "exactly the limit is fine: {}", ok.text());
    let r = http("POST", gw.url("/echo/raw"))
        .body(vec![b'a'; 1001])
        .send();
    let err = assert_error(&r, 413, "BODY_TOO_LARGE");
    assert_eq!(err["service"], "echo");
    let r = http("POST", gw.url("/echo/raw"))
        .h2()
        .body(vec![b'a'; 5000])
        .send();
    assert_error(&r, 413, "BODY_TOO_LARGE");
}

#[test]
fn body_over_limit_is_413_chunked() {
    let gw = Gateway::builder()
        .args(&["--max-body-bytes", "1000"])
        .start();
    let (gw, _echo) = setup_with(gw);
    let mut req =
        b"POST /echo/raw HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        req.extend_from_slice(b"190\r\n"); // 400 bytes each, 1200 in all
        req.extend_from_slice(&[b'b'; 400]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let mut c = RawConn::connect(gw.addr);
    c.send(&req);
    assert_error(&c.read_response(false), 413, "BODY_TOO_LARGE");
}

#[test]
fn body_over_limit_with_expect_gets_413_instead_of_100() {
    let gw = Gateway::builder()
        .args(&["--max-body-bytes", "1000"])
        .start();
    let (gw, _echo) = setup_with(gw);
    let mut c = RawConn::connect(gw.addr);
    c.send(
        b"POST /echo/raw HTTP/1.1\r\nHost: gw\r\nContent-Length: 5000\r\n\
          Expect: 100-continue\r\n\r\n",
    );
    let r = c.read_response(false);
    assert!(
        r.informational.is_empty(),
        "no 100 Continue for a body that will be refused"
    );
    assert_error(&r, 413, "BODY_TOO_LARGE");
}

#[test]
fn a_trickled_http2_preface_gets_408_like_a_trickled_head() {
    // The header timeout counts from the connection's first byte whatever the bytes turn out to
    // be: a client sending the HTTP/2 preface a byte at a time, each byte well within the idle
    // timeout, is cut off as one trickling an HTTP/1.1 head is. Before, every byte got the idle
    // timeout afresh: the trickle below took all 24 bytes (2.4 s) and became an HTTP/2 connection.
    const TRICKLE_GAP: std::time::Duration = std::time::Duration::from_millis(100);
    let gw = Gateway::builder()
        .args(&["--header-timeout-ms", "300"])
        .start();
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut c = RawConn::connect(gw.addr);
    let mut sent = 0;
    for byte in preface.chunks(1) {
        if !c.try_send(byte) {
            break;
        }
        sent += 1;
        if c.answered_within(TRICKLE_GAP) {
            break;
        }
    }
    let (bytes, closed) = c.read_to_close();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        sent < preface.len(),
        "the whole preface was taken: {text:?}"
    );
    // The bytes so far are answered as the HTTP/1.1 head they might begin: 408. (Had the trickle
    // outrun a very slow machine's timer up to `PRI * HTTP/2`, that request line's version is
    // refused with 400: still refused, still before the preface is complete.)
    assert!(
        text.starts_with("HTTP/1.1 408 ") || text.starts_with("HTTP/1.1 400 "),
        "{text:?}"
    );
    assert!(closed, "connection closed after the refusal");
}

/// Sends `head`, which asks for `100 Continue` before a 3-byte body, and not the body: the
/// gateway must answer the final `status` at once, without inviting the body, and close the
/// connection (the body may or may not follow). Before, it sent 100, waited for the body and
/// answered only then: no final answer came within the read limit.
fn assert_refused_without_continue(gw: &Gateway, head: &str, status: u16, code: &str) -> Resp {
    let mut c = RawConn::connect(gw.addr);
    c.send(head.as_bytes());
    let r = c.read_response(false);
    assert!(
        r.informational.is_empty(),
        "{head:?}: 100 Continue for a request that is refused"
    );
    assert_error(&r, status, code);
    assert_eq!(r.header("connection"), Some("close"), "{head:?}");
    assert!(c.expect_closed(), "{head:?}: connection not closed");
    r
}

/// A request head that expects `100 Continue` before a 3-byte body, with `extra` header lines.
fn expecting(request_line: &str, extra: &str) -> String {
    format!(
        "{request_line} HTTP/1.1\r\nHost: gw\r\n{extra}Expect: 100-continue\r\n\
         Content-Length: 3\r\n\r\n"
    )
}

#[test]
fn a_request_that_will_be_refused_is_answered_without_100_continue() {
    // RFC 9110 §10.1.1: the expectation lets a client avoid sending a body that will be refused.
    // Whatever the router can refuse from the head alone is answered at once, as nginx does.
    let gw = Gateway::builder()
        .args(&["--registry-token", "s3cret"])
        .start();
    let r = assert_refused_without_continue(
        &gw,
        &expecting("POST /nosuch/a", "X-Request-Id: rid-early\r\n"),
        404,
        "SERVICE_NOT_FOUND",
    );
    // Told like any other refusal after the head: the client's id, the service its path names.
    let err = r.json()["error"].clone();
    assert_eq!(
        (&err["request_id"], &err["service"]),
        (&"rid-early".into(), &"nosuch".into())
    );
    assert_eq!(r.header("x-request-id"), Some("rid-early"));
    assert_refused_without_continue(&gw, &expecting("POST /", ""), 404, "SERVICE_NOT_FOUND");
    assert_refused_without_continue(&gw, &expecting("POST /-/nothing", ""), 404, "NOT_FOUND");
    let r = assert_refused_without_continue(
        &gw,
        &expecting("POST /-/health", ""),
        405,
        "METHOD_NOT_ALLOWED",
    );
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = assert_refused_without_continue(
        &gw,
        &expecting("PUT /graphql", ""),
        405,
        "METHOD_NOT_ALLOWED",
    );
    assert_eq!(r.header("allow"), Some("GET, POST"));
    // Registry writes: not authorised (401), or naming no valid service (400).
    let r = assert_refused_without_continue(
        &gw,
        &expecting("PUT /-/services/web/instances/w1", ""),
        401,
        "UNAUTHORIZED",
    );
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_refused_without_continue(
        &gw,
        &expecting(
            "PUT /-/services/Web/instances/w1",
            "Authorization: Bearer s3cret\r\n",
        ),
        400,
        "BAD_REQUEST",
    );
    // One that will be taken is invited as before: an authorised registration.
    let mut c = RawConn::connect(gw.addr);
    let body = br#"{"address":"127.0.0.1:1"}"#;
    c.send(
        format!(
            "PUT /-/services/web/instances/w1 HTTP/1.1\r\nHost: gw\r\n\
             Authorization: Bearer s3cret\r\nExpect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let interim = c.read_head();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim:?}");
    c.send(body);
    assert_eq!(c.read_response(false).status, 201);
}

#[test]
fn the_in_flight_limit_refuses_an_expecting_request_before_its_body() {
    let gw = Gateway::builder()
        .shards(Some(1))
        .args(&["--max-in-flight", "1"])
        .start();
    let (gw, _echo) = setup_with(gw);
    // One slow call takes the only slot; the refusal comes while it is in flight.
    let url = gw.url("/echo/delay/3000");
    let slow = std::thread::spawn(move || http("GET", url).send());
    assert!(
        poll_until(400, || support::cluster::metric(
            &gw,
            "switchyard_in_flight_requests"
        ) >= 1),
        "the slow call never showed up as in flight"
    );
    let r =
        assert_refused_without_continue(&gw, &expecting("POST /echo/raw", ""), 503, "OVERLOADED");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(slow.join().expect("slow call").status, 200);
}

#[test]
fn header_section_over_limit_is_431() {
    let gw = Gateway::builder()
        .args(&["--max-header-bytes", "1024"])
        .start();
    let (gw, _echo) = setup_with(gw);
    assert_echo_ok(&http("GET", gw.url("/echo")).header("x-small", "a").send());
    let big = "a".repeat(2000);
    let r = http("GET", gw.url("/echo"))
        .header("x-request-id", "rid-431")
        .header("x-big", &big)
        .send();
    let error = assert_error(&r, 431, "HEADERS_TOO_LARGE");
    // The request line names the service, as over HTTP/2 and for every other refusal; the
    // client's id is kept when the head came whole.
    assert_eq!(error["service"], "echo", "{error}");
    assert_eq!(error["request_id"], "rid-431", "{error}");
    assert_eq!(r.header("x-request-id"), Some("rid-431"));
    // A head still unfinished when it passes the limit: its line and its complete field lines
    // are all there is to go by.
    let endless = format!(
        "GET /echo/hello HTTP/1.1\r\nHost: h\r\nX-Request-Id: rid-cut\r\nX-Big: {}",
        "a".repeat(100_000)
    );
    let r = raw_exchange(gw.addr, endless.as_bytes()).response();
    let error = assert_error(&r, 431, "HEADERS_TOO_LARGE");
    assert_eq!(error["service"], "echo", "{error}");
    assert_eq!(error["request_id"], "rid-cut", "{error}");
    // Over HTTP/2 the same JSON refusal, for a list between the limit and the h2 crate's hard cap
    // (twice the limit), past which the crate refuses it while decoding.
    let over = "a".repeat(1500);
    let r = http("GET", gw.url("/echo"))
        .h2()
        .header("x-big", &over)
        .send();
    assert_error(&r, 431, "HEADERS_TOO_LARGE");
    let r = http("GET", gw.url("/echo"))
        .h2()
        .header("x-big", &big.repeat(2))
        .send();
    assert_eq!(r.status, 431, "beyond the cap: {}", r.text());
}

#[test]
fn too_many_headers_is_431() {
    let gw = Gateway::builder().args(&["--max-headers", "10"]).start();
    let (gw, _echo) = setup_with(gw);
    let with = |n: usize, h2: bool| {
        let mut req = http("GET", gw.url("/echo")).header("x-request-id", "rid-many");
        if h2 {
            req = req.h2();
        }
        for i in 0..n {
            req = req.header(&format!("x-h{i}"), "v");
        }
        req.send()
    };
    // curl sends Host (over HTTP/2 as :authority, which becomes `host`), User-Agent and Accept:
    // with x-request-id, 4 + 6 is the limit, one more is over it, over either protocol.
    for h2 in [false, true] {
        assert_echo_ok(&with(6, h2));
        let r = with(7, h2);
        let error = assert_error(&r, 431, "HEADERS_TOO_LARGE");
        assert_eq!(error["service"], "echo", "{error}");
        assert_eq!(error["request_id"], "rid-many", "{error}");
    }
}

// ----- malformed HTTP/1.1: 400 and close ------------------------------------------------------

/// Sends `req` on a fresh connection, then expects exactly one 400 BAD_REQUEST and a close.
fn assert_rejected_and_closed(gw: &Gateway, what: &str, req: &[u8]) {
    let reply = raw_exchange(gw.addr, req);
    let r = reply.response();
    assert_eq!(
        r.status,
        400,
        "{what}: expected 400, got {:?}",
        String::from_utf8_lossy(&reply.bytes)
    );
    assert_error(&r, 400, "BAD_REQUEST");
    assert!(reply.closed, "{what}: connection must be closed after 400");
    assert_eq!(
        reply.response_count(),
        1,
        "{what}: nothing after the bad request may be answered: {:?}",
        String::from_utf8_lossy(&reply.bytes)
    );
}

#[test]
fn content_length_and_transfer_encoding_together_is_400() {
    let (gw, _echo) = setup_with(Gateway::start());
    // The smuggling shape: a second request hidden in the body by one of the two framings.
    assert_rejected_and_closed(
        &gw,
        "CL+TE",
        b"POST /echo/a HTTP/1.1\r\nHost: gw\r\nContent-Length: 6\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
          GET /echo/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n",
    );
}

#[test]
fn a_lower_case_method_is_400() {
    let (gw, _echo) = setup_with(Gateway::start());
    // Methods are case-sensitive and ForwardingReq.method is upper-case: `get` is not GET.
    assert_rejected_and_closed(
        &gw,
        "lower-case method",
        b"get /echo/a HTTP/1.1\r\nHost: gw\r\n\r\n",
    );
    let r = http("get", gw.url("/echo/a")).h2().send();
    assert_error(&r, 400, "BAD_REQUEST");
    // An upper-case extension method goes through.
    assert_echo_ok(&http("PROPFIND", gw.url("/echo/a")).h2().send());
}

#[test]
fn two_different_content_lengths_is_400() {
    let (gw, _echo) = setup_with(Gateway::start());
    assert_rejected_and_closed(
        &gw,
        "two CL headers",
        b"POST /echo/a HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
    assert_rejected_and_closed(
        &gw,
        "CL list",
        b"POST /echo/a HTTP/1.1\r\nHost: gw\r\nContent-Length: 5, 6\r\n\r\nhello!",
    );
}

#[test]
fn bad_content_length_is_400() {
    let (gw, _echo) = setup_with(Gateway::start());
    for cl in ["abc", "-5", "5x", "0x10", "+5"] {
        let req = format!("POST /echo/a HTTP/1.1\r\nHost: gw\r\nContent-Length: {cl}\r\n\r\nhello");
        assert_rejected_and_closed(&gw, &format!("Content-Length: {cl}"), req.as_bytes());
    }
}

#[test]
fn bad_chunk_size_is_400() {
    let (gw, _echo) = setup_with(Gateway::start());
    assert_rejected_and_closed(
        &gw,
        "chunk size zz",
        b"POST /echo/a HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n\
          zz\r\nhello\r\n0\r\n\r\n",
    );
    // A size near overflow (2^60 and up) is malformed, as nginx has it, however many leading
    // zeros it has.
    assert_rejected_and_closed(
        &gw,
        "chunk size 2^60",
        b"POST /echo/a HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n\
          00000001000000000000000\r\nhello\r\n0\r\n\r\n",
    );
}

#[test]
fn unsupported_transfer_encoding_is_400() {
    let (gw, _echo) = setup_with(Gateway::start());
    // RFC 9112 §6.3: a request whose final coding is not chunked cannot be framed.
    assert_rejected_and_closed(
        &gw,
        "TE gzip",
        b"POST /echo/a HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    );
}

#[test]
fn obs_fold_header_is_400() {
    let (gw, _echo) = setup_with(Gateway::start());
    assert_rejected_and_closed(
        &gw,
        "obs-fold",
        b"GET /echo/a HTTP/1.1\r\nHost: gw\r\nX-Folded: first\r\n  continued\r\n\r\n",
    );
}

#[test]
fn space_before_colon_is_400() {
    let (gw, _echo) = setup_with(Gateway::start());
    // RFC 9112 §5.1: whitespace between field name and colon must be rejected with 400.
    assert_rejected_and_closed(
        &gw,
        "space before colon",
        b"GET /echo/a HTTP/1.1\r\nHost: gw\r\nX-Bad : v\r\n\r\n",
    );
}

#[test]
fn non_utf8_header_value_is_400() {
    let (gw, _echo) = setup_with(Gateway::start());
    assert_rejected_and_closed(
        &gw,
        "0xff in value",
        b"GET /echo/a HTTP/1.1\r\nHost: gw\r\nX-Bad: caf\xe9 \xff\xfe\r\n\r\n",
    );
}

#[test]
fn non_utf8_header_value_over_h2_is_400() {
    use std::os::unix::ffi::OsStringExt;
    let (gw, _echo) = setup_with(Gateway::start());
    // curl passes the raw bytes on; the contract rejects them before any backend call.
    // Over HTTP/2 the connection may stay open (the stream is answered), so no close is asserted.
    let r = http("GET", gw.url("/echo/a"))
        .h2()
        .arg("-H")
        .arg(std::ffi::OsString::from_vec(
            b"X-Bad: caf\xe9 \xff".to_vec(),
        ))
        .send();
    assert_error(&r, 400, "BAD_REQUEST");
}

#[test]
fn garbage_request_line_is_400() {
    let (gw, _echo) = setup_with(Gateway::start());
    assert_rejected_and_closed(&gw, "garbage", b"HELLO THERE\r\n\r\n");
}

// ----- shape -------------------------------------------------------------------------------------

#[test]
fn every_gateway_response_carries_x_request_id() {
    let (gw, _echo) = setup_with(Gateway::start());
    for path in ["/echo", "/echo/status/500", "/echo/grpc-error/5", "/nosuch"] {
        for h2 in [false, true] {
            let r = if h2 { gw.get_h2(path) } else { gw.get(path) };
            let rid = r.header("x-request-id");
            assert!(
                rid.is_some_and(|s| !s.is_empty()),
                "{path} (h2 {h2}): no x-request-id in {:?}",
                r.headers
            );
        }
    }
}
