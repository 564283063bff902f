//! The I/O thread: receives connections from the master, owns them while
//! they are idle or their request head or body is still arriving, and
//! queues complete requests for the request threads. It never touches the GIL.

use crate::conn::{Conn, READ_CHUNK};
use crate::host_gate::Gate;
use crate::net;
use crate::pool::{GuardedStatic, Job, Pool, Returned, WAKER};
use crate::receiving::{Pump, Receiving};
use crate::route::{route, Routed};
use crate::spool::Spooled;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rwsgi_http::proxy_protocol::{self, Preamble};
use rwsgi_http::{body_plan, BodyPlan, HttpError, RequestHead};
use rwsgi_shared::channel::{Channel, ChannelError, Control, Message};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::scoreboard::{Scoreboard, WorkerState};
use slog::{debug, info, warn, Logger};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHANNEL: Token = Token(0);
const FIRST_CONN: usize = 2;
const SWEEP: Duration = Duration::from_millis(250);
/// Descriptors kept free for what a request opens (static files, the
/// application's own), on top of those the connections use.
const FD_RESERVE: u64 = 16;
/// A closing connection is read and drained for at most this long (as
/// Apache's lingering close and nginx's `lingering_time`): a client that is
/// still sending an upload at line rate when its 413 goes out must finish
/// sending before it reads the answer (curl does), and a reset before then
/// would throw the answer away…
const LINGER_MAX: Duration = Duration::from_secs(30);
/// …for at most this long without receiving anything (nginx's
/// `lingering_timeout`: git's pack-objects can pause that long between
/// chunks while it compresses)…
const LINGER_IDLE: Duration = Duration::from_secs(5);
/// …and for at most this many bytes.
const LINGER_BYTES: u64 = 256 * 1024 * 1024;
/// Read size while draining.
const LINGER_READ: usize = 64 * 1024;
/// A draining worker waits at most this long for room in the channel to
/// hand back one connection (the master reads it between other work).
const HAND_BACK_PATIENCE: Duration = Duration::from_millis(500);

pub struct Context<'a> {
    pub config: &'a ServerConfig,
    pub channel: Channel,
    pub poll: Poll,
    pub pool: &'a Arc<Pool>,
    pub scoreboard: &'a Scoreboard,
    pub slot: usize,
    /// Static files: answered by their own threads, never by Python.
    pub statics: &'a crate::statics::Statics,
    /// `--trust-proxy`: whose PROXY preamble is read, who sees the status page.
    pub proxy: &'a rwsgi_http::forwarded::Rules,
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

struct Closing {
    conn: Conn,
    until: Instant,
    last_read: Instant,
    /// Bytes it may still drain.
    left: u64,
}

impl Closing {
    fn drain(&mut self) -> Drained {
        drain_input(&mut self.conn, &mut self.left)
    }
}

/// What a closing connection's socket says.
enum Drained {
    /// The client closed, or the socket failed: close now.
    Over,
    /// Nothing more for now.
    Pending,
}

/// Reads and drops whatever has arrived, `left` bytes at most.
fn drain_input(conn: &mut Conn, left: &mut u64) -> Drained {
    loop {
        conn.buf.clear();
        match net::try_read(&conn.stream, &mut conn.buf, LINGER_READ) {
            Ok(Some(0)) | Err(_) => return Drained::Over,
            Ok(Some(n)) => match left.checked_sub(n as u64) {
                Some(l) => *left = l,
                None => return Drained::Over,
            },
            Ok(None) => return Drained::Pending,
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
}

/// This process's descriptors: the limit, and how many were open before
/// the first connection (the application's own among them).
struct Fds {
    limit: u64,
    baseline: u64,
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
            } else if self.ctx.pool.io_sleep() {
                SWEEP
            } else {
                Duration::ZERO
            };
            let polled = self.ctx.poll.poll(&mut events, Some(timeout));
            self.ctx.pool.io_awake();
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
            self.ctx.pool.take_returns(&mut returns);
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
                if !busy && self.ctx.pool.queued() == 0 {
                    info!(self.ctx.log, "drained; exiting");
                    return Ok(());
                }
                if Instant::now() > deadline {
                    warn!(
                        self.ctx.log,
                        "requests still running at the end of --graceful-timeout; exiting anyway"
                    );
                    return Ok(());
                }
            }
        }
    }

    // --- the master's channel ---

    fn read_channel(&mut self) {
        loop {
            match self.ctx.channel.recv(&mut self.recv_buf) {
                Ok(received) => match (received.message, received.fd) {
                    (
                        Message::Handoff {
                            mut origin,
                            buffered,
                            accepted_at_us,
                        },
                        Some(fd),
                    ) => {
                        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
                            sb.note_accepted();
                        }
                        let stream = TcpStream::from(fd);
                        if stream.set_nonblocking(true).is_err() {
                            continue;
                        }
                        if !self.ctx.config.proxy_protocol {
                            origin.expect_no_preamble();
                        }
                        let mut conn = Conn::new(stream, origin, buffered);
                        // Both clocks are the machine's monotonic clock.
                        let waited = rwsgi_shared::time::now_us().saturating_sub(accepted_at_us);
                        conn.accepted_at =
                            Instant::now().checked_sub(Duration::from_micros(waited));
                        self.adopt(conn);
                    }
                    (Message::Control(Control::GracefulStop), _) => {
                        self.drain(true, self.ctx.config.timeouts.graceful_ms)
                    }
                    (Message::Control(Control::Evict), _) => {
                        self.drain(true, self.ctx.config.timeouts.eviction())
                    }
                    (other, _) => {
                        warn!(self.ctx.log, "unexpected channel message"; "message" => ?other)
                    }
                },
                Err(ChannelError::WouldBlock) => return,
                Err(ChannelError::Malformed(why)) => {
                    // A hand-off whose socket could not be received (no
                    // descriptor left): counted, so the master's count of
                    // connections in flight stays true, and logged.
                    if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
                        sb.note_accepted();
                    }
                    warn!(self.ctx.log, "a message from the master was lost"; "why" => why);
                    self.publish_fd_headroom(true);
                }
                Err(e) => {
                    // The master is gone: finish what is running, then exit.
                    if self.mode == Mode::Serving {
                        warn!(self.ctx.log, "lost the master ({}); draining", e);
                    }
                    let fd = self.ctx.channel.as_raw_fd();
                    let _ = self.ctx.poll.registry().deregister(&mut SourceFd(&fd));
                    self.drain(false, self.ctx.config.timeouts.graceful_ms);
                    return;
                }
            }
        }
    }

    /// Stops taking connections; in-flight requests have `within_ms`.
    fn drain(&mut self, hand_back: bool, within_ms: u64) {
        if let Mode::Draining { .. } = self.mode {
            if !hand_back {
                self.mode = Mode::Draining {
                    deadline: deadline(within_ms),
                    hand_back: false,
                };
            }
            return;
        }
        info!(self.ctx.log, "draining: finishing in-flight requests");
        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
            sb.set_state(WorkerState::Draining);
        }
        self.mode = Mode::Draining {
            deadline: deadline(within_ms),
            hand_back,
        };
        for token in 0..self.entries.len() {
            if matches!(self.entries[token], Some(Entry::Idle(_))) {
                if let Some(Entry::Idle(conn)) = self.take(token) {
                    self.give_up(conn);
                }
            }
        }
    }

    /// While draining: an idle connection goes back to the master (with any
    /// bytes already read) so a reload closes nothing; otherwise it is closed.
    fn give_up(&mut self, conn: Conn) {
        let fd = conn.stream.as_raw_fd();
        let _ = self.ctx.poll.registry().deregister(&mut SourceFd(&fd));
        if let Mode::Draining {
            hand_back: true, ..
        } = self.mode
        {
            let msg = Message::HandBack {
                origin: conn.origin,
                buffered: conn.buf.clone(),
            };
            // The master reads its channel between other work: a burst of
            // hand-backs waits for room rather than losing connections.
            if let Err(e) = self.ctx.channel.send_waiting(
                &msg,
                Some(std::os::fd::AsFd::as_fd(&conn.stream)),
                HAND_BACK_PATIENCE,
            ) {
                warn!(self.ctx.log, "could not hand a connection back to the master; closing it";
                    "error" => %e, "buffered" => conn.buf.len(), "client" => %conn.origin);
            }
        }
    }

    // --- connections ---

    /// `--server-status`: the status page, for loopback clients only (as
    /// mod_wsgi-express allows it) after the trust rules, answered here
    /// without Python.
    fn server_status(&self, conn: &Conn, head: &rwsgi_http::RequestHead) {
        use std::io::Write as _;
        let (status, kind, body) = if !self
            .ctx
            .proxy
            .allows_status_page(&conn.origin, &head.headers)
        {
            (
                403,
                "text/plain; charset=utf-8",
                "403 Forbidden\n".to_owned(),
            )
        } else {
            let s = rwsgi_shared::status::Status::read(
                self.ctx.scoreboard,
                rwsgi_shared::time::now_ms(),
            );
            if head.query.split('&').any(|p| p == "json") {
                (200, "application/json", format!("{}\n", s.json()))
            } else {
                (200, "text/html; charset=utf-8", s.html())
            }
        };
        let mut dates = rwsgi_http::DateCache::default();
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nServer: {}\r\nDate: {}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
            rwsgi_http::reason_phrase(status),
            rwsgi_http::SERVER_HEADER,
            dates.now(),
            body.len()
        )
        .into_bytes();
        if head.method != "HEAD" {
            out.extend_from_slice(body.as_bytes());
        }
        // Best effort on the non-blocking socket: a status page is a few KiB.
        let _ = (&conn.stream).write_all(&out);
    }

    fn metrics(&self) -> Option<&rwsgi_shared::metrics::Metrics> {
        self.ctx
            .scoreboard
            .worker(self.ctx.slot)
            .map(|sb| sb.metrics())
    }

    /// The connections this worker holds at most: its share of
    /// `--max-clients`, and never so many that a hand-off could find no
    /// descriptor to arrive in (the kernel would drop the socket).
    fn budget(&self) -> usize {
        let c = self.ctx.config;
        connection_budget(c.max_clients, c.processes, &self.fds)
    }

    /// At the budget, closes the connections that have gone longest
    /// without a complete request head (idle keep-alive ones, slow or
    /// silent new ones) so a new client can be held. Busy connections are
    /// never touched. This is what makes idle connections cheap: a flood of
    /// slow clients costs the oldest of them their connection, not new
    /// clients their service.
    fn make_room(&mut self) {
        let held = self.entries.len() - self.free.len();
        if held < self.budget() {
            return;
        }
        let oldest = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(token, e)| match e {
                Some(Entry::Idle(conn)) => Some((conn.since, token)),
                // A body trickling in is a slow client too.
                Some(Entry::Body(r)) => Some((r.conn.since, token)),
                _ => None,
            })
            .min();
        if let Some((_, token)) = oldest {
            self.shed += 1;
            self.drop_conn(token);
        }
    }

    fn insert(&mut self, entry: Entry) -> usize {
        let token = match self.free.pop() {
            Some(t) => {
                self.entries[t] = Some(entry);
                t
            }
            None => {
                self.entries.push(Some(entry));
                self.entries.len() - 1
            }
        };
        self.publish_connections();
        token
    }

    fn take(&mut self, token: usize) -> Option<Entry> {
        let e = self.entries.get_mut(token)?.take();
        if e.is_some() {
            self.free.push(token);
            self.publish_connections();
        }
        e
    }

    /// The master reads this to enforce `--max-clients`.
    fn publish_connections(&self) {
        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
            sb.set_connections(self.entries.len() - self.free.len());
        }
        self.publish_fd_headroom(false);
    }

    /// How many more descriptors this worker can open, for the master's
    /// dispatch: estimated from the connections held, counted exactly in
    /// /proc when the estimate nears the limit (or `exact`).
    fn publish_fd_headroom(&self, exact: bool) {
        let held = (self.entries.len() - self.free.len()) as u64;
        let mut used = self.fds.baseline + held;
        if exact || used * 2 > self.fds.limit {
            if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
                used = dir.count() as u64;
            }
        }
        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
            sb.set_fd_headroom(self.fds.limit.saturating_sub(used));
        }
    }

    fn adopt(&mut self, conn: Conn) {
        if let Mode::Draining { .. } = self.mode {
            self.give_up(conn);
            return;
        }
        self.make_room();
        let fd = conn.stream.as_raw_fd();
        let token = self.insert(Entry::Idle(conn));
        if let Err(e) = self.ctx.poll.registry().register(
            &mut SourceFd(&fd),
            Token(token + FIRST_CONN),
            Interest::READABLE,
        ) {
            warn!(self.ctx.log, "cannot watch a connection"; "error" => %e);
            self.take(token);
            return;
        }
        self.read_conn(token);
    }

    fn returned(&mut self, r: Returned) {
        let (token, conn) = match &r {
            Returned::Idle(token, conn) | Returned::Close(token, conn) => (token, conn),
            Returned::Closed(token) => {
                // Its socket is closed (which took it out of the poll):
                // only the entry is left to free.
                self.take(*token);
                return;
            }
        };
        if let Some(slot @ Some(Entry::Lane)) = self.entries.get_mut(*token) {
            *slot = Some(Entry::Busy);
            // Watched here again from now on (a closing connection too: its
            // client's FIN must wake this loop).
            let fd = conn.stream.as_raw_fd();
            if let Err(e) = self.ctx.poll.registry().register(
                &mut SourceFd(&fd),
                Token(token + FIRST_CONN),
                Interest::READABLE,
            ) {
                warn!(self.ctx.log, "cannot watch a connection"; "error" => %e);
                // Dropping `r` closes the socket.
                self.take(*token);
                return;
            }
        }
        match r {
            Returned::Closed(_) => {}
            Returned::Close(token, conn) => self.close(token, conn),
            Returned::Idle(token, mut conn) => {
                if let Mode::Draining { .. } = self.mode {
                    self.take(token);
                    self.give_up(conn);
                    return;
                }
                conn.since = Instant::now();
                if let Some(slot) = self.entries.get_mut(token) {
                    *slot = Some(Entry::Idle(conn));
                }
                // Bytes may have arrived while a request thread had it.
                self.read_conn(token);
            }
        }
    }

    /// Reads what the client sent; queues the request once its head is complete.
    fn read_conn(&mut self, token: usize) {
        let limits = self.ctx.config.limits;
        let conn = match self.entries.get_mut(token) {
            Some(Some(Entry::Idle(conn))) => conn,
            Some(Some(Entry::Body(_))) => return self.receive(token),
            Some(Some(Entry::Closing(closing))) => {
                match closing.drain() {
                    Drained::Over => self.drop_conn(token),
                    Drained::Pending => closing.last_read = Instant::now(),
                }
                return;
            }
            _ => return,
        };
        let files = self.ctx.statics.files();
        let outcome = loop {
            // --proxy-protocol: the load balancer names the client first,
            // and only a peer --trust-proxy trusts may (asked again of a
            // connection another worker read the preamble of).
            if let Err(e) = self.ctx.proxy.admits_preamble(&conn.origin) {
                info!(self.ctx.log, "connection refused (--proxy-protocol)"; "why" => %e, "peer" => %conn.origin.peer());
                break Err(None);
            }
            if !conn.origin.preamble_done() {
                match proxy_protocol::parse(&conn.buf) {
                    Preamble::Partial => {}
                    Preamble::Complete { len, client } => {
                        conn.buf.drain(..len);
                        match self.ctx.proxy.believe_preamble(&mut conn.origin, client) {
                            Ok(()) => continue,
                            Err(_) => break Err(None),
                        }
                    }
                    Preamble::Invalid(why) => {
                        info!(self.ctx.log, "connection refused (--proxy-protocol)"; "why" => why, "peer" => %conn.origin.peer());
                        break Err(None);
                    }
                }
            }
            if conn.origin.preamble_done() && !conn.buf.is_empty() {
                let gate = Gate {
                    vhost: self.ctx.config.virtual_host.as_ref(),
                    proxy: self.ctx.proxy,
                    origin: &conn.origin,
                };
                match route(&conn.buf, &limits, files, &gate) {
                    Routed::Partial => {}
                    Routed::Refused(e) => break Err(Some(e)),
                    complete => break Ok(Some(complete)),
                }
            }
            let before = conn.buf.len();
            match net::try_read(&conn.stream, &mut conn.buf, READ_CHUNK) {
                Ok(Some(0)) => break Err(None),
                Ok(Some(_)) => {
                    if before == 0 {
                        conn.since = Instant::now();
                    }
                }
                Ok(None) => break Ok(None),
                Err(_) => break Err(None),
            }
        };
        match outcome {
            Ok(None) => {}
            Ok(Some(routed)) => {
                let Some(Entry::Idle(mut conn)) = self.entries[token].replace(Entry::Busy) else {
                    return;
                };
                let head = match routed {
                    // --auth-user-script, --host-access-script: a request
                    // thread runs them first, then hands the request to a lane.
                    Routed::Static(head, used, resolution) if self.ctx.config.guard.enabled() => {
                        conn.buf.drain(..used);
                        let guarded = GuardedStatic {
                            resolution,
                            proxy: None,
                        };
                        self.queue_job(token, conn, head, None, Some(guarded));
                        return;
                    }
                    Routed::Static(head, used, resolution) => {
                        conn.buf.drain(..used);
                        conn.accepted_at = None;
                        let fd = conn.stream.as_raw_fd();
                        if self
                            .ctx
                            .poll
                            .registry()
                            .deregister(&mut SourceFd(&fd))
                            .is_ok()
                        {
                            self.entries[token] = Some(Entry::Lane);
                        }
                        self.ctx.statics.serve(token, conn, head, resolution);
                        return;
                    }
                    Routed::Proxy(head, used, target) if self.ctx.config.guard.enabled() => {
                        conn.buf.drain(..used);
                        let guarded = GuardedStatic {
                            resolution: None,
                            proxy: Some(target),
                        };
                        self.queue_job(token, conn, head, None, Some(guarded));
                        return;
                    }
                    Routed::Proxy(head, used, target) => {
                        conn.buf.drain(..used);
                        let fd = conn.stream.as_raw_fd();
                        let registry = self.ctx.poll.registry();
                        if registry.deregister(&mut SourceFd(&fd)).is_ok() {
                            self.entries[token] = Some(Entry::Lane);
                        }
                        crate::proxy_pass::serve(self.ctx.pool, token, conn, head, target);
                        return;
                    }
                    Routed::App(head, used)
                        if self.ctx.config.server_status && head.path == "/server-status" =>
                    {
                        conn.buf.drain(..used);
                        self.server_status(&conn, &head);
                        self.close(token, conn);
                        return;
                    }
                    Routed::App(head, used) => {
                        conn.buf.drain(..used);
                        head
                    }
                    Routed::Redirect(to) => {
                        crate::host_gate::send_redirect(&conn, &to, self.ctx.log);
                        self.close(token, conn);
                        return;
                    }
                    // Not produced by the loop above.
                    Routed::Partial | Routed::Refused(_) => {
                        self.entries[token] = Some(Entry::Idle(conn));
                        return;
                    }
                };
                let stream = self.ctx.config.chunked_request;
                if let BodyPlan::Receive { send_continue } =
                    body_plan(&head, conn.buf.len(), stream)
                {
                    self.start_receiving(token, conn, head, send_continue);
                    return;
                }
                self.queue(token, conn, head, None);
            }
            Err(None) => self.drop_conn(token),
            Err(Some(e)) => {
                if let Some(Entry::Idle(conn)) = self.entries[token].replace(Entry::Busy) {
                    conn.reject(&e, &limits, self.metrics(), self.ctx.log);
                    self.close(token, conn);
                }
            }
        }
    }

    fn queue(&mut self, token: usize, conn: Conn, head: RequestHead, body: Option<Spooled>) {
        self.queue_job(token, conn, head, body, None);
    }

    fn queue_job(
        &mut self,
        token: usize,
        mut conn: Conn,
        head: RequestHead,
        body: Option<Spooled>,
        guarded_static: Option<GuardedStatic>,
    ) {
        let queued_at = conn.accepted_at.take().unwrap_or_else(Instant::now);
        let n = self.ctx.pool.push(Job {
            conn,
            head,
            token,
            queued_at,
            body,
            guarded_static,
        });
        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
            sb.set_queued(n);
        }
    }

    /// Holds the connection here until its request's body has arrived
    /// (see `receiving`); answers `100 Continue` first when it is owed,
    /// as nginx does when it buffers a body.
    fn start_receiving(
        &mut self,
        token: usize,
        mut conn: Conn,
        head: RequestHead,
        send_continue: bool,
    ) {
        use std::io::Write as _;
        const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        // The wait for a thread starts when the body is complete.
        conn.accepted_at = None;
        let receiving = Receiving::new(conn, head, self.ctx.config.limits.request_body);
        // A fresh socket's send buffer takes 25 bytes whole, or is broken.
        let sent = !send_continue
            || matches!((&receiving.conn.stream).write(CONTINUE), Ok(n) if n == CONTINUE.len());
        self.entries[token] = Some(Entry::Body(Box::new(receiving)));
        if !sent {
            self.drop_conn(token);
            return;
        }
        self.receive(token);
    }

    /// Takes what has arrived of a body; queues the request once it is whole.
    fn receive(&mut self, token: usize) {
        let Some(Some(Entry::Body(r))) = self.entries.get_mut(token) else {
            return;
        };
        let pumped = r.pump();
        match pumped {
            Pump::Pending => return,
            Pump::Yield => return self.again.push(token),
            _ => {}
        }
        let Some(Entry::Body(r)) = self.entries[token].replace(Entry::Busy) else {
            return;
        };
        let (conn, head, spooled) = r.finish();
        let error = match (pumped, spooled) {
            (Pump::Complete, Ok(body)) => return self.queue(token, conn, head, Some(body)),
            (Pump::Refused(e), _) => e,
            (Pump::Failed(e), _) | (Pump::Complete, Err(e)) => {
                warn!(self.ctx.log, "cannot store a request body"; "error" => %e);
                HttpError::new(500, "request body could not be stored")
            }
            // The client left mid-body (or its socket failed): nobody to answer.
            (Pump::Closed | Pump::Pending | Pump::Yield, _) => {
                debug!(self.ctx.log, "the client closed the connection before sending the whole request body"; "client" => %conn.origin);
                self.entries[token] = Some(Entry::Idle(conn));
                return self.drop_conn(token);
            }
        };
        let limits = self.ctx.config.limits;
        conn.reject(&error, &limits, self.metrics(), self.ctx.log);
        self.close(token, conn);
    }

    /// Closes a connection the way RFC 9112 9.6 recommends: shut down our
    /// side for writing (the response already queued goes out with a FIN),
    /// then read and drop what the client still sends, for a bounded time.
    /// Closing with unread bytes in the socket would send a reset instead,
    /// and a reset makes the client's kernel throw away the response it has
    /// not read yet: a 413 for an upload still in flight would reach curl
    /// as "connection reset".
    fn close(&mut self, token: usize, mut conn: Conn) {
        let _ = conn.stream.shutdown(std::net::Shutdown::Write);
        let mut left = LINGER_BYTES;
        if let Drained::Over = drain_input(&mut conn, &mut left) {
            let fd = conn.stream.as_raw_fd();
            let _ = self.ctx.poll.registry().deregister(&mut SourceFd(&fd));
            self.take(token);
            return;
        }
        let now = Instant::now();
        let closing = Entry::Closing(Closing {
            conn,
            until: now + LINGER_MAX,
            last_read: now,
            left,
        });
        // The connection stays registered under its token, so a FIN or
        // more data wakes the loop.
        if let Some(slot @ Some(_)) = self.entries.get_mut(token) {
            *slot = Some(closing);
        }
    }

    /// Forgets a connection and closes its socket.
    fn drop_conn(&mut self, token: usize) {
        let conn = match self.take(token) {
            Some(Entry::Idle(conn)) => conn,
            Some(Entry::Closing(c)) => c.conn,
            Some(Entry::Body(r)) => r.conn,
            // A request thread gave the connection up: its socket is closed.
            Some(Entry::Busy | Entry::Lane) | None => return,
        };
        let fd = conn.stream.as_raw_fd();
        let _ = self.ctx.poll.registry().deregister(&mut SourceFd(&fd));
    }

    /// A body past `--body-timeout` (as extended, up to `--body-max-timeout`):
    /// answered 408, unless what has arrived meanwhile completes it.
    fn body_expired(&mut self, token: usize) {
        self.receive(token);
        if !matches!(self.entries[token], Some(Entry::Body(_))) {
            return;
        }
        if let Some(Entry::Body(r)) = self.entries[token].replace(Entry::Busy) {
            let conn = r.into_conn();
            let e = HttpError::new(408, "request body not received in time");
            conn.reject(&e, &self.ctx.config.limits, self.metrics(), self.ctx.log);
            self.close(token, conn);
        }
    }

    /// Closes idle connections past their timeouts; refreshes the heartbeat.
    ///
    /// A head gets `--header-timeout`, one more second per `--header-min-rate`
    /// bytes received, and never more than `--header-max-timeout` (the
    /// mod_reqtimeout rule), so a slow-loris client is cut off while a slow
    /// but honest one is not.
    fn sweep(&mut self) {
        let t = self.ctx.config.timeouts;
        let limits = self.ctx.config.limits;
        let mut idle = 0;
        for token in 0..self.entries.len() {
            let now = Instant::now();
            match &self.entries[token] {
                Some(Entry::Closing(c)) => {
                    if closing_over(c, now) {
                        self.drop_conn(token);
                    }
                    continue;
                }
                Some(Entry::Idle(conn)) if expiry(conn, now, &t).is_some() => {}
                Some(Entry::Idle(_)) => {
                    idle += 1;
                    continue;
                }
                Some(Entry::Body(r)) => {
                    if r.expired(now, &t) {
                        self.body_expired(token);
                    }
                    continue;
                }
                _ => continue,
            }
            // Bytes may have arrived since the connection was last read (the
            // loop was busy, or the process was stopped): a request that is
            // here is served, never answered with a close.
            self.read_conn(token);
            let verdict = match &self.entries[token] {
                Some(Entry::Idle(conn)) => expiry(conn, Instant::now(), &t),
                _ => continue,
            };
            match verdict {
                None => idle += 1,
                Some(Expiry::Head) => {
                    if let Some(Entry::Idle(conn)) = self.entries[token].replace(Entry::Busy) {
                        let e = HttpError::new(408, "request head not received in time");
                        conn.reject(&e, &limits, self.metrics(), self.ctx.log);
                        self.close(token, conn);
                    }
                }
                Some(Expiry::KeepAlive) => self.drop_conn(token),
            }
        }
        if self.shed > 0 {
            info!(self.ctx.log, "at --max-clients: closed the connections waiting longest for a request head";
                "closed" => self.shed, "per_worker" => self.budget());
            self.shed = 0;
        }
        self.publish_fd_headroom(false);
        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
            sb.heartbeat();
            sb.set_idle_connections(idle);
        }
    }
}

/// Why an idle connection is due to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// Idle between requests past `--keep-alive-timeout`: closed quietly.
    KeepAlive,
    /// A head that did not arrive in time: answered 408.
    Head,
}

fn expiry(conn: &Conn, now: Instant, t: &rwsgi_shared::config::Timeouts) -> Option<Expiry> {
    idle_expiry(
        conn.buf.len(),
        conn.served,
        now.duration_since(conn.since),
        t,
    )
}

/// Whether a connection without a request running is due to close, having
/// `buffered` bytes of a head, `served` requests before, and `waited` since
/// it came or its head began.
fn idle_expiry(
    buffered: usize,
    served: u64,
    waited: Duration,
    t: &rwsgi_shared::config::Timeouts,
) -> Option<Expiry> {
    if buffered == 0 && served > 0 {
        (waited > Duration::from_millis(t.keep_alive_ms)).then_some(Expiry::KeepAlive)
    } else if buffered == 0 {
        // A new connection that has sent nothing yet: the head timeout,
        // closed without an answer (there is no request to answer).
        (waited > head_allowance(t, 0)).then_some(Expiry::KeepAlive)
    } else {
        (waited > head_allowance(t, buffered)).then_some(Expiry::Head)
    }
}

/// The connections a worker holds at most (see `IoLoop::budget`): its share
/// of `--max-clients`, within what its descriptor limit leaves after the
/// descriptors it had before the first connection and a reserve.
fn connection_budget(max_clients: usize, processes: usize, fds: &Fds) -> usize {
    let share = max_clients.div_ceil(processes.max(1)).max(1);
    let reserve = 2 * FD_RESERVE;
    let fits = fds.limit.saturating_sub(fds.baseline + reserve).max(1);
    share.min(usize::try_from(fits).unwrap_or(usize::MAX))
}

/// A closing connection is dropped at its deadline, or once the client
/// has sent nothing for `LINGER_IDLE`.
fn closing_over(c: &Closing, now: Instant) -> bool {
    closing_due(now, c.until, c.last_read)
}

fn closing_due(now: Instant, until: Instant, last_read: Instant) -> bool {
    now > until || now.duration_since(last_read) > LINGER_IDLE
}

fn head_allowance(t: &rwsgi_shared::config::Timeouts, received: usize) -> Duration {
    let extra_ms = (received as u64 * 1000)
        .checked_div(t.header_min_rate)
        .unwrap_or(0);
    Duration::from_millis((t.header_ms + extra_ms).min(t.header_max_ms.max(t.header_ms)))
}

fn deadline(within_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(within_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rwsgi_shared::config::Timeouts;

    fn timeouts() -> Timeouts {
        Timeouts {
            keep_alive_ms: 5_000,
            header_ms: 10_000,
            header_max_ms: 30_000,
            header_min_rate: 500,
            ..Timeouts::default()
        }
    }

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn an_idle_keep_alive_connection_closes_quietly_after_its_timeout() {
        let t = timeouts();
        assert_eq!(idle_expiry(0, 1, secs(5), &t), None);
        assert_eq!(idle_expiry(0, 1, secs(6), &t), Some(Expiry::KeepAlive));
    }

    #[test]
    fn a_new_silent_connection_gets_the_head_timeout_and_no_answer() {
        let t = timeouts();
        assert_eq!(idle_expiry(0, 0, secs(9), &t), None);
        assert_eq!(idle_expiry(0, 0, secs(11), &t), Some(Expiry::KeepAlive));
    }

    #[test]
    fn a_partial_head_gets_a_408_when_late_and_time_for_what_it_sent() {
        let t = timeouts();
        assert_eq!(idle_expiry(10, 0, secs(11), &t), Some(Expiry::Head));
        // After a request too: a partial next head is late, not idle.
        assert_eq!(idle_expiry(10, 3, secs(11), &t), Some(Expiry::Head));
        // 500 B/s: 2,500 bytes buy five more seconds ...
        assert_eq!(idle_expiry(2_500, 0, secs(14), &t), None);
        assert_eq!(idle_expiry(2_500, 0, secs(16), &t), Some(Expiry::Head));
        // ... up to --header-max-timeout.
        assert_eq!(head_allowance(&t, 1 << 30), secs(30));
        assert_eq!(idle_expiry(1 << 30, 0, secs(31), &t), Some(Expiry::Head));
    }

    #[test]
    fn a_max_below_the_head_timeout_does_not_shorten_it() {
        let t = Timeouts {
            header_max_ms: 1_000,
            ..timeouts()
        };
        assert_eq!(head_allowance(&t, 0), secs(10));
    }

    #[test]
    fn the_budget_is_a_share_of_max_clients_within_the_descriptors() {
        let plenty = Fds {
            limit: 1 << 20,
            baseline: 40,
        };
        assert_eq!(connection_budget(1000, 4, &plenty), 250);
        assert_eq!(connection_budget(1001, 4, &plenty), 251);
        assert_eq!(connection_budget(3, 8, &plenty), 1);
        assert_eq!(connection_budget(100, 0, &plenty), 100);
        let tight = Fds {
            limit: 256,
            baseline: 40,
        };
        assert_eq!(
            connection_budget(1000, 1, &tight),
            256 - 40 - 2 * FD_RESERVE as usize
        );
        let none_left = Fds {
            limit: 50,
            baseline: 40,
        };
        assert_eq!(connection_budget(1000, 1, &none_left), 1);
    }

    #[test]
    fn a_closing_connection_goes_at_its_deadline_or_when_quiet() {
        let start = Instant::now();
        let until = start + LINGER_MAX;
        assert!(!closing_due(start + secs(1), until, start));
        assert!(closing_due(start + LINGER_IDLE + secs(1), until, start));
        let later = start + LINGER_MAX - secs(1);
        assert!(!closing_due(later, until, later - secs(1)));
        assert!(closing_due(until + secs(1), until, until));
    }
}
