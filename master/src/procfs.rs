//! Readings from /proc: a worker's memory and CPU time (for recycling
//! and the metrics), and the listener's accept queue (for the metrics).

use nix::unistd::SysconfVar;

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

/// Resident memory in bytes (for the metrics).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * sysconf(SysconfVar::PAGE_SIZE).max(4096))
}

/// Connections waiting in the accept queue of the listener on `port`
/// (the `rx_queue` of a LISTEN socket in /proc/net/tcp and tcp6).
pub fn backlog(port: u16) -> Option<u64> {
    let want = format!(":{port:04X}");
    let mut found = None;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl, local_address, rem_address, st, tx_queue:rx_queue
            let (Some(local), Some(state), Some(queues)) = (f.get(1), f.get(3), f.get(4)) else {
                continue;
            };
            if *state == "0A" && local.ends_with(&want) {
                let rx = queues.split(':').nth(1)?;
                *found.get_or_insert(0) += u64::from_str_radix(rx, 16).ok()?;
            }
        }
    }
    found
}

fn sysconf(var: SysconfVar) -> u64 {
    nix::unistd::sysconf(var)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0)
}
