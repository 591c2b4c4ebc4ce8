//! The Kafka log and replica against librdkafka's in-process mock cluster, for the broker faults a
//! real broker cannot be made to produce on demand (request errors) and for the write bound.
//! tests/cluster.rs covers the same paths end to end with a real broker.

use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use super::consumer::{Polled, Replica};
use super::event;
use super::log::{KafkaLog, KAFKA_WRITE_TIMEOUT};
use crate::names::{Address, InstanceId, ServiceName};
use crate::registry::owner::RegistryLog;
use crate::registry::state::{Event, Stamp};
use crate::registry::RegistryError;

const TOPIC: &str = "registry";
/// Bound of the polls below (a mock broker answers in microseconds).
const TRIES: usize = 500;

fn mock() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, 1, 1).expect("create topic");
    cluster
}

fn event(version: u64, address: Option<&str>) -> Event {
    Event {
        service: ServiceName::parse("users").unwrap(),
        instance: InstanceId::parse("u1").unwrap(),
        address: address.map(|a| Address::parse(a).unwrap()),
        stamp: Stamp {
            version,
            node: "node-a".into(),
        },
    }
}

fn soon() -> Instant {
    Instant::now() + KAFKA_WRITE_TIMEOUT
}

/// Reads every record of the topic (bounded), as (key, decoded event or None for a tombstone).
fn read_all(bootstrap: &str) -> Vec<(Option<String>, Option<event::LogEvent>)> {
    let mut replica =
        Replica::connect(bootstrap, TOPIC, "node-r", Duration::from_secs(5)).expect("connect");
    let mut out = Vec::new();
    for _ in 0..TRIES {
        match replica.poll(Duration::from_millis(10)) {
            Polled::Record(r) => {
                assert_eq!(r.node.as_deref(), Some("node-a"));
                let decoded = event::decode(r.key.as_deref(), r.value.as_deref()).unwrap();
                out.push((r.key.map(|k| String::from_utf8(k).unwrap()), decoded));
            }
            Polled::Idle if replica.caught_up() => return out,
            _ => {}
        }
    }
    panic!("replica never caught up; read {out:?}");
}

#[test]
fn writes_are_acknowledged_then_read_back_with_a_tombstone_after_a_removal() {
    let cluster = mock();
    let bootstrap = cluster.bootstrap_servers();
    let mut log = KafkaLog::new(&bootstrap, TOPIC, "node-a").unwrap();
    log.append(&[event(1, Some("127.0.0.1:1"))], soon())
        .expect("upsert acknowledged");
    log.append(&[event(2, None)], soon())
        .expect("removal acknowledged");

    let records = read_all(&bootstrap);
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(records
        .iter()
        .all(|(k, _)| k.as_deref() == Some("users/u1")));
    assert_eq!(
        records[0].1.as_ref().unwrap().event,
        event(1, Some("127.0.0.1:1"))
    );
    assert_eq!(records[1].1.as_ref().unwrap().event, event(2, None));
    assert!(records[2].1.is_none(), "tombstone after the removal");
}

#[test]
fn a_broker_error_fails_the_write_and_the_next_one_works() {
    let cluster = mock();
    let bootstrap = cluster.bootstrap_servers();
    let mut log = KafkaLog::new(&bootstrap, TOPIC, "node-a").unwrap();
    log.append(&[event(1, Some("127.0.0.1:1"))], soon())
        .expect("first write");
    // A permanent error (not retried by librdkafka) on the next produce request.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let r = log.append(&[event(2, Some("127.0.0.1:2"))], soon());
    assert!(matches!(r, Err(RegistryError::Unavailable(_))), "{r:?}");
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    log.append(&[event(3, Some("127.0.0.1:3"))], soon())
        .expect("a write after the error");
    let versions: Vec<u64> = read_all(&bootstrap)
        .into_iter()
        .filter_map(|(_, e)| e.map(|e| e.event.stamp.version))
        .collect();
    assert_eq!(versions, [1, 3], "the refused write is not in the log");
}

#[test]
fn a_broker_that_is_down_fails_the_write_by_its_deadline_and_writes_resume_when_it_returns() {
    let cluster = mock();
    let bootstrap = cluster.bootstrap_servers();
    let mut log = KafkaLog::new(&bootstrap, TOPIC, "node-a").unwrap();
    log.append(&[event(1, Some("127.0.0.1:1"))], soon())
        .expect("first write");
    cluster.broker_down(1).unwrap();
    let deadline = Instant::now() + Duration::from_millis(500);
    let r = log.append(&[event(2, Some("127.0.0.1:2"))], deadline);
    assert!(matches!(r, Err(RegistryError::Unavailable(_))), "{r:?}");
    // The call returns at its deadline, not when the broker comes back (generous slack: this
    // checks for a hang, not for speed).
    assert!(Instant::now() < deadline + Duration::from_secs(5));

    cluster.broker_up(1).unwrap();
    let mut ok = false;
    for v in 3..3 + TRIES as u64 {
        if log
            .append(
                &[event(v, Some("127.0.0.1:3"))],
                Instant::now() + Duration::from_secs(1),
            )
            .is_ok()
        {
            ok = true;
            break;
        }
    }
    assert!(ok, "writes never worked again after the broker returned");
}

#[test]
fn a_deadline_already_past_fails_without_writing() {
    let cluster = mock();
    let mut log = KafkaLog::new(&cluster.bootstrap_servers(), TOPIC, "node-a").unwrap();
    let r = log.append(&[event(1, Some("127.0.0.1:1"))], Instant::now());
    assert!(matches!(r, Err(RegistryError::Unavailable(_))), "{r:?}");
}

#[test]
fn the_replica_is_caught_up_at_once_on_an_empty_log() {
    // (Topic creation itself needs a real broker: the mock has no CreateTopics; tests/cluster.rs.)
    let cluster = mock();
    let mut replica = Replica::connect(
        &cluster.bootstrap_servers(),
        TOPIC,
        "node-r",
        Duration::from_secs(5),
    )
    .expect("connect");
    assert!(replica.caught_up());
    assert!(matches!(
        replica.poll(Duration::from_millis(10)),
        Polled::Idle
    ));
    assert_eq!(replica.lag(), 0);
}
