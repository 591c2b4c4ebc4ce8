//! Run with: cargo bench --bench registry
//!
//! The registry at scale: the cost of a shard's lookup (service → instance list → one instance)
//! with 10, 10,000 and 100,000 registered instances, and the memory an instance costs in a shard's
//! read copy and in the owner's state (printed once, measured with a counting allocator).
//! Instances are spread ten per service, as many small services would be.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use switchyard::names::{Address, InstanceId, ServiceName};
use switchyard::registry::state::{Event, RegistryState, Stamp};
use switchyard::registry::view::RegistryView;
use switchyard::registry::{Change, InstanceRecord};

/// Counts live heap bytes, to measure what the registry holds.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Relaxed);
        LIVE.fetch_sub(layout.size(), Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const PER_SERVICE: usize = 10;

fn record(i: usize) -> InstanceRecord {
    InstanceRecord {
        service: ServiceName::parse(&format!("svc-{}", i / PER_SERVICE)).unwrap(),
        instance: InstanceId::parse(&format!("instance-{i}")).unwrap(),
        address: Address::parse(&format!(
            "10.{}.{}.{}:50051",
            i >> 16 & 255,
            i >> 8 & 255,
            i & 255
        ))
        .unwrap(),
    }
}

fn view_with(n: usize) -> RegistryView {
    let mut view = RegistryView::default();
    for i in 0..n {
        view.apply(Change::Upsert(record(i)));
    }
    view
}

fn memory_per_instance(n: usize) {
    let records: Vec<_> = (0..n).map(record).collect();
    let before = LIVE.load(Relaxed);
    let mut view = RegistryView::default();
    for r in &records {
        view.apply(Change::Upsert(r.clone()));
    }
    let view_bytes = LIVE.load(Relaxed) - before;
    let before = LIVE.load(Relaxed);
    let mut state = RegistryState::default();
    for r in &records {
        state.apply(Event {
            service: r.service.clone(),
            instance: r.instance.clone(),
            address: Some(r.address.clone()),
            stamp: Stamp {
                version: 1_700_000_000_000,
                node: "node-a".into(),
            },
        });
    }
    let state_bytes = LIVE.load(Relaxed) - before;
    // Names are shared (Arc) between the records and both copies, so this is what each copy adds.
    println!(
        "registry memory with {n} instances: shard view {:.0} B/instance ({:.1} MiB), \
         owner state {:.0} B/instance ({:.1} MiB)",
        view_bytes as f64 / n as f64,
        view_bytes as f64 / (1 << 20) as f64,
        state_bytes as f64 / n as f64,
        state_bytes as f64 / (1 << 20) as f64,
    );
    drop((view, state));
}

fn lookup(c: &mut Criterion) {
    memory_per_instance(100_000);
    let mut group = c.benchmark_group("registry_lookup");
    for n in [10, 10_000, 100_000] {
        let view = view_with(n);
        let names: Vec<String> = (0..n.div_ceil(PER_SERVICE))
            .map(|s| format!("svc-{s}"))
            .collect();
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                // A different service each time, as traffic to many services would be.
                i = (i + 7919) % names.len();
                let entry = view.get(black_box(&names[i])).expect("registered");
                let pick = i % entry.instances.len();
                black_box(entry.instances[pick].address.sockets().first())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
