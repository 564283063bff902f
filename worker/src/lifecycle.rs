//! A worker's life once it has its arguments and configuration: it takes
//! its scoreboard slot, starts Python (unless forked from the template,
//! which did), loads the application, starts the request threads, the
//! static lanes and the I/O loop, and ends every thread by a deadline.
//!
//! `main` (a worker started by exec) and `template` (a worker forked from
//! it) both call down into this module.

use crate::{access_log, handoff, io_loop, python, request_thread, static_lanes, wsgi};
use rwsgi_shared::channel::{Channel, Event, Message};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::exit::ExitCode;
use rwsgi_shared::scoreboard::{Scoreboard, WorkerState};
use slog::{error, info, o};
use std::sync::Arc;

pub fn worker_log(config: &ServerConfig, slot: usize) -> slog::Logger {
    rwsgi_shared::log::logger(config.log_format, config.log_level, "worker")
        .new(o!("worker" => slot, "pid" => std::process::id()))
}

/// Takes scoreboard slot `slot` for the occupancy `epoch` the master started
/// this worker with, before anything else is written there: the worker
/// initialises its own fields (the master never resets them, as a forked
/// worker runs before the master knows it). Refused if the master has moved
/// the slot on, so a worker it gave up on writes nothing.
pub fn attach(
    scoreboard: &Scoreboard,
    slot: usize,
    epoch: u32,
    log: &slog::Logger,
) -> Result<(), ExitCode> {
    match scoreboard.worker(slot) {
        Some(sb) if sb.attach(epoch) => Ok(()),
        Some(sb) => {
            error!(log, "the master has moved this worker's scoreboard slot on (it gave up on this worker); exiting";
                "slot" => slot, "epoch" => epoch, "slot_epoch" => sb.epoch());
            Err(ExitCode::Config)
        }
        None => {
            error!(log, "scoreboard slot out of range"; "slot" => slot);
            Err(ExitCode::Config)
        }
    }
}

/// A worker the master started by exec: takes its scoreboard slot for
/// occupancy `epoch`, starts Python, serves; says why when it exits badly.
pub fn run(start: Start, epoch: u32) -> ExitCode {
    let log = &worker_log(&start.config, start.slot);
    if let Err(code) = attach(&start.scoreboard, start.slot, epoch, log) {
        return code;
    }
    let code = start_python_and_serve(start, log);
    if code != ExitCode::Ok {
        error!(log, "worker exiting"; "why" => code.describe());
    }
    code
}

fn start_python_and_serve(start: Start, log: &slog::Logger) -> ExitCode {
    let interpreter = match python::start(&start.config, log) {
        Ok(i) => i,
        Err(e) => {
            error!(log, "cannot start Python: {}", e);
            let why = format!("cannot start Python: {e}");
            let _ = start
                .channel
                .send(&Message::Event(Event::Failed(why)), None);
            return ExitCode::PythonInit;
        }
    };
    serve(start, &interpreter, None, log)
}

/// An application the template imported before the fork.
pub struct Preloaded {
    pub app: Arc<python::Application>,
    /// When its import began (for `--reload-on-changes`).
    pub load_started: std::time::SystemTime,
}

/// What a worker is started with, however it came to be (exec or fork).
pub struct Start {
    pub slot: usize,
    pub generation: u32,
    pub config: ServerConfig,
    pub channel: Channel,
    pub scoreboard: Scoreboard,
}

/// A worker with Python started: loads the application (unless the template
/// already did), then serves until told to stop.
pub fn serve(
    start: Start,
    interpreter: &python::Interpreter,
    preloaded: Option<Preloaded>,
    log: &slog::Logger,
) -> ExitCode {
    let Start {
        slot,
        generation,
        config,
        channel,
        scoreboard,
    } = start;
    if let Some(group) = &config.process_group {
        rwsgi_shared::proctitle::set(&rwsgi_shared::proctitle::daemon_title(group));
    }
    let config = Arc::new(config);
    let scoreboard = Arc::new(scoreboard);
    let Some(_) = scoreboard.worker(slot) else {
        error!(log, "scoreboard slot out of range"; "slot" => slot);
        return ExitCode::Config;
    };
    // Before the application loads: an import that hangs can be dumped too.
    if let Err(e) = pyo3::Python::attach(|py| python::install_dump(py, log)) {
        slog::warn!(log, "stack dumps without the GIL are unavailable: {}", e);
    }
    if config.server_metrics {
        let installed =
            pyo3::Python::attach(|py| python::server_metrics::install(py, scoreboard.clone()));
        if let Err(e) = installed {
            error!(log, "--server-metrics: {}", e);
            return ExitCode::Failure;
        }
    }
    if config.telemetry.is_none() {
        let installed = pyo3::Python::attach(|py| {
            python::server_metrics::install_process(py, scoreboard.clone(), slot, config.threads)
        });
        if let Err(e) = installed {
            slog::warn!(log, "mod_wsgi.process_metrics() is unavailable: {}", e);
        }
    }
    // Files changed after this instant may not be in the code being loaded.
    let now = std::time::SystemTime::now();
    let (app, load_started) = match preloaded {
        Some(p) => (p.app, p.load_started),
        None => match python::load_application(&config, interpreter, wsgi::environ_template, log) {
            Ok(app) => (Arc::new(app), now),
            Err(e) => {
                // The traceback was already written; say plainly what it means.
                error!(log, "{}", e);
                let _ = channel.send(&Message::Event(Event::Failed(e.to_string())), None);
                return ExitCode::AppLoad;
            }
        },
    };
    let (handoff, poll) = match handoff::Handoff::new() {
        Ok((p, poll)) => (Arc::new(p), poll),
        Err(e) => {
            error!(log, "cannot create the I/O poller: {}", e);
            return ExitCode::Failure;
        }
    };
    let access = match config.access_log {
        false => None,
        true => match access_log::AccessLog::new(
            &config.access_log_format,
            config.log_format,
            config
                .log_files
                .as_ref()
                .is_some_and(|f| f.access.is_some()),
            slot,
        ) {
            Ok(a) => Some(Arc::new(a)),
            Err(e) => {
                error!(log, "--access-log-format: {}", e);
                return ExitCode::Config;
            }
        },
    };
    let (statics, static_threads) = match static_lanes::StaticLanes::start(
        &config,
        &handoff,
        (&scoreboard, slot),
        access.clone(),
        log,
    ) {
        Ok(s) => s,
        Err(e) => {
            error!(log, "cannot start the static file threads: {}", e);
            return ExitCode::Failure;
        }
    };
    crate::proxy_pass::start(&config, &handoff, access.clone(), log);
    // Validated by the master's configuration already.
    let proxy = Arc::new(
        rwsgi_http::forwarded::Rules::new(&config.trust_proxy_headers, &config.trust_proxies)
            .unwrap_or_default(),
    );
    let shared = request_thread::Shared {
        handoff: handoff.clone(),
        app: app.clone(),
        config: config.clone(),
        scoreboard: scoreboard.clone(),
        files: statics.shared_files(),
        statics: Arc::clone(&statics),
        access,
        proxy: Arc::clone(&proxy),
        interrupts: python::Interrupts::start(&config, &app, &scoreboard, slot, log),
        telemetry: crate::telemetry::Reporter::start(&config, &scoreboard, slot, log),
    };
    let telemetry = shared.telemetry.clone();
    let threads = request_thread::start(config.threads, &shared, slot, log);
    let router = crate::http2::Router {
        config: config.clone(),
        files: statics.shared_files(),
        proxy: Arc::clone(&proxy),
    };
    let http2 = match crate::http2::H2::start(&config, &handoff, router, log) {
        Ok(h) => h,
        Err(e) => {
            error!(log, "cannot serve HTTP/2: {}", e);
            return ExitCode::Failure;
        }
    };
    let tls = match crate::tls::Bridge::start(&config, &handoff, http2.clone(), log) {
        Ok(t) => t,
        Err(e) => {
            error!(log, "cannot serve HTTPS: {}", e);
            return ExitCode::Config;
        }
    };
    if python::watched(&config) != python::Watched::Nothing {
        match channel.try_clone() {
            Ok(second) => python::watch_for_changes(
                &config,
                python::Watch {
                    app: app.clone(),
                    channel: second,
                    log: log.clone(),
                    load_started,
                },
            ),
            Err(e) => error!(log, "cannot start the reload monitor: {}", e),
        }
    }
    if let Some(sb) = scoreboard.worker(slot) {
        sb.set_state(WorkerState::Ready);
    }
    if let Err(e) = channel.send(&Message::Event(Event::Ready), None) {
        error!(log, "cannot tell the master this worker is ready: {}", e);
        return ExitCode::Failure;
    }
    info!(log, "ready"; "generation" => generation, "threads" => config.threads);
    python::beat_python(scoreboard.clone(), slot);
    let outcome = io_loop::run(io_loop::Context {
        config: &config,
        channel,
        poll,
        handoff: &handoff,
        scoreboard: &scoreboard,
        slot,
        statics: &statics,
        proxy: &proxy,
        tls: tls.as_deref(),
        http2: http2.as_deref(),
        log,
    });
    if let Some(sb) = scoreboard.worker(slot) {
        sb.set_state(WorkerState::Exited);
    }
    handoff.shutdown();
    statics.shutdown();
    // Every exit path ends by a deadline: a request thread stuck in C code
    // must not keep the worker alive (the master would have to kill it).
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(config.timeouts.shutdown_ms);
    let all: Vec<_> = static_threads.into_iter().chain(threads).collect();
    while all.iter().any(|t| !t.is_finished()) {
        if std::time::Instant::now() >= deadline {
            slog::warn!(log, "request threads still running at the end of --shutdown-timeout; exiting without atexit handlers");
            if let Some(t) = &telemetry {
                t.finish(false);
            }
            return ExitCode::Ok;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for t in all {
        let _ = t.join();
    }
    if let Some(t) = &telemetry {
        t.finish(true);
    }
    if let Some(http2) = &http2 {
        // The last streams' responses are in the h2 thread: out to their
        // clients (through the TLS thread for h2 over TLS, hence first).
        http2.finish(deadline.saturating_duration_since(std::time::Instant::now()));
    }
    if let Some(tls) = &tls {
        // The last responses are in the socket pairs: out to their clients.
        tls.finish(deadline.saturating_duration_since(std::time::Instant::now()));
    }
    python::run_exit_handlers(
        &app,
        std::time::Duration::from_millis(config.timeouts.shutdown_ms),
        log,
    );
    match outcome {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            error!(log, "I/O loop failed: {}", e);
            ExitCode::Failure
        }
    }
}
