//! The supervisor: every decision about worker processes, made from the
//! worker table, what the scoreboard says and the time, and returned as a
//! list of actions. The event loop gathers the inputs and carries the
//! actions out; nothing here touches a process, a socket or a clock, so
//! the whole table (start-up, reload ordering, back-off, recycling,
//! liveness, the stop sequence) is unit-tested without processes.
//!
//! The shape is gunicorn's arbiter (reap, murder the overdue, manage the
//! count), with the decisions as data.

use crate::control::Control;
use crate::liveness::{self, Beats, Health};
use crate::reap::Death;
use crate::workers::{Phase, Worker, Workers};
use rwsgi_shared::channel::Event;
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::exit::ExitCode;
use std::time::{Duration, Instant};

/// Time a deadlocked worker gets to write its stack dump before SIGKILL.
pub const DUMP_GRACE: Duration = Duration::from_millis(500);
/// A fast stop kills what is still alive after this.
const FAST_STOP: Duration = Duration::from_secs(1);
/// A worker already killed is waited for this long (it cannot resist SIGKILL).
const KILLED: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What the event loop is asked to do.
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

/// What the scoreboard (and /proc) says of one worker this turn.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub requests: u64,
    pub beats: Beats,
    /// The longest-running request: (thread, started at, in scoreboard ms, what).
    pub oldest_request: Option<(usize, u64, String)>,
    /// Resident MB and CPU seconds, when sampled this turn.
    pub usage: Option<(u64, u64)>,
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
    pub workers: Workers,
    pub generation: u32,
    pub wanted: usize,
    max_workers: usize,
    state: RunState,
    ever_ready: bool,
    failures: u32,
    next_spawn_at: Instant,
    reload_started: Option<Instant>,
    out: Vec<Action>,
    /// What happened to workers so far, for the metrics.
    pub stats: Stats,
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
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.state == RunState::Stopping
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
        }
        self.actions()
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
        if self.is_stopping() && self.workers.is_empty() {
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
        // A worker with a stuck request cannot drain that request: it gets
        // the graceful period for the others, not the shutdown one on top.
        let (grace, overdue) = if w.stuck {
            (
                t.graceful_ms,
                "a request was still stuck at the end of --graceful-timeout",
            )
        } else {
            (
                t.graceful_ms + t.shutdown_ms,
                "did not stop within --graceful-timeout + --shutdown-timeout",
            )
        };
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

/// Respawn back-off after `failures` deaths in a row: 200 ms doubling, at most 30 s.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64 << failures.min(8)).min(Duration::from_secs(30))
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
/// `--memory-limit`, `--cpu-time-limit`.
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
        if running > config.timeouts.request_ms {
            return Some(Verdict {
                reason: format!(
                    "request timeout: thread {thread} has been running {what} for {:.1} s (--request-timeout {} s)",
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
mod tests {
    use super::*;
    use rwsgi_conf::Invocation;

    fn config(args: &[&str]) -> ServerConfig {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/wsgi.py");
        let mut argv = vec!["rwsgi", "start-server"];
        argv.extend_from_slice(args);
        argv.push(script);
        match rwsgi_conf::parse(argv) {
            Ok(Invocation::StartServer { config, .. }) => *config,
            _ => panic!("not a start-server configuration"),
        }
    }

    /// A supervisor driven the way the event loop drives it, with pids
    /// handed out in order and every `Spawn` carried out at once.
    struct Harness {
        sup: Supervisor,
        now: Instant,
        now_ms: u64,
        next_pid: u32,
        log: Vec<String>,
    }

    impl Harness {
        fn new(args: &[&str]) -> Harness {
            let now = Instant::now();
            Harness {
                sup: Supervisor::new(&config(args), 16, now),
                now,
                now_ms: 1_000_000,
                next_pid: 100,
                log: Vec::new(),
            }
        }

        fn control(&mut self, control: Control) -> Vec<Action> {
            let actions = self.sup.control(control, self.now);
            self.run(actions)
        }

        fn advance(&mut self, ms: u64) {
            self.now += Duration::from_millis(ms);
            self.now_ms += ms;
        }

        /// Carries out spawns; returns the other actions, logs kept aside.
        fn run(&mut self, actions: Vec<Action>) -> Vec<Action> {
            let mut rest = Vec::new();
            for a in actions {
                match a {
                    Action::Spawn => {
                        let slot = self.sup.workers.free_slot().expect("a free slot");
                        self.next_pid += 1;
                        self.sup
                            .spawned(slot, self.next_pid, self.now, Jitter::default());
                    }
                    Action::Log { message, .. } => self.log.push(message),
                    other => rest.push(other),
                }
            }
            // `spawned` logs too.
            for a in self.sup.actions() {
                if let Action::Log { message, .. } = a {
                    self.log.push(message);
                }
            }
            rest
        }

        /// Healthy readings for every worker, `requests` served each.
        fn readings(&self, requests: u64) -> Vec<Option<Reading>> {
            let beats = Beats {
                io_ms: self.now_ms,
                python_ms: self.now_ms,
                ready_at_ms: self.now_ms,
            };
            (0..16)
                .map(|slot| {
                    self.sup.workers.get(slot).map(|_| Reading {
                        requests,
                        beats,
                        ..Reading::default()
                    })
                })
                .collect()
        }

        fn tick(&mut self) -> Vec<Action> {
            let readings = self.readings(0);
            self.tick_with(&readings)
        }

        fn tick_with(&mut self, readings: &[Option<Reading>]) -> Vec<Action> {
            let actions = self.sup.tick(self.now, self.now_ms, readings);
            self.run(actions)
        }

        fn ready_all(&mut self) {
            let starting: Vec<usize> = self
                .sup
                .workers
                .iter()
                .filter(|(_, w)| w.phase == Phase::Starting)
                .map(|(s, _)| s)
                .collect();
            for slot in starting {
                let actions = self.sup.event(slot, &Event::Ready, self.now);
                self.run(actions);
            }
        }

        fn slots(&self, pred: impl Fn(&Worker) -> bool) -> Vec<usize> {
            self.sup
                .workers
                .iter()
                .filter(|(_, w)| pred(w))
                .map(|(s, _)| s)
                .collect()
        }

        fn logged(&self, text: &str) -> bool {
            self.log.iter().any(|l| l.contains(text))
        }

        /// Starts `n` workers and makes them ready.
        fn started(args: &[&str]) -> Harness {
            let mut h = Harness::new(args);
            assert!(h.tick().is_empty());
            h.ready_all();
            assert!(h.logged("server ready"));
            h
        }
    }

    fn stops(actions: &[Action]) -> Vec<usize> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Stop { slot, .. } => Some(*slot),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn start_spawns_the_wanted_number_and_reports_ready_once_all_are() {
        let mut h = Harness::new(&["--processes", "3"]);
        h.tick();
        assert_eq!(h.sup.workers.iter().count(), 3);
        assert!(!h.logged("server ready"));
        // No more spawns while they start.
        assert!(h.tick().is_empty());
        assert_eq!(h.sup.workers.iter().count(), 3);
        h.ready_all();
        assert!(h.logged("server ready (3 workers"));
    }

    #[test]
    fn a_reload_stops_each_old_worker_only_once_its_replacement_is_ready() {
        let mut h = Harness::started(&["--processes", "2"]);
        let old = h.slots(|_| true);
        let actions = h.sup.control(Control::Reload, h.now);
        h.run(actions);
        // The new generation starts; the old one keeps serving.
        let actions = h.tick();
        assert!(stops(&actions).is_empty(), "{actions:?}");
        assert_eq!(h.slots(|w| w.generation == 2).len(), 2);
        assert!(h.tick().is_empty());
        // One replacement ready: exactly one old worker is stopped.
        let first_new = h.slots(|w| w.generation == 2)[0];
        let actions = h.sup.event(first_new, &Event::Ready, h.now);
        h.run(actions);
        let stopped = stops(&h.tick());
        assert_eq!(stopped.len(), 1);
        assert!(old.contains(&stopped[0]));
        // The second: the other old worker goes, and the reload is complete.
        h.ready_all();
        let stopped = stops(&h.tick());
        assert_eq!(stopped.len(), 1);
        assert!(h.logged("reload complete"));
    }

    #[test]
    fn a_reload_requested_by_a_replaced_generation_is_ignored() {
        let mut h = Harness::started(&["--processes", "2"]);
        let old = h.slots(|_| true);
        let actions = h.sup.event(old[0], &Event::ReloadRequested, h.now);
        h.run(actions);
        assert_eq!(h.sup.generation, 2);
        // The second worker of the same (now old) generation asks too.
        let actions = h.sup.event(old[1], &Event::ReloadRequested, h.now);
        h.run(actions);
        assert_eq!(h.sup.generation, 2);
    }

    #[test]
    fn deaths_back_off_exponentially_and_a_ready_worker_resets_it() {
        let mut h = Harness::started(&["--processes", "1"]);
        for failures in 1..=3u32 {
            let slot = h.slots(|_| true)[0];
            let actions = h.sup.died(slot, Death::Exited(1), h.now);
            h.run(actions);
            assert!(h.logged("worker died"));
            let wait = backoff(failures).as_millis() as u64;
            h.advance(wait - 1);
            assert!(h.slots(|_| true).is_empty());
            h.tick();
            assert!(
                h.slots(|_| true).is_empty(),
                "respawned before the back-off"
            );
            h.advance(1);
            h.tick();
            assert_eq!(
                h.slots(|_| true).len(),
                1,
                "not respawned after the back-off"
            );
        }
        assert_eq!(backoff(1), Duration::from_millis(200));
        // Doubling stops after eight failures (25.6 s).
        assert_eq!(backoff(20), backoff(8));
        h.ready_all();
        assert_eq!(h.sup.failures, 0);
    }

    #[test]
    fn the_first_generation_failing_stops_the_server_with_its_exit_code() {
        let mut h = Harness::new(&[]);
        h.tick();
        let slot = h.slots(|_| true)[0];
        let actions = h
            .sup
            .died(slot, Death::Exited(ExitCode::AppLoad as i32), h.now);
        let fail = h.run(actions);
        assert!(matches!(
            fail.as_slice(),
            [Action::Fail {
                code: ExitCode::AppLoad,
                ..
            }]
        ));
        assert!(h.logged("could not be loaded"));
    }

    #[test]
    fn recycling_goes_one_worker_at_a_time_with_each_workers_jitter() {
        let mut h = Harness::new(&[
            "--processes",
            "2",
            "--maximum-requests",
            "100",
            "--maximum-requests-jitter",
            "50",
        ]);
        h.tick();
        // Each worker drew its own jitter: one recycles at 110, the other at 140.
        let slots = h.slots(|_| true);
        h.sup.workers.get_mut(slots[0]).expect("w").request_limit = 110;
        h.sup.workers.get_mut(slots[1]).expect("w").request_limit = 140;
        h.ready_all();
        let readings = h.readings(120);
        h.tick_with(&readings);
        assert!(h.logged("served 120 requests (--maximum-requests 100)"));
        assert_eq!(h.slots(|w| w.retiring.is_some()), vec![slots[0]]);
        // Both past their limit: still one at a time.
        let readings = h.readings(200);
        h.tick_with(&readings);
        assert_eq!(h.slots(|w| w.retiring.is_some()), vec![slots[0]]);
        // A replacement was spawned, and the retiring one is stopped once it is ready.
        assert_eq!(h.slots(|w| w.phase == Phase::Starting).len(), 1);
        h.ready_all();
        let actions = h.tick_with(&readings);
        assert_eq!(stops(&actions), vec![slots[0]]);
    }

    #[test]
    fn a_request_timeout_dumps_stacks_at_once_and_stops_taking_work() {
        let mut h = Harness::started(&["--processes", "2", "--request-timeout", "3"]);
        let slot = h.slots(|_| true)[0];
        let mut readings = h.readings(0);
        if let Some(Some(r)) = readings.get_mut(slot) {
            r.oldest_request = Some((1, h.now_ms - 3_500, "GET /stuck".to_owned()));
        }
        let actions = h.tick_with(&readings);
        let pid = h.sup.workers.get(slot).expect("w").pid;
        assert!(actions.contains(&Action::DumpStacks { pid }), "{actions:?}");
        let w = h.sup.workers.get(slot).expect("w");
        assert!(w.stuck && !w.accepts_work());
        assert!(h.logged("request timeout: thread 1 has been running GET /stuck"));
    }

    #[test]
    fn a_silent_worker_gets_no_work_then_is_dumped_and_killed_and_replaced() {
        let mut h = Harness::started(&["--processes", "2", "--deadlock-timeout", "10"]);
        let slot = h.slots(|_| true)[0];
        let pid = h.sup.workers.get(slot).expect("w").pid;
        let silent_since = h.now_ms;
        let silent = |h: &mut Harness| {
            let mut readings = h.readings(0);
            if let Some(Some(r)) = readings.get_mut(slot) {
                r.beats.python_ms = silent_since;
            }
            h.tick_with(&readings)
        };
        h.advance(1_000);
        silent(&mut h);
        assert!(h.sup.workers.get(slot).expect("w").accepts_work());
        h.advance(1_500);
        silent(&mut h);
        assert!(!h.sup.workers.get(slot).expect("w").accepts_work());
        assert!(h.logged("no heartbeat from its Python interpreter (GIL)"));
        h.advance(8_000);
        let actions = silent(&mut h);
        assert!(actions.contains(&Action::DumpStacks { pid }), "{actions:?}");
        // No longer serving: a replacement starts at once.
        assert_eq!(h.slots(|w| w.phase == Phase::Starting).len(), 1);
        h.advance(DUMP_GRACE.as_millis() as u64 + 1);
        let actions = silent(&mut h);
        assert!(actions.contains(&Action::Kill { pid }), "{actions:?}");
        let actions = h.sup.died(
            slot,
            Death::Signaled(nix::sys::signal::Signal::SIGKILL),
            h.now,
        );
        h.run(actions);
        assert!(h.logged("worker killed by the master: no heartbeat"));
        assert!(!h.logged("out of memory"));
    }

    #[test]
    fn a_worker_that_beats_again_takes_work_again() {
        let mut h = Harness::started(&["--processes", "1"]);
        let slot = h.slots(|_| true)[0];
        let mut readings = h.readings(0);
        h.advance(3_000);
        h.tick_with(&readings);
        assert!(!h.sup.workers.get(slot).expect("w").accepts_work());
        readings = h.readings(0);
        h.tick_with(&readings);
        assert!(h.sup.workers.get(slot).expect("w").accepts_work());
        assert!(h.logged("responsive again"));
    }

    #[test]
    fn the_stop_sequence_drains_then_kills_at_the_deadline_then_exits() {
        let mut h = Harness::started(&[
            "--processes",
            "2",
            "--graceful-timeout",
            "2",
            "--shutdown-timeout",
            "1",
        ]);
        let actions = h.sup.control(Control::GracefulStop, h.now);
        let rest = h.run(actions);
        assert_eq!(rest[0], Action::CloseListener { drain: true });
        assert_eq!(stops(&rest).len(), 2);
        // A second SIGTERM changes nothing.
        assert!(h.control(Control::GracefulStop).is_empty());
        // No respawn while stopping, no kill before the deadline.
        h.advance(2_999);
        assert!(h.tick().is_empty());
        let (a, b) = (h.slots(|_| true)[0], h.slots(|_| true)[1]);
        let actions = h.sup.died(a, Death::Exited(0), h.now);
        h.run(actions);
        assert!(h.logged("worker stopped: exited with code 0"));
        h.advance(2);
        let pid = h.sup.workers.get(b).expect("w").pid;
        assert_eq!(h.tick(), vec![Action::Kill { pid }]);
        let actions = h
            .sup
            .died(b, Death::Signaled(nix::sys::signal::Signal::SIGKILL), h.now);
        h.run(actions);
        assert!(h.logged("did not stop within --graceful-timeout + --shutdown-timeout"));
        assert_eq!(h.tick(), vec![Action::Exit(ExitCode::Ok)]);
    }

    #[test]
    fn a_shutdown_delay_keeps_serving_then_drains_and_a_second_sigterm_skips_it() {
        let mut h = Harness::started(&["--processes", "1", "--shutdown-delay", "5"]);
        let rest = h.control(Control::GracefulStop);
        assert!(rest.is_empty(), "nothing stops yet: {rest:?}");
        assert!(h.sup.shutting_down() && !h.sup.is_stopping());
        h.advance(4_999);
        assert!(stops(&h.tick()).is_empty());
        h.advance(1);
        let actions = h.tick();
        assert_eq!(actions[0], Action::CloseListener { drain: true });
        assert_eq!(stops(&actions).len(), 1);
        // Again, with a second SIGTERM during the delay.
        let mut h = Harness::started(&["--processes", "1", "--shutdown-delay", "30"]);
        h.control(Control::GracefulStop);
        let actions = h.control(Control::GracefulStop);
        assert_eq!(stops(&actions).len(), 1);
        assert!(h.sup.is_stopping());
    }

    #[test]
    fn a_fast_stop_terminates_at_once_and_kills_a_second_later() {
        let mut h = Harness::started(&["--processes", "1"]);
        let pid = h.sup.workers.iter().next().expect("w").1.pid;
        let rest = h.control(Control::FastStop);
        assert!(rest.contains(&Action::Terminate { pid }));
        assert!(rest.contains(&Action::DropPending));
        h.advance(1_001);
        assert_eq!(h.tick(), vec![Action::Kill { pid }]);
    }

    #[test]
    fn a_worker_that_never_gets_ready_is_killed_at_the_startup_timeout() {
        let mut h = Harness::new(&["--startup-timeout", "5"]);
        h.tick();
        let pid = h.sup.workers.iter().next().expect("w").1.pid;
        h.advance(5_001);
        assert_eq!(h.tick(), vec![Action::Kill { pid }]);
        assert!(h.logged("--startup-timeout"));
    }

    #[test]
    fn sigttin_and_sigttou_change_the_count() {
        let mut h = Harness::started(&["--processes", "2"]);
        h.control(Control::AddWorker);
        h.tick();
        assert_eq!(h.slots(|_| true).len(), 3);
        h.ready_all();
        h.control(Control::RemoveWorker);
        assert_eq!(stops(&h.tick()).len(), 1);
    }
}
