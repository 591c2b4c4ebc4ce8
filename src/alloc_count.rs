//! Counting the heap allocations each shard makes (`switchyard_shard_allocations_total`).
//!
//! The hot-path rule (no allocation per HTTP/1.1 REST request beyond the bodies) is a property of
//! the whole gateway: the parser, the router, the balancer, the pool, the HTTP/2 client and the
//! executor. The allocation bench checks the socket-free pieces one by one; this counter checks the
//! binary itself, on real sockets (`tests/allocations.rs`), and shows operators the same figure.
//!
//! The binary's global allocator is [`CountingAllocator`] around mimalloc. It adds one to the
//! counter of the shard whose thread allocates (or reallocates): a thread-local pointer to that
//! shard's single-writer metric, set by [`count_into`] when the shard starts. Other threads (the
//! registry owner, the Kafka core, the in-process demo backend) are not counted. The cost per
//! allocation is a thread-local read, a branch and a plain add: nothing shared is written.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::Arc;

use crate::metrics::ShardMetrics;

thread_local! {
    /// This thread's shard metrics while it runs a shard; null otherwise. `const`-initialised and
    /// without a destructor, so the allocator may read it at any time, even while the thread's
    /// other thread-locals are being set up or torn down.
    static SHARD: Cell<*const ShardMetrics> = const { Cell::new(std::ptr::null()) };
}

/// A global allocator that counts each shard thread's allocations, then lets `A` make them.
pub struct CountingAllocator<A>(pub A);

// SAFETY: every call is passed on to `A` unchanged; counting touches only a thread-local and the
// metric it points to, which the guard of `count_into` keeps alive while it is set.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees, passed on.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { self.0.dealloc(ptr, layout) }
    }
}

fn count() {
    let shard = SHARD.with(Cell::get);
    if !shard.is_null() {
        // SAFETY: set only by `count_into`, whose guard holds the metrics alive until it resets
        // the pointer; only this thread (the shard's) writes the counter.
        unsafe { (*shard).allocations.inc() };
    }
}

/// Counts this thread's allocations into `metrics` until the guard is dropped.
pub fn count_into(metrics: Arc<ShardMetrics>) -> Counting {
    SHARD.with(|s| s.set(Arc::as_ptr(&metrics)));
    Counting { _metrics: metrics }
}

/// Keeps a shard's allocations counted (see [`count_into`]).
#[must_use = "counting stops when the guard is dropped"]
pub struct Counting {
    _metrics: Arc<ShardMetrics>,
}

impl Drop for Counting {
    fn drop(&mut self) {
        SHARD.with(|s| s.set(std::ptr::null()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_while_the_guard_lives_and_only_on_its_thread() {
        let metrics = Arc::new(ShardMetrics::default());
        // The test binary's allocator is not the counting one: count by hand around each step.
        count();
        assert_eq!(metrics.allocations.get(), 0, "not counting yet");
        let guard = count_into(metrics.clone());
        count();
        count();
        std::thread::spawn(count).join().unwrap();
        assert_eq!(metrics.allocations.get(), 2, "this thread's two");
        drop(guard);
        count();
        assert_eq!(metrics.allocations.get(), 2, "not counting any more");
    }
}
