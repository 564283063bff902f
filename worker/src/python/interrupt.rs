//! `--interrupt-timeout` (mod_wsgi 6): a request that overruns
//! `--request-timeout` gets `mod_wsgi.RequestTimeout` raised in its thread
//! (`PyThreadState_SetAsyncExc`). If it unwinds, the client gets a 504 and
//! the thread serves on. If the request is still running `--interrupt-timeout`
//! later (the application caught the exception and carried on, or the
//! thread is in C code: a pending asynchronous exception is only raised
//! between bytecodes), the master recycles the worker as it would without
//! the option; it waits that much longer before it does (see the
//! supervisor's `recycle_reason`).
//!
//! `--slow-requests` (mod_wsgi 6) shares the watchdog: a request running
//! longer than its threshold is logged once, with its thread's Python
//! stack, and goes on.
//!
//! A watchdog thread reads the request threads' start times (atomics) and
//! takes the GIL only to interrupt or to read a slow request's stack. Both sides change a thread's state only
//! while holding the GIL, and the request thread withdraws a pending
//! exception as it ends its request, so an exception meant for one request
//! never reaches the next one on the same thread.

use super::Application;
use pyo3::prelude::*;
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::scoreboard::Scoreboard;
use slog::{info, warn, Logger};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the watchdog looks at the request threads.
const TICK: Duration = Duration::from_millis(100);

/// Where a thread's current request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not interrupted.
    Running = 0,
    /// RequestTimeout raised in it.
    Interrupted = 1,
    /// Still running `--interrupt-timeout` after that (logged once).
    GaveUp = 2,
}

impl Stage {
    fn from_u8(v: u8) -> Stage {
        match v {
            1 => Stage::Interrupted,
            2 => Stage::GaveUp,
            _ => Stage::Running,
        }
    }
}

/// What the watchdog does about one thread this turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Wait,
    /// Over `--request-timeout`: raise RequestTimeout in it.
    Interrupt,
    /// Interrupted, and still running `--interrupt-timeout` later: say so
    /// (the master replaces the worker).
    GiveUp,
}

/// The decision for a thread whose request has been running `running_ms`
/// (`None`: no request).
pub fn step(running_ms: Option<u64>, stage: Stage, request_ms: u64, interrupt_ms: u64) -> Step {
    let Some(running) = running_ms else {
        return Step::Wait;
    };
    match stage {
        // Watching for --slow-requests alone: nothing is interrupted.
        Stage::Running if interrupt_ms == 0 => Step::Wait,
        Stage::Running if running > request_ms => Step::Interrupt,
        Stage::Interrupted if running > request_ms.saturating_add(interrupt_ms) => Step::GiveUp,
        _ => Step::Wait,
    }
}

/// Whether a request running `running_ms` is to be logged as slow now
/// (`--slow-requests`, 0: off): once per request.
pub fn is_slow(running_ms: Option<u64>, logged: bool, slow_ms: u64) -> bool {
    slow_ms > 0 && !logged && running_ms.is_some_and(|r| r > slow_ms)
}

#[derive(Default)]
struct Watched {
    /// When the running request began, in ms since `Interrupts::epoch`,
    /// plus one; 0: no request.
    started: AtomicU64,
    /// The thread's Python identifier (`threading.get_ident()`).
    ident: AtomicU64,
    /// A [`Stage`].
    stage: AtomicU8,
    /// The running request was logged as slow.
    slow_logged: AtomicBool,
    /// The running request's id, for the slow-request record.
    request_id: std::sync::Mutex<String>,
}

/// The request threads as the watchdog sees them.
pub struct Interrupts {
    epoch: Instant,
    request_ms: u64,
    interrupt_ms: u64,
    /// `--slow-requests`; 0: off.
    slow_ms: u64,
    threads: Box<[Watched]>,
    /// `RequestTimeout`, the class raised.
    class: Py<PyAny>,
    app: Arc<Application>,
    scoreboard: Arc<Scoreboard>,
    slot: usize,
    log: Logger,
}

impl Interrupts {
    /// With `--interrupt-timeout` or `--slow-requests`: the shared state
    /// and its watchdog thread.
    pub fn start(
        config: &ServerConfig,
        app: &Arc<Application>,
        scoreboard: &Arc<Scoreboard>,
        slot: usize,
        log: &Logger,
    ) -> Option<Arc<Interrupts>> {
        let t = config.timeouts;
        if t.interrupt_ms == 0 && config.slow_request_ms == 0 {
            return None;
        }
        let class = Python::attach(|py| {
            app.bootstrap
                .bind(py)
                .getattr("RequestTimeout")
                .map(Bound::unbind)
        });
        let class = match class {
            Ok(c) => c,
            Err(e) => {
                warn!(log, "--interrupt-timeout unavailable: {}", e);
                return None;
            }
        };
        let interrupts = Arc::new(Interrupts {
            epoch: Instant::now(),
            request_ms: t.request_ms,
            interrupt_ms: t.interrupt_ms,
            slow_ms: config.slow_request_ms,
            threads: (0..config.threads).map(|_| Watched::default()).collect(),
            class,
            app: app.clone(),
            scoreboard: scoreboard.clone(),
            slot,
            log: log.clone(),
        });
        let watchdog = interrupts.clone();
        let spawned = std::thread::Builder::new()
            .name("rwsgi-interrupt".into())
            .spawn(move || watchdog.watch());
        if let Err(e) = spawned {
            warn!(
                log,
                "--interrupt-timeout unavailable: no watchdog thread: {}", e
            );
            return None;
        }
        Some(interrupts)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request thread begins request `request_id` (with the GIL).
    pub fn begin(&self, _py: Python<'_>, thread: usize, request_id: &str) {
        let Some(w) = self.threads.get(thread) else {
            return;
        };
        // SAFETY: asks the OS for the calling thread's identifier; no state.
        let ident = unsafe { pyo3::ffi::PyThread_get_thread_ident() };
        // c_ulong is u32 on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        w.ident.store(u64::from(ident), Relaxed);
        w.stage.store(Stage::Running as u8, Relaxed);
        w.slow_logged.store(false, Relaxed);
        if self.slow_ms > 0 {
            if let Ok(mut id) = w.request_id.lock() {
                id.clear();
                id.push_str(request_id);
            }
        }
        w.started.store(self.now_ms() + 1, Relaxed);
    }

    /// A request thread ends its request (with the GIL): an exception the
    /// watchdog raised that has not surfaced yet is withdrawn.
    pub fn end(&self, _py: Python<'_>, thread: usize) {
        let Some(w) = self.threads.get(thread) else {
            return;
        };
        w.started.store(0, Relaxed);
        if w.stage.swap(Stage::Running as u8, Relaxed) != Stage::Running as u8 {
            // SAFETY: the GIL is held (`_py`); a null exception clears the
            // calling thread's pending asynchronous exception.
            unsafe {
                pyo3::ffi::PyThreadState_SetAsyncExc(
                    w.ident.load(Relaxed) as std::ffi::c_long,
                    std::ptr::null_mut(),
                );
            }
        }
    }

    /// Whether `err` is the RequestTimeout this server raises.
    pub fn is_request_timeout(&self, py: Python<'_>, err: &PyErr) -> bool {
        err.is_instance(py, self.class.bind(py))
    }

    fn watch(&self) {
        if self.interrupt_ms > 0 {
            info!(self.log, "requests over --request-timeout are interrupted (--interrupt-timeout)";
                "request_timeout_s" => self.request_ms as f64 / 1000.0,
                "interrupt_timeout_s" => self.interrupt_ms as f64 / 1000.0);
        }
        loop {
            std::thread::sleep(TICK);
            let now = self.now_ms();
            for (thread, w) in self.threads.iter().enumerate() {
                let started = w.started.load(Relaxed);
                let running = (started != 0).then(|| now.saturating_sub(started - 1));
                if is_slow(running, w.slow_logged.load(Relaxed), self.slow_ms) {
                    self.log_slow(thread, started);
                }
                let stage = Stage::from_u8(w.stage.load(Relaxed));
                match step(running, stage, self.request_ms, self.interrupt_ms) {
                    Step::Wait => {}
                    Step::Interrupt => self.interrupt(thread, started),
                    Step::GiveUp => {
                        let gave_up = w.stage.compare_exchange(
                            Stage::Interrupted as u8,
                            Stage::GaveUp as u8,
                            Relaxed,
                            Relaxed,
                        );
                        if gave_up.is_ok() {
                            warn!(self.log, "request did not unwind within --interrupt-timeout after RequestTimeout; the worker will be replaced";
                                "thread" => thread, "request" => self.describe(thread));
                        }
                    }
                }
            }
        }
    }

    fn describe(&self, thread: usize) -> String {
        self.scoreboard
            .worker(self.slot)
            .and_then(|sb| sb.thread(thread).map(|t| t.describe()))
            .unwrap_or_default()
    }

    /// Logs the request of `thread` that began at `started` as slow, with
    /// its Python stack, if it still runs it. Like `interrupt`, a thread
    /// holding the GIL in C code keeps the watchdog waiting here.
    fn log_slow(&self, thread: usize, started: u64) {
        let Some(w) = self.threads.get(thread) else {
            return;
        };
        w.slow_logged.store(true, Relaxed);
        let id = w.request_id.lock().map(|id| id.clone()).unwrap_or_default();
        Python::attach(|py| {
            // With the GIL the request thread cannot be between requests.
            if w.started.load(Relaxed) != started {
                return;
            }
            let stack = self
                .app
                .bootstrap
                .bind(py)
                .call_method1("thread_stack", (w.ident.load(Relaxed),))
                .and_then(|s| s.extract::<String>())
                .unwrap_or_default();
            let running = self.now_ms().saturating_sub(started - 1);
            warn!(self.log, "slow request: running for {:.1} s (--slow-requests {} s), still running\n{}",
                running as f64 / 1000.0, self.slow_ms as f64 / 1000.0, stack.trim_end();
                "request_id" => id, "request" => self.describe(thread), "thread" => thread,
                "running_s" => running as f64 / 1000.0);
        });
    }

    /// Raises RequestTimeout in `thread` if it still runs the request that
    /// began at `started`. A thread holding the GIL in C code keeps the
    /// watchdog waiting here; the master's recycling covers that case.
    fn interrupt(&self, thread: usize, started: u64) {
        let Some(w) = self.threads.get(thread) else {
            return;
        };
        Python::attach(|py| {
            // With the GIL the request thread cannot be between requests.
            if w.started.load(Relaxed) != started
                || Stage::from_u8(w.stage.load(Relaxed)) != Stage::Running
            {
                return;
            }
            let ident = w.ident.load(Relaxed);
            let stack = self
                .app
                .bootstrap
                .bind(py)
                .call_method1("thread_stack", (ident,))
                .and_then(|s| s.extract::<String>())
                .unwrap_or_default();
            // SAFETY: the GIL is held and the class is a live exception type
            // (kept alive by `self.class`); CPython takes its own reference.
            let found = unsafe {
                pyo3::ffi::PyThreadState_SetAsyncExc(ident as std::ffi::c_long, self.class.as_ptr())
            };
            w.stage.store(Stage::Interrupted as u8, Relaxed);
            let running = self.now_ms().saturating_sub(started - 1);
            warn!(self.log, "request timeout: raising RequestTimeout in thread {} after {:.1} s (--request-timeout {} s); it has {} s to unwind (--interrupt-timeout)\n{}",
                thread, running as f64 / 1000.0, self.request_ms as f64 / 1000.0, self.interrupt_ms as f64 / 1000.0,
                stack.trim_end();
                "request" => self.describe(thread), "found" => found);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_thread_is_left_alone() {
        assert_eq!(step(None, Stage::Running, 2000, 2000), Step::Wait);
        assert_eq!(step(None, Stage::Interrupted, 2000, 2000), Step::Wait);
    }

    #[test]
    fn a_request_within_the_timeout_is_left_alone() {
        assert_eq!(step(Some(1999), Stage::Running, 2000, 2000), Step::Wait);
        assert_eq!(step(Some(2000), Stage::Running, 2000, 2000), Step::Wait);
    }

    #[test]
    fn a_request_over_the_timeout_is_interrupted_once() {
        assert_eq!(
            step(Some(2001), Stage::Running, 2000, 2000),
            Step::Interrupt
        );
        assert_eq!(step(Some(2500), Stage::Interrupted, 2000, 2000), Step::Wait);
    }

    #[test]
    fn without_the_interrupt_nothing_is_interrupted() {
        assert_eq!(step(Some(9000), Stage::Running, 2000, 0), Step::Wait);
    }

    #[test]
    fn a_slow_request_is_logged_once_past_its_threshold() {
        assert!(!is_slow(None, false, 1000));
        assert!(!is_slow(Some(1000), false, 1000));
        assert!(is_slow(Some(1001), false, 1000));
        assert!(!is_slow(Some(5000), true, 1000));
        assert!(!is_slow(Some(5000), false, 0));
    }

    #[test]
    fn a_request_that_does_not_unwind_is_given_up_once() {
        assert_eq!(step(Some(4000), Stage::Interrupted, 2000, 2000), Step::Wait);
        assert_eq!(
            step(Some(4001), Stage::Interrupted, 2000, 2000),
            Step::GiveUp
        );
        assert_eq!(step(Some(9000), Stage::GaveUp, 2000, 2000), Step::Wait);
    }
}
