//! HTTP/2 (`--http2`): a thread of the worker speaks h2 to clients and
//! HTTP/1.1 to the rest of the worker.
//!
//! Connections come to it from the TLS thread when ALPN chose `h2`, the
//! handshake done and the rustls session with them (this thread then
//! encrypts and decrypts in its own I/O, [`tls_io`]), and from the I/O
//! thread when a plain connection opens with the HTTP/2 preface (h2c with
//! prior knowledge). It runs them on a small tokio runtime with the h2
//! crate (framing, HPACK, flow control, and the known attacks' bounds).
//! Each stream becomes one HTTP/1.1 request on a socket pair whose other
//! end the I/O thread adopts as a connection of its own, the request
//! already in its buffer ([`relay`]); the pair is kept for the
//! connection's next streams ([`pool`]). Parsing, request threads, static
//! lanes, timeouts and the environ's rules work on it unchanged,
//! `Conn::http2` making SERVER_PROTOCOL `HTTP/2`. HTTP/1.1
//! pays nothing for it: without `--http2` the thread does not exist, and
//! with it a plain connection's first bytes are compared with the preface
//! once.

mod connection;
mod direct;
mod pool;
mod relay;
mod tls_io;
mod translate;

pub use direct::Router;
pub use pool::{go_home, WorkerEnd};
pub use translate::{preface, Preface};

use crate::conn::Conn;
use crate::handoff::Handoff;
use crate::transport::Session;
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::origin::Origin;
use slog::{error, Logger};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Where the worker is in its life, as the h2 thread sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// GOAWAY sent; open streams finish.
    Draining,
    /// The I/O thread is gone: the thread ends when its connections have.
    Stopping,
}

/// What the h2 thread's connections and streams share.
struct Shared {
    handoff: Arc<Handoff>,
    router: Router,
    settings: Settings,
    phase: watch::Receiver<Phase>,
    /// Streams being relayed, in every connection.
    streams: Arc<AtomicUsize>,
    /// Worker's ends of internal connections away from their pools (the
    /// I/O thread's table holds them), in every connection.
    internal: Arc<AtomicUsize>,
    /// Request threads are owed a wake for streams queued this turn: the
    /// waker task gives it after the turn's other tasks ([`wake_threads`]).
    wake_owed: AtomicBool,
    wakes: tokio::sync::Notify,
    log: Logger,
}

impl Shared {
    /// A stream was queued for the request threads: wake them after this
    /// turn's other streams are queued too.
    fn owe_wake(&self) {
        if !self.wake_owed.swap(true, Ordering::SeqCst) {
            self.wakes.notify_one();
        }
    }
}

/// Wakes the request threads owed a wake, once per turn of the runtime:
/// woken by the first stream queued in a turn, this task runs after the
/// tasks already scheduled (the runtime runs them in order), so a burst
/// of streams costs one round of wakes.
async fn wake_threads(shared: Arc<Shared>) {
    loop {
        shared.wakes.notified().await;
        shared.wake_owed.store(false, Ordering::SeqCst);
        shared.handoff.wake_for_queued();
    }
}

struct Settings {
    /// SETTINGS_MAX_HEADER_LIST_SIZE: `--header-buffer-size`.
    max_header_list: u32,
    /// The client's preface and SETTINGS: the header timeout.
    handshake: Duration,
    /// A connection with no stream for this long is sent GOAWAY.
    idle: Duration,
    /// Largest response head read back from the worker.
    max_response_head: usize,
}

/// A client connection for this thread.
struct Client {
    tcp: std::net::TcpStream,
    /// `h2` over TLS: the session, through its handshake.
    session: Option<Session>,
    /// Bytes read (or decrypted) before it came here: they come first.
    prefix: Vec<u8>,
    origin: Origin,
    tls: Option<Arc<rwsgi_http::tls::Facts>>,
}

pub struct H2 {
    incoming: mpsc::UnboundedSender<(Client, Held)>,
    phase: watch::Sender<Phase>,
    streams: Arc<AtomicUsize>,
    /// Client connections this thread holds.
    connections: Arc<AtomicUsize>,
    /// Worker's ends of internal connections in the I/O thread's table
    /// (see `pool`): no client's.
    internal: Arc<AtomicUsize>,
    finished: Arc<(Mutex<bool>, Condvar)>,
}

/// One in a count while it lives.
struct Held(Arc<AtomicUsize>);

impl Held {
    fn new(count: &Arc<AtomicUsize>) -> Held {
        count.fetch_add(1, Ordering::SeqCst);
        Held(Arc::clone(count))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl H2 {
    /// Starts the thread when `--http2` is set.
    pub fn start(
        config: &ServerConfig,
        handoff: &Arc<Handoff>,
        router: Router,
        log: &Logger,
    ) -> Result<Option<Arc<H2>>, String> {
        if !config.http2 {
            return Ok(None);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| e.to_string())?;
        let (incoming, mut arrivals) = mpsc::unbounded_channel();
        let (phase, phase_rx) = watch::channel(Phase::Serving);
        let streams = Arc::new(AtomicUsize::new(0));
        let internal = Arc::new(AtomicUsize::new(0));
        let t = &config.timeouts;
        let shared = Arc::new(Shared {
            handoff: Arc::clone(handoff),
            router,
            settings: Settings {
                max_header_list: u32::try_from(config.limits.header_buffer).unwrap_or(u32::MAX),
                handshake: Duration::from_millis(t.header_ms.max(1)),
                idle: Duration::from_millis(match t.keep_alive_ms {
                    0 => t.header_ms.max(1),
                    ms => ms,
                }),
                max_response_head: config.limits.header_buffer.max(64 * 1024),
            },
            phase: phase_rx,
            streams: Arc::clone(&streams),
            internal: Arc::clone(&internal),
            wake_owed: AtomicBool::new(false),
            wakes: tokio::sync::Notify::new(),
            log: log.new(slog::o!("thread" => "h2")),
        });
        let finished = Arc::new((Mutex::new(false), Condvar::new()));
        let done = Arc::clone(&finished);
        std::thread::Builder::new()
            .name("rwsgi-h2".into())
            .spawn(move || {
                runtime.block_on(run(&mut arrivals, shared));
                let (flag, cv) = &*done;
                *lock(flag) = true;
                cv.notify_all();
            })
            .map_err(|e| e.to_string())?;
        Ok(Some(Arc::new(H2 {
            incoming,
            phase,
            streams,
            connections: Arc::new(AtomicUsize::new(0)),
            internal,
            finished,
        })))
    }

    /// Takes a plain connection that opened with the HTTP/2 preface (its
    /// buffered bytes first).
    pub fn adopt(&self, conn: Conn) {
        let Conn {
            transport,
            buf,
            origin,
            tls,
            ..
        } = conn;
        // The I/O thread's connections for h2c are plain.
        let Some(tcp) = transport.into_plain() else {
            return;
        };
        self.take(Client {
            tcp,
            session: None,
            prefix: buf,
            origin,
            tls,
        });
    }

    /// Takes a connection whose TLS handshake chose `h2`, with its session.
    pub fn adopt_tls(&self, done: crate::tls::Established) {
        self.take(Client {
            tcp: done.tcp,
            session: Some(done.session),
            prefix: done.buf,
            origin: done.origin,
            tls: Some(done.facts),
        });
    }

    fn take(&self, client: Client) {
        // The thread only ends after `finish`, when no one adopts any more
        // (and a connection it never took is not counted).
        let _ = self.incoming.send((client, Held::new(&self.connections)));
    }

    /// What this thread adds to the connections the I/O thread holds, for
    /// `--max-clients`: each client connection counts once, as over
    /// HTTP/1.1, and the worker's ends of internal connections not at all.
    pub fn held(&self, by_io_thread: usize) -> usize {
        let internal = self.internal.load(Ordering::SeqCst);
        by_io_thread.saturating_sub(internal) + self.connections.load(Ordering::SeqCst)
    }

    /// The worker drains: GOAWAY on every connection, open streams finish.
    pub fn drain(&self) {
        self.phase.send_if_modified(|p| {
            let was = *p;
            if was == Phase::Serving {
                *p = Phase::Draining;
            }
            was == Phase::Serving
        });
    }

    /// No stream is being relayed (a draining I/O thread waits for this).
    pub fn quiet(&self) -> bool {
        self.streams.load(Ordering::SeqCst) == 0
    }

    /// At the worker's exit, after the request threads and before the TLS
    /// thread's: the last responses go out, within `within`.
    pub fn finish(&self, within: Duration) {
        self.phase.send_replace(Phase::Stopping);
        let (done, cv) = &*self.finished;
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

/// The thread's loop: connections as they arrive, until it stops and the
/// last has ended.
async fn run(arrivals: &mut mpsc::UnboundedReceiver<(Client, Held)>, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    let mut phase = shared.phase.clone();
    // Ends with the runtime.
    tokio::spawn(wake_threads(Arc::clone(&shared)));
    loop {
        let now = *phase.borrow_and_update();
        if now == Phase::Stopping && connections.is_empty() {
            return;
        }
        tokio::select! {
            arrived = arrivals.recv() => match arrived {
                // Draining too (a handshake that was under way): it is
                // sent GOAWAY at once, so its client retries elsewhere.
                Some((client, held)) if now != Phase::Stopping => {
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        let _held = held;
                        connection::serve(client, shared).await;
                    });
                }
                Some(_) => {}
                None => return,
            },
            ended = connections.join_next(), if !connections.is_empty() => {
                if let Some(Err(e)) = ended {
                    if e.is_panic() {
                        error!(shared.log, "an HTTP/2 connection's task panicked");
                    }
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
