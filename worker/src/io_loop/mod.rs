//! The I/O thread: receives connections from the master, owns them while
//! they are idle or their request head or body is still arriving, and
//! queues complete requests for the request threads. It never touches the GIL.
//!
//! The loop is here; each of its parts has a module:
//! - `master`: the master's channel (connections handed over, stop orders,
//!   idle connections handed back while draining);
//! - `reading`: reading a connection, routing its head once, and `next`, the
//!   pure decision of what becomes of it; bodies received before queueing;
//! - `returns`: what the request threads and the lanes give back;
//! - `timers`: the sweep (idle, head and body timeouts, the heartbeat);
//! - `closing`: graceful and immediate closes;
//! - `table`: the connection table and its budget;
//! - `status_page`: `--server-status`.

mod closing;
mod master;
mod reading;
mod returns;
mod status_page;
mod table;
mod timers;

use crate::conn::Conn;
use crate::handoff::{Handoff, WAKER};
use crate::receiving::Receiving;
use closing::Closing;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rwsgi_shared::channel::Channel;
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::scoreboard::Scoreboard;
use slog::{info, warn, Logger};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use table::Fds;

pub(crate) use reading::{next, Next, Rules};

const CHANNEL: Token = Token(0);
const FIRST_CONN: usize = 2;
const SWEEP: Duration = Duration::from_millis(250);

pub struct Context<'a> {
    pub config: &'a ServerConfig,
    pub channel: Channel,
    pub poll: Poll,
    pub handoff: &'a Arc<Handoff>,
    pub scoreboard: &'a Scoreboard,
    pub slot: usize,
    /// Static files: answered by their own threads, never by Python.
    pub statics: &'a crate::static_lanes::StaticLanes,
    /// `--trust-proxy`: whose PROXY preamble is read, who sees the status page.
    pub proxy: &'a rwsgi_http::forwarded::Rules,
    /// `--https-port`: the thread that terminates TLS.
    pub tls: Option<&'a crate::tls::Bridge>,
    /// `--http2`: the thread that speaks h2 (h2c connections go to it).
    pub http2: Option<&'a crate::http2::H2>,
    pub log: &'a Logger,
}

enum Entry {
    Idle(Conn),
    /// A request thread owns the connection; it stays registered.
    Busy,
    /// A static-file lane owns the connection, and watches it in its own
    /// poller. It is not watched here meanwhile: a lane serves request
    /// after request on a keep-alive connection, and each arrival would
    /// otherwise wake this thread for nothing (a tenth of the core went to
    /// those wake-ups in the static 4 KiB benchmark).
    Lane,
    /// Closing: our side is shut down for writing, and what the client
    /// still sends is read and dropped until it closes too, or a deadline.
    Closing(Closing),
    /// The request's body is being received here, before a request
    /// thread gets it.
    Body(Box<Receiving>),
}

impl Entry {
    /// The connection this loop holds in the entry, if it holds one (a
    /// request thread or a lane has it otherwise).
    fn held(&self) -> Option<&Conn> {
        match self {
            Entry::Idle(conn) => Some(conn),
            Entry::Closing(c) => Some(&c.conn),
            Entry::Body(r) => Some(&r.conn),
            Entry::Busy | Entry::Lane => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serving,
    /// Finishing in-flight requests before exiting; idle connections go back
    /// to the master when `hand_back` is set, else they are closed.
    Draining {
        deadline: Instant,
        hand_back: bool,
    },
}

struct IoLoop<'a> {
    ctx: Context<'a>,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    mode: Mode,
    recv_buf: Vec<u8>,
    /// Connections closed by `make_room` since the last sweep.
    shed: u64,
    /// Connections whose body had more to read when their turn ended: read
    /// again after this round of events (epoll will not report them again).
    again: Vec<usize>,
    fds: Fds,
    /// Per token: whether the connection's socket is registered in the
    /// poller (see `IoLoop::watch`).
    watched: Vec<bool>,
}

pub fn run(ctx: Context<'_>) -> std::io::Result<()> {
    ctx.channel
        .set_nonblocking(true)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let fd = ctx.channel.as_raw_fd();
    ctx.poll
        .registry()
        .register(&mut SourceFd(&fd), CHANNEL, Interest::READABLE)?;
    let mut io = IoLoop {
        ctx,
        entries: Vec::new(),
        free: Vec::new(),
        mode: Mode::Serving,
        recv_buf: Vec::new(),
        shed: 0,
        again: Vec::new(),
        watched: Vec::new(),
        fds: Fds {
            limit: rwsgi_shared::rlimit::nofile().0,
            baseline: std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count() as u64),
        },
    };
    io.publish_fd_headroom(true);
    io.main()
}

impl IoLoop<'_> {
    fn main(&mut self) -> std::io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut returns = Vec::new();
        let mut last_sweep = Instant::now();
        loop {
            let timeout = if !self.again.is_empty() {
                Duration::ZERO
            } else if self.ctx.handoff.io_sleep() {
                SWEEP
            } else {
                Duration::ZERO
            };
            let polled = self.ctx.poll.poll(&mut events, Some(timeout));
            self.ctx.handoff.io_awake();
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.token() {
                    CHANNEL => self.read_channel(),
                    WAKER => {}
                    Token(t) => self.read_conn(t - FIRST_CONN),
                }
            }
            for token in std::mem::take(&mut self.again) {
                self.receive(token);
            }
            self.ctx.handoff.take_returns(&mut returns);
            for r in returns.drain(..) {
                self.returned(r);
            }
            if last_sweep.elapsed() >= SWEEP {
                last_sweep = Instant::now();
                self.sweep();
            }
            if let Mode::Draining { deadline, .. } = self.mode {
                let busy = self
                    .entries
                    .iter()
                    .any(|e| matches!(e, Some(Entry::Busy | Entry::Lane | Entry::Body(_))));
                // An h2 stream whose request is on its way here counts too.
                let idle = !busy
                    && self.ctx.handoff.queued() == 0
                    && self.ctx.http2.is_none_or(|h| h.quiet());
                match drain_end(idle, Instant::now(), deadline) {
                    None => {}
                    Some(DrainEnd::Drained) => {
                        info!(self.ctx.log, "drained; exiting");
                        return Ok(());
                    }
                    Some(DrainEnd::Overdue) => {
                        warn!(
                            self.ctx.log,
                            "requests still running at the end of --graceful-timeout; exiting anyway"
                        );
                        return Ok(());
                    }
                }
            }
        }
    }

    pub(super) fn metrics(&self) -> Option<&rwsgi_shared::metrics::Metrics> {
        self.ctx
            .scoreboard
            .worker(self.ctx.slot)
            .map(|sb| sb.metrics())
    }
}

/// Why a draining loop ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrainEnd {
    /// Nothing is running, queued, or arriving any more.
    Drained,
    /// `--graceful-timeout` (or the eviction's) is over.
    Overdue,
}

/// Whether a draining loop is done: when nothing is in flight (`idle`), or
/// at its deadline even if something is.
fn drain_end(idle: bool, now: Instant, deadline: Instant) -> Option<DrainEnd> {
    if idle {
        Some(DrainEnd::Drained)
    } else if now > deadline {
        Some(DrainEnd::Overdue)
    } else {
        None
    }
}

fn deadline(within_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(within_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draining_loop_ends_when_idle_or_at_its_deadline() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(drain_end(true, now, later), Some(DrainEnd::Drained));
        assert_eq!(drain_end(true, later, now), Some(DrainEnd::Drained));
        assert_eq!(drain_end(false, now, later), None);
        assert_eq!(drain_end(false, later, now), Some(DrainEnd::Overdue));
    }
}
