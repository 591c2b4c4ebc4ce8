//! The authoritative registry state held by the owner, with the per-key ordering contract §6 asks for.
//!
//! Every key (`service/instance`) remembers the `(version, node)` of the last event applied to it,
//! removals included, so that an older event arriving late never resurrects or overwrites newer
//! state, whatever order events arrive in.
//!
//! A local write takes `version = max(held + 2, floor)`, where the owner passes the wall clock in
//! milliseconds as the floor (a hybrid logical clock); a removal for refused connections takes
//! `held + 1`, so a registration made on the same state outranks it. `held + 2` alone would be
//! enough while every node remembers every key, but log compaction makes a restarted node forget removed keys: its
//! next write would start again at 1 and lose to the removal the other nodes still remember. The
//! clock floor makes a write after a forgotten removal win, as it should.
//!
//! Removals are remembered for [`REMOVAL_MEMORY`], then forgotten
//! ([`RegistryState::forget_removals_before`]) if the log has been read to its end meanwhile (the
//! owner sees to that): instances that come and go under new names (a pod per deploy) would
//! otherwise leave one entry each for the life of the process. An event older than a removal is
//! then in the log already, read (a write on its way to the log gives up within seconds), so it
//! cannot arrive after the removal is forgotten; and a gateway started after compaction has
//! forgotten the removal already, which the clock floor covers.
//!
//! A tombstone (a null value in the log) for a registered instance forgets its key outright,
//! version included ([`RegistryState::forget`]): that is the state of a gateway started after
//! compaction, which reads neither the key's records nor the tombstone, so both take whatever
//! the log says next about the key.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::names::{Address, InstanceId, ServiceName};
use crate::registry::{Change, InstanceRecord, WriteOutcome};

/// How far above the held version a write goes: two, so that a removal for refusals, which goes
/// one above ([`RegistryState::removal_after_held`]), loses to a registration made on the same
/// state elsewhere even when the clock floor does not separate them (a held version ahead of the
/// wall clock: an outside writer's, a fast clock's), whatever the node ids.
const WRITE_STEP: u64 = 2;

/// How long a removal is remembered: far longer than any write takes to reach the log (writes
/// give up after `KAFKA_WRITE_TIMEOUT`, 5 s, and librdkafka's message timeout with them), so no
/// event older than the removal can still arrive from a gateway, and short enough that the
/// removals of a busy deployment's short-lived instances (hundreds of bytes each) stay few.
pub const REMOVAL_MEMORY: Duration = Duration::from_secs(60 * 60);

/// The ordering stamp of an event: higher version wins; on a tie, the higher node id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    /// Per-key version.
    pub version: u64,
    /// The node that wrote it.
    pub node: String,
}

#[derive(Debug, Clone)]
struct Entry {
    address: Option<Address>,
    stamp: Stamp,
}

/// An event on one key, as written to (or read from) the registry log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Service.
    pub service: ServiceName,
    /// Instance.
    pub instance: InstanceId,
    /// New address, or `None` for a removal.
    pub address: Option<Address>,
    /// Ordering stamp.
    pub stamp: Stamp,
}

/// Registry state: `(service, instance)` → latest event.
#[derive(Debug, Default)]
pub struct RegistryState {
    entries: BTreeMap<(ServiceName, InstanceId), Entry>,
    /// Versions handed to writes the log refused. Such an event may still reach the log (a broker
    /// can persist a write whose acknowledgement was lost), so the key's next write must be newer.
    burned: BTreeMap<(ServiceName, InstanceId), u64>,
    /// The removals applied, oldest first, with when: forgotten after [`REMOVAL_MEMORY`].
    removals: VecDeque<(Instant, (ServiceName, InstanceId), Stamp)>,
}

impl RegistryState {
    /// The event a local write of `address` (or a removal) would produce: this node, and a version
    /// above anything held or burned for the key and at least `floor`. `None` when nothing is above
    /// it: an event from elsewhere (any u64 is a version, contract §6) holds the key at `u64::MAX`.
    /// One below that, the write takes the last version there is, one step up instead of two.
    pub fn next_event(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        address: Option<Address>,
        node: &str,
        floor: u64,
    ) -> Option<Event> {
        let version = self
            .version_after(service, instance, WRITE_STEP)
            .or_else(|| self.version_after(service, instance, 1))?
            .max(floor);
        Some(Self::event(service, instance, address, node, version))
    }

    /// A removal ordered just after the state this node holds for the key, not at the wall clock:
    /// for a removal decided on that state (its address refused connections), which must lose to
    /// any registration made since, here or at a gateway whose event has not arrived yet. `None`
    /// as for [`next_event`](Self::next_event).
    pub fn removal_after_held(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        node: &str,
    ) -> Option<Event> {
        let version = self.version_after(service, instance, 1)?;
        Some(Self::event(service, instance, None, node, version))
    }

    /// `step` above the highest version held or burned for the key, if there is one.
    fn version_after(
        &self,
        service: &ServiceName,
        instance: &InstanceId,
        step: u64,
    ) -> Option<u64> {
        let key = (service.clone(), instance.clone());
        let held = self.entries.get(&key).map_or(0, |e| e.stamp.version);
        let burned = self.burned.get(&key).copied().unwrap_or(0);
        held.max(burned).checked_add(step)
    }

    fn event(
        service: &ServiceName,
        instance: &InstanceId,
        address: Option<Address>,
        node: &str,
        version: u64,
    ) -> Event {
        Event {
            service: service.clone(),
            instance: instance.clone(),
            address,
            stamp: Stamp {
                version,
                node: node.to_string(),
            },
        }
    }

    /// Remembers the version of an event the log refused, so that no later write reuses it.
    pub fn burn(&mut self, event: &Event) {
        let v = self
            .burned
            .entry((event.service.clone(), event.instance.clone()))
            .or_insert(0);
        *v = (*v).max(event.stamp.version);
    }

    /// Whether `event` is newer than what is held for its key (so [`apply`](Self::apply) takes it).
    pub fn is_newer(&self, event: &Event) -> bool {
        self.entries
            .get(&(event.service.clone(), event.instance.clone()))
            .is_none_or(|held| event.stamp > held.stamp)
    }

    /// What applying `event` would mean to a client: created, updated, unchanged or removed.
    pub fn outcome_of(&self, event: &Event) -> WriteOutcome {
        let current = self.address_of(&event.service, &event.instance);
        match (&event.address, current) {
            (None, _) => WriteOutcome::Removed,
            (Some(_), None) => WriteOutcome::Created,
            (Some(new), Some(old)) if new.as_str() == old.as_str() => WriteOutcome::Unchanged,
            (Some(_), Some(_)) => WriteOutcome::Updated,
        }
    }

    /// Applies `event` if its stamp is greater than the one held for its key. Returns the change the
    /// shards must see, or `None` when the event was older or changed nothing visible.
    pub fn apply(&mut self, event: Event) -> Option<Change> {
        if !self.is_newer(&event) {
            return None;
        }
        let key = (event.service.clone(), event.instance.clone());
        let before = self.entries.get(&key).and_then(|e| e.address.clone());
        let change = match (&event.address, before) {
            (Some(new), Some(old)) if new == &old => None,
            (Some(new), _) => Some(Change::Upsert(InstanceRecord {
                service: event.service.clone(),
                instance: event.instance.clone(),
                address: new.clone(),
            })),
            (None, Some(_)) => Some(Change::Remove {
                service: event.service.clone(),
                instance: event.instance.clone(),
            }),
            (None, None) => None,
        };
        if event.address.is_none() {
            self.removals
                .push_back((Instant::now(), key.clone(), event.stamp.clone()));
        }
        self.entries.insert(
            key,
            Entry {
                address: event.address,
                stamp: event.stamp,
            },
        );
        change
    }

    /// The stamp of the instance registered under the key, if one is (not a removal, not nothing).
    pub fn live_stamp(&self, service: &ServiceName, instance: &InstanceId) -> Option<&Stamp> {
        self.entries
            .get(&(service.clone(), instance.clone()))
            .filter(|e| e.address.is_some())
            .map(|e| &e.stamp)
    }

    /// Forgets the key, its version included, as if no event had ever been applied to it: what a
    /// tombstone does to a registered instance (see `Owner::apply_tombstone_at`). Returns the
    /// change the shards must see. A version burned by a write of this node's that the log did
    /// not acknowledge is kept: that write may still land, after the tombstone, and this node's
    /// next write of the key must outrank it, as on every other gateway.
    pub fn forget(&mut self, service: &ServiceName, instance: &InstanceId) -> Option<Change> {
        let entry = self.entries.remove(&(service.clone(), instance.clone()))?;
        entry.address.map(|_| Change::Remove {
            service: service.clone(),
            instance: instance.clone(),
        })
    }

    /// Forgets the removals applied before `cutoff` whose key nothing has been applied to since,
    /// and returns their keys: an event for one is then taken as for a key never seen.
    pub fn forget_removals_before(&mut self, cutoff: Instant) -> Vec<(ServiceName, InstanceId)> {
        let mut forgotten = Vec::new();
        while self.removals.front().is_some_and(|(at, _, _)| *at < cutoff) {
            let Some((_, key, stamp)) = self.removals.pop_front() else {
                break;
            };
            if self.entries.get(&key).is_some_and(|e| e.stamp == stamp) {
                self.entries.remove(&key);
                forgotten.push(key);
            }
        }
        forgotten
    }

    /// Whether the state held for the key is the event stamped `stamp`.
    pub fn holds(&self, service: &ServiceName, instance: &InstanceId, stamp: &Stamp) -> bool {
        self.entries
            .get(&(service.clone(), instance.clone()))
            .is_some_and(|e| &e.stamp == stamp)
    }

    /// The address `instance` of `service` is registered at.
    pub fn address_of(&self, service: &ServiceName, instance: &InstanceId) -> Option<&Address> {
        self.entries
            .get(&(service.clone(), instance.clone()))
            .and_then(|e| e.address.as_ref())
    }

    /// Every registered instance, ordered by service then instance.
    pub fn instances(&self) -> impl Iterator<Item = InstanceRecord> + '_ {
        self.entries.iter().filter_map(|((service, instance), e)| {
            e.address.as_ref().map(|address| InstanceRecord {
                service: service.clone(),
                instance: instance.clone(),
                address: address.clone(),
            })
        })
    }
}

#[cfg(test)]
impl Event {
    /// An event on the key `users/u1` (tests of the state and of the log share it).
    pub(crate) fn users_u1(version: u64, node: &str, address: Option<&str>) -> Event {
        Event {
            service: ServiceName::parse("users").unwrap(),
            instance: InstanceId::parse("u1").unwrap(),
            address: address.map(|a| Address::parse(a).unwrap()),
            stamp: Stamp {
                version,
                node: node.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(version: u64, node: &str, address: Option<&str>) -> Event {
        Event::users_u1(version, node, address)
    }

    #[test]
    fn newer_stamps_win_whatever_the_arrival_order() {
        let events = [
            event(1, "a", Some("127.0.0.1:1")),
            event(2, "a", Some("127.0.0.1:2")),
            event(2, "b", Some("127.0.0.1:3")),
            event(3, "a", None),
            event(3, "c", Some("127.0.0.1:4")),
        ];
        // Every permutation of arrival converges on the greatest stamp: (3, "c").
        let mut order: Vec<usize> = (0..events.len()).collect();
        let mut permutations = 0;
        loop {
            let mut state = RegistryState::default();
            for &i in &order {
                state.apply(events[i].clone());
            }
            let addr = state
                .address_of(&events[0].service, &events[0].instance)
                .map(|a| a.as_str().to_string());
            assert_eq!(addr.as_deref(), Some("127.0.0.1:4"), "order {order:?}");
            permutations += 1;
            if !next_permutation(&mut order) {
                break;
            }
        }
        assert_eq!(permutations, 120);
    }

    #[test]
    fn removals_are_forgotten_after_a_while_unless_the_key_was_written_since() {
        let on = |instance: &str, version: u64, address: Option<&str>| Event {
            instance: InstanceId::parse(instance).unwrap(),
            ..event(version, "a", address)
        };
        let mut state = RegistryState::default();
        let before = Instant::now();
        for e in [
            on("gone", 1, Some("127.0.0.1:1")),
            on("gone", 3, None),
            on("back", 1, Some("127.0.0.1:2")),
            on("back", 3, None),
            on("back", 5, Some("127.0.0.1:3")),
        ] {
            state.apply(e);
        }
        assert!(
            state.forget_removals_before(before).is_empty(),
            "nothing is forgotten before its time"
        );
        assert!(!state.is_newer(&on("gone", 2, Some("127.0.0.1:9"))));
        let forgotten = state.forget_removals_before(Instant::now() + Duration::from_secs(1));
        let names: Vec<&str> = forgotten.iter().map(|(_, i)| i.as_str()).collect();
        assert_eq!(names, ["gone"], "a key registered again keeps its state");
        assert!(
            state.is_newer(&on("gone", 2, Some("127.0.0.1:9"))),
            "a forgotten key is as one never seen"
        );
        assert!(!state.is_newer(&on("back", 4, None)));
        assert_eq!(state.instances().count(), 1);
        assert!(
            state.removals.is_empty(),
            "every removal was looked at once"
        );
    }

    fn next_permutation(v: &mut [usize]) -> bool {
        let Some(i) = (1..v.len()).rev().find(|&i| v[i - 1] < v[i]) else {
            return false;
        };
        let j = (i..v.len()).rev().find(|&j| v[j] > v[i - 1]).unwrap();
        v.swap(i - 1, j);
        v[i..].reverse();
        true
    }

    #[test]
    fn removal_is_remembered_so_old_upserts_do_not_resurrect() {
        let mut state = RegistryState::default();
        assert!(state.apply(event(1, "a", Some("127.0.0.1:1"))).is_some());
        assert!(matches!(
            state.apply(event(2, "a", None)),
            Some(Change::Remove { .. })
        ));
        assert_eq!(state.apply(event(1, "z", Some("127.0.0.1:9"))), None);
        assert_eq!(state.instances().count(), 0);
    }

    #[test]
    fn local_writes_report_their_outcome() {
        let state = RegistryState::default();
        let s = ServiceName::parse("users").unwrap();
        let i = InstanceId::parse("u1").unwrap();
        let e = state
            .next_event(&s, &i, Some(Address::parse("127.0.0.1:1").unwrap()), "n", 0)
            .unwrap();
        assert_eq!(e.stamp.version, 2, "two above what is held (nothing)");
        assert_eq!(state.outcome_of(&e), WriteOutcome::Created);
        let mut state = state;
        state.apply(e.clone());
        assert_eq!(state.outcome_of(&e), WriteOutcome::Unchanged);
        let e2 = state
            .next_event(&s, &i, Some(Address::parse("127.0.0.1:2").unwrap()), "n", 0)
            .unwrap();
        assert_eq!(
            (e2.stamp.version, state.outcome_of(&e2)),
            (4, WriteOutcome::Updated)
        );
    }

    #[test]
    fn versions_pass_burned_ones_and_the_floor() {
        let mut state = RegistryState::default();
        let s = ServiceName::parse("users").unwrap();
        let i = InstanceId::parse("u1").unwrap();
        let next = |state: &RegistryState, floor| {
            let event = state.next_event(&s, &i, None, "n", floor).unwrap();
            event.stamp.version
        };
        let refused = state.next_event(&s, &i, None, "n", 0).unwrap();
        state.burn(&refused);
        assert_eq!(next(&state, 0), 4);
        // A restarted node that forgot a removed key still writes above what others remember.
        assert_eq!(next(&state, 1_000), 1_000);
        assert!(state.is_newer(&event(1, "a", None)));
        state.apply(event(5, "a", None));
        assert!(!state.is_newer(&event(5, "a", None)));
        assert!(state.is_newer(&event(5, "b", None)));
        assert_eq!(next(&state, 0), 7);
        // A removal for refusals takes no floor, and goes one above what is held, not two: a
        // registration made on the same state outranks it.
        let removal = state.removal_after_held(&s, &i, "n").unwrap();
        assert_eq!(removal.stamp.version, 6);
        // Held one below the highest version there is: a write takes that one.
        state.apply(event(u64::MAX - 1, "z", None));
        assert_eq!(next(&state, 0), u64::MAX);
        // Held at the highest version there is: nothing is newer.
        state.apply(event(u64::MAX, "z", None));
        assert!(state.next_event(&s, &i, None, "n", 0).is_none());
        assert!(state.removal_after_held(&s, &i, "n").is_none());
    }
}
