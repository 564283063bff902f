//! Static files in the worker, answered without Python.
//!
//! The I/O thread routes a complete request head: a request under a
//! `--url-alias` (or any request in static-only mode), or for an existing
//! file of the `--document-root`, becomes a [`StaticRequest`] for one of a
//! few plain Rust threads ("lanes"), which never touch the GIL. A lane resolves the
//! path with [`StaticFiles::resolve`] (the I/O thread only does so for the
//! document root, where the file system decides what is static).
//!
//! Each lane runs its own small event loop: it writes the head and small
//! files with one `sendmsg`, larger bodies with `sendfile(2)`, and waits
//! for a full socket to drain in its poller, so a slow reader costs a
//! registration, not a thread. After a keep-alive response the lane keeps
//! the connection for a moment (`LINGER`) and serves the next static
//! request on it itself: a browser loading a page's assets, or a load
//! generator, then costs no thread hand-off per request. Anything else
//! (an application request, a partial head, a quiet client) goes back to
//! the I/O thread, which owns idle connections; a head the lane routed goes
//! back routed, so it is not parsed again.

mod transfer;

use crate::access_log::AccessLog;
use crate::conn::{Conn, READ_CHUNK};
use crate::handoff::{Handoff, Returned};
use crate::route::{route, Routed};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use rwsgi_http::access_log::Record;
use rwsgi_http::statics::{self, Plan, Resolution, StaticFiles};
use rwsgi_http::{BodyKind, DateCache, RequestHead};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::scoreboard::Scoreboard;
use slog::{debug, error, info, o, warn, Logger};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use transfer::Transfer;

/// Lanes per worker. Serving a file is a few system calls; two lanes keep
/// one busy with `open`s while the other writes.
const LANES: usize = 2;
/// How often a lane looks for stalled transfers and lingering connections.
const SWEEP: Duration = Duration::from_millis(100);
/// How long a lane keeps a keep-alive connection after a static response,
/// waiting for the next static request (a page's assets come in bursts).
const LINGER: Duration = Duration::from_millis(300);
const WAKE: Token = Token(0);

/// A request the I/O thread resolved to a static response.
pub struct StaticRequest {
    conn: Conn,
    head: RequestHead,
    token: usize,
    /// `None`: the lane resolves it (a `--url-alias` request, so the I/O
    /// thread makes no file system call for it).
    resolution: Option<Resolution>,
    started: Instant,
}

struct Lane {
    jobs: Mutex<VecDeque<StaticRequest>>,
    waker: Waker,
}

/// The static files of this worker and the lanes that serve them.
pub struct StaticLanes {
    files: Arc<StaticFiles>,
    /// For the static-file metrics of this worker's slot.
    scoreboard: Arc<Scoreboard>,
    slot: usize,
    /// `None` without `--access-log`.
    access: Option<Arc<AccessLog>>,
    lanes: Vec<Lane>,
    next: AtomicUsize,
    shutdown: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StaticLanes {
    /// Opens the mounts and starts the lanes (none when nothing is static).
    pub fn start(
        config: &Arc<ServerConfig>,
        handoff: &Arc<Handoff>,
        scoreboard: (&Arc<Scoreboard>, usize),
        access: Option<Arc<AccessLog>>,
        log: &Logger,
    ) -> io::Result<(Arc<StaticLanes>, Vec<JoinHandle<()>>)> {
        let (files, problems) = StaticFiles::new(&config.statics);
        for p in problems {
            warn!(
                log,
                "static files: cannot open {}; requests for it get 404 until it exists", p
            );
        }
        let n = if files.enabled() { LANES } else { 0 };
        let mut lanes = Vec::with_capacity(n);
        let mut polls = Vec::with_capacity(n);
        for _ in 0..n {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKE)?;
            lanes.push(Lane {
                jobs: Mutex::new(VecDeque::new()),
                waker,
            });
            polls.push(poll);
        }
        let files = Arc::new(files);
        crate::error_pages::install(Arc::clone(&files), &config.statics);
        let statics = Arc::new(StaticLanes {
            files,
            lanes,
            next: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            scoreboard: Arc::clone(scoreboard.0),
            slot: scoreboard.1,
            access,
        });
        let mut threads = Vec::with_capacity(n);
        for (index, poll) in polls.into_iter().enumerate() {
            let lane = LaneLoop {
                index,
                statics: Arc::clone(&statics),
                handoff: Arc::clone(handoff),
                config: Arc::clone(config),
                // Validated by the master's configuration already.
                proxy: rwsgi_http::forwarded::Rules::new(
                    &config.trust_proxy_headers,
                    &config.trust_proxies,
                )
                .unwrap_or_default(),
                log: log.new(o!("static" => index)),
                poll,
                held: Vec::new(),
                free: Vec::new(),
                dates: DateCache::default(),
                boundary: boundary(index),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("rwsgi-static-{index}"))
                    .spawn(move || lane.run())?,
            );
        }
        Ok((statics, threads))
    }

    /// The static files, for routing (see `route`).
    pub fn files(&self) -> &StaticFiles {
        &self.files
    }

    /// Whether static requests are served at all (there are lanes).
    pub fn enabled(&self) -> bool {
        !self.lanes.is_empty()
    }

    /// The static files, shared with the request threads.
    pub fn shared_files(&self) -> Arc<StaticFiles> {
        Arc::clone(&self.files)
    }

    /// Serves a static request on one of the lanes.
    pub fn serve(
        &self,
        token: usize,
        conn: Conn,
        head: RequestHead,
        resolution: Option<Resolution>,
    ) {
        let lane = &self.lanes[self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len()];
        lock(&lane.jobs).push_back(StaticRequest {
            conn,
            head,
            token,
            resolution,
            started: Instant::now(),
        });
        let _ = lane.waker.wake();
    }

    /// Stops the lanes; transfers still running are closed.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for lane in &self.lanes {
            let _ = lane.waker.wake();
        }
    }
}

/// Separator of multipart/byteranges bodies, distinct per process and lane.
fn boundary(lane: usize) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("rwsgi{:08x}{:08x}{lane:02x}", std::process::id(), nanos)
}

/// A connection a lane holds: sending a response, or lingering after one
/// for the client's next request.
struct Held {
    conn: Conn,
    /// The I/O thread's token for this connection.
    token: usize,
    /// Registered in the lane's poller (edge-triggered) until the
    /// connection leaves the lane, with this interest (see [`interest`]).
    registered: Option<Interest>,
    /// Bytes may be waiting in the socket: set by a readable event, cleared
    /// by a read that came back short. Reading a socket known to be empty
    /// after every response was one wasted system call per request (the
    /// poller is edge-triggered, so whatever arrives later wakes the lane).
    unread: bool,
    /// When the I/O thread handed it over. A connection goes back after
    /// `LINGER` even while it keeps sending static requests, so a graceful
    /// stop (the I/O thread hands idle connections back to the master)
    /// never waits on a lane.
    entered: Instant,
    state: State,
    /// A head this lane routed and does not serve: it goes back with the
    /// connection, so the I/O thread does not parse it again.
    routed: Option<Box<Routed>>,
}

enum State {
    Sending(Box<Transfer>),
    /// Response sent; the next static request on this connection is
    /// served here without a hand-off, anything else goes back to the I/O
    /// thread (at the latest `LINGER` after the connection came).
    Lingering,
}

/// What to do with a held connection next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Wait for the socket (writable while sending, readable while lingering).
    Wait,
    /// Hand it back to the I/O thread for keep-alive or the application.
    GiveBack,
    Close,
}

struct LaneLoop {
    index: usize,
    statics: Arc<StaticLanes>,
    handoff: Arc<Handoff>,
    config: Arc<ServerConfig>,
    /// `--trust-proxy-header`: whose forwarded Host `--server-name` judges.
    proxy: rwsgi_http::forwarded::Rules,
    log: Logger,
    poll: Poll,
    held: Vec<Option<Held>>,
    free: Vec<usize>,
    dates: DateCache,
    boundary: String,
}

impl LaneLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut jobs = VecDeque::new();
        let mut last_sweep = Instant::now();
        loop {
            match self.poll.poll(&mut events, Some(SWEEP)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error!(self.log, "static files: poller failed: {}", e);
                    break;
                }
            }
            for event in events.iter() {
                if event.token() != WAKE {
                    let slot = event.token().0 - 1;
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        if let Some(Some(held)) = self.held.get_mut(slot) {
                            held.unread = true;
                        }
                    }
                    self.step(slot);
                }
            }
            std::mem::swap(&mut jobs, &mut *lock(&self.statics.lanes[self.index].jobs));
            for job in jobs.drain(..) {
                self.start(job);
            }
            if self.statics.shutdown.load(Ordering::SeqCst) {
                break;
            }
            if last_sweep.elapsed() >= SWEEP {
                last_sweep = Instant::now();
                self.sweep();
            }
        }
        for slot in 0..self.held.len() {
            self.leave(slot, Step::Close);
        }
    }

    /// A connection arrives from the I/O thread with a static request.
    fn start(&mut self, job: StaticRequest) {
        let StaticRequest {
            mut conn,
            head,
            token,
            resolution,
            started,
        } = job;
        let files = Arc::clone(&self.statics.files);
        let resolution = resolution.unwrap_or_else(|| files.resolve(&head));
        let transfer = self.respond(&mut conn, head, resolution, started);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.held.push(None);
                self.held.len() - 1
            }
        };
        self.held[slot] = Some(Held {
            conn,
            token,
            registered: None,
            unread: true,
            entered: Instant::now(),
            state: State::Sending(Box::new(transfer)),
            routed: None,
        });
        self.step(slot);
    }

    /// The response to one request.
    fn respond(
        &mut self,
        conn: &mut Conn,
        head: RequestHead,
        resolution: Resolution,
        started: Instant,
    ) -> Transfer {
        let keep_alive = head.keep_alive && body_already_here(conn, &head);
        let files = Arc::clone(&self.statics.files);
        let date = self.dates.now();
        let (plan, file) = match resolution {
            Resolution::File(f) => {
                if let Some(mut plan) =
                    statics::respond_compressed(&files, &head, &f, date, keep_alive, &self.boundary)
                {
                    self.secure_headers(conn, &mut plan);
                    return Transfer::new(head, plan, None, started);
                }
                let plan = statics::respond(
                    &head,
                    &f.info(),
                    files.options(),
                    date,
                    keep_alive,
                    &self.boundary,
                );
                (plan, Some(f.file))
            }
            Resolution::Redirect(location) => {
                (statics::redirect(&head, &location, date, keep_alive), None)
            }
            Resolution::NotFound(why) => {
                debug!(self.log, "static file not found"; "path" => &head.path, "why" => why);
                (statics::error(404, &head, date, keep_alive, &[]), None)
            }
            Resolution::Forbidden(why) => {
                info!(self.log, "static request refused"; "path" => &head.path, "why" => why, "client" => %conn.origin);
                (statics::error(403, &head, date, keep_alive, &[]), None)
            }
            Resolution::NotStatic => (statics::error(404, &head, date, keep_alive, &[]), None),
        };
        // --error-document: an error of the server's gets the configured page.
        let (plan, file) = match plan.status {
            400.. => match crate::error_pages::plan(plan.status, &head, date, keep_alive) {
                Some(page) => (page, None),
                None => (plan, file),
            },
            _ => (plan, file),
        };
        let mut plan = plan;
        self.secure_headers(conn, &mut plan);
        Transfer::new(head, plan, file, started)
    }

    /// `--hsts-policy` on an HTTPS response, as on the application's.
    fn secure_headers(&self, conn: &Conn, plan: &mut Plan) {
        if let (Some(_), Some(policy)) = (&conn.tls, crate::tls::hsts(&self.config)) {
            let line = format!("Strict-Transport-Security: {policy}\r\n");
            // Before the blank line that ends the head.
            let at = plan.head.len().saturating_sub(2);
            plan.head.splice(at..at, line.into_bytes());
        }
    }

    /// Moves a held connection as far as it can go without waiting.
    fn step(&mut self, slot: usize) {
        let Some(mut held) = self.held.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let next = loop {
            match &mut held.state {
                State::Sending(t) => match t.advance(&mut held.conn) {
                    Ok(false) => break Step::Wait,
                    Ok(true) => {
                        held.conn.served += 1;
                        if let Some(sb) = self.statics.scoreboard.worker(self.statics.slot) {
                            sb.metrics().static_response(t.body_bytes);
                        }
                        if let Some(access) = &self.statics.access {
                            access_log(access, &self.log, &held.conn, t, true);
                        }
                        // An h2 stream's connection goes back at once, its
                        // next request coming with it from its pool.
                        let h2 = held.conn.http2.is_some();
                        match after_response(t.keep_alive, h2, held.entered.elapsed()) {
                            Some(step) => break step,
                            None => held.state = State::Lingering,
                        }
                    }
                    Err(e) => {
                        debug!(self.log, "static response not completed"; "error" => %e);
                        if let Some(access) = &self.statics.access {
                            access_log(access, &self.log, &held.conn, t, false);
                        }
                        break Step::Close;
                    }
                },
                State::Lingering => match self.next_request(&mut held) {
                    Some(step) => break step,
                    None => continue,
                },
            }
        };
        self.held[slot] = Some(held);
        match next {
            Step::Wait => self.wait(slot),
            other => self.leave(slot, other),
        }
    }

    /// After a keep-alive response: a complete static request already here
    /// starts (`None`); anything else decides the connection's fate.
    fn next_request(&mut self, held: &mut Held) -> Option<Step> {
        let limits = self.config.limits;
        if held.conn.buf.is_empty() {
            if !held.unread {
                return Some(Step::Wait);
            }
            match held.conn.transport.try_read(&mut held.conn.buf, READ_CHUNK) {
                Ok(None) => {
                    held.unread = false;
                    return Some(Step::Wait);
                }
                Ok(Some(0)) | Err(_) => return Some(Step::Close),
                Ok(Some(n)) => held.unread = n >= READ_CHUNK,
            }
        }
        let gate = crate::host_gate::Gate {
            vhost: self.config.virtual_host.as_ref(),
            proxy: &self.proxy,
            origin: &held.conn.origin,
            secure: self.config.tls.as_ref(),
            tls: held.conn.tls.as_deref(),
        };
        let (head, resolution) = match route(&held.conn.buf, &limits, &self.statics.files, &gate) {
            // The auth and host-access scripts run on a request thread
            // first: the I/O thread sends this one there.
            Routed::Static(head, used, resolution) if !self.config.guard.enabled() => {
                held.conn.buf.drain(..used);
                let resolution = resolution.unwrap_or_else(|| self.statics.files.resolve(&head));
                (head, resolution)
            }
            // Still arriving: the I/O thread's (its timeouts).
            Routed::Partial => return Some(Step::GiveBack),
            // Not static, or refused: the I/O thread's business (the
            // parser's error responses, the application).
            other => {
                held.routed = Some(Box::new(other));
                return Some(Step::GiveBack);
            }
        };
        let transfer = self.respond(&mut held.conn, head, resolution, Instant::now());
        held.state = State::Sending(Box::new(transfer));
        None
    }

    /// Waits for the socket: registers it in this lane's poller once.
    fn wait(&mut self, slot: usize) {
        let Some(Some(held)) = self.held.get_mut(slot) else {
            return;
        };
        let wanted = interest(matches!(held.state, State::Sending(_)));
        if held.registered == Some(wanted) {
            return;
        }
        let fd = held.conn.transport.fd();
        let (registry, token) = (self.poll.registry(), Token(slot + 1));
        let done = match held.registered {
            Some(_) => registry.reregister(&mut SourceFd(&fd), token, wanted),
            None => registry.register(&mut SourceFd(&fd), token, wanted),
        };
        match done {
            Ok(()) => held.registered = Some(wanted),
            Err(e) => {
                warn!(self.log, "static files: cannot watch a socket"; "error" => %e);
                let step = match held.state {
                    State::Lingering => Step::GiveBack,
                    State::Sending(_) => Step::Close,
                };
                self.leave(slot, step);
            }
        }
    }

    /// The connection leaves the lane: back to the I/O thread, or closed.
    fn leave(&mut self, slot: usize, step: Step) {
        let Some(held) = self.held.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        if held.registered.is_some() {
            let fd = held.conn.transport.fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        match step {
            Step::GiveBack => self.handoff.give_back(match held.routed {
                Some(routed) => Returned::Routed(held.token, held.conn, routed),
                None => Returned::Idle(held.token, held.conn),
            }),
            Step::Close | Step::Wait => {
                self.handoff
                    .give_back(Returned::Close(held.token, held.conn));
            }
        }
    }

    /// Gives lingering connections back to the I/O thread (it owns idle
    /// connections and their keep-alive timeout); closes transfers whose
    /// client has not read anything for `--socket-timeout`.
    fn sweep(&mut self) {
        let stalled = Duration::from_millis(self.config.timeouts.socket_ms);
        for slot in 0..self.held.len() {
            let Some(held) = &self.held[slot] else {
                continue;
            };
            let quiet = match &held.state {
                State::Lingering => None,
                State::Sending(t) => Some(t.last_progress.elapsed()),
            };
            let Some(step) = swept(held.entered.elapsed(), quiet, stalled) else {
                continue;
            };
            if step == Step::Close {
                debug!(self.log, "static response stalled; closing"; "client" => %held.conn.origin);
            }
            self.leave(slot, step);
        }
    }
}

/// What a held connection waits for: room to send while `sending`, only
/// the next request while lingering (room would wake the lane for
/// nothing).
fn interest(sending: bool) -> Interest {
    if sending {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    }
}

/// Whether the request's body (rare on GET or HEAD) is already in the
/// buffer; it is then skipped. Otherwise the connection is closed after
/// the response rather than read a body nobody wants.
fn body_already_here(conn: &mut Conn, head: &RequestHead) -> bool {
    match body_to_skip(head.body, conn.buf.len()) {
        Some(n) => {
            conn.buf.drain(..n);
            true
        }
        None => false,
    }
}

/// How many buffered bytes are the request's body, to be skipped; `None`
/// when the body is not all here (or is chunked): the connection closes
/// after the response.
fn body_to_skip(body: BodyKind, buffered: usize) -> Option<usize> {
    match body {
        BodyKind::Empty => Some(0),
        BodyKind::Length(n) if (buffered as u64) >= n => usize::try_from(n).ok(),
        _ => None,
    }
}

/// Where a connection goes once its response is sent, `held` after it
/// came to the lane: closed without keep-alive, back to the I/O thread
/// at once for an h2 stream's (`h2`) or after `LINGER`, else it lingers
/// here for the next request (`None`).
fn after_response(keep_alive: bool, h2: bool, held: Duration) -> Option<Step> {
    if !keep_alive {
        Some(Step::Close)
    } else if h2 || held >= LINGER {
        Some(Step::GiveBack)
    } else {
        None
    }
}

/// What the periodic sweep does with a held connection: one lingering
/// (`quiet` is `None`) `LINGER` after it came goes back to the I/O thread;
/// a response whose client has read nothing for more than `stalled`
/// (`quiet` since the last progress) is closed.
fn swept(held: Duration, quiet: Option<Duration>, stalled: Duration) -> Option<Step> {
    match quiet {
        None if held >= LINGER => Some(Step::GiveBack),
        Some(quiet) if quiet > stalled => Some(Step::Close),
        _ => None,
    }
}

/// One Apache combined line, like the application's requests get.
fn access_log(access: &AccessLog, log: &Logger, conn: &Conn, t: &Transfer, ok: bool) {
    let id = crate::request_id::of(t.head.header("x-request-id"));
    access.write(
        log,
        &Record {
            client: conn.origin.client().ip(),
            http2: conn.http2.is_some(),
            head: &t.head,
            status: t.status,
            bytes: if ok { t.body_bytes } else { 0 },
            took: t.started.elapsed(),
            queue_wait: None,
            request_id: id.as_str(),
            response_headers: &[],
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lingering_connection_is_not_watched_for_room_to_send() {
        assert!(interest(true).is_writable() && interest(true).is_readable());
        assert!(!interest(false).is_writable() && interest(false).is_readable());
    }

    #[test]
    fn a_body_is_skipped_only_when_all_of_it_is_here() {
        assert_eq!(body_to_skip(BodyKind::Empty, 0), Some(0));
        assert_eq!(body_to_skip(BodyKind::Empty, 30), Some(0));
        assert_eq!(body_to_skip(BodyKind::Length(5), 30), Some(5));
        assert_eq!(body_to_skip(BodyKind::Length(5), 5), Some(5));
        assert_eq!(body_to_skip(BodyKind::Length(5), 4), None);
        assert_eq!(body_to_skip(BodyKind::Chunked, 30), None);
    }

    #[test]
    fn after_a_response_a_connection_closes_lingers_or_goes_back() {
        let soon = LINGER / 3;
        assert_eq!(after_response(false, false, soon), Some(Step::Close));
        assert_eq!(after_response(true, false, soon), None);
        assert_eq!(after_response(true, false, LINGER), Some(Step::GiveBack));
        assert_eq!(after_response(false, false, LINGER * 2), Some(Step::Close));
        // An h2 stream's connection never lingers in a lane.
        assert_eq!(after_response(true, true, soon), Some(Step::GiveBack));
        assert_eq!(after_response(false, true, soon), Some(Step::Close));
    }

    #[test]
    fn the_sweep_returns_lingerers_and_closes_stalled_transfers() {
        let stalled = Duration::from_secs(30);
        let soon = LINGER / 3;
        assert_eq!(swept(soon, None, stalled), None);
        assert_eq!(swept(LINGER, None, stalled), Some(Step::GiveBack));
        // A transfer is not given back however long it is held, only
        // closed when its client stops reading.
        assert_eq!(swept(LINGER * 10, Some(stalled), stalled), None);
        assert_eq!(
            swept(soon, Some(stalled + Duration::from_millis(1)), stalled),
            Some(Step::Close)
        );
    }
}
