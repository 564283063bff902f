//! `mod_wsgi.server_metrics()` (with `--server-metrics`): the scoreboard as
//! mod_wsgi lays it out from Apache's, with mod_wsgi's keys where rwsgi
//! has the value. Times are seconds since the Unix epoch, as in mod_wsgi;
//! the scoreboard keeps monotonic times, converted here.
//!
//! What rwsgi does not record is left out rather than made up: a thread's
//! `bytes_served`, `stop_time`, `last_used` and `vhost`. Only the worker
//! slots in use are listed (Apache lists every slot up to `server_limit`),
//! and each worker's threads up to its thread count.

use crate::scoreboard::{Scoreboard, ThreadState, WorkerState, MAX_THREADS, MAX_WORKERS};

/// The server as `server_metrics()` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMetrics {
    pub server_limit: u32,
    pub thread_limit: u32,
    pub running_generation: u32,
    pub restart_time: f64,
    pub current_time: f64,
    pub running_time: u64,
    pub processes: Vec<Process>,
}

/// One worker process (Apache's `process_score`).
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub process_num: u32,
    pub pid: u32,
    pub generation: u32,
    /// Draining for a reload or stop.
    pub quiescing: bool,
    pub workers: Vec<Thread>,
}

/// One request thread (Apache's `worker_score`).
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub thread_num: u32,
    pub generation: u32,
    /// Apache's status letter: `_` waiting, `W` running a request, `G`
    /// waiting in a draining worker, `S` in a worker still starting.
    pub status: &'static str,
    /// Requests this thread has served.
    pub access_count: u64,
    /// When the running request began (only while one runs).
    pub start_time: Option<f64>,
    /// The current or last request's client address and `METHOD path`
    /// (once the thread has had a request).
    pub client: Option<String>,
    pub request: Option<String>,
}

/// Reads the model; `now_ms` on the monotonic clock the scoreboard uses,
/// `wall_ms` the same instant on the wall clock.
pub fn read(sb: &Scoreboard, now_ms: u64, wall_ms: u64) -> ServerMetrics {
    let epoch =
        |mono_ms: u64| wall_ms.saturating_sub(now_ms.saturating_sub(mono_ms)) as f64 / 1000.0;
    let h = sb.header();
    let processes = sb
        .workers()
        .filter(|(_, w)| w.pid() != 0)
        .map(|(slot, w)| {
            let state = if w.attached() {
                w.state()
            } else {
                WorkerState::Starting
            };
            let threads = if w.attached() {
                w.threads() as usize
            } else {
                0
            };
            let workers = (0..threads.min(MAX_THREADS))
                .filter_map(|t| w.thread(t).map(|th| (t, th)))
                .map(|(t, th)| {
                    let busy = th.state() == ThreadState::Busy;
                    let used = busy || th.requests() > 0;
                    Thread {
                        thread_num: t as u32,
                        generation: w.generation(),
                        status: match (busy, state) {
                            (true, _) => "W",
                            (false, WorkerState::Starting) => "S",
                            (false, WorkerState::Draining | WorkerState::Exited) => "G",
                            (false, _) => "_",
                        },
                        access_count: th.requests(),
                        start_time: (busy && th.request_started_ms() != 0)
                            .then(|| epoch(th.request_started_ms())),
                        client: used.then(|| th.client().ip().to_string()),
                        request: used.then(|| th.describe()),
                    }
                })
                .collect();
            Process {
                process_num: slot as u32,
                pid: w.pid(),
                generation: w.generation(),
                quiescing: matches!(state, WorkerState::Draining | WorkerState::Exited),
                workers,
            }
        })
        .collect();
    ServerMetrics {
        server_limit: MAX_WORKERS as u32,
        thread_limit: MAX_THREADS as u32,
        running_generation: h.generation(),
        restart_time: epoch(h.started_at_ms()),
        current_time: wall_ms as f64 / 1000.0,
        running_time: now_ms.saturating_sub(h.started_at_ms()) / 1000,
        processes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slots_in_use_are_listed_with_their_threads() {
        let master = Scoreboard::create(1).expect("create");
        let worker =
            Scoreboard::attach(master.fd().try_clone_to_owned().expect("dup")).expect("attach");
        let epoch = master.worker(2).expect("slot").claim(3, 2);
        master.worker(2).expect("slot").set_pid(4242);
        let slot = worker.worker(2).expect("slot");
        assert!(slot.attach(epoch));
        slot.set_state(WorkerState::Ready);
        slot.begin_request(0, "GET", "/a", "10.0.0.9:1234".parse().expect("addr"));
        slot.end_request(0);
        slot.begin_request(1, "POST", "/b", "127.0.0.1:99".parse().expect("addr"));
        let now = crate::time::now_ms();
        let m = read(&master, now + 2000, 1_000_000_000_000);
        assert_eq!(m.server_limit, MAX_WORKERS as u32);
        assert_eq!(m.running_time, 2);
        assert_eq!(m.processes.len(), 1);
        let p = &m.processes[0];
        assert_eq!(
            (p.process_num, p.pid, p.generation, p.quiescing),
            (2, 4242, 3, false)
        );
        assert_eq!(p.workers.len(), 2);
        let (idle, busy) = (&p.workers[0], &p.workers[1]);
        assert_eq!((idle.status, idle.access_count), ("_", 1));
        assert_eq!(idle.client.as_deref(), Some("10.0.0.9"));
        assert_eq!(idle.request.as_deref(), Some("GET /a"));
        assert_eq!(idle.start_time, None);
        assert_eq!(
            (busy.status, busy.request.as_deref()),
            ("W", Some("POST /b"))
        );
        let started = busy.start_time.expect("a start time");
        assert!((started - (1_000_000_000.0 - 2.0)).abs() < 0.5, "{started}");
    }

    #[test]
    fn a_draining_worker_is_quiescing() {
        let sb = Scoreboard::create(1).expect("create");
        let w = sb.worker(0).expect("slot");
        let epoch = w.claim(1, 1);
        w.set_pid(7);
        assert!(w.attach(epoch));
        w.set_state(WorkerState::Draining);
        let m = read(&sb, crate::time::now_ms(), 0);
        assert!(m.processes[0].quiescing);
        assert_eq!(m.processes[0].workers[0].status, "G");
    }
}
