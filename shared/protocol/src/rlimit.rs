//! The open-files limit. Idle and slow connections cost rwsgi a descriptor
//! each and no thread, so the number of descriptors, not a small fixed
//! count, bounds how many clients it can hold: the soft limit is raised to
//! the hard one at start (master and workers), as nginx's
//! `worker_rlimit_nofile` and most container runtimes expect.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors a worker keeps for itself: stdio, the scoreboard, the
/// channel, pollers, static files in flight, and whatever the application
/// opens (database connections, log files).
pub const RESERVED: u64 = 256;

/// The most connections one worker is asked to hold by default, whatever
/// the limit: beyond it memory, not descriptors, is the bound.
pub const MAX_PER_WORKER: u64 = 65_536;

/// The (soft, hard) open-files limit now.
pub fn nofile() -> (u64, u64) {
    getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024))
}

/// Raises the soft limit to the hard one. Returns (before, after).
pub fn raise_nofile() -> (u64, u64) {
    let (soft, hard) = nofile();
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return (soft, hard);
    }
    (soft, soft)
}

/// Connections one worker can hold with `limit` descriptors.
pub fn connections_per_worker(limit: u64) -> u64 {
    limit.saturating_sub(RESERVED).clamp(64, MAX_PER_WORKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_worker_connections_leave_a_reserve() {
        assert_eq!(connections_per_worker(1024), 768);
        assert_eq!(connections_per_worker(100), 64);
        assert_eq!(connections_per_worker(1 << 20), MAX_PER_WORKER);
    }
}
