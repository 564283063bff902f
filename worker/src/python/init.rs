//! Starting CPython inside the worker.
//!
//! Signals stay with Rust (`install_signal_handlers = 0`), `sys.executable`
//! names a real Python so `subprocess` and `multiprocessing` work, and a
//! virtual environment from `--python-home` or `VIRTUAL_ENV` is entered the
//! way `venv/bin/python` would enter it (through its `pyvenv.cfg`), and the
//! locale is set before CPython reads it (`--locale`, `--lang`; a C/POSIX
//! locale becomes a UTF-8 one, like mod_wsgi-express does).

use pyo3::ffi;
use rwsgi_shared::config::ServerConfig;
use slog::{info, warn, Logger};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot change into the working directory {0}: {1}")]
    Chdir(PathBuf, std::io::Error),
    #[error("{0}")]
    Status(String),
    #[error("path contains a NUL byte: {0}")]
    Nul(String),
    #[error("the virtualenv {venv} is for Python {found}, but this rwsgi was built for Python {built}: recreate it with python{built} -m venv")]
    VenvVersion {
        venv: String,
        found: String,
        built: String,
    },
}

/// Proof that the interpreter runs; the GIL is released when this is returned.
pub struct Interpreter {
    _private: (),
}

/// The Python the worker was built against, else one of the same version on PATH.
fn default_executable() -> PathBuf {
    let built = PathBuf::from(env!("RWSGI_BUILD_PYTHON"));
    if built.is_file() {
        return built;
    }
    let versioned = format!("python{}", env!("RWSGI_BUILD_PYTHON_VERSION"));
    for name in [versioned.as_str(), "python3"] {
        if let Some(found) = find_on_path(name) {
            return found;
        }
    }
    PathBuf::from("python3")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// What to tell CPython about where it lives.
struct Placement {
    /// Becomes `sys.executable`; for a venv, its `bin/python`.
    program: PathBuf,
    /// `PYTHONHOME`-like override for a plain (non-venv) installation.
    home: Option<PathBuf>,
}

/// The `X.Y` a virtualenv's `pyvenv.cfg` names (`version` or `version_info`).
fn venv_version(venv: &Path) -> Option<String> {
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).ok()?;
    cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if !matches!(key.trim(), "version" | "version_info") {
            return None;
        }
        let mut parts = value.trim().split('.');
        Some(format!("{}.{}", parts.next()?, parts.next()?))
    })
}

/// A virtualenv made by another Python version would load no packages (its
/// site-packages is `lib/pythonX.Y`); say so instead of failing on imports.
fn check_venv_version(python_home: Option<&Path>) -> Result<(), InitError> {
    let Some(venv) = python_home else {
        return Ok(());
    };
    let built = env!("RWSGI_BUILD_PYTHON_VERSION");
    match venv_version(venv) {
        Some(found) if found != built => Err(InitError::VenvVersion {
            venv: venv.display().to_string(),
            found,
            built: built.to_owned(),
        }),
        _ => Ok(()),
    }
}

fn placement(python_home: Option<&Path>) -> Placement {
    match python_home {
        Some(home) if home.join("pyvenv.cfg").is_file() => {
            let versioned = format!("python{}", env!("RWSGI_BUILD_PYTHON_VERSION"));
            let program = ["python", "python3", versioned.as_str()]
                .iter()
                .map(|n| home.join("bin").join(n))
                .find(|p| p.exists())
                .unwrap_or_else(|| home.join("bin").join("python"));
            Placement {
                program,
                home: None,
            }
        }
        Some(home) => Placement {
            program: default_executable(),
            home: Some(home.to_path_buf()),
        },
        None => Placement {
            program: default_executable(),
            home: None,
        },
    }
}

fn cstring(p: &Path) -> Result<CString, InitError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| InitError::Nul(p.display().to_string()))
}

fn check(status: ffi::PyStatus) -> Result<(), InitError> {
    // SAFETY: PyStatus_Exception only inspects the struct.
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return Ok(());
    }
    let msg = if status.err_msg.is_null() {
        "unknown error".to_owned()
    } else {
        // SAFETY: CPython's status messages are static NUL-terminated strings.
        unsafe { std::ffi::CStr::from_ptr(status.err_msg) }
            .to_string_lossy()
            .into_owned()
    };
    Err(InitError::Status(format!(
        "Python initialisation failed: {msg}"
    )))
}

/// The locale the environment selects for character classification.
fn inherited_locale() -> String {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "C".to_owned())
}

/// True when the C library knows `name`.
fn locale_exists(name: &str) -> bool {
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // SAFETY: newlocale only reads the NUL-terminated name; a non-null result
    // is a fresh locale object that we free at once.
    unsafe {
        let loc = libc::newlocale(libc::LC_ALL_MASK, c.as_ptr(), std::ptr::null_mut());
        if loc.is_null() {
            return false;
        }
        libc::freelocale(loc);
    }
    true
}

/// Sets `LC_ALL` and `LANG` for the worker before Python reads them.
fn apply_locale(config: &ServerConfig, log: &Logger) {
    let spec = &config.python;
    let (locale, lang) = match (&spec.locale, &spec.lang) {
        (None, None) => {
            let inherited = inherited_locale();
            if inherited != "C" && inherited != "POSIX" {
                return;
            }
            let Some(utf8) = ["en_US.UTF-8", "C.UTF-8", "C.utf8"]
                .into_iter()
                .find(|l| locale_exists(l))
            else {
                return;
            };
            info!(
                log,
                "the locale is {}; the application runs with {} (choose with --locale)",
                inherited,
                utf8
            );
            (utf8.to_owned(), utf8.to_owned())
        }
        (Some(l), None) | (None, Some(l)) => (l.clone(), l.clone()),
        (Some(l), Some(g)) => (l.clone(), g.clone()),
    };
    for name in [&locale, &lang] {
        if !locale_exists(name) {
            warn!(log, "locale {} is not installed on this system", name);
        }
    }
    // Only the main thread runs at this point of the worker's start, so
    // nothing reads the environment concurrently.
    std::env::set_var("LC_ALL", &locale);
    std::env::set_var("LANG", &lang);
}

/// Starts the interpreter, changes into the working directory, and releases the GIL.
pub fn start(config: &ServerConfig, log: &Logger) -> Result<Interpreter, InitError> {
    apply_locale(config, log);
    let wd = &config.python.working_directory;
    std::env::set_current_dir(wd).map_err(|e| InitError::Chdir(wd.clone(), e))?;
    check_venv_version(config.python.python_home.as_deref())?;
    let place = placement(config.python.python_home.as_deref());
    let program = cstring(&place.program)?;
    let home = place.home.as_deref().map(cstring).transpose()?;
    let argv0 = CString::new(if config.app.entry_point.is_empty() {
        "rwsgi".to_owned()
    } else {
        config.app.entry_point.clone()
    })
    .map_err(|e| InitError::Nul(e.to_string()))?;
    // SAFETY: standard embedding sequence. The PyConfig is initialised by
    // CPython before any field is touched, every string is copied by
    // PyConfig_Set*, and the config is cleared on every path.
    unsafe {
        let mut pc: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut pc);
        pc.install_signal_handlers = 0;
        pc.parse_argv = 0;
        let mut result = check(ffi::PyConfig_SetBytesString(
            &mut pc,
            &mut pc.program_name,
            program.as_ptr(),
        ));
        if result.is_ok() {
            if let Some(home) = &home {
                result = check(ffi::PyConfig_SetBytesString(
                    &mut pc,
                    &mut pc.home,
                    home.as_ptr(),
                ));
            }
        }
        if result.is_ok() {
            let mut argv = [argv0.as_ptr()];
            result = check(ffi::PyConfig_SetBytesArgv(&mut pc, 1, argv.as_mut_ptr()));
        }
        if result.is_ok() {
            result = check(ffi::Py_InitializeFromConfig(&pc));
        }
        ffi::PyConfig_Clear(&mut pc);
        result?;
        // From here on threads attach when they need Python.
        ffi::PyEval_SaveThread();
    }
    info!(log, "{}", super::app::describe(log));
    Ok(Interpreter { _private: () })
}
