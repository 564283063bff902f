//! What the container allows: the cgroup's CPU quota and memory limit
//! (cgroup v2, else v1) and the CPU affinity, for `--processes auto` and
//! the start-up summary. The parsers take a root directory, so they are
//! tested on fixture layouts.

use std::path::{Path, PathBuf};

/// Limits read from the cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// CPUs the quota allows (`cpu.max` 200000 100000 → 2.0); `None`: no quota.
    pub cpus: Option<f64>,
    /// Bytes; `None`: no limit.
    pub memory: Option<u64>,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The directory of this process's cgroup under `root` (v2: the `0::`
/// line of /proc/self/cgroup), falling back to `root` itself, which is what
/// a container sees as its own cgroup.
fn v2_dirs(root: &Path, proc_cgroup: Option<&str>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(own) = proc_cgroup
        .and_then(|c| c.lines().find_map(|l| l.strip_prefix("0::")))
        .map(|p| p.trim_start_matches('/'))
        .filter(|p| !p.is_empty())
    {
        dirs.push(root.join(own));
    }
    dirs.push(root.to_path_buf());
    dirs
}

/// Reads the limits under `root` (normally /sys/fs/cgroup).
pub fn limits_at(root: &Path, proc_cgroup: Option<&str>) -> Limits {
    let mut limits = Limits::default();
    for dir in v2_dirs(root, proc_cgroup) {
        if let Some(max) = read(&dir.join("cpu.max")) {
            limits.cpus = parse_cpu_max(&max);
            limits.memory = read(&dir.join("memory.max")).and_then(|m| parse_bytes(&m));
            return limits;
        }
    }
    // cgroup v1: separate hierarchies.
    let quota = read(&root.join("cpu/cpu.cfs_quota_us")).and_then(|q| q.parse::<i64>().ok());
    let period = read(&root.join("cpu/cpu.cfs_period_us")).and_then(|p| p.parse::<i64>().ok());
    if let (Some(q), Some(p)) = (quota, period) {
        if q > 0 && p > 0 {
            limits.cpus = Some(q as f64 / p as f64);
        }
    }
    limits.memory = read(&root.join("memory/memory.limit_in_bytes")).and_then(|m| parse_bytes(&m));
    limits
}

/// This process's limits.
pub fn limits() -> Limits {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok();
    limits_at(Path::new("/sys/fs/cgroup"), own.as_deref())
}

/// `cpu.max`: `max PERIOD` (no quota) or `QUOTA PERIOD`.
fn parse_cpu_max(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let quota = it.next()?.parse::<f64>().ok()?;
    let period = it
        .next()
        .and_then(|p| p.parse::<f64>().ok())
        .unwrap_or(100_000.0);
    (quota > 0.0 && period > 0.0).then_some(quota / period)
}

/// A byte limit; `max`, or v1's "no limit" (a page-rounded i64::MAX), is none.
fn parse_bytes(s: &str) -> Option<u64> {
    let n = s.parse::<u64>().ok()?;
    (n < (1 << 60)).then_some(n)
}

/// CPUs this process may run on (affinity).
pub fn affinity_cpus() -> usize {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|&i| set.is_set(i).unwrap_or(false))
                .count()
        })
        .unwrap_or(1)
        .max(1)
}

/// `--processes auto`: one worker per CPU the quota and the affinity allow
/// (a fractional quota rounds up: 1.5 CPUs get 2 processes).
pub fn auto_processes(limits: &Limits, affinity: usize) -> u32 {
    let by_quota = limits
        .cpus
        .map_or(usize::MAX, |c| c.ceil().max(1.0) as usize);
    by_quota
        .min(affinity)
        .clamp(1, crate::cli::MAX_PROCESSES as usize) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rwsgi-cgroup-{}-{}",
            std::process::id(),
            files.len() * 31 + files.first().map_or(0, |f| f.1.len())
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, content) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, content).expect("write");
        }
        dir
    }

    #[test]
    fn cgroup_v2_quota_and_memory() {
        let root = fixture(&[
            ("cpu.max", "150000 100000\n"),
            ("memory.max", "536870912\n"),
        ]);
        let l = limits_at(&root, None);
        assert_eq!(l.cpus, Some(1.5));
        assert_eq!(l.memory, Some(536_870_912));
        assert_eq!(auto_processes(&l, 8), 2);
        assert_eq!(auto_processes(&l, 1), 1);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn cgroup_v2_without_limits_and_in_a_nested_group() {
        let root = fixture(&[
            ("cpu.max", "max 100000\n"),
            ("memory.max", "max\n"),
            ("kubepods/pod1/cpu.max", "400000 100000\n"),
        ]);
        assert_eq!(limits_at(&root, None), Limits::default());
        let l = limits_at(&root, Some("0::/kubepods/pod1\n"));
        assert_eq!(l.cpus, Some(4.0));
        assert_eq!(auto_processes(&limits_at(&root, None), 3), 3);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn cgroup_v1_quota_and_memory() {
        let root = fixture(&[
            ("cpu/cpu.cfs_quota_us", "200000\n"),
            ("cpu/cpu.cfs_period_us", "100000\n"),
            ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
        ]);
        let l = limits_at(&root, None);
        assert_eq!(l.cpus, Some(2.0));
        assert_eq!(l.memory, None);
        let _ = std::fs::remove_dir_all(root);
        let root = fixture(&[
            ("cpu/cpu.cfs_quota_us", "-1\n"),
            ("cpu/cpu.cfs_period_us", "100000\n"),
            ("memory/memory.limit_in_bytes", "1073741824\n"),
        ]);
        let l = limits_at(&root, None);
        assert_eq!(l.cpus, None);
        assert_eq!(l.memory, Some(1 << 30));
        let _ = std::fs::remove_dir_all(root);
    }
}
