//! Reading the registry log: every partition, from the beginning, then following.
//!
//! No consumer group: each gateway assigns itself every partition, so each one reads the whole log
//! and a gateway joining or leaving never makes the others rebalance. At connection time the
//! replica notes each partition's end offset; it is caught up once it has read up to those
//! offsets (or librdkafka reported the partition's end), which is when `/-/ready` turns 200.
//!
//! The gateway creates the topic compacted with one partition. A topic that exists already is used
//! as it is, with a warning when the brokers say it is not compacted or it has several partitions
//! ([`topic_warnings`]).

use std::collections::HashMap;
use std::ffi::CString;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::registry::kafka::event::NODE_ID_HEADER;
use crate::registry::kafka::log::{base_config, QuietContext};

/// Partitions of a topic the gateway creates: the registry is small and one partition keeps the
/// whole log in one order, which makes every replica's history identical.
pub const KAFKA_TOPIC_PARTITIONS: i32 = 1;
/// Highest replication factor the gateway asks for when it creates the topic (fewer when the
/// cluster has fewer brokers): survives the loss of one broker with `min.insync.replicas=2`.
pub const KAFKA_MAX_REPLICATION: usize = 3;
/// How long the broker may hold a fetch that has no new data. Apache Kafka answers a held fetch as
/// soon as data arrives, but not every Kafka-compatible broker does (tansu 0.6 holds it to the
/// end), so this bounds how late an idle follower sees a new event: 20 ms, at 50 idle fetches a
/// second per gateway. tansu 0.6 (sqlite) spends about 6 % of a core per idle gateway on them
/// (README, "Numbers"): a price paid for propagation in tens of milliseconds.
pub const KAFKA_FETCH_WAIT_MS: u32 = 20;

/// Longest the start-up waits for the brokers to describe an existing topic's configuration: a
/// broker answers in milliseconds, one that does not implement the request may not answer at all
/// (librdkafka's mock cluster does not), and the check only gives advice.
const TOPIC_CONFIG_WAIT: Duration = Duration::from_secs(1);

/// One record read from the log.
#[derive(Debug)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value (`None`: a tombstone).
    pub value: Option<Vec<u8>>,
    /// The `node-id` header, if any.
    pub node: Option<String>,
}

/// What one poll of the log gave.
#[derive(Debug)]
pub enum Polled {
    /// A record.
    Record(Record),
    /// Nothing new within the timeout (or a partition end was reached).
    Idle,
    /// The consumer reported an error (broker unreachable…); it keeps retrying by itself.
    Error(KafkaError),
}

#[derive(Debug)]
struct Partition {
    /// End offset seen when the replica connected.
    start_end: i64,
    /// Next offset to read.
    position: i64,
    /// librdkafka reported the end of the partition at least once.
    reached_end: bool,
}

/// This gateway's reader of the registry log.
pub struct Replica {
    consumer: BaseConsumer<QuietContext>,
    topic: String,
    topic_c: CString,
    partitions: HashMap<i32, Partition>,
}

impl Replica {
    /// Creates the topic if absent, assigns every partition from the beginning and notes the end
    /// offsets. Each broker request waits at most `timeout`.
    pub fn connect(
        brokers: &str,
        topic: &str,
        node: &str,
        timeout: Duration,
    ) -> Result<Replica, String> {
        ensure_topic(brokers, topic, timeout)?;
        let consumer: BaseConsumer<QuietContext> = base_config(brokers)
            // librdkafka needs a group id to assign partitions; with assign() and no commits the
            // group is never joined, so each node just names its own.
            .set("group.id", format!("switchyard-{node}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", KAFKA_FETCH_WAIT_MS.to_string())
            .create_with_context(QuietContext)
            .map_err(|e| format!("cannot create the Kafka consumer: {e}"))?;
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| format!("cannot read the metadata of topic `{topic}`: {e}"))?;
        let ids: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if ids.is_empty() {
            return Err(format!("topic `{topic}` has no partitions yet"));
        }
        let mut assignment = TopicPartitionList::new();
        let mut partitions = HashMap::new();
        for id in ids {
            let (low, high) = consumer
                .fetch_watermarks(topic, id, timeout)
                .map_err(|e| format!("cannot read the end offset of {topic}/{id}: {e}"))?;
            assignment
                .add_partition_offset(topic, id, Offset::Beginning)
                .map_err(|e| format!("cannot assign {topic}/{id}: {e}"))?;
            partitions.insert(
                id,
                Partition {
                    start_end: high,
                    position: low,
                    reached_end: high <= low,
                },
            );
        }
        consumer
            .assign(&assignment)
            .map_err(|e| format!("cannot assign topic `{topic}`: {e}"))?;
        Ok(Replica {
            consumer,
            topic: topic.to_string(),
            topic_c: CString::new(topic).map_err(|_| "topic name has a NUL byte".to_string())?,
            partitions,
        })
    }

    /// Waits up to `timeout` for the next record.
    pub fn poll(&mut self, timeout: Duration) -> Polled {
        match self.consumer.poll(timeout) {
            None => Polled::Idle,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                if let Some(part) = self.partitions.get_mut(&p) {
                    part.reached_end = true;
                }
                Polled::Idle
            }
            Some(Err(e)) => Polled::Error(e),
            Some(Ok(m)) => {
                if let Some(part) = self.partitions.get_mut(&m.partition()) {
                    part.position = m.offset() + 1;
                }
                let node = m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == NODE_ID_HEADER)
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                });
                Polled::Record(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    node,
                })
            }
        }
    }

    /// Whether every partition has been read up to the end offset it had at connection time.
    pub fn caught_up(&self) -> bool {
        self.partitions
            .values()
            .all(|p| p.reached_end || p.position >= p.start_end)
    }

    /// Records between the read position and the end of the log, from the end offsets the
    /// consumer last learnt from the broker (no broker request: safe to call while it is down).
    pub fn lag(&self) -> u64 {
        let mut lag = 0;
        for (&id, p) in &self.partitions {
            let (mut low, mut high) = (0i64, 0i64);
            // SAFETY: the client pointer lives as long as self.consumer; the topic is a valid C
            // string; low and high are valid out-pointers. The call reads librdkafka's cache only.
            let err = unsafe {
                rdkafka::bindings::rd_kafka_get_watermark_offsets(
                    self.consumer.client().native_ptr(),
                    self.topic_c.as_ptr(),
                    id,
                    &mut low,
                    &mut high,
                )
            };
            if err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                && high >= 0
            {
                lag += (high - p.position.max(low)).max(0) as u64;
            }
        }
        lag
    }

    /// The topic read.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

/// Creates `topic` compacted unless it exists; warns when it exists with settings that lose or
/// misorder registrations ([`topic_warnings`]).
fn ensure_topic(brokers: &str, topic: &str, timeout: Duration) -> Result<(), String> {
    let admin: AdminClient<QuietContext> =
        base_config(brokers)
            .create_with_context(QuietContext)
            .map_err(|e| format!("cannot create the Kafka admin client: {e}"))?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(|e| format!("cannot reach the Kafka brokers: {e}"))?;
    let existing = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none());
    if let Some(existing) = existing {
        let policy = cleanup_policy(&admin, topic, timeout);
        for warning in topic_warnings(topic, existing.partitions().len(), policy.as_deref()) {
            tracing::warn!(topic, "{warning}");
        }
        return Ok(());
    }
    let replication = metadata.brokers().len().clamp(1, KAFKA_MAX_REPLICATION) as i32;
    let new = NewTopic::new(
        topic,
        KAFKA_TOPIC_PARTITIONS,
        TopicReplication::Fixed(replication),
    )
    .set("cleanup.policy", "compact");
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    // The future is completed by the admin client's own polling thread: no runtime needed.
    let results = futures_lite::future::block_on(admin.create_topics([&new], &options))
        .map_err(|e| format!("cannot create topic `{topic}`: {e}"))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, replication, "created the registry log topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(format!("cannot create topic `{topic}`: {code}")),
        }
    }
    Ok(())
}

/// The `cleanup.policy` the brokers report for `topic`, if they report one within `timeout` or
/// [`TOPIC_CONFIG_WAIT`] (tansu 0.6 reports only a policy set on the topic, none for a topic
/// created without one; that is no reason to warn, nor to stop).
fn cleanup_policy(
    admin: &AdminClient<QuietContext>,
    topic: &str,
    timeout: Duration,
) -> Option<String> {
    let options = AdminOptions::new().request_timeout(Some(timeout.min(TOPIC_CONFIG_WAIT)));
    let resource = ResourceSpecifier::Topic(topic);
    // The future is completed by the admin client's own polling thread: no runtime needed.
    let described = futures_lite::future::block_on(admin.describe_configs([&resource], &options));
    let policy = match described {
        Ok(results) => results
            .into_iter()
            .next()
            .and_then(|r| r.ok())
            .and_then(|r| r.get("cleanup.policy").and_then(|e| e.value.clone())),
        Err(e) => {
            tracing::debug!(topic, "cannot read the topic's configuration: {e}");
            None
        }
    };
    if policy.is_none() {
        tracing::debug!(
            topic,
            "the brokers did not report the topic's cleanup.policy"
        );
    }
    policy
}

/// What is wrong with an existing registry topic of `partitions` partitions whose brokers report
/// `policy` as its `cleanup.policy` (`None`: not reported, which says nothing). The gateway uses
/// the topic all the same (an operator may have reasons, and refusing would stop the registry),
/// but says what it costs: retention deletes registrations that are still live, so a gateway
/// started after it misses them; and a key's records in one partition are ordered, but those of
/// several partitions are read in no agreed order, and writers that hash keys differently (the
/// gateway's librdkafka and a Java or Python client do) put one key's records in two partitions.
pub fn topic_warnings(topic: &str, partitions: usize, policy: Option<&str>) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(policy) = policy.filter(|p| p.trim() != "compact") {
        let deletes = policy.split(',').any(|p| p.trim() == "delete");
        let cost = if deletes {
            "the brokers delete records by age or size, registrations of live instances \
             included, and a gateway started after that does not know them"
        } else {
            "the log is never compacted: it keeps every write, and every gateway reads them all \
             at start"
        };
        warnings.push(format!(
            "the registry log topic `{topic}` has cleanup.policy={policy}, not compact: {cost} \
             (set cleanup.policy=compact)"
        ));
    }
    if partitions != KAFKA_TOPIC_PARTITIONS as usize {
        warnings.push(format!(
            "the registry log topic `{topic}` has {partitions} partitions, not \
             {KAFKA_TOPIC_PARTITIONS}: one partition keeps the whole registry in one order for \
             every gateway; with several, a key's records may be split between partitions by \
             clients that hash keys differently, and gateways may disagree"
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::topic_warnings;

    #[test]
    fn a_topic_that_deletes_or_has_several_partitions_is_warned_about_and_an_unreported_policy_is_not(
    ) {
        let t = "switchyard.registry";
        assert!(topic_warnings(t, 1, Some("compact")).is_empty());
        assert!(
            topic_warnings(t, 1, None).is_empty(),
            "a broker that reports no policy (tansu 0.6, for a topic created without one) is no \
             reason to warn"
        );
        for (policy, deletes) in [("delete", true), ("compact, delete", true), ("", false)] {
            let warnings = topic_warnings(t, 1, Some(policy));
            assert_eq!(warnings.len(), 1, "{policy}: {warnings:?}");
            assert!(
                warnings[0].contains(&format!("cleanup.policy={policy}, not compact")),
                "{warnings:?}"
            );
            assert_eq!(
                warnings[0].contains("registrations of live instances"),
                deletes,
                "{warnings:?}"
            );
        }
        let warnings = topic_warnings(t, 3, Some("delete"));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[1].contains("has 3 partitions, not 1"),
            "{warnings:?}"
        );
        assert_eq!(topic_warnings(t, 3, None).len(), 1);
    }
}
