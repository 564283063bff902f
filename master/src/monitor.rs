//! What the supervisor's decisions need from outside: a worker's memory
//! and CPU from /proc (sampled once a second), and random jitter.

use nix::unistd::SysconfVar;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

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
pub fn usage(pid: u32) -> Option<(u64, u64)> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = sysconf(SysconfVar::PAGE_SIZE).max(4096);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = sysconf(SysconfVar::CLK_TCK).max(1);
    Some((pages * page / (1024 * 1024), ticks / hz))
}

fn sysconf(var: SysconfVar) -> u64 {
    nix::unistd::sysconf(var)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0)
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
