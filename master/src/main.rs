//! `rwsgi`: the master process.
//!
//! Parses the command line and runs the server (`server`): the event loop
//! that supervises `rwsgi-worker` processes and hands them connections; or
//! answers `rwsgi status` (`status_command`). It never links libpython, so
//! it can always report what went wrong with Python.

mod admin;
mod control;
mod dispatch;
mod effects;
mod listener;
mod liveness;
mod log_files;
mod metrics;
mod observe;
mod privileges;
mod procfs;
mod readings;
mod reap;
mod server;
mod service_procs;
mod services;
mod setup_command;
mod spawn;
mod status_command;
mod supervisor;
mod template;

use rwsgi_conf::{summary, Invocation};
use rwsgi_shared::exit::ExitCode;
use rwsgi_shared::log::{file_logger, logger};
use slog::{error, info, warn};

fn main() -> std::process::ExitCode {
    let invocation = match rwsgi_conf::parse(std::env::args_os()) {
        Ok(inv) => inv,
        Err(e) => {
            e.print();
            return if e.is_informational() {
                ExitCode::Ok.into()
            } else {
                ExitCode::Config.into()
            };
        }
    };
    match invocation {
        Invocation::Status { pid, json } => match status_command::report(pid, json) {
            Ok(text) => {
                print!("{text}");
                ExitCode::Ok.into()
            }
            Err(e) => {
                eprintln!("rwsgi: {e}");
                ExitCode::Failure.into()
            }
        },
        Invocation::SetupServer {
            config,
            warnings,
            server_root,
            args,
        } => {
            let log = logger(config.log_format, config.log_level, "master");
            for w in &warnings {
                warn!(log, "{}", w);
            }
            for line in summary(&config) {
                info!(log, "{}", line);
            }
            match setup_command::write(&config, &server_root, &args) {
                Ok(script) => {
                    println!("Server Root        : {}", server_root.display());
                    println!("Control Script     : {}", script.display());
                    ExitCode::Ok.into()
                }
                Err(e) => {
                    error!(
                        log,
                        "setup-server: cannot write {}: {}",
                        server_root.display(),
                        e
                    );
                    ExitCode::Config.into()
                }
            }
        }
        Invocation::SetupOnly { config, warnings } => {
            // For image build steps: what would run, then exit 0.
            let log = logger(config.log_format, config.log_level, "master");
            for w in &warnings {
                warn!(log, "{}", w);
            }
            for line in summary(&config) {
                info!(log, "{}", line);
            }
            info!(log, "--setup-only: the options are valid; not serving");
            ExitCode::Ok.into()
        }
        Invocation::StartServer { config, warnings } => {
            if let Some(name) = &config.process_name {
                // The arguments were parsed: nothing reads them again.
                let args: Vec<String> = std::env::args().collect();
                rwsgi_shared::proctitle::set(&rwsgi_shared::proctitle::renamed(name, &args));
            }
            // Before the logger or anything else starts a thread: the
            // environment is set while the master is single-threaded.
            if let Some(script) = &config.envvars_script {
                match rwsgi_conf::envvars::source(script) {
                    Ok(vars) => {
                        for (k, v) in vars {
                            std::env::set_var(k, v);
                        }
                    }
                    Err(e) => {
                        eprintln!("rwsgi: error: {e}");
                        return ExitCode::Config.into();
                    }
                }
            }
            if let Some(dir) = &config.python_eggs {
                // As mod_wsgi's python-eggs=: every process started gets it.
                prepare_eggs_directory(dir, config.run_as.as_ref());
                std::env::set_var("PYTHON_EGG_CACHE", dir);
            }
            // Before the logger: its records are cut to fit the pipe.
            let mut log_files = match start_log_files(&config) {
                Ok(files) => files,
                Err(code) => return code.into(),
            };
            let log = logger(config.log_format, config.log_level, "master");
            let startup = log_files
                .as_mut()
                .and_then(|f| f.take_startup())
                .map(|file| file_logger(config.log_format, config.log_level, file));
            for w in &warnings {
                warn!(log, "{}", w);
                if let Some(s) = &startup {
                    warn!(s, "{}", w);
                }
            }
            for line in summary(&config) {
                info!(log, "{}", line);
                if let Some(s) = &startup {
                    info!(s, "{}", line);
                }
            }
            if !config.trust_proxy_headers.is_empty() && config.trust_proxies.is_empty() {
                warn!(log, "--trust-proxy-header without --trust-proxy: those headers are trusted from every client; name your proxies with --trust-proxy ADDRESS|CIDR");
            }
            if config.proxy_protocol && config.trust_proxies.is_empty() {
                warn!(log, "--proxy-protocol without --trust-proxy: a PROXY preamble is believed from every peer; name your load balancers with --trust-proxy ADDRESS|CIDR");
            }
            let pid_file = config.pid_file.clone();
            if let Some(path) = &pid_file {
                let pid = format!("{}\n", std::process::id());
                if let Err(e) = std::fs::write(path, pid) {
                    error!(log, "--pid-file {}: {}", path.display(), e);
                    return ExitCode::Config.into();
                }
            }
            if config.debug.is_some() {
                spawn::give_workers_stdin();
            }
            let code = match server::run(*config, log.clone()) {
                Ok(code) => code.into(),
                Err(e) => {
                    error!(log, "{:#}", e);
                    if let Some(s) = &startup {
                        error!(s, "{:#}", e);
                    }
                    e.exit_code().into()
                }
            };
            if let Some(path) = &pid_file {
                let _ = std::fs::remove_file(path);
            }
            if let Some(files) = log_files {
                files.finish();
            }
            code
        }
    }
}

/// `--python-eggs`: created if missing (and given to `--user`), as
/// mod_wsgi-express does; a failure is the application's to report.
fn prepare_eggs_directory(dir: &std::path::Path, run_as: Option<&rwsgi_shared::config::RunAs>) {
    if dir.exists() || std::fs::create_dir_all(dir).is_err() {
        return;
    }
    if let Some(who) = run_as {
        let _ = std::os::unix::fs::chown(dir, Some(who.uid), Some(who.gid));
    }
}

/// `--log-directory` …: says on the terminal where the logs go, then
/// sends them there (see `log_files`).
fn start_log_files(
    config: &rwsgi_shared::config::ServerConfig,
) -> Result<Option<log_files::LogFiles>, ExitCode> {
    let Some(files) = &config.log_files else {
        return Ok(None);
    };
    let terminal = logger(config.log_format, config.log_level, "master");
    info!(terminal, "{}", rwsgi_conf::log_files_line(files));
    let keep_stdout = config.debug.is_some();
    match log_files::start(
        files,
        config.log_format,
        config.run_as.as_ref(),
        keep_stdout,
    ) {
        Ok(f) => Ok(Some(f)),
        Err(e) => {
            error!(terminal, "{}", e);
            Err(ExitCode::Config)
        }
    }
}
