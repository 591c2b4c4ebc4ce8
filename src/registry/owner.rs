//! The registry owner: the one thread that changes the registry.
//!
//! It turns writes into versioned [`Event`]s, has the [`RegistryLog`] make them durable (a no-op when
//! standalone; the Kafka log in a cluster), applies them to the [`RegistryState`], sends the
//! resulting changes to every shard and answers the writer once every shard has applied them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::names::Address;
use crate::registry::state::{Event, RegistryState};
use crate::registry::{
    Change, OwnerMsg, RegistryError, ShardLink, ShardMsg, WriteOp, WriteOutcome,
};

/// Where events are made durable before they are applied.
pub trait RegistryLog: Send {
    /// Appends `events`; returns once they are durable, or fails and nothing is applied.
    fn append(&mut self, events: &[Event]) -> Result<(), RegistryError>;
}

/// The standalone log: the process's memory is the only copy.
#[derive(Debug, Default)]
pub struct InProcessLog;

impl RegistryLog for InProcessLog {
    fn append(&mut self, _events: &[Event]) -> Result<(), RegistryError> {
        Ok(())
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
}

impl<L: RegistryLog + 'static> Owner<L> {
    /// An owner for `links.len()` shards, writing as `node`.
    pub fn new(node: String, log: L, links: Arc<[ShardLink]>) -> Self {
        Owner {
            node,
            log,
            state: RegistryState::default(),
            applied: vec![0; links.len()],
            links,
            seq: 0,
            pending: VecDeque::new(),
        }
    }

    /// Runs the owner on its own thread until [`OwnerMsg::Shutdown`] or every sender is gone.
    pub fn spawn(self, rx: Receiver<OwnerMsg>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("registry".into())
            .spawn(move || self.run(rx))
    }

    fn run(mut self, rx: Receiver<OwnerMsg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                OwnerMsg::Write { shard, token, op } => {
                    let result = self.write(op);
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
                OwnerMsg::Shutdown => break,
            }
            self.release_replies();
        }
    }

    /// Applies one write; the changes it causes are published as batch `self.seq`.
    fn write(&mut self, op: WriteOp) -> Result<WriteOutcome, RegistryError> {
        let (events, outcome) = match op {
            WriteOp::Upsert {
                service,
                instance,
                address,
            } => {
                let address = Address::parse(&address).map_err(|e| RegistryError::Invalid(e.0))?;
                let event = self
                    .state
                    .next_event(&service, &instance, Some(address), &self.node);
                let outcome = self.state.outcome_of(&event);
                if outcome == WriteOutcome::Unchanged {
                    return Ok(outcome);
                }
                (vec![event], outcome)
            }
            WriteOp::Remove { service, instance } => {
                if self.state.address_of(&service, &instance).is_none() {
                    return Ok(WriteOutcome::Removed);
                }
                let event = self.state.next_event(&service, &instance, None, &self.node);
                (vec![event], WriteOutcome::Removed)
            }
            WriteOp::RemoveRefused { service, instances } => {
                // Only instances still registered where they refused: a re-registration at a new
                // address since then must survive.
                let events: Vec<Event> = instances
                    .iter()
                    .filter(|(id, addr)| {
                        self.state
                            .address_of(&service, id)
                            .is_some_and(|a| a.as_str() == addr)
                    })
                    .map(|(id, _)| self.state.next_event(&service, id, None, &self.node))
                    .collect();
                if events.is_empty() {
                    return Ok(WriteOutcome::Removed);
                }
                (events, WriteOutcome::Removed)
            }
        };
        self.log.append(&events)?;
        let changes: Vec<Change> = events
            .into_iter()
            .filter_map(|e| self.state.apply(e))
            .collect();
        self.publish(changes);
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

/// Starts a standalone owner for `links`, returning its mailbox.
pub fn spawn_standalone(
    node: String,
    links: Arc<[ShardLink]>,
) -> std::io::Result<(Sender<OwnerMsg>, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = Owner::new(node, InProcessLog, links).spawn(rx)?;
    Ok((tx, handle))
}
