//! Calls waiting for a stream slot on one instance's connections (see [`pool`](super::pool)).
//!
//! A call that finds every connection of a pool using all the streams its backend allows waits
//! here, in arrival order. A call that ends hands its slot to the call that has waited longest
//! ([`Waiters::hand_over`]): the slot never looks free in between, so a call that arrives
//! meanwhile cannot take it first, and a waiting call is woken only when it has a slot, not once
//! per slot freed anywhere (waking every waiter for each freed slot would cost a poll per waiter
//! per call at saturation). When the pool changes in a way one slot does not describe (a
//! connection opened, closed, or could not be opened), waiters are woken empty-handed to look at
//! the pool again ([`Waiters::wake_all`], [`Waiters::wake_one`]).
//!
//! A waiting call that gives up (its deadline passed) leaves its place; what was handed to it and
//! not taken is dropped (a dropped lease hands its slot on in turn), and a wake-up it did not act
//! on goes to the next waiter. Places are kept in a slab and their order in a queue of tickets:
//! no allocation per wait once both have grown to the number of calls that wait at once, and a
//! place left is skipped when its ticket comes up rather than searched for.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// The calls waiting on one pool; `T` is what a call is handed (a lease).
pub struct Waiters<T> {
    inner: RefCell<Inner<T>>,
}

struct Inner<T> {
    places: Slab<Place<T>>,
    /// Places in arrival order, each with the ticket it was given: a place left and taken again
    /// by a later waiter has another ticket, so a stale entry is recognised and skipped.
    order: VecDeque<(usize, u64)>,
    next_ticket: u64,
}

enum Place<T> {
    Waiting {
        ticket: u64,
        waker: Option<Waker>,
    },
    /// Woken, with what it was handed (`None`: look at the pool again).
    Woken(Option<T>),
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Waiters {
            inner: RefCell::new(Inner {
                places: Slab::new(),
                order: VecDeque::new(),
                next_ticket: 0,
            }),
        }
    }
}

impl<T> Inner<T> {
    /// The place of the call that has waited longest and is still waiting, taken off the queue.
    fn next_waiting(&mut self) -> Option<usize> {
        while let Some((key, ticket)) = self.order.pop_front() {
            if let Some(Place::Waiting { ticket: t, .. }) = self.places.get(key) {
                if *t == ticket {
                    return Some(key);
                }
            }
        }
        None
    }

    /// Marks the place at `key` woken with `handed`; returns its waker to wake once the borrow ends.
    fn wake(&mut self, key: usize, handed: Option<T>) -> Option<Waker> {
        match std::mem::replace(&mut self.places[key], Place::Woken(handed)) {
            Place::Waiting { waker, .. } => waker,
            Place::Woken(_) => unreachable!("only waiting places are woken"),
        }
    }
}

impl<T> Waiters<T> {
    /// Whether no call waits (or has been woken and not yet looked).
    pub fn is_empty(&self) -> bool {
        self.inner.borrow().places.is_empty()
    }

    /// Calls waiting (or woken and not yet looked).
    pub fn len(&self) -> usize {
        self.inner.borrow().places.len()
    }

    /// Hands what `make` builds to the call that has waited longest and wakes it; `false`, with
    /// `make` not called, when no call waits.
    pub fn hand_over(&self, make: impl FnOnce() -> T) -> bool {
        let mut inner = self.inner.borrow_mut();
        let Some(key) = inner.next_waiting() else {
            return false;
        };
        let waker = inner.wake(key, Some(make()));
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Wakes the call that has waited longest, empty-handed: it looks at the pool again.
    pub fn wake_one(&self) {
        let mut inner = self.inner.borrow_mut();
        let waker = inner.next_waiting().and_then(|key| inner.wake(key, None));
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes every waiting call, empty-handed.
    pub fn wake_all(&self) {
        let mut inner = self.inner.borrow_mut();
        let mut wakers = Vec::new();
        while let Some(key) = inner.next_waiting() {
            wakers.extend(inner.wake(key, None));
        }
        drop(inner);
        for waker in wakers {
            waker.wake();
        }
    }

    /// Waits for a wake-up: what was handed over, or `None` to look at the pool again.
    pub fn wait(&self) -> Wait<'_, T> {
        Wait {
            waiters: self,
            key: None,
        }
    }
}

/// The future of [`Waiters::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct Wait<'a, T> {
    waiters: &'a Waiters<T>,
    key: Option<usize>,
}

impl<T> Unpin for Wait<'_, T> {}

impl<T> Future for Wait<'_, T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut inner = self.waiters.inner.borrow_mut();
        let Some(key) = self.key else {
            // Stale tickets are dropped once they outnumber the places by far, so the queue
            // stays within a small multiple of the calls waiting.
            if inner.order.len() > 2 * inner.places.len() + 16 {
                let Inner { places, order, .. } = &mut *inner;
                order.retain(|&(key, ticket)| {
                    matches!(places.get(key), Some(Place::Waiting { ticket: t, .. }) if *t == ticket)
                });
            }
            let ticket = inner.next_ticket;
            inner.next_ticket += 1;
            let key = inner.places.insert(Place::Waiting {
                ticket,
                waker: Some(cx.waker().clone()),
            });
            inner.order.push_back((key, ticket));
            drop(inner);
            self.key = Some(key);
            return Poll::Pending;
        };
        match &mut inner.places[key] {
            Place::Waiting { waker, .. } => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Place::Woken(_) => {
                let Place::Woken(handed) = inner.places.remove(key) else {
                    unreachable!("matched above")
                };
                drop(inner);
                self.key = None;
                Poll::Ready(handed)
            }
        }
    }
}

impl<T> Drop for Wait<'_, T> {
    fn drop(&mut self) {
        let Some(key) = self.key else {
            return;
        };
        let left = self.waiters.inner.borrow_mut().places.remove(key);
        match left {
            // Its ticket is skipped when it comes up.
            Place::Waiting { .. } => {}
            // Dropped once the borrow has ended: dropping a lease hands its slot on.
            Place::Woken(Some(handed)) => drop(handed),
            // A wake-up to look again, not acted on: the next waiter looks instead.
            Place::Woken(None) => self.waiters.wake_one(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll<T>(wait: &mut Wait<'_, T>) -> Poll<Option<T>> {
        Pin::new(wait).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn slots_are_handed_over_in_arrival_order() {
        let waiters = Waiters::default();
        assert!(!waiters.hand_over(|| 0), "no one waits");
        let (mut a, mut b, mut c) = (waiters.wait(), waiters.wait(), waiters.wait());
        for w in [&mut a, &mut b, &mut c] {
            assert_eq!(poll(w), Poll::Pending);
        }
        assert_eq!(waiters.len(), 3);
        assert!(waiters.hand_over(|| 1));
        assert!(waiters.hand_over(|| 2));
        assert_eq!(poll(&mut b), Poll::Ready(Some(2)));
        assert_eq!(poll(&mut a), Poll::Ready(Some(1)));
        assert_eq!(poll(&mut c), Poll::Pending);
        assert_eq!(waiters.len(), 1);
    }

    #[test]
    fn a_waiter_that_gives_up_is_skipped_and_its_wake_up_passed_on() {
        let waiters = Waiters::default();
        let (mut a, mut b, mut c) = (waiters.wait(), waiters.wait(), waiters.wait());
        for w in [&mut a, &mut b, &mut c] {
            assert_eq!(poll(w), Poll::Pending);
        }
        drop(a);
        assert!(waiters.hand_over(|| 7), "b waits");
        assert_eq!(poll(&mut b), Poll::Ready(Some(7)));
        // A wake-up to look again that c does not act on goes to d.
        let mut d = waiters.wait();
        assert_eq!(poll(&mut d), Poll::Pending);
        waiters.wake_one();
        drop(c);
        assert_eq!(poll(&mut d), Poll::Ready(None));
        assert!(waiters.is_empty());
    }

    #[test]
    fn what_is_handed_to_a_waiter_that_gives_up_is_dropped() {
        use std::rc::Rc;
        let waiters = Waiters::default();
        let handed = Rc::new(());
        let mut a = waiters.wait();
        assert_eq!(poll(&mut a), Poll::Pending);
        assert!(waiters.hand_over(|| handed.clone()));
        assert_eq!(Rc::strong_count(&handed), 2);
        drop(a);
        assert_eq!(Rc::strong_count(&handed), 1);
        assert!(waiters.is_empty());
    }

    #[test]
    fn every_waiter_looks_again_after_a_change() {
        let waiters = Waiters::<u8>::default();
        let mut all: Vec<_> = (0..4).map(|_| waiters.wait()).collect();
        for w in &mut all {
            assert_eq!(poll(w), Poll::Pending);
        }
        waiters.wake_all();
        for w in &mut all {
            assert_eq!(poll(w), Poll::Ready(None));
        }
        assert!(!waiters.hand_over(|| 0));
    }

    #[test]
    fn places_left_do_not_pile_up_in_the_queue() {
        let waiters = Waiters::<u8>::default();
        let mut kept = waiters.wait();
        assert_eq!(poll(&mut kept), Poll::Pending);
        for _ in 0..1000 {
            let mut w = waiters.wait();
            assert_eq!(poll(&mut w), Poll::Pending);
        }
        assert!(waiters.inner.borrow().order.len() <= 2 * 2 + 16 + 1);
        assert!(waiters.hand_over(|| 3));
        assert_eq!(poll(&mut kept), Poll::Ready(Some(3)));
    }
}
