//! Reading the registry log: every partition, from the beginning, then following.
//!
//! No consumer group: each gateway assigns itself every partition, so each one reads the whole log
//! and a gateway joining or leaving never makes the others rebalance. At connection time the
//! replica notes each partition's end offset; it is caught up once it has read up to those
//! offsets (or librdkafka reported the partition's end), which is when `/-/ready` turns 200.

use std::collections::HashMap;
use std::ffi::CString;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
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
/// second per gateway, which no broker notices.
pub const KAFKA_FETCH_WAIT_MS: u32 = 20;

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

/// Creates `topic` compacted unless it exists.
fn ensure_topic(brokers: &str, topic: &str, timeout: Duration) -> Result<(), String> {
    let admin: AdminClient<QuietContext> =
        base_config(brokers)
            .create_with_context(QuietContext)
            .map_err(|e| format!("cannot create the Kafka admin client: {e}"))?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(|e| format!("cannot reach the Kafka brokers: {e}"))?;
    if metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none())
    {
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
