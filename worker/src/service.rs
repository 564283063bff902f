//! `rwsgi-worker --service NAME --channel-fd N`: one `--service-script`
//! process, started and supervised by the master (see its `services`).
//!
//! What mod_wsgi does for mod_wsgi-express's service scripts (a daemon
//! process group `service:NAME` with no request threads and a
//! `WSGIImportScript`): Python is started exactly as in a worker (same
//! interpreter, virtualenv, `--python-path`, working directory, locale,
//! environment, output into the log), the script is imported once at start
//! as a uniquely named module (not `__main__`: an `if __name__ ==
//! "__main__":` block does not run, as under mod_wsgi), and the process then
//! lives until the master stops it, whether or not the script's top level
//! returns: the threads it started keep running. An exception while it is
//! imported ends the process (its traceback logged), and the master
//! restarts it with back-off.
//!
//! Stopping: the server's signals are blocked in every thread and taken
//! by one waiting thread; a SIGTERM from the master runs the `atexit`
//! handlers (within `--shutdown-timeout`) and exits. Copies sent to the
//! whole process group are ignored, as in a worker: the master decides.

use crate::python::{self, LogSink};
use pyo3::prelude::*;
use rwsgi_shared::channel::Channel;
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::exit::ExitCode;
use slog::{error, info, o, Logger};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The signals the master's group may receive; the master sends only SIGTERM.
const SERVER_SIGNALS: [libc::c_int; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Whether the command line asks for a service process.
pub fn requested(args: &[String]) -> bool {
    args.first().map(String::as_str) == Some("--service")
}

/// `--service NAME --channel-fd N`, checked.
fn parse(args: &[String]) -> Result<(String, RawFd), String> {
    match args {
        [flag, name, fd_flag, fd] if flag == "--service" && fd_flag == "--channel-fd" => {
            let fd = fd
                .parse::<RawFd>()
                .ok()
                .filter(|fd| *fd >= 3)
                .ok_or_else(|| format!("--channel-fd: {fd:?} is not a descriptor from 3 up"))?;
            Ok((name.clone(), fd))
        }
        _ => Err("expected --service NAME --channel-fd N".to_owned()),
    }
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in SERVER_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Runs service process `args` (the command line after the program).
pub fn main(args: &[String]) -> ExitCode {
    let master = nix::unistd::getppid().as_raw();
    // Before any thread exists, so every thread (Python's too) inherits
    // the mask and only the stop thread takes these signals.
    let set = signal_set();
    // SAFETY: changes this thread's signal mask only.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let (name, fd) = match parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rwsgi-worker: {e} (this program is started by rwsgi, not by hand)");
            return ExitCode::Config;
        }
    };
    // SAFETY: F_GETFD only reads the descriptor flags.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        eprintln!("rwsgi-worker: --channel-fd {fd} is not an open descriptor");
        return ExitCode::Config;
    }
    // SAFETY: the master passed this descriptor to this process alone.
    let channel = Channel::from_fd(unsafe { OwnedFd::from_raw_fd(fd) });
    let config = match crate::receive_config(&channel) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rwsgi-worker: no configuration from the master: {e}");
            return ExitCode::Config;
        }
    };
    // Only the configuration comes this way.
    drop(channel);
    let log = rwsgi_shared::log::logger(config.log_format, config.log_level, "service")
        .new(o!("service" => name.clone(), "pid" => std::process::id()));
    let Some(script) = config
        .services
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.script.clone())
    else {
        error!(log, "no --service-script named {}", name);
        return ExitCode::Config;
    };
    rwsgi_shared::proctitle::set(&rwsgi_shared::proctitle::daemon_title(&format!(
        "service:{name}"
    )));
    // A master that dies without stopping us (SIGKILL) takes us along.
    // Set after any change of identity (which clears it), then checked:
    // the master may have died before.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    if nix::unistd::getppid().as_raw() != master {
        return ExitCode::Ok;
    }
    if let Err(e) = python::start(&config, &log) {
        error!(log, "cannot start Python: {}", e);
        return ExitCode::PythonInit;
    }
    let (stdout, stderr) = match Python::attach(|py| output(py, &config, &log)) {
        Ok((out, err)) => (std::sync::Arc::new(out), std::sync::Arc::new(err)),
        Err(e) => {
            error!(log, "cannot prepare Python for the service: {}", e);
            return ExitCode::Failure;
        }
    };
    let shutdown = Duration::from_millis(config.timeouts.shutdown_ms);
    {
        let (log, stdout, stderr) = (log.clone(), stdout.clone(), stderr.clone());
        // The thread holds the sinks: they are dropped only as the process ends.
        std::thread::spawn(move || wait_for_stop(master, set, shutdown, &log, &stdout, &stderr));
    }
    info!(log, "importing the service script"; "script" => script.display().to_string());
    let imported = Python::attach(|py| import(py, &script, &log));
    stdout.get().flush_all();
    stderr.get().flush_all();
    if let Err(e) = imported {
        error!(log, "{}", e);
        return ExitCode::AppLoad;
    }
    info!(
        log,
        "service script imported; the service runs until the server stops or reloads"
    );
    // As a mod_wsgi daemon process: alive until stopped, whatever the
    // script's top level did. The stop thread ends the process.
    loop {
        std::thread::park();
    }
}

/// The worker's preparation of the interpreter, before the script runs.
fn output(
    py: Python<'_>,
    config: &ServerConfig,
    log: &Logger,
) -> PyResult<(Py<LogSink>, Py<LogSink>)> {
    let boot = python::bootstrap(py)?;
    python::prepare_interpreter(py, &boot, config, None, log)
}

/// Imports the script as mod_wsgi imports a script: a module named after
/// the MD5 of its path, compiled from its source.
fn import(py: Python<'_>, script: &std::path::Path, log: &Logger) -> Result<(), String> {
    let boot = python::bootstrap(py).map_err(|e| e.to_string())?;
    let path = script.to_string_lossy().into_owned();
    let result = boot
        .getattr("_md5")
        .and_then(|md5| md5.call1((pyo3::types::PyBytes::new(py, path.as_bytes()),)))
        .and_then(|digest| digest.call_method0("hexdigest"))
        .and_then(|hex| hex.extract::<String>())
        .and_then(|hex| boot.call_method1("_run_script", (format!("_rwsgi_{hex}"), &path)));
    result.map(|_| ()).map_err(|err| {
        python::log_exception(
            py,
            &boot,
            &err,
            log,
            "the service script raised an exception while being imported:",
        );
        format!(
            "the service script {path} failed to load: {}",
            err.value(py)
        )
    })
}

/// Takes the server's signals; a stop from the master (or the master's
/// death) runs the `atexit` handlers within `--shutdown-timeout`, then ends
/// the process.
fn wait_for_stop(
    master: i32,
    set: libc::sigset_t,
    shutdown: Duration,
    log: &Logger,
    stdout: &Py<LogSink>,
    stderr: &Py<LogSink>,
) {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid buffer for sigwaitinfo,
        // which waits for a signal of `set` (blocked in every thread).
        let (sig, sender) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&set, &mut info);
            (sig, info.si_pid())
        };
        if sig == -1 {
            continue;
        }
        let orphaned = nix::unistd::getppid().as_raw() != master;
        let stop = matches!(sig, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT);
        if stop && (sender == master || orphaned) {
            break;
        }
    }
    info!(log, "stopping: running the atexit handlers");
    std::thread::spawn(move || {
        std::thread::sleep(shutdown);
        // SAFETY: _exit ends the process at once; a handler that hangs
        // must not keep the service alive.
        unsafe { libc::_exit(0) };
    });
    Python::attach(|py| {
        if let Ok(boot) = python::bootstrap(py) {
            if let Err(e) = boot.call_method0("run_exit_handlers") {
                python::log_exception(py, &boot, &e, log, "an atexit handler failed:");
            }
        }
    });
    stdout.get().flush_all();
    stderr.get().flush_all();
    info!(log, "service stopped");
    // SAFETY: as above; Python is not finalised (its threads may still run).
    unsafe { libc::_exit(0) };
}
