//! `wsgi.errors`: a text stream whose lines go to the server log, through
//! the same sink as the application's `print` and `logging` output (one
//! record per line, partial lines kept per thread).

use crate::python::{LogSink, Source};
use pyo3::prelude::*;
use slog::Logger;

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
