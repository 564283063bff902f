//! Request metrics in shared memory: counters and histograms as fixed
//! arrays of atomics, one block per worker (written by that worker only)
//! plus one the master folds retired workers into, so a counter never goes
//! down when a worker is recycled.
//!
//! The request path pays a few relaxed atomic adds and nothing more. The
//! master reads the blocks to serve `/metrics`; `rwsgi status --json` reads
//! them from outside.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Histogram bucket upper bounds in microseconds (the `le` labels, in
/// seconds: 5 ms to 10 s, Prometheus's default layout).
pub const BUCKETS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// Methods counted by name; anything else is `other`.
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];

/// Status classes of answered requests.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Statuses the server sends on its own (refusals), counted by code.
pub const REFUSALS: [u16; 9] = [400, 408, 413, 414, 417, 431, 501, 503, 505];

fn method_index(method: &str) -> usize {
    METHODS[..7].iter().position(|m| *m == method).unwrap_or(7)
}

fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// A histogram: one counter per bucket (not cumulative), the sum and the count.
#[repr(C)]
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, us: u64) {
        let i = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum_us: self.sum_us.load(Relaxed),
        }
    }

    fn add(&self, s: &HistogramSnapshot) {
        for (b, n) in self.buckets.iter().zip(s.buckets) {
            b.fetch_add(n, Relaxed);
        }
        self.sum_us.fetch_add(s.sum_us, Relaxed);
    }

    fn clear(&self) {
        for b in &self.buckets {
            b.store(0, Relaxed);
        }
        self.sum_us.store(0, Relaxed);
    }
}

/// A histogram's values at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub buckets: [u64; BUCKETS_US.len() + 1],
    pub sum_us: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// (upper bound in seconds, cumulative count), `+Inf` last.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| {
                total += n;
                let le = BUCKETS_US
                    .get(i)
                    .map_or(f64::INFINITY, |us| *us as f64 / 1e6);
                (le, total)
            })
            .collect()
    }

    /// (upper bound in seconds, this bucket's own count), `+Inf` last.
    pub fn per_bucket(&self) -> Vec<(f64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let le = BUCKETS_US
                    .get(i)
                    .map_or(f64::INFINITY, |us| *us as f64 / 1e6);
                (le, *n)
            })
            .collect()
    }

    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }
}

/// One worker's request metrics (or the retired workers' totals).
#[repr(C)]
#[derive(Default)]
pub struct Metrics {
    /// Requests answered by the application, by method and status class.
    requests: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    /// From the application's start to the end of the response.
    duration: Histogram,
    /// From accept (or, on a kept-alive connection, the complete head) to
    /// the application's start: the saturation signal.
    queue_wait: Histogram,
    /// Request-thread time spent in requests, µs: its rate over the
    /// thread count is the capacity in use.
    busy_us: AtomicU64,
    accepted: AtomicU64,
    static_requests: AtomicU64,
    static_bytes: AtomicU64,
    /// Requests the server answered on its own, by status (see `REFUSALS`).
    refused: [AtomicU64; REFUSALS.len() + 1],
}

impl Metrics {
    /// One request answered by the application.
    pub fn request(&self, method: &str, status: u16, duration_us: u64, queue_us: u64) {
        self.requests[method_index(method)][class_index(status)].fetch_add(1, Relaxed);
        self.duration.observe(duration_us);
        self.queue_wait.observe(queue_us);
        self.busy_us.fetch_add(duration_us, Relaxed);
    }

    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    pub fn static_response(&self, bytes: u64) {
        self.static_requests.fetch_add(1, Relaxed);
        self.static_bytes.fetch_add(bytes, Relaxed);
    }

    /// A request the server refused itself (parser, limits, queue timeout).
    pub fn refused(&self, status: u16) {
        let i = REFUSALS
            .iter()
            .position(|&s| s == status)
            .unwrap_or(REFUSALS.len());
        self.refused[i].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            requests: std::array::from_fn(|m| {
                std::array::from_fn(|c| self.requests[m][c].load(Relaxed))
            }),
            duration: self.duration.snapshot(),
            queue_wait: self.queue_wait.snapshot(),
            busy_us: self.busy_us.load(Relaxed),
            accepted: self.accepted.load(Relaxed),
            static_requests: self.static_requests.load(Relaxed),
            static_bytes: self.static_bytes.load(Relaxed),
            refused: std::array::from_fn(|i| self.refused[i].load(Relaxed)),
        }
    }

    /// Adds a snapshot (a retired worker's last values) to these totals.
    pub fn add(&self, s: &MetricsSnapshot) {
        for (row, srow) in self.requests.iter().zip(s.requests) {
            for (c, n) in row.iter().zip(srow) {
                c.fetch_add(n, Relaxed);
            }
        }
        self.duration.add(&s.duration);
        self.queue_wait.add(&s.queue_wait);
        self.busy_us.fetch_add(s.busy_us, Relaxed);
        self.accepted.fetch_add(s.accepted, Relaxed);
        self.static_requests.fetch_add(s.static_requests, Relaxed);
        self.static_bytes.fetch_add(s.static_bytes, Relaxed);
        for (c, n) in self.refused.iter().zip(s.refused) {
            c.fetch_add(n, Relaxed);
        }
    }

    /// Zeroes the block for a new worker in its slot.
    pub fn clear(&self) {
        for row in &self.requests {
            for c in row {
                c.store(0, Relaxed);
            }
        }
        self.duration.clear();
        self.queue_wait.clear();
        for c in [
            &self.busy_us,
            &self.accepted,
            &self.static_requests,
            &self.static_bytes,
        ] {
            c.store(0, Relaxed);
        }
        for c in &self.refused {
            c.store(0, Relaxed);
        }
    }
}

/// Metrics at one moment, summable across workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub requests: [[u64; CLASSES.len()]; METHODS.len()],
    pub duration: HistogramSnapshot,
    pub queue_wait: HistogramSnapshot,
    pub busy_us: u64,
    pub accepted: u64,
    pub static_requests: u64,
    pub static_bytes: u64,
    pub refused: [u64; REFUSALS.len() + 1],
}

impl MetricsSnapshot {
    pub fn merge(&mut self, o: &MetricsSnapshot) {
        for (row, orow) in self.requests.iter_mut().zip(o.requests) {
            for (a, b) in row.iter_mut().zip(orow) {
                *a += b;
            }
        }
        self.duration.merge(&o.duration);
        self.queue_wait.merge(&o.queue_wait);
        self.busy_us += o.busy_us;
        self.accepted += o.accepted;
        self.static_requests += o.static_requests;
        self.static_bytes += o.static_bytes;
        for (a, b) in self.refused.iter_mut().zip(o.refused) {
            *a += b;
        }
    }

    /// Requests answered by the application, all kinds.
    pub fn requests_total(&self) -> u64 {
        self.requests.iter().flatten().sum()
    }

    /// The status label of refusal counter `i`.
    pub fn refusal_label(i: usize) -> String {
        REFUSALS
            .get(i)
            .map_or_else(|| "other".to_owned(), |s| s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> Box<Metrics> {
        Box::default()
    }

    #[test]
    fn requests_land_in_their_method_class_and_buckets() {
        let m = block();
        m.request("GET", 200, 3_000, 100);
        m.request("GET", 404, 30_000, 100);
        m.request("BREW", 503, 20_000_000, 7_000);
        let s = m.snapshot();
        assert_eq!(s.requests[0][1], 1);
        assert_eq!(s.requests[0][3], 1);
        assert_eq!(s.requests[7][4], 1);
        assert_eq!(s.duration.count(), 3);
        let cum = s.duration.cumulative();
        assert_eq!(cum[0], (0.005, 1));
        assert_eq!(cum[3], (0.05, 2));
        assert_eq!(cum.last().copied(), Some((f64::INFINITY, 3)));
        assert_eq!(s.queue_wait.cumulative()[1], (0.01, 3));
        assert_eq!(s.busy_us, 20_033_000);
    }

    #[test]
    fn folding_keeps_counters_from_going_down() {
        let (worker, retired) = (block(), block());
        worker.request("POST", 201, 10, 1);
        worker.refused(413);
        worker.refused(499);
        let before = worker.snapshot();
        retired.add(&before);
        worker.clear();
        assert_eq!(worker.snapshot(), MetricsSnapshot::default());
        let mut total = retired.snapshot();
        total.merge(&worker.snapshot());
        assert_eq!(total, before);
        assert_eq!(total.refused[2], 1);
        assert_eq!(total.refused[REFUSALS.len()], 1);
    }
}
