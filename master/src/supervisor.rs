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
use crate::liveness::{self, Beats, Health};
use crate::reap::Death;
use rwsgi_shared::channel::Event;
use rwsgi_shared::config::{ServerConfig, Timeouts};
use rwsgi_shared::exit::ExitCode;
use std::time::{Duration, Instant};

mod workers;

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

    /// Start-up timeouts and stop deadlines.
    fn enforce_deadlines(&mut self, now: Instant) {
        let startup = Duration::from_millis(self.config.timeouts.startup_ms);
        let mut kills = Vec::new();
        for (slot, w) in self.workers.iter_mut() {
            let why = match w.phase {
                Phase::Starting if now.duration_since(w.spawned_at) > startup => format!(
                    "did not become ready within --startup-timeout ({} s)",
                    startup.as_secs_f64()
                ),
                Phase::Stopping { deadline } if now > deadline => {
                    if w.killed.is_some() {
                        String::new()
                    } else {
                        w.overdue.to_owned()
                    }
                }
                _ => continue,
            };
            if !why.is_empty() {
                kills.push((slot, w.pid, why.clone()));
                w.killed = Some(why);
            }
            if w.phase == Phase::Starting {
                w.exit_reason = "startup-timeout";
            }
            self.out.push(Action::Kill { pid: w.pid });
            w.phase = Phase::Stopping {
                deadline: now + KILLED,
            };
        }
        for (slot, pid, why) in kills {
            self.log(
                Level::Warn,
                Some((slot, pid)),
                format!("killing worker: {why}"),
            );
        }
    }

    /// Workers whose heartbeat stopped get no new connections; past
    /// `--deadlock-timeout` their stacks are dumped and they are killed
    /// (and replaced, as they no longer count as serving).
    fn watch_liveness(&mut self, now: Instant, now_ms: u64, readings: &[Option<Reading>]) {
        let deadlock_ms = self.config.timeouts.deadlock_ms;
        let mut logs = Vec::new();
        for (slot, w) in self.workers.iter_mut() {
            if w.phase != Phase::Ready {
                continue;
            }
            let Some(Some(reading)) = readings.get(slot) else {
                continue;
            };
            match liveness::judge(now_ms, reading.beats, deadlock_ms) {
                Health::Alive if w.unresponsive => {
                    w.unresponsive = false;
                    logs.push((
                        Level::Info,
                        slot,
                        w.pid,
                        "worker responsive again".to_owned(),
                    ));
                }
                Health::Alive | Health::Unresponsive { .. } if w.unresponsive => {}
                Health::Alive => {}
                Health::Unresponsive { ms, which } => {
                    w.unresponsive = true;
                    logs.push((
                        Level::Warn,
                        slot,
                        w.pid,
                        format!(
                            "worker unresponsive: no heartbeat from its {which} for {:.1} s; no new connections go to it",
                            ms as f64 / 1000.0
                        ),
                    ));
                }
                Health::Deadlocked { ms, which } => {
                    let why = format!(
                        "no heartbeat from its {which} for {:.1} s (--deadlock-timeout {} s)",
                        ms as f64 / 1000.0,
                        deadlock_ms as f64 / 1000.0
                    );
                    logs.push((
                        Level::Error,
                        slot,
                        w.pid,
                        format!("worker deadlocked, {why}: dumping its stacks, then killing it"),
                    ));
                    self.out.push(Action::DumpStacks { pid: w.pid });
                    w.unresponsive = true;
                    w.exit_reason = "deadlock";
                    w.killed = Some(why);
                    w.phase = Phase::Stopping {
                        deadline: now + DUMP_GRACE,
                    };
                }
            }
        }
        for (level, slot, pid, msg) in logs {
            self.log(level, Some((slot, pid)), msg);
        }
    }

    /// Marks workers for replacement. One recycles at a time so capacity
    /// never dips; a request timeout is acted on at once.
    fn recycle(&mut self, now: Instant, now_ms: u64, readings: &[Option<Reading>]) {
        if self.is_stopping() {
            return;
        }
        let mut retiring = self
            .workers
            .iter()
            .filter(|(_, w)| w.retiring.is_some() && !w.is_stopping())
            .count();
        let mut logs = Vec::new();
        for (slot, w) in self.workers.iter_mut() {
            if w.phase != Phase::Ready || w.retiring.is_some() {
                continue;
            }
            let Some(Some(reading)) = readings.get(slot) else {
                continue;
            };
            if reading.activity != w.active_requests || reading.active_running {
                w.active_requests = reading.activity;
                w.active_at = now;
            }
            let Some(verdict) = recycle_reason(&self.config, w, reading, now, now_ms) else {
                continue;
            };
            if !verdict.request_timeout && retiring > 0 {
                continue;
            }
            if verdict.request_timeout {
                self.out.push(Action::DumpStacks { pid: w.pid });
                w.stuck = true;
            }
            logs.push((slot, w.pid, format!("recycling worker: {}", verdict.reason)));
            w.exit_reason = verdict.kind;
            if verdict.request_timeout {
                self.stats.request_timeouts += 1;
            }
            w.retiring = Some(verdict.reason);
            retiring += 1;
        }
        for (slot, pid, msg) in logs {
            self.log(Level::Warn, Some((slot, pid)), msg);
        }
    }

    /// Spawns what is missing, retires what is surplus. An old worker is
    /// only retired once a replacement is ready, so capacity never dips.
    fn reconcile(&mut self, now: Instant) {
        if self.is_stopping() {
            return;
        }
        if now >= self.next_spawn_at {
            let serving = self.workers.serving_count(self.generation);
            let free = self.max_workers - self.workers.iter().count();
            for _ in 0..self.wanted.saturating_sub(serving).min(free) {
                self.out.push(Action::Spawn);
            }
        }
        self.retire_surplus(now);
    }

    /// A worker recycled for a stuck request keeps `--graceful-timeout` only
    /// while other requests can still finish: once every request it runs is
    /// stuck, it is killed shortly after (mod_wsgi 6's drain ignores
    /// requests past `--request-timeout` + `--interrupt-timeout` the same
    /// way). It is stopped only once its replacement is ready, so this
    /// frees its memory and its client without costing capacity.
    fn cut_stuck_drains(&mut self, now: Instant, now_ms: u64, readings: &[Option<Reading>]) {
        let stuck_after = stuck_after_ms(&self.config);
        let mut logs = Vec::new();
        for (slot, w) in self.workers.iter_mut() {
            let Phase::Stopping { deadline } = w.phase else {
                continue;
            };
            let Some(Some(reading)) = readings.get(slot) else {
                continue;
            };
            let Some(cut) = stuck_drain_deadline(w, deadline, reading, now, now_ms, stuck_after)
            else {
                continue;
            };
            w.phase = Phase::Stopping { deadline: cut };
            w.overdue = "only stuck requests were left while it drained";
            logs.push((slot, w.pid));
        }
        for (slot, pid) in logs {
            let msg = format!(
                "only stuck requests left: killing the worker in {:.1} s instead of at the end of --graceful-timeout",
                STUCK_GRACE.as_secs_f64()
            );
            self.log(Level::Info, Some((slot, pid)), msg);
        }
    }

    fn retire_surplus(&mut self, now: Instant) {
        let generation = self.generation;
        loop {
            let ready = self
                .workers
                .iter()
                .filter(|(_, w)| !w.is_replaceable(generation) && w.phase == Phase::Ready)
                .count();
            let replaceable: Vec<(usize, bool)> = self
                .workers
                .iter()
                .filter(|(_, w)| w.is_replaceable(generation) && !w.is_stopping())
                .map(|(s, w)| (s, w.phase == Phase::Starting))
                .collect();
            // A replaceable worker that never became ready serves nobody: stop it first.
            let Some(&(slot, starting)) =
                replaceable.iter().find(|(_, s)| *s).or(replaceable.first())
            else {
                break;
            };
            if !(starting || ready + replaceable.len() > self.wanted) {
                break;
            }
            let why = self
                .workers
                .get(slot)
                .and_then(|w| w.retiring.clone())
                .unwrap_or_else(|| "replaced by a new generation".to_owned());
            self.stop_worker(slot, &why, "reload", now);
        }
        if let Some(started) = self.reload_started {
            let old_left = self
                .workers
                .iter()
                .any(|(_, w)| w.generation != generation && !w.is_stopping());
            if !old_left && self.workers.serving_count(generation) >= self.wanted {
                let msg = format!(
                    "reload complete: the new generation is serving (generation {generation}, {} ms)",
                    now.duration_since(started).as_millis()
                );
                self.log(Level::Info, None, msg);
                self.reload_started = None;
            }
        }
        while self.workers.serving_count(generation) > self.wanted {
            let newest = self
                .workers
                .iter()
                .filter(|(_, w)| !w.is_replaceable(generation) && !w.is_stopping())
                .max_by_key(|(_, w)| w.spawned_at)
                .map(|(s, _)| s);
            match newest {
                Some(slot) => self.stop_worker(slot, "fewer workers wanted", "scale-down", now),
                None => break,
            }
        }
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

#[cfg(test)]
mod tests;
