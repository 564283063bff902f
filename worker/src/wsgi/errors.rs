//! `wsgi.errors`: a text stream whose lines go to the server log.

use pyo3::prelude::*;
use slog::{warn, Logger};
use std::sync::Mutex;

#[pyclass(module = "rwsgi", frozen)]
pub struct ErrorStream {
    log: Logger,
    /// Text written since the last newline.
    partial: Mutex<String>,
}

impl ErrorStream {
    pub fn new(log: Logger) -> ErrorStream {
        ErrorStream {
            log,
            partial: Mutex::new(String::new()),
        }
    }

    fn emit_lines(&self, text: &str, flush: bool) {
        let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        partial.push_str(text);
        while let Some(i) = partial.find('\n') {
            let line: String = partial.drain(..=i).collect();
            warn!(self.log, "{}", line.trim_end_matches(['\n', '\r']); "source" => "wsgi.errors");
        }
        if flush && !partial.is_empty() {
            let line = std::mem::take(&mut *partial);
            warn!(self.log, "{}", line; "source" => "wsgi.errors");
        }
    }
}

#[pymethods]
impl ErrorStream {
    fn write(&self, s: &str) -> usize {
        self.emit_lines(s, false);
        s.chars().count()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.emit_lines(&line?.extract::<String>()?, false);
        }
        Ok(())
    }

    fn flush(&self) {
        self.emit_lines("", true);
    }

    fn writable(&self) -> bool {
        true
    }
}
