//! The registry owner: the one thread that changes the registry.
//!
//! It turns writes into versioned [`Event`]s, has the [`RegistryLog`] make them durable (a no-op when
//! standalone; the Kafka log in a cluster), applies them to the [`RegistryState`], sends the
//! resulting changes to every shard and answers the writer once every shard has applied them.
//!
//! Standalone, [`Owner::spawn`] runs it on its own thread, blocked on its mailbox. In a cluster the
//! Kafka core drives it instead, alternating [`Owner::handle`] for shard messages with
//! [`Owner::apply_remote`] + [`Owner::flush`] for the events other gateways wrote to the log, and
//! [`Owner::apply_tombstone_at`] for the tombstones (null values) anyone wrote there.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::metrics::RegistryMetrics;
use crate::names::{Address, InstanceId, ServiceName};
use crate::registry::state::{Event, RegistryState, Stamp, REMOVAL_MEMORY};
use crate::registry::{
    Change, OwnerMsg, RegistryError, ShardLink, ShardMsg, WriteOp, WriteOutcome,
};

/// Where events are made durable before they are applied.
pub trait RegistryLog: Send {
    /// Appends `events`, which a writer asked for at `asked`; returns once they are durable, with
    /// where each one's record landed when the log tells, or fails (by `deadline` at the latest,
    /// and within the log's own bound counted from `asked`) and nothing is applied.
    fn append(
        &mut self,
        events: &[Event],
        asked: Instant,
        deadline: Instant,
    ) -> Result<Vec<Option<LogPosition>>, RegistryError>;
}

/// Where a record lies in the log: a key's records all go to one partition, in offset order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
}

/// How long a repair append (see [`Owner::apply_remote_at`]) may wait for the log.
const REPAIR_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a write to a key held at the highest version there is fails.
fn at_max_version(service: &ServiceName, instance: &InstanceId) -> RegistryError {
    RegistryError::Invalid(format!(
        "{}/{} is held at version {}, the highest there is: no write can be newer",
        service.as_str(),
        instance.as_str(),
        u64::MAX
    ))
}

/// What became of one of this node's own events read back from the log ([`Owner::apply_own`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnEvent {
    /// A write reported failed that reached the log after all: applied, as every gateway does.
    Applied,
    /// A write applied when it was made: skipped.
    Echo,
    /// Newer than what this gateway holds for its key, so not written by it: another gateway or
    /// client uses its node id. Skipped all the same (contract §6 skips by node id), and worth a
    /// warning: the gateways sharing the id skip each other's writes and disagree.
    NotWrittenHere,
}

/// Most unacknowledged own events remembered (see `Owner::apply_own`): far more than the writes a
/// broker outage of a few seconds can fail.
const MAX_UNACKNOWLEDGED: usize = 1024;

/// The standalone log: the process's memory is the only copy.
#[derive(Debug, Default)]
pub struct InProcessLog;

impl RegistryLog for InProcessLog {
    fn append(
        &mut self,
        events: &[Event],
        _asked: Instant,
        _deadline: Instant,
    ) -> Result<Vec<Option<LogPosition>>, RegistryError> {
        Ok(vec![None; events.len()])
    }
}

/// A reply owed to a shard once every shard has applied change batch `seq`.
struct Pending {
    seq: u64,
    shard: usize,
    token: u64,
    result: Result<WriteOutcome, RegistryError>,
}

/// The owner's state.
pub struct Owner<L> {
    node: String,
    log: L,
    state: RegistryState,
    links: Arc<[ShardLink]>,
    seq: u64,
    applied: Vec<u64>,
    pending: VecDeque<Pending>,
    /// Changes applied from the log but not yet sent to the shards (see [`Owner::flush`]).
    outbox: Vec<Change>,
    /// Why writes are refused for now (the cluster log is not caught up yet), if they are.
    refuse_writes: Option<String>,
    /// This node's events the log did not acknowledge in time (the writer got 503): if one shows
    /// up in the log after all, it is applied here too, so this node agrees with the others.
    unacknowledged: VecDeque<Event>,
    /// Where this node's writes made since it started landed in the log, per key, while the
    /// state held for the key is still that write (see [`Owner::apply_remote_at`]).
    own_positions: std::collections::HashMap<(ServiceName, InstanceId), (Stamp, LogPosition)>,
    /// Whether every record of the log, as far as its end is known, has been read (a standalone
    /// gateway's log is read as it is written). Removals are forgotten only then: an event older
    /// than a removal read or written an hour ago, still unread behind a stalled consumer, would
    /// otherwise find its key forgotten and bring it back.
    read_to_end: bool,
    metrics: Arc<RegistryMetrics>,
}

impl<L: RegistryLog + 'static> Owner<L> {
    /// An owner for `links.len()` shards, writing as `node`.
    pub fn new(
        node: String,
        log: L,
        links: Arc<[ShardLink]>,
        metrics: Arc<RegistryMetrics>,
    ) -> Self {
        Owner {
            node,
            log,
            state: RegistryState::default(),
            applied: vec![0; links.len()],
            links,
            seq: 0,
            pending: VecDeque::new(),
            outbox: Vec::new(),
            refuse_writes: None,
            unacknowledged: VecDeque::new(),
            own_positions: std::collections::HashMap::new(),
            read_to_end: true,
            metrics,
        }
    }

    /// Refuses every write with [`RegistryError::Unavailable`] and `reason` (`None`: accept again).
    pub fn refuse_writes(&mut self, reason: Option<String>) {
        self.refuse_writes = reason;
    }

    /// The registry log.
    pub fn log_mut(&mut self) -> &mut L {
        &mut self.log
    }

    /// This owner's node id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Runs the owner on its own thread until [`OwnerMsg::Shutdown`] or every sender is gone.
    pub fn spawn(self, rx: Receiver<OwnerMsg>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("registry".into())
            .spawn(move || self.run(rx))
    }

    fn run(mut self, rx: Receiver<OwnerMsg>) {
        while let Ok(msg) = rx.recv() {
            if !self.handle(msg) {
                break;
            }
        }
    }

    /// Handles one message from a shard; false when it asks the owner to stop.
    pub fn handle(&mut self, msg: OwnerMsg) -> bool {
        match msg {
            OwnerMsg::Write {
                shard,
                token,
                op,
                asked,
                deadline,
            } => {
                // Remote changes waiting in the outbox go out first, so batch numbers stay in order.
                self.flush();
                let result = self.write(op, asked, deadline);
                if let Some(token) = token {
                    self.pending.push_back(Pending {
                        seq: self.seq,
                        shard,
                        token,
                        result,
                    });
                }
            }
            OwnerMsg::Applied { shard, seq } => {
                if let Some(a) = self.applied.get_mut(shard) {
                    *a = (*a).max(seq);
                }
            }
            OwnerMsg::Shutdown => return false,
        }
        self.release_replies();
        true
    }

    /// Applies an event read from the log if it is newer than the state held for its key; its
    /// change waits in the outbox until [`flush`](Self::flush). Returns whether it was applied
    /// (false: an event this node wrote and applied already, or an older one).
    pub fn apply_remote(&mut self, event: Event) -> bool {
        self.apply_remote_from(event, None)
    }

    /// [`apply_remote`](Self::apply_remote) for an event read at `at` in the log, which keeps
    /// the log's last record for the key its winner.
    ///
    /// Compaction keeps a key's last record by offset, and a gateway that reads the compacted
    /// log holds whatever that record says. When this node wrote the key, and an event another
    /// node wrote concurrently outranks that write (a greater `(version, node)`) but lies before
    /// it in the log, the last record is the loser: every running gateway agrees on the winner,
    /// but one started after compaction would hold the loser. The node whose write lost is the
    /// one that sees both in this order, so it appends the winner again, the same event (its
    /// stamp unchanged: every gateway holds it already and skips the copy); then the last record
    /// is the winner's.
    pub fn apply_remote_at(&mut self, event: Event, at: LogPosition) -> bool {
        self.apply_remote_from(event, Some(at))
    }

    fn apply_remote_from(&mut self, event: Event, at: Option<LogPosition>) -> bool {
        if !self.state.is_newer(&event) {
            return false;
        }
        let key = (event.service.clone(), event.instance.clone());
        let repair = match (self.own_positions.remove(&key), at) {
            (Some((stamp, own)), Some(at)) => {
                self.state.holds(&event.service, &event.instance, &stamp)
                    && own.partition == at.partition
                    && at.offset < own.offset
            }
            _ => false,
        };
        let copy = repair.then(|| event.clone());
        if let Some(change) = self.state.apply(event) {
            self.outbox.push(change);
        }
        if let Some(copy) = copy {
            let now = Instant::now();
            let written = self
                .log
                .append(std::slice::from_ref(&copy), now, now + REPAIR_WAIT);
            match written {
                Ok(positions) => {
                    // The copy is now this node's record for the state it holds: should an event
                    // that outranks it turn up from an earlier offset (written while the copy
                    // was on its way), that one is appended again in turn.
                    if let Some(Some(position)) = positions.first() {
                        self.own_positions
                            .insert(key.clone(), (copy.stamp.clone(), *position));
                    }
                    tracing::info!(
                        service = copy.service.as_str(),
                        instance = copy.instance.as_str(),
                        "a concurrent write outranked this gateway's and lies before it in the \
                     registry log: appended it again, so that compaction keeps it"
                    )
                }
                Err(e) => tracing::warn!(
                    service = copy.service.as_str(),
                    instance = copy.instance.as_str(),
                    "could not append a concurrent write that outranked this gateway's again \
                     (a gateway started after compaction may hold the other): {e}"
                ),
            }
        }
        true
    }

    /// Applies a tombstone (a record with no value) for `service`/`instance` read at `at` in the
    /// log, and returns whether it changed anything.
    ///
    /// A null value is how a Kafka client deletes a key from a compacted topic, and compaction
    /// will delete it: a gateway started after that reads neither the key's records nor the
    /// tombstone, and holds nothing for the key, not even a version. So a tombstone for a
    /// registered instance forgets the key the same way, version included: every gateway reads
    /// it at the same point of the log, and then holds what a gateway started after compaction
    /// holds, whatever comes next (an upsert of the key with a low version is taken by both).
    ///
    /// It changes nothing where the key holds a removal or nothing: that is the tombstone every
    /// removal is followed by, and the removal stays remembered (`RegistryState`), lest an older
    /// event still on its way to the log bring the key back. Nor where the state held is a write
    /// of this node's that lies *after* the tombstone in the log (applied when written, before
    /// this node read that far): every other gateway applies the tombstone to what it held before
    /// that write, then the write, and ends where this one is.
    pub fn apply_tombstone_at(
        &mut self,
        service: &ServiceName,
        instance: &InstanceId,
        at: LogPosition,
    ) -> bool {
        let Some(held) = self.state.live_stamp(service, instance) else {
            return false;
        };
        let key = (service.clone(), instance.clone());
        let written_after = self.own_positions.get(&key).is_some_and(|(stamp, own)| {
            stamp == held && own.partition == at.partition && own.offset > at.offset
        });
        if written_after {
            return false;
        }
        self.own_positions.remove(&key);
        if let Some(change) = self.state.forget(service, instance) {
            self.outbox.push(change);
        }
        true
    }

    /// Applies one of this node's own events read back from the log. Contract §6: a gateway skips
    /// the events it wrote itself — they were applied when written. The exception is an event
    /// whose write was reported failed (no acknowledgement in time) but that reached the log anyway:
    /// the other gateways apply it, so this one does too.
    pub fn apply_own(&mut self, event: Event) -> OwnEvent {
        if let Some(at) = self.unacknowledged.iter().position(|e| *e == event) {
            self.unacknowledged.remove(at);
            return if self.apply_remote(event) {
                OwnEvent::Applied
            } else {
                OwnEvent::Echo
            };
        }
        // What this gateway wrote it holds, or something newer: an event newer than the state,
        // or one with the stamp held and another address, came from another process that uses
        // this node id.
        let held_elsewise = self
            .state
            .holds(&event.service, &event.instance, &event.stamp)
            && self.state.address_of(&event.service, &event.instance) != event.address.as_ref();
        if held_elsewise || self.state.is_newer(&event) {
            OwnEvent::NotWrittenHere
        } else {
            OwnEvent::Echo
        }
    }

    /// Sends the changes applied from the log to every shard, as one batch, and, while the log
    /// is read to its end, forgets the removals older than [`REMOVAL_MEMORY`].
    pub fn flush(&mut self) {
        let changes = std::mem::take(&mut self.outbox);
        self.publish(changes);
        self.forget_old_removals(Instant::now());
    }

    /// Forgets the removals applied [`REMOVAL_MEMORY`] before `now`, if the log is read to its
    /// end (`RegistryState::forget_removals_before`), and where this node's own writes of them
    /// landed.
    fn forget_old_removals(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(REMOVAL_MEMORY) else {
            return;
        };
        if !self.read_to_end {
            return;
        }
        for key in self.state.forget_removals_before(cutoff) {
            self.own_positions.remove(&key);
        }
    }

    /// Tells whether the log has been read to its end as far as it is known (the Kafka core,
    /// from the consumer's position and lag).
    pub fn set_read_to_end(&mut self, read_to_end: bool) {
        self.read_to_end = read_to_end;
    }

    /// Whether every shard has applied every change batch published so far (a shard that has
    /// exited counts as caught up). [`flush`](Self::flush) only sends a batch: the shards apply it
    /// in their own time, so the Kafka core waits for this before it reports ready, lest a request
    /// routed just after `/-/ready` turns 200 find a shard without the services from the log.
    pub fn shards_caught_up(&self) -> bool {
        self.applied.iter().all(|&a| a >= self.seq)
    }

    /// Every registered instance, as `service/instance address` (for tests).
    #[cfg(test)]
    pub(crate) fn registered(&self) -> Vec<String> {
        self.state
            .instances()
            .map(|r| format!("{}/{} {}", r.service, r.instance, r.address.as_str()))
            .collect()
    }

    /// Applies one write, asked for at `asked`; the changes it causes are published as batch
    /// `self.seq`.
    fn write(
        &mut self,
        op: WriteOp,
        asked: Instant,
        deadline: Instant,
    ) -> Result<WriteOutcome, RegistryError> {
        if let Some(reason) = &self.refuse_writes {
            return Err(RegistryError::Unavailable(reason.clone()));
        }
        // A write that waited behind others past its deadline has been answered 503 already.
        check_in_time(deadline)?;
        let floor = crate::sys::unix_millis();
        // The service a removal for refused connections is about (counted once it is written).
        let mut refused_service = None;
        let (events, outcome) = match op {
            WriteOp::Upsert {
                service,
                instance,
                address,
            } => {
                let address = Address::parse(&address).map_err(|e| RegistryError::Invalid(e.0))?;
                // Resolving the name took time; a writer that has given up by now was told 503,
                // and contract §4 says a 503 changes nothing.
                check_in_time(deadline)?;
                let event = self
                    .state
                    .next_event(&service, &instance, Some(address), &self.node, floor)
                    .ok_or_else(|| at_max_version(&service, &instance))?;
                // Written even when this gateway holds that address already: it may hold it
                // because a newer registration elsewhere has not arrived yet, and the client, told
                // its write took effect, must not find the other one in place. (An unchanged
                // registration answers 200 all the same.)
                let outcome = self.state.outcome_of(&event);
                (vec![event], outcome)
            }
            WriteOp::Remove { service, instance } => {
                // Written even when this gateway holds no such instance, as a registration of
                // what it holds is: a registration made elsewhere may not have arrived yet.
                let event = self
                    .state
                    .next_event(&service, &instance, None, &self.node, floor)
                    .ok_or_else(|| at_max_version(&service, &instance))?;
                (vec![event], WriteOutcome::Removed)
            }
            WriteOp::RemoveRefused { service, instances } => {
                // Only instances still registered where they refused: a re-registration at a new
                // address since then must survive, and so must one made at another gateway whose
                // event has not arrived here yet: the removal is ordered just after the state it
                // was decided on, not at the wall clock, so that registration outranks it.
                let events: Vec<Event> = instances
                    .iter()
                    .filter(|(id, addr)| {
                        self.state
                            .address_of(&service, id)
                            .is_some_and(|a| a.as_str() == addr)
                    })
                    .filter_map(|(id, _)| self.state.removal_after_held(&service, id, &self.node))
                    .collect();
                if events.is_empty() {
                    return Ok(WriteOutcome::Removed);
                }
                refused_service = Some(service);
                (events, WriteOutcome::Removed)
            }
        };
        let positions = match self.log.append(&events, asked, deadline) {
            Ok(positions) => positions,
            Err(e) => {
                self.metrics.log_write_failures.inc();
                if matches!(e, RegistryError::Unsent(_)) {
                    // Never sent: it cannot land, so nothing is burned or watched for.
                    return Err(e);
                }
                for event in &events {
                    self.state.burn(event);
                }
                if self.unacknowledged.len() + events.len() > MAX_UNACKNOWLEDGED {
                    self.unacknowledged
                        .drain(..events.len().min(self.unacknowledged.len()));
                }
                self.unacknowledged.extend(events.iter().cloned());
                return Err(e);
            }
        };
        for (event, position) in events.iter().zip(positions) {
            if let Some(position) = position {
                self.own_positions.insert(
                    (event.service.clone(), event.instance.clone()),
                    (event.stamp.clone(), position),
                );
            }
        }
        let changes: Vec<Change> = events
            .into_iter()
            .filter_map(|e| self.state.apply(e))
            .collect();
        self.publish(changes);
        if let Some(service) = refused_service {
            tracing::warn!(
                service = service.as_str(),
                "every instance refused connections: service removed"
            );
            self.metrics.services_removed.inc();
        }
        Ok(outcome)
    }

    /// Sends a batch of changes to every shard.
    fn publish(&mut self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        self.seq += 1;
        for (i, link) in self.links.iter().enumerate() {
            if !link.send(ShardMsg::Changes {
                seq: self.seq,
                changes: changes.clone(),
            }) {
                // A shard that has exited (draining) no longer holds writers back.
                self.applied[i] = u64::MAX;
            }
        }
    }

    /// Answers the writes every shard has caught up with.
    fn release_replies(&mut self) {
        let low = self.applied.iter().copied().min().unwrap_or(u64::MAX);
        while self.pending.front().is_some_and(|p| p.seq <= low) {
            let p = self.pending.pop_front().expect("checked");
            self.links[p.shard].send(ShardMsg::Reply {
                token: p.token,
                result: p.result,
            });
        }
    }
}

/// Fails a write whose writer has stopped waiting (its deadline is the writer's own, less a margin
/// for the reply to reach it): applying it now would change what a 503 said was not changed.
fn check_in_time(deadline: Instant) -> Result<(), RegistryError> {
    if Instant::now() >= deadline {
        return Err(RegistryError::Unavailable(
            "the registry did not confirm the write in time".into(),
        ));
    }
    Ok(())
}

/// Starts a standalone owner for `links`, returning its mailbox.
pub fn spawn_standalone(
    node: String,
    links: Arc<[ShardLink]>,
    metrics: Arc<RegistryMetrics>,
) -> std::io::Result<(Sender<OwnerMsg>, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = Owner::new(node, InProcessLog, links, metrics).spawn(rx)?;
    Ok((tx, handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{InstanceId, ServiceName};
    use crate::registry::state::Event;
    use std::time::Duration;

    /// An owner with `n` shards, and their mailboxes (kept so that sends to them succeed).
    fn owner(n: usize) -> (Owner<InProcessLog>, Vec<crate::registry::ShardMailbox>) {
        let (links, mailboxes): (Vec<_>, Vec<_>) =
            (0..n).map(|_| crate::registry::mailbox().unwrap()).unzip();
        let owner = Owner::new(
            "node-a".into(),
            InProcessLog,
            links.into(),
            Arc::new(RegistryMetrics::default()),
        );
        (owner, mailboxes)
    }

    /// A deadline no write in these tests comes near.
    fn later() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn users() -> ServiceName {
        ServiceName::parse("users").unwrap()
    }

    fn u1() -> InstanceId {
        InstanceId::parse("u1").unwrap()
    }

    /// A registration of `users/u1` at `address`.
    fn upsert_u1(address: &str) -> WriteOp {
        WriteOp::Upsert {
            service: users(),
            instance: u1(),
            address: address.into(),
        }
    }

    /// A removal of `users/u1`.
    fn remove_u1() -> WriteOp {
        WriteOp::Remove {
            service: users(),
            instance: u1(),
        }
    }

    #[test]
    fn shards_are_caught_up_only_once_every_one_has_applied_the_last_batch() {
        let (mut owner, shards) = owner(2);
        assert!(owner.shards_caught_up(), "nothing published yet");

        assert!(owner.apply_remote(Event::users_u1(1, "node-b", Some("127.0.0.1:1"))));
        owner.flush();
        let seq = match shards[0].rx.try_recv() {
            Ok(ShardMsg::Changes { seq, .. }) => seq,
            other => panic!("unexpected {other:?}"),
        };
        assert!(!owner.shards_caught_up(), "sent but applied by no shard");
        owner.handle(OwnerMsg::Applied { shard: 0, seq });
        assert!(!owner.shards_caught_up(), "shard 1 has not applied it");
        owner.handle(OwnerMsg::Applied { shard: 1, seq });
        assert!(owner.shards_caught_up());

        // An empty flush publishes nothing and changes nothing.
        owner.flush();
        assert!(owner.shards_caught_up());
    }

    #[test]
    fn an_own_event_this_gateway_did_not_write_is_told_from_an_echo() {
        let (mut owner, _shards) = owner(1);
        let event = |version, address| Event::users_u1(version, "node-a", Some(address));
        // What node-a wrote and applied.
        assert!(owner.apply_remote(event(5, "127.0.0.1:1")));
        assert_eq!(owner.apply_own(event(5, "127.0.0.1:1")), OwnEvent::Echo);
        assert_eq!(
            owner.apply_own(event(4, "127.0.0.1:9")),
            OwnEvent::Echo,
            "older"
        );
        // Written by another process with node-a's id: skipped all the same, but told apart.
        assert_eq!(
            owner.apply_own(event(6, "127.0.0.1:2")),
            OwnEvent::NotWrittenHere
        );
        assert_eq!(
            owner.apply_own(event(5, "127.0.0.1:2")),
            OwnEvent::NotWrittenHere,
            "the stamp held, another address"
        );
        let held: Vec<String> = owner
            .state
            .instances()
            .map(|r| r.address.as_str().to_string())
            .collect();
        assert_eq!(held, ["127.0.0.1:1"], "neither was applied");
    }

    #[test]
    fn a_write_past_its_deadline_changes_nothing() {
        let (mut owner, _shards) = owner(1);
        let upsert = || upsert_u1("127.0.0.1:1");
        let late = owner.write(upsert(), Instant::now(), Instant::now());
        assert!(
            matches!(late, Err(RegistryError::Unavailable(_))),
            "{late:?}"
        );
        assert_eq!(owner.state.instances().count(), 0, "nothing applied");
        let in_time = owner.write(upsert(), Instant::now(), later());
        assert_eq!(in_time.unwrap(), WriteOutcome::Created);
    }

    #[test]
    fn a_service_removed_for_refusals_is_counted_once_however_often_asked() {
        let (mut owner, _shards) = owner(1);
        let upsert = upsert_u1("127.0.0.1:1");
        owner.write(upsert, Instant::now(), later()).unwrap();
        // Many requests saw every instance refuse, and each asks.
        for _ in 0..5 {
            let remove = WriteOp::RemoveRefused {
                service: users(),
                instances: vec![(u1(), "127.0.0.1:1".into())],
            };
            assert_eq!(
                owner.write(remove, Instant::now(), later()).unwrap(),
                WriteOutcome::Removed
            );
        }
        assert_eq!(owner.state.instances().count(), 0);
        assert_eq!(owner.metrics.services_removed.get(), 1);
    }

    /// A removal for refusals is decided on the state this gateway holds; a registration made
    /// since at another gateway, whose event has not arrived yet, must outrank it everywhere. It
    /// is ordered just after the held state: at the wall clock it outranked the registration and
    /// deleted a live instance from every gateway.
    #[test]
    fn a_removal_for_refusals_loses_to_a_registration_it_has_not_seen() {
        let (mut owner, _shards) = owner(1);
        // Registered at another gateway long ago, at an address that now refuses.
        assert!(owner.apply_remote(Event::users_u1(1_000, "node-0", Some("127.0.0.1:1"))));
        // node-0 registers it again at a new address, just before this gateway (its event not
        // arrived yet) sees the old address refuse and removes it.
        let registered_at = crate::sys::unix_millis() - 1;
        let remove = WriteOp::RemoveRefused {
            service: users(),
            instances: vec![(u1(), "127.0.0.1:1".into())],
        };
        assert_eq!(
            owner.write(remove, Instant::now(), later()).unwrap(),
            WriteOutcome::Removed
        );
        let again = Event::users_u1(registered_at, "node-0", Some("127.0.0.1:2"));
        assert!(
            owner.apply_remote(again),
            "the registration outranks the removal"
        );
        let address = owner.state.address_of(&users(), &u1()).map(|a| a.as_str());
        assert_eq!(address, Some("127.0.0.1:2"));
    }

    /// The same when the state held is ahead of the wall clock (an outside writer's version, a
    /// fast clock): the clock floor does not separate the two, the step does (a registration goes
    /// two above what it saw, a removal for refusals one), whatever the node ids.
    #[test]
    fn a_removal_for_refusals_loses_to_a_registration_on_a_state_ahead_of_the_clock() {
        let (mut owner, _shards) = owner(1);
        let ahead = crate::sys::unix_millis() + 100_000_000;
        assert!(owner.apply_remote(Event::users_u1(ahead, "outside", Some("127.0.0.1:1"))));
        let remove = WriteOp::RemoveRefused {
            service: users(),
            instances: vec![(u1(), "127.0.0.1:1".into())],
        };
        assert_eq!(
            owner.write(remove, Instant::now(), later()).unwrap(),
            WriteOutcome::Removed
        );
        // node-0 (below node-a: a tie would go to the removal) registered it on the same state.
        let mut elsewhere = RegistryState::default();
        elsewhere.apply(Event::users_u1(ahead, "outside", Some("127.0.0.1:1")));
        let again = elsewhere
            .next_event(
                &users(),
                &u1(),
                Some(Address::parse("127.0.0.1:2").unwrap()),
                "node-0",
                crate::sys::unix_millis(),
            )
            .unwrap();
        assert!(
            owner.apply_remote(again),
            "the registration outranks the removal"
        );
    }

    /// A registration of the address this gateway holds is written all the same: it may hold it
    /// only because a newer registration made elsewhere has not arrived yet, which would
    /// otherwise stay in place though this client was told its write took effect.
    #[test]
    fn a_registration_this_gateway_holds_already_is_written_all_the_same() {
        let (mut owner, appended, _shards) = recording_owner();
        let upsert = || upsert_u1("127.0.0.1:1");
        assert_eq!(
            owner.write(upsert(), Instant::now(), later()).unwrap(),
            WriteOutcome::Created
        );
        assert_eq!(
            owner.write(upsert(), Instant::now(), later()).unwrap(),
            WriteOutcome::Unchanged
        );
        let log = appended.lock().unwrap();
        assert_eq!(log.len(), 2, "both written");
        assert!(log[1].stamp > log[0].stamp, "the second outranks the first");
    }

    /// Likewise a removal of an instance this gateway does not hold (yet).
    #[test]
    fn a_removal_of_what_this_gateway_does_not_hold_is_written_all_the_same() {
        let (mut owner, appended, _shards) = recording_owner();
        let remove = remove_u1();
        assert_eq!(
            owner.write(remove, Instant::now(), later()).unwrap(),
            WriteOutcome::Removed
        );
        assert_eq!(appended.lock().unwrap().len(), 1, "written");
        // A registration made elsewhere before it, arriving now, does not undo it.
        let before = Event::users_u1(1, "node-z", Some("127.0.0.1:1"));
        assert!(!owner.apply_remote(before));
        assert_eq!(owner.state.instances().count(), 0);
    }

    /// An event from elsewhere may hold a key at the highest version there is (any u64 is one):
    /// writes to it fail with a reason, the others go on (the overflow panicked the thread, and
    /// every write after it failed).
    #[test]
    fn a_key_held_at_the_highest_version_refuses_writes_and_stops_nothing() {
        let (mut owner, _shards) = owner(1);
        assert!(owner.apply_remote(Event::users_u1(u64::MAX, "node-b", Some("127.0.0.1:1"))));
        let upsert = |instance: &str| WriteOp::Upsert {
            service: users(),
            instance: InstanceId::parse(instance).unwrap(),
            address: "127.0.0.1:2".into(),
        };
        let refused = owner.write(upsert("u1"), Instant::now(), later());
        assert!(
            matches!(refused, Err(RegistryError::Invalid(_))),
            "{refused:?}"
        );
        let remove = WriteOp::RemoveRefused {
            service: users(),
            instances: vec![(u1(), "127.0.0.1:1".into())],
        };
        assert_eq!(
            owner.write(remove, Instant::now(), later()).unwrap(),
            WriteOutcome::Removed
        );
        assert_eq!(
            owner.write(upsert("u2"), Instant::now(), later()).unwrap(),
            WriteOutcome::Created
        );
    }

    /// An owner with one shard writing to a [`Recording`] log, what that log holds, and the
    /// shard's mailbox.
    fn recording_owner() -> (
        Owner<Recording>,
        Appended,
        Vec<crate::registry::ShardMailbox>,
    ) {
        let appended = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (links, shards): (Vec<_>, Vec<_>) =
            (0..1).map(|_| crate::registry::mailbox().unwrap()).unzip();
        let owner = Owner::new(
            "node-a".into(),
            Recording(appended.clone()),
            links.into(),
            Arc::new(RegistryMetrics::default()),
        );
        (owner, appended, shards)
    }

    /// What a [`Recording`] log holds.
    type Appended = Arc<std::sync::Mutex<Vec<Event>>>;

    /// A log that keeps what is appended to it, numbering the records from offset 100 on.
    struct Recording(Appended);

    impl RegistryLog for Recording {
        fn append(
            &mut self,
            events: &[Event],
            _asked: Instant,
            _deadline: Instant,
        ) -> Result<Vec<Option<LogPosition>>, RegistryError> {
            let mut log = self.0.lock().unwrap();
            let mut positions = Vec::new();
            for event in events {
                log.push(event.clone());
                positions.push(Some(LogPosition {
                    partition: 0,
                    offset: 99 + log.len() as i64,
                }));
            }
            Ok(positions)
        }
    }

    /// Two gateways write one key at once: the other's event outranks this one's. Where it lies
    /// before this one's in the log, compaction would keep the loser (the last record), so this
    /// gateway appends the winner again; where it lies after, the log is right as it is.
    #[test]
    fn a_concurrent_write_that_wins_but_lies_before_this_one_is_appended_again() {
        let (mut owner, appended, _shards) = recording_owner();
        let upsert = upsert_u1;
        let at = |offset| LogPosition {
            partition: 0,
            offset,
        };
        // This gateway's write lands at offset 100; node-b's, with a greater stamp, at 90.
        const AHEAD: u64 = 1 << 60;
        owner
            .write(upsert("127.0.0.1:1"), Instant::now(), later())
            .unwrap();
        let winner = Event::users_u1(AHEAD, "node-b", Some("127.0.0.1:2"));
        assert!(owner.apply_remote_at(winner.clone(), at(90)));
        let last = || appended.lock().unwrap().last().cloned();
        let count = || appended.lock().unwrap().len();
        assert_eq!(last(), Some(winner.clone()), "appended again, at 101");
        assert_eq!(count(), 2);
        // An event that outranks that one, from before the copy (written while the copy was on
        // its way): appended again in turn, so the copy does not bury it.
        let newer = Event::users_u1(AHEAD + 5, "node-c", Some("127.0.0.1:5"));
        assert!(owner.apply_remote_at(newer.clone(), at(95)));
        assert_eq!(last(), Some(newer.clone()), "appended again, at 102");
        assert_eq!(count(), 3);
        // The copies, read back, change nothing and are not appended again.
        assert!(!owner.apply_remote_at(winner, at(101)));
        assert!(!owner.apply_remote_at(newer, at(102)));
        assert_eq!(count(), 3);

        // Another write here (offset 103), and one that outranks it lying after it: no repair.
        owner
            .write(upsert("127.0.0.1:3"), Instant::now(), later())
            .unwrap();
        let after = Event::users_u1(AHEAD + 100, "node-b", Some("127.0.0.1:4"));
        assert!(owner.apply_remote_at(after, at(104)));
        assert_eq!(count(), 4, "nothing appended");
    }

    #[test]
    fn a_removal_written_here_is_forgotten_with_where_it_landed() {
        let (mut owner, _appended, _shards) = recording_owner();
        let upsert = upsert_u1("127.0.0.1:1");
        let remove = remove_u1();
        owner.write(upsert, Instant::now(), later()).unwrap();
        owner.write(remove, Instant::now(), later()).unwrap();
        assert_eq!(owner.own_positions.len(), 1);
        owner.flush();
        assert_eq!(owner.own_positions.len(), 1, "remembered for a while");
        let later = Instant::now() + REMOVAL_MEMORY + std::time::Duration::from_secs(1);
        // Not while the log is not read to its end: an older event may still be unread.
        owner.set_read_to_end(false);
        owner.forget_old_removals(later);
        assert_eq!(
            owner.own_positions.len(),
            1,
            "kept while the log is not read"
        );
        assert!(!owner.apply_remote(Event::users_u1(1, "node-b", Some("127.0.0.1:2"))));
        owner.set_read_to_end(true);
        owner.forget_old_removals(later);
        assert!(owner.own_positions.is_empty());
        assert!(
            owner.apply_remote(Event::users_u1(1, "node-b", Some("127.0.0.1:2"))),
            "the key is as one never seen"
        );
    }

    #[test]
    fn a_shard_that_has_exited_does_not_hold_the_others_back() {
        let (mut owner, mut shards) = owner(2);
        drop(shards.pop());
        assert!(owner.apply_remote(Event::users_u1(1, "node-b", Some("127.0.0.1:1"))));
        owner.flush();
        assert!(!owner.shards_caught_up());
        owner.handle(OwnerMsg::Applied { shard: 0, seq: 1 });
        assert!(owner.shards_caught_up());
    }

    fn at(offset: i64) -> LogPosition {
        LogPosition {
            partition: 0,
            offset,
        }
    }

    /// An outside client deletes a key with a tombstone (contract §6 lets any client write to the
    /// log): every gateway that reads it forgets the key, version and all, as a gateway started
    /// after compaction (which reads neither) never knew it; so both take a later upsert of the
    /// key whatever its version. (Ignored, the tombstone left the running gateways routing an
    /// instance that restarted gateways did not know.)
    #[test]
    fn a_tombstone_forgets_a_registered_instance_version_and_all() {
        let (mut owner, shards) = owner(1);
        let registered = Event::users_u1(1_000, "node-b", Some("127.0.0.1:1"));
        assert!(owner.apply_remote_at(registered, at(10)));
        owner.flush();
        assert!(owner.apply_tombstone_at(&users(), &u1(), at(11)));
        owner.flush();
        assert_eq!(owner.state.instances().count(), 0);
        let removed = shards[0].rx.try_iter().flat_map(|m| match m {
            ShardMsg::Changes { changes, .. } => changes,
            _ => Vec::new(),
        });
        assert_eq!(
            removed.last(),
            Some(Change::Remove {
                service: users(),
                instance: u1(),
            }),
            "the shards are told"
        );
        // A later upsert with a low version: taken here as by a gateway started after compaction.
        let low = Event::users_u1(1, "outside", Some("127.0.0.1:2"));
        let (mut fresh, _fresh_shards) = self::owner(1);
        assert!(fresh.apply_remote_at(low.clone(), at(12)));
        assert!(owner.apply_remote_at(low, at(12)));
        assert_eq!(
            owner.state.address_of(&users(), &u1()),
            fresh.state.address_of(&users(), &u1())
        );
    }

    /// Every removal is followed by a tombstone: that one changes nothing, and the removal stays
    /// remembered, so an older event on its way to the log does not bring the key back. Nor does
    /// a tombstone for a key never seen.
    #[test]
    fn the_tombstone_after_a_removal_changes_nothing() {
        let (mut owner, _shards) = owner(1);
        assert!(
            !owner.apply_tombstone_at(&users(), &u1(), at(1)),
            "never seen"
        );
        assert!(owner.apply_remote_at(Event::users_u1(5, "node-b", Some("127.0.0.1:1")), at(2)));
        assert!(owner.apply_remote_at(Event::users_u1(6, "node-b", None), at(3)));
        assert!(!owner.apply_tombstone_at(&users(), &u1(), at(4)));
        let older = Event::users_u1(5, "node-z", Some("127.0.0.1:9"));
        assert!(
            !owner.apply_remote_at(older, at(5)),
            "the removal is remembered"
        );
        // This gateway's own removal and its tombstone alike.
        owner
            .write(upsert_u1("127.0.0.1:2"), Instant::now(), later())
            .unwrap();
        owner.write(remove_u1(), Instant::now(), later()).unwrap();
        assert!(!owner.apply_tombstone_at(&users(), &u1(), at(9)));
        assert_eq!(owner.state.instances().count(), 0);
    }

    /// This gateway applies its write when the broker acknowledges it, maybe before it has read a
    /// tombstone that lies before the write in the log. The other gateways apply that tombstone
    /// to what they held before, then the write: so it changes nothing here. One that lies after
    /// the write deletes it, here as everywhere.
    #[test]
    fn a_tombstone_before_this_gateways_write_in_the_log_leaves_the_write() {
        let (mut owner, _appended, _shards) = recording_owner();
        // Lands at offset 100.
        owner
            .write(upsert_u1("127.0.0.1:1"), Instant::now(), later())
            .unwrap();
        assert!(!owner.apply_tombstone_at(&users(), &u1(), at(99)));
        assert_eq!(
            owner.state.address_of(&users(), &u1()).map(|a| a.as_str()),
            Some("127.0.0.1:1")
        );
        assert!(owner.apply_tombstone_at(&users(), &u1(), at(101)));
        assert_eq!(owner.state.instances().count(), 0);
    }

    /// A log that fails every append with the given error.
    struct Failing(RegistryError);

    impl RegistryLog for Failing {
        fn append(
            &mut self,
            _events: &[Event],
            _asked: Instant,
            _deadline: Instant,
        ) -> Result<Vec<Option<LogPosition>>, RegistryError> {
            Err(self.0.clone())
        }
    }

    /// A write the log did not acknowledge may still land: it is watched for, and its version
    /// burned. One the log never sent (untried behind a write that got no acknowledgement, during
    /// an outage, maybe one of thousands of heartbeats) cannot land: watching for it would push the
    /// writes that may land out of the watch list, bounded as it is.
    #[test]
    fn a_write_the_log_never_sent_is_not_watched_for() {
        let owner_with = |error| {
            let (links, _): (Vec<_>, Vec<_>) =
                (0..1).map(|_| crate::registry::mailbox().unwrap()).unzip();
            Owner::new(
                "node-a".into(),
                Failing(error),
                links.into(),
                Arc::new(RegistryMetrics::default()),
            )
        };
        let mut unsent = owner_with(RegistryError::Unsent("not tried".into()));
        assert!(unsent
            .write(upsert_u1("127.0.0.1:1"), Instant::now(), later())
            .is_err());
        assert!(unsent.unacknowledged.is_empty());
        assert_eq!(
            unsent.metrics.log_write_failures.get(),
            1,
            "counted all the same"
        );
        let mut lost = owner_with(RegistryError::Unavailable("no acknowledgement".into()));
        assert!(lost
            .write(upsert_u1("127.0.0.1:1"), Instant::now(), later())
            .is_err());
        assert_eq!(lost.unacknowledged.len(), 1);
    }
}
