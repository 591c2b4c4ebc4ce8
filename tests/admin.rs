//! The gateway's own endpoints under `/-/` (CONTRACT §4, SPEC "Admin"): health, readiness,
//! metrics, the service registry API with its validation, and who may write to it.
//!
//! The loopback rule ("without a configured token, registry writes are accepted from loopback
//! clients only, 403 otherwise") can only be tested from its accepting side here: every test
//! talks to 127.0.0.1, and the contract forbids traffic to other addresses, so the 403 for a
//! non-loopback client is left to the unit tests of `src/admin.rs` (`authorize` given a
//! non-loopback client address).

mod support;

use serde_json::json;
use support::*;

/// The PUT answer names what was registered (more keys may follow, as in `/-/services`).
fn assert_put_body(r: &Resp, service: &str, instance: &str, address: &str) {
    let v = r.json();
    assert_eq!(v["service"], service, "{v}");
    assert_eq!(v["instance"], instance, "{v}");
    assert_eq!(v["address"], address, "{v}");
}

#[test]
fn health_and_ready_are_200_standalone() {
    let gw = Gateway::start();
    let r = gw.get("/-/health");
    assert_eq!(r.status, 200, "{}", r.text());
    // Standalone the in-process registry is caught up from the start.
    let r = gw.get("/-/ready");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(gw.get_h2("/-/health").status, 200);
}

#[test]
fn metrics_are_prometheus_text_summed_over_shards() {
    let gw = Gateway::start();
    let _echo = Echo::registered(&gw, "echo", "e1");
    for _ in 0..6 {
        assert_echo_ok(&gw.get("/echo/m"));
    }
    let r = gw.get("/-/metrics");
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "content-type {ct:?}");
    let text = r.text();
    assert!(
        text.contains("switchyard_requests_total"),
        "no switchyard_requests_total in:\n{text}"
    );
    // Each sample line is `name{labels} value`; the shards' counters add up to every request
    // made (6 proxied, whatever else the gateway counts).
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("switchyard_requests_total"))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("bad sample line {l:?}"))
        })
        .sum();
    assert!(
        total >= 6.0,
        "switchyard_requests_total sums to {total}:\n{text}"
    );
    for l in text.lines().filter(|l| l.starts_with('#')) {
        assert!(
            l.starts_with("# HELP ") || l.starts_with("# TYPE "),
            "bad comment line {l:?}"
        );
    }
}

#[test]
fn services_listing_shape_and_order() {
    let gw = Gateway::start();
    assert_eq!(service_names(&gw), Vec::<String>::new());
    register(&gw, "users", "u1", "127.0.0.1:5001");
    register(&gw, "users", "u0", "127.0.0.1:5000");
    register(&gw, "alpha", "a1", "localhost:7000");
    let v = services(&gw);
    let list = v["services"].as_array().expect("services array");
    let names: Vec<_> = list.iter().map(|s| s["name"].clone()).collect();
    assert_eq!(
        names,
        vec![json!("alpha"), json!("users")],
        "sorted by name"
    );
    let users = &list[1]["instances"];
    let ids: Vec<_> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!("u0"), json!("u1")],
        "instances sorted by id"
    );
    assert_eq!(users[0]["address"], "127.0.0.1:5000");
    assert_eq!(users[0]["healthy"], true);
    assert_eq!(list[0]["instances"][0]["address"], "localhost:7000");
}

#[test]
fn put_creates_201_then_is_idempotent_200_then_updates_200() {
    let gw = Gateway::start();
    let e1 = Echo::start("first");
    let e2 = Echo::start("second");

    let r = register(&gw, "svc", "i1", &e1.addr);
    assert_eq!(r.status, 201, "create: {}", r.text());
    assert_put_body(&r, "svc", "i1", &e1.addr);
    assert_eq!(gw.get("/svc").header("x-echo-instance"), Some("first"));

    let r = register(&gw, "svc", "i1", &e1.addr);
    assert_eq!(r.status, 200, "same PUT again: {}", r.text());
    assert_put_body(&r, "svc", "i1", &e1.addr);

    let r = register(&gw, "svc", "i1", &e2.addr);
    assert_eq!(r.status, 200, "update: {}", r.text());
    assert_eq!(r.json()["address"], e2.addr.as_str());
    let listed = services(&gw);
    assert_eq!(
        listed["services"][0]["instances"][0]["address"],
        e2.addr.as_str()
    );
    assert_eq!(
        listed["services"][0]["instances"].as_array().unwrap().len(),
        1
    );
    // Routing follows the update at once: the registration returns after it is applied.
    assert_eq!(gw.get("/svc").header("x-echo-instance"), Some("second"));
}

#[test]
fn delete_is_204_and_the_service_is_gone() {
    let gw = Gateway::start();
    let _echo = Echo::registered(&gw, "svc", "i1");
    assert_echo_ok(&gw.get("/svc/x"));
    let r = deregister(&gw, "svc", "i1", None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty(), "204 has no body");
    assert_error(&gw.get("/svc/x"), 404, "SERVICE_NOT_FOUND");
    assert_eq!(service_names(&gw), Vec::<String>::new());
    // Idempotent.
    assert_eq!(deregister(&gw, "svc", "i1", None).status, 204);
    assert_eq!(deregister(&gw, "never", "was", None).status, 204);
}

#[test]
fn invalid_service_names_are_400() {
    let gw = Gateway::start();
    let body = br#"{"address":"127.0.0.1:5000"}"#;
    let long = "a".repeat(64);
    for name in ["Users", "-x", "x-", "a_b", long.as_str(), "graphql", "a.b"] {
        let r = put_instance(&gw, name, "i1", Some(body), None);
        assert_error(&r, 400, "BAD_REQUEST");
    }
    assert_eq!(
        service_names(&gw),
        Vec::<String>::new(),
        "nothing registered"
    );
    // The edges of the DNS-label rule are accepted.
    let max = "b".repeat(63);
    for name in ["a", "0", "a-b", "x9-y", max.as_str()] {
        let r = put_instance(&gw, name, "i1", Some(body), None);
        assert_eq!(r.status, 201, "{name}: {}", r.text());
    }
}

#[test]
fn invalid_instance_names_are_400() {
    let gw = Gateway::start();
    let body = br#"{"address":"127.0.0.1:5000"}"#;
    let long = "i".repeat(129);
    for id in ["a%20b", long.as_str(), "a%2Fb", "caf%C3%A9", "a:b"] {
        let r = put_instance(&gw, "svc", id, Some(body), None);
        assert_error(&r, 400, "BAD_REQUEST");
    }
    assert_eq!(
        service_names(&gw),
        Vec::<String>::new(),
        "nothing registered"
    );
    let max = "I".repeat(128);
    for id in ["A.b_c-1", max.as_str(), "x"] {
        let r = put_instance(&gw, "svc", id, Some(body), None);
        assert_eq!(r.status, 201, "{id}: {}", r.text());
    }
}

#[test]
fn invalid_addresses_and_bodies_are_400() {
    let gw = Gateway::start();
    let bodies: Vec<Vec<u8>> = vec![
        br#"{"address":"nohost"}"#.to_vec(),
        br#"{"address":"h:99999"}"#.to_vec(),
        br#"{"address":"h:"}"#.to_vec(),
        br#"{"address":":80"}"#.to_vec(),
        br#"{"address":"h:port"}"#.to_vec(),
        br#"{"address":""}"#.to_vec(),
        br#"{"address":5}"#.to_vec(),
        br#"{"addr":"127.0.0.1:5000"}"#.to_vec(),
        br#"{}"#.to_vec(),
        b"address=127.0.0.1:5000".to_vec(),
        br#"{"address":"127.0.0.1:5000""#.to_vec(),
        // Hosts that are neither an IPv4 address, a bracketed IPv6 address nor a DNS name.
        br#"{"address":"a..b:80"}"#.to_vec(),
        br#"{"address":"-bad-:80"}"#.to_vec(),
        br#"{"address":"256.1.1.1:80"}"#.to_vec(),
        br#"{"address":"1.2.3:80"}"#.to_vec(),
        br#"{"address":"exa_mple.com:80"}"#.to_vec(),
        br#"{"address":"host name:80"}"#.to_vec(),
        br#"{"address":"::1:80"}"#.to_vec(),
        br#"{"address":"[::1:80"}"#.to_vec(),
    ];
    for b in &bodies {
        let r = put_instance(&gw, "svc", "i1", Some(b), None);
        assert_eq!(
            r.status,
            400,
            "body {:?}: {} {}",
            String::from_utf8_lossy(b),
            r.status,
            r.text()
        );
        assert_error(&r, 400, "BAD_REQUEST");
    }
    let r = put_instance(&gw, "svc", "i1", None, None);
    assert_error(&r, 400, "BAD_REQUEST");
    assert_eq!(
        service_names(&gw),
        Vec::<String>::new(),
        "nothing registered"
    );
    // Host names, IPv4 and IPv6 addresses are fine. The names are ones /etc/hosts resolves: a
    // registration resolves its host, and tests send nothing beyond loopback (not even DNS
    // queries); names of every shape are unit-tested without resolving (`names.rs`).
    for (id, addr) in [
        ("h", "localhost:50051"),
        ("ip", "10.0.0.5:1"),
        ("v6", "[::1]:50051"),
        ("mixed-case", "LocalHost:443"),
    ] {
        let b = json!({ "address": addr }).to_string();
        let r = put_instance(&gw, "svc", id, Some(b.as_bytes()), None);
        assert_eq!(r.status, 201, "{addr}: {}", r.text());
    }
}

#[test]
fn registry_token_is_required_when_configured() {
    let gw = Gateway::builder()
        .args(&["--registry-token", "s3cret"])
        .start();
    let echo = Echo::start("t1");
    let body = json!({ "address": echo.addr }).to_string();
    let body = body.as_bytes();

    let r = put_instance(&gw, "svc", "t1", Some(body), None);
    assert_error(&r, 401, "UNAUTHORIZED");
    let r = put_instance(&gw, "svc", "t1", Some(body), Some("wrong"));
    assert_error(&r, 401, "UNAUTHORIZED");
    let r = http("PUT", gw.url("/-/services/svc/instances/t1"))
        .header("content-type", "application/json")
        .header("authorization", "Basic s3cret")
        .body(body)
        .send();
    assert_error(&r, 401, "UNAUTHORIZED");
    assert_eq!(
        service_names(&gw),
        Vec::<String>::new(),
        "nothing registered"
    );

    let r = put_instance(&gw, "svc", "t1", Some(body), Some("s3cret"));
    assert_eq!(r.status, 201, "{}", r.text());
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
    for scheme in ["bearer", "BEARER"] {
        let r = http("PUT", gw.url("/-/services/svc/instances/t1"))
            .header("content-type", "application/json")
            .header("authorization", &format!("{scheme} s3cret"))
            .body(body)
            .send();
        assert_eq!(r.status, 200, "{scheme}: {}", r.text());
    }
    assert_error(
        &put_instance(&gw, "svc", "t1", Some(body), Some("S3CRET")),
        401,
        "UNAUTHORIZED",
    );
    // Reads need no token.
    assert_eq!(gw.get("/-/services").status, 200);
    assert_echo_ok(&gw.get("/svc"));

    assert_error(&deregister(&gw, "svc", "t1", None), 401, "UNAUTHORIZED");
    assert_error(
        &deregister(&gw, "svc", "t1", Some("nope")),
        401,
        "UNAUTHORIZED",
    );
    assert_echo_ok(&gw.get("/svc"));
    assert_eq!(deregister(&gw, "svc", "t1", Some("s3cret")).status, 204);
    assert_error(&gw.get("/svc"), 404, "SERVICE_NOT_FOUND");
}

#[test]
fn loopback_client_may_register_without_token() {
    // The other half of the rule (403 from a non-loopback client) needs a non-loopback source
    // address, which these tests may not use; see the module comment.
    let gw = Gateway::start();
    let r = put_instance(
        &gw,
        "svc",
        "l1",
        Some(br#"{"address":"127.0.0.1:5000"}"#),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(deregister(&gw, "svc", "l1", None).status, 204);
}

#[test]
fn unknown_admin_endpoint_is_404_and_wrong_method_405() {
    let gw = Gateway::start();
    assert_error(&gw.get("/-/nope"), 404, "NOT_FOUND");
    let r = http("PATCH", gw.url("/-/services/svc/instances/i1"))
        .header("content-type", "application/json")
        .body(br#"{"address":"127.0.0.1:5000"}"#)
        .send();
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("PUT, DELETE"));
}

#[test]
fn every_405_says_which_methods_are_allowed() {
    let gw = Gateway::start();
    for path in ["/-/health", "/-/ready", "/-/metrics", "/-/services"] {
        for method in ["POST", "PUT", "DELETE"] {
            let r = http(method, gw.url(path)).send();
            assert_error(&r, 405, "METHOD_NOT_ALLOWED");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
        let r = http("POST", gw.url(path)).h2().send();
        assert_error(&r, 405, "METHOD_NOT_ALLOWED");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "h2 POST {path}");
    }
    for method in ["GET", "POST"] {
        let r = http(method, gw.url("/-/services/svc/instances/i1")).send();
        assert_error(&r, 405, "METHOD_NOT_ALLOWED");
        assert_eq!(r.header("allow"), Some("PUT, DELETE"), "{method}");
    }
}

#[test]
fn admin_bodies_have_their_own_limit_not_max_body_bytes() {
    // A REST body limit far below any registration body.
    let gw = Gateway::builder()
        .args(&["--max-body-bytes", "10", "--registry-token", "s3cret"])
        .start();
    let body = br#"{"address":"127.0.0.1:5000"}"#;
    assert!(body.len() > 10);
    // Within the admin limit the token is checked first...
    assert_error(
        &put_instance(&gw, "svc", "i1", Some(body), None),
        401,
        "UNAUTHORIZED",
    );
    let r = put_instance(&gw, "svc", "i1", Some(body), Some("s3cret"));
    assert_eq!(r.status, 201, "{}", r.text());
    // ...up to exactly 4 KiB (JSON allows trailing whitespace)...
    let mut padded = body.to_vec();
    padded.resize(4096, b' ');
    let r = put_instance(&gw, "svc", "i1", Some(padded.as_slice()), Some("s3cret"));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http("PUT", gw.url("/-/services/svc/instances/i1"))
        .h2()
        .header("content-type", "application/json")
        .header("authorization", "Bearer s3cret")
        .body(&padded)
        .send();
    assert_eq!(r.status, 200, "h2: {}", r.text());
    // ...and one byte more is refused whoever sends it.
    padded.push(b' ');
    for token in [Some("s3cret"), None] {
        let r = put_instance(&gw, "svc", "i1", Some(padded.as_slice()), token);
        assert_error(&r, 413, "BODY_TOO_LARGE");
    }
    // REST keeps --max-body-bytes.
    let r = http("POST", gw.url("/svc/x")).body(body).send();
    assert_error(&r, 413, "BODY_TOO_LARGE");
}

#[test]
fn admin_api_over_http2() {
    let gw = Gateway::start();
    let echo = Echo::start("h2");
    let r = http("PUT", gw.url("/-/services/svc/instances/h2"))
        .h2()
        .header("content-type", "application/json")
        .body(json!({ "address": echo.addr }).to_string())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(gw.get_h2("/svc").header("x-echo-instance"), Some("h2"));
    let r = http("DELETE", gw.url("/-/services/svc/instances/h2"))
        .h2()
        .send();
    assert_eq!(r.status, 204);
}

#[test]
fn echo_registers_itself_with_register_flag() {
    let gw = Gateway::start();
    let mut echo = Echo::start_with(
        "self-1",
        &["--register", &gw.base(), "--service", "selfreg"],
    );
    let line = echo.proc.wait_stdout_line("registered ");
    assert_eq!(line, format!("registered selfreg/self-1 at {}", gw.base()));
    let listed = services(&gw);
    assert_eq!(listed["services"][0]["name"], "selfreg");
    assert_eq!(listed["services"][0]["instances"][0]["id"], "self-1");
    assert_eq!(
        listed["services"][0]["instances"][0]["address"],
        echo.addr.as_str()
    );
    assert_eq!(
        gw.get("/selfreg/x").header("x-echo-instance"),
        Some("self-1")
    );
}
