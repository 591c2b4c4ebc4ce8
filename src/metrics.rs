//! Per-shard metrics, summed over all shards when `/-/metrics` is scraped.
//!
//! Each shard owns its [`ShardMetrics`] and is its only writer; the fields are atomics only so that
//! the scraping shard may read them. A single-writer counter is bumped with a relaxed load and store
//! (a plain `add` on x86), never a locked read-modify-write, so the request path pays no cross-core
//! cost: the cache line stays on its shard's core until a scrape reads it.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// A counter written by one thread, readable by any.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (only the owning shard calls this).
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one (gauges).
    pub fn dec(&self) {
        self.0.store(self.0.load(Relaxed).wrapping_sub(1), Relaxed);
    }

    /// Sets the value (gauges).
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A histogram of durations written by one thread, for `N` bucket bounds (the bounds themselves
/// are the caller's constant, passed in as an array of that length so the two cannot disagree).
/// An observation bumps the one bucket it falls in; the counts are made cumulative only when
/// rendered, so the request path writes a single counter besides the sum.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    /// Observations at most each bound and above the one before it.
    counts: [Counter; N],
    /// Observations above the last bound (the `+Inf` bucket's own).
    above: Counter,
    /// Sum of the observations in microseconds.
    sum_micros: Counter,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| Counter::default()),
            above: Counter::default(),
            sum_micros: Counter::default(),
        }
    }
}

impl<const N: usize> Histogram<N> {
    /// Records `d` in the first bucket whose bound (in seconds) it does not exceed.
    pub fn observe(&self, bounds: &[f64; N], d: Duration) {
        let secs = d.as_secs_f64();
        match bounds.iter().position(|&b| secs <= b) {
            Some(bucket) => self.counts[bucket].inc(),
            None => self.above.inc(),
        }
        self.sum_micros.add(d.as_micros() as u64);
    }

    /// Writes the sum of `parts` (one histogram per shard, or a single one) as the Prometheus
    /// histogram `name`.
    fn render<'a>(
        out: &mut String,
        name: &str,
        help: &str,
        bounds: &[f64; N],
        parts: impl Iterator<Item = &'a Self> + Clone,
    ) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in bounds.iter().enumerate() {
            cumulative += parts.clone().map(|h| h.counts[i].get()).sum::<u64>();
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += parts.clone().map(|h| h.above.get()).sum::<u64>();
        let sum_micros = parts.map(|h| h.sum_micros.get()).sum::<u64>();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", sum_micros as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// Upper bounds of the request duration histogram, in seconds: 100 µs to 10 s, covering a
/// loopback backend's answer up to the default deadline.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// One shard's metrics.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// Responses by status class (index 1 = 1xx … 5 = 5xx).
    pub responses: [Counter; 6],
    /// Requests being served.
    pub in_flight: Counter,
    /// Client connections open.
    pub connections_open: Counter,
    /// Client connections accepted.
    pub connections_total: Counter,
    /// Client connections closed at once because the shard was at its connection limit.
    pub connections_refused: Counter,
    /// Calls to services, whether or not an instance could be reached.
    pub upstream_calls: Counter,
    /// Calls that got no usable answer (connect failure, timeout, protocol error).
    pub upstream_failures: Counter,
    /// Requests refused at the in-flight limit, or because their body would take the shard's
    /// request bodies beyond `--max-body-memory-bytes`.
    pub overloaded: Counter,
    /// Bytes of request bodies held (arriving, or waiting for their calls to end).
    pub body_bytes: Counter,
    /// Requests whose client went away before the answer (the backend call was cancelled).
    pub client_aborts: Counter,
    /// Answers that waited for their HTTP/2 connection's answer budget, or for a place to be
    /// built whole in (`upstream::budget`).
    pub answer_budget_waits: Counter,
    /// Instances in this shard's registry copy.
    pub registry_instances: Counter,
    /// Request durations, in [`DURATION_BUCKETS`].
    pub durations: Histogram<{ DURATION_BUCKETS.len() }>,
    /// Heap allocations made on the shard's thread (see `alloc_count`).
    pub allocations: Counter,
}

impl ShardMetrics {
    /// Counts one response by its status.
    pub fn count_response(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize;
        self.responses[class].inc();
    }

    /// Records one request's duration.
    pub fn observe_duration(&self, d: Duration) {
        self.durations.observe(&DURATION_BUCKETS, d);
    }
}

/// Upper bounds of the registry apply-delay histogram, in seconds: from a loopback broker's
/// millisecond round trip up to the minute a gateway may spend catching up after a broker outage.
pub const APPLY_DELAY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 15.0, 60.0,
];

/// The cluster registry's metrics. Written only by the thread that owns the registry (the Kafka
/// core in a cluster), read by the scraping shard; all zero when standalone.
#[derive(Debug, Default)]
pub struct RegistryMetrics {
    /// Log events that changed the registry.
    pub events_applied: Counter,
    /// Log events not applied: this node's own (applied when written) or older than the state held.
    pub events_skipped: Counter,
    /// Log events that did not parse or failed validation.
    pub events_rejected: Counter,
    /// Tombstones (records with no value) that deleted a registered instance.
    pub tombstones_applied: Counter,
    /// Tombstones that changed nothing: the one after every removal, or one for a key held by
    /// nothing or by a write that lies after it in the log.
    pub tombstones_skipped: Counter,
    /// Registry writes the log did not take (answered 503): no acknowledgement in time, untried
    /// behind a write that got none, or refused by the broker.
    pub log_write_failures: Counter,
    /// Services this gateway removed because every instance refused connections (counted where
    /// the removal is applied: many requests may see the refusals and ask for it at once).
    pub services_removed: Counter,
    /// Messages between this gateway's read position and the log's end.
    pub lag: Counter,
    /// Apply delays, in [`APPLY_DELAY_BUCKETS`].
    pub apply_delays: Histogram<{ APPLY_DELAY_BUCKETS.len() }>,
}

impl RegistryMetrics {
    /// Records the time from an event's write (its `ts_ms`) to its application here.
    pub fn observe_apply_delay(&self, d: Duration) {
        self.apply_delays.observe(&APPLY_DELAY_BUCKETS, d);
    }
}

/// Renders every shard's metrics, summed, and the registry's, in the Prometheus text format.
pub fn render(shards: &[Arc<ShardMetrics>], registry: &RegistryMetrics) -> String {
    let mut out = String::with_capacity(4096);
    render_shards(&mut out, shards, registry.services_removed.get());
    render_registry(&mut out, registry);
    out
}

/// Writes one metric that is a single value.
fn simple(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// The shards' metrics, summed. `services_removed` is the registry's count, written among these
/// because it explains the upstream failures next to it.
fn render_shards(out: &mut String, shards: &[Arc<ShardMetrics>], services_removed: u64) {
    let sum = |f: &dyn Fn(&ShardMetrics) -> u64| shards.iter().map(|s| f(s)).sum::<u64>();
    simple(
        out,
        "switchyard_shards",
        "gauge",
        "Shards (executors) serving.",
        shards.len() as u64,
    );
    simple(
        out,
        "switchyard_in_flight_requests",
        "gauge",
        "Requests being served.",
        sum(&|s| s.in_flight.get()),
    );
    simple(
        out,
        "switchyard_request_body_bytes",
        "gauge",
        "Bytes of request bodies held, while they arrive and while their calls last.",
        sum(&|s| s.body_bytes.get()),
    );
    simple(
        out,
        "switchyard_connections_open",
        "gauge",
        "Client connections open.",
        sum(&|s| s.connections_open.get()),
    );
    simple(
        out,
        "switchyard_connections_total",
        "counter",
        "Client connections accepted.",
        sum(&|s| s.connections_total.get()),
    );
    simple(
        out,
        "switchyard_connections_refused_total",
        "counter",
        "Client connections closed at the connection limit.",
        sum(&|s| s.connections_refused.get()),
    );
    simple(
        out,
        "switchyard_upstream_calls_total",
        "counter",
        "Calls to services (a REST request, a GraphQL root field), whether or not an instance could be reached.",
        sum(&|s| s.upstream_calls.get()),
    );
    simple(
        out,
        "switchyard_upstream_failures_total",
        "counter",
        "Calls to services without a usable answer: no instance reachable, a backend error or timeout.",
        sum(&|s| s.upstream_failures.get()),
    );
    simple(
        out,
        "switchyard_services_removed_total",
        "counter",
        "Services removed because every instance refused connections.",
        services_removed,
    );
    simple(
        out,
        "switchyard_overloaded_total",
        "counter",
        "Requests refused at the in-flight limit or the body memory limit.",
        sum(&|s| s.overloaded.get()),
    );
    simple(
        out,
        "switchyard_client_aborts_total",
        "counter",
        "Requests whose client went away before the answer; their backend calls were cancelled.",
        sum(&|s| s.client_aborts.get()),
    );
    simple(
        out,
        "switchyard_answer_budget_waits_total",
        "counter",
        "Answers that waited because their HTTP/2 connection held its budget of answers not yet sent, or all its places to build GraphQL and /-/ answers in: mostly a client not reading what it asked for.",
        sum(&|s| s.answer_budget_waits.get()),
    );
    simple(
        out,
        "switchyard_shard_allocations_total",
        "counter",
        "Heap allocations made on the shards' threads (an HTTP/1.1 REST request makes none but its bodies).",
        sum(&|s| s.allocations.get()),
    );
    simple(
        out,
        "switchyard_registry_instances",
        "gauge",
        "Registered instances (as the first shard sees them).",
        shards.first().map_or(0, |s| s.registry_instances.get()),
    );
    let _ = writeln!(
        out,
        "# HELP switchyard_requests_total Responses sent, by status class.\n# TYPE switchyard_requests_total counter"
    );
    for class in 1..=5 {
        let _ = writeln!(
            out,
            "switchyard_requests_total{{class=\"{class}xx\"}} {}",
            sum(&|s| s.responses[class].get())
        );
    }
    Histogram::render(
        out,
        "switchyard_request_duration_seconds",
        "Time from a complete request to its response.",
        &DURATION_BUCKETS,
        shards.iter().map(|s| &s.durations),
    );
}

/// The registry log's metrics.
fn render_registry(out: &mut String, registry: &RegistryMetrics) {
    simple(
        out,
        "switchyard_registry_events_applied_total",
        "counter",
        "Registry log events that changed this gateway's registry.",
        registry.events_applied.get(),
    );
    simple(
        out,
        "switchyard_registry_events_skipped_total",
        "counter",
        "Registry log events skipped: written by this gateway, or older than the state held.",
        registry.events_skipped.get(),
    );
    simple(
        out,
        "switchyard_registry_events_rejected_total",
        "counter",
        "Registry log events that did not parse or failed validation.",
        registry.events_rejected.get(),
    );
    let _ = writeln!(
        out,
        "# HELP switchyard_registry_tombstones_total Registry log tombstones (null values), by \
         whether they deleted a registered instance.\n# TYPE switchyard_registry_tombstones_total counter"
    );
    for (outcome, counter) in [
        ("applied", &registry.tombstones_applied),
        ("skipped", &registry.tombstones_skipped),
    ] {
        let _ = writeln!(
            out,
            "switchyard_registry_tombstones_total{{outcome=\"{outcome}\"}} {}",
            counter.get()
        );
    }
    simple(
        out,
        "switchyard_registry_log_write_failures_total",
        "counter",
        "Registry writes the log did not take (answered 503).",
        registry.log_write_failures.get(),
    );
    simple(
        out,
        "switchyard_registry_lag",
        "gauge",
        "Registry log messages between this gateway's read position and the log's end.",
        registry.lag.get(),
    );
    Histogram::render(
        out,
        "switchyard_registry_apply_delay_seconds",
        "Time from a registry event's write at any gateway to its application here.",
        &APPLY_DELAY_BUCKETS,
        std::iter::once(&registry.apply_delays),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_shards() {
        let a = Arc::new(ShardMetrics::default());
        let b = Arc::new(ShardMetrics::default());
        a.count_response(200);
        b.count_response(204);
        b.count_response(503);
        a.observe_duration(Duration::from_micros(50));
        b.observe_duration(Duration::from_secs(60));
        let registry = RegistryMetrics::default();
        registry.observe_apply_delay(Duration::from_millis(3));
        let text = render(&[a, b], &registry);
        assert!(
            text.contains("switchyard_requests_total{class=\"2xx\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("switchyard_requests_total{class=\"5xx\"} 1\n"));
        assert!(text.contains("switchyard_request_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("switchyard_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("switchyard_request_duration_seconds_count 2\n"));
        assert!(text.contains("switchyard_registry_apply_delay_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("switchyard_registry_apply_delay_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("switchyard_registry_tombstones_total{outcome=\"skipped\"} 0\n"));
    }
}
