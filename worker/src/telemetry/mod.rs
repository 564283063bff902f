//! `--telemetry-service unix:PATH` (mod_wsgi 6's WSGITelemetryService):
//! each worker pushes mod_wsgi's telemetry datagrams (see `wire`) to the
//! ingester's unix datagram socket, from a thread of its own, as mod_wsgi's
//! daemon processes do. The datagrams carry the worker's pid and its own
//! figures (CPU, memory, its threads), so the worker sends them, reading
//! its scoreboard slot; the master has no per-process view of CPU time.
//!
//! Sent: `process_started` at start; each `--telemetry-interval` a
//! `request_metrics` sample; with `--slow-requests`, a `slow_request`
//! record per tick for each request running past the threshold (state 0)
//! and one when such a request completes (state 1); `process_stopping`
//! when the worker starts draining and `process_stopped` (after a last
//! sample) when it ends. Values rwsgi does not measure (Apache and
//! mod_wsgi versions, GIL wait, I/O totals, the per-phase histograms and
//! min/max, GC) are left out, as mod_wsgi leaves out what it lacks. Sends
//! never block: with no ingester listening, or its queue full, a datagram
//! is dropped (as mod_wsgi drops it).

mod wire;

use crate::python::server_metrics::{cpu_times, memory};
use pyo3::types::PyAnyMethods as _;
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::metrics::{MetricsSnapshot, CLASSES};
use rwsgi_shared::scoreboard::{Scoreboard, ThreadState, WorkerState, MAX_THREADS};
use slog::{info, warn, Logger};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wire::{field, Datagram, Kind};

/// What identifies this process in every sample.
struct Identity {
    hostname: String,
    process_group: Option<String>,
    parent_pid: u32,
    python_version: String,
    switch_interval: f64,
}

/// A completed request past `--slow-requests`, as the request thread saw it.
pub struct Completed<'a> {
    pub thread: usize,
    /// The scoreboard's start of the request (monotonic ms).
    pub started_ms: u64,
    pub took: Duration,
    pub queued: Duration,
    pub status: u16,
    pub head: &'a rwsgi_http::RequestHead,
    pub conn: &'a crate::conn::Conn,
}

/// The figures a sample is the difference of.
struct Previous {
    at: Instant,
    metrics: MetricsSnapshot,
    cpu: (f64, f64),
    thread_requests: Vec<u64>,
    /// Thread time spent in requests, running ones included so far, µs
    /// (as the master's utilization counts it).
    busy_us: u64,
}

pub struct Reporter {
    socket: UnixDatagram,
    target: PathBuf,
    pid: u32,
    seq: AtomicU32,
    interval: Duration,
    slow_ms: u64,
    capture_user_agent: bool,
    /// `process_stopping` was sent (once, when the worker starts draining).
    stopping_sent: std::sync::atomic::AtomicBool,
    identity: Identity,
    started_wall: f64,
    started: Instant,
    /// Wall-clock ms minus monotonic ms, fixed once so that a request's
    /// start stamp is the same in every record of it (the ingester keys
    /// slow requests by pid, thread and start stamp).
    wall_offset_ms: i128,
    scoreboard: Arc<Scoreboard>,
    slot: usize,
    threads: usize,
    /// Completed slow requests, sent at the next tick.
    completed: Mutex<Vec<Vec<u8>>>,
    stop: (Mutex<bool>, Condvar),
    thread: Mutex<Option<JoinHandle<()>>>,
    log: Logger,
}

impl Reporter {
    /// With `--telemetry-service`: sends `process_started` and starts the
    /// sampling thread.
    pub fn start(
        config: &ServerConfig,
        scoreboard: &Arc<Scoreboard>,
        slot: usize,
        log: &Logger,
    ) -> Option<Arc<Reporter>> {
        let t = config.telemetry.as_ref()?;
        let socket = match UnixDatagram::unbound().and_then(|s| {
            s.set_nonblocking(true)?;
            Ok(s)
        }) {
            Ok(s) => s,
            Err(e) => {
                warn!(
                    log,
                    "--telemetry-service: no socket, metrics will not be sent: {}", e
                );
                return None;
            }
        };
        let (python_version, switch_interval) = pyo3::Python::attach(|py| {
            let v = py.version_info();
            let switch = py
                .import("sys")
                .and_then(|sys| sys.call_method0("getswitchinterval"))
                .and_then(|v| v.extract::<f64>())
                .unwrap_or(0.0);
            (format!("{}.{}.{}", v.major, v.minor, v.patch), switch)
        });
        let now_ms = rwsgi_shared::time::now_ms();
        let wall_ms = rwsgi_shared::time::wall_ms();
        let reporter = Arc::new(Reporter {
            socket,
            target: t.socket.clone(),
            pid: std::process::id(),
            seq: AtomicU32::new(0),
            interval: Duration::from_millis(t.interval_ms),
            slow_ms: config.slow_request_ms,
            capture_user_agent: t.capture_user_agent,
            stopping_sent: std::sync::atomic::AtomicBool::new(false),
            identity: Identity {
                hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_default(),
                process_group: config.process_group.clone(),
                parent_pid: scoreboard.header().master_pid(),
                python_version,
                switch_interval,
            },
            started_wall: wall_ms as f64 / 1000.0,
            started: Instant::now(),
            wall_offset_ms: i128::from(wall_ms) - i128::from(now_ms),
            scoreboard: Arc::clone(scoreboard),
            slot,
            threads: config.threads.min(MAX_THREADS),
            completed: Mutex::new(Vec::new()),
            stop: (Mutex::new(false), Condvar::new()),
            thread: Mutex::new(None),
            log: log.clone(),
        });
        reporter.send_started();
        let runner = Arc::clone(&reporter);
        match std::thread::Builder::new()
            .name("rwsgi-telemetry".into())
            .spawn(move || runner.run())
        {
            Ok(handle) => {
                if let Ok(mut slot) = reporter.thread.lock() {
                    *slot = Some(handle);
                }
            }
            Err(e) => warn!(log, "--telemetry-service: no reporter thread: {}", e),
        }
        info!(log, "telemetry reporter started"; "target" => %reporter.target.display(),
            "interval_s" => t.interval_ms as f64 / 1000.0);
        Some(reporter)
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Relaxed).wrapping_add(1)
    }

    /// A datagram's header; its sequence number is given as it is sent.
    fn header(&self, kind: Kind, stamp: f64) -> Datagram {
        Datagram::new(kind, self.pid, 0, stamp)
    }

    fn send(&self, d: Datagram) {
        if let Some(bytes) = d.finish() {
            self.send_bytes(bytes);
        }
    }

    /// Numbers the datagram in the order sent (the ingester counts gaps
    /// as drops), then sends it; dropped when no ingester listens or its
    /// queue is full.
    fn send_bytes(&self, mut bytes: Vec<u8>) {
        wire::set_seq(&mut bytes, self.next_seq());
        let _ = self.socket.send_to(&bytes, &self.target);
    }

    fn wall_of(&self, mono_ms: u64) -> f64 {
        (i128::from(mono_ms) + self.wall_offset_ms) as f64 / 1000.0
    }

    fn now_wall() -> f64 {
        rwsgi_shared::time::wall_ms() as f64 / 1000.0
    }

    fn identified(&self, d: Datagram) -> Datagram {
        d.bytes_if(field::HOSTNAME, Some(&self.identity.hostname))
            .bytes_if(field::PROCESS_GROUP, self.identity.process_group.as_deref())
    }

    fn send_started(&self) {
        let mut d = self.header(Kind::ProcessStarted, self.started_wall);
        d = d.bytes(field::PYTHON_VERSION, &self.identity.python_version);
        d = self.identified(d).u64(
            field::PROCESS_PARENT_PID,
            u64::from(self.identity.parent_pid),
        );
        if self.identity.switch_interval > 0.0 {
            d = d.f64(field::SWITCH_INTERVAL, self.identity.switch_interval);
        }
        self.send(d);
    }

    fn run(&self) {
        let mut previous = self.measure();
        loop {
            let (lock, wake) = &self.stop;
            let Ok(guard) = lock.lock() else { return };
            let Ok((guard, _)) = wake.wait_timeout_while(guard, self.interval, |stop| !*stop)
            else {
                return;
            };
            let stopping = *guard;
            drop(guard);
            // When stopped: the last, partial interval (as mod_wsgi's final tick).
            previous = self.tick(previous);
            if stopping {
                return;
            }
            let w = self.scoreboard.worker(self.slot);
            if w.is_some_and(|w| w.state() == WorkerState::Draining) {
                self.send_stopping();
            }
        }
    }

    /// `process_stopping`, once: the worker stops taking requests.
    fn send_stopping(&self) {
        if self.stopping_sent.swap(true, Relaxed) {
            return;
        }
        let busy = self
            .scoreboard
            .worker(self.slot)
            .map_or(0, |w| w.busy_threads());
        let d = self.identified(self.header(Kind::ProcessStopping, Self::now_wall()));
        self.send(d.u64(field::ACTIVE_REQUESTS_AT_DECISION, u64::from(busy)));
    }

    fn measure(&self) -> Previous {
        let w = self.scoreboard.worker(self.slot);
        let metrics = w.map(|w| w.metrics().snapshot()).unwrap_or_default();
        let mono = rwsgi_shared::time::now_ms();
        let running_us: u64 = (0..self.threads)
            .filter_map(|t| w.and_then(|w| w.thread(t)))
            .filter(|th| th.state() == ThreadState::Busy && th.request_started_ms() != 0)
            .map(|th| mono.saturating_sub(th.request_started_ms()) * 1000)
            .sum();
        Previous {
            at: Instant::now(),
            busy_us: metrics.busy_us + running_us,
            metrics,
            cpu: cpu_times(),
            thread_requests: (0..self.threads)
                .map(|t| w.and_then(|w| w.thread(t)).map_or(0, |th| th.requests()))
                .collect(),
        }
    }

    /// Sends one sample (the difference from `previous`), then the slow
    /// requests; returns the figures the next sample is the difference of.
    fn tick(&self, previous: Previous) -> Previous {
        let now = self.measure();
        let period = now.at.duration_since(previous.at).as_secs_f64().max(1e-6);
        let (m, p) = (&now.metrics, &previous.metrics);
        let count = m.requests_total().saturating_sub(p.requests_total());
        let w = self.scoreboard.worker(self.slot);
        let busy_us = now.busy_us.saturating_sub(previous.busy_us) as f64;
        let user = (now.cpu.0 - previous.cpu.0).max(0.0) / period;
        let system = (now.cpu.1 - previous.cpu.1).max(0.0) / period;
        let mut d = self.header(Kind::Request, Self::now_wall());
        d = d.bytes(field::PYTHON_VERSION, &self.identity.python_version);
        d = self
            .identified(d)
            .u64(
                field::PROCESS_PARENT_PID,
                u64::from(self.identity.parent_pid),
            )
            .f64(field::SAMPLE_PERIOD, period)
            .f64(field::TELEMETRY_INTERVAL, self.interval.as_secs_f64())
            .f64(field::SLOW_REQUESTS_THRESHOLD, self.slow_ms as f64 / 1000.0);
        if self.identity.switch_interval > 0.0 {
            d = d.f64(field::SWITCH_INTERVAL, self.identity.switch_interval);
        }
        d = d
            .u64(field::REQUEST_COUNT, count)
            .f64(field::REQUEST_THROUGHPUT, count as f64 / period)
            .f64(
                field::CAPACITY_UTILIZATION,
                (busy_us / 1e6 / (period * self.threads.max(1) as f64)).clamp(0.0, 1.0),
            )
            .f64(field::CPU_USER_UTILIZATION, user)
            .f64(field::CPU_SYSTEM_UTILIZATION, system)
            .f64(field::CPU_UTILIZATION, user + system);
        let (rss, max_rss) = memory();
        d = d
            .u64(field::MEMORY_RSS, rss)
            .u64(field::MEMORY_MAX_RSS, max_rss)
            .u64(field::REQUEST_THREADS_MAXIMUM, self.threads as u64)
            .u64(field::REQUEST_THREADS_STARTED, self.threads as u64)
            .u64(
                field::REQUEST_THREADS_ACTIVE,
                u64::from(w.map_or(0, |w| w.busy_threads())),
            );
        let answered = m.duration.count().saturating_sub(p.duration.count());
        if answered > 0 {
            let mean = |now_us: u64, then_us: u64| {
                now_us.saturating_sub(then_us) as f64 / 1e6 / answered as f64
            };
            let queue = mean(m.queue_wait.sum_us, p.queue_wait.sum_us);
            let app = mean(m.duration.sum_us, p.duration.sum_us);
            d = d
                .f64(field::QUEUE_TIME, queue)
                .f64(field::APPLICATION_TIME, app)
                .f64(field::REQUEST_TIME, queue + app);
        }
        for (c, _) in CLASSES.iter().enumerate() {
            let of = |s: &MetricsSnapshot| s.requests.iter().map(|row| row[c]).sum::<u64>();
            d = d.u64(
                field::STATUS_1XX_TOTAL + c as u16,
                of(m).saturating_sub(of(p)),
            );
        }
        let completed: Vec<i32> = now
            .thread_requests
            .iter()
            .zip(&previous.thread_requests)
            .map(|(n, p)| i32::try_from(n.saturating_sub(*p)).unwrap_or(i32::MAX))
            .collect();
        let mono = rwsgi_shared::time::now_ms();
        let elapsed: Vec<f64> = (0..self.threads)
            .map(|t| match w.and_then(|w| w.thread(t)) {
                Some(th) if th.state() == ThreadState::Busy && th.request_started_ms() != 0 => {
                    mono.saturating_sub(th.request_started_ms()) as f64 / 1000.0
                }
                _ => 0.0,
            })
            .collect();
        d = d
            .i32s(field::REQUEST_THREADS_COMPLETED, &completed)
            .f64s(field::REQUEST_THREADS_CURRENT_ELAPSED, &elapsed);
        self.send(d);
        if self.slow_ms > 0 {
            self.send_slow(mono);
        }
        now
    }

    /// Completed slow requests first, then those still running past the
    /// threshold (as mod_wsgi orders them).
    fn send_slow(&self, mono: u64) {
        let done = self
            .completed
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        for bytes in done {
            self.send_bytes(bytes);
        }
        let Some(w) = self.scoreboard.worker(self.slot) else {
            return;
        };
        let stamp = Self::now_wall();
        for t in 0..self.threads {
            let Some(th) = w.thread(t) else { continue };
            let started = th.request_started_ms();
            if th.state() != ThreadState::Busy || started == 0 {
                continue;
            }
            let running = mono.saturating_sub(started);
            if running < self.slow_ms {
                continue;
            }
            let described = th.describe();
            let (method, path) = described.split_once(' ').unwrap_or((&described, ""));
            let d = self
                .header(Kind::SlowRequest, stamp)
                .u64(field::SLOW_RECORD_STATE, 0)
                .f64(field::SLOW_START_STAMP, self.wall_of(started))
                .f64(field::SLOW_DURATION, running as f64 / 1000.0)
                .u64(field::SLOW_THREAD_ID, t as u64)
                .f64(field::SLOW_APPLICATION_TIME, running as f64 / 1000.0)
                .u64(field::SLOW_STATUS, 0)
                .bytes_if(field::SLOW_METHOD, Some(method))
                .bytes_if(field::SLOW_PATH_INFO, Some(path))
                .bytes(field::SLOW_PEER_IP, &th.client().ip().to_string());
            self.send(d);
        }
    }

    /// A request thread's request ended: past `--slow-requests`, its
    /// record goes out with the next tick.
    pub fn request_ended(&self, c: &Completed<'_>) {
        if self.slow_ms == 0 || c.took < Duration::from_millis(self.slow_ms) || c.started_ms == 0 {
            return;
        }
        let head = c.head;
        let text = |name: &str| head.header(name).map(String::from_utf8_lossy);
        let host = text("host");
        let agent = if self.capture_user_agent {
            text("user-agent")
        } else {
            None
        };
        let protocol = if c.conn.http2.is_some() {
            "HTTP/2.0"
        } else {
            head.version.as_str()
        };
        let d = self
            .header(Kind::SlowRequest, Self::now_wall())
            .u64(field::SLOW_RECORD_STATE, 1)
            .f64(field::SLOW_START_STAMP, self.wall_of(c.started_ms))
            .f64(field::SLOW_DURATION, c.took.as_secs_f64())
            .u64(field::SLOW_THREAD_ID, c.thread as u64)
            .bytes(field::SLOW_METHOD, &head.method)
            .bytes(
                field::SLOW_SCHEME,
                if c.conn.tls.is_some() {
                    "https"
                } else {
                    "http"
                },
            )
            .bytes_if(field::SLOW_HOSTNAME, host.as_deref())
            .bytes(field::SLOW_SCRIPT_NAME, "")
            .bytes(field::SLOW_PATH_INFO, &head.path)
            .bytes(field::SLOW_PROTOCOL, protocol)
            .bytes(
                field::SLOW_PEER_IP,
                &c.conn.origin.client().ip().to_string(),
            )
            .bytes_if(field::SLOW_USER_AGENT, agent.as_deref())
            .f64(field::SLOW_QUEUE_TIME, c.queued.as_secs_f64())
            .f64(field::SLOW_APPLICATION_TIME, c.took.as_secs_f64())
            .u64(field::SLOW_STATUS, u64::from(c.status));
        if let (Some(bytes), Ok(mut queue)) = (d.finish(), self.completed.lock()) {
            // Bounded: an ingester that never reads must not grow this.
            if queue.len() < 1024 {
                queue.push(bytes);
            }
        }
    }

    /// The worker is ending: stops the sampling thread, sends a last
    /// sample (the partial interval) and `process_stopped`. `graceful`:
    /// every request finished.
    pub fn finish(&self, graceful: bool) {
        // A drain shorter than an interval was not seen by the thread.
        self.send_stopping();
        if let Ok(mut stop) = self.stop.0.lock() {
            *stop = true;
        }
        self.stop.1.notify_all();
        // The thread sends the last sample as it ends.
        if let Some(h) = self.thread.lock().ok().and_then(|mut h| h.take()) {
            let _ = h.join();
        }
        let w = self.scoreboard.worker(self.slot);
        let busy = w.map_or(0, |w| w.busy_threads());
        let d = self
            .identified(self.header(Kind::ProcessStopped, Self::now_wall()))
            .f64(field::PROCESS_UPTIME, self.started.elapsed().as_secs_f64())
            .u64(field::LIFETIME_REQUEST_COUNT, w.map_or(0, |w| w.requests()))
            .u64(field::ACTIVE_REQUESTS_AT_EXIT, u64::from(busy))
            .u64(field::GRACEFUL_DRAIN, u64::from(graceful && busy == 0));
        self.send(d);
        slog::debug!(self.log, "telemetry reporter stopped");
    }
}
