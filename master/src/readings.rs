//! What the supervisor is told of each worker every turn: what its slot in
//! the scoreboard says, and once a second (when `--memory-limit` or
//! `--cpu-time-limit` asks for it) its memory and CPU time from /proc.

use crate::liveness::Beats;
use crate::procfs;
use crate::supervisor::{Reading, Workers};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::scoreboard::{Scoreboard, ThreadState, MAX_WORKERS};
use std::time::{Duration, Instant};

pub struct Readings {
    /// A worker's memory or CPU time can recycle it.
    usage_limited: bool,
    /// When /proc was last due.
    sampled: Instant,
}

impl Readings {
    pub fn new(config: &ServerConfig) -> Readings {
        Readings {
            usage_limited: config.recycle.memory_limit_mb > 0
                || config.recycle.cpu_time_limit_s > 0,
            sampled: Instant::now(),
        }
    }

    /// True once a second.
    fn due(&mut self) -> bool {
        if self.sampled.elapsed() >= Duration::from_secs(1) {
            self.sampled = Instant::now();
            true
        } else {
            false
        }
    }

    /// This turn's readings, by slot.
    pub fn read(&mut self, scoreboard: &Scoreboard, workers: &Workers) -> Vec<Option<Reading>> {
        let sample = self.due() && self.usage_limited;
        let mut readings: Vec<Option<Reading>> = (0..MAX_WORKERS).map(|_| None).collect();
        for (slot, w) in workers.iter() {
            // Nothing is read of a worker that has not attached to its slot
            // yet: what is there belongs to the slot's previous occupant.
            let Some((sb, beats)) = scoreboard
                .worker(slot)
                .and_then(|sb| Some((sb, Beats::read(sb)?)))
            else {
                continue;
            };
            readings[slot] = Some(Reading {
                requests: sb.requests(),
                beats,
                oldest_request: sb.oldest_request().map(|(thread, started)| {
                    let what = sb.thread(thread).map(|t| t.describe()).unwrap_or_default();
                    (thread, started, what)
                }),
                usage: if sample { procfs::usage(w.pid) } else { None },
                running: (0..sb.threads() as usize)
                    .filter_map(|i| sb.thread(i))
                    .filter(|t| t.state() == ThreadState::Busy)
                    .map(|t| t.request_started_ms())
                    .filter(|started| *started > 0)
                    .collect(),
                activity: sb.activity().0,
                active_running: sb.activity().1 > 0,
            });
        }
        readings
    }
}
