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
//! Python once and forks workers, which go on from `lifecycle::serve`.
//!
//! This file only reads the arguments and what the master sends first;
//! `lifecycle` is the worker's life from there, `template` the template's.

mod access_log;
mod args;
mod conn;
mod docs;
mod error_pages;
mod guard;
mod handoff;
mod host_gate;
mod http2;
mod io_loop;
mod lifecycle;
mod net;
mod proxy_pass;
mod python;
mod receiving;
mod request_id;
mod request_thread;
mod route;
mod service;
mod signals;
mod spool;
mod static_lanes;
mod telemetry;
mod template;
mod tls;
mod transport;
mod wsgi;

use rwsgi_shared::channel::{Channel, Message};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::exit::ExitCode;
use rwsgi_shared::scoreboard::Scoreboard;
use slog::o;

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
    lifecycle::run(
        lifecycle::Start {
            slot,
            generation: args.generation,
            config,
            channel,
            scoreboard,
        },
        args.epoch,
    )
    .into()
}

fn receive_config(channel: &Channel) -> Result<ServerConfig, String> {
    let mut buf = Vec::new();
    match channel.recv(&mut buf).map_err(|e| e.to_string())?.message {
        Message::Config(bytes) => ServerConfig::from_bytes(&bytes).map_err(|e| e.to_string()),
        other => Err(format!("expected the configuration, got {other:?}")),
    }
}
