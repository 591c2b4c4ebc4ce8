//! A shard's drain, in two steps that connection tasks can await.
//!
//! A draining shard stops accepting and finishes its in-flight requests (see `shard::run`). An
//! HTTP/1.1 connection learns of the drain when it next answers (`connection: close`); an HTTP/2
//! connection may sit idle in `accept` with no request to answer, so it awaits [`Drain::started`]
//! beside its next stream and sends GOAWAY as soon as the drain begins (RFC 9113 §6.8: the client
//! then knows which streams were not processed and opens new ones elsewhere).
//!
//! An idle HTTP/1.1 keep-alive connection stays open while the process drains, so that a request
//! sent on it (a client's `/-/ready`, seeing 503) is still answered; when every shard has finished,
//! each shard [closes](Drain::close) and the connections idle between requests, which await
//! [`Drain::closing`], close (FIN) instead of being left open with no one to answer them until
//! the process exits.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// One shard's drain phase and the tasks waiting for its steps (single-threaded: lives in the
/// shard).
#[derive(Default)]
pub struct Drain {
    phase: Cell<Step>,
    /// Waiting for the start, and waiting for the close: apart, so that a slot is never reused
    /// under a waiter of the other step.
    waiters: [RefCell<Slab<Waker>>; 2],
}

/// Where a drain stands; each later step implies the earlier ones.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    #[default]
    Serving,
    Started,
    Closing,
}

impl Step {
    /// The waiter list of a step that can be awaited.
    fn waiters(self) -> usize {
        match self {
            Step::Serving => unreachable!("nobody waits for the drain not to have started"),
            Step::Started => 0,
            Step::Closing => 1,
        }
    }
}

impl Drain {
    /// Whether the drain has started.
    pub fn is_started(&self) -> bool {
        self.reached(Step::Started)
    }

    /// Whether the shard is closing its idle connections (its drain is over).
    pub fn is_closing(&self) -> bool {
        self.reached(Step::Closing)
    }

    /// Starts the drain and wakes every task waiting for it.
    pub fn start(&self) {
        self.advance(Step::Started);
    }

    /// Tells the connections idle between requests to close (the drain is over).
    pub fn close(&self) {
        self.advance(Step::Closing);
    }

    /// Moves the drain forward to `step` (never back), waking whoever waits for a step passed.
    fn advance(&self, step: Step) {
        let before = self.phase.get();
        if step <= before {
            return;
        }
        self.phase.set(step);
        for passed in [Step::Started, Step::Closing] {
            if before < passed && passed <= step {
                let waiters = std::mem::take(&mut *self.waiters[passed.waiters()].borrow_mut());
                for (_, waker) in waiters {
                    waker.wake();
                }
            }
        }
    }

    fn reached(&self, step: Step) -> bool {
        self.phase.get() >= step
    }

    /// Resolves once the drain has started. A task may keep one and poll it again and again: it
    /// holds a single waiter slot, freed when it is dropped.
    pub fn started(&self) -> Reached<'_> {
        Reached {
            drain: self,
            step: Step::Started,
            slot: None,
        }
    }

    /// Resolves once the shard closes its idle connections, as [`started`](Self::started) does.
    pub fn closing(&self) -> Reached<'_> {
        Reached {
            drain: self,
            step: Step::Closing,
            slot: None,
        }
    }
}

/// The future returned by [`Drain::started`] and [`Drain::closing`].
#[must_use = "futures do nothing unless awaited"]
pub struct Reached<'a> {
    drain: &'a Drain,
    step: Step,
    slot: Option<usize>,
}

impl Future for Reached<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.drain.reached(self.step) {
            self.slot = None;
            return Poll::Ready(());
        }
        let mut waiters = self.drain.waiters[self.step.waiters()].borrow_mut();
        match self.slot.and_then(|slot| waiters.get_mut(slot)) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                let slot = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Reached<'_> {
    fn drop(&mut self) {
        // Once its step is reached its slab is empty and every slot is stale.
        if let (Some(slot), false) = (self.slot, self.drain.reached(self.step)) {
            self.drain.waiters[self.step.waiters()]
                .borrow_mut()
                .try_remove(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn waiters_are_woken_once_when_the_drain_starts_and_leave_no_slot_behind() {
        let drain = Drain::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut kept = Box::pin(drain.started());
        // Polled many times, the kept future holds one slot.
        for _ in 0..5 {
            assert_eq!(kept.as_mut().poll(&mut cx), Poll::Pending);
        }
        assert_eq!(drain.waiters[0].borrow().len(), 1);
        // A dropped waiter gives its slot back.
        let mut other = Box::pin(drain.started());
        assert_eq!(other.as_mut().poll(&mut cx), Poll::Pending);
        drop(other);
        assert_eq!(drain.waiters[0].borrow().len(), 1);

        drain.start();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(kept.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(
            Box::pin(drain.started()).as_mut().poll(&mut cx),
            Poll::Ready(())
        );
    }

    #[test]
    fn closing_waiters_sleep_through_the_start_and_wake_at_the_close() {
        let drain = Drain::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut closing = Box::pin(drain.closing());
        assert_eq!(closing.as_mut().poll(&mut cx), Poll::Pending);
        drain.start();
        assert_eq!(count.0.load(Ordering::Relaxed), 0, "not woken by the start");
        assert_eq!(closing.as_mut().poll(&mut cx), Poll::Pending);
        // A start waiter taken after the start resolves at once; its slab stays empty, so no
        // slot of the other step is ever touched by it.
        assert_eq!(
            Box::pin(drain.started()).as_mut().poll(&mut cx),
            Poll::Ready(())
        );
        assert_eq!(drain.waiters[1].borrow().len(), 1);
        drain.close();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(closing.as_mut().poll(&mut cx), Poll::Ready(()));
        assert!(drain.is_started() && drain.is_closing());
    }
}
