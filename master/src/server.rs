//! The master's event loop. It gathers inputs (signals, worker messages,
//! deaths, the scoreboard), lets the supervisor decide, carries out what it
//! decided, and moves connections. Every decision lives in `supervisor`;
//! every connection in `dispatch`.

use crate::admin::{self, Admin, Reply};
use crate::control;
use crate::dispatch::{Dispatcher, Fleet};
use crate::listener::{self, BindError};
use crate::metrics;
use crate::monitor;
use crate::reap;
use crate::spawn::{self, SpawnError};
use crate::supervisor::{Action, Jitter, Level, Reading, Supervisor};
use crate::template::{Fork, Templates};
use crate::workers::Phase;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rwsgi_shared::channel::{Channel, ChannelError, Control as WorkerControl, Message};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::exit::ExitCode;
use rwsgi_shared::metrics::MetricsSnapshot;
use rwsgi_shared::scoreboard::{Scoreboard, ScoreboardError, MAX_WORKERS};
use slog::{error, info, warn, Logger};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const ADMIN: Token = Token(2);
/// A starting template's channel: readable when it is ready.
const TEMPLATE: Token = Token(3);
const CHANNEL_BASE: usize = 16;
const TICK: Duration = Duration::from_millis(100);
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
    #[error("{0}")]
    Privileges(#[from] crate::privileges::PrivilegeError),
    #[error("{message}")]
    FirstGeneration { message: String, code: ExitCode },
}

impl ServerError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ServerError::Bind(_) => ExitCode::Bind,
            ServerError::Privileges(_) => ExitCode::Config,
            ServerError::FirstGeneration { code, .. } => *code,
            _ => ExitCode::Failure,
        }
    }
}

struct Server {
    config: ServerConfig,
    log: Logger,
    poll: Poll,
    signals: signal_hook_mio::v1_0::Signals,
    scoreboard: Scoreboard,
    supervisor: Supervisor,
    dispatcher: Dispatcher,
    /// The master's end of each worker's channel, by slot.
    channels: Vec<Option<Channel>>,
    worker_bin: PathBuf,
    /// Where workers are forked from (`--preload`).
    templates: Templates,
    /// The template (by pid) whose channel is registered in the poll.
    template_polled: Option<u32>,
    config_bytes: Vec<u8>,
    recv_buf: Vec<u8>,
    sampler: monitor::Sampler,
    admin: Option<Admin>,
    /// (when, busy thread time so far in µs, threads): the last 10 s.
    busy_samples: VecDeque<(Instant, u64, u64)>,
    /// The memory check against the cgroup limit was done.
    memory_checked: bool,
}

/// Runs the server until it is stopped; returns the exit code.
pub fn run(mut config: ServerConfig, log: Logger) -> Result<ExitCode, ServerError> {
    let (before, limit) = rwsgi_shared::rlimit::raise_nofile();
    if before != limit {
        info!(log, "raised the open-files limit to the hard limit"; "from" => before, "to" => limit);
    }
    info!(log, "open-files limit"; "limit" => limit, "max_clients" => config.max_clients);
    let worker_bin = spawn::worker_binary()?;
    // Workers forked from the template are re-parented to the master when
    // the template's short-lived middle process exits: the master must be
    // their subreaper to wait for them (see `template`).
    if config.preload != rwsgi_shared::config::Preload::None {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            warn!(
                log,
                "cannot become a child subreaper; workers start on their own: {}", e
            );
            config.preload = rwsgi_shared::config::Preload::None;
        }
    }
    let templates = Templates::new(
        config.preload,
        worker_bin.clone(),
        Duration::from_millis(config.timeouts.startup_ms),
        log.clone(),
    );
    let listener = listener::bind(&config.host, config.port, config.listen_backlog)?;
    let bound = listener.local_addr()?;
    // `--port 0` binds a port the kernel chooses: the workers (SERVER_PORT)
    // and the log (for whoever started the server) get the real one.
    config.port = bound.port();
    let poll = Poll::new()?;
    let dispatcher = Dispatcher::new(
        listener,
        poll.registry(),
        LISTENER,
        config.max_clients,
        log.clone(),
    )?;
    let mut signals = control::install()?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    let scoreboard = Scoreboard::create(std::process::id())?;
    info!(log, "listening on http://{}/", bound; "address" => bound.to_string());
    let admin = match &config.admin {
        Some(a) => {
            let (admin, addr) = Admin::bind(&a.host, a.port, poll.registry(), ADMIN)?;
            info!(log, "admin endpoints on http://{}/ (/healthz, /readyz, /metrics, /server-status)", addr;
                "admin_address" => addr.to_string(),
                "running_requests_shown_to" => if a.status_public { "all" } else { "loopback" });
            Some(admin)
        }
        None => None,
    };
    // Everything privileged is done: the ports are bound, the scoreboard
    // exists. Nothing started from here on runs as root.
    if let Some(run_as) = &config.run_as {
        crate::privileges::drop_to(run_as)?;
        spawn::set_child_identity(run_as);
        info!(log, "running as user {} (uid {}, gid {})", run_as.user, run_as.uid, run_as.gid;
            "uid" => run_as.uid, "gid" => run_as.gid);
    }
    let now = Instant::now();
    let mut server = Server {
        config_bytes: spawn::config_bytes(&config),
        supervisor: Supervisor::new(&config, MAX_WORKERS, now),
        channels: (0..MAX_WORKERS).map(|_| None).collect(),
        config,
        log,
        poll,
        signals,
        scoreboard,
        dispatcher,
        templates,
        template_polled: None,
        worker_bin,
        recv_buf: Vec::new(),
        sampler: monitor::Sampler::new(),
        admin,
        busy_samples: VecDeque::new(),
        memory_checked: false,
    };
    server.publish();
    server.main_loop()
}

impl Server {
    fn main_loop(&mut self) -> Result<ExitCode, ServerError> {
        let mut events = Events::with_capacity(256);
        loop {
            // Decide on what the previous turn (or the start) changed.
            let readings = self.read_scoreboard();
            let actions =
                self.supervisor
                    .tick(Instant::now(), rwsgi_shared::time::now_ms(), &readings);
            if let Some(code) = self.carry_out(actions)? {
                return Ok(code);
            }
            self.move_connections();
            self.check_memory_limit();

            let mut controls = Vec::new();
            let mut channels = Vec::new();
            let mut admin_events = Vec::new();
            match self.poll.poll(&mut events, Some(TICK)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
            for event in events.iter() {
                if self.admin.as_ref().is_some_and(|a| a.owns(event.token())) {
                    admin_events.push(event.token());
                    continue;
                }
                match event.token() {
                    LISTENER => self.dispatcher.listener_readable(),
                    SIGNALS => controls.extend(control::drain(&mut self.signals)),
                    Token(t) if t >= CHANNEL_BASE => channels.push(t - CHANNEL_BASE),
                    Token(_) => {}
                }
            }
            for control in controls {
                let actions = self.supervisor.control(control, Instant::now());
                self.carry_out(actions)?;
            }
            for slot in channels {
                self.read_channel(slot)?;
            }
            self.reap()?;
            self.serve_admin(&admin_events);
        }
    }

    /// Once every worker is ready: warns when the workers' memory,
    /// multiplied out to the wanted number, nears the container's limit
    /// (the kernel's OOM killer would take workers mid-request).
    fn check_memory_limit(&mut self) {
        if self.memory_checked
            || self.supervisor.workers.iter().count() < self.supervisor.wanted
            || self
                .supervisor
                .workers
                .iter()
                .any(|(_, w)| w.phase != Phase::Ready)
        {
            return;
        }
        self.memory_checked = true;
        let Some(limit) = rwsgi_conf::container::limits().memory else {
            return;
        };
        let rss: Vec<u64> = self
            .supervisor
            .workers
            .iter()
            .filter_map(|(_, w)| monitor::resident_bytes(w.pid))
            .collect();
        let per_worker = rss.iter().max().copied().unwrap_or(0);
        let expected = per_worker * self.supervisor.wanted as u64;
        if expected * 10 > limit * 8 {
            warn!(self.log, "the workers' memory nears the container's limit: fewer --processes, or a higher limit";
                "per_worker_mib" => per_worker / (1024 * 1024),
                "workers" => self.supervisor.wanted,
                "limit_mib" => limit / (1024 * 1024));
        }
    }

    /// Answers the admin connections that are ready, from the scoreboard.
    fn serve_admin(&mut self, tokens: &[Token]) {
        self.sample_busy_time();
        let Some(mut admin) = self.admin.take() else {
            return;
        };
        for &token in tokens {
            admin.ready(token, self.poll.registry(), &mut |req| self.answer(req));
        }
        admin.sweep(self.poll.registry());
        self.admin = Some(admin);
    }

    fn answer(&self, req: &admin::Request) -> Reply {
        let now_ms = rwsgi_shared::time::now_ms();
        match req.path.as_str() {
            "/healthz" => {
                let fresh = self.supervisor.workers.iter().any(|(slot, w)| {
                    w.phase == Phase::Ready
                        && self
                            .scoreboard
                            .worker(slot)
                            .and_then(crate::liveness::Beats::read)
                            .is_some_and(|beats| {
                                crate::liveness::judge(now_ms, beats, u64::MAX)
                                    == crate::liveness::Health::Alive
                            })
                });
                if fresh {
                    Reply::text(200, "ok\n")
                } else {
                    Reply::text(503, "no worker has a fresh heartbeat\n")
                }
            }
            "/readyz" => {
                if self.supervisor.shutting_down() {
                    Reply::text(503, "stopping\n")
                } else if self.supervisor.workers.any_ready() {
                    Reply::text(200, "ready\n")
                } else {
                    Reply::text(503, "no worker is ready\n")
                }
            }
            "/metrics" => {
                let (content_type, body) = metrics::negotiate(self.scrape(), &req.accept);
                Reply {
                    status: 200,
                    content_type,
                    body,
                }
            }
            "/server-status" => {
                let mut status = rwsgi_shared::status::Status::read(&self.scoreboard, now_ms);
                let public = self.config.admin.as_ref().is_some_and(|a| a.status_public);
                if !admin::may_see_requests(req.peer.ip(), public) {
                    status.redact();
                }
                if req.query.split('&').any(|p| p == "json") {
                    Reply {
                        status: 200,
                        content_type: "application/json",
                        body: format!("{}\n", status.json()),
                    }
                } else {
                    Reply {
                        status: 200,
                        content_type: "text/html; charset=utf-8",
                        body: status.html(),
                    }
                }
            }
            _ => Reply::text(
                404,
                "not found: /healthz, /readyz, /metrics, /server-status\n",
            ),
        }
    }

    /// Live workers' metrics plus the retired ones', and busy thread time
    /// including the requests running now (µs).
    fn totals(&self, now_ms: u64) -> (MetricsSnapshot, u64, u64) {
        let mut totals = self.scoreboard.header().retired().snapshot();
        let (mut running_us, mut threads) = (0u64, 0u64);
        for (slot, _) in self.supervisor.workers.iter() {
            // Not attached yet: the metrics there were already retired.
            let Some(sb) = self.scoreboard.worker(slot).filter(|sb| sb.attached()) else {
                continue;
            };
            totals.merge(&sb.metrics().snapshot());
            threads += u64::from(sb.threads());
            for t in 0..sb.threads() as usize {
                if let Some(th) = sb.thread(t) {
                    if th.state() == rwsgi_shared::scoreboard::ThreadState::Busy {
                        running_us += now_ms.saturating_sub(th.request_started_ms()) * 1000;
                    }
                }
            }
        }
        let busy = totals.busy_us + running_us;
        (totals, busy, threads)
    }

    /// Keeps one sample a second of busy thread time, for utilization.
    fn sample_busy_time(&mut self) {
        let now = Instant::now();
        if self
            .busy_samples
            .back()
            .is_some_and(|(at, _, _)| now.duration_since(*at) < Duration::from_secs(1))
        {
            return;
        }
        let (_, busy, threads) = self.totals(rwsgi_shared::time::now_ms());
        self.busy_samples.push_back((now, busy, threads));
        while self.busy_samples.len() > 11 {
            self.busy_samples.pop_front();
        }
    }

    fn utilization(&self) -> f64 {
        let (Some(first), Some(last)) = (self.busy_samples.front(), self.busy_samples.back())
        else {
            return 0.0;
        };
        let span_us = last.0.duration_since(first.0).as_micros() as f64;
        let threads = last.2.max(1) as f64;
        if span_us <= 0.0 {
            return 0.0;
        }
        (last.1.saturating_sub(first.1) as f64 / (span_us * threads)).clamp(0.0, 1.0)
    }

    fn scrape(&self) -> metrics::Scrape {
        let (totals, _, _) = self.totals(rwsgi_shared::time::now_ms());
        let workers = self
            .supervisor
            .workers
            .iter()
            .filter_map(|(slot, w)| {
                let sb = self.scoreboard.worker(slot)?;
                let cpu = monitor::usage(w.pid).map(|(_, cpu)| cpu);
                Some(metrics::WorkerGauges {
                    slot,
                    pid: w.pid,
                    threads_busy: sb.busy_threads(),
                    threads: sb.threads(),
                    connections: sb.connections(),
                    connections_idle: sb.idle_connections(),
                    usage: monitor::resident_bytes(w.pid).zip(cpu),
                })
            })
            .collect();
        metrics::Scrape {
            totals,
            stats: self.supervisor.stats.clone(),
            workers,
            workers_ready: self
                .supervisor
                .workers
                .iter()
                .filter(|(_, w)| w.accepts_work())
                .count(),
            utilization: self.utilization(),
            backlog: monitor::backlog(self.config.port),
        }
    }

    /// Hands waiting connections to workers, then accepts new ones.
    fn move_connections(&mut self) {
        let stopping = self.supervisor.is_stopping();
        let mut fleet = Fleet {
            workers: &mut self.supervisor.workers,
            channels: &self.channels,
            scoreboard: &self.scoreboard,
        };
        self.dispatcher.dispatch_pending(&mut fleet, stopping);
        self.dispatcher.accept(&mut fleet);
    }

    /// What the scoreboard (and, once a second, /proc) says of each worker.
    fn read_scoreboard(&mut self) -> Vec<Option<Reading>> {
        let sample = self.sampler.due()
            && (self.config.recycle.memory_limit_mb > 0
                || self.config.recycle.cpu_time_limit_s > 0);
        let mut readings: Vec<Option<Reading>> = (0..MAX_WORKERS).map(|_| None).collect();
        for (slot, w) in self.supervisor.workers.iter() {
            // Nothing is read of a worker that has not attached to its slot
            // yet: what is there belongs to the slot's previous occupant.
            let Some((sb, beats)) = self
                .scoreboard
                .worker(slot)
                .and_then(|sb| Some((sb, crate::liveness::Beats::read(sb)?)))
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
                usage: if sample { monitor::usage(w.pid) } else { None },
                running: (0..sb.threads() as usize)
                    .filter_map(|i| sb.thread(i))
                    .filter(|t| t.state() == rwsgi_shared::scoreboard::ThreadState::Busy)
                    .map(|t| t.request_started_ms())
                    .filter(|started| *started > 0)
                    .collect(),
                activity: sb.activity().0,
                active_running: sb.activity().1 > 0,
            });
        }
        readings
    }

    /// Carries out the supervisor's actions; `Some(code)` to exit.
    fn carry_out(&mut self, actions: Vec<Action>) -> Result<Option<ExitCode>, ServerError> {
        let mut exit = None;
        for action in actions {
            match action {
                Action::Spawn => self.spawn_worker()?,
                Action::Stop {
                    slot,
                    pid,
                    starting,
                    evict,
                } => {
                    let control = if evict {
                        WorkerControl::Evict
                    } else {
                        WorkerControl::GracefulStop
                    };
                    let sent = !starting
                        && self.channels[slot]
                            .as_ref()
                            .is_some_and(|c| c.send(&Message::Control(control), None).is_ok());
                    if !sent {
                        signal(pid, Signal::SIGTERM);
                    }
                }
                Action::Terminate { pid } => signal(pid, Signal::SIGTERM),
                Action::Kill { pid } => signal(pid, Signal::SIGKILL),
                // A signal, not a channel message: faulthandler dumps from its
                // handler, even while C code holds the GIL.
                Action::DumpStacks { pid } => signal(pid, DUMP_SIGNAL),
                Action::CloseListener { drain } => {
                    let mut fleet = Fleet {
                        workers: &mut self.supervisor.workers,
                        channels: &self.channels,
                        scoreboard: &self.scoreboard,
                    };
                    self.dispatcher
                        .close_listener(drain, &mut fleet, self.poll.registry());
                }
                Action::DropPending => self.dispatcher.drop_pending(),
                Action::Log {
                    level,
                    worker,
                    message,
                } => self.write_log(level, worker, &message),
                Action::Fail { message, code } => {
                    self.kill_all();
                    return Err(ServerError::FirstGeneration { message, code });
                }
                Action::Exit(code) => {
                    self.stop_template();
                    exit = Some(code);
                }
            }
        }
        self.publish();
        Ok(exit)
    }

    fn write_log(&self, level: Level, worker: Option<(usize, u32)>, message: &str) {
        let log = match worker {
            Some((slot, pid)) => self.log.new(slog::o!("slot" => slot, "pid" => pid)),
            None => self.log.clone(),
        };
        match level {
            Level::Info => info!(log, "{}", message),
            Level::Warn => warn!(log, "{}", message),
            Level::Error => error!(log, "{}", message),
        }
    }

    /// What `rwsgi status` and the workers read of the master's state.
    fn publish(&self) {
        let header = self.scoreboard.header();
        header.set_generation(self.supervisor.generation);
        header.set_wanted_workers(self.supervisor.wanted as u32);
        header.set_template_pid(self.templates.pid());
        let stats = &self.supervisor.stats;
        header.set_master_counters(&rwsgi_shared::scoreboard::MasterCounters {
            worker_starts: stats.starts,
            worker_exits: stats.exits,
            request_timeouts: stats.request_timeouts,
            utilization_ppm: (self.utilization() * 1e6) as u64,
        });
    }

    fn spawn_worker(&mut self) -> Result<(), ServerError> {
        let Some((slot, sb)) = self
            .supervisor
            .workers
            .free_slot()
            .and_then(|slot| Some((slot, self.scoreboard.worker(slot)?)))
        else {
            warn!(self.log, "no free scoreboard slot for another worker");
            return Ok(());
        };
        let generation = self.supervisor.generation;
        let threads = self.config.threads as u32;
        // The slot is claimed (a new epoch) before each worker can run: a
        // forked worker serves before the master learns its pid, and writes
        // its own fields itself (see `scoreboard`).
        let forked = self.templates.fork(
            (slot, generation),
            || sb.claim(generation, threads),
            self.scoreboard.fd(),
            &self.config_bytes,
        );
        if let Some(fd) = self.templates.starting_channel() {
            // Wakes the loop when the template is ready; a closed channel
            // leaves the poll by itself. Registered once per template.
            if self.template_polled != self.templates.pid() {
                let _ = self.poll.registry().register(
                    &mut mio::unix::SourceFd(&fd),
                    TEMPLATE,
                    Interest::READABLE,
                );
                self.template_polled = self.templates.pid();
            }
        }
        let spawned = match forked {
            Fork::Forked(spawned) => spawned,
            // The supervisor asks again on its next turn.
            Fork::NotYet => return Ok(()),
            // A new epoch even if a fork was asked for: should that fork
            // still run, it cannot attach to this worker's occupancy.
            Fork::OnTheirOwn => spawn::spawn(
                &self.worker_bin,
                spawn::Role::Worker {
                    slot,
                    epoch: sb.claim(generation, threads),
                },
                generation,
                self.scoreboard.fd(),
                &self.config_bytes,
            )?,
        };
        sb.set_pid(spawned.pid);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&spawned.channel);
        self.poll.registry().register(
            &mut mio::unix::SourceFd(&fd),
            Token(CHANNEL_BASE + slot),
            Interest::READABLE,
        )?;
        self.channels[slot] = Some(spawned.channel);
        let r = self.config.recycle;
        let jitter = Jitter {
            requests: monitor::jitter(r.max_requests_jitter),
            restart_ms: monitor::jitter(r.restart_interval_ms / 10),
        };
        self.supervisor
            .spawned(slot, spawned.pid, Instant::now(), jitter);
        Ok(())
    }

    fn reap(&mut self) -> Result<(), ServerError> {
        for (pid, death) in reap::reap_all() {
            let Some(slot) = self.supervisor.workers.slot_of_pid(pid) else {
                self.templates.died(pid, &death.describe());
                continue;
            };
            // Connections the worker handed back just before exiting, and
            // its last words, are still in its channel: read them first.
            self.read_channel(slot)?;
            if let Some(channel) = self.channels[slot].take() {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&channel);
                let _ = self
                    .poll
                    .registry()
                    .deregister(&mut mio::unix::SourceFd(&fd));
            }
            if let Some(sb) = self.scoreboard.worker(slot) {
                sb.release(self.scoreboard.header().retired());
            }
            let actions = self.supervisor.died(slot, death, Instant::now());
            self.carry_out(actions)?;
        }
        Ok(())
    }

    /// Ends the template and waits for it, so it is not left behind.
    fn stop_template(&mut self) {
        if let Some(pid) = self.templates.pid() {
            signal(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid as i32), None);
        }
        self.templates.stop();
    }

    fn kill_all(&mut self) {
        self.stop_template();
        for (_, w) in self.supervisor.workers.iter() {
            signal(w.pid, Signal::SIGKILL);
        }
        // Collect them so nothing is left behind as a zombie.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.supervisor.workers.is_empty() && Instant::now() < deadline {
            for (pid, _) in reap::reap_all() {
                if let Some(slot) = self.supervisor.workers.slot_of_pid(pid) {
                    self.supervisor.workers.remove(slot);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Messages from a worker: connections handed back, and events.
    fn read_channel(&mut self, slot: usize) -> Result<(), ServerError> {
        loop {
            let Some(channel) = self.channels[slot].as_ref() else {
                return Ok(());
            };
            match channel.recv(&mut self.recv_buf) {
                Ok(received) => match (received.message, received.fd) {
                    (Message::HandBack { origin, buffered }, Some(fd)) => {
                        let mut fleet = Fleet {
                            workers: &mut self.supervisor.workers,
                            channels: &self.channels,
                            scoreboard: &self.scoreboard,
                        };
                        self.dispatcher.hand_back(fd, origin, buffered, &mut fleet);
                    }
                    (Message::Event(event), _) => {
                        let actions = self.supervisor.event(slot, &event, Instant::now());
                        self.carry_out(actions)?;
                    }
                    (other, _) => {
                        warn!(self.log, "unexpected message from worker"; "slot" => slot, "message" => ?other)
                    }
                },
                Err(ChannelError::WouldBlock) => return Ok(()),
                Err(ChannelError::Malformed(why)) => {
                    warn!(self.log, "malformed message from worker"; "slot" => slot, "why" => why);
                }
                Err(_) => {
                    // EOF or an error: nothing more comes, nothing more can be sent.
                    if let Some(w) = self.supervisor.workers.get_mut(slot) {
                        w.channel_open = false;
                    }
                    let fd = std::os::fd::AsRawFd::as_raw_fd(channel);
                    let _ = self
                        .poll
                        .registry()
                        .deregister(&mut mio::unix::SourceFd(&fd));
                    return Ok(());
                }
            }
        }
    }
}

fn signal(pid: u32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), sig);
}
