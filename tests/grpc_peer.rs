//! Interoperability with a gRPC stack switchyard was not written against: a ForwardingService
//! backend in Python grpcio (`tests/peers/grpc_peer.py`), registered through the admin API and
//! called through REST over HTTP/1.1 and HTTP/2. Method, path, query, headers (with repeats, in
//! order) and body must reach it intact, and its gRPC errors must map like the echo's.
//!
//! Needs `python3` with grpcio and grpcio-tools (installed by `.ci/install-deps`); without them
//! the tests fail with a message saying so rather than skipping.

mod support;

use support::*;

/// One request with everything a ForwardingReq carries, checked field by field at the peer.
fn round_trip(h2: bool) {
    let gw = Gateway::start();
    let peer = GrpcPeer::start();
    register(&gw, "peer", "py1", &peer.addr);

    let body = "grüße from the client\n".as_bytes();
    let mut req = http("POST", gw.url("/peer/p/q%2Fr?a=1&a=2&b"))
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-rep", "1")
        .header("x-one", "z")
        .header("x-rep", "2")
        .body(body);
    if h2 {
        req = req.h2();
    }
    let r = req.send();
    assert_eq!(r.version, if h2 { "2" } else { "1.1" });
    assert_eq!(r.status, 200, "body {}", r.text());
    assert_eq!(r.header("x-peer"), Some("grpcio"));
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    let v = r.json();
    assert_eq!(v["impl"], "grpcio");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/p/q%2Fr");
    assert_eq!(v["query"], "a=1&a=2&b");
    assert_eq!(v["service"], "peer");
    assert_eq!(v["body"], "grüße from the client\n");
    assert_eq!(v["body_len"], body.len());
    assert_eq!(v["graphql_field"], "");
    let rid = r.header("x-request-id").expect("x-request-id");
    assert_eq!(v["request_id"], rid);
    let remote = v["remote_addr"].as_str().expect("remote_addr");
    assert!(remote.starts_with("127.0.0.1:"), "remote_addr {remote}");

    let headers = echoed_headers(&v);
    for (n, _) in &headers {
        assert_eq!(n, &n.to_ascii_lowercase(), "header names lower-case");
        assert!(!n.starts_with(':'), "pseudo-header forwarded: {headers:?}");
    }
    let ours: Vec<_> = headers
        .iter()
        .filter(|(n, _)| n == "x-rep" || n == "x-one")
        .cloned()
        .collect();
    // HTTP/1.1 keeps the exact interleaving. Over HTTP/2 the h2 crate hands the gateway a
    // HeaderMap, which keeps repeats in order but groups them under the name's first appearance
    // (documented in the README).
    let expected = if h2 {
        [("x-rep", "1"), ("x-rep", "2"), ("x-one", "z")]
    } else {
        [("x-rep", "1"), ("x-one", "z"), ("x-rep", "2")]
    };
    let expected: Vec<_> = expected
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(ours, expected);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "content-type" && v == "text/plain; charset=utf-8"),
        "content-type forwarded: {headers:?}"
    );
}

#[test]
fn grpcio_peer_round_trip_http1() {
    round_trip(false);
}

#[test]
fn grpcio_peer_round_trip_http2() {
    round_trip(true);
}

#[test]
fn grpcio_peer_get_without_body_and_plain_path() {
    let gw = Gateway::start();
    let peer = GrpcPeer::start();
    register(&gw, "peer", "py1", &peer.addr);
    for h2 in [false, true] {
        let r = if h2 {
            gw.get_h2("/peer")
        } else {
            gw.get("/peer")
        };
        assert_eq!(r.status, 200, "body {}", r.text());
        let v = r.json();
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/");
        assert_eq!(v["query"], "");
        assert_eq!(v["body"], "");
        assert_eq!(v["body_len"], 0);
    }
}

#[test]
fn grpcio_peer_binary_body_intact() {
    let gw = Gateway::start();
    let peer = GrpcPeer::start();
    register(&gw, "peer", "py1", &peer.addr);
    // The peer decodes non-UTF-8 bodies as latin-1, which maps byte b to code point b.
    let body = binary_body(512);
    let r = http("PUT", gw.url("/peer/bin"))
        .header("content-type", "application/octet-stream")
        .body(&body)
        .send();
    assert_eq!(r.status, 200, "body {}", r.text());
    let v = r.json();
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["body_len"], 512);
    let text: Vec<u8> = v["body"]
        .as_str()
        .unwrap()
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("latin-1 char"))
        .collect();
    assert_eq!(text, body);
}

#[test]
fn grpcio_peer_errors_map_to_http() {
    let gw = Gateway::start();
    let peer = GrpcPeer::start();
    register(&gw, "peer", "py1", &peer.addr);
    for (code, status, name) in [
        (7, 403, "PERMISSION_DENIED"),
        (5, 404, "NOT_FOUND"),
        (3, 400, "INVALID_ARGUMENT"),
    ] {
        let r = gw.get(&format!("/peer/abort/{code}"));
        let err = assert_error(&r, status, name);
        assert_eq!(err["message"], format!("grpc-peer abort {code}"));
        assert_eq!(err["service"], "peer");
    }
}

#[test]
fn grpcio_peer_takes_a_body_at_the_default_limit_beside_a_full_header_section() {
    // grpcio refuses a message over 4 MiB by default; the gateway's default body limit leaves
    // room under it for the header section at its default limit and the rest of the
    // ForwardingReq, so a request at both limits is answered, and one byte more is the gateway's
    // 413, not the backend's RESOURCE_EXHAUSTED.
    use switchyard::config::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_HEADER_BYTES};
    let gw = Gateway::start();
    let peer = GrpcPeer::start();
    register(&gw, "peer", "py1", &peer.addr);
    // 90 headers of 353 bytes each on the wire (`x-fill-NN: `, 340 bytes, CRLF): 31,770 bytes,
    // with curl's own (request line, Host, User-Agent, Accept, Content-Type, Content-Length,
    // Expect) just under the limit.
    const FILL_HEADERS: usize = 90;
    let value = "v".repeat(340);
    let send = |len: usize| {
        let mut req = http("POST", gw.url("/peer/len"))
            .header("content-type", "application/octet-stream")
            .body(vec![b'b'; len]);
        for i in 0..FILL_HEADERS {
            req = req.header(&format!("x-fill-{i:02}"), &value);
        }
        req.send()
    };
    let filled = FILL_HEADERS * ("x-fill-00: ".len() + value.len() + 2);
    assert!(filled < DEFAULT_MAX_HEADER_BYTES && DEFAULT_MAX_HEADER_BYTES - filled < 1024);
    let r = send(DEFAULT_MAX_BODY_BYTES);
    assert_eq!(r.status, 200, "body {}", r.text());
    let v = r.json();
    assert_eq!(v["body_len"], DEFAULT_MAX_BODY_BYTES);
    assert!(v["headers"].as_u64().unwrap() >= FILL_HEADERS as u64, "{v}");
    let err = assert_error(&send(DEFAULT_MAX_BODY_BYTES + 1), 413, "BODY_TOO_LARGE");
    assert_eq!(err["service"], "peer");
}

/// A backend's header values lose surrounding whitespace on the way to the client: it is not
/// part of a field value (RFC 9110 §5.5), and over HTTP/2 it would make the answer malformed
/// (RFC 9113 §8.2.1), which HTTP/2 clients refuse (curl: exit 92).
#[test]
fn grpcio_peer_header_values_are_trimmed() {
    let gw = Gateway::start();
    let peer = GrpcPeer::start();
    register(&gw, "peer", "py1", &peer.addr);
    let spec = serde_json::json!({
        "status": 200,
        "headers": [["x-padded", " padded\t"], ["x-blank", "  "]],
        "body": "ok",
    })
    .to_string();
    // The exact bytes over HTTP/1.1 (clients trim what they read, so only the wire tells).
    let mut c = RawConn::connect(gw.addr);
    c.send(format!("GET /peer/reply HTTP/1.1\r\nHost: x\r\nX-Reply: {spec}\r\n\r\n").as_bytes());
    let head = c.read_head();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("\r\nx-padded: padded\r\nx-blank: \r\n"),
        "{head:?}"
    );
    let r = http("GET", gw.url("/peer/reply"))
        .header("x-reply", &spec)
        .h2()
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "ok");
    assert_eq!(r.header("x-padded"), Some("padded"));
}

/// A HEAD answered without a body announces the length the backend declared for it (what a GET
/// would get, RFC 9110 §9.3.2), as nginx passes it on, and no length when the backend declared
/// none it could use (rather than 0, which says the resource is empty); any other answer
/// announces its body's.
#[test]
fn grpcio_peer_head_keeps_the_declared_length() {
    let gw = Gateway::start();
    let peer = GrpcPeer::start();
    register(&gw, "peer", "py1", &peer.addr);
    let answer = |lengths: &[&str], body: &str| {
        let headers: Vec<_> = lengths.iter().map(|l| ["content-length", l]).collect();
        serde_json::json!({"status": 200, "headers": headers, "body": body}).to_string()
    };
    let spec = |body: &str| answer(&["1234"], body);
    for h2 in [false, true] {
        let with_h2 = |mut req: Http| {
            if h2 {
                req = req.h2();
            }
            req.send()
        };
        let head = with_h2(http("HEAD", gw.url("/peer/reply")).header("x-reply", &spec("")));
        assert_eq!(head.status, 200, "h2 {h2}");
        assert_eq!(head.header("content-length"), Some("1234"), "h2 {h2}");
        let declared: [(&[&str], _); 6] = [
            (&["5, 5"], Some("5")),
            (&["5", "5"], Some("5")),
            (&["5", "6"], None),
            (&["12x"], None),
            (&["99999999999999999999999"], None),
            (&[], None),
        ];
        for (lengths, announced) in declared {
            let reply = answer(lengths, "");
            let head = with_h2(http("HEAD", gw.url("/peer/reply")).header("x-reply", &reply));
            assert_eq!(head.status, 200, "h2 {h2} {lengths:?}");
            assert_eq!(
                head.header("content-length"),
                announced,
                "h2 {h2} {lengths:?}"
            );
        }
        // A GET's empty body is what it is, whatever the backend said.
        let get = with_h2(http("GET", gw.url("/peer/reply")).header("x-reply", &spec("")));
        assert_eq!(get.header("content-length"), Some("0"), "h2 {h2}");
        let get = with_h2(http("GET", gw.url("/peer/reply")).header("x-reply", &spec("four")));
        assert_eq!(get.header("content-length"), Some("4"), "h2 {h2}");
    }
}
