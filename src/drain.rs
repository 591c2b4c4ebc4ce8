//! The start of a shard's drain, as something connection tasks can await.
//!
//! A draining shard stops accepting and finishes its in-flight requests (see `shard::run`). An
//! HTTP/1.1 connection learns of the drain when it next answers (`connection: close`); an HTTP/2
//! connection may sit idle in `accept` with no request to answer, so it awaits [`Drain::started`]
//! beside its next stream and sends GOAWAY as soon as the drain begins (RFC 9113 §6.8: the client
//! then knows which streams were not processed and opens new ones elsewhere).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// One shard's drain flag and the tasks waiting for it (single-threaded: lives in the shard).
#[derive(Default)]
pub struct Drain {
    started: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl Drain {
    /// Whether the drain has started.
    pub fn is_started(&self) -> bool {
        self.started.get()
    }

    /// Starts the drain and wakes every task waiting for it.
    pub fn start(&self) {
        self.started.set(true);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    /// Resolves once the drain has started. A task may keep one and poll it again and again: it
    /// holds a single waiter slot, freed when it is dropped.
    pub fn started(&self) -> Started<'_> {
        Started {
            drain: self,
            slot: None,
        }
    }
}

/// The future returned by [`Drain::started`].
#[must_use = "futures do nothing unless awaited"]
pub struct Started<'a> {
    drain: &'a Drain,
    slot: Option<usize>,
}

impl Future for Started<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.drain.is_started() {
            self.slot = None;
            return Poll::Ready(());
        }
        let mut waiters = self.drain.waiters.borrow_mut();
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

impl Drop for Started<'_> {
    fn drop(&mut self) {
        // Once the drain has started the slab is empty and every slot is stale.
        if let (Some(slot), false) = (self.slot, self.drain.is_started()) {
            self.drain.waiters.borrow_mut().try_remove(slot);
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
        assert_eq!(drain.waiters.borrow().len(), 1);
        // A dropped waiter gives its slot back.
        let mut other = Box::pin(drain.started());
        assert_eq!(other.as_mut().poll(&mut cx), Poll::Pending);
        drop(other);
        assert_eq!(drain.waiters.borrow().len(), 1);

        drain.start();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(kept.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(
            Box::pin(drain.started()).as_mut().poll(&mut cx),
            Poll::Ready(())
        );
    }
}
