//! Which instances each shard has marked down, for `GET /-/services`.
//!
//! Passive health is each shard's own: its pools see its connections fail, and nothing about it is
//! shared on the request path. But `/-/services` is answered by whichever shard the operator's
//! connection landed on (SO_REUSEPORT), so it reported that one shard's view, and an instance
//! another shard had marked down showed healthy on one request and not on the next. Each shard
//! therefore publishes its marks here, and the answer reads every shard's: an instance is healthy
//! while no shard has it marked down.
//!
//! A shard writes its own slot only when a mark changes (an instance marked down, a pause over
//! because a connection worked, a pool dropped with its instance): at failures and recoveries,
//! never per call. Another thread takes the slot's lock only while it builds a `/-/services`
//! answer, so the writer practically never waits.
//!
//! Marks are kept by [`Address`], as registered and resolved: an instance registered by host name
//! is one instance whatever number of socket addresses it resolved to, and is down when the pool
//! that tries them all is.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::names::Address;

/// Every shard's marks: per shard, the instances it has marked down and until when.
#[derive(Debug)]
pub struct DownMarks {
    shards: Vec<Mutex<FxHashMap<Address, Instant>>>,
}

impl DownMarks {
    /// No marks, for `shards` shards.
    pub fn new(shards: usize) -> DownMarks {
        DownMarks {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
        }
    }

    /// Shard `shard`'s handle for publishing its marks.
    pub fn slot(self: &Arc<Self>, shard: usize) -> MarkSlot {
        assert!(shard < self.shards.len(), "shard {shard} has no slot");
        MarkSlot(Some((self.clone(), shard)))
    }

    /// How many shards have `addr` marked down past `now`.
    pub fn down_on(&self, addr: &Address, now: Instant) -> usize {
        (0..self.shards.len())
            .filter(|&s| self.lock(s).get(addr).is_some_and(|&until| until > now))
            .count()
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, FxHashMap<Address, Instant>> {
        // A panic while a map was held cannot leave it half-changed (an insert or a remove).
        self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One shard's handle on [`DownMarks`], or none (pools made outside a shard, in tests).
#[derive(Debug, Clone, Default)]
pub struct MarkSlot(Option<(Arc<DownMarks>, usize)>);

impl MarkSlot {
    /// A handle that publishes nowhere.
    pub fn detached() -> MarkSlot {
        MarkSlot(None)
    }

    /// Publishes that this shard has `addr` marked down until `until`, or not at all (`None`).
    pub fn publish(&self, addr: &Address, until: Option<Instant>) {
        let Some((marks, shard)) = &self.0 else {
            return;
        };
        let mut map = marks.lock(*shard);
        match until {
            Some(until) => map.insert(addr.clone(), until),
            None => map.remove(addr),
        };
    }

    /// Takes back this shard's mark on `addr` if it is still the one published until `until`.
    pub fn withdraw(&self, addr: &Address, until: Instant) {
        let Some((marks, shard)) = &self.0 else {
            return;
        };
        let mut map = marks.lock(*shard);
        if map.get(addr) == Some(&until) {
            map.remove(addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_instance_is_down_on_each_shard_that_marked_it_until_its_mark_passes() {
        let marks = Arc::new(DownMarks::new(3));
        let (a, b) = (marks.slot(0), marks.slot(2));
        let addr = &Address::parse("127.0.0.1:5000").unwrap();
        let other = &Address::parse("127.0.0.1:5001").unwrap();
        let now = Instant::now();
        assert_eq!(marks.down_on(addr, now), 0);

        a.publish(addr, Some(now + Duration::from_secs(1)));
        b.publish(addr, Some(now + Duration::from_secs(2)));
        assert_eq!(marks.down_on(addr, now), 2);
        assert_eq!(marks.down_on(other, now), 0);
        // A mark is over at its instant, as `Health::available` has it.
        assert_eq!(marks.down_on(addr, now + Duration::from_secs(1)), 1);
        assert_eq!(marks.down_on(addr, now + Duration::from_secs(2)), 0);

        b.publish(addr, None);
        assert_eq!(marks.down_on(addr, now), 1);
        // Withdrawn only by the mark it was published with.
        a.withdraw(addr, now);
        assert_eq!(marks.down_on(addr, now), 1);
        a.withdraw(addr, now + Duration::from_secs(1));
        assert_eq!(marks.down_on(addr, now), 0);
        a.publish(addr, Some(now + Duration::from_secs(1)));
        MarkSlot::detached().publish(addr, None);
        assert_eq!(marks.down_on(addr, now), 1);
    }
}
