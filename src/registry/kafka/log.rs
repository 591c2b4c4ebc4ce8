//! The cluster's [`RegistryLog`]: a write is durable once the broker acknowledged it.
//!
//! An idempotent producer with `acks=all` (so a retried send is never written twice and an
//! acknowledged one is on every in-sync replica) appends the write's events, then a tombstone after
//! each removal so compaction can forget the key. `append` waits for the delivery reports on the
//! Kafka core's thread, polling the producer (no async runtime), and gives up at
//! [`KAFKA_WRITE_TIMEOUT`] after the writer *asked* (its time queued behind other writes counts)
//! or at the writer's deadline, whichever is first: the writer then gets 503.
//! librdkafka's own `message.timeout.ms` is set to the same bound so that a refused write is not
//! sent later behind the writer's back; what is still queued is purged. A write that was in flight
//! when the bound passed may still land (the broker got it, the acknowledgement was lost): every
//! gateway, this one included, then applies it from the log, so the cluster stays in agreement.
//!
//! Writes go to the broker one at a time, so during an outage the writes that queued behind one
//! that got no acknowledgement would each wait for their own bound in turn (a heartbeat of many
//! backends re-registering, each 5 s × its place in the queue). They are answered 503 at once
//! instead, untried, when the write ahead of them gives up: it has just shown that the broker does
//! not answer. A write asked for after that tries again, and the first one acknowledged ends it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};
use rdkafka::ClientContext;

use crate::registry::kafka::event::{self, NODE_ID_HEADER};
use crate::registry::owner::{LogPosition, RegistryLog};
use crate::registry::state::Event;
use crate::registry::RegistryError;

/// Longest a registration waits for the broker's acknowledgement before it is answered 503: a few
/// broker round trips with retries on a healthy cluster, short enough that an operator's script
/// learns about an outage at once.
pub const KAFKA_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one producer poll waits for delivery reports (it always waits this long): the extra
/// latency a write pays on top of the broker's acknowledgement.
const DELIVERY_POLL: Duration = Duration::from_millis(1);
/// Longest pause between reconnection attempts to a broker that went away: how soon writes work
/// again after the broker returns (librdkafka's default is 10 s).
pub const KAFKA_RECONNECT_BACKOFF_MAX_MS: u32 = 500;

/// Client settings shared by the producer and the consumer.
pub fn base_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set(
            "reconnect.backoff.max.ms",
            KAFKA_RECONNECT_BACKOFF_MAX_MS.to_string(),
        )
        .set_log_level(RDKafkaLogLevel::Warning);
    config
}

/// Routes librdkafka's logs and errors to `tracing` at debug level: a broker outage makes it
/// report every failed reconnection, and the Kafka core reports outages itself, once.
#[derive(Debug, Default)]
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, "librdkafka: {log_message}");
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::debug!("librdkafka error: {error}: {reason}");
    }
}

impl rdkafka::consumer::ConsumerContext for QuietContext {}

/// A delivery report: where the record landed, or why it did not.
type Delivered = Result<LogPosition, Undelivered>;

/// Why a record was not delivered.
#[derive(Debug, Clone)]
struct Undelivered {
    /// The producer's reason.
    reason: String,
    /// librdkafka gave up waiting for the broker (`message.timeout.ms`), as opposed to the
    /// broker refusing the record.
    timed_out: bool,
}

/// Collects the producer's delivery reports, by record number.
#[derive(Debug, Default)]
pub struct Deliveries {
    reports: Mutex<Vec<(usize, Delivered)>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        QuietContext.log(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        QuietContext.error(error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let outcome = match result {
            Ok(message) => Ok(LogPosition {
                partition: rdkafka::Message::partition(message),
                offset: rdkafka::Message::offset(message),
            }),
            Err((e, _)) => Err(Undelivered {
                reason: e.to_string(),
                timed_out: e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut),
            }),
        };
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, outcome));
    }
}

/// The Kafka registry log.
pub struct KafkaLog {
    producer: BaseProducer<Deliveries>,
    config: ClientConfig,
    topic: String,
    node: String,
    /// Number of the next record sent; reports for older numbers belong to abandoned writes.
    next_id: usize,
    /// When the last write that got no acknowledgement in time gave up, unless a write has been
    /// acknowledged since: the writes asked for before then queued behind it, and fail at once.
    gave_up_at: Option<Instant>,
}

impl KafkaLog {
    /// A log writing to `topic` through `brokers` as `node`. Connects lazily: fails only on bad
    /// settings, never because a broker is down.
    pub fn new(brokers: &str, topic: &str, node: &str) -> Result<KafkaLog, String> {
        let mut config = base_config(brokers);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // A registration is one small record: send it at once rather than wait for a batch.
            .set("linger.ms", "0")
            .set(
                "message.timeout.ms",
                KAFKA_WRITE_TIMEOUT.as_millis().to_string(),
            );
        let producer = Self::producer(&config)?;
        Ok(KafkaLog {
            producer,
            config,
            topic: topic.to_string(),
            node: node.to_string(),
            next_id: 0,
            gave_up_at: None,
        })
    }

    fn producer(config: &ClientConfig) -> Result<BaseProducer<Deliveries>, String> {
        config
            .create_with_context(Deliveries::default())
            .map_err(|e| format!("cannot create the Kafka producer: {e}"))
    }

    /// Serves pending producer events (delivery reports of abandoned writes); call when idle.
    pub fn poll(&mut self) {
        self.producer.poll(Duration::ZERO);
        let stale = std::mem::take(&mut *self.reports());
        drop(stale);
    }

    fn reports(&self) -> std::sync::MutexGuard<'_, Vec<(usize, Delivered)>> {
        self.producer
            .context()
            .reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Gives up on a write: drops what is still queued and replaces the producer. A fresh producer
    /// gets a new producer id at its first send; keeping the old one would make librdkafka bump
    /// its epoch after the timed-out messages (KIP-360), which some Kafka-compatible brokers
    /// mishandle (tansu 0.6 fails every later produce), and a producer that hit a fatal error
    /// cannot be used again anyway.
    fn abandon(&mut self) {
        self.producer.purge(PurgeConfig::default().queue());
        self.producer.poll(Duration::ZERO);
        self.reports().clear();
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            tracing::warn!("the Kafka producer failed ({code:?}: {reason}); starting a new one");
        }
        match Self::producer(&self.config) {
            Ok(p) => self.producer = p,
            Err(e) => tracing::error!("{e}"),
        }
    }
}

impl RegistryLog for KafkaLog {
    fn append(
        &mut self,
        events: &[Event],
        asked: Instant,
        deadline: Instant,
    ) -> Result<Vec<Option<LogPosition>>, RegistryError> {
        let start = Instant::now();
        if self.gave_up_at.is_some_and(|gave_up| asked < gave_up) {
            return Err(RegistryError::Unsent(
                "the registry log (Kafka) did not acknowledge the write queued before this one in \
                 time: this one was not tried (is the broker down?)"
                    .into(),
            ));
        }
        let until = deadline.min(asked + KAFKA_WRITE_TIMEOUT);
        if until <= start {
            return Err(RegistryError::Unsent(format!(
                "the registry write waited {} ms for the Kafka core, behind other writes",
                start.saturating_duration_since(asked).as_millis()
            )));
        }
        self.reports().clear();
        let ts_ms = crate::sys::unix_millis();
        let first = self.next_id;
        // Per record: whether the write depends on it (a tombstone only helps compaction).
        let mut required = Vec::with_capacity(events.len() * 2);
        for e in events {
            let key = event::key(&e.service, &e.instance);
            let value = event::encode(e, ts_ms);
            let records: [Option<&[u8]>; 2] = [
                Some(&value),
                None, // the tombstone
            ];
            let count = if e.address.is_none() { 2 } else { 1 };
            for payload in &records[..count] {
                let headers = OwnedHeaders::new().insert(Header {
                    key: NODE_ID_HEADER,
                    value: Some(self.node.as_bytes()),
                });
                let mut record = BaseRecord::with_opaque_to(&self.topic, self.next_id)
                    .key(key.as_bytes())
                    .headers(headers);
                if let Some(p) = payload {
                    record = record.payload(*p);
                }
                if let Err((e, _)) = self.producer.send::<[u8], [u8]>(record) {
                    self.abandon();
                    return Err(RegistryError::Unavailable(format!(
                        "the registry log refused the write: {e}"
                    )));
                }
                self.next_id += 1;
                required.push(payload.is_some());
            }
        }
        let mut outcome: Vec<Option<Delivered>> = vec![None; required.len()];
        let mut missing = required.len();
        while missing > 0 && Instant::now() < until {
            self.producer.poll(DELIVERY_POLL);
            for (id, result) in self.reports().drain(..) {
                if let Some(slot) = id.checked_sub(first).and_then(|i| outcome.get_mut(i)) {
                    if slot.is_none() {
                        missing -= 1;
                    }
                    *slot = Some(result);
                }
            }
        }
        let mut failure = None;
        // Whether the write failed for want of an acknowledgement (not for the broker's refusal).
        let mut unacknowledged = false;
        // Where each event's record (not its tombstone) landed.
        let mut positions = Vec::with_capacity(events.len());
        for (slot, required) in outcome.iter().zip(&required) {
            match slot {
                Some(Ok(position)) if *required => positions.push(Some(*position)),
                Some(Ok(_)) => {}
                Some(Err(e)) if *required => {
                    unacknowledged |= e.timed_out;
                    failure = Some(e.reason.clone());
                }
                None if *required => {
                    unacknowledged = true;
                    failure = Some(format!(
                        "no acknowledgement within {} ms",
                        until.duration_since(asked).as_millis()
                    ))
                }
                // A lost tombstone only delays compaction.
                _ => {}
            }
        }
        match failure {
            None => {
                self.gave_up_at = None;
                if missing > 0 {
                    self.abandon();
                }
                Ok(positions)
            }
            Some(why) => {
                self.abandon();
                if unacknowledged {
                    self.gave_up_at = Some(Instant::now());
                }
                Err(RegistryError::Unavailable(format!(
                    "the registry log (Kafka) did not take the write: {why}"
                )))
            }
        }
    }
}
