//! The master's event loop. Each turn reads like a table of contents:
//! wait for events, apply controls, reap, track start-ups and deadlines,
//! reconcile the number of workers, dispatch connections.

use crate::control::{self, Control};
use crate::dispatch;
use crate::listener::{self, BindError};
use crate::liveness::{self, Health};
use crate::monitor;
use crate::reap::{self, Death};
use crate::spawn::{self, SpawnError};
use crate::workers::{Phase, Worker, Workers};
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rwsgi_shared::channel::{ChannelError, Control as WorkerControl, Message};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::exit::ExitCode;
use rwsgi_shared::scoreboard::{Scoreboard, ScoreboardError, WorkerState, MAX_WORKERS};
use slog::{error, info, warn, Logger};
use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const CHANNEL_BASE: usize = 16;
/// Connections accepted but not yet handed to a worker; beyond this the
/// master stops accepting and lets the kernel backlog hold clients.
const MAX_PENDING: usize = 1024;
const TICK: Duration = Duration::from_millis(100);
/// Time a deadlocked worker gets to write its stack dump before SIGKILL.
const DUMP_GRACE: Duration = Duration::from_millis(500);
/// faulthandler in each worker dumps every thread's stack on this signal.
const DUMP_SIGNAL: Signal = Signal::SIGUSR2;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("{0}")]
    Scoreboard(#[from] ScoreboardError),
    #[error("{0}")]
    Spawn(#[from] SpawnError),
    #[error("event loop: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot start: worker {slot} {death}")]
    FirstGeneration {
        slot: usize,
        death: String,
        code: ExitCode,
    },
}

impl ServerError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ServerError::Bind(_) => ExitCode::Bind,
            ServerError::FirstGeneration { code, .. } => *code,
            _ => ExitCode::Failure,
        }
    }
}

/// A connection waiting for a worker.
struct Pending {
    stream: TcpStream,
    peer: SocketAddr,
    accepted_at_us: u64,
    buffered: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Running,
    Stopping,
}

struct Server {
    config: ServerConfig,
    log: Logger,
    poll: Poll,
    listener: Option<mio::net::TcpListener>,
    listener_ready: bool,
    accept_paused_until: Option<Instant>,
    signals: signal_hook_mio::v1_0::Signals,
    scoreboard: Scoreboard,
    workers: Workers,
    worker_bin: PathBuf,
    config_bytes: Vec<u8>,
    generation: u32,
    wanted: usize,
    pending: VecDeque<Pending>,
    rotate: usize,
    state: RunState,
    ever_ready: bool,
    failures: u32,
    next_spawn_at: Instant,
    recv_buf: Vec<u8>,
    sampler: monitor::Sampler,
    reload_started: Option<Instant>,
    /// "holding connections" was logged since the queue was last empty.
    holding_logged: bool,
}

/// Runs the server until it is stopped; returns the exit code.
pub fn run(mut config: ServerConfig, log: Logger) -> Result<ExitCode, ServerError> {
    let (before, limit) = rwsgi_shared::rlimit::raise_nofile();
    if before != limit {
        info!(log, "raised the open-files limit to the hard limit"; "from" => before, "to" => limit);
    }
    info!(log, "open-files limit"; "limit" => limit, "max_clients" => config.max_clients);
    let worker_bin = spawn::worker_binary()?;
    let mut listener = listener::bind(&config.host, config.port, config.listen_backlog)?;
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut signals = control::install()?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    let scoreboard = Scoreboard::create(std::process::id())?;
    let wanted = config.processes;
    let bound = listener.local_addr()?;
    // `--port 0` binds a port the kernel chooses: the workers (SERVER_PORT)
    // and the log (for whoever started the server) get the real one.
    config.port = bound.port();
    let config_bytes = spawn::config_bytes(&config);
    info!(log, "listening on http://{}/", bound; "address" => bound.to_string());
    let mut server = Server {
        config,
        log,
        poll,
        listener: Some(listener),
        listener_ready: true,
        accept_paused_until: None,
        signals,
        scoreboard,
        workers: Workers::new(MAX_WORKERS),
        worker_bin,
        config_bytes,
        generation: 1,
        wanted,
        pending: VecDeque::new(),
        rotate: 0,
        state: RunState::Running,
        ever_ready: false,
        failures: 0,
        next_spawn_at: Instant::now(),
        recv_buf: Vec::new(),
        sampler: monitor::Sampler::new(),
        reload_started: None,
        holding_logged: false,
    };
    server.scoreboard.header().set_generation(1);
    server.scoreboard.header().set_wanted_workers(wanted as u32);
    server.main_loop()
}

impl Server {
    fn main_loop(&mut self) -> Result<ExitCode, ServerError> {
        let mut events = Events::with_capacity(256);
        self.reconcile()?;
        loop {
            let mut controls = Vec::new();
            let mut channels = Vec::new();
            match self.poll.poll(&mut events, Some(TICK)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.listener_ready = true,
                    SIGNALS => controls.extend(control::drain(&mut self.signals)),
                    Token(t) if t >= CHANNEL_BASE => channels.push(t - CHANNEL_BASE),
                    Token(_) => {}
                }
            }
            for control in controls {
                self.apply(control);
            }
            for slot in channels {
                self.read_channel(slot);
            }
            self.reap()?;
            self.track_workers();
            self.watch_liveness();
            self.recycle();
            self.reconcile()?;
            self.dispatch_pending();
            self.accept();
            if self.state == RunState::Stopping && self.workers.is_empty() {
                info!(self.log, "stopped");
                return Ok(ExitCode::Ok);
            }
        }
    }

    // --- controls ---

    fn apply(&mut self, control: Control) {
        match control {
            Control::GracefulStop => self.graceful_stop(),
            Control::FastStop => self.fast_stop(),
            Control::Reload => self.reload(),
            Control::AddWorker => {
                if self.state == RunState::Running && self.wanted < MAX_WORKERS / 2 {
                    self.wanted += 1;
                    info!(self.log, "SIGTTIN: one more worker"; "workers" => self.wanted);
                }
            }
            Control::RemoveWorker => {
                if self.state == RunState::Running && self.wanted > 1 {
                    self.wanted -= 1;
                    info!(self.log, "SIGTTOU: one fewer worker"; "workers" => self.wanted);
                }
            }
            Control::ChildExited => {} // reaping happens every turn
        }
        self.scoreboard
            .header()
            .set_wanted_workers(self.wanted as u32);
    }

    fn graceful_stop(&mut self) {
        if self.state == RunState::Stopping {
            return;
        }
        info!(
            self.log,
            "SIGTERM: stopping gracefully (finishing in-flight requests)"
        );
        // Connections already in the kernel backlog were promised service.
        self.listener_ready = true;
        self.accept_paused_until = None;
        self.accept();
        self.dispatch_pending();
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.state = RunState::Stopping;
        let slots: Vec<usize> = self.workers.iter().map(|(s, _)| s).collect();
        for slot in slots {
            self.stop_worker(slot, "server stopping");
        }
    }

    fn fast_stop(&mut self) {
        info!(self.log, "stopping now");
        self.listener = None;
        self.pending.clear();
        self.state = RunState::Stopping;
        let deadline = Instant::now() + Duration::from_secs(1);
        for (_, w) in self.workers.iter_mut() {
            let _ = kill(Pid::from_raw(w.pid as i32), Signal::SIGTERM);
            w.phase = Phase::Stopping { deadline };
        }
    }

    fn reload(&mut self) {
        if self.state == RunState::Stopping {
            return;
        }
        self.generation = self.generation.wrapping_add(1);
        self.scoreboard.header().set_generation(self.generation);
        self.reload_started = Some(Instant::now());
        // An operator asking for a reload (or --reload-on-changes after a
        // fixed save) should not wait out the back-off of earlier failures.
        self.failures = 0;
        self.next_spawn_at = Instant::now();
        info!(self.log, "reloading: starting a new generation of workers"; "generation" => self.generation);
    }

    // --- workers ---

    fn stop_worker(&mut self, slot: usize, why: &str) {
        let t = self.config.timeouts;
        let Some(w) = self.workers.get_mut(slot) else {
            return;
        };
        // A worker with a stuck request cannot drain that request: it gets
        // the graceful period for the others, not the shutdown one on top.
        let grace = if w.stuck {
            t.graceful_ms
        } else {
            t.graceful_ms + t.shutdown_ms
        };
        let deadline = Instant::now() + Duration::from_millis(grace);
        if w.is_stopping() {
            return;
        }
        info!(self.log, "stopping worker"; "slot" => slot, "pid" => w.pid, "generation" => w.generation, "why" => why);
        let sent = w.channel_open
            && w.channel
                .send(&Message::Control(WorkerControl::GracefulStop), None)
                .is_ok();
        if !sent || w.phase == Phase::Starting {
            let _ = kill(Pid::from_raw(w.pid as i32), Signal::SIGTERM);
        }
        w.phase = Phase::Stopping { deadline };
    }

    fn spawn_worker(&mut self) -> Result<(), ServerError> {
        let Some(slot) = self.workers.free_slot() else {
            warn!(self.log, "no free scoreboard slot for another worker");
            return Ok(());
        };
        let spawned = spawn::spawn(
            &self.worker_bin,
            slot,
            self.generation,
            self.scoreboard.fd(),
            &self.config_bytes,
        )?;
        if let Some(sb) = self.scoreboard.worker(slot) {
            sb.assign(spawned.pid, self.generation, self.config.threads as u32);
        }
        let mut channel = spawned.channel;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&channel);
        self.poll.registry().register(
            &mut mio::unix::SourceFd(&fd),
            Token(CHANNEL_BASE + slot),
            Interest::READABLE,
        )?;
        let _ = &mut channel;
        info!(self.log, "started worker"; "slot" => slot, "pid" => spawned.pid, "generation" => self.generation);
        self.workers.insert(
            slot,
            Worker {
                pid: spawned.pid,
                generation: self.generation,
                channel,
                channel_open: true,
                sent: 0,
                phase: Phase::Starting,
                spawned_at: Instant::now(),
                retiring: None,
                request_limit: match self.config.recycle.max_requests {
                    0 => u64::MAX,
                    n => n + monitor::jitter(self.config.recycle.max_requests_jitter),
                },
                restart_after: monitor::restart_after(&self.config),
                unresponsive: false,
                stuck: false,
                killed: None,
            },
        );
        Ok(())
    }

    fn reap(&mut self) -> Result<(), ServerError> {
        for (pid, death) in reap::reap_all() {
            let Some(slot) = self.workers.slot_of_pid(pid) else {
                continue;
            };
            // Connections the worker handed back just before exiting are
            // still in its channel: take them before closing it.
            self.read_channel(slot);
            let Some(worker) = self.workers.remove(slot) else {
                continue;
            };
            let fd = std::os::fd::AsRawFd::as_raw_fd(&worker.channel);
            let _ = self
                .poll
                .registry()
                .deregister(&mut mio::unix::SourceFd(&fd));
            if let Some(sb) = self.scoreboard.worker(slot) {
                sb.release();
            }
            if let Some(why) = &worker.killed {
                warn!(self.log, "worker killed by the master"; "slot" => slot, "pid" => pid, "why" => why);
                continue;
            }
            if worker.is_stopping() {
                info!(self.log, "worker stopped"; "slot" => slot, "pid" => pid, "how" => death.describe());
                continue;
            }
            error!(self.log, "worker died"; "slot" => slot, "pid" => pid, "how" => death.describe());
            if !self.ever_ready {
                return Err(self.first_generation_failure(slot, death));
            }
            self.failures += 1;
            let backoff =
                Duration::from_millis(100u64 << self.failures.min(8)).min(Duration::from_secs(30));
            self.next_spawn_at = Instant::now() + backoff;
            if self.failures > 1 {
                warn!(self.log, "backing off before replacing the worker"; "seconds" => backoff.as_secs_f64());
            }
        }
        Ok(())
    }

    fn first_generation_failure(&mut self, slot: usize, death: Death) -> ServerError {
        let code = match death.exit_code() {
            Some(ExitCode::Ok) | None => ExitCode::Failure,
            Some(code) => code,
        };
        if code == ExitCode::AppLoad {
            error!(
                self.log,
                "the application could not be loaded (traceback above); not starting"
            );
        }
        self.kill_all();
        ServerError::FirstGeneration {
            slot,
            death: death.describe(),
            code,
        }
    }

    fn kill_all(&mut self) {
        for (_, w) in self.workers.iter() {
            let _ = kill(Pid::from_raw(w.pid as i32), Signal::SIGKILL);
        }
        // Collect them so nothing is left behind as a zombie.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.workers.is_empty() && Instant::now() < deadline {
            for (pid, _) in reap::reap_all() {
                if let Some(slot) = self.workers.slot_of_pid(pid) {
                    self.workers.remove(slot);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Start-up completion, start-up timeouts, stop deadlines.
    fn track_workers(&mut self) {
        let now = Instant::now();
        let startup = Duration::from_millis(self.config.timeouts.startup_ms);
        let mut became_ready = false;
        for (slot, w) in self.workers.iter_mut() {
            match w.phase {
                Phase::Starting => {
                    let state = self.scoreboard.worker(slot).map(|s| s.state());
                    if state == Some(WorkerState::Ready) {
                        w.phase = Phase::Ready;
                        became_ready = true;
                        info!(self.log, "worker ready"; "slot" => slot, "pid" => w.pid,
                            "ms" => now.duration_since(w.spawned_at).as_millis() as u64);
                    } else if now.duration_since(w.spawned_at) > startup {
                        error!(self.log, "worker did not become ready within --startup-timeout; killing it";
                            "slot" => slot, "pid" => w.pid, "seconds" => startup.as_secs_f64());
                        w.kill(format!(
                            "did not become ready within --startup-timeout ({} s)",
                            startup.as_secs_f64()
                        ));
                        w.phase = Phase::Stopping { deadline: now };
                    }
                }
                Phase::Stopping { deadline } if now > deadline => {
                    if w.killed.is_none() {
                        warn!(self.log, "worker did not stop in time; killing it"; "slot" => slot, "pid" => w.pid);
                    }
                    let why = if w.stuck {
                        "a request was still stuck at the end of --graceful-timeout"
                    } else {
                        "did not stop within --graceful-timeout + --shutdown-timeout"
                    };
                    w.kill(why.to_owned());
                    w.phase = Phase::Stopping {
                        deadline: now + Duration::from_secs(3600),
                    };
                }
                _ => {}
            }
        }
        if became_ready {
            self.failures = 0;
            if !self.ever_ready
                && self.workers.serving_count(self.generation) >= self.wanted
                && self.workers.iter().all(|(_, w)| w.phase != Phase::Starting)
            {
                self.ever_ready = true;
                info!(self.log, "server ready"; "workers" => self.wanted, "threads" => self.config.threads);
            }
        }
    }

    /// Workers whose heartbeat stopped get no new connections; past
    /// `--deadlock-timeout` their stacks are dumped and they are killed
    /// (a replacement is spawned by `reconcile`).
    fn watch_liveness(&mut self) {
        let now_ms = rwsgi_shared::time::now_ms();
        let deadlock_ms = self.config.timeouts.deadlock_ms;
        for (slot, w) in self.workers.iter_mut() {
            if w.phase != Phase::Ready {
                continue;
            }
            let Some(sb) = self.scoreboard.worker(slot) else {
                continue;
            };
            let beats = liveness::Beats {
                io_ms: sb.heartbeat_ms(),
                python_ms: sb.python_heartbeat_ms(),
                ready_at_ms: sb.ready_at_ms(),
            };
            match liveness::judge(now_ms, beats, deadlock_ms) {
                Health::Alive if w.unresponsive => {
                    w.unresponsive = false;
                    info!(self.log, "worker responsive again"; "slot" => slot, "pid" => w.pid);
                }
                Health::Alive => {}
                Health::Unresponsive { ms, which } if !w.unresponsive => {
                    w.unresponsive = true;
                    warn!(self.log, "worker unresponsive; no new connections go to it";
                        "slot" => slot, "pid" => w.pid, "silent" => which,
                        "seconds" => ms as f64 / 1000.0);
                }
                Health::Unresponsive { .. } => {}
                Health::Deadlocked { ms, which } => {
                    error!(self.log, "worker deadlocked: dumping its stacks and killing it";
                        "slot" => slot, "pid" => w.pid, "silent" => which,
                        "seconds" => ms as f64 / 1000.0,
                        "deadlock_timeout" => deadlock_ms as f64 / 1000.0);
                    let _ = kill(Pid::from_raw(w.pid as i32), DUMP_SIGNAL);
                    w.unresponsive = true;
                    // The dump takes a moment; then it is killed (see track_workers).
                    w.phase = Phase::Stopping {
                        deadline: Instant::now() + DUMP_GRACE,
                    };
                    w.killed = Some(format!(
                        "no heartbeat from its {which} for {:.1} s (--deadlock-timeout {} s)",
                        ms as f64 / 1000.0,
                        deadlock_ms as f64 / 1000.0
                    ));
                }
            }
        }
    }

    /// Spawns what is missing, retires what is surplus. An old worker is only
    /// retired once a replacement is ready, so capacity never dips.
    fn reconcile(&mut self) -> Result<(), ServerError> {
        if self.state == RunState::Stopping {
            return Ok(());
        }
        while self.workers.serving_count(self.generation) < self.wanted
            && Instant::now() >= self.next_spawn_at
        {
            self.spawn_worker()?;
        }
        self.retire_surplus();
        Ok(())
    }

    fn retire_surplus(&mut self) {
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
            if starting || ready + replaceable.len() > self.wanted {
                let why = self
                    .workers
                    .get(slot)
                    .and_then(|w| w.retiring.clone())
                    .unwrap_or_else(|| "replaced by a new generation".to_owned());
                self.stop_worker(slot, &why);
            } else {
                break;
            }
        }
        if let Some(started) = self.reload_started {
            let old_left = self
                .workers
                .iter()
                .any(|(_, w)| w.generation != generation && !w.is_stopping());
            if !old_left && self.workers.serving_count(generation) >= self.wanted {
                info!(self.log, "reload complete: the new generation is serving";
                    "generation" => generation, "ms" => started.elapsed().as_millis() as u64);
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
                Some(slot) => self.stop_worker(slot, "fewer workers wanted"),
                None => break,
            }
        }
    }

    /// Marks workers for replacement (recycling triggers, request timeouts).
    /// Recycling goes one worker at a time so capacity never dips; a
    /// request timeout is acted on at once.
    fn recycle(&mut self) {
        if self.state == RunState::Stopping {
            return;
        }
        let sample = self.sampler.due();
        let verdicts = monitor::check(&self.config, &self.workers, &self.scoreboard, sample);
        let mut retiring = self
            .workers
            .iter()
            .filter(|(_, w)| w.retiring.is_some() && !w.is_stopping())
            .count();
        for v in verdicts {
            if !v.dump_stacks && retiring > 0 {
                continue;
            }
            let Some(w) = self.workers.get_mut(v.slot) else {
                continue;
            };
            warn!(self.log, "recycling worker"; "slot" => v.slot, "pid" => w.pid, "why" => &v.reason);
            if v.dump_stacks {
                // A signal, not a channel message: faulthandler dumps from
                // its handler, even while C code holds the GIL.
                let _ = kill(Pid::from_raw(w.pid as i32), DUMP_SIGNAL);
                w.stuck = true;
            }
            w.retiring = Some(v.reason);
            retiring += 1;
        }
    }

    // --- connections ---

    fn accept(&mut self) {
        if let Some(until) = self.accept_paused_until {
            if Instant::now() < until {
                return;
            }
            self.accept_paused_until = None;
        }
        while self.listener_ready
            && self.workers.any_ready()
            && self.pending.len() < MAX_PENDING
            && (self.held_connections() < self.config.max_clients || self.reclaimable() > 0)
        {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    // The worker owns the socket from here; blocking mode is its choice.
                    let fd = std::os::fd::OwnedFd::from(stream);
                    let conn = Pending {
                        stream: TcpStream::from(fd),
                        peer,
                        accepted_at_us: rwsgi_shared::time::now_us(),
                        buffered: Vec::new(),
                    };
                    self.dispatch(conn);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.listener_ready = false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    warn!(self.log, "cannot accept: {}; pausing accepts for 100 ms", e);
                    self.accept_paused_until = Some(Instant::now() + Duration::from_millis(100));
                    return;
                }
                // ECONNABORTED and friends concern one client only.
                Err(_) => {}
            }
        }
    }

    /// Connections the workers would close to make room for a new client
    /// (idle, or without a complete request head), as of their last sweep.
    fn reclaimable(&self) -> usize {
        self.workers
            .iter()
            .filter(|(_, w)| w.accepts_work())
            .filter_map(|(slot, _)| self.scoreboard.worker(slot))
            .map(|sb| sb.idle_connections() as usize)
            .sum()
    }

    /// Connections held by workers or waiting here, for `--max-clients`.
    /// Beyond the limit the kernel backlog holds clients; the loop's tick
    /// retries, so there is no busy loop.
    fn held_connections(&self) -> usize {
        let in_workers: u64 = self
            .workers
            .iter()
            .map(|(slot, w)| {
                let sb = self.scoreboard.worker(slot);
                let held = sb.map_or(0, |s| u64::from(s.connections()));
                held + w.sent.saturating_sub(sb.map_or(0, |s| s.accepted()))
            })
            .sum();
        in_workers as usize + self.pending.len()
    }

    fn dispatch(&mut self, conn: Pending) {
        let mut tried = Vec::new();
        loop {
            let Some(slot) =
                dispatch::choose(&self.workers, &self.scoreboard, &mut self.rotate, &tried)
            else {
                if !self.holding_logged && self.workers.any_ready() {
                    warn!(self.log, "holding connections: no worker can take one now (channels full, or descriptors short)";
                        "held" => self.pending.len() + 1);
                    self.holding_logged = true;
                }
                self.pending.push_back(conn);
                return;
            };
            let Some(worker) = self.workers.get_mut(slot) else {
                return;
            };
            let msg = Message::Handoff {
                peer: conn.peer,
                accepted_at_us: conn.accepted_at_us,
                buffered: conn.buffered.clone(),
            };
            match worker.channel.send(&msg, Some(conn.stream.as_fd())) {
                Ok(()) => {
                    worker.sent += 1;
                    return; // dropping `conn` closes the master's copy
                }
                Err(ChannelError::WouldBlock) => tried.push(slot),
                Err(e) => {
                    warn!(self.log, "cannot hand a connection to worker"; "slot" => slot, "error" => %e);
                    worker.channel_open = false;
                    tried.push(slot);
                }
            }
        }
    }

    fn dispatch_pending(&mut self) {
        if self.pending.is_empty() {
            self.holding_logged = false;
        }
        let n = self.pending.len();
        for _ in 0..n {
            if !self.workers.any_ready() {
                if self.state == RunState::Stopping {
                    self.pending.clear();
                }
                return;
            }
            let Some(conn) = self.pending.pop_front() else {
                return;
            };
            let before = self.pending.len();
            self.dispatch(conn);
            if self.pending.len() > before {
                return; // every channel is full; try again next turn
            }
        }
    }

    fn read_channel(&mut self, slot: usize) {
        loop {
            let Some(worker) = self.workers.get_mut(slot) else {
                return;
            };
            match worker.channel.recv(&mut self.recv_buf) {
                Ok(received) => {
                    if let (Message::HandBack { peer, buffered }, Some(fd)) =
                        (received.message, received.fd)
                    {
                        let conn = Pending {
                            stream: TcpStream::from(fd),
                            peer,
                            accepted_at_us: rwsgi_shared::time::now_us(),
                            buffered,
                        };
                        self.dispatch(conn);
                    }
                }
                Err(ChannelError::WouldBlock) => return,
                Err(ChannelError::Malformed(why)) => {
                    warn!(self.log, "malformed message from worker"; "slot" => slot, "why" => why);
                }
                Err(_) => {
                    worker.channel_open = false;
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&worker.channel);
                    let _ = self
                        .poll
                        .registry()
                        .deregister(&mut mio::unix::SourceFd(&fd));
                    return;
                }
            }
        }
    }
}
