//! The shard's side of the registry owner: asks for writes and waits for their answers.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use futures_channel::oneshot;
use rustc_hash::FxHashMap;

use crate::registry::{OwnerMsg, RegistryError, WriteOp, WriteOutcome};

/// How long a registry write may take before the client gets 503: covers a broker round trip with
/// retries, and is far below any HTTP client's own timeout.
pub const REGISTRY_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The owner's deadline is this much earlier than the shard's, so that a write the owner gives up
/// on is answered by the owner (nothing changed) before the shard stops waiting for it.
const OWNER_DEADLINE_MARGIN: Duration = Duration::from_secs(1);

type Reply = Result<WriteOutcome, RegistryError>;

/// Sends writes to the owner and matches its replies to the waiting requests.
#[derive(Debug)]
pub struct RegistryClient {
    shard: usize,
    owner: Sender<OwnerMsg>,
    next_token: Cell<u64>,
    waiting: RefCell<FxHashMap<u64, oneshot::Sender<Reply>>>,
}

impl RegistryClient {
    /// A client for shard `shard`.
    pub fn new(shard: usize, owner: Sender<OwnerMsg>) -> Self {
        RegistryClient {
            shard,
            owner,
            next_token: Cell::new(0),
            waiting: RefCell::default(),
        }
    }

    /// Performs `op` and waits until it is durable and applied on every shard.
    pub async fn write(&self, op: WriteOp) -> Reply {
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().insert(token, tx);
        let asked = Instant::now();
        let sent = self.owner.send(OwnerMsg::Write {
            shard: self.shard,
            token: Some(token),
            op,
            asked,
            deadline: asked + REGISTRY_WRITE_TIMEOUT - OWNER_DEADLINE_MARGIN,
        });
        if sent.is_err() {
            self.waiting.borrow_mut().remove(&token);
            return Err(RegistryError::Unavailable(
                "the registry has stopped".into(),
            ));
        }
        match crate::timeout::within(REGISTRY_WRITE_TIMEOUT, rx).await {
            Some(Ok(reply)) => reply,
            _ => {
                self.waiting.borrow_mut().remove(&token);
                Err(RegistryError::Unavailable(
                    "the registry did not confirm the write in time".into(),
                ))
            }
        }
    }

    /// Asks for `op` without waiting for an answer (used by passive health checks).
    pub fn submit(&self, op: WriteOp) {
        let asked = Instant::now();
        let _ = self.owner.send(OwnerMsg::Write {
            shard: self.shard,
            token: None,
            op,
            asked,
            deadline: asked + REGISTRY_WRITE_TIMEOUT - OWNER_DEADLINE_MARGIN,
        });
    }

    /// Tells the owner this shard has applied change batch `seq`.
    pub fn applied(&self, seq: u64) {
        let _ = self.owner.send(OwnerMsg::Applied {
            shard: self.shard,
            seq,
        });
    }

    /// Hands a reply from the owner to the request waiting for it.
    pub fn resolve(&self, token: u64, result: Reply) {
        if let Some(tx) = self.waiting.borrow_mut().remove(&token) {
            let _ = tx.send(result);
        }
    }
}
