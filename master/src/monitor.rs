//! Deciding when a worker must be replaced: recycling triggers and request
//! timeouts, read from the scoreboard and /proc. Each decision carries the
//! reason that goes to the log.

use crate::workers::{Phase, Workers};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::scoreboard::Scoreboard;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// A worker to replace, and why.
pub struct Verdict {
    pub slot: usize,
    pub reason: String,
    /// The worker should log its Python stacks first (a request overran).
    pub dump_stacks: bool,
}

/// A random number without a dependency: std's hasher keys are random per process.
pub fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Up to `max` extra, random per worker.
pub fn jitter(max: u64) -> u64 {
    if max == 0 {
        0
    } else {
        random_u64() % (max + 1)
    }
}

/// Resident set size in MB and CPU seconds used, from /proc.
fn usage(pid: u32) -> Option<(u64, u64)> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: as above.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((pages * page / (1024 * 1024), ticks / hz))
}

/// Workers that should be replaced now. Workers already retiring or
/// stopping are skipped, so each is reported once.
pub fn check(
    config: &ServerConfig,
    workers: &Workers,
    scoreboard: &Scoreboard,
    sample_proc: bool,
) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    let r = config.recycle;
    let now_ms = rwsgi_shared::time::now_ms();
    for (slot, w) in workers.iter() {
        if w.phase != Phase::Ready || w.retiring.is_some() {
            continue;
        }
        let Some(sb) = scoreboard.worker(slot) else {
            continue;
        };
        let mut reason = None;
        let mut dump_stacks = false;
        if let Some((thread, started)) = sb.oldest_request() {
            let running = now_ms.saturating_sub(started);
            if running > config.timeouts.request_ms {
                let what = sb.thread(thread).map(|t| t.describe()).unwrap_or_default();
                reason = Some(format!(
                    "request timeout: thread {thread} has been running {what} for {:.1} s (--request-timeout {} s)",
                    running as f64 / 1000.0,
                    config.timeouts.request_ms / 1000
                ));
                dump_stacks = true;
            }
        }
        if reason.is_none() && r.max_requests > 0 && sb.requests() >= w.request_limit {
            reason = Some(format!(
                "served {} requests (--maximum-requests {})",
                sb.requests(),
                r.max_requests
            ));
        }
        if reason.is_none()
            && r.restart_interval_ms > 0
            && w.spawned_at.elapsed() >= w.restart_after
        {
            reason = Some(format!(
                "ran {:.0} s (--restart-interval)",
                w.spawned_at.elapsed().as_secs_f64()
            ));
        }
        if reason.is_none() && sample_proc && (r.memory_limit_mb > 0 || r.cpu_time_limit_s > 0) {
            if let Some((rss_mb, cpu_s)) = usage(w.pid) {
                if r.memory_limit_mb > 0 && rss_mb > r.memory_limit_mb {
                    reason = Some(format!(
                        "resident memory {rss_mb} MB over --memory-limit {} MB",
                        r.memory_limit_mb
                    ));
                } else if r.cpu_time_limit_s > 0 && cpu_s >= r.cpu_time_limit_s {
                    reason = Some(format!(
                        "used {cpu_s} s of CPU (--cpu-time-limit {} s)",
                        r.cpu_time_limit_s
                    ));
                }
            }
        }
        if let Some(reason) = reason {
            verdicts.push(Verdict {
                slot,
                reason,
                dump_stacks,
            });
        }
    }
    verdicts
}

/// How long a worker may run before `--restart-interval` recycles it, with
/// up to 10 % random extra so a generation does not recycle at once.
pub fn restart_after(config: &ServerConfig) -> Duration {
    let base = config.recycle.restart_interval_ms;
    if base == 0 {
        return Duration::MAX;
    }
    Duration::from_millis(base + jitter(base / 10))
}

/// Ticks of the /proc sampler.
pub struct Sampler {
    last: Instant,
}

impl Sampler {
    pub fn new() -> Sampler {
        Sampler {
            last: Instant::now(),
        }
    }
    /// True once a second.
    pub fn due(&mut self) -> bool {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            true
        } else {
            false
        }
    }
}
