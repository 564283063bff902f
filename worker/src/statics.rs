//! Static files in the worker, answered without Python.
//!
//! The I/O thread routes a complete request head: a request under a
//! `--url-alias` (or any request in static-only mode), or for an existing
//! file of the `--document-root`, becomes a [`Job`] for one of a few plain
//! Rust threads ("lanes"), which never touch the GIL. A lane resolves the
//! path with [`StaticFiles::resolve`] (the I/O thread only does so for the
//! document root, where the file system decides what is static). Each lane runs
//! its own small event loop: it writes the head and small files with one
//! `sendmsg`, larger bodies with `sendfile(2)`, and parks a transfer whose
//! socket is full until the socket is writable again, so a slow reader
//! costs a registration, not a thread. When the response is complete the
//! connection goes back to the I/O thread (keep-alive) or is closed.

use crate::conn::Conn;
use crate::pool::{Pool, Returned};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::errno::Errno;
use nix::sys::socket::{sendmsg, MsgFlags, SockaddrStorage};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::http::{BodyKind, DateCache, RequestHead};
use rwsgi_shared::statics::{self, Plan, Resolution, Segment, StaticFiles};
use slog::{debug, error, info, o, warn, Logger};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lanes per worker. Serving a file is a few system calls; two lanes keep
/// one busy with `open`s while the other writes.
const LANES: usize = 2;
/// Files up to this size are read and sent with the head in one `sendmsg`.
const SMALL_FILE: u64 = 32 * 1024;
/// Largest `sendfile` call (the kernel caps one call near 2 GiB anyway).
const SENDFILE_CHUNK: u64 = 1 << 30;
/// How often a lane looks for stalled transfers.
const SWEEP: Duration = Duration::from_millis(250);
const WAKE: Token = Token(0);

/// A request the I/O thread resolved to a static response.
pub struct Job {
    conn: Conn,
    head: RequestHead,
    token: usize,
    /// `None`: the lane resolves it (a `--url-alias` request, so the I/O
    /// thread makes no file system call for it).
    resolution: Option<Resolution>,
    started: Instant,
}

struct Lane {
    jobs: Mutex<VecDeque<Job>>,
    waker: Waker,
}

/// The static files of this worker and the lanes that serve them.
pub struct Statics {
    files: Arc<StaticFiles>,
    lanes: Vec<Lane>,
    next: AtomicUsize,
    shutdown: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Statics {
    /// Opens the mounts and starts the lanes (none when nothing is static).
    pub fn start(
        config: &Arc<ServerConfig>,
        pool: &Arc<Pool>,
        log: &Logger,
    ) -> io::Result<(Arc<Statics>, Vec<JoinHandle<()>>)> {
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
        let statics = Arc::new(Statics {
            files: Arc::new(files),
            lanes,
            next: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
        });
        let mut threads = Vec::with_capacity(n);
        for (index, poll) in polls.into_iter().enumerate() {
            let lane = LaneLoop {
                index,
                statics: Arc::clone(&statics),
                pool: Arc::clone(pool),
                config: Arc::clone(config),
                log: log.new(o!("static" => index)),
                poll,
                transfers: Vec::new(),
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

    /// Takes the request if it is static; gives it back for the application otherwise.
    pub fn route(
        &self,
        token: usize,
        conn: Conn,
        head: RequestHead,
    ) -> Option<(Conn, RequestHead)> {
        if self.lanes.is_empty() {
            return Some((conn, head));
        }
        let resolution = if self.files.claims(&head) {
            None
        } else {
            // --document-root: only an existing file is static.
            match self.files.resolve(&head) {
                Resolution::NotStatic => return Some((conn, head)),
                r => Some(r),
            }
        };
        let lane = &self.lanes[self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len()];
        lock(&lane.jobs).push_back(Job {
            conn,
            head,
            token,
            resolution,
            started: Instant::now(),
        });
        let _ = lane.waker.wake();
        None
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

/// A response being written.
struct Transfer {
    conn: Conn,
    token: usize,
    head: RequestHead,
    file: Option<File>,
    /// What is left to send: the head first, then the body.
    parts: VecDeque<Segment>,
    /// Bytes of the first part already sent (when it is `Bytes`).
    sent_of_first: usize,
    keep_alive: bool,
    status: u16,
    body_bytes: u64,
    started: Instant,
    last_progress: Instant,
    /// Parked in the lane's poller, waiting for the socket.
    parked: bool,
}

struct LaneLoop {
    index: usize,
    statics: Arc<Statics>,
    pool: Arc<Pool>,
    config: Arc<ServerConfig>,
    log: Logger,
    poll: Poll,
    transfers: Vec<Option<Transfer>>,
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
                    self.resume(event.token().0 - 1);
                }
            }
            std::mem::swap(&mut jobs, &mut *lock(&self.statics.lanes[self.index].jobs));
            for job in jobs.drain(..) {
                self.serve(job);
            }
            if self.statics.shutdown.load(Ordering::SeqCst) {
                break;
            }
            if last_sweep.elapsed() >= SWEEP {
                last_sweep = Instant::now();
                self.sweep();
            }
        }
        for slot in 0..self.transfers.len() {
            if let Some(t) = self.take(slot) {
                self.finish(t, false);
            }
        }
    }

    /// Starts answering a job.
    fn serve(&mut self, job: Job) {
        let Job {
            mut conn,
            head,
            token,
            resolution,
            started,
        } = job;
        let keep_alive = head.keep_alive && body_already_here(&mut conn, &head);
        let files = Arc::clone(&self.statics.files);
        let resolution = resolution.unwrap_or_else(|| files.resolve(&head));
        let date = self.dates.now();
        let (plan, file) = match resolution {
            Resolution::File(f) => {
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
                info!(self.log, "static request refused"; "path" => &head.path, "why" => why, "client" => %conn.peer);
                (statics::error(403, &head, date, keep_alive, &[]), None)
            }
            Resolution::NotStatic => (statics::error(404, &head, date, keep_alive, &[]), None),
        };
        let mut t = Transfer::new(conn, token, head, plan, file, started);
        match t.advance() {
            Ok(true) => self.finish(t, true),
            Ok(false) => self.park(t),
            Err(e) => {
                debug!(self.log, "static response not completed"; "error" => %e);
                self.finish(t, false);
            }
        }
    }

    /// The socket of a parked transfer became writable.
    fn resume(&mut self, slot: usize) {
        let Some(Some(t)) = self.transfers.get_mut(slot) else {
            return;
        };
        match t.advance() {
            Ok(false) => {}
            outcome => {
                if let Err(e) = &outcome {
                    debug!(self.log, "static response not completed"; "error" => %e);
                }
                if let Some(t) = self.take(slot) {
                    self.finish(t, outcome.is_ok());
                }
            }
        }
    }

    fn park(&mut self, mut t: Transfer) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.transfers.push(None);
                self.transfers.len() - 1
            }
        };
        let fd = t.conn.stream.as_raw_fd();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), Token(slot + 1), Interest::WRITABLE)
        {
            warn!(self.log, "static files: cannot watch a socket"; "error" => %e);
            self.free.push(slot);
            self.finish(t, false);
            return;
        }
        t.parked = true;
        self.transfers[slot] = Some(t);
    }

    fn take(&mut self, slot: usize) -> Option<Transfer> {
        let t = self.transfers.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some(t)
    }

    /// Closes transfers whose client has not read anything for `--socket-timeout`.
    fn sweep(&mut self) {
        let limit = Duration::from_millis(self.config.timeouts.socket_ms);
        for slot in 0..self.transfers.len() {
            let stalled = self.transfers[slot]
                .as_ref()
                .is_some_and(|t| t.last_progress.elapsed() > limit);
            if stalled {
                if let Some(t) = self.take(slot) {
                    debug!(self.log, "static response stalled; closing"; "client" => %t.conn.peer);
                    self.finish(t, false);
                }
            }
        }
    }

    /// The response is complete (`ok`) or abandoned: log it and hand the
    /// connection back to the I/O thread, or close it.
    fn finish(&mut self, mut t: Transfer, ok: bool) {
        if t.parked {
            let fd = t.conn.stream.as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        t.conn.served += 1;
        if self.config.access_log {
            access_log(&self.log, &t, ok);
        }
        if ok && t.keep_alive {
            self.pool.give_back(Returned::Idle(t.token, t.conn));
        } else {
            let _ = t.conn.stream.shutdown(Shutdown::Write);
            self.pool.give_back(Returned::Closed(t.token));
        }
    }
}

/// Whether the request's body (rare on GET or HEAD) is already in the
/// buffer; it is then skipped. Otherwise the connection is closed after
/// the response rather than read a body nobody wants.
fn body_already_here(conn: &mut Conn, head: &RequestHead) -> bool {
    match head.body {
        BodyKind::Empty => true,
        BodyKind::Length(n) if (conn.buf.len() as u64) >= n => {
            conn.buf.drain(..n as usize);
            true
        }
        _ => false,
    }
}

impl Transfer {
    fn new(
        conn: Conn,
        token: usize,
        head: RequestHead,
        plan: Plan,
        file: Option<File>,
        started: Instant,
    ) -> Transfer {
        let body_bytes = plan.body_len();
        let mut parts = VecDeque::with_capacity(plan.body.len() + 1);
        parts.push_back(Segment::Bytes(plan.head));
        let mut keep_alive = plan.keep_alive;
        for segment in plan.body {
            match (segment, &file) {
                // Small: read it now, so head and body leave in one packet.
                (Segment::File { offset, len }, Some(f)) if len <= SMALL_FILE => {
                    let mut bytes = vec![0; len as usize];
                    match f.read_exact_at(&mut bytes, offset) {
                        Ok(()) => parts.push_back(Segment::Bytes(bytes)),
                        Err(_) => {
                            // Shrunk since it was opened: the length is sent already.
                            keep_alive = false;
                            break;
                        }
                    }
                }
                (segment, _) => parts.push_back(segment),
            }
        }
        Transfer {
            conn,
            token,
            head,
            file,
            parts,
            sent_of_first: 0,
            keep_alive,
            status: plan.status,
            body_bytes,
            started,
            last_progress: Instant::now(),
            parked: false,
        }
    }

    /// Sends as much as the socket takes. `Ok(true)`: all sent;
    /// `Ok(false)`: the socket is full.
    fn advance(&mut self) -> io::Result<bool> {
        loop {
            let sent = match self.parts.front() {
                None => return Ok(true),
                Some(Segment::Bytes(_)) => self.send_bytes(),
                Some(Segment::File { .. }) => self.send_file(),
            };
            match sent {
                Ok(()) => self.last_progress = Instant::now(),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One `sendmsg` of the leading in-memory parts; `MSG_MORE` when file
    /// bytes follow, so the head does not leave in a packet of its own.
    fn send_bytes(&mut self) -> Result<(), Errno> {
        let mut slices = Vec::with_capacity(4);
        let mut file_follows = false;
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Segment::Bytes(b) => {
                    let from = if i == 0 { self.sent_of_first } else { 0 };
                    slices.push(IoSlice::new(&b[from..]));
                }
                Segment::File { .. } => {
                    file_follows = true;
                    break;
                }
            }
            if slices.len() == 64 {
                break;
            }
        }
        let mut flags = MsgFlags::MSG_NOSIGNAL;
        if file_follows {
            flags |= MsgFlags::from_bits_retain(libc::MSG_MORE);
        }
        let mut n =
            sendmsg::<SockaddrStorage>(self.conn.stream.as_raw_fd(), &slices, &[], flags, None)?;
        drop(slices);
        while n > 0 {
            let Some(Segment::Bytes(b)) = self.parts.front() else {
                break;
            };
            let left = b.len() - self.sent_of_first;
            if n >= left {
                n -= left;
                self.parts.pop_front();
                self.sent_of_first = 0;
            } else {
                self.sent_of_first += n;
                n = 0;
            }
        }
        Ok(())
    }

    fn send_file(&mut self) -> Result<(), Errno> {
        let Some(Segment::File { offset, len }) = self.parts.front_mut() else {
            return Ok(());
        };
        let Some(file) = &self.file else {
            return Err(Errno::EBADF);
        };
        let mut off = *offset as libc::off64_t;
        let count = (*len).min(SENDFILE_CHUNK) as usize;
        let n = nix::sys::sendfile::sendfile64(&self.conn.stream, file, Some(&mut off), count)?;
        if n == 0 {
            // The file shrank after its length was sent.
            return Err(Errno::EIO);
        }
        *offset += n as u64;
        *len -= n as u64;
        if *len == 0 {
            self.parts.pop_front();
        }
        Ok(())
    }
}

/// One Apache combined line, like the application's requests get.
fn access_log(log: &Logger, t: &Transfer, ok: bool) {
    let header = |name: &str| {
        t.head
            .header(name)
            .map(|v| String::from_utf8_lossy(v).replace('"', "\\\""))
            .unwrap_or_else(|| "-".to_owned())
    };
    let bytes = if ok { t.body_bytes } else { 0 };
    let line = format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
        t.conn.peer.ip(),
        rwsgi_shared::time::apache_now(),
        t.head.method,
        t.head.target,
        t.head.version.as_str(),
        t.status,
        if bytes == 0 {
            "-".to_owned()
        } else {
            bytes.to_string()
        },
        header("referer"),
        header("user-agent"),
    );
    info!(log, "{}", line; "source" => "access", "us" => t.started.elapsed().as_micros() as u64);
}
