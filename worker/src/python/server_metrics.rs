//! `mod_wsgi.server_metrics()` with `--server-metrics`: the scoreboard
//! model (`rwsgi_shared::server_metrics`) as the dict mod_wsgi returns.
//! Without the option the function returns None, as mod_wsgi's does.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rwsgi_shared::scoreboard::Scoreboard;
use rwsgi_shared::server_metrics::{read, ServerMetrics};
use std::sync::Arc;

/// The callable behind `server_metrics()`, holding the scoreboard.
#[pyclass(frozen)]
pub struct Source {
    scoreboard: Arc<Scoreboard>,
}

#[pymethods]
impl Source {
    fn __call__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (now, wall) = (rwsgi_shared::time::now_ms(), rwsgi_shared::time::wall_ms());
        // Reading shared memory needs no GIL.
        let m = py.detach(|| read(&self.scoreboard, now, wall));
        to_dict(py, &m)
    }
}

fn to_dict<'py>(py: Python<'py>, m: &ServerMetrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("server_limit", m.server_limit)?;
    d.set_item("thread_limit", m.thread_limit)?;
    d.set_item("running_generation", m.running_generation)?;
    d.set_item("restart_time", m.restart_time)?;
    d.set_item("current_time", m.current_time)?;
    d.set_item("running_time", m.running_time)?;
    let processes = PyList::empty(py);
    for p in &m.processes {
        let pd = PyDict::new(py);
        pd.set_item("process_num", p.process_num)?;
        pd.set_item("pid", p.pid)?;
        pd.set_item("generation", p.generation)?;
        pd.set_item("quiescing", p.quiescing)?;
        let workers = PyList::empty(py);
        for t in &p.workers {
            let td = PyDict::new(py);
            td.set_item("thread_num", t.thread_num)?;
            td.set_item("generation", t.generation)?;
            td.set_item("status", t.status)?;
            td.set_item("access_count", t.access_count)?;
            if let Some(s) = t.start_time {
                td.set_item("start_time", s)?;
            }
            if let Some(c) = &t.client {
                td.set_item("client", c)?;
            }
            if let Some(r) = &t.request {
                td.set_item("request", r)?;
            }
            workers.append(td)?;
        }
        pd.set_item("workers", workers)?;
        processes.append(pd)?;
    }
    d.set_item("processes", processes)?;
    Ok(d)
}

/// With `--server-metrics`: `mod_wsgi.server_metrics()` (and
/// `rwsgi.server_metrics()`) answer from `scoreboard` from now on.
pub fn install(py: Python<'_>, scoreboard: Arc<Scoreboard>) -> PyResult<()> {
    let source = Py::new(py, Source { scoreboard })?;
    super::bootstrap(py)?.call_method1("install_server_metrics", (source,))?;
    Ok(())
}
