//! `rwsgi-worker`: one worker process of rwsgi.
//!
//! Started by the master with its channel and the scoreboard as inherited
//! descriptors. Starts CPython, loads the application, marks itself ready,
//! then serves the connections the master hands over: an I/O thread owns
//! idle connections and reads request heads without the GIL, N request
//! threads run the application.
//!
//! With `--service NAME` it runs a `--service-script` instead (see
//! `service`).
//!
//! With `--template` it is the template instead (see `template`): it starts
//! Python once and forks workers, which go on from `serve`.

mod access_log;
mod args;
mod conn;
mod guard;
mod host_gate;
mod io_loop;
mod net;
mod pool;
mod python;
mod receiving;
mod request_id;
mod request_thread;
mod route;
mod service;
mod signals;
mod spool;
mod statics;
mod template;
mod wsgi;

use rwsgi_shared::channel::{Channel, Event, Message};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::exit::ExitCode;
use rwsgi_shared::scoreboard::{Scoreboard, WorkerState};
use slog::{error, info, o};
use std::sync::Arc;

fn main() -> std::process::ExitCode {
    // First, before Python or any thread exists: a group signal arriving
    // during start-up must not kill the worker either.
    signals::leave_server_signals_to(nix::unistd::getppid().as_raw());
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if service::requested(&argv) {
        return service::main(&argv).into();
    }
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rwsgi-worker: {e} (this program is started by rwsgi, not by hand)");
            return ExitCode::Config.into();
        }
    };
    let scoreboard = match Scoreboard::attach(args.scoreboard) {
        Ok(sb) => sb,
        Err(e) => {
            eprintln!("rwsgi-worker: {e}");
            return ExitCode::Config.into();
        }
    };
    let channel = Channel::from_fd(args.channel);
    let config = match receive_config(&channel) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rwsgi-worker: no configuration from the master: {e}");
            return ExitCode::Config.into();
        }
    };
    // Inherited from the master already; raising again costs nothing and
    // covers a worker started some other way.
    rwsgi_shared::rlimit::raise_nofile();
    let Some(slot) = args.slot else {
        let log = rwsgi_shared::log::logger(config.log_format, config.log_level, "template")
            .new(o!("pid" => std::process::id()));
        return template::run(args.generation, config, channel, scoreboard, &log).into();
    };
    let log = worker_log(&config, slot);
    if let Err(code) = attach(&scoreboard, slot, args.epoch, &log) {
        return code.into();
    }
    let code = run(slot, args.generation, config, channel, scoreboard, &log);
    if code != ExitCode::Ok {
        error!(log, "worker exiting"; "why" => code.describe());
    }
    code.into()
}

fn worker_log(config: &ServerConfig, slot: usize) -> slog::Logger {
    rwsgi_shared::log::logger(config.log_format, config.log_level, "worker")
        .new(o!("worker" => slot, "pid" => std::process::id()))
}

/// Takes scoreboard slot `slot` for the occupancy `epoch` the master started
/// this worker with, before anything else is written there: the worker
/// initialises its own fields (the master never resets them, as a forked
/// worker runs before the master knows it). Refused if the master has moved
/// the slot on, so a worker it gave up on writes nothing.
fn attach(
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

fn receive_config(channel: &Channel) -> Result<ServerConfig, String> {
    let mut buf = Vec::new();
    match channel.recv(&mut buf).map_err(|e| e.to_string())?.message {
        Message::Config(bytes) => ServerConfig::from_bytes(&bytes).map_err(|e| e.to_string()),
        other => Err(format!("expected the configuration, got {other:?}")),
    }
}

fn run(
    slot: usize,
    generation: u32,
    config: ServerConfig,
    channel: Channel,
    scoreboard: Scoreboard,
    log: &slog::Logger,
) -> ExitCode {
    let interpreter = match python::start(&config, log) {
        Ok(i) => i,
        Err(e) => {
            error!(log, "cannot start Python: {}", e);
            let why = format!("cannot start Python: {e}");
            let _ = channel.send(&Message::Event(Event::Failed(why)), None);
            return ExitCode::PythonInit;
        }
    };
    serve(
        Start {
            slot,
            generation,
            config,
            channel,
            scoreboard,
        },
        &interpreter,
        None,
        log,
    )
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
    // Files changed after this instant may not be in the code being loaded.
    let now = std::time::SystemTime::now();
    let (app, load_started) = match preloaded {
        Some(p) => (p.app, p.load_started),
        None => match python::load_application(&config, interpreter, log) {
            Ok(app) => (Arc::new(app), now),
            Err(e) => {
                // The traceback was already written; say plainly what it means.
                error!(log, "{}", e);
                let _ = channel.send(&Message::Event(Event::Failed(e.to_string())), None);
                return ExitCode::AppLoad;
            }
        },
    };
    let (pool, poll) = match pool::Pool::new() {
        Ok((p, poll)) => (Arc::new(p), poll),
        Err(e) => {
            error!(log, "cannot create the I/O poller: {}", e);
            return ExitCode::Failure;
        }
    };
    let access = match config.access_log {
        false => None,
        true => match access_log::AccessLog::new(&config.access_log_format, config.log_format) {
            Ok(a) => Some(Arc::new(a)),
            Err(e) => {
                error!(log, "--access-log-format: {}", e);
                return ExitCode::Config;
            }
        },
    };
    let (statics, static_threads) =
        match statics::Statics::start(&config, &pool, (&scoreboard, slot), access.clone(), log) {
            Ok(s) => s,
            Err(e) => {
                error!(log, "cannot start the static file threads: {}", e);
                return ExitCode::Failure;
            }
        };
    // Validated by the master's configuration already.
    let proxy = Arc::new(
        rwsgi_http::forwarded::Rules::new(&config.trust_proxy_headers, &config.trust_proxies)
            .unwrap_or_default(),
    );
    let shared = request_thread::Shared {
        pool: pool.clone(),
        app: app.clone(),
        config: config.clone(),
        scoreboard: scoreboard.clone(),
        files: statics.shared_files(),
        statics: Arc::clone(&statics),
        access,
        proxy: Arc::clone(&proxy),
        interrupts: python::Interrupts::start(&config, &app, &scoreboard, slot, log),
    };
    let threads = request_thread::start(config.threads, &shared, slot, log);
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
        pool: &pool,
        scoreboard: &scoreboard,
        slot,
        statics: &statics,
        proxy: &proxy,
        log,
    });
    if let Some(sb) = scoreboard.worker(slot) {
        sb.set_state(WorkerState::Exited);
    }
    pool.shutdown();
    statics.shutdown();
    // Every exit path ends by a deadline: a request thread stuck in C code
    // must not keep the worker alive (the master would have to kill it).
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(config.timeouts.shutdown_ms);
    let all: Vec<_> = static_threads.into_iter().chain(threads).collect();
    while all.iter().any(|t| !t.is_finished()) {
        if std::time::Instant::now() >= deadline {
            slog::warn!(log, "request threads still running at the end of --shutdown-timeout; exiting without atexit handlers");
            return ExitCode::Ok;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for t in all {
        let _ = t.join();
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
