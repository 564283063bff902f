//! Application output (`print`, `logging`, anything written to
//! `sys.stdout`/`sys.stderr` or `wsgi.errors`) into the server log, one record per line,
//! tagged with the worker like every other worker record.
//!
//! Partial lines are kept per OS thread, so two request threads printing at
//! once do not splice each other's lines together.

use pyo3::prelude::*;
use slog::{info, warn, Logger};
use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;

/// Where a line came from, which decides its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Stdout,
    Stderr,
    /// `wsgi.errors` (see `ErrorStream`).
    WsgiErrors,
    /// rwsgi's own remarks about the application (e.g. an ignored signal.signal).
    Server,
}

#[pyclass(module = "rwsgi", frozen)]
pub struct LogSink {
    log: Logger,
    source: Source,
    partial: Mutex<HashMap<ThreadId, Vec<u8>>>,
}

impl LogSink {
    pub fn new(log: Logger, source: Source) -> LogSink {
        LogSink {
            log,
            source,
            partial: Mutex::new(HashMap::new()),
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\n', '\r']);
        match self.source {
            Source::Stdout => info!(self.log, "{}", line; "source" => "stdout"),
            Source::Stderr => warn!(self.log, "{}", line; "source" => "stderr"),
            Source::WsgiErrors => warn!(self.log, "{}", line; "source" => "wsgi.errors"),
            Source::Server => warn!(self.log, "{}", line),
        }
    }

    /// Emits every partial line of every thread (at exit).
    pub fn flush_all(&self) {
        let pending: Vec<Vec<u8>> = {
            let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
            partial.drain().map(|(_, v)| v).collect()
        };
        for line in pending.iter().filter(|l| !l.is_empty()) {
            self.emit(line);
        }
    }
}

impl LogSink {
    /// Logs every complete line, keeps the rest for this thread.
    pub fn write_bytes(&self, data: &[u8]) {
        let lines: Vec<Vec<u8>> = {
            let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
            let buf = partial.entry(std::thread::current().id()).or_default();
            buf.extend_from_slice(data);
            let mut lines = Vec::new();
            while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                lines.push(buf.drain(..=i).collect());
            }
            if buf.is_empty() {
                partial.remove(&std::thread::current().id());
            }
            lines
        };
        // Log outside the lock: the drain takes its own.
        for line in &lines {
            self.emit(line);
        }
    }

    /// Logs this thread's partial line, if any.
    pub fn flush_thread(&self) {
        let rest = {
            let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
            partial.remove(&std::thread::current().id())
        };
        if let Some(rest) = rest.filter(|r| !r.is_empty()) {
            self.emit(&rest);
        }
    }
}

#[pymethods]
impl LogSink {
    /// Takes bytes; logs every complete line, keeps the rest for this thread.
    fn write(&self, data: &[u8]) -> usize {
        self.write_bytes(data);
        data.len()
    }

    fn flush(&self) {
        self.flush_thread();
    }

    /// A complete message from the bootstrap code (no newline needed).
    fn message(&self, text: &str) {
        self.emit(text.as_bytes());
    }
}

/// `wsgi.errors`: a text stream whose lines go to the server log, through
/// the same sink as the application's `print` and `logging` output (one
/// record per line, partial lines kept per thread). It lives here, beside
/// that sink, so the interpreter's side needs nothing of the WSGI side.
#[pyclass(module = "rwsgi", frozen)]
pub struct ErrorStream {
    sink: LogSink,
}

impl ErrorStream {
    pub fn new(log: Logger) -> ErrorStream {
        ErrorStream {
            sink: LogSink::new(log, Source::WsgiErrors),
        }
    }
}

#[pymethods]
impl ErrorStream {
    fn write(&self, s: &str) -> usize {
        self.sink.write_bytes(s.as_bytes());
        s.chars().count()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.sink.write_bytes(line?.extract::<String>()?.as_bytes());
        }
        Ok(())
    }

    fn flush(&self) {
        self.sink.flush_thread();
    }

    fn writable(&self) -> bool {
        true
    }
}
