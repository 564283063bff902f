//! Carrying out the supervisor's actions: starting workers (from the
//! template, or by fork+exec), signalling, stopping and reaping them, the
//! master's end of each worker's channel, and moving connections over
//! those channels with the dispatcher. What comes back (a worker's events,
//! its death) is handed to the loop as [`Input`]s for the supervisor to
//! decide on: nothing here decides what happens to a worker.

use crate::dispatch::{Dispatcher, Fleet};
use crate::reap::{self, Death};
use crate::spawn::{self, SpawnError};
use crate::supervisor::{Action, Jitter, Level, Supervisor};
use crate::template::{Fork, Templates};
use mio::{Interest, Registry, Token};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rwsgi_shared::channel::{Channel, ChannelError, Control, Event, Message};
use rwsgi_shared::config::{Recycle, ServerConfig};
use rwsgi_shared::exit::ExitCode;
use rwsgi_shared::scoreboard::{Scoreboard, MAX_WORKERS};
use slog::{error, info, warn, Logger};
use std::hash::{BuildHasher, Hasher};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A starting template's channel in the poll: readable when it is ready.
pub const TEMPLATE: Token = Token(3);
/// A worker's channel in the poll is this plus its slot.
pub const CHANNEL_BASE: usize = 16;
/// faulthandler in each worker dumps every thread's stack on this signal.
const DUMP_SIGNAL: Signal = Signal::SIGUSR2;

#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    #[error("{0}")]
    Spawn(#[from] SpawnError),
    #[error("event loop: {0}")]
    Io(#[from] std::io::Error),
    #[error("{message}")]
    FirstGeneration { message: String, code: ExitCode },
}

/// What a worker's channel or its death tells the supervisor.
#[derive(Debug)]
pub enum Input {
    Event(usize, Event),
    Died(usize, Death),
}

pub struct Effects {
    log: Logger,
    worker_bin: PathBuf,
    /// The configuration every worker is sent, serialized once.
    config_bytes: Vec<u8>,
    threads: u32,
    recycle: Recycle,
    /// Where workers are forked from (`--preload`).
    templates: Templates,
    /// The template (by pid) whose channel is registered in the poll.
    template_polled: Option<u32>,
    dispatcher: Dispatcher,
    /// The master's end of each worker's channel, by slot.
    channels: Vec<Option<Channel>>,
    recv_buf: Vec<u8>,
}

/// The workers as the dispatcher sees them: the one place this is built.
fn fleet<'a>(
    supervisor: &'a mut Supervisor,
    channels: &'a [Option<Channel>],
    scoreboard: &'a Scoreboard,
) -> Fleet<'a> {
    Fleet {
        workers: supervisor.workers_for_dispatch(),
        channels,
        scoreboard,
    }
}

impl Effects {
    pub fn new(
        config: &ServerConfig,
        worker_bin: PathBuf,
        templates: Templates,
        dispatcher: Dispatcher,
        log: Logger,
    ) -> Effects {
        Effects {
            log,
            worker_bin,
            config_bytes: spawn::config_bytes(config),
            threads: config.threads as u32,
            recycle: config.recycle,
            templates,
            template_polled: None,
            dispatcher,
            channels: (0..MAX_WORKERS).map(|_| None).collect(),
            recv_buf: Vec::new(),
        }
    }

    /// The template's pid, if one runs.
    pub fn template_pid(&self) -> Option<u32> {
        self.templates.pid()
    }

    /// The `index`th listener (0 HTTP, 1 HTTPS) reported readiness.
    pub fn listener_readable(&mut self, index: usize) {
        self.dispatcher.listener_readable(index);
    }

    /// Hands waiting connections to workers, then accepts new ones.
    pub fn move_connections(&mut self, supervisor: &mut Supervisor, scoreboard: &Scoreboard) {
        let stopping = supervisor.is_stopping();
        let mut fleet = fleet(supervisor, &self.channels, scoreboard);
        self.dispatcher.dispatch_pending(&mut fleet, stopping);
        self.dispatcher.accept(&mut fleet);
    }

    /// Carries out the supervisor's actions; `Some(code)` to exit.
    pub fn carry_out(
        &mut self,
        actions: Vec<Action>,
        supervisor: &mut Supervisor,
        scoreboard: &Scoreboard,
        registry: &Registry,
    ) -> Result<Option<ExitCode>, EffectError> {
        let mut exit = None;
        for action in actions {
            match action {
                Action::Spawn => self.spawn_worker(supervisor, scoreboard, registry)?,
                Action::Stop {
                    slot,
                    pid,
                    starting,
                    evict,
                } => {
                    let control = if evict {
                        Control::Evict
                    } else {
                        Control::GracefulStop
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
                    let mut fleet = fleet(supervisor, &self.channels, scoreboard);
                    self.dispatcher.close_listener(drain, &mut fleet, registry);
                }
                Action::DropPending => self.dispatcher.drop_pending(),
                Action::Log {
                    level,
                    worker,
                    message,
                } => self.write_log(level, worker, &message),
                Action::Fail { message, code } => {
                    self.kill_all(supervisor);
                    return Err(EffectError::FirstGeneration { message, code });
                }
                Action::Exit(code) => {
                    self.stop_template();
                    exit = Some(code);
                }
            }
        }
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

    fn spawn_worker(
        &mut self,
        supervisor: &mut Supervisor,
        scoreboard: &Scoreboard,
        registry: &Registry,
    ) -> Result<(), EffectError> {
        let Some((slot, sb)) = supervisor
            .workers()
            .free_slot()
            .and_then(|slot| Some((slot, scoreboard.worker(slot)?)))
        else {
            warn!(self.log, "no free scoreboard slot for another worker");
            return Ok(());
        };
        let generation = supervisor.generation();
        let threads = self.threads;
        // The slot is claimed (a new epoch) before each worker can run: a
        // forked worker serves before the master learns its pid, and writes
        // its own fields itself (see `scoreboard`).
        let forked = self.templates.fork(
            (slot, generation),
            || sb.claim(generation, threads),
            scoreboard.fd(),
            &self.config_bytes,
        );
        if let Some(fd) = self.templates.starting_channel() {
            // Wakes the loop when the template is ready; a closed channel
            // leaves the poll by itself. Registered once per template.
            if self.template_polled != self.templates.pid() {
                let _ =
                    registry.register(&mut mio::unix::SourceFd(&fd), TEMPLATE, Interest::READABLE);
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
                scoreboard.fd(),
                &self.config_bytes,
            )?,
        };
        sb.set_pid(spawned.pid);
        let fd = spawned.channel.as_raw_fd();
        registry.register(
            &mut mio::unix::SourceFd(&fd),
            Token(CHANNEL_BASE + slot),
            Interest::READABLE,
        )?;
        self.channels[slot] = Some(spawned.channel);
        let jitter = Jitter {
            requests: jitter(self.recycle.max_requests_jitter),
            restart_ms: jitter(self.recycle.restart_interval_ms / 10),
        };
        supervisor.spawned(slot, spawned.pid, Instant::now(), jitter);
        Ok(())
    }

    /// A child ended: a worker's last messages and its death, for the
    /// supervisor; its channel closed and its slot released.
    pub fn reaped(
        &mut self,
        pid: u32,
        death: Death,
        supervisor: &mut Supervisor,
        scoreboard: &Scoreboard,
        registry: &Registry,
    ) -> Vec<Input> {
        let Some(slot) = supervisor.workers().slot_of_pid(pid) else {
            self.templates.died(pid, &death.describe());
            return Vec::new();
        };
        // Connections the worker handed back just before exiting, and
        // its last words, are still in its channel: read them first.
        let mut inputs = self.read_channel(slot, supervisor, scoreboard, registry);
        if let Some(channel) = self.channels[slot].take() {
            let fd = channel.as_raw_fd();
            let _ = registry.deregister(&mut mio::unix::SourceFd(&fd));
        }
        if let Some(sb) = scoreboard.worker(slot) {
            sb.release(scoreboard.header().retired());
        }
        inputs.push(Input::Died(slot, death));
        inputs
    }

    /// Ends the template and waits for it, so it is not left behind.
    fn stop_template(&mut self) {
        if let Some(pid) = self.templates.pid() {
            signal(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid as i32), None);
        }
        self.templates.stop();
    }

    fn kill_all(&mut self, supervisor: &mut Supervisor) {
        self.stop_template();
        for (_, w) in supervisor.workers().iter() {
            signal(w.pid, Signal::SIGKILL);
        }
        // Collect them so nothing is left behind as a zombie.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !supervisor.workers().is_empty() && Instant::now() < deadline {
            for (pid, _) in reap::reap_all() {
                supervisor.forget_reaped(pid);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Messages from a worker: connections handed back go to the
    /// dispatcher; its events are returned for the supervisor.
    pub fn read_channel(
        &mut self,
        slot: usize,
        supervisor: &mut Supervisor,
        scoreboard: &Scoreboard,
        registry: &Registry,
    ) -> Vec<Input> {
        let mut inputs = Vec::new();
        loop {
            let Some(channel) = self.channels[slot].as_ref() else {
                return inputs;
            };
            match channel.recv(&mut self.recv_buf) {
                Ok(received) => match (received.message, received.fd) {
                    (Message::HandBack { origin, buffered }, Some(fd)) => {
                        let mut fleet = fleet(supervisor, &self.channels, scoreboard);
                        self.dispatcher.hand_back(fd, origin, buffered, &mut fleet);
                    }
                    (Message::Event(event), _) => inputs.push(Input::Event(slot, event)),
                    (other, _) => {
                        warn!(self.log, "unexpected message from worker"; "slot" => slot, "message" => ?other)
                    }
                },
                Err(ChannelError::WouldBlock) => return inputs,
                Err(ChannelError::Malformed(why)) => {
                    warn!(self.log, "malformed message from worker"; "slot" => slot, "why" => why);
                }
                Err(_) => {
                    // EOF or an error: nothing more comes, nothing more can be sent.
                    supervisor.workers_for_dispatch().channel_closed(slot);
                    let fd = channel.as_raw_fd();
                    let _ = registry.deregister(&mut mio::unix::SourceFd(&fd));
                    return inputs;
                }
            }
        }
    }
}

fn signal(pid: u32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), sig);
}

/// Up to `max` extra, random per worker.
fn jitter(max: u64) -> u64 {
    if max == 0 {
        0
    } else {
        random_u64() % (max + 1)
    }
}

/// A random number without a dependency: std's hasher keys are random per process.
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}
