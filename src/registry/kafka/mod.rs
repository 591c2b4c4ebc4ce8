//! The Kafka core: one thread, pinned to `--kafka-core`, that owns the registry and its log.
//!
//! ```text
//!  shards ──WriteOp──▶ ┌──────────── kafka thread ────────────┐ ──Changes──▶ every shard's view
//!                      │ Owner ──append──▶ KafkaLog (producer) │
//!                      │   ▲                                   │
//!                      │   └──apply_remote── Replica (consumer)│ ◀── registry log topic
//!                      └───────────────────────────────────────┘
//! ```
//!
//! It runs librdkafka's poll-based producer and consumer with no async runtime (their internal
//! threads inherit the pinning), and alternates between the shards' mailbox and the log: a write
//! waits at most [`KAFKA_POLL_INTERVAL`] to be picked up, a remote event is applied as soon as it
//! is fetched, and a batch of remote changes reaches the shards as one message. Shards never talk
//! to Kafka and a lookup never waits for this thread.
//!
//! Lifecycle: until the broker is reached, the log read up to the end offsets seen at start and
//! every shard has applied what was read, `/-/ready` answers 503 and writes are refused (their
//! versions could not be ordered yet), saying whether the brokers cannot be reached or the log is
//! being read. Meanwhile a shard routes the services it has read, and answers a request for one it
//! does not know, `/-/services` and GraphQL 503 rather than 404 or an empty registry
//! (`crate::rest::unknown_service`): the service may be registered. After that, a broker outage
//! only fails writes (503 within [`log::KAFKA_WRITE_TIMEOUT`] of their asking, at once for those
//! queued behind a write that got no acknowledgement): routing goes on with the registry held,
//! readiness stays 200, and librdkafka reconnects by itself.
//!
//! Records are events, applied by `(version, node)` (`crate::registry::state`), and tombstones
//! (null values): a tombstone deletes the instance its key holds, as compaction will for a gateway
//! started later ([`Owner::apply_tombstone_at`]), and changes nothing after a removal.

pub mod consumer;
pub mod event;
pub mod log;
#[cfg(test)]
mod tests;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::config::KafkaConfig;
use crate::metrics::RegistryMetrics;
use crate::registry::owner::{LogPosition, OwnEvent, Owner, RegistryLog};
use crate::registry::{OwnerMsg, ShardLink};
use crate::shard::Process;
use consumer::{Polled, Replica};
use event::LogRecord;
use log::KafkaLog;

/// Longest a shard's write waits before the Kafka core picks it up while the log is idle (the
/// consumer poll's timeout); a new log record wakes the poll at once.
pub const KAFKA_POLL_INTERVAL: Duration = Duration::from_millis(2);
/// Most log records applied before the shards' mailbox is served again, so a catch-up on a large
/// log does not hold writes and replies back.
pub const KAFKA_POLL_BATCH: usize = 1024;
/// Pause between two attempts to reach the brokers at start-up.
pub const KAFKA_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Bound of each broker request made while connecting (metadata, topic creation, end offsets).
pub const KAFKA_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the lag gauge is refreshed.
const LAG_REFRESH: Duration = Duration::from_millis(500);
/// Least time between two warnings about an unreachable broker, so an outage is one log line
/// every so often rather than one per retry.
const OUTAGE_WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// How long the consumer may stay behind the log's end without reading a record before the
/// gateway says so: far longer than a catch-up between two reads takes, short enough that an
/// operator hears of a stuck replication (a record the broker cannot serve stopped every gateway
/// at the same offset, with nothing logged) before routes go stale for long.
const STALL_WARNING: Duration = Duration::from_secs(30);
/// Longest apply delay observed in `switchyard_registry_apply_delay_seconds`: an event is applied
/// within seconds of its write, or minutes behind a consumer that was cut off (the lag gauge and
/// the stall warning tell of longer), so a `ts_ms` older than this says something about its
/// writer's clock, or is made up (an outside client's `ts_ms:1`), and one such event would make
/// the histogram's sum meaningless (1.7e9 s).
const MAX_APPLY_DELAY: Duration = Duration::from_secs(60 * 60);
/// What writes get once the log is being read, until it is caught up.
const CATCHING_UP: &str = "the registry is catching up with the cluster log";
/// What writes get while the log cannot be read at all (followed by why).
const NOT_CONNECTED: &str = "this gateway has not read the cluster's registry log yet";

/// Starts the Kafka core for `links`, returning its mailbox. Fails (one line) when the thread
/// cannot be pinned or the Kafka settings are refused; a broker that is down is not a failure.
pub fn spawn(
    kafka: &KafkaConfig,
    node: String,
    links: Arc<[ShardLink]>,
    process: Arc<Process>,
) -> Result<(Sender<OwnerMsg>, JoinHandle<()>), String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
    let kafka = kafka.clone();
    let handle = std::thread::Builder::new()
        .name("kafka".into())
        .spawn(move || {
            // Pinned before librdkafka starts its threads, so they stay on this core too.
            if let Err(e) = crate::sys::pin_current_thread(kafka.core) {
                let _ = started_tx.send(Err(format!(
                    "cannot pin the Kafka thread to CPU {} (--kafka-core): {e}",
                    kafka.core
                )));
                return;
            }
            let log = match KafkaLog::new(&kafka.brokers, &kafka.topic, &node) {
                Ok(log) => log,
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                    return;
                }
            };
            let _ = started_tx.send(Ok(()));
            let _not_ready_if_it_dies = NotReadyOnPanic(process.clone());
            let metrics = process.registry_metrics.clone();
            let mut owner = Owner::new(node, log, links, metrics.clone());
            owner.refuse_writes(Some(NOT_CONNECTED.into()));
            owner.set_read_to_end(false);
            KafkaCore {
                kafka,
                owner,
                metrics,
                process,
                replica: None,
                next_connect: Instant::now(),
                last_warning: None,
                next_lag: Instant::now(),
                stall: Stall::new(Instant::now()),
            }
            .run(rx);
        })
        .map_err(|e| format!("cannot start the Kafka thread: {e}"))?;
    match started_rx.recv() {
        Ok(Ok(())) => Ok((tx, handle)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the Kafka thread ended during start-up".into()),
    }
}

/// Reports the gateway not ready (`/-/ready` 503) if the Kafka core's thread dies of a panic: its
/// registry would never change again, and writes would fail for good, while the load balancer,
/// seeing it ready, kept sending it traffic.
struct NotReadyOnPanic(Arc<Process>);

impl Drop for NotReadyOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.ready.store(false, Ordering::Relaxed);
            tracing::error!("the registry's Kafka thread stopped: this gateway reports not ready");
        }
    }
}

struct KafkaCore {
    kafka: KafkaConfig,
    owner: Owner<KafkaLog>,
    metrics: Arc<RegistryMetrics>,
    process: Arc<Process>,
    replica: Option<Replica>,
    next_connect: Instant,
    last_warning: Option<Instant>,
    next_lag: Instant,
    stall: Stall,
}

/// Watches for a consumer that is behind the log's end and reads nothing (see [`STALL_WARNING`]).
#[derive(Debug)]
struct Stall {
    /// When a record was last read, or the consumer last found at the log's end.
    progress: Instant,
    /// When the last warning was given, while the stall lasts.
    warned: Option<Instant>,
}

impl Stall {
    fn new(now: Instant) -> Stall {
        Stall {
            progress: now,
            warned: None,
        }
    }

    /// The consumer read a record at `now`.
    fn progressed(&mut self, now: Instant) {
        self.progress = now;
        self.warned = None;
    }

    /// The consumer is `lag` records behind the log's end at `now`. Returns how long it has read
    /// nothing when a warning is due: after [`STALL_WARNING`] without progress, then at most once
    /// per [`STALL_WARNING`] while that lasts.
    fn observe(&mut self, lag: u64, now: Instant) -> Option<Duration> {
        if lag == 0 {
            self.progressed(now);
            return None;
        }
        let stuck = now.saturating_duration_since(self.progress);
        let due = stuck >= STALL_WARNING
            && self
                .warned
                .is_none_or(|t| now.saturating_duration_since(t) >= STALL_WARNING);
        if due {
            self.warned = Some(now);
        }
        due.then_some(stuck)
    }
}

impl KafkaCore {
    fn run(mut self, rx: Receiver<OwnerMsg>) {
        loop {
            loop {
                match rx.try_recv() {
                    Ok(msg) => {
                        if !self.owner.handle(msg) {
                            return;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if self.replica.is_none() {
                self.connect();
                if self.replica.is_none() {
                    // Not connected: wait for shard messages until the next attempt.
                    let wait = self
                        .next_connect
                        .saturating_duration_since(Instant::now())
                        .min(KAFKA_RETRY_PAUSE);
                    match rx.recv_timeout(wait) {
                        Ok(msg) => {
                            if !self.owner.handle(msg) {
                                return;
                            }
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                    }
                    continue;
                }
            }
            self.read_log();
            self.owner.log_mut().poll();
        }
    }

    fn connect(&mut self) {
        if Instant::now() < self.next_connect {
            return;
        }
        match Replica::connect(
            &self.kafka.brokers,
            &self.kafka.topic,
            self.owner.node(),
            KAFKA_CONNECT_TIMEOUT,
        ) {
            Ok(replica) => {
                tracing::info!(
                    brokers = %self.kafka.brokers,
                    topic = replica.topic(),
                    "reading the registry log"
                );
                self.replica = Some(replica);
                self.owner.refuse_writes(Some(CATCHING_UP.into()));
            }
            Err(e) => {
                self.owner
                    .refuse_writes(Some(format!("{NOT_CONNECTED}: {e}")));
                self.warn_outage(&e);
                self.next_connect = Instant::now() + KAFKA_RETRY_PAUSE;
            }
        }
    }

    fn warn_outage(&mut self, what: &str) {
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= OUTAGE_WARNING_INTERVAL)
        {
            tracing::warn!(brokers = %self.kafka.brokers, "registry log: {what}");
            self.last_warning = Some(now);
        }
    }

    /// Applies up to [`KAFKA_POLL_BATCH`] records, waiting [`KAFKA_POLL_INTERVAL`] for the first.
    fn read_log(&mut self) {
        let Some(replica) = self.replica.as_mut() else {
            return;
        };
        let ready = self.process.ready.load(Ordering::Relaxed);
        let mut timeout = KAFKA_POLL_INTERVAL;
        let mut outage = None;
        let mut read = false;
        for _ in 0..KAFKA_POLL_BATCH {
            match replica.poll(timeout) {
                Polled::Idle => break,
                Polled::Error(e) => {
                    outage = Some(e.to_string());
                    break;
                }
                Polled::Record(record) => {
                    timeout = Duration::ZERO;
                    read = true;
                    apply_record(&mut self.owner, &self.metrics, record, ready);
                }
            }
        }
        self.owner.flush();
        let caught_up = replica.caught_up();
        let now = Instant::now();
        if read {
            self.stall.progressed(now);
        }
        if now >= self.next_lag {
            let lag = replica.lag();
            self.metrics.lag.set(lag);
            // Removals are forgotten only while nothing written before them can still be unread.
            self.owner.set_read_to_end(caught_up && lag == 0);
            self.next_lag = now + LAG_REFRESH;
            if let Some(stuck) = self.stall.observe(lag, now) {
                tracing::warn!(
                    behind = lag,
                    stuck_s = stuck.as_secs(),
                    "registry log: the consumer reads nothing while records wait (a record the \
                     broker cannot serve?): this gateway's registry is not being updated"
                );
            }
        }
        if let Some(e) = outage {
            self.warn_outage(&e);
        }
        // Ready once the log is caught up *and* every shard has applied what was flushed from it
        // (`flush` only sends it). `run` hands the shards' acknowledgements to the owner before
        // each call here, and each call waits at most KAFKA_POLL_INTERVAL for a record, so
        // readiness follows the last acknowledgement within one poll interval.
        if !ready && caught_up && self.owner.shards_caught_up() {
            self.owner.refuse_writes(None);
            self.process.ready.store(true, Ordering::Relaxed);
            tracing::info!("registry caught up with the cluster log: ready");
        }
    }
}

/// The apply delay of an event stamped `ts_ms` by its writer, applied at `now_ms`: `None` when it
/// is over [`MAX_APPLY_DELAY`]. A stamp ahead of this clock (the writer's runs ahead) is no delay.
fn apply_delay(now_ms: u64, ts_ms: u64) -> Option<Duration> {
    let delay = Duration::from_millis(now_ms.saturating_sub(ts_ms));
    (delay <= MAX_APPLY_DELAY).then_some(delay)
}

/// Applies one log record, counting it as applied, skipped or rejected (a tombstone as applied
/// or skipped in a counter of its own). The apply delay is only observed once caught up: during
/// catch-up it would measure the log's age, not propagation.
fn apply_record<L: RegistryLog + 'static>(
    owner: &mut Owner<L>,
    metrics: &RegistryMetrics,
    record: consumer::Record,
    observe_delay: bool,
) {
    let at = LogPosition {
        partition: record.partition,
        offset: record.offset,
    };
    match event::decode(record.key.as_deref(), record.value.as_deref()) {
        Ok(LogRecord::Tombstone { service, instance }) => {
            // Whoever wrote it: a tombstone is no event (the node-id rule does not skip it), and
            // every gateway must treat it alike.
            if owner.apply_tombstone_at(&service, &instance, at) {
                metrics.tombstones_applied.inc();
                tracing::info!(
                    service = service.as_str(),
                    instance = instance.as_str(),
                    partition = record.partition,
                    offset = record.offset,
                    writer = %crate::names::quoted(record.node.as_deref().unwrap_or("?")),
                    "a tombstone in the registry log deleted a registered instance"
                );
            } else {
                metrics.tombstones_skipped.inc();
            }
        }
        Err(e) => {
            metrics.events_rejected.inc();
            tracing::warn!(
                partition = record.partition,
                offset = record.offset,
                writer = %crate::names::quoted(record.node.as_deref().unwrap_or("?")),
                "skipping a registry log record: {e}"
            );
        }
        Ok(LogRecord::Event(logged)) => {
            // Once caught up, this node's own events (by the node-id header) were applied when
            // written and are skipped (contract §6), except one whose write was reported failed but
            // reached the log anyway. While catching up after a restart they are applied like any
            // other: that is how a node rebuilds its own registrations.
            let own = record.node.as_deref() == Some(owner.node());
            let applied = if own && observe_delay {
                let outcome = owner.apply_own(logged.event);
                if outcome == OwnEvent::NotWrittenHere {
                    tracing::warn!(
                        partition = record.partition,
                        offset = record.offset,
                        node = owner.node(),
                        "skipping a registry event with this gateway's node id that it did not \
                         write: another gateway or client uses the same node id, and the gateways \
                         sharing it skip each other's writes; give each gateway its own --node-id"
                    );
                }
                outcome == OwnEvent::Applied
            } else {
                owner.apply_remote_at(logged.event, at)
            };
            if applied {
                metrics.events_applied.inc();
                if let Some(delay) = observe_delay
                    .then(|| apply_delay(crate::sys::unix_millis(), logged.ts_ms))
                    .flatten()
                {
                    metrics.observe_apply_delay(delay);
                }
            } else {
                metrics.events_skipped.inc();
                if !own {
                    tracing::debug!(
                        partition = record.partition,
                        offset = record.offset,
                        "skipping an older registry event"
                    );
                }
            }
        }
    }
}
