//! Run with: cargo bench --bench alloc
//!
//! Counts heap allocations per request on the REST hot path: the process's global allocator is
//! wrapped in a counter (this bench is its own binary, so nothing else is affected), N requests go
//! through the socket-free REST path (`support/rest_pipeline.rs`: parse head → route → build and
//! encode `ForwardingReq` into the reused buffer → decode `ForwardingResp` → map → write the
//! HTTP/1.1 response into the reused output buffer), and allocations ÷ N is printed, followed by a
//! criterion timing of the same path with the counter in place. Any allocation fails the bench
//! (and `cargo test --all-targets`, which runs it once).

#[path = "support/rest_pipeline.rs"]
mod pipeline;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

use pipeline::{Pipeline, REQUEST};

/// Requests measured after the warm-up (which lets the reused buffers reach their size).
const REQUESTS: u64 = 100_000;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting this thread's allocations (thread-local: no shared counter).
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn count(size: usize) {
    // `try_with`: the thread-local may already be gone while a thread is being torn down.
    let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
    let _ = BYTES.try_with(|b| b.set(b.get() + size as u64));
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted(pipeline: &mut Pipeline, requests: u64) -> (u64, u64) {
    let (a0, b0) = (ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get));
    for _ in 0..requests {
        black_box(pipeline.one(black_box(REQUEST)));
    }
    (ALLOCATIONS.with(Cell::get) - a0, BYTES.with(Cell::get) - b0)
}

fn bench(c: &mut Criterion) {
    let mut pipeline = Pipeline::new();
    counted(&mut pipeline, 1_000);
    let (allocations, bytes) = counted(&mut pipeline, REQUESTS);
    println!(
        "rest path: {:.2} allocations and {:.0} bytes allocated per request ({} requests)",
        allocations as f64 / REQUESTS as f64,
        bytes as f64 / REQUESTS as f64,
        REQUESTS
    );
    // Where they happen, stage by stage (one request after the warm-up).
    // The list is made before the count starts: its own allocation is not the first stage's.
    let mut stages = Vec::with_capacity(16);
    let mut last = ALLOCATIONS.with(Cell::get);
    pipeline.one_staged(REQUEST, &mut |stage| {
        let now = ALLOCATIONS.with(Cell::get);
        stages.push((stage, now - last));
        last = ALLOCATIONS.with(Cell::get);
    });
    for (stage, n) in stages {
        println!("  {stage}: {n}");
    }
    // The hot-path rule: nothing is allocated per request but the bodies (this request has none,
    // and the answer's body is a slice of the backend's message). `cargo test --all-targets` runs
    // this bench once, so CI fails when the rule breaks.
    assert_eq!(
        allocations, 0,
        "the REST path allocates per request again (stages above)"
    );
    c.bench_function("alloc/rest_path_counted", |b| {
        b.iter(|| pipeline.one(black_box(REQUEST)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
