//! The master's event loop, in the shape of nginx's master cycle: wait for
//! events, route them, let the supervisor decide and carry out what it
//! decided through one call ([`Server::apply`]). Decisions about worker
//! processes live in `supervisor`, about connections in `dispatch`;
//! `effects` carries them out and `observe` answers operators. The loop
//! itself decides nothing.

use crate::control;
use crate::dispatch::Dispatcher;
use crate::effects::{EffectError, Effects, Input, CHANNEL_BASE};
use crate::listener::{self, BindError};
use crate::observe::Observer;
use crate::readings::Readings;
use crate::reap;
use crate::service_procs::ServiceProcs;
use crate::services::Services;
use crate::spawn::{self, SpawnError};
use crate::supervisor::{Action, Supervisor};
use crate::template::Templates;
use mio::{Events, Interest, Poll, Token};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::exit::ExitCode;
use rwsgi_shared::scoreboard::{Scoreboard, ScoreboardError, MAX_WORKERS};
use slog::{info, warn, Logger};
use std::time::{Duration, Instant};

/// Tokens in the poll; `effects` registers the template's (3) and the
/// workers' channels (from 16), `admin` its connections (from 2^20).
const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const ADMIN: Token = Token(2);
/// `--https-port` (3 is the template's channel).
const TLS_LISTENER: Token = Token(4);
const TICK: Duration = Duration::from_millis(100);

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
    #[error(transparent)]
    Effect(#[from] EffectError),
}

impl ServerError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ServerError::Bind(_) => ExitCode::Bind,
            ServerError::Privileges(_) => ExitCode::Config,
            ServerError::Effect(EffectError::FirstGeneration { code, .. }) => *code,
            _ => ExitCode::Failure,
        }
    }
}

struct Server {
    poll: Poll,
    signals: signal_hook_mio::v1_0::Signals,
    scoreboard: Scoreboard,
    supervisor: Supervisor,
    readings: Readings,
    effects: Effects,
    observer: Observer,
    /// `--service-script`: decided in `services`, carried out in `service_procs`.
    services: Services,
    service_procs: ServiceProcs,
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
    let buffers = listener::Buffers {
        receive: config.receive_buffer_size,
        send: config.send_buffer_size,
    };
    let listener = listener::bind(&config.host, config.port, config.listen_backlog, buffers)?;
    let bound = listener.local_addr()?;
    // `--port 0` binds a port the kernel chooses: the workers (SERVER_PORT)
    // and the log (for whoever started the server) get the real one.
    config.port = bound.port();
    let mut sockets = vec![(listener, LISTENER)];
    let mut secure_bound = None;
    if let Some(tls) = &mut config.tls {
        let secure = listener::bind(&config.host, tls.port, config.listen_backlog, buffers)?;
        let bound = secure.local_addr()?;
        // As for --port 0: the workers tell HTTPS connections by this port.
        tls.port = bound.port();
        secure_bound = Some(bound);
        sockets.push((secure, TLS_LISTENER));
    }
    let poll = Poll::new()?;
    let dispatcher = Dispatcher::new(sockets, poll.registry(), config.max_clients, log.clone())?;
    let mut signals = control::install()?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    let scoreboard = Scoreboard::create(std::process::id())?;
    info!(log, "listening on http://{}/", bound; "address" => bound.to_string());
    if let Some(secure) = secure_bound {
        info!(log, "listening on https://{}/", secure; "address" => secure.to_string());
    }
    let observer = Observer::new(&config, poll.registry(), ADMIN, log.clone())?;
    // Everything privileged is done: the ports are bound, the scoreboard
    // exists. Nothing started from here on runs as root.
    if let Some(run_as) = &config.run_as {
        crate::privileges::drop_to(run_as)?;
        spawn::set_child_identity(run_as);
        info!(log, "running as user {} (uid {}, gid {})", run_as.user, run_as.uid, run_as.gid;
            "uid" => run_as.uid, "gid" => run_as.gid);
    }
    let supervisor = Supervisor::new(&config, MAX_WORKERS, Instant::now());
    let service_names: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
    let mut server = Server {
        services: Services::new(
            &service_names,
            supervisor.generation(),
            Duration::from_millis(config.timeouts.shutdown_ms),
            Instant::now(),
        ),
        service_procs: ServiceProcs::new(&config, worker_bin.clone(), log.clone()),
        supervisor,
        readings: Readings::new(&config),
        effects: Effects::new(&config, worker_bin, templates, dispatcher, log),
        observer,
        poll,
        signals,
        scoreboard,
    };
    let template = server.effects.template_pid();
    server
        .observer
        .publish(&server.supervisor, &server.scoreboard, template);
    let result = server.main_loop();
    if result.is_err() {
        // No service outlives a master that gives up.
        server.service_procs.kill_all(&mut server.services);
    }
    result
}

impl Server {
    fn main_loop(&mut self) -> Result<ExitCode, ServerError> {
        let mut events = Events::with_capacity(256);
        loop {
            // Services first: they follow the workers' generation and stop,
            // and a stop ends only once they are gone.
            let service_actions = self.services.tick(
                Instant::now(),
                self.supervisor.generation(),
                self.supervisor.is_stopping(),
            );
            self.service_procs
                .carry_out(service_actions, &mut self.services);
            self.supervisor.set_others_alive(self.services.any_alive());
            // Decide on what the previous turn (or the start) changed.
            let readings = self
                .readings
                .read(&self.scoreboard, self.supervisor.workers());
            let actions =
                self.supervisor
                    .tick(Instant::now(), rwsgi_shared::time::now_ms(), &readings);
            if let Some(code) = self.apply(actions)? {
                return Ok(code);
            }
            self.effects
                .move_connections(&mut self.supervisor, &self.scoreboard);
            self.observer.check_memory_limit(&self.supervisor);

            let mut controls = Vec::new();
            let mut channels = Vec::new();
            let mut admin_events = Vec::new();
            match self.poll.poll(&mut events, Some(TICK)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
            for event in events.iter() {
                if self.observer.owns(event.token()) {
                    admin_events.push(event.token());
                    continue;
                }
                match event.token() {
                    LISTENER => self.effects.listener_readable(0),
                    TLS_LISTENER => self.effects.listener_readable(1),
                    SIGNALS => controls.extend(control::drain(&mut self.signals)),
                    Token(t) if t >= CHANNEL_BASE => channels.push(t - CHANNEL_BASE),
                    // The template's channel: the wake-up was the point.
                    Token(_) => {}
                }
            }
            for control in controls {
                if control == control::Control::Reload {
                    crate::log_files::reopen();
                }
                let actions = self.supervisor.control(control, Instant::now());
                self.apply(actions)?;
            }
            for slot in channels {
                let inputs = self.effects.read_channel(
                    slot,
                    &mut self.supervisor,
                    &self.scoreboard,
                    self.poll.registry(),
                );
                self.decide(inputs)?;
            }
            for (pid, death) in reap::reap_all() {
                if let Some(actions) = self.services.died(pid, &death.describe(), Instant::now()) {
                    self.service_procs.carry_out(actions, &mut self.services);
                    continue;
                }
                let inputs = self.effects.reaped(
                    pid,
                    death,
                    &mut self.supervisor,
                    &self.scoreboard,
                    self.poll.registry(),
                );
                self.decide(inputs)?;
            }
            self.observer
                .sample_busy_time(&self.supervisor, &self.scoreboard);
            self.observer.serve_admin(
                &admin_events,
                self.poll.registry(),
                &self.supervisor,
                &self.scoreboard,
            );
        }
    }

    /// What workers said or how they ended, for the supervisor to decide on.
    fn decide(&mut self, inputs: Vec<Input>) -> Result<(), ServerError> {
        for input in inputs {
            let now = Instant::now();
            let actions = match input {
                Input::Event(slot, event) => self.supervisor.event(slot, &event, now),
                Input::Died(slot, death) => self.supervisor.died(slot, death, now),
            };
            // Only a turn (`tick`) ends the server with `Action::Exit`.
            self.apply(actions)?;
        }
        Ok(())
    }

    /// Carries out the supervisor's actions, then publishes the master's
    /// state; `Some(code)` to exit.
    fn apply(&mut self, actions: Vec<Action>) -> Result<Option<ExitCode>, ServerError> {
        if actions.iter().any(|a| matches!(a, Action::Fail { .. })) {
            // Before the workers are killed and every child reaped.
            self.service_procs.kill_all(&mut self.services);
        }
        let exit = self.effects.carry_out(
            actions,
            &mut self.supervisor,
            &self.scoreboard,
            self.poll.registry(),
        )?;
        self.observer.publish(
            &self.supervisor,
            &self.scoreboard,
            self.effects.template_pid(),
        );
        self.service_procs.publish(&self.services);
        self.observer.set_services(
            self.services
                .readings(Instant::now(), rwsgi_shared::time::now_ms()),
        );
        Ok(exit)
    }
}
