//! `mod_wsgi.server_metrics()` with `--server-metrics`: the scoreboard
//! model (`rwsgi_shared::server_metrics`) as the dict mod_wsgi returns.
//! Without the option the function returns None, as mod_wsgi's does.
//!
//! `mod_wsgi.process_metrics()`: this worker's figures, once the
//! application has called `mod_wsgi.start_recording_metrics()` (None
//! before, and always None with `--telemetry-service`, as in mod_wsgi,
//! where the telemetry reporter is then the one consumer).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rwsgi_shared::scoreboard::{Scoreboard, ThreadState};
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

/// The callable behind `process_metrics()`: this worker's slot.
#[pyclass(frozen)]
pub struct ProcessSource {
    scoreboard: Arc<Scoreboard>,
    slot: usize,
    threads: usize,
    started_wall_ms: u64,
}

#[pymethods]
impl ProcessSource {
    fn __call__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let Some(w) = self.scoreboard.worker(self.slot) else {
            return Ok(d);
        };
        let now = rwsgi_shared::time::now_ms();
        let wall = rwsgi_shared::time::wall_ms();
        let threads = (0..self.threads).filter_map(|t| w.thread(t).map(|th| (t, th)));
        // Busy time of the requests done and of those running so far.
        let running_ms: u64 = threads
            .clone()
            .filter(|(_, th)| th.state() == ThreadState::Busy && th.request_started_ms() != 0)
            .map(|(_, th)| now.saturating_sub(th.request_started_ms()))
            .sum();
        let busy = w.metrics().snapshot().busy_us as f64 / 1e6 + running_ms as f64 / 1000.0;
        let (user, system) = cpu_times();
        let (rss, max_rss) = memory();
        d.set_item("pid", std::process::id())?;
        d.set_item("request_busy_time", busy)?;
        d.set_item("request_count", w.requests())?;
        d.set_item("memory_max_rss", max_rss)?;
        d.set_item("memory_rss", rss)?;
        d.set_item("cpu_user_time", user)?;
        d.set_item("cpu_system_time", system)?;
        d.set_item("cpu_time", user + system)?;
        d.set_item("restart_time", self.started_wall_ms as f64 / 1000.0)?;
        d.set_item("current_time", wall as f64 / 1000.0)?;
        d.set_item(
            "running_time",
            wall.saturating_sub(self.started_wall_ms) / 1000,
        )?;
        d.set_item("request_threads", self.threads)?;
        d.set_item("active_requests", w.busy_threads())?;
        let list = PyList::empty(py);
        for (t, th) in threads {
            let td = PyDict::new(py);
            // mod_wsgi numbers its request threads from 1.
            td.set_item("thread_id", t + 1)?;
            td.set_item("request_count", th.requests())?;
            list.append(td)?;
        }
        d.set_item("threads", list)?;
        Ok(d)
    }
}

/// User and system CPU seconds of this process.
pub fn cpu_times() -> (f64, f64) {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            (secs(u.user_time()), secs(u.system_time()))
        }
        Err(_) => (0.0, 0.0),
    }
}

/// Resident and peak resident memory of this process, bytes.
pub fn memory() -> (u64, u64) {
    use nix::sys::resource::{getrusage, UsageWho};
    let max = getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| u.max_rss() as u64 * 1024);
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * page);
    (rss, max)
}

/// `mod_wsgi.process_metrics()` answers from this worker's slot once the
/// application starts recording (never with `--telemetry-service`).
pub fn install_process(
    py: Python<'_>,
    scoreboard: Arc<Scoreboard>,
    slot: usize,
    threads: usize,
) -> PyResult<()> {
    let source = Py::new(
        py,
        ProcessSource {
            scoreboard,
            slot,
            threads: threads.min(rwsgi_shared::scoreboard::MAX_THREADS),
            started_wall_ms: rwsgi_shared::time::wall_ms(),
        },
    )?;
    super::bootstrap(py)?.call_method1("install_process_metrics", (source,))?;
    Ok(())
}

/// With `--server-metrics`: `mod_wsgi.server_metrics()` (and
/// `rwsgi.server_metrics()`) answer from `scoreboard` from now on.
pub fn install(py: Python<'_>, scoreboard: Arc<Scoreboard>) -> PyResult<()> {
    let source = Py::new(py, Source { scoreboard })?;
    super::bootstrap(py)?.call_method1("install_server_metrics", (source,))?;
    Ok(())
}
