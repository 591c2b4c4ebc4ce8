//! The registry replicated over Kafka (contract §6): three real gateway processes joined through a
//! real Kafka-protocol broker (tansu, started per test with its own sqlite file), and kafka-python
//! as a client that is not ours. Every wait is a bounded poll; nothing here times anything.

mod support;

use std::collections::BTreeSet;

use support::cluster::*;
use support::*;

/// A topic per test, so a test reads only what it wrote even if brokers were ever shared.
fn topic(test: &str) -> String {
    format!("switchyard.registry.{test}")
}

#[test]
fn a_registration_at_one_gateway_is_routable_at_the_others() {
    let broker = Broker::start();
    let t = topic("routable");
    let a = cluster_gateway(&broker, &t, "node-a");
    let b = cluster_gateway(&broker, &t, "node-b");
    let c = cluster_gateway(&broker, &t, "node-c");
    let echo = Echo::start("e1");

    let r = register(&a, "orders", "e1", &echo.addr);
    assert_eq!(r.status, 201, "{}", r.text());
    // Answered only once durable and applied locally: A routes at once.
    assert!(routes_to(&a, "orders", "e1"));
    for gw in [&b, &c] {
        wait_for(gw, "orders/e1 routable", |g| routes_to(g, "orders", "e1"));
        assert!(metric(gw, "switchyard_registry_events_applied_total") >= 1);
    }

    let r = deregister(&b, "orders", "e1", None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(gw_status(&b, "/orders/"), 404);
    for gw in [&a, &c] {
        wait_for(gw, "orders gone", |g| gw_status(g, "/orders/") == 404);
    }
    assert_eq!(converged(&[&a, &b, &c]), Vec::new());
}

fn gw_status(gw: &Gateway, path: &str) -> u16 {
    gw.get(path).status
}

#[test]
fn concurrent_conflicting_writes_to_one_key_converge_everywhere() {
    let broker = Broker::start();
    let t = topic("conflicts");
    let a = cluster_gateway(&broker, &t, "node-a");
    let b = cluster_gateway(&broker, &t, "node-b");
    let c = cluster_gateway(&broker, &t, "node-c");

    // A and B write the same key over and over at the same time, each its own addresses; some
    // rounds also remove it. Whatever the interleaving, all three must end up identical.
    const ROUNDS: u16 = 40;
    std::thread::scope(|s| {
        for (gw, base) in [(&a, 20_000u16), (&b, 30_000u16)] {
            s.spawn(move || {
                for i in 0..ROUNDS {
                    if i % 10 == 4 {
                        let r = deregister(gw, "users", "u1", None);
                        assert_eq!(r.status, 204, "{}", r.text());
                    } else {
                        register(gw, "users", "u1", &format!("127.0.0.1:{}", base + i));
                        register(gw, "users", &format!("only-{base}"), "127.0.0.1:9");
                    }
                }
            });
        }
    });
    // The last write of each writer registers the key, so whoever won, it is present.
    let registry = converged(&[&a, &b, &c]);
    let users = &registry
        .iter()
        .find(|(s, _)| s == "users")
        .expect("users registered")
        .1;
    let ids: BTreeSet<_> = users.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from(["only-20000", "only-30000", "u1"]),
        "{registry:?}"
    );
    let winner = &users.iter().find(|(i, _)| i == "u1").unwrap().1;
    let last = [
        format!("127.0.0.1:{}", 20_000 + ROUNDS - 1),
        format!("127.0.0.1:{}", 30_000 + ROUNDS - 1),
    ];
    assert!(last.contains(winner), "u1 at {winner}");

    // One more conflicting pair after the dust settled converges too.
    std::thread::scope(|s| {
        s.spawn(|| register(&a, "users", "u1", "127.0.0.1:1111"));
        s.spawn(|| register(&b, "users", "u1", "127.0.0.1:2222"));
    });
    let registry = converged(&[&a, &b, &c]);
    let winner = registry[0].1.iter().find(|(i, _)| i == "u1").unwrap();
    assert!(
        ["127.0.0.1:1111", "127.0.0.1:2222"].contains(&winner.1.as_str()),
        "{winner:?}"
    );
}

#[test]
fn a_dead_backend_is_removed_on_every_gateway_and_comes_back_when_registered() {
    let broker = Broker::start();
    let t = topic("removal");
    let a = cluster_gateway(&broker, &t, "node-a");
    let b = cluster_gateway(&broker, &t, "node-b");
    let c = cluster_gateway(&broker, &t, "node-c");
    let mut echo = Echo::start("e1");
    register(&a, "pay", "e1", &echo.addr);
    assert!(routes_to(&a, "pay", "e1"));
    for gw in [&b, &c] {
        wait_for(gw, "pay/e1 listed", |g| {
            address_at(g, "pay", "e1").is_some()
        });
    }

    let _refusing = echo.kill_and_hold();
    // B is the one that sees the refusal (it has no pooled connection, so its first request
    // connects and is refused); it removes the service and writes the removal to the log.
    let r = b.get("/pay/");
    assert_error(&r, 503, "NO_HEALTHY_INSTANCE");
    for gw in [&a, &b, &c] {
        wait_for(gw, "pay removed", |g| {
            g.get("/pay/").status == 404 && address_at(g, "pay", "e1").is_none()
        });
    }

    let echo2 = Echo::start("e2");
    register(&c, "pay", "e2", &echo2.addr);
    for gw in [&a, &b, &c] {
        wait_for(gw, "pay/e2 routable", |g| routes_to(g, "pay", "e2"));
    }
    assert_eq!(
        converged(&[&a, &b, &c]),
        vec![(
            "pay".to_string(),
            vec![("e2".to_string(), echo2.addr.clone())]
        )]
    );
}

#[test]
fn a_restarted_gateway_rebuilds_the_same_registry_from_the_log() {
    let broker = Broker::start();
    let t = topic("restart");
    let a = cluster_gateway(&broker, &t, "node-a");
    let b = cluster_gateway(&broker, &t, "node-b");
    let mut c = cluster_gateway(&broker, &t, "node-c");
    for i in 0..5 {
        register(
            &a,
            "svc-a",
            &format!("i{i}"),
            &format!("127.0.0.1:{}", 4000 + i),
        );
        register(
            &c,
            "svc-c",
            &format!("i{i}"),
            &format!("127.0.0.1:{}", 5000 + i),
        );
    }
    register(&b, "svc-a", "i0", "127.0.0.1:4999");
    deregister(&b, "svc-a", "i1", None);
    deregister(&c, "svc-c", "i4", None);
    let before = converged(&[&a, &b, &c]);
    assert_eq!(before.len(), 2);
    assert_eq!(before[0].1.len(), 4);
    assert_eq!(before[1].1.len(), 4);

    c.proc.kill();
    drop(c);
    c = cluster_gateway(&broker, &t, "node-c");
    // Ready means caught up: the registry is complete at once, no waiting.
    assert_eq!(registry_of(&c), before);
    // Its own earlier events are part of what it rebuilt, and it writes on top of them.
    register(&c, "svc-c", "i0", "127.0.0.1:5999");
    wait_for(&a, "svc-c/i0 moved", |g| {
        address_at(g, "svc-c", "i0").as_deref() == Some("127.0.0.1:5999")
    });
    converged(&[&a, &b, &c]);
}

#[test]
fn a_broker_outage_fails_writes_cleanly_and_loses_nothing() {
    let mut broker = Broker::start();
    let t = topic("outage");
    let a = cluster_gateway(&broker, &t, "node-a");
    let b = cluster_gateway(&broker, &t, "node-b");
    let echo = Echo::start("e1");
    register(&a, "api", "e1", &echo.addr);
    wait_for(&b, "api/e1 routable", |g| routes_to(g, "api", "e1"));

    broker.stop();
    // Routing goes on with the registry held, and both stay ready.
    for gw in [&a, &b] {
        assert!(routes_to(gw, "api", "e1"));
        assert_eq!(gw.get("/-/ready").status, 200);
    }
    // Writes answer 503 and change nothing. Three at once, as backends re-registering together:
    // the Kafka thread sends one at a time, and those queued behind one that got no
    // acknowledgement are answered when it gives up, untried (each waited for its own bound in
    // turn: the third answered after ~9 s). One of the three is first; the others reach the
    // gateway within its 5 s.
    let body = br#"{"address":"127.0.0.1:7777"}"#;
    let answers: Vec<Resp> = std::thread::scope(|s| {
        let writes = [
            s.spawn(|| put_instance(&a, "api", "lost", Some(body), None)),
            s.spawn(|| put_instance(&a, "api", "lost-2", Some(body), None)),
            s.spawn(|| deregister(&a, "api", "e1", None)),
        ];
        writes.map(|w| w.join().unwrap()).into()
    });
    let mut untried = 0;
    for r in &answers {
        let error = assert_error(r, 503, "REGISTRY_UNAVAILABLE");
        let message = error["message"].as_str().unwrap();
        if message.contains("this one was not tried") {
            untried += 1;
        } else {
            assert!(message.contains("did not take the write"), "{message}");
        }
    }
    assert!(
        (1..=2).contains(&untried),
        "{:?}",
        answers.iter().map(Resp::text).collect::<Vec<_>>()
    );
    assert!(routes_to(&a, "api", "e1"));
    assert_eq!(address_at(&a, "api", "lost"), None);
    assert_eq!(address_at(&a, "api", "lost-2"), None);
    assert!(metric(&a, "switchyard_registry_log_write_failures_total") >= 3);

    broker.restart();
    // Writes work again once the gateway has reconnected by itself. Bounded by the clock: each
    // refused write may take the gateway's whole Kafka write timeout.
    let mut last = None;
    let ok = poll_for(CLUSTER_WAIT, || {
        let r = put_instance(&a, "api", "e2", Some(body), None);
        let done = r.status == 201;
        last = Some(r);
        done
    });
    assert!(
        ok,
        "writes never worked again: {:?}\n{}",
        last.map(|r| r.text()),
        a.proc.describe()
    );
    wait_for(&b, "api/e2 listed", |g| {
        address_at(g, "api", "e2").is_some()
    });
    // Nothing lost, nothing refused reappeared: a new gateway reads exactly this from the log.
    let c = cluster_gateway(&broker, &t, "node-c");
    let registry = converged(&[&a, &b, &c]);
    assert_eq!(
        registry,
        vec![(
            "api".to_string(),
            vec![
                ("e1".to_string(), echo.addr.clone()),
                ("e2".to_string(), "127.0.0.1:7777".to_string())
            ]
        )]
    );
}

#[test]
fn a_foreign_kafka_client_reads_the_log_and_its_registrations_apply_and_bad_events_are_skipped() {
    let broker = Broker::start();
    let t = topic("foreign");
    let a = cluster_gateway(&broker, &t, "node-a");
    let b = cluster_gateway(&broker, &t, "node-b");
    let echo = Echo::start("py1");
    register(&a, "web", "w1", "127.0.0.1:6001");
    deregister(&a, "web", "w1", None);

    // kafka-python reads what the gateway wrote: contract §6 records.
    let records = read_topic(&broker, &t);
    assert_eq!(records.len(), 3, "{records:#?}");
    for r in &records {
        assert_eq!(r["key"], "web/w1");
        assert_eq!(r["headers"]["node-id"], "node-a");
    }
    let upsert: serde_json::Value =
        serde_json::from_str(records[0]["value"].as_str().unwrap()).unwrap();
    assert_eq!(upsert["v"], 1);
    assert_eq!(upsert["op"], "upsert");
    assert_eq!(upsert["service"], "web");
    assert_eq!(upsert["instance"], "w1");
    assert_eq!(upsert["address"], "127.0.0.1:6001");
    assert_eq!(upsert["node"], "node-a");
    assert!(upsert["ts_ms"].as_u64().unwrap() > 1_600_000_000_000);
    let removal: serde_json::Value =
        serde_json::from_str(records[1]["value"].as_str().unwrap()).unwrap();
    assert_eq!(removal["op"], "remove");
    assert_eq!(removal["address"], serde_json::Value::Null);
    assert!(removal["version"].as_u64().unwrap() > upsert["version"].as_u64().unwrap());
    assert_eq!(records[2]["value"], serde_json::Value::Null, "tombstone");

    // Malformed records straight into the topic: counted and skipped, never fatal.
    produce(&broker, &t, "web/bad", "this is not json", Some("outsider"));
    // The event's fields in order, as a JSON array (serde's other form of a struct; it was
    // registered): contract §6 wants one JSON object.
    let fields = format!(r#"[1,"upsert","arr","a1","{}","outsider",0,5]"#, echo.addr);
    produce(&broker, &t, "arr/a1", &fields, Some("outsider"));
    produce(
        &broker,
        &t,
        "web/other-key",
        r#"{"v":1,"op":"upsert","service":"web","instance":"bad","address":"127.0.0.1:1","node":"outsider","ts_ms":1,"version":1}"#,
        Some("outsider"),
    );
    // A valid registration written by the foreign client: every gateway applies it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let value = format!(
        r#"{{"v":1,"op":"upsert","service":"py","instance":"py1","address":"{}","node":"outsider","ts_ms":{now},"version":{now}}}"#,
        echo.addr
    );
    produce(&broker, &t, "py/py1", &value, Some("outsider"));
    for gw in [&a, &b] {
        wait_for(gw, "py/py1 routable", |g| routes_to(g, "py", "py1"));
        assert_eq!(metric(gw, "switchyard_registry_events_rejected_total"), 3);
        assert_eq!(gw.get("/-/ready").status, 200);
        assert_eq!(address_at(gw, "arr", "a1"), None);
        let log = gw.proc.stderr();
        assert!(
            log.contains("the value is a JSON array, not an event object"),
            "{log}"
        );
    }
    // A gateway that starts now reads the same log, bad records included, to the same registry.
    let c = cluster_gateway(&broker, &t, "node-c");
    assert!(routes_to(&c, "py", "py1"));
    assert_eq!(metric(&c, "switchyard_registry_events_rejected_total"), 3);
    converged(&[&a, &b, &c]);
}

#[test]
fn a_gateway_skips_log_events_carrying_its_own_node_id() {
    let broker = Broker::start();
    let t = topic("own-node");
    let a = cluster_gateway(&broker, &t, "node-a");
    let b = cluster_gateway(&broker, &t, "node-b");
    let own = Echo::start("o1");
    let marker = Echo::start("m1");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let event = |service: &str, instance: &str, addr: &str, node: &str| {
        format!(
            r#"{{"v":1,"op":"upsert","service":"{service}","instance":"{instance}","address":"{addr}","node":"{node}","ts_ms":{now},"version":{now}}}"#
        )
    };
    // Written by someone else but carrying node-a's id: node-a takes it for its own and skips it
    // (contract §6); node-b applies it.
    produce(
        &broker,
        &t,
        "own/o1",
        &event("own", "o1", &own.addr, "node-a"),
        Some("node-a"),
    );
    // A later record from another writer: once node-a routes it, it has read past the first one.
    produce(
        &broker,
        &t,
        "marker/m1",
        &event("marker", "m1", &marker.addr, "outsider"),
        Some("outsider"),
    );
    wait_for(&b, "own/o1 routable at node-b", |g| {
        routes_to(g, "own", "o1")
    });
    wait_for(&a, "marker/m1 routable at node-a", |g| {
        routes_to(g, "marker", "m1")
    });
    let r = a.get("/own/");
    assert_error(&r, 404, "SERVICE_NOT_FOUND");
    assert!(metric(&a, "switchyard_registry_events_skipped_total") >= 1);
    // node-a did not write it, and says so: two writers sharing a node id skip each other.
    let log = a.proc.stderr();
    assert!(
        log.contains("another gateway or client uses the same node id"),
        "{log}"
    );
}

/// An outside client deletes a key the Kafka way, with a tombstone (a null value): every gateway
/// deletes the instance, as compaction will for a gateway started later. (The tombstone was
/// ignored: the running gateways kept routing the instance while one restarted after compaction
/// had no such service.) It forgets the key's version too, as a gateway that never read the key
/// does: a later registration with a low version is taken by all.
#[test]
fn an_outside_tombstone_deletes_the_instance_on_every_gateway_restarted_or_not() {
    let mut broker = Broker::start();
    let t = topic("tombstone");
    let a = cluster_gateway(&broker, &t, "node-a");
    let b = cluster_gateway(&broker, &t, "node-b");
    let mut c = cluster_gateway(&broker, &t, "node-c");
    let echo = Echo::start("t1");
    register(&a, "ts", "t1", &echo.addr);
    // A gateway's own removal is followed by a tombstone, which changes nothing.
    register(&b, "gone", "g1", "127.0.0.1:6001");
    deregister(&b, "gone", "g1", None);
    for gw in [&b, &c] {
        wait_for(gw, "ts/t1 routable", |g| routes_to(g, "ts", "t1"));
    }

    produce(&broker, &t, "ts/t1", "-", Some("ops"));
    for gw in [&a, &b, &c] {
        wait_for(gw, "ts/t1 deleted", |g| address_at(g, "ts", "t1").is_none());
        assert_error(&gw.get("/ts/x"), 404, "SERVICE_NOT_FOUND");
        let count = |outcome: &str| {
            metric(
                gw,
                &format!("switchyard_registry_tombstones_total{{outcome=\"{outcome}\"}}"),
            )
        };
        assert_eq!((count("applied"), count("skipped")), (1, 1));
    }

    // tansu compacts when it starts; a gateway started after that agrees with the others.
    broker.stop();
    broker.restart();
    c.proc.kill();
    drop(c);
    c = cluster_gateway(&broker, &t, "node-c");
    assert_eq!(converged(&[&a, &b, &c]), Vec::new());

    // A registration of the key with version 1, far below the deleted one's (a wall clock in ms).
    let low = format!(
        r#"{{"v":1,"op":"upsert","service":"ts","instance":"t1","address":"{}","node":"ops","ts_ms":1,"version":1}}"#,
        echo.addr
    );
    produce(&broker, &t, "ts/t1", &low, Some("ops"));
    for gw in [&a, &b, &c] {
        wait_for(gw, "ts/t1 registered again", |g| routes_to(g, "ts", "t1"));
    }
    converged(&[&a, &b, &c]);
}

/// A cluster gateway that has not caught up with the log (here: the broker is down as it starts)
/// does not know which services are registered. It answered 404 for every service, an empty
/// `/-/services` with 200 and GraphQL's "no such service" for as long as that lasted; now it
/// answers 503 with `retry-after`, as Envoy serves nothing before its first route configuration.
#[test]
fn a_gateway_that_has_not_caught_up_answers_503_for_what_it_cannot_know() {
    let mut broker = Broker::start();
    let t = topic("not-caught-up");
    let a = cluster_gateway(&broker, &t, "node-a");
    let echo = Echo::start("e1");
    register(&a, "echo", "e1", &echo.addr);
    broker.stop();

    let c = unready_cluster_gateway(&broker, &t, "node-c");
    assert_eq!(c.get("/-/ready").status, 503);
    let r = c.get("/echo/hi");
    let error = assert_error(&r, 503, "REGISTRY_UNAVAILABLE");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(error["service"], "echo");
    let r = c.get("/-/services");
    assert_error(&r, 503, "REGISTRY_UNAVAILABLE");
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = http("POST", c.url("/graphql"))
        .header("content-type", "application/json")
        .body(r#"{"query":"{ echo }"}"#)
        .send();
    assert_error(&r, 503, "REGISTRY_UNAVAILABLE");
    assert_eq!(r.header("retry-after"), Some("1"));
    // A write says why it is refused: the brokers cannot be reached, not "catching up".
    let r = put_instance(
        &c,
        "echo",
        "e2",
        Some(br#"{"address":"127.0.0.1:7"}"#),
        None,
    );
    let error = assert_error(&r, 503, "REGISTRY_UNAVAILABLE");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("has not read the cluster's registry log yet"),
        "{message}"
    );
    // The gateway that had caught up before the outage routes on, and knows what is not there.
    assert!(routes_to(&a, "echo", "e1"));
    assert_error(&a.get("/nope/"), 404, "SERVICE_NOT_FOUND");

    broker.restart();
    wait_ready(&c);
    assert!(routes_to(&c, "echo", "e1"));
    assert_error(&c.get("/nope/"), 404, "SERVICE_NOT_FOUND");
    assert_eq!(registry_of(&c), registry_of(&a));
}

/// An existing topic is used as it is, but one that deletes records by age, or has several
/// partitions, is warned about: it was used without a word, and retention then silently dropped
/// registrations. A topic the gateway created (compacted, one partition) is not warned about.
#[test]
fn an_existing_topic_that_deletes_or_has_several_partitions_is_used_with_a_warning() {
    let broker = Broker::start();
    let t = topic("partitions");
    create_topic(&broker, &t, 3, &["cleanup.policy=delete"]);
    let a = cluster_gateway(&broker, &t, "node-a");
    let b = cluster_gateway(&broker, &t, "node-b");
    let log = a.proc.stderr();
    for warning in [
        format!("the registry log topic `{t}` has cleanup.policy=delete, not compact"),
        format!("the registry log topic `{t}` has 3 partitions, not 1"),
    ] {
        assert!(log.contains(&warning), "{warning} in\n{log}");
    }
    register(&a, "svc", "s1", "127.0.0.1:6001");
    wait_for(&b, "svc/s1 listed", |g| {
        address_at(g, "svc", "s1").is_some()
    });

    // The topic a gateway creates, found by the next one: nothing to say.
    let created = topic("created");
    drop(cluster_gateway(&broker, &created, "node-c"));
    let d = cluster_gateway(&broker, &created, "node-d");
    let log = d.proc.stderr();
    assert!(!log.contains("the registry log topic"), "{log}");
}
