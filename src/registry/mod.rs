//! The service registry: one owner, one read copy per shard.
//!
//! ```text
//!   shard ──WriteOp──▶ owner thread ──Changes(seq)──▶ every shard's RegistryView
//!     ▲                  │  (state: key → (address, version, node))       │
//!     └──Reply(token)────┘◀───────────────Applied(seq)────────────────────┘
//! ```
//!
//! The owner thread holds the authoritative state; in a cluster it is the Kafka core (see
//! [`kafka`]), which makes every write durable in the registry log first and applies what the
//! other gateways write there. Shards never share
//! it: each applies the owner's changes to its own [`view::RegistryView`], between requests, and a
//! lookup is a plain hash-map read with no lock and no shared atomic. Messages travel on lock-free
//! crossbeam channels; the owner rings a per-shard doorbell (a socketpair the shard's executor
//! awaits) so a shard wakes at once instead of polling. A write is answered only after every shard
//! has applied it, so a client that registers an instance can use it on its very next request,
//! whichever shard that request lands on.

pub mod client;
pub mod kafka;
pub mod owner;
pub mod state;
pub mod view;

use std::os::unix::net::UnixStream;

use crossbeam_channel::{Receiver, Sender};

use crate::names::{Address, InstanceId, ServiceName};

/// One registered instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    /// The service it belongs to.
    pub service: ServiceName,
    /// Its name.
    pub instance: InstanceId,
    /// Where it listens.
    pub address: Address,
}

/// A change to the shards' read copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add or replace an instance.
    Upsert(InstanceRecord),
    /// Remove an instance.
    Remove {
        /// Its service.
        service: ServiceName,
        /// Its name.
        instance: InstanceId,
    },
}

/// A write asked of the owner.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Register or update an instance; the address is resolved by the owner, off the shards.
    Upsert {
        /// Service.
        service: ServiceName,
        /// Instance.
        instance: InstanceId,
        /// `host:port` as the client sent it (syntax already checked).
        address: String,
    },
    /// Deregister an instance.
    Remove {
        /// Service.
        service: ServiceName,
        /// Instance.
        instance: InstanceId,
    },
    /// Every listed instance refused connections: remove those still registered at these addresses.
    RemoveRefused {
        /// Service.
        service: ServiceName,
        /// The instances seen refusing, with the address they refused at.
        instances: Vec<(InstanceId, String)>,
    },
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// A new instance.
    Created,
    /// An existing instance got a new address.
    Updated,
    /// The instance was already registered at that address.
    Unchanged,
    /// Instances were removed (or were not there).
    Removed,
}

/// Why a write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The write was invalid (for example an address that does not resolve).
    #[error("{0}")]
    Invalid(String),
    /// The registry could not take the write now (log unwritable, owner gone, timeout).
    #[error("{0}")]
    Unavailable(String),
    /// As [`Unavailable`](Self::Unavailable), but the write was never sent to the log (its bound
    /// passed while it was queued, or it was queued behind a write that got no acknowledgement):
    /// it cannot turn up in the log later.
    #[error("{0}")]
    Unsent(String),
}

/// A message to the owner.
#[derive(Debug)]
pub enum OwnerMsg {
    /// A write from shard `shard`, answered with `Reply { token }` (no answer when `token` is None).
    Write {
        /// The asking shard.
        shard: usize,
        /// The reply token, if an answer is wanted.
        token: Option<u64>,
        /// The write.
        op: WriteOp,
        /// When the writer asked for it: the registry log's own bound on the wait counts from
        /// then, the time it spent queued behind other writes included.
        asked: std::time::Instant,
        /// When the writer stops waiting: a write not durable by then fails and changes nothing.
        deadline: std::time::Instant,
    },
    /// Shard `shard` has applied every change up to `seq`.
    Applied {
        /// The shard.
        shard: usize,
        /// The last sequence number applied.
        seq: u64,
    },
    /// Stop the owner thread.
    Shutdown,
}

/// A message to a shard.
#[derive(Debug)]
pub enum ShardMsg {
    /// Changes to apply, numbered by the owner.
    Changes {
        /// Sequence number of this batch.
        seq: u64,
        /// The changes, in order.
        changes: Vec<Change>,
    },
    /// The answer to a write.
    Reply {
        /// The token the shard gave.
        token: u64,
        /// The outcome.
        result: Result<WriteOutcome, RegistryError>,
    },
    /// Stop accepting, finish in-flight requests, exit.
    Drain,
}

/// The sending side of a shard's mailbox: a channel plus the doorbell that wakes the shard.
#[derive(Debug)]
pub struct ShardLink {
    tx: Sender<ShardMsg>,
    doorbell: UnixStream,
}

impl ShardLink {
    /// Sends `msg` and rings the doorbell. Fails only when the shard has exited.
    pub fn send(&self, msg: ShardMsg) -> bool {
        use std::io::Write;
        if self.tx.send(msg).is_err() {
            return false;
        }
        // A full socket buffer means the shard has rings it has not read yet: it will drain the channel.
        let _ = (&self.doorbell).write(&[1]);
        true
    }
}

/// The receiving side of a shard's mailbox, moved into the shard's thread.
#[derive(Debug)]
pub struct ShardMailbox {
    /// Messages.
    pub rx: Receiver<ShardMsg>,
    /// The doorbell's shard end (made async by the shard's executor).
    pub doorbell: UnixStream,
}

/// Creates a shard mailbox and its sending link.
pub fn mailbox() -> std::io::Result<(ShardLink, ShardMailbox)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (ring, listen) = UnixStream::pair()?;
    ring.set_nonblocking(true)?;
    Ok((
        ShardLink { tx, doorbell: ring },
        ShardMailbox {
            rx,
            doorbell: listen,
        },
    ))
}
