//! The master's side of the template process (`--preload`).
//!
//! A template starts Python once (with `--preload application` it imports
//! the application too); workers are then forked from it on request. The
//! master keeps one: for the server's whole life with `interpreter` (no
//! application code is in it, so a reload does not touch it), one per
//! generation with `application`. A template starts while the master goes
//! on serving (its channel is in the master's poll): until it is ready,
//! `fork` answers `NotYet` and the supervisor asks again on its next turn,
//! so a reload with `application` never stalls the accept loop while the new
//! generation imports. A fork itself is one message and one answer (a few
//! milliseconds), so the master waits for that. Whenever the template
//! cannot deliver (refused because the application started threads,
//! failed to import, died, slower than `--startup-timeout`, slow to
//! answer), `fork` says `OnTheirOwn` and the worker is started the ordinary
//! way: a template can make starting faster and lighter, never impossible.

use crate::spawn::{self, Role, Spawned};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rwsgi_shared::channel::{Channel, ChannelError, Event, Message, Received};
use rwsgi_shared::config::Preload;
use slog::{info, warn, Logger};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Longest wait for a forked worker's answer.
const FORK_ANSWER: Duration = Duration::from_secs(5);
/// Templates that fail in a row before workers start on their own for good.
const GIVE_UP_AFTER: u32 = 3;

/// A running template.
struct Live {
    pid: u32,
    /// The generation whose application it imported (`application` only).
    generation: u32,
    channel: Channel,
    ready: bool,
    started: Instant,
}

/// What `fork` could do.
pub enum Fork {
    Forked(Spawned),
    /// The template is still starting: ask again later.
    NotYet,
    /// Start this worker the ordinary way.
    OnTheirOwn,
}

pub struct Templates {
    preload: Preload,
    binary: PathBuf,
    startup: Duration,
    live: Option<Live>,
    /// Templates that failed in a row.
    failures: u32,
    /// A generation whose template refused to fork (threads at import):
    /// its workers start on their own.
    refused: Option<u32>,
    log: Logger,
}

impl Templates {
    pub fn new(preload: Preload, binary: PathBuf, startup: Duration, log: Logger) -> Templates {
        Templates {
            preload,
            binary,
            startup,
            live: None,
            failures: 0,
            refused: None,
            log,
        }
    }

    /// The template's pid, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.live.as_ref().map(|l| l.pid)
    }

    /// The channel of a template that is starting, for the poll: it becomes
    /// readable when the template is ready (or failed, or died).
    pub fn starting_channel(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.live
            .as_ref()
            .filter(|l| !l.ready)
            .map(|l| l.channel.as_raw_fd())
    }

    /// The template process ended.
    pub fn died(&mut self, pid: u32, how: &str) {
        if self.pid() == Some(pid) {
            warn!(self.log, "template process ended: {how}"; "pid" => pid);
            self.live = None;
            self.failures += 1;
        }
    }

    /// Stops the template (the server is stopping): closing its channel ends it.
    pub fn stop(&mut self) {
        self.live = None;
    }

    /// Forks a worker for `slot` of `generation` from the template,
    /// starting the template first if needed. `claim` claims the slot in
    /// the scoreboard just before the fork is asked for (the worker runs
    /// before its pid is known) and gives the epoch the worker attaches to.
    pub fn fork(
        &mut self,
        (slot, generation): (usize, u32),
        claim: impl FnOnce() -> u32,
        scoreboard: BorrowedFd<'_>,
        config_bytes: &[u8],
    ) -> Fork {
        if self.preload == Preload::None
            || self.failures >= GIVE_UP_AFTER
            || self.refused == Some(generation)
        {
            return Fork::OnTheirOwn;
        }
        let stale = self
            .live
            .as_ref()
            .is_some_and(|l| self.preload == Preload::Application && l.generation != generation);
        if stale {
            // Dropping the channel ends the old generation's template.
            self.live = None;
        }
        if self.live.is_none() {
            self.live = self.start(generation, scoreboard, config_bytes);
        }
        let Some(live) = self.live.as_mut() else {
            return Fork::OnTheirOwn;
        };
        if !live.ready {
            match readiness(&live.channel) {
                Readiness::Ready => {
                    live.ready = true;
                    self.failures = 0;
                    info!(self.log, "template ready in {} ms", live.started.elapsed().as_millis();
                        "pid" => live.pid);
                }
                Readiness::Starting if live.started.elapsed() < self.startup => {
                    return Fork::NotYet
                }
                Readiness::Starting => {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(live.pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let why = format!("the template (pid {}) was not ready within --startup-timeout; workers start on their own", live.pid);
                    return self.give_up(why, true, Some(generation));
                }
                Readiness::Refused(why) => {
                    return self.give_up(
                        format!("workers start on their own: {why}"),
                        false,
                        Some(generation),
                    )
                }
                Readiness::Failed(why) => {
                    let why = format!("template not ready; workers start on their own: {why}");
                    return self.give_up(why, true, None);
                }
            }
        }
        let Some(live) = self.live.as_ref() else {
            return Fork::OnTheirOwn;
        };
        match fork_from(live, slot, generation, claim()) {
            Ok(spawned) => Fork::Forked(spawned),
            Err(why) => self.give_up(
                format!("cannot fork a worker from the template; starting it on its own: {why}"),
                true,
                None,
            ),
        }
    }

    /// Lets the template go (dropping its channel ends it): the worker at
    /// hand starts the ordinary way. `failed` counts towards giving up on
    /// templates; `refuse` is a generation whose workers all start so.
    fn give_up(&mut self, why: String, failed: bool, refuse: Option<u32>) -> Fork {
        warn!(self.log, "{}", why);
        if failed {
            self.failures += 1;
        }
        if refuse.is_some() {
            self.refused = refuse;
        }
        self.live = None;
        Fork::OnTheirOwn
    }

    fn start(
        &mut self,
        generation: u32,
        scoreboard: BorrowedFd<'_>,
        config_bytes: &[u8],
    ) -> Option<Live> {
        match spawn::spawn(
            &self.binary,
            Role::Template,
            generation,
            scoreboard,
            config_bytes,
        ) {
            Ok(Spawned { pid, channel }) => {
                info!(self.log, "started the template process"; "pid" => pid, "preload" => ?self.preload);
                Some(Live {
                    pid,
                    generation,
                    channel,
                    ready: false,
                    started: Instant::now(),
                })
            }
            Err(e) => {
                warn!(self.log, "cannot start the template process: {e}");
                self.failures += 1;
                None
            }
        }
    }
}

enum Readiness {
    Ready,
    Starting,
    /// The template will not fork (and said why).
    Refused(String),
    /// It died or said something else.
    Failed(String),
}

/// What a starting template said, without waiting.
fn readiness(channel: &Channel) -> Readiness {
    let mut buf = Vec::new();
    match channel.recv(&mut buf) {
        Ok(Received {
            message: Message::Event(Event::Ready),
            ..
        }) => Readiness::Ready,
        Ok(Received {
            message: Message::Event(Event::Failed(why)),
            ..
        }) => Readiness::Refused(why),
        Ok(other) => Readiness::Failed(format!("unexpected message {:?}", other.message)),
        Err(ChannelError::WouldBlock) => Readiness::Starting,
        Err(ChannelError::Closed) => Readiness::Failed("the template exited".to_owned()),
        Err(e) => Readiness::Failed(e.to_string()),
    }
}

/// Asks the template for a worker and waits for the worker's answer.
fn fork_from(live: &Live, slot: usize, generation: u32, epoch: u32) -> Result<Spawned, String> {
    let (ours, theirs) = Channel::pair().map_err(|e| e.to_string())?;
    let slot16 = u16::try_from(slot).map_err(|_| format!("slot {slot} out of range"))?;
    live.channel
        .send(
            &Message::Fork {
                slot: slot16,
                generation,
                epoch,
            },
            Some(theirs.as_fd()),
        )
        .map_err(|e| format!("the template did not take the request: {e}"))?;
    // Only the worker holds the other end from now on.
    drop(theirs);
    match recv_within(&live.channel, FORK_ANSWER)? {
        Message::Event(Event::Forked { slot: s, pid }) if s == slot16 => {
            ours.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(Spawned { pid, channel: ours })
        }
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// The next message on a non-blocking channel, waiting up to `within`.
fn recv_within(channel: &Channel, within: Duration) -> Result<Message, String> {
    let deadline = Instant::now() + within;
    let mut buf = Vec::new();
    loop {
        match channel.recv(&mut buf) {
            Ok(Received { message, .. }) => return Ok(message),
            Err(ChannelError::WouldBlock) => {}
            Err(ChannelError::Closed) => return Err("the template exited".to_owned()),
            Err(e) => return Err(e.to_string()),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no answer within {:.1} s", within.as_secs_f64()));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(channel.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}
