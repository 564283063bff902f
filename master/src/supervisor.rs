//! The supervisor: every decision about worker processes, made from the
//! worker table, what the scoreboard says and the time, and returned as a
//! list of actions. The event loop (`server`) gathers the inputs and
//! `effects` carries the actions out; nothing here touches a process, a
//! socket or a clock, and only the supervisor changes its worker table
//! (the dispatcher may count hand-offs and mark a channel closed), so
//! every decision (start-up, reload ordering, back-off, recycling,
//! liveness, the stop sequence) is unit-tested without processes.
//!
//! The shape is gunicorn's arbiter (reap, murder the overdue, manage the
//! count), with the decisions as data.

use crate::control::Control;
use crate::liveness::Beats;
use crate::reap::Death;
use rwsgi_shared::channel::Event;
use rwsgi_shared::config::{ServerConfig, Timeouts};
use rwsgi_shared::exit::ExitCode;
use std::time::{Duration, Instant};

mod policy;
mod tick;
mod workers;

pub use policy::{backoff, recycle_reason, stuck_after_ms, stuck_drain_deadline, Jitter};

pub use workers::{Phase, Worker, Workers};

/// Time a deadlocked worker gets to write its stack dump before SIGKILL.
pub const DUMP_GRACE: Duration = Duration::from_millis(500);
/// A fast stop kills what is still alive after this.
const FAST_STOP: Duration = Duration::from_secs(1);
/// A worker already killed is waited for this long (it cannot resist SIGKILL).
const KILLED: Duration = Duration::from_secs(3600);
/// A stopping worker left with nothing but stuck requests is killed after
/// this: time to hand its idle keep-alive connections back, not the
/// `--graceful-timeout` meant for requests that can still finish.
pub const STUCK_GRACE: Duration = Duration::from_millis(1000);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What `effects` is asked to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a worker of the current generation, then report it with
    /// [`Supervisor::spawned`].
    Spawn,
    /// Ask a worker to finish its requests and exit: over its channel, or
    /// with SIGTERM while it is still starting (nothing reads the channel yet).
    Stop {
        slot: usize,
        pid: u32,
        starting: bool,
        /// Replaced by a reload: it drains within `--eviction-timeout`.
        evict: bool,
    },
    /// SIGTERM: stop now (fast stop).
    Terminate { pid: u32 },
    /// SIGKILL.
    Kill { pid: u32 },
    /// The dump signal: faulthandler writes every thread's Python stack.
    DumpStacks { pid: u32 },
    /// Stop accepting; with `drain`, take what is already in the backlog first.
    CloseListener { drain: bool },
    /// Forget the connections waiting for a worker (fast stop).
    DropPending,
    Log {
        level: Level,
        /// (slot, pid)
        worker: Option<(usize, u32)>,
        message: String,
    },
    /// The first generation could not start: kill everything and exit.
    Fail { message: String, code: ExitCode },
    /// Every worker is gone after a stop.
    Exit(ExitCode),
}

/// How long a stopping worker has before it is killed, and why it would
/// be. A worker with a stuck request cannot drain that request: it gets
/// the drain period for the others, not the shutdown one on top. A reload
/// drains within `--eviction-timeout` (mod_wsgi's, for its graceful
/// restart), which defaults to `--graceful-timeout`.
pub fn stop_grace(t: &Timeouts, stuck: bool, evict: bool) -> (u64, &'static str) {
    let explicit_eviction = evict && t.eviction_ms > 0;
    let drain = if evict { t.eviction() } else { t.graceful_ms };
    match (stuck, explicit_eviction) {
        (true, false) => (
            drain,
            "a request was still stuck at the end of --graceful-timeout",
        ),
        (true, true) => (
            drain,
            "a request was still stuck at the end of --eviction-timeout",
        ),
        (false, false) => (
            drain + t.shutdown_ms,
            "did not stop within --graceful-timeout + --shutdown-timeout",
        ),
        (false, true) => (
            drain + t.shutdown_ms,
            "did not stop within --eviction-timeout + --shutdown-timeout",
        ),
    }
}

/// What the scoreboard (and /proc) says of one worker this turn.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub requests: u64,
    pub beats: Beats,
    /// The longest-running request: (thread, started at, in scoreboard ms, what).
    pub oldest_request: Option<(usize, u64, String)>,
    /// Resident MB and CPU seconds, when sampled this turn.
    pub usage: Option<(u64, u64)>,
    /// When each running request started, in scoreboard ms.
    pub running: Vec<u64>,
    /// `--inactivity-timeout`: requests that counted as activity (not
    /// under `--ignore-activity`): finished, and whether one runs.
    pub activity: u64,
    pub active_running: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Running,
    /// `--shutdown-delay`: still serving (not ready) until then.
    Delaying {
        until: Instant,
    },
    Stopping,
}

pub struct Supervisor {
    config: ServerConfig,
    workers: Workers,
    generation: u32,
    wanted: usize,
    max_workers: usize,
    state: RunState,
    ever_ready: bool,
    failures: u32,
    next_spawn_at: Instant,
    reload_started: Option<Instant>,
    out: Vec<Action>,
    /// What happened to workers so far, for the metrics.
    stats: Stats,
    /// Other processes of the master (`--service-script`) are still
    /// alive: a stop ends only once they are gone too.
    others_alive: bool,
}

/// Why workers exited, as the metrics label them.
pub use rwsgi_shared::scoreboard::EXIT_REASONS;

/// Counters of worker life events; they only go up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub starts: u64,
    /// Exits by reason, in the order of [`EXIT_REASONS`].
    pub exits: [u64; EXIT_REASONS.len()],
    pub request_timeouts: u64,
}

impl Stats {
    fn count_exit(&mut self, reason: &str) {
        if let Some(i) = EXIT_REASONS.iter().position(|r| *r == reason) {
            self.exits[i] += 1;
        }
    }
}

impl Supervisor {
    pub fn new(config: &ServerConfig, max_workers: usize, now: Instant) -> Supervisor {
        Supervisor {
            config: config.clone(),
            workers: Workers::new(max_workers),
            generation: 1,
            wanted: config.processes,
            max_workers,
            state: RunState::Running,
            ever_ready: false,
            failures: 0,
            next_spawn_at: now,
            reload_started: None,
            out: Vec::new(),
            stats: Stats::default(),
            others_alive: false,
        }
    }

    /// Whether processes other than workers (services) are still alive;
    /// set before each turn, so a stop waits for them.
    pub fn set_others_alive(&mut self, alive: bool) {
        self.others_alive = alive;
    }

    pub fn is_stopping(&self) -> bool {
        self.state == RunState::Stopping
    }

    pub fn workers(&self) -> &Workers {
        &self.workers
    }

    /// The worker table for the dispatcher, which can only count the
    /// connections it sends and mark a channel closed (see `workers`).
    pub fn workers_for_dispatch(&mut self) -> &mut Workers {
        &mut self.workers
    }

    /// The generation new workers are started for.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// How many workers should serve (`--processes`, SIGTTIN, SIGTTOU).
    pub fn wanted(&self) -> usize {
        self.wanted
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Every wanted worker is up and ready (none starting or stopping).
    pub fn all_wanted_ready(&self) -> bool {
        self.workers.iter().count() >= self.wanted
            && self.workers.iter().all(|(_, w)| w.phase == Phase::Ready)
    }

    /// A stop has begun (maybe still within `--shutdown-delay`): the
    /// server is no longer ready for new traffic.
    pub fn shutting_down(&self) -> bool {
        self.state != RunState::Running
    }

    fn log(&mut self, level: Level, worker: Option<(usize, u32)>, message: impl Into<String>) {
        self.out.push(Action::Log {
            level,
            worker,
            message: message.into(),
        });
    }

    fn actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    // --- inputs ---

    /// A signal, as the operator meant it.
    pub fn control(&mut self, control: Control, now: Instant) -> Vec<Action> {
        match control {
            Control::GracefulStop => match self.state {
                RunState::Running if self.config.timeouts.shutdown_delay_ms > 0 => {
                    let delay = Duration::from_millis(self.config.timeouts.shutdown_delay_ms);
                    self.state = RunState::Delaying { until: now + delay };
                    let msg = format!(
                        "SIGTERM: not ready any more; serving for {:.1} s (--shutdown-delay) before stopping; a second SIGTERM stops now",
                        delay.as_secs_f64()
                    );
                    self.log(Level::Info, None, msg);
                }
                _ => self.graceful_stop(now),
            },
            // --debug-mode: Ctrl-C on the terminal stops as Apache's one
            // process does, with the exit handlers (the coverage report);
            // a second one stops at once.
            Control::FastStop if self.config.debug.is_some() && !self.is_stopping() => {
                self.graceful_stop(now)
            }
            Control::FastStop => self.fast_stop(now),
            Control::Reload => self.reload(now, "reloading: starting a new generation of workers"),
            Control::AddWorker if !self.is_stopping() && self.wanted < self.max_workers / 2 => {
                self.wanted += 1;
                let msg = format!("SIGTTIN: one more worker ({} wanted)", self.wanted);
                self.log(Level::Info, None, msg);
            }
            Control::RemoveWorker if !self.is_stopping() && self.wanted > 1 => {
                self.wanted -= 1;
                let msg = format!("SIGTTOU: one fewer worker ({} wanted)", self.wanted);
                self.log(Level::Info, None, msg);
            }
            Control::AddWorker | Control::RemoveWorker | Control::ChildExited => {}
        }
        self.actions()
    }

    /// A worker was started for `slot`, with its random recycling jitter.
    pub fn spawned(&mut self, slot: usize, pid: u32, now: Instant, jitter: Jitter) {
        let mut w = Worker::new(pid, self.generation, now);
        let r = self.config.recycle;
        w.request_limit = match r.max_requests {
            0 => u64::MAX,
            n => n + jitter.requests,
        };
        w.restart_after = match r.restart_interval_ms {
            0 => Duration::MAX,
            ms => Duration::from_millis(ms + jitter.restart_ms),
        };
        self.workers.insert(slot, w);
        self.stats.starts += 1;
        let msg = format!("started worker (generation {})", self.generation);
        self.log(Level::Info, Some((slot, pid)), msg);
    }

    /// What a worker said over its channel.
    pub fn event(&mut self, slot: usize, event: &Event, now: Instant) -> Vec<Action> {
        let Some(w) = self.workers.get_mut(slot) else {
            return Vec::new();
        };
        let (pid, generation) = (w.pid, w.generation);
        match event {
            Event::Ready if w.phase == Phase::Starting => {
                w.phase = Phase::Ready;
                let ms = now.duration_since(w.spawned_at).as_millis();
                self.failures = 0;
                self.log(
                    Level::Info,
                    Some((slot, pid)),
                    format!("worker ready in {ms} ms"),
                );
                self.check_server_ready();
            }
            Event::Ready => {}
            Event::ReloadRequested => {
                // Every worker of a generation may ask; the first request
                // reloads, the others come from a generation already replaced.
                if generation == self.generation && !self.is_stopping() {
                    self.reload(
                        now,
                        "a file of the application changed (--reload-on-changes): starting a new generation",
                    );
                }
            }
            Event::Failed(why) => {
                let msg = format!("worker cannot go on: {why}");
                self.log(Level::Error, Some((slot, pid)), msg);
            }
            // Only the template's channel carries it (see `template`).
            Event::Forked { .. } => {}
        }
        self.actions()
    }

    /// A worker reaped while everything is killed after [`Action::Fail`]:
    /// off the table, with nothing decided (the master is exiting).
    pub fn forget_reaped(&mut self, pid: u32) {
        if let Some(slot) = self.workers.slot_of_pid(pid) {
            self.workers.remove(slot);
        }
    }

    /// A worker process ended.
    pub fn died(&mut self, slot: usize, death: Death, now: Instant) -> Vec<Action> {
        let Some(w) = self.workers.remove(slot) else {
            return Vec::new();
        };
        let reason = if w.exit_reason.is_empty() || (w.killed.is_none() && !w.is_stopping()) {
            "crash"
        } else {
            w.exit_reason
        };
        self.stats.count_exit(reason);
        let who = Some((slot, w.pid));
        if let Some(why) = &w.killed {
            self.log(
                Level::Warn,
                who,
                format!("worker killed by the master: {why}"),
            );
        } else if w.is_stopping() {
            self.log(
                Level::Info,
                who,
                format!("worker stopped: {}", death.describe()),
            );
        } else {
            self.log(
                Level::Error,
                who,
                format!("worker died: {}", death.describe()),
            );
            if !self.ever_ready {
                self.first_generation_failed(slot, death);
            } else {
                self.failures += 1;
                let backoff = backoff(self.failures);
                self.next_spawn_at = now + backoff;
                if self.failures > 1 {
                    let msg = format!(
                        "backing off {:.1} s before replacing the worker ({} failures in a row)",
                        backoff.as_secs_f64(),
                        self.failures
                    );
                    self.log(Level::Warn, None, msg);
                }
            }
        }
        self.actions()
    }

    fn first_generation_failed(&mut self, slot: usize, death: Death) {
        let code = match death.exit_code() {
            Some(ExitCode::Ok) | None => ExitCode::Failure,
            Some(code) => code,
        };
        if code == ExitCode::AppLoad {
            self.log(
                Level::Error,
                None,
                "the application could not be loaded (traceback above); not starting",
            );
        }
        self.out.push(Action::Fail {
            message: format!("cannot start: worker {slot} {}", death.describe()),
            code,
        });
    }

    /// One turn: deadlines, liveness, recycling, the number of workers.
    pub fn tick(&mut self, now: Instant, now_ms: u64, readings: &[Option<Reading>]) -> Vec<Action> {
        if let RunState::Delaying { until } = self.state {
            if now >= until {
                self.graceful_stop(now);
            }
        }
        self.enforce_deadlines(now);
        self.watch_liveness(now, now_ms, readings);
        self.recycle(now, now_ms, readings);
        self.reconcile(now);
        self.cut_stuck_drains(now, now_ms, readings);
        if self.is_stopping() && self.workers.is_empty() && !self.others_alive {
            self.log(Level::Info, None, "stopped");
            self.out.push(Action::Exit(ExitCode::Ok));
        }
        self.actions()
    }

    // --- decisions ---

    fn graceful_stop(&mut self, now: Instant) {
        if self.is_stopping() {
            return;
        }
        self.log(
            Level::Info,
            None,
            "SIGTERM: stopping gracefully (finishing in-flight requests)",
        );
        // Connections already in the kernel backlog were promised service.
        self.out.push(Action::CloseListener { drain: true });
        self.state = RunState::Stopping;
        let slots: Vec<usize> = self.workers.iter().map(|(s, _)| s).collect();
        for slot in slots {
            self.stop_worker(slot, "server stopping", "shutdown", now);
        }
    }

    fn fast_stop(&mut self, now: Instant) {
        self.log(Level::Info, None, "stopping now");
        self.out.push(Action::CloseListener { drain: false });
        self.out.push(Action::DropPending);
        self.state = RunState::Stopping;
        for (_, w) in self.workers.iter_mut() {
            self.out.push(Action::Terminate { pid: w.pid });
            if w.exit_reason.is_empty() {
                w.exit_reason = "shutdown";
            }
            w.phase = Phase::Stopping {
                deadline: now + FAST_STOP,
            };
            w.overdue = "still running a second after a fast stop";
        }
    }

    fn reload(&mut self, now: Instant, why: &str) {
        if self.is_stopping() {
            return;
        }
        self.generation = self.generation.wrapping_add(1);
        self.reload_started = Some(now);
        // An operator asking for a reload (or a fixed save) should not wait
        // out the back-off of earlier failures.
        self.failures = 0;
        self.next_spawn_at = now;
        let msg = format!("{why} (generation {})", self.generation);
        self.log(Level::Info, None, msg);
    }

    fn stop_worker(&mut self, slot: usize, why: &str, kind: &'static str, now: Instant) {
        let t = self.config.timeouts;
        let Some(w) = self.workers.get_mut(slot) else {
            return;
        };
        if w.is_stopping() {
            return;
        }
        if w.exit_reason.is_empty() {
            w.exit_reason = kind;
        }
        let evict = kind == "reload";
        let (grace, overdue) = stop_grace(&t, w.stuck, evict);
        w.overdue = overdue;
        let starting = w.phase == Phase::Starting;
        w.phase = Phase::Stopping {
            deadline: now + Duration::from_millis(grace),
        };
        let (pid, generation) = (w.pid, w.generation);
        self.out.push(Action::Stop {
            slot,
            pid,
            starting,
            evict,
        });
        let msg = format!("stopping worker (generation {generation}): {why}");
        self.log(Level::Info, Some((slot, pid)), msg);
    }

    fn check_server_ready(&mut self) {
        if !self.ever_ready
            && self.workers.serving_count(self.generation) >= self.wanted
            && self.workers.iter().all(|(_, w)| w.phase != Phase::Starting)
        {
            self.ever_ready = true;
            let msg = format!(
                "server ready ({} workers x {} threads)",
                self.wanted, self.config.threads
            );
            self.log(Level::Info, None, msg);
        }
    }
}

#[cfg(test)]
mod tests;
