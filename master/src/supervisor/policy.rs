//! The supervisor's pure rules: back-off, when a worker counts as stuck,
//! and when it is recycled.

use super::{Reading, Worker, STUCK_GRACE};
use rwsgi_shared::config::ServerConfig;
use std::time::{Duration, Instant};

/// Random extras drawn when a worker starts, so a generation does not recycle at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Jitter {
    /// Added to `--maximum-requests` (up to `--maximum-requests-jitter`).
    pub requests: u64,
    /// Added to `--restart-interval` (up to 10 %).
    pub restart_ms: u64,
}

/// Respawn back-off after `failures` deaths in a row: none after the first
/// (a crash of a worker that was serving is replaced at once, as gunicorn
/// and uWSGI do), then 200 ms doubling, at most 25.6 s, so a crash loop
/// does not spin.
pub fn backoff(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis(100u64 << (n - 1).min(8)),
    }
}

/// How long a request runs before it counts as stuck: `--request-timeout`,
/// plus `--interrupt-timeout` when RequestTimeout is tried first.
pub fn stuck_after_ms(config: &ServerConfig) -> u64 {
    let t = config.timeouts;
    t.request_ms.saturating_add(t.interrupt_ms)
}

/// The earlier deadline for a stopping worker recycled for a stuck request
/// once all its running requests are stuck (`None`: keep its deadline).
/// With no request left it is exiting by itself (its `atexit` handlers
/// may be running): left alone.
pub fn stuck_drain_deadline(
    w: &Worker,
    deadline: Instant,
    reading: &Reading,
    now: Instant,
    now_ms: u64,
    stuck_after_ms: u64,
) -> Option<Instant> {
    if !w.stuck || w.killed.is_some() || reading.running.is_empty() {
        return None;
    }
    let only_stuck = reading
        .running
        .iter()
        .all(|started| now_ms.saturating_sub(*started) > stuck_after_ms);
    let cut = now + STUCK_GRACE;
    (only_stuck && cut < deadline).then_some(cut)
}

/// Why a worker must be replaced now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub reason: String,
    /// The reason's kind, for the metrics (one of [`EXIT_REASONS`]).
    pub kind: &'static str,
    /// A request overran `--request-timeout` (its stacks are dumped first).
    pub request_timeout: bool,
}

/// The recycling triggers, first match wins: a request over
/// `--request-timeout`, `--maximum-requests`, `--restart-interval`,
/// `--inactivity-timeout`, `--memory-limit`, `--cpu-time-limit`.
pub fn recycle_reason(
    config: &ServerConfig,
    w: &Worker,
    reading: &Reading,
    now: Instant,
    now_ms: u64,
) -> Option<Verdict> {
    let r = config.recycle;
    if let Some((thread, started, what)) = &reading.oldest_request {
        let running = now_ms.saturating_sub(*started);
        // With --interrupt-timeout the worker interrupts the request first;
        // only one that did not unwind in time costs the worker.
        if running > stuck_after_ms(config) {
            let interrupt = match config.timeouts.interrupt_ms {
                0 => String::new(),
                ms => format!(
                    " + --interrupt-timeout {} s: RequestTimeout did not end it",
                    ms as f64 / 1000.0
                ),
            };
            return Some(Verdict {
                reason: format!(
                    "request timeout: thread {thread} has been running {what} for {:.1} s (--request-timeout {} s{interrupt})",
                    running as f64 / 1000.0,
                    config.timeouts.request_ms as f64 / 1000.0
                ),
                request_timeout: true,
                kind: "request-timeout",
            });
        }
    }
    let because = |kind: &'static str, reason: String| {
        Some(Verdict {
            reason,
            request_timeout: false,
            kind,
        })
    };
    if r.max_requests > 0 && reading.requests >= w.request_limit {
        return because(
            "max-requests",
            format!(
                "served {} requests (--maximum-requests {})",
                reading.requests, r.max_requests
            ),
        );
    }
    let ran = now.duration_since(w.spawned_at);
    if ran >= w.restart_after {
        return because(
            "restart-interval",
            format!("ran {:.0} s (--restart-interval)", ran.as_secs_f64()),
        );
    }
    let idle = now.duration_since(w.active_at);
    if r.inactivity_ms > 0
        && reading.activity > 0
        && reading.running.is_empty()
        && idle >= Duration::from_millis(r.inactivity_ms)
    {
        // The scoreboard's exit reasons are fixed: counted with restart-interval.
        return because(
            "restart-interval",
            format!(
                "no request for {:.0} s after {} (--inactivity-timeout)",
                idle.as_secs_f64(),
                reading.requests
            ),
        );
    }
    if let Some((rss_mb, cpu_s)) = reading.usage {
        if r.memory_limit_mb > 0 && rss_mb > r.memory_limit_mb {
            return because(
                "memory",
                format!(
                    "resident memory {rss_mb} MB over --memory-limit {} MB",
                    r.memory_limit_mb
                ),
            );
        }
        if r.cpu_time_limit_s > 0 && cpu_s >= r.cpu_time_limit_s {
            return because(
                "cpu",
                format!(
                    "used {cpu_s} s of CPU (--cpu-time-limit {} s)",
                    r.cpu_time_limit_s
                ),
            );
        }
    }
    None
}
