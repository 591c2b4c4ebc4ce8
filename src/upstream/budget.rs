//! The answer budget of an HTTP/2 client connection: how many bytes of backend answers its
//! streams may hold at once, from the moment an answer's message begins to arrive until its
//! response has gone out to the client (or the stream has ended).
//!
//! An HTTP/2 client may have 128 streams open on a connection (`http::h2`), each waiting for an
//! answer of up to `--max-grpc-message-bytes`. A client that reads none of them made the gateway
//! hold every one whole (128 answers of 4 MiB: 580 MB of RSS) for as long as the send timeout let
//! it. With a budget, an answer takes its share as soon as its gRPC length prefix is in
//! ([`AnswerHold::take`]); one that finds the budget spent waits, and meanwhile does not give the
//! backend's flow control back what it received: the backend stops within the stream's window
//! (which is then all the gateway holds of that answer), and goes on when the client reads. The
//! wait is bounded by the call's deadline.
//!
//! A share is the whole answer at once (at most the whole budget): answers that had taken parts
//! of the budget could each wait for the others' parts and none finish. HTTP/1.1 connections have
//! no budget: they answer one request at a time; nor have HEAD answers, whose bodies are dropped
//! as they are sent. The budget goes to answers in the order they come: a client that reads one
//! stream at a time, in another order, can have the answer it waits for time out while answers
//! it has not reached hold the budget (the README says so).
//!
//! Answers the gateway builds whole (GraphQL's, `/-/`'s) are in memory at once before any of it
//! goes out, so they cannot wait at a backend for their share: a client could have each of its
//! 128 streams build one (a GraphQL answer may be 4 × `--max-grpc-message-bytes`: 2 GiB for the
//! connection). Such an answer takes one of [`BUILT_AT_ONCE`] places of the connection
//! ([`AnswerHold::take_place`]) once its first part is in memory (a GraphQL call's answer has
//! arrived; a `/-/` answer before it is made), so that a query none of whose calls has answered
//! holds none; built, it takes its size of the budget before it goes out and gives its place back.
//! Answers waiting for a client that reads nothing hold the budget, the ones being built at most
//! the places, and the queries waiting for a place the call answers they have received.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::Semaphore;

use crate::metrics::ShardMetrics;

/// Bytes of answers one HTTP/2 connection's streams may hold: four answers of the default 4 MiB
/// message limit, so that a client reading several large answers at once is not held up by it,
/// while one that reads none holds this, not 128 answers. An answer over it takes all of it.
pub const ANSWER_BUDGET: usize = 16 << 20;

/// Answers one HTTP/2 connection may build whole at once (GraphQL, `/-/`): the budget's four
/// answers twice over. A place is held from an answer's first part in memory to its share of
/// the budget: for a query, from its first call's answer until the slowest of its calls has
/// answered, so eight queries each waiting on a slow call make a ninth wait as long once one
/// of its calls has answered; one that reads nothing has eight answers built, not 128.
pub const BUILT_AT_ONCE: u64 = 8;

/// One HTTP/2 connection's budget, shared by its streams.
pub struct AnswerBudget(Rc<Shared>);

/// What a connection's holds share: one reference count per stream.
struct Shared {
    bytes: Semaphore,
    /// Places to build an answer whole in ([`BUILT_AT_ONCE`]).
    building: Semaphore,
    size: u64,
    metrics: Arc<ShardMetrics>,
}

impl AnswerBudget {
    /// A budget of `size` bytes; its waits are counted in `metrics`.
    pub fn new(size: usize, metrics: Arc<ShardMetrics>) -> AnswerBudget {
        let size = size as u64;
        AnswerBudget(Rc::new(Shared {
            bytes: Semaphore::new(size),
            building: Semaphore::new(BUILT_AT_ONCE),
            size,
            metrics,
        }))
    }

    /// A hold for one stream's answer, holding nothing yet.
    pub fn hold(&self) -> AnswerHold {
        AnswerHold {
            budget: self.0.clone(),
            held: Cell::new(0),
            placed: Cell::new(false),
            placing: Cell::new(false),
            waiting: Cell::new(false),
        }
    }
}

/// What one stream's answer holds of its connection's budget: given back when dropped (once the
/// stream's response went out, or the stream ended).
pub struct AnswerHold {
    budget: Rc<Shared>,
    held: Cell<u64>,
    /// The answer is built whole in one of the connection's places ([`Self::take_place`]).
    placed: Cell<bool>,
    /// One of its calls waits for a place (for counting the wait once).
    placing: Cell<bool>,
    /// A take is waiting for the budget (for the error of a call whose deadline passes then).
    waiting: Cell<bool>,
}

impl AnswerHold {
    /// Takes `bytes` of the budget (all of it when `bytes` is more) for the answer, waiting while
    /// the connection's other answers hold too much for it. What the hold had before is given
    /// back first.
    pub async fn take(&self, bytes: usize) {
        self.give_back();
        let budget = &*self.budget;
        let units = (bytes as u64).min(budget.size);
        let taken = acquire(&budget.bytes, units, || {
            budget.metrics.answer_budget_waits.inc();
            // Left set by a wait given up (its call's deadline passed), for the call's error.
            self.waiting.set(true);
        })
        .await;
        self.waiting.set(false);
        if taken {
            self.held.set(units);
        }
    }

    /// Waits for a place to build an answer whole in (GraphQL, `/-/`), unless the answer has
    /// one: kept until [`Self::give_place_back`] (once the answer is built and has taken its
    /// size, [`Self::take`]) or the hold is dropped. A GraphQL request's calls ask as each
    /// answer arrives; the first to get a place gets it for all of them.
    pub async fn take_place(&self) {
        if self.placed.get() {
            return;
        }
        let building = &self.budget.building;
        let placed = acquire(building, 1, || {
            // One wait per answer, however many of its calls wait.
            if !self.placing.replace(true) {
                self.budget.metrics.answer_budget_waits.inc();
            }
        })
        .await;
        if !placed {
            return;
        }
        self.placing.set(false);
        if self.placed.replace(true) {
            // Another call of the same answer got a place while this one waited.
            building.signal(1);
        }
    }

    /// Gives back the answer's place, if it has one.
    pub fn give_place_back(&self) {
        if self.placed.replace(false) {
            self.budget.building.signal(1);
        }
    }

    /// Whether a take is waiting for the budget, or gave up waiting.
    pub fn waiting(&self) -> bool {
        self.waiting.get()
    }

    /// Gives back what the hold has (an answer that failed holds nothing while its error goes out).
    pub fn give_back(&self) {
        let held = self.held.replace(0);
        if held > 0 {
            self.budget.bytes.signal(held);
        }
    }
}

/// Takes `units` of `semaphore`, waiting while they are not free; `on_wait` runs first if it has
/// to wait. False only if the semaphore is closed, which a budget's never is.
async fn acquire(semaphore: &Semaphore, units: u64, on_wait: impl FnOnce()) -> bool {
    // `try_acquire` fails only on a closed semaphore.
    if semaphore.try_acquire(units).unwrap_or(false) {
        return true;
    }
    on_wait();
    // Dropped after the wait (declared before it), however the wait ends.
    let _wake_next = WakeNext(semaphore);
    let wait = std::pin::pin!(semaphore.acquire(units));
    wait.await.is_ok()
}

/// Has the waiters of a budget look again at what is free, once a wait has ended. glommio wakes
/// a waiter and counts the units for it before it runs; one dropped before it ran (its call's
/// deadline passed) would leave the waiters after it asleep with the units free until the next
/// share came back, which may be never.
struct WakeNext<'a>(&'a Semaphore);

impl Drop for WakeNext<'_> {
    fn drop(&mut self) {
        self.0.signal(0);
    }
}

impl Drop for AnswerHold {
    fn drop(&mut self) {
        self.give_back();
        self.give_place_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{poll_once, FutureExt};

    fn run(test: impl std::future::Future<Output = ()> + 'static) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(256 << 10)
            .make()
            .expect("test executor")
            .run(test);
    }

    fn budget(size: usize) -> AnswerBudget {
        AnswerBudget::new(size, Arc::default())
    }

    #[test]
    fn an_answer_waits_until_another_gives_its_share_back() {
        run(async {
            let budget = budget(100);
            let (a, b, c) = (budget.hold(), budget.hold(), budget.hold());
            assert!(poll_once(a.take(60).boxed_local()).await.is_some());
            assert!(poll_once(b.take(40).boxed_local()).await.is_some());
            let mut waiting = c.take(1).boxed_local();
            assert!(
                poll_once(&mut waiting).await.is_none(),
                "the budget is spent"
            );
            assert_eq!(budget.0.metrics.answer_budget_waits.get(), 1);
            drop(b);
            assert!(
                poll_once(&mut waiting).await.is_some(),
                "b's share came back"
            );
            assert_eq!(budget.0.bytes.available(), 39);
        });
    }

    #[test]
    fn a_share_is_taken_whole_and_at_most_the_whole_budget() {
        run(async {
            let budget = budget(100);
            let (a, b) = (budget.hold(), budget.hold());
            assert!(poll_once(a.take(30).boxed_local()).await.is_some());
            // 80 are not taken as 70 now and 10 later: b waits for all of them.
            let mut waiting = b.take(80).boxed_local();
            assert!(poll_once(&mut waiting).await.is_none());
            assert_eq!(
                budget.0.bytes.available(),
                70,
                "nothing taken while waiting"
            );
            a.give_back();
            assert!(poll_once(&mut waiting).await.is_some());
            drop(waiting);
            b.give_back();
            // An answer larger than the budget takes it all, and gets it.
            assert!(poll_once(b.take(1_000).boxed_local()).await.is_some());
            assert_eq!(budget.0.bytes.available(), 0);
            drop(b);
            assert_eq!(budget.0.bytes.available(), 100);
        });
    }

    #[test]
    fn taking_again_gives_back_the_earlier_share_and_a_dropped_wait_takes_nothing() {
        run(async {
            let budget = budget(100);
            let (a, b) = (budget.hold(), budget.hold());
            assert!(poll_once(a.take(90).boxed_local()).await.is_some());
            assert!(poll_once(a.take(20).boxed_local()).await.is_some());
            assert_eq!(budget.0.bytes.available(), 80);
            // A wait given up (the call's deadline passed) leaves the budget as it was.
            let mut waiting = b.take(90).boxed_local();
            assert!(poll_once(&mut waiting).await.is_none());
            drop(waiting);
            drop(a);
            assert_eq!(budget.0.bytes.available(), 100);
            drop(b);
            assert_eq!(budget.0.bytes.available(), 100);
        });
    }

    #[test]
    fn answers_built_whole_wait_for_a_place_and_a_wait_given_up_strands_no_one() {
        run(async {
            let budget = Rc::new(budget(100));
            let holds: Vec<AnswerHold> = (0..=BUILT_AT_ONCE).map(|_| budget.hold()).collect();
            for hold in &holds[..BUILT_AT_ONCE as usize] {
                let place = poll_once(hold.take_place().boxed_local()).await;
                assert!(place.is_some(), "a place");
            }
            // An answer with a place does not take a second one.
            assert!(poll_once(holds[0].take_place().boxed_local())
                .await
                .is_some());
            let mut given_up = holds[BUILT_AT_ONCE as usize].take_place().boxed_local();
            assert!(
                poll_once(&mut given_up).await.is_none(),
                "every place taken"
            );
            let waiting = budget.clone();
            let next = glommio::spawn_local(async move {
                waiting.hold().take_place().await;
            });
            glommio::executor().yield_task_queue_now().await;
            assert_eq!(budget.0.metrics.answer_budget_waits.get(), 2);
            // A place comes back and goes to the first waiter, which gives up before it runs
            // (its client reset the stream): the next waiter is woken and gets it.
            holds[0].give_place_back();
            drop(given_up);
            let got = crate::timeout::within(std::time::Duration::from_secs(10), next).await;
            assert!(got.is_some(), "the place went on to the next waiter");
        });
    }

    #[test]
    fn two_calls_of_one_answer_waiting_for_a_place_take_one_and_count_one_wait() {
        run(async {
            let budget = budget(100);
            let holds: Vec<AnswerHold> = (0..=BUILT_AT_ONCE).map(|_| budget.hold()).collect();
            for hold in &holds[1..] {
                assert!(poll_once(hold.take_place().boxed_local()).await.is_some());
            }
            let (mut first, mut second) = (
                holds[0].take_place().boxed_local(),
                holds[0].take_place().boxed_local(),
            );
            assert!(poll_once(&mut first).await.is_none());
            assert!(poll_once(&mut second).await.is_none());
            assert_eq!(budget.0.metrics.answer_budget_waits.get(), 1);
            holds[1].give_place_back();
            holds[2].give_place_back();
            assert!(poll_once(&mut first).await.is_some());
            assert!(poll_once(&mut second).await.is_some());
            holds[0].give_place_back();
            for hold in &holds[3..] {
                hold.give_place_back();
            }
            assert_eq!(
                budget.0.building.available(),
                BUILT_AT_ONCE,
                "no place lost or made"
            );
        });
    }

    #[test]
    fn a_wait_given_up_is_told_apart_in_the_deadline_error() {
        run(async {
            let budget = budget(10);
            let (a, b) = (budget.hold(), budget.hold());
            assert!(poll_once(a.take(10).boxed_local()).await.is_some());
            let mut waiting = b.take(5).boxed_local();
            assert!(poll_once(&mut waiting).await.is_none());
            drop(waiting);
            assert!(b.waiting(), "a wait given up stays told");
            assert!(!a.waiting());
            let settings = crate::config::ServiceSettings {
                timeout: std::time::Duration::from_millis(1500),
                max_body_bytes: 1,
                max_grpc_message_bytes: 1,
            };
            let message = |hold| crate::upstream::timed_out(&settings, hold).error.message;
            assert!(message(Some(&b)).contains(
                "waited past the 1500 ms deadline for room in this connection's answer budget"
            ));
            assert_eq!(message(Some(&a)), "backend did not answer within 1500 ms");
            assert_eq!(message(None), "backend did not answer within 1500 ms");
            a.give_back();
            assert!(poll_once(b.take(5).boxed_local()).await.is_some());
            assert!(!b.waiting(), "taken");
        });
    }

    #[test]
    fn a_wait_dropped_after_its_wake_up_passes_it_on() {
        run(async {
            let budget = Rc::new(budget(100));
            let (a, b) = (budget.hold(), budget.hold());
            assert!(poll_once(a.take(100).boxed_local()).await.is_some());
            let mut first = b.take(100).boxed_local();
            assert!(poll_once(&mut first).await.is_none());
            let waiting = budget.clone();
            let second = glommio::spawn_local(async move {
                let c = waiting.hold();
                c.take(50).await;
                waiting.0.bytes.available()
            });
            glommio::executor().yield_task_queue_now().await;
            // a's share goes to the first waiter, which gives up before it runs.
            drop(a);
            drop(first);
            let left = crate::timeout::within(std::time::Duration::from_secs(10), second).await;
            assert_eq!(
                left,
                Some(50),
                "the second waiter was woken and took its share"
            );
        });
    }
}
