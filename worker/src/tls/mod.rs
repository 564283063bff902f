//! HTTPS (`--https-port`): a thread of the worker runs the TLS handshakes.
//!
//! The master hands HTTPS connections over like the others; the I/O thread
//! tells them apart by their local port and gives them to this thread
//! ([`Bridge::adopt`]). It runs each handshake (bounded by the header
//! timeout, off the request threads), then
//!
//! it sends what rustls has to send (the handshake's end, TLS 1.3 session
//! tickets) and hands the connection on with its rustls session, the
//! plaintext already decrypted kept to be read first
//! ([`handshake::Established`]):
//!
//! - HTTP/1.1 (ALPN `http/1.1`, or none): to the I/O thread, as a [`Conn`]
//!   whose transport is the TCP socket with its session. From then on the
//!   thread that does the connection's I/O (the I/O thread, a request
//!   thread under its request's lease, a static lane, a proxy thread)
//!   encrypts and decrypts as it goes (see `transport`): a request costs
//!   this thread nothing. The socket is private to the transport, so TLS
//!   cannot be forgotten on some path, and a plain connection's transport
//!   makes the system calls it always made.
//! - `h2` (with `--http2`): to the h2 thread, which encrypts and decrypts
//!   in its own I/O (`http2::tls_io`): a stream costs this thread nothing
//!   either.
//!
//! The certificate files are read again when they change (renewals need
//! no restart); a new certificate that does not load leaves the old one
//! serving, with an error in the log.

mod handshake;

use crate::handoff::{Handoff, Returned};
pub use handshake::Established;
use handshake::{Handshake, Pumped};
use mio::{Events, Interest, Poll, Token, Waker};
use rwsgi_shared::config::{ServerConfig, TlsConfig};
use rwsgi_shared::origin::Origin;
use slog::{error, info, warn, Logger};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

const WAKE: Token = Token(0);
const SWEEP: Duration = Duration::from_millis(250);
/// How often the certificate files are looked at for a renewal.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// A connection accepted on the HTTPS port, before its handshake.
pub struct Incoming {
    pub stream: TcpStream,
    pub origin: Origin,
    pub accepted_at: Option<Instant>,
}

pub struct Bridge {
    port: u16,
    incoming: Mutex<Vec<Incoming>>,
    waker: Waker,
    stopping: AtomicBool,
    /// Connections taken and not yet through their handshake.
    handshaking: AtomicUsize,
    /// Set by the thread when it has finished.
    finished: (Mutex<bool>, Condvar),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The ALPN protocols announced, most preferred first: without `--http2`,
/// and with it.
const ALPN: [&[u8]; 1] = [b"http/1.1"];
const ALPN_H2: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl Bridge {
    /// Starts the thread when `--https-port` is set.
    /// `http2`: connections whose ALPN chose `h2` go to it.
    pub fn start(
        config: &Arc<ServerConfig>,
        handoff: &Arc<Handoff>,
        http2: Option<Arc<crate::http2::H2>>,
        log: &Logger,
    ) -> Result<Option<Arc<Bridge>>, String> {
        let Some(tls) = config.tls.clone() else {
            return Ok(None);
        };
        let alpn: &'static [&'static [u8]] = match http2 {
            Some(_) => &ALPN_H2,
            None => &ALPN,
        };
        let rustls_config =
            rwsgi_http::tls::server_config(&tls, alpn).map_err(|e| e.to_string())?;
        let poll = Poll::new().map_err(|e| e.to_string())?;
        let waker = Waker::new(poll.registry(), WAKE).map_err(|e| e.to_string())?;
        let bridge = Arc::new(Bridge {
            port: tls.port,
            incoming: Mutex::new(Vec::new()),
            waker,
            stopping: AtomicBool::new(false),
            handshaking: AtomicUsize::new(0),
            finished: (Mutex::new(false), Condvar::new()),
        });
        let mut run = Run {
            bridge: Arc::clone(&bridge),
            poll,
            handoff: Arc::clone(handoff),
            http2,
            alpn,
            handshakes: Vec::new(),
            free: Vec::new(),
            rustls: rustls_config,
            tls,
            handshake: Duration::from_millis(config.timeouts.header_ms),
            files_seen: None,
            log: log.new(slog::o!("thread" => "tls")),
        };
        run.files_seen = run.files_stamp();
        std::thread::Builder::new()
            .name("rwsgi-tls".into())
            .spawn(move || {
                run.main();
                let (done, cv) = &run.bridge.finished;
                *lock(done) = true;
                cv.notify_all();
            })
            .map_err(|e| e.to_string())?;
        Ok(Some(bridge))
    }

    /// Whether `stream` came in on the HTTPS port.
    pub fn serves(&self, stream: &TcpStream) -> bool {
        stream.local_addr().is_ok_and(|a| a.port() == self.port)
    }

    /// Connections in their handshake (counted as the worker's).
    pub fn handshaking(&self) -> usize {
        self.handshaking.load(Ordering::Relaxed)
    }

    /// Takes a connection of the HTTPS port for its handshake.
    pub fn adopt(&self, incoming: Incoming) {
        self.handshaking.fetch_add(1, Ordering::Relaxed);
        lock(&self.incoming).push(incoming);
        let _ = self.waker.wake();
    }

    /// At the worker's exit, after the request threads: handshakes still
    /// running are dropped, within `within`.
    pub fn finish(&self, within: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        let (done, cv) = &self.finished;
        let deadline = Instant::now() + within;
        let mut finished = lock(done);
        while !*finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            finished = cv
                .wait_timeout(finished, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// `Strict-Transport-Security` for HTTPS responses: `--hsts-policy`, sent
/// with `--https-only` as mod_wsgi-express does.
pub fn hsts(config: &ServerConfig) -> Option<&str> {
    config
        .tls
        .as_ref()
        .filter(|t| t.https_only)
        .and_then(|t| t.hsts.as_deref())
}

struct Run {
    bridge: Arc<Bridge>,
    poll: Poll,
    handoff: Arc<Handoff>,
    http2: Option<Arc<crate::http2::H2>>,
    alpn: &'static [&'static [u8]],
    handshakes: Vec<Option<Handshake>>,
    free: Vec<usize>,
    rustls: Arc<rustls::ServerConfig>,
    tls: TlsConfig,
    handshake: Duration,
    /// The certificate files' modification times when last loaded.
    files_seen: Option<Vec<SystemTime>>,
    log: Logger,
}

/// Tokens: the waker, then one per handshake.
fn token(index: usize) -> Token {
    Token(1 + index)
}

impl Run {
    fn main(&mut self) {
        let mut events = Events::with_capacity(256);
        let mut last_sweep = Instant::now();
        let mut last_reload_check = Instant::now();
        loop {
            if let Err(e) = self.poll.poll(&mut events, Some(SWEEP)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    error!(self.log, "TLS poll failed: {}", e);
                    return;
                }
            }
            let stopping = self.bridge.stopping.load(Ordering::SeqCst);
            for event in events.iter() {
                match event.token() {
                    WAKE => {}
                    Token(t) => {
                        let index = t - 1;
                        if let Some(Some(h)) = self.handshakes.get_mut(index) {
                            let any = event.is_error();
                            h.ready(
                                any || event.is_readable() || event.is_read_closed(),
                                any || event.is_writable() || event.is_write_closed(),
                            );
                        }
                        self.pump(index)
                    }
                }
            }
            let arrived = std::mem::take(&mut *lock(&self.bridge.incoming));
            for incoming in arrived {
                if stopping {
                    self.bridge.handshaking.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
                self.add(incoming);
            }
            if last_sweep.elapsed() >= SWEEP || stopping {
                last_sweep = Instant::now();
                self.sweep(stopping);
            }
            if stopping && self.handshakes.iter().all(Option::is_none) {
                return;
            }
            if last_reload_check.elapsed() >= RELOAD_CHECK {
                last_reload_check = Instant::now();
                self.reload_if_changed();
            }
        }
    }

    fn add(&mut self, incoming: Incoming) {
        let Incoming {
            stream,
            origin,
            accepted_at,
        } = incoming;
        let tls = match rustls::ServerConnection::new(Arc::clone(&self.rustls)) {
            Ok(c) => c,
            Err(e) => {
                warn!(self.log, "cannot start a TLS session: {}", e);
                self.bridge.handshaking.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        };
        let index = self.free.pop().unwrap_or_else(|| {
            self.handshakes.push(None);
            self.handshakes.len() - 1
        });
        let fd = stream.as_raw_fd();
        if self
            .poll
            .registry()
            .register(
                &mut mio::unix::SourceFd(&fd),
                token(index),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.free.push(index);
            self.bridge.handshaking.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        self.handshakes[index] = Some(Handshake::new(
            stream,
            tls,
            origin,
            accepted_at,
            Instant::now() + self.handshake,
        ));
        // The ClientHello may be here already.
        self.pump(index);
    }

    fn pump(&mut self, index: usize) {
        let Some(Some(h)) = self.handshakes.get_mut(index) else {
            return;
        };
        match h.pump() {
            Pumped::Open => {}
            Pumped::Established => {
                let Some(h) = self.handshakes.get_mut(index).and_then(Option::take) else {
                    return;
                };
                // The thread that serves it watches the socket from now on.
                h.deregister(self.poll.registry());
                self.free.push(index);
                self.bridge.handshaking.fetch_sub(1, Ordering::Relaxed);
                adopt(&self.handoff, self.http2.as_deref(), h.established());
            }
            Pumped::Done(why) => {
                if let Some(why) = why {
                    info!(self.log, "TLS connection ended"; "why" => why, "client" => %h.origin());
                }
                self.remove(index);
            }
        }
    }

    fn remove(&mut self, index: usize) {
        if let Some(Some(h)) = self.handshakes.get_mut(index).map(Option::take) {
            self.bridge.handshaking.fetch_sub(1, Ordering::Relaxed);
            h.deregister(self.poll.registry());
            self.free.push(index);
        }
    }

    /// Handshakes past their deadline end.
    fn sweep(&mut self, stopping: bool) {
        let now = Instant::now();
        for index in 0..self.handshakes.len() {
            let expired = match &self.handshakes[index] {
                Some(h) => h.expired(now, stopping),
                None => false,
            };
            if expired {
                self.remove(index);
            }
        }
    }

    fn files_stamp(&self) -> Option<Vec<SystemTime>> {
        let mut paths = vec![&self.tls.certificate, &self.tls.key];
        paths.extend(self.tls.chain.iter());
        paths.extend(self.tls.client_ca.iter());
        paths
            .into_iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// A renewed certificate is served from the next handshake on; one that
    /// does not load leaves the current one serving.
    fn reload_if_changed(&mut self) {
        let seen = self.files_stamp();
        if seen.is_none() || seen == self.files_seen {
            return;
        }
        match rwsgi_http::tls::server_config(&self.tls, self.alpn) {
            Ok(config) => {
                self.rustls = config;
                self.files_seen = seen;
                info!(self.log, "TLS certificate files changed: loaded"; "certificate" => %self.tls.certificate.display());
            }
            Err(e) => {
                // Not again until the files change once more.
                self.files_seen = seen;
                error!(self.log, "TLS certificate files changed but cannot be loaded; the previous certificate stays in use: {}", e);
            }
        }
    }
}

/// A connection whose handshake is done: to the h2 thread when ALPN chose
/// `h2`, else to the I/O thread.
fn adopt(handoff: &Handoff, http2: Option<&crate::http2::H2>, done: Established) {
    match (done.h2, http2) {
        (true, Some(h2)) => h2.adopt_tls(done),
        _ => handoff.give_back(Returned::Adopt(Box::new(done.into_conn()))),
    }
}
