//! Instance selection under failure (CONTRACT §3 and §6 last point, SPEC "Admin"): a refused
//! connection is retried once on another instance, a service whose every instance refuses is
//! answered 503 and removed from the registry, a killed backend stops receiving traffic, and
//! load is spread over live instances. A call the backend did not process (a refused stream, a
//! GOAWAY) is sent to the same instance again on another connection, and a backend that drains a
//! connection loses no call.

mod support;

use std::collections::HashMap;

use support::scripted::{Answer, EndAtOnce, ScriptedBackend};
use support::*;

#[test]
fn dead_instance_is_skipped_by_retrying_the_other() {
    let gw = Gateway::start();
    let live = Echo::start("alive");
    let dead = DeadAddr::new();
    register(&gw, "svc", "dead", &dead.addr);
    register(&gw, "svc", "alive", &live.addr);
    // Whatever the balancer picks, a refused connection is retried on the other instance.
    for i in 0..20 {
        let h2 = i % 2 == 1;
        let r = if h2 {
            gw.get_h2("/svc/x")
        } else {
            gw.get("/svc/x")
        };
        assert_echo_ok(&r);
        assert_eq!(r.header("x-echo-instance"), Some("alive"), "request {i}");
    }
    // Not every instance refused, so the service stays.
    assert!(service_names(&gw).contains(&"svc".to_string()));
}

#[test]
fn service_whose_instances_all_refuse_is_503_then_removed() {
    let gw = Gateway::start();
    let d1 = DeadAddr::new();
    let d2 = DeadAddr::new();
    register(&gw, "gone", "d1", &d1.addr);
    register(&gw, "gone", "d2", &d2.addr);
    // A healthy neighbour must not be touched by the removal.
    let _echo = Echo::registered(&gw, "echo", "e1");

    let err = assert_error(&gw.get("/gone/x"), 503, "NO_HEALTHY_INSTANCE");
    assert_eq!(err["service"], "gone");

    let removed = poll_until(READY_TRIES, || {
        !service_names(&gw).contains(&"gone".to_string())
    });
    assert!(removed, "service still listed: {}", services(&gw));
    assert_error(&gw.get("/gone/x"), 404, "SERVICE_NOT_FOUND");
    assert_error(&gw.get_h2("/gone/x"), 404, "SERVICE_NOT_FOUND");
    assert_eq!(service_names(&gw), vec!["echo".to_string()]);
    assert_echo_ok(&gw.get("/echo/still-here"));
}

#[test]
fn removed_service_can_be_registered_again() {
    let gw = Gateway::start();
    let dead = DeadAddr::new();
    register(&gw, "svc", "d1", &dead.addr);
    assert_error(&gw.get("/svc"), 503, "NO_HEALTHY_INSTANCE");
    assert!(poll_until(READY_TRIES, || service_names(&gw).is_empty()));
    let _echo = Echo::registered(&gw, "svc", "back");
    let r = gw.get("/svc");
    assert_echo_ok(&r);
    assert_eq!(r.header("x-echo-instance"), Some("back"));
}

#[test]
fn killed_backend_stops_receiving_requests() {
    let gw = Gateway::start();
    let keep = Echo::registered(&gw, "svc", "keep");
    let mut victim = Echo::registered(&gw, "svc", "victim");
    // Both answer before the kill (pooled connections exist to both).
    let mut seen = HashMap::new();
    for _ in 0..20 {
        let r = gw.get("/svc");
        assert_echo_ok(&r);
        *seen
            .entry(r.header("x-echo-instance").unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        seen.len(),
        2,
        "both instances served before the kill: {seen:?}"
    );

    let _refusing = victim.kill_and_hold();
    for i in 0..20 {
        let r = gw.get("/svc");
        assert_echo_ok(&r);
        assert_eq!(
            r.header("x-echo-instance"),
            Some("keep"),
            "request {i} after kill"
        );
    }
    drop(keep);
}

#[test]
fn load_is_spread_over_live_instances() {
    let gw = Gateway::start();
    let _a = Echo::registered(&gw, "svc", "a");
    let _b = Echo::registered(&gw, "svc", "b");
    let mut counts: HashMap<String, u32> = HashMap::new();
    for i in 0..40 {
        let r = if i % 2 == 0 {
            gw.get("/svc/lb")
        } else {
            gw.get_h2("/svc/lb")
        };
        assert_echo_ok(&r);
        let inst = r.header("x-echo-instance").expect("x-echo-instance");
        *counts.entry(inst.to_string()).or_insert(0) += 1;
    }
    assert_eq!(counts.values().sum::<u32>(), 40);
    assert!(
        counts.get("a").copied().unwrap_or(0) > 0 && counts.get("b").copied().unwrap_or(0) > 0,
        "both instances answered some of 40 requests: {counts:?}"
    );
}

// The tests below send requests until the balancer has picked the dying instance often enough.
// Each request picks it with probability 1/2 while it is available; but it ends every connection
// it took a call on before answering, and each shard marks it down for that (200 ms, doubling),
// so the requests are sent `POLL_INTERVAL` apart, up to `READY_TRIES` (10 s): a bound that is
// never the reason a test fails.

/// A gateway with service `svc` on two instances: one that dies in every call, one that answers.
fn dying_and_live() -> (Gateway, Echo, DyingBackend) {
    dying_as_and_live(Ending::Reset)
}

/// As [`dying_and_live`], the dying instance ending each connection as `ending` says.
fn dying_as_and_live(ending: Ending) -> (Gateway, Echo, DyingBackend) {
    let gw = Gateway::start();
    let live = Echo::start("alive");
    let dying = DyingBackend::ending(ending);
    register(&gw, "svc", "dying", &dying.addr);
    register(&gw, "svc", "alive", &live.addr);
    (gw, live, dying)
}

#[test]
fn idempotent_call_whose_backend_dies_before_answering_is_sent_to_another_instance() {
    let (gw, _live, dying) = dying_and_live();
    for method in ["GET", "PUT", "DELETE"] {
        let before = dying.calls();
        let reached = poll_until(READY_TRIES, || {
            let mut req = http(method, gw.url("/svc/x"));
            if method == "PUT" {
                req = req.body("put body");
            }
            let r = req.send();
            assert_echo_ok(&r);
            assert_eq!(r.header("x-echo-instance"), Some("alive"), "{method}");
            dying.calls() > before
        });
        assert!(reached, "{method}: the dying instance never got a call");
    }
}

#[test]
fn post_whose_backend_dies_before_answering_is_502_and_not_sent_again() {
    let (gw, _live, dying) = dying_and_live();
    let mut failed = 0;
    poll_until(READY_TRIES, || {
        let r = http("POST", gw.url("/svc/x")).body("post body").send();
        if r.status == 502 {
            let err = assert_error(&r, 502, "UPSTREAM_PROTOCOL_ERROR");
            assert_eq!(err["service"], "svc");
            failed += 1;
        } else {
            assert_echo_ok(&r);
            assert_eq!(r.header("x-echo-instance"), Some("alive"));
        }
        dying.calls() >= 2
    });
    assert!(
        dying.calls() >= 2,
        "the dying instance got {} calls",
        dying.calls()
    );
    // Every POST the dying instance took failed; none was sent on to the live one.
    assert_eq!(failed, dying.calls());
}

#[test]
fn post_left_out_of_a_backend_s_goaway_is_sent_to_another_instance() {
    // A GOAWAY whose last stream id is below the call's says the backend never processed it
    // (RFC 9113 §6.8), so even a POST may go to the other instance: no client sees an error.
    let (gw, _live, dying) = dying_as_and_live(Ending::GoAway);
    poll_until(READY_TRIES, || {
        let r = http("POST", gw.url("/svc/x")).body("post body").send();
        assert_echo_ok(&r);
        assert_eq!(r.header("x-echo-instance"), Some("alive"));
        dying.calls() >= 2
    });
    assert!(
        dying.calls() >= 2,
        "the going-away instance got {} calls",
        dying.calls()
    );
}

#[test]
fn a_backend_draining_a_connection_loses_no_call() {
    // One shard: the calls below share its pool's connection to the one instance.
    let gw = Gateway::builder().shards(Some(1)).start();
    let backend = ScriptedBackend::start(|call| match call.path.as_str() {
        "/held" => Answer::Hold("held".into(), Box::new(Answer::describe(call))),
        "/goaway" => Answer::GoAwayThen(Box::new(Answer::describe(call))),
        _ => Answer::describe(call),
    });
    register(&gw, "svc", "s1", &backend.addr);
    // A call held on the connection keeps it open while the backend drains it.
    let url = gw.url("/svc/held");
    let held = std::thread::spawn(move || http("GET", url).send());
    backend.wait_for_calls("the held call", |calls| calls.len() == 1);
    // The backend sends GOAWAY (NO_ERROR) on the connection, then this answer: by the time the
    // answer is here, the gateway has read the GOAWAY.
    let r = gw.get("/svc/goaway");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["conn"], 1);
    // Later calls, POSTs too, go out on a new connection, not on the draining one.
    for (i, h2) in [false, true].into_iter().enumerate() {
        let mut req = http("POST", gw.url("/svc/next")).body("after the GOAWAY");
        if h2 {
            req = req.h2();
        }
        let r = req.send();
        assert_eq!(r.status, 200, "call {i}: {}", r.text());
        assert_eq!(r.json()["conn"], 2, "call {i}");
    }
    // The held call was not cut off by the drain.
    backend.release("held");
    let r = held.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["conn"], 1);
    assert_eq!(backend.calls().len(), 4, "{:#?}", backend.calls());
    // A connection that served calls and was then drained is no failed attempt: the instance
    // was never marked down.
    assert!(healthy(&gw, "svc", "s1"));
}

#[test]
fn every_call_a_goaway_left_out_of_a_fresh_connection_is_sent_again() {
    // Five POSTs in flight on a new connection; the backend's GOAWAY (NO_ERROR, last stream id
    // 0) says it processed none (RFC 9113 §6.8). Each goes once more to the same instance, on a
    // new connection, whatever the order in which the calls see the GOAWAY. The connection had
    // answered nothing, so its end marks the instance down; that mark used to be made as the
    // last of the five gave its connection back, and that one alone found the instance down and
    // got 502 (the service has no other instance), while the four before it were answered.
    const CALLS: usize = 5;
    // One shard: the calls share its pool's connection.
    let gw = Gateway::builder().shards(Some(1)).start();
    let backend = ScriptedBackend::builder()
        .go_away_unprocessed_on_first_connection(CALLS)
        .start(Answer::describe);
    register(&gw, "svc", "s1", &backend.addr);
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let url = gw.url(&format!("/svc/{i}"));
            std::thread::spawn(move || http("POST", url).body("not processed").send())
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let r = call.join().unwrap();
        assert_eq!(r.status, 200, "call {i}: {}", r.text());
        let v = r.json();
        assert_eq!((&v["conn"], &v["attempt"]), (&2.into(), &2.into()), "{v}");
    }
    let calls = backend.calls();
    assert_eq!(calls.len(), 2 * CALLS, "{calls:#?}");
    assert!(calls[..CALLS].iter().all(|c| c.conn == 1), "{calls:#?}");
    assert_eq!(backend.connections(), 2);
}

#[test]
fn a_call_the_backend_refused_is_sent_to_it_again() {
    // REFUSED_STREAM says the backend did not process the call (RFC 9113 §8.7): the gateway
    // sends it again, a POST too, to the same instance (the service has no other), once.
    let gw = Gateway::start();
    let backend = ScriptedBackend::start(|call| match (call.path.as_str(), call.attempt) {
        (_, 1) | ("/always", _) => Answer::Refuse,
        _ => Answer::describe(call),
    });
    register(&gw, "svc", "s1", &backend.addr);
    for (method, h2) in [("POST", false), ("GET", true)] {
        let mut req = http(method, gw.url("/svc/once")).body("refused once");
        if h2 {
            req = req.h2();
        }
        let r = req.send();
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        let v = r.json();
        assert_eq!(v["attempt"], 2, "{method}: {v}");
        let id = r.header("x-request-id").unwrap();
        let sent: Vec<_> = backend
            .calls()
            .into_iter()
            .filter(|c| c.request_id == id)
            .collect();
        assert_eq!(sent.len(), 2, "{method}: {sent:#?}");
    }
    // Refused again, the call is not sent a third time: the client gets the refusal.
    let before = backend.calls().len();
    let err = assert_error(&gw.get("/svc/always"), 502, "UPSTREAM_PROTOCOL_ERROR");
    assert_eq!(err["service"], "svc");
    assert_eq!(backend.calls().len(), before + 2);
}

#[test]
fn a_backend_refusing_every_stream_costs_no_new_connections() {
    // The connection a stream was refused on stays in the pool: the backend did not end it.
    // Retired after each refusal, it cost two new connections a call (51 for 50).
    const CALLS: usize = 20;
    let gw = Gateway::builder().shards(Some(1)).start();
    let backend = ScriptedBackend::start(|_| Answer::Refuse);
    register(&gw, "svc", "s1", &backend.addr);
    for _ in 0..CALLS {
        assert_error(&gw.get("/svc/x"), 502, "UPSTREAM_PROTOCOL_ERROR");
    }
    assert_eq!(backend.calls().len(), 2 * CALLS, "each call sent twice");
    assert_eq!(backend.connections(), 1);
}

/// Whether `/-/services` reports `instance` of `service` healthy (no shard has it marked down).
fn healthy(gw: &Gateway, service: &str, instance: &str) -> bool {
    healthy_in(&services(gw), service, instance)
}

/// Whether `instance` of `service` is healthy in a `/-/services` answer.
fn healthy_in(services: &serde_json::Value, service: &str, instance: &str) -> bool {
    let instances = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == service)
        .unwrap_or_else(|| panic!("no service {service} in {services}"))["instances"]
        .as_array()
        .unwrap()
        .clone();
    let found = instances.iter().find(|i| i["id"] == instance);
    found.unwrap_or_else(|| panic!("no instance {instance} in {instances:?}"))["healthy"] == true
}

/// Fresh connections asking `/-/services` at once, each landing on whichever shard SO_REUSEPORT
/// gives it: with two shards, all of them on one by chance once in 2^15.
const SERVICES_ASKS: usize = 16;

#[test]
fn every_shard_reports_an_instance_one_shard_marked_down() {
    // Health is judged per shard; `/-/services` is answered by any shard, and reports an instance
    // down while any shard has it marked down (it reported the answering shard's view).
    let gw = Gateway::builder().shards(Some(2)).start();
    let _y = Echo::registered(&gw, "roll", "y");
    let x = DeadAddr::new();
    register(&gw, "roll", "x", &x.addr);
    // Every call and every look from here on is one shard's: one connection, kept alive.
    let mut conn = RawConn::connect(gw.addr);
    let looks = |conn: &mut RawConn| healthy_in(&conn.get("/-/services").json(), "roll", "x");
    // That shard's calls try X, which refuses each (the call goes on to Y), until X's pause is
    // long: the check below runs well within it.
    for refusal in 1..=REFUSALS_FOR_A_LONG_PAUSE {
        let marked_down = poll_until(READY_TRIES, || {
            assert_echo_ok(&conn.get("/roll/x"));
            !looks(&mut conn)
        });
        assert!(
            marked_down,
            "X never refused a call's connection ({refusal})"
        );
        if refusal < REFUSALS_FOR_A_LONG_PAUSE {
            assert!(
                poll_until(READY_TRIES, || looks(&mut conn)),
                "X's pause never ended"
            );
        }
    }
    // Asked on fresh connections, whichever shard answers reports X down.
    for ask in 0..SERVICES_ASKS {
        let mut fresh = RawConn::connect(gw.addr);
        let services = fresh.get("/-/services").json();
        assert!(
            !healthy_in(&services, "roll", "x"),
            "ask {ask}: X healthy in {services}"
        );
    }
}

/// Refusals an instance has to have made for its pause to be long (200 ms, doubling: 1.6 s
/// after the fourth), far longer than the test takes between its last refusal and the call
/// that must not trust it.
const REFUSALS_FOR_A_LONG_PAUSE: usize = 4;

#[test]
fn a_rolling_restart_does_not_remove_the_service() {
    // Contract §6: a service is removed when every instance refuses connections. An instance
    // that refused before it restarted is in a pause, not gone: it is tried before the service
    // is removed for a refusal from another instance.
    let gw = Gateway::builder().shards(Some(1)).start();
    let mut x = Echo::registered(&gw, "roll", "x");
    let mut y = Echo::registered(&gw, "roll", "y");
    assert_echo_ok(&gw.get("/roll/warm"));

    // X stops. Calls go on (to Y); each time X's pause ends, a call tries X again, which refuses.
    let x_stopped = x.kill_and_hold();
    for refusal in 1..=REFUSALS_FOR_A_LONG_PAUSE {
        let marked_down = poll_until(READY_TRIES, || {
            let r = gw.get("/roll/x");
            assert_echo_ok(&r);
            assert_eq!(r.header("x-echo-instance"), Some("y"));
            !healthy(&gw, "roll", "x")
        });
        assert!(
            marked_down,
            "X never refused a call's connection ({refusal})"
        );
        if refusal < REFUSALS_FOR_A_LONG_PAUSE {
            assert!(
                poll_until(READY_TRIES, || healthy(&gw, "roll", "x")),
                "X's pause never ended"
            );
        }
    }

    // X comes back where it was (not registered again), then Y stops: a rolling restart.
    drop(x_stopped);
    let x = Echo::start_at("x", &x.addr);
    // X's pause (1.6 s) is not over yet: no call has tried it since it came back.
    let y_stopped = y.kill_and_hold();
    for h2 in [false, true] {
        let r = if h2 {
            gw.get_h2("/roll/after")
        } else {
            gw.get("/roll/after")
        };
        assert_echo_ok(&r);
        assert_eq!(r.header("x-echo-instance"), Some("x"), "h2 {h2}");
    }
    assert!(service_names(&gw).contains(&"roll".to_string()));

    // Both stopped: now every instance refuses a connection made for the call, and only now is
    // the service removed.
    let mut x = x;
    let _x_stopped = x.kill_and_hold();
    let err = assert_error(&gw.get("/roll/gone"), 503, "NO_HEALTHY_INSTANCE");
    assert_eq!(
        err["message"],
        "every instance of `roll` refused the connection"
    );
    assert!(
        poll_until(READY_TRIES, || !service_names(&gw)
            .contains(&"roll".to_string())),
        "service still listed: {}",
        services(&gw)
    );
    drop(y_stopped);
}

/// Calls made in a row to a backend that ends every connection at once.
const CALLS_TO_A_DROPPING_BACKEND: usize = 20;
/// Connections they may open: the first call, and each call made when the instance's pause is
/// over, opens one, and the pauses grow (200 ms, 400 ms, 800 ms, then 1 s each), so ten
/// connections take more than 7 s of calls. Without the pause every call opens at least one.
const MAX_CONNECTIONS_TO_A_DROPPING_BACKEND: usize = CALLS_TO_A_DROPPING_BACKEND / 2;

#[test]
fn a_backend_that_ends_every_connection_at_once_is_backed_off_not_stormed() {
    // It accepts connections (so it is not refusing them) and ends each right after the
    // handshake, before answering anything: each such connection counts as a failed attempt.
    for how in [EndAtOnce::GoAway, EndAtOnce::Close] {
        // One shard: one pool, one view of the instance's health.
        let gw = Gateway::builder().shards(Some(1)).start();
        let backend = ScriptedBackend::builder()
            .end_connections_at_once(how)
            .start(Answer::describe);
        register(&gw, "svc", "s1", &backend.addr);
        // The first call opens one connection, which the backend ends: the instance is marked
        // down. A GET that the GOAWAY says was not processed goes to it once more, on a second
        // connection, ended too (unless the GOAWAY was read before the call was lent the first:
        // then it was never sent). A call whose connection closed under it may have been
        // processed: it goes only elsewhere.
        let r = gw.get("/svc/x");
        assert!(matches!(r.status, 502 | 503), "{how:?}: {}", r.text());
        let first = match how {
            EndAtOnce::GoAway => 1..=2,
            EndAtOnce::Close => 1..=1,
        };
        assert!(
            first.contains(&backend.connections()),
            "{how:?}: {} connections",
            backend.connections()
        );
        for i in 1..CALLS_TO_A_DROPPING_BACKEND {
            let r = gw.get("/svc/x");
            // The call whose connection was dropped under it gets that error; the calls made
            // while the instance is marked down get what a down instance gets.
            let err = match r.status {
                502 => assert_error(&r, 502, "UPSTREAM_PROTOCOL_ERROR"),
                _ => assert_error(&r, 503, "NO_HEALTHY_INSTANCE"),
            };
            assert_eq!(err["service"], "svc", "{how:?} call {i}");
        }
        assert!(
            backend.calls().is_empty(),
            "{how:?}: {:#?}",
            backend.calls()
        );
        let opened = backend.connections();
        assert!(
            opened <= MAX_CONNECTIONS_TO_A_DROPPING_BACKEND,
            "{how:?}: {CALLS_TO_A_DROPPING_BACKEND} calls opened {opened} connections"
        );
        // Dropping connections is not refusing them: the service stays.
        assert_eq!(service_names(&gw), vec!["svc".to_string()], "{how:?}");
    }
}

/// `/etc/hosts` as Debian, Docker and Kubernetes write it: `localhost` is 127.0.0.1 and `::1`,
/// and glibc answers `::1` first (RFC 6724 puts IPv6 loopback before IPv4).
const DUAL_STACK_HOSTS: &str = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n";
/// Requests sent to the instance: enough for both shards of a two-shard gateway to have opened
/// connections of their own, each pool meeting the refusing address first.
const REQUESTS_TO_A_DUAL_STACK_NAME: usize = 20;

#[test]
fn a_name_whose_first_address_refuses_is_reached_at_the_next() {
    // A backend listening on 127.0.0.1 only, registered as `localhost:PORT`, where `localhost`
    // is [::1] first: the gateway kept only [::1], was refused, answered 503 and removed the
    // service. nginx's `proxy_pass http://localhost:PORT` tries [::1], then 127.0.0.1.
    let dir = TempDir::new("hosts");
    let hosts = dir.write("hosts", DUAL_STACK_HOSTS.as_bytes());
    assert_eq!(
        resolved_with_hosts_file(&hosts, "localhost"),
        ["::1", "127.0.0.1"],
        "the resolver's order this test relies on"
    );
    let gw = Gateway::builder().hosts(DUAL_STACK_HOSTS).start();
    let echo = Echo::start("e1");
    let port = echo.addr.parse::<std::net::SocketAddr>().unwrap().port();
    let address = format!("localhost:{port}");
    assert_eq!(register(&gw, "app", "a1", &address).status, 201);
    for i in 0..REQUESTS_TO_A_DUAL_STACK_NAME {
        let r = if i % 2 == 1 {
            gw.get_h2("/app/x")
        } else {
            gw.get("/app/x")
        };
        assert_echo_ok(&r);
        assert_eq!(r.header("x-echo-instance"), Some("e1"), "request {i}");
    }
    assert_eq!(service_names(&gw), ["app"]);
    assert!(healthy(&gw, "app", "a1"), "{}", services(&gw));
    assert_eq!(
        services(&gw)["services"][0]["instances"][0]["address"],
        address
    );
}

/// The deadline of the calls in [`a_backend_that_never_sends_its_settings_is_passed_over`]: well
/// above the handshake timeout (1 s), so that a call whose connection never settles still has
/// time to go to the other instance, and a call left waiting on that connection gets 504.
const SILENT_TEST_DEADLINE_MS: u64 = 5_000;

#[test]
fn a_backend_that_never_sends_its_settings_is_passed_over() {
    // A hung or stopped backend: its kernel completes TCP handshakes from the listen backlog and
    // nothing more comes. Calls sent on such a connection waited for their whole deadline (504),
    // the instance stayed healthy and in rotation (about 40 % of GETs, none failed over).
    let gw = Gateway::builder()
        .shards(Some(1))
        .config(&format!("request_timeout_ms = {SILENT_TEST_DEADLINE_MS}"))
        .start();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().unwrap().to_string();
    let _live = Echo::start("alive");
    register(&gw, "svc", "silent", &silent_addr);
    register(&gw, "svc", "alive", &_live.addr);
    // Each request picks the silent instance with probability 1/2 until it is marked down; a
    // POST too, which may go elsewhere since nothing was sent.
    let mut requests = 0;
    let marked_down = poll_until(READY_TRIES, || {
        requests += 1;
        let r = if requests % 2 == 0 {
            http("POST", gw.url("/svc/post")).body("x").send()
        } else {
            gw.get("/svc/get")
        };
        assert_echo_ok(&r);
        assert_eq!(
            r.header("x-echo-instance"),
            Some("alive"),
            "request {requests}"
        );
        !healthy(&gw, "svc", "silent")
    });
    assert!(
        marked_down,
        "the silent instance never marked down: {}",
        services(&gw)
    );
    // Not refusing: the service stays.
    assert_eq!(service_names(&gw), ["svc"]);
}
