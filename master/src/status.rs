//! `rwsgi status`: reads a running server's scoreboard from outside.
//!
//! The scoreboard is a memfd held open by the master, so another process
//! (with the same user, or root) can open it through /proc/PID/fd.

use rwsgi_shared::scoreboard::{Scoreboard, ThreadState, WorkerState, MAX_THREADS};
use std::fmt::Write as _;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no running rwsgi master found; pass --pid")]
    NoMaster,
    #[error("several rwsgi masters are running ({0}); pass --pid")]
    Ambiguous(String),
    #[error("process {0} has no rwsgi scoreboard (is it an rwsgi master?)")]
    NoScoreboard(u32),
    #[error("cannot read the scoreboard of process {0}: {1}")]
    Open(u32, std::io::Error),
    #[error("{0}")]
    Layout(#[from] rwsgi_shared::scoreboard::ScoreboardError),
}

fn masters() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let mut args = c.split('\0');
                    let exe = args.next().unwrap_or_default();
                    exe.rsplit('/').next() == Some("rwsgi") && args.next() == Some("start-server")
                })
                .unwrap_or(false)
        })
        .collect()
}

fn open(pid: u32) -> Result<Scoreboard, StatusError> {
    let dir =
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| StatusError::Open(pid, e))?;
    for entry in dir.flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if target
            .to_string_lossy()
            .starts_with("/memfd:rwsgi-scoreboard")
        {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(entry.path())
                .map_err(|e| StatusError::Open(pid, e))?;
            return Ok(Scoreboard::attach(file.into())?);
        }
    }
    Err(StatusError::NoScoreboard(pid))
}

/// The status report of the master `pid` (or the only master running).
pub fn report(pid: Option<u32>) -> Result<String, StatusError> {
    let pid = match pid {
        Some(p) => p,
        None => match masters().as_slice() {
            [] => return Err(StatusError::NoMaster),
            [one] => *one,
            many => {
                return Err(StatusError::Ambiguous(
                    many.iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                ))
            }
        },
    };
    let sb = open(pid)?;
    let h = sb.header();
    let now = rwsgi_shared::time::now_ms();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rwsgi master {}: up {}, generation {}, {} workers wanted",
        // Given a worker's pid, the board is still its master's.
        h.master_pid(),
        age(now, h.started_at_ms()),
        h.generation(),
        h.wanted_workers()
    );
    let _ = writeln!(
        out,
        "slot  pid      gen  state     busy/threads  queued  conns  requests  up       heartbeat"
    );
    let mut running = Vec::new();
    for (slot, w) in sb.workers() {
        if w.pid() == 0 {
            continue;
        }
        let state = match w.state() {
            WorkerState::Starting => "starting",
            WorkerState::Ready => "ready",
            WorkerState::Draining => "draining",
            WorkerState::Exited => "exited",
            WorkerState::Empty => "empty",
        };
        let _ = writeln!(
            out,
            "{slot:<5} {:<8} {:<4} {state:<9} {:>4}/{:<8} {:>6} {:>6} {:>9}  {:<8} {}",
            w.pid(),
            w.generation(),
            w.busy_threads(),
            w.threads(),
            w.queued(),
            w.connections(),
            w.requests(),
            age(now, w.spawned_at_ms()),
            heartbeat(now, w),
        );
        for t in 0..(w.threads() as usize).min(MAX_THREADS) {
            if let Some(th) = w.thread(t) {
                if th.state() == ThreadState::Busy {
                    let secs = now.saturating_sub(th.request_started_ms()) as f64 / 1000.0;
                    running.push(format!(
                        "  worker {slot} thread {t}: {} for {secs:.1} s",
                        th.describe()
                    ));
                }
            }
        }
    }
    if !running.is_empty() {
        let _ = writeln!(out, "running requests:");
        for r in running {
            let _ = writeln!(out, "{r}");
        }
    }
    Ok(out)
}

/// How long ago a scoreboard time was, for people: `42 s`, `3 min`, `2 h`.
fn age(now_ms: u64, then_ms: u64) -> String {
    if then_ms == 0 {
        return "-".to_owned();
    }
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// The older of a worker's two heartbeats (the liveness the master judges).
fn heartbeat(now_ms: u64, w: &rwsgi_shared::scoreboard::WorkerSlot) -> String {
    let oldest = [w.heartbeat_ms(), w.python_heartbeat_ms()]
        .into_iter()
        .filter(|&b| b != 0)
        .min();
    match oldest {
        Some(b) => format!("{:.1} s ago", now_ms.saturating_sub(b) as f64 / 1000.0),
        None => "-".to_owned(),
    }
}
