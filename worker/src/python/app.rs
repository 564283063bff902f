//! Loading the WSGI application and the constants every request shares.

use super::guard_scripts::Scripts as GuardScripts;
use super::output::{ErrorStream, LogSink, Source};
use super::Interpreter;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};
use rwsgi_shared::config::{AppType, ServerConfig};
use slog::{error, warn, Logger};
use std::time::Duration;

const BOOTSTRAP: &std::ffi::CStr = {
    // The source must be NUL-terminated for PyModule::from_code.
    match std::ffi::CStr::from_bytes_with_nul(
        concat!(include_str!("bootstrap.py"), "\0").as_bytes(),
    ) {
        Ok(s) => s,
        Err(_) => panic!("bootstrap.py contains a NUL byte"),
    }
};

/// The loaded application and the per-worker Python objects requests share.
pub struct Application {
    pub callable: Py<PyAny>,
    pub bootstrap: Py<PyModule>,
    /// environ keys that are the same for every request; copied per request.
    pub environ_template: Py<PyDict>,
    pub errors: Py<ErrorStream>,
    /// What `sys.stdout` and `sys.stderr` write to.
    pub stdout: Py<LogSink>,
    pub stderr: Py<LogSink>,
    /// `--auth-user-script`, `--auth-group-script`, `--host-access-script`.
    pub guard: GuardScripts,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the application failed to load: {0}")]
    Failed(String),
}

/// The server's Python helpers, compiled once per interpreter. A worker
/// forked from a template uses the template's copy: compiling it again
/// would dirty heap pages that every worker otherwise shares.
pub fn bootstrap(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    static MODULE: pyo3::sync::PyOnceLock<Py<PyModule>> = pyo3::sync::PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || {
            PyModule::from_code(py, BOOTSTRAP, c"rwsgi_bootstrap.py", c"_rwsgi_bootstrap")
                .map(Bound::unbind)
        })
        .map(|m| m.bind(py).clone())
}

/// What every worker needs whatever its application, done in the template
/// (with either `--preload`) so the workers share it: the server's helpers
/// and the modules its loaders import, and this module's Python types (the
/// caller makes the WSGI side's).
pub fn prepare_template(py: Python<'_>) -> PyResult<()> {
    bootstrap(py)?.call_method0("prepare_template")?;
    py.get_type::<LogSink>();
    py.get_type::<ErrorStream>();
    Ok(())
}

/// One line naming the running Python, for the start-up log.
pub fn describe(log: &Logger) -> String {
    Python::attach(|py| {
        bootstrap(py)
            .and_then(|m| m.call_method0("describe_interpreter"))
            .and_then(|s| s.extract::<String>())
            .unwrap_or_else(|e| {
                error!(log, "cannot describe the interpreter: {}", e);
                "Python (unknown)".to_owned()
            })
    })
}

/// Writes a Python exception with its traceback to the log.
pub fn log_exception(
    py: Python<'_>,
    bootstrap: &Bound<'_, PyModule>,
    err: &PyErr,
    log: &Logger,
    what: &str,
) {
    let text = bootstrap
        .call_method1("format_exception", (err.value(py), err.traceback(py)))
        .and_then(|s| s.extract::<String>())
        .unwrap_or_else(|_| err.to_string());
    error!(log, "{}\n{}", what, text.trim_end());
}

/// Builds the environ keys every request shares (the WSGI side's template),
/// from the server's helpers module and the `wsgi.errors` stream: given by
/// the caller, so this module knows nothing of the WSGI side.
pub type EnvironTemplate = for<'py> fn(
    &Bound<'py, PyModule>,
    &ServerConfig,
    &Py<ErrorStream>,
) -> PyResult<Bound<'py, PyDict>>;

/// Imports the application. On failure the traceback is logged and an error returned.
pub fn load_application(
    config: &ServerConfig,
    _interp: &Interpreter,
    environ: EnvironTemplate,
    log: &Logger,
) -> Result<Application, LoadError> {
    Python::attach(|py| {
        let boot = bootstrap(py).map_err(|e| LoadError::Failed(e.to_string()))?;
        let result = load_with(py, &boot, config, environ, log);
        let mut app = result.map_err(|err| {
            log_exception(
                py,
                &boot,
                &err,
                log,
                "the application raised an exception while loading:",
            );
            LoadError::Failed(format!(
                "{} {}: {}",
                config.app.kind.as_str(),
                config.app.entry_point,
                err.value(py)
            ))
        })?;
        // Options that guard the site are enforced or the worker does not
        // serve: a script that does not load is an error naming its option.
        app.guard = GuardScripts::load(&boot, &config.guard).map_err(|(option, err)| {
            log_exception(py, &boot, &err, log, &format!("--{option} failed to load:"));
            LoadError::Failed(format!("--{option}: {}", err.value(py)))
        })?;
        Ok(app)
    })
}

/// What the interpreter needs before any of the user's code runs (the
/// application, or a `--service-script`): output into the log, signals
/// left to rwsgi, `import rwsgi`/`mod_wsgi` for RequestTimeout,
/// `--python-warnings` and `--switch-interval`, and `sys.path` (with
/// `script_dir`, a script's own directory, first).
pub fn prepare_interpreter(
    py: Python<'_>,
    boot: &Bound<'_, PyModule>,
    config: &ServerConfig,
    script_dir: Option<String>,
    log: &Logger,
) -> PyResult<(Py<LogSink>, Py<LogSink>)> {
    let stdout = Py::new(py, LogSink::new(log.clone(), Source::Stdout))?;
    let stderr = Py::new(py, LogSink::new(log.clone(), Source::Stderr))?;
    let server = Py::new(py, LogSink::new(log.clone(), Source::Server))?;
    boot.call_method1(
        "install_output",
        (stdout.clone_ref(py), stderr.clone_ref(py)),
    )?;
    boot.call_method1("restrict_signals", (server.getattr(py, "message")?,))?;
    boot.call_method0("install_modules")?;
    boot.call_method1(
        "apply_python_options",
        (
            config.python.warnoptions.clone(),
            config.python.switch_interval_us.map(|us| us as f64 / 1e6),
        ),
    )?;
    let paths: Vec<String> = config
        .python
        .python_paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    boot.call_method1(
        "prepare_path",
        (
            config
                .python
                .working_directory
                .to_string_lossy()
                .into_owned(),
            paths,
            script_dir,
        ),
    )?;
    Ok((stdout, stderr))
}

fn load_with(
    py: Python<'_>,
    boot: &Bound<'_, PyModule>,
    config: &ServerConfig,
    environ: EnvironTemplate,
    log: &Logger,
) -> PyResult<Application> {
    let spec = &config.app;
    let script_dir = match spec.kind {
        AppType::Script | AppType::Paste => std::path::Path::new(&spec.entry_point)
            .parent()
            .map(|p| p.to_string_lossy().into_owned()),
        _ => None,
    };
    let (stdout, stderr) = prepare_interpreter(py, boot, config, script_dir, log)?;
    // --debug-mode: coverage measures the import too.
    let aids = config
        .debug
        .as_ref()
        .map(|d| super::debug::start(py, d))
        .transpose()?;
    let callable = match spec.kind {
        AppType::Script => boot.call_method1("load_script", (&spec.entry_point, &spec.callable))?,
        AppType::Module => boot.call_method1("load_module", (&spec.entry_point, &spec.callable))?,
        AppType::Paste => boot.call_method1("load_paste", (&spec.entry_point,))?,
        AppType::Static => py.None().into_bound(py),
    };
    let callable = match &aids {
        Some(aids) if spec.kind != AppType::Static => super::debug::wrap(aids, callable)?,
        _ => callable,
    };
    let errors = Py::new(py, ErrorStream::new(log.clone()))?;
    let template = environ(boot, config, &errors)?;
    Ok(Application {
        callable: callable.unbind(),
        bootstrap: boot.clone().unbind(),
        environ_template: template.unbind(),
        errors,
        stdout,
        stderr,
        guard: GuardScripts::default(),
    })
}

/// Runs `atexit` handlers on a graceful stop, for at most `bound`
/// (`--shutdown-timeout`): a handler that hangs does not keep the worker alive.
pub fn run_exit_handlers(app: &Application, bound: Duration, log: &Logger) {
    let watchdog_log = log.clone();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if finished.recv_timeout(bound).is_err() {
            warn!(watchdog_log, "atexit handlers did not finish within --shutdown-timeout; exiting without them";
                "seconds" => bound.as_secs_f64());
            // SAFETY: _exit ends the process at once; nothing is left to unwind
            // that the main thread (stuck in Python) would still need, and
            // exit() could hang on a lock a stuck thread holds.
            unsafe { libc::_exit(0) };
        }
    });
    Python::attach(|py| {
        let boot = app.bootstrap.bind(py);
        if let Err(e) = boot.call_method0("run_exit_handlers") {
            log_exception(py, boot, &e, log, "an atexit handler failed:");
        }
        app.stdout.get().flush_all();
        app.stderr.get().flush_all();
        let _ = app.errors.bind(py).call_method0("flush");
    });
    let _ = done.send(());
}
