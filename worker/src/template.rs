//! The template process (`--preload interpreter` or `application`).
//!
//! Started by the master like a worker, but with `--template`: it starts
//! Python once (and with `--preload application` imports the application),
//! says it is ready, then forks a worker each time the master sends `Fork`
//! with the new worker's channel end. The workers share the template's
//! pages copy-on-write, and a replacement is running in milliseconds
//! instead of starting Python and importing the application again.
//!
//! Each fork is a double fork: the template's child forks the worker and
//! exits at once, so the worker is re-parented to the master (a child
//! subreaper) and the master supervises and reaps it exactly like a worker
//! it started itself. The worker answers `Fork` over the template's
//! channel with its pid (`Event::Forked`), then closes that channel.
//!
//! The forks are `os.fork()`, so CPython's own before/after-fork work runs:
//! `os.register_at_fork` hooks (`random` reseeds itself in the child), the
//! threading module's state, the import lock. Forking is only safe from a
//! single thread: the template starts none, and if the application started
//! one while it was imported, the template refuses to fork (it reports
//! `Failed` and the master starts workers the ordinary way).

use crate::lifecycle::{self, serve, Preloaded, Start};
use crate::python::{self, Application};
use crate::wsgi;
use pyo3::prelude::*;
use rwsgi_shared::channel::{Channel, ChannelError, Event, Message, Received};
use rwsgi_shared::config::{Preload, ServerConfig};
use rwsgi_shared::exit::ExitCode;
use rwsgi_shared::scoreboard::Scoreboard;
use slog::{error, info, warn, Logger};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// Where a process stands after `fork_worker`.
enum Side {
    /// Still the template: serve the next `Fork`.
    Template,
    /// The new worker.
    Worker,
}

pub fn run(
    generation: u32,
    config: ServerConfig,
    channel: Channel,
    scoreboard: Scoreboard,
    log: &Logger,
) -> ExitCode {
    // `rwsgi-template` in ps, top and /proc/PID/stat; workers forked from
    // it take `rwsgi-worker` back.
    set_name(c"rwsgi-template");
    // The master reads why over the channel and starts workers the ordinary way.
    let report = |why: String| {
        error!(log, "{}", why);
        let _ = channel.send(&Message::Event(Event::Failed(why)), None);
    };
    let fail = |why: String, code: ExitCode| {
        report(why);
        code
    };
    let interpreter = match python::start(&config, log) {
        Ok(i) => i,
        Err(e) => return fail(format!("cannot start Python: {e}"), ExitCode::PythonInit),
    };
    let load_started = std::time::SystemTime::now();
    let app: Option<Arc<Application>> = match config.preload {
        Preload::Application => {
            match python::load_application(&config, &interpreter, wsgi::environ_template, log) {
                Ok(app) => Some(Arc::new(app)),
                Err(e) => return fail(e.to_string(), ExitCode::AppLoad),
            }
        }
        Preload::Interpreter | Preload::None => None,
    };
    if let Err(e) = Python::attach(|py| {
        python::prepare_template(py)?;
        wsgi::create_types(py);
        Ok::<(), PyErr>(())
    }) {
        warn!(
            log,
            "preparing the template failed; workers share less memory: {}", e
        );
    }
    // Everything made so far moves to the collector's permanent generation:
    // a collection in a worker would otherwise write to every object's
    // header and so copy every page it shares with the template.
    if let Err(e) = Python::attach(|py| -> PyResult<()> {
        let gc = py.import("gc")?;
        gc.call_method0("freeze")?;
        Ok(())
    }) {
        warn!(log, "gc.freeze() failed; workers share less memory: {}", e);
    }
    let threads = thread_count();
    if threads != 1 {
        let why = format!(
            "the application started {} thread(s) while it was imported; a fork would lose them, \
             so workers start on their own instead (--preload interpreter avoids this)",
            threads.saturating_sub(1)
        );
        warn!(log, "{}", why);
        let _ = channel.send(&Message::Event(Event::Failed(why)), None);
        return ExitCode::Ok;
    }
    if channel.send(&Message::Event(Event::Ready), None).is_err() {
        return ExitCode::Failure;
    }
    info!(log, "template ready"; "preload" => ?config.preload, "generation" => generation);
    let mut buf = Vec::new();
    loop {
        let ((slot, epoch), worker_generation, worker_channel) = match channel.recv(&mut buf) {
            Ok(Received {
                message:
                    Message::Fork {
                        slot,
                        generation,
                        epoch,
                    },
                fd: Some(fd),
            }) => ((slot, epoch), generation, fd),
            Ok(other) => {
                warn!(log, "unexpected message for the template"; "message" => ?other.message);
                continue;
            }
            Err(ChannelError::Closed) => return ExitCode::Ok,
            Err(ChannelError::Malformed(why)) => {
                warn!(log, "malformed message for the template"; "why" => why);
                continue;
            }
            Err(e) => {
                error!(log, "template channel failed: {}", e);
                return ExitCode::Failure;
            }
        };
        match fork_worker() {
            Ok(Side::Template) => drop(worker_channel),
            Ok(Side::Worker) => {
                return become_worker(
                    Forked {
                        slot,
                        generation: worker_generation,
                        epoch,
                        channel: worker_channel,
                    },
                    channel,
                    (config, scoreboard),
                    &interpreter,
                    app.map(|app| Preloaded { app, load_started }),
                );
            }
            // Said at once: the master need not wait for an answer that cannot come.
            Err(e) => report(format!("cannot fork a worker: {e}")),
        }
    }
}

/// A worker just forked, before it serves.
struct Forked {
    slot: u16,
    generation: u32,
    /// The slot's occupancy it attaches to.
    epoch: u32,
    channel: OwnedFd,
}

/// In the new worker: answer the master with our pid over the template's
/// channel, let go of it, and serve.
fn become_worker(
    forked: Forked,
    template_channel: Channel,
    (config, scoreboard): (ServerConfig, Scoreboard),
    interpreter: &python::Interpreter,
    preloaded: Option<Preloaded>,
) -> ExitCode {
    set_name(c"rwsgi-worker");
    let program = std::env::args()
        .next()
        .unwrap_or_else(|| "rwsgi-worker".into());
    rwsgi_shared::proctitle::set(&format!(
        "{program} --slot {} --generation {} (forked from the template)",
        forked.slot, forked.generation
    ));
    let slot = usize::from(forked.slot);
    let log = lifecycle::worker_log(&config, slot);
    // Before the answer: this worker serves before the master knows its
    // pid, and the master never resets the fields it writes.
    if let Err(code) = lifecycle::attach(&scoreboard, slot, forked.epoch, &log) {
        return code;
    }
    let answer = Message::Event(Event::Forked {
        slot: forked.slot,
        pid: std::process::id(),
    });
    if let Err(e) = template_channel.send(&answer, None) {
        error!(log, "cannot tell the master this worker was forked: {}", e);
        return ExitCode::Failure;
    }
    // Only the template may read the template's channel.
    drop(template_channel);
    serve(
        Start {
            slot,
            generation: forked.generation,
            config,
            channel: Channel::from_fd(forked.channel),
            scoreboard,
        },
        interpreter,
        preloaded,
        &log,
    )
}

/// Forks twice through `os.fork()`; the middle process exits at once and
/// the template reaps it, so the worker's parent becomes the master.
fn fork_worker() -> PyResult<Side> {
    Python::attach(|py| {
        let os = py.import("os")?;
        let child: i32 = os.call_method0("fork")?.extract()?;
        if child > 0 {
            let (_, status): (i32, i32) = os.call_method1("waitpid", (child, 0))?.extract()?;
            if status != 0 {
                // The middle process could not fork the worker.
                return Err(pyo3::exceptions::PyOSError::new_err(format!(
                    "the second fork failed (wait status {status})"
                )));
            }
            return Ok(Side::Template);
        }
        // The middle process: fork the worker and leave.
        let code = match os.call_method0("fork").and_then(|pid| pid.extract::<i32>()) {
            Ok(0) => return Ok(Side::Worker),
            Ok(_) => 0,
            Err(_) => 1,
        };
        // SAFETY: _exit ends this short-lived process without running
        // exit handlers or destructors that belong to the template.
        unsafe { libc::_exit(code) }
    })
}

/// The process name the kernel shows (the main thread's name).
fn set_name(name: &std::ffi::CStr) {
    let _ = nix::sys::prctl::set_name(name);
}

/// Threads of this process, as the kernel counts them.
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1)
}
