//! `--debug-mode`'s aids in the worker: the terminal as `sys.stdin` and
//! `sys.stdout`, coverage started before the application's import, and the
//! wrappers around the application (see `debug.py`).

use pyo3::prelude::*;
use pyo3::types::PyModule;
use rwsgi_shared::config::DebugConfig;

const SOURCE: &std::ffi::CStr = {
    // The source must be NUL-terminated for PyModule::from_code.
    match std::ffi::CStr::from_bytes_with_nul(concat!(include_str!("debug.py"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("debug.py contains a NUL byte"),
    }
};

/// Starts what must run before the application is imported; the returned
/// object wraps the application once it is loaded.
pub fn start<'py>(py: Python<'py>, debug: &DebugConfig) -> PyResult<Bound<'py, PyAny>> {
    let module = PyModule::from_code(py, SOURCE, c"rwsgi_debug.py", c"_rwsgi_debug")?;
    let dir = |d: &Option<std::path::PathBuf>| d.as_ref().map(|p| p.to_string_lossy().into_owned());
    let aids = module.getattr("Aids")?.call1((
        debug.debugger,
        debug.debugger_startup,
        dir(&debug.coverage_directory),
        dir(&debug.profiler_directory),
        dir(&debug.recorder_directory),
    ))?;
    aids.call_method0("start")?;
    Ok(aids)
}

/// The application with the aids around it (`--debugger-startup` stops
/// here, at the terminal, before the first request).
pub fn wrap<'py>(aids: &Bound<'py, PyAny>, app: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    aids.call_method1("wrap", (app,))
}
