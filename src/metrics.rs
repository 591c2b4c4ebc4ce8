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
    /// Calls sent to backends.
    pub upstream_calls: Counter,
    /// Calls that got no usable answer (connect failure, timeout, protocol error).
    pub upstream_failures: Counter,
    /// Services removed because every instance refused connections.
    pub services_removed: Counter,
    /// Requests refused at the in-flight limit.
    pub overloaded: Counter,
    /// Instances in this shard's registry copy.
    pub registry_instances: Counter,
    /// Duration histogram: cumulative counts per bucket (the last is +Inf).
    pub duration_buckets: [Counter; DURATION_BUCKETS.len() + 1],
    /// Sum of durations in microseconds.
    pub duration_sum_micros: Counter,
}

impl ShardMetrics {
    /// Counts one response by its status.
    pub fn count_response(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize;
        self.responses[class].inc();
    }

    /// Records one request's duration.
    pub fn observe_duration(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.duration_buckets[bucket].inc();
        self.duration_sum_micros.add(d.as_micros() as u64);
    }
}

/// Renders every shard's metrics, summed, in the Prometheus text format.
pub fn render(shards: &[Arc<ShardMetrics>]) -> String {
    let sum = |f: &dyn Fn(&ShardMetrics) -> u64| shards.iter().map(|s| f(s)).sum::<u64>();
    let mut out = String::with_capacity(4096);
    let mut simple = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    simple(
        "switchyard_shards",
        "gauge",
        "Shards (executors) serving.",
        shards.len() as u64,
    );
    simple(
        "switchyard_in_flight_requests",
        "gauge",
        "Requests being served.",
        sum(&|s| s.in_flight.get()),
    );
    simple(
        "switchyard_connections_open",
        "gauge",
        "Client connections open.",
        sum(&|s| s.connections_open.get()),
    );
    simple(
        "switchyard_connections_total",
        "counter",
        "Client connections accepted.",
        sum(&|s| s.connections_total.get()),
    );
    simple(
        "switchyard_connections_refused_total",
        "counter",
        "Client connections closed at the connection limit.",
        sum(&|s| s.connections_refused.get()),
    );
    simple(
        "switchyard_upstream_calls_total",
        "counter",
        "Calls sent to backends.",
        sum(&|s| s.upstream_calls.get()),
    );
    simple(
        "switchyard_upstream_failures_total",
        "counter",
        "Backend calls without a usable answer.",
        sum(&|s| s.upstream_failures.get()),
    );
    simple(
        "switchyard_services_removed_total",
        "counter",
        "Services removed because every instance refused connections.",
        sum(&|s| s.services_removed.get()),
    );
    simple(
        "switchyard_overloaded_total",
        "counter",
        "Requests refused at the in-flight limit.",
        sum(&|s| s.overloaded.get()),
    );
    simple(
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
    let _ = writeln!(
        out,
        "# HELP switchyard_request_duration_seconds Time from a complete request to its response.\n# TYPE switchyard_request_duration_seconds histogram"
    );
    let mut cumulative = 0;
    for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
        cumulative += sum(&|s| s.duration_buckets[i].get());
        let _ = writeln!(
            out,
            "switchyard_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += sum(&|s| s.duration_buckets[DURATION_BUCKETS.len()].get());
    let _ = writeln!(
        out,
        "switchyard_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "switchyard_request_duration_seconds_sum {}",
        sum(&|s| s.duration_sum_micros.get()) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "switchyard_request_duration_seconds_count {cumulative}"
    );
    out
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
        let text = render(&[a, b]);
        assert!(
            text.contains("switchyard_requests_total{class=\"2xx\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("switchyard_requests_total{class=\"5xx\"} 1\n"));
        assert!(text.contains("switchyard_request_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("switchyard_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("switchyard_request_duration_seconds_count 2\n"));
    }
}
