//! `wsgi.input`: the request body as a file-like object.
//!
//! Content-Length and chunked bodies; reads past the end return `b""`.
//! `Expect: 100-continue` is answered when the application first reads.
//! A client that stalls or disconnects mid-body raises `OSError` in the
//! application instead of hanging its thread.

use crate::net;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rwsgi_shared::http::{BodyKind, ChunkedDecoder, RequestHead};
use std::os::fd::RawFd;
use std::time::Duration;

/// Bytes read from the socket at a time.
const READ_SIZE: usize = 64 * 1024;
/// An unread body up to this size is read and discarded to keep the
/// connection alive; a larger one closes it.
const DISCARD_LIMIT: u64 = 64 * 1024;

enum Body {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

#[pyclass(module = "rwsgi")]
pub struct Input {
    fd: RawFd,
    /// False once the request is over: the socket is no longer ours to read.
    open: bool,
    /// Socket bytes not yet decoded; what follows the body belongs to the next request.
    raw: Vec<u8>,
    body: Body,
    /// Decoded body bytes not yet returned, from `pos`.
    ready: Vec<u8>,
    pos: usize,
    timeout: Duration,
    continue_pending: bool,
    failed: bool,
    /// Body deadline rule (`--body-timeout`, `--body-min-rate`, `--body-max-timeout`).
    body_rule: rwsgi_shared::config::Timeouts,
    started: std::time::Instant,
    received: u64,
}

impl Input {
    pub fn new(
        fd: RawFd,
        raw: Vec<u8>,
        head: &RequestHead,
        limit: u64,
        timeouts: &rwsgi_shared::config::Timeouts,
    ) -> Input {
        let body = match head.body {
            BodyKind::Empty => Body::Done,
            BodyKind::Length(n) => Body::Length(n),
            BodyKind::Chunked => Body::Chunked(ChunkedDecoder::new(limit)),
        };
        let continue_pending = head.expect_continue && !matches!(body, Body::Done);
        Input {
            fd,
            open: true,
            raw,
            body,
            ready: Vec::new(),
            pos: 0,
            timeout: Duration::from_millis(timeouts.socket_ms),
            continue_pending,
            failed: false,
            body_rule: *timeouts,
            started: std::time::Instant::now(),
            received: 0,
        }
    }

    /// Moves decodable bytes from `raw` to `ready`. Never blocks.
    fn decode(&mut self) -> Result<(), String> {
        match &mut self.body {
            Body::Done => {}
            Body::Length(rem) => {
                let n = (*rem).min(self.raw.len() as u64) as usize;
                self.ready.extend(self.raw.drain(..n));
                *rem -= n as u64;
                if *rem == 0 {
                    self.body = Body::Done;
                }
            }
            Body::Chunked(dec) => {
                let used = dec
                    .decode(&self.raw, &mut self.ready, READ_SIZE)
                    .map_err(|e| format!("malformed chunked request body: {}", e.reason))?;
                self.raw.drain(..used);
                if dec.is_done() {
                    self.body = Body::Done;
                }
            }
        }
        Ok(())
    }

    /// Reads more of the body from the socket. Call without the GIL.
    fn read_socket(&mut self) -> Result<(), String> {
        // SAFETY: `open` is true only while the request handler owns the connection.
        let fd = unsafe { net::borrow(self.fd) };
        if self.continue_pending {
            self.continue_pending = false;
            net::write_all(fd, &[b"HTTP/1.1 100 Continue\r\n\r\n"], self.timeout)
                .map_err(|e| format!("cannot send 100 Continue: {e}"))?;
        }
        let want = match self.body {
            Body::Length(rem) => (rem as usize).clamp(1, READ_SIZE),
            _ => READ_SIZE,
        };
        let wait = self.read_allowance();
        if wait.is_zero() {
            return Err(
                "the request body did not arrive in time (--body-timeout, --body-min-rate)".into(),
            );
        }
        match net::read_some(fd, &mut self.raw, want, wait) {
            Ok(0) => {
                Err("the client closed the connection before sending the whole request body".into())
            }
            Ok(n) => {
                self.received += n as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                Err("timed out reading the request body (--body-timeout, --socket-timeout)".into())
            }
            Err(e) => Err(format!("error reading the request body: {e}")),
        }
    }

    /// How long the next read may wait: `--body-timeout` from the start of
    /// the request, one more second per `--body-min-rate` bytes received,
    /// capped by `--body-max-timeout`, and never more than `--socket-timeout`.
    fn read_allowance(&self) -> Duration {
        let r = &self.body_rule;
        let extra = if r.body_min_rate == 0 {
            0
        } else {
            self.received * 1000 / r.body_min_rate
        };
        let mut allowed = r.body_ms + extra;
        if r.body_max_ms > 0 {
            allowed = allowed.min(r.body_max_ms);
        }
        let deadline = self.started + Duration::from_millis(allowed);
        deadline
            .saturating_duration_since(std::time::Instant::now())
            .min(self.timeout)
    }

    /// Makes sure `ready` has unread bytes; false at the end of the body.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        loop {
            if self.pos < self.ready.len() {
                return Ok(true);
            }
            self.ready.clear();
            self.pos = 0;
            if matches!(self.body, Body::Done) || !self.open {
                return Ok(false);
            }
            if self.failed {
                return Err(PyOSError::new_err("the request body could not be read"));
            }
            let step = self.decode().and_then(|()| {
                if self.ready.is_empty() && !matches!(self.body, Body::Done) {
                    py.detach(|| self.read_socket())
                } else {
                    Ok(())
                }
            });
            if let Err(msg) = step {
                self.failed = true;
                return Err(PyOSError::new_err(msg));
            }
        }
    }

    fn take(&mut self, max: usize) -> &[u8] {
        let n = (self.ready.len() - self.pos).min(max);
        let s = &self.ready[self.pos..self.pos + n];
        self.pos += n;
        s
    }

    fn read_line(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let mut out = Vec::new();
        while limit.is_none_or(|l| out.len() < l) && self.fill(py)? {
            let avail = &self.ready[self.pos..];
            let room = limit
                .map_or(avail.len(), |l| l - out.len())
                .min(avail.len());
            let (n, done) = match avail[..room].iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (room, false),
            };
            out.extend_from_slice(self.take(n));
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// True when the whole body has been read (or there was none).
    pub fn body_done(&self) -> bool {
        matches!(self.body, Body::Done)
    }

    /// After the response: reads and drops a small unread body so the
    /// connection can be reused. False when the connection must close.
    /// Call without the GIL.
    pub fn discard_rest(&mut self) -> bool {
        if self.failed {
            return false;
        }
        if self.continue_pending {
            // The client is waiting for 100 Continue we never sent.
            return false;
        }
        let mut discarded = 0u64;
        loop {
            self.ready.clear();
            self.pos = 0;
            if self.decode().is_err() {
                return false;
            }
            discarded += self.ready.len() as u64;
            if matches!(self.body, Body::Done) {
                return true;
            }
            if discarded > DISCARD_LIMIT || self.read_socket().is_err() {
                return false;
            }
        }
    }

    /// Ends the request: the object stops using the socket, and the bytes
    /// after the body (a pipelined request) go back to the connection.
    pub fn detach(&mut self) -> Vec<u8> {
        self.open = false;
        std::mem::take(&mut self.raw)
    }
}

fn size_arg(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let limit = size_arg(size);
        let mut out = Vec::with_capacity(limit.unwrap_or(0).min(READ_SIZE));
        while limit.is_none_or(|l| out.len() < l) && self.fill(py)? {
            let room = limit.map_or(usize::MAX, |l| l - out.len());
            out.extend_from_slice(self.take(room));
        }
        Ok(PyBytes::new(py, &out))
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.read_line(py, size_arg(size))?;
        Ok(PyBytes::new(py, &line))
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = size_arg(hint).filter(|&h| h > 0);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.read_line(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.push(PyBytes::new(py, &line));
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.read_line(py, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }
}
