//! `wsgi.input`: the request body as a file-like object.
//!
//! Content-Length and chunked bodies; reads past the end return `b""`.
//! `Expect: 100-continue` is answered when a streamed body is first read
//! (the I/O thread answers it for a body it receives). A client
//! that stalls or disconnects mid-body raises `OSError` in the application
//! instead of hanging its thread. A body the client framed wrongly or made
//! too large raises `OSError` naming the problem, and the request is
//! answered 400 or 413 whatever the application does with it.
//!
//! A chunked body, and a Content-Length body that did not arrive with its
//! head, is received by the I/O thread before the request starts (see
//! `receiving`; in memory, or in an anonymous temporary file when large)
//! and presented with its `CONTENT_LENGTH`, because most frameworks (Django
//! among them) read the length and nothing else. `--chunked-request`
//! streams a chunked body from the socket instead: the application then
//! reads it on its own thread, as it arrives.
//!
//! The object reaches the socket only through the request's [`Lease`]:
//! once the request is over, every method raises `ValueError`.

use super::lease::Lease;
use crate::spool::Spooled;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rwsgi_http::{BodyError, BodyKind, BodyReader, BodySource, RequestHead};
use rwsgi_shared::config::{Limits, Timeouts};
use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An unread body up to this size is read and discarded after the response
/// to keep the connection alive; a larger one closes it.
const DISCARD_LIMIT: u64 = 64 * 1024;

/// Where the body bytes come from.
enum Feed {
    Socket,
    /// A spooled body too large for memory.
    File(File),
    /// A spooled body held in memory (all of it is in the reader already).
    Memory,
}

#[pyclass(module = "rwsgi")]
pub struct Input {
    lease: Arc<Lease>,
    reader: BodyReader,
    feed: Feed,
    /// When the body was spooled: its length, and the bytes that followed it.
    spooled: Option<(u64, Vec<u8>)>,
    reading: SocketRule,
    limits: Limits,
}

/// How long socket reads may wait, and the interim response owed.
struct SocketRule {
    /// `--socket-timeout`: the most any single read waits.
    timeout: Duration,
    /// `--body-timeout`, `--body-min-rate`, `--body-max-timeout`.
    body: Timeouts,
    started: Instant,
    received: u64,
    continue_pending: bool,
}

impl SocketRule {
    fn allowance(&self) -> Duration {
        read_allowance(
            &self.body,
            self.timeout,
            self.started.elapsed(),
            self.received,
        )
    }
}

/// How long the next body read may wait, `elapsed` into the request with
/// `received` bytes in: `--body-timeout` from the start of the request, one
/// more second per `--body-min-rate` bytes received, capped by
/// `--body-max-timeout`, and never more than `--socket-timeout` (`socket`).
/// Zero: the body is late.
fn read_allowance(body: &Timeouts, socket: Duration, elapsed: Duration, received: u64) -> Duration {
    let extra = (received.saturating_mul(1000))
        .checked_div(body.body_min_rate)
        .unwrap_or(0);
    let mut allowed = body.body_ms.saturating_add(extra);
    if body.body_max_ms > 0 {
        allowed = allowed.min(body.body_max_ms);
    }
    Duration::from_millis(allowed)
        .saturating_sub(elapsed)
        .min(socket)
}

/// Whether the request owes the client its `100 Continue`: only while the
/// client waits for it, not for a body that came with its head anyway.
fn continue_owed(expect_continue: bool, body: BodyKind, buffered: usize) -> bool {
    expect_continue
        && match body {
            BodyKind::Empty => false,
            BodyKind::Length(n) => (buffered as u64) < n,
            BodyKind::Chunked => buffered == 0,
        }
}

/// How many of the `available` bytes a line read takes with `room` left
/// under its limit, and whether that ends the line.
fn line_part(available: &[u8], room: usize) -> (usize, bool) {
    let room = room.min(available.len());
    match available[..room].iter().position(|&b| b == b'\n') {
        Some(i) => (i + 1, true),
        None => (room, false),
    }
}

/// How many of `available` bytes a `read(limit)` that has `have` takes.
fn read_part(limit: Option<usize>, have: usize, available: usize) -> usize {
    limit.map_or(available, |l| l.saturating_sub(have).min(available))
}

/// The socket as a body source; reads without the GIL when given one.
struct SocketSource<'a, 'py> {
    lease: &'a Lease,
    rule: &'a mut SocketRule,
    py: Option<Python<'py>>,
}

impl BodySource for SocketSource<'_, '_> {
    fn read_more(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<usize, BodyError> {
        let wait = self.rule.allowance();
        if wait.is_zero() {
            return Err(BodyError::TimedOut);
        }
        let send_continue = std::mem::take(&mut self.rule.continue_pending);
        let timeout = self.rule.timeout;
        let lease = self.lease;
        let mut read = move || {
            lease.io(|io| {
                if send_continue {
                    io.write_all(&[b"HTTP/1.1 100 Continue\r\n\r\n"], timeout)?;
                }
                io.read_some(buf, max, wait)
            })
        };
        let n = match self.py {
            Some(py) => py.detach(read),
            None => read(),
        }
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => BodyError::TimedOut,
            _ => BodyError::Io(e.to_string()),
        })?;
        self.rule.received += n as u64;
        Ok(n)
    }
}

/// A spooled body in a temporary file.
struct FileSource<'a>(&'a mut File);

impl BodySource for FileSource<'_> {
    fn read_more(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<usize, BodyError> {
        let start = buf.len();
        buf.resize(start + max, 0);
        let n = self.0.read(&mut buf[start..]);
        buf.truncate(start + *n.as_ref().unwrap_or(&0));
        n.map_err(|e| BodyError::Io(format!("cannot read the spooled body: {e}")))
    }
}

/// A spooled body held in memory: nothing more to read.
struct Nothing;

impl BodySource for Nothing {
    fn read_more(&mut self, _: &mut Vec<u8>, _: usize) -> Result<usize, BodyError> {
        Ok(0)
    }
}

impl Input {
    pub fn new(
        lease: Arc<Lease>,
        buffered: Vec<u8>,
        head: &RequestHead,
        limits: &Limits,
        timeouts: &Timeouts,
    ) -> Input {
        let buffered_len = buffered.len();
        Input {
            lease,
            reader: BodyReader::new(head.body, buffered, limits.request_body),
            feed: Feed::Socket,
            spooled: None,
            reading: SocketRule {
                timeout: Duration::from_millis(timeouts.socket_ms),
                body: *timeouts,
                started: Instant::now(),
                received: 0,
                continue_pending: continue_owed(head.expect_continue, head.body, buffered_len),
            },
            limits: *limits,
        }
    }

    /// A body the I/O thread received whole before the request (see
    /// `receiving`): read from memory or its temporary file, presented with
    /// its length. `rest` is what followed it on the connection.
    pub fn spooled(
        lease: Arc<Lease>,
        body: Spooled,
        rest: Vec<u8>,
        limits: &Limits,
        timeouts: &Timeouts,
    ) -> Input {
        let total = body.len();
        let kind = if total == 0 {
            BodyKind::Empty
        } else {
            BodyKind::Length(total)
        };
        let (buffered, feed) = match body {
            Spooled::Memory(m) => (m, Feed::Memory),
            Spooled::File(f, _) => (Vec::new(), Feed::File(f)),
        };
        Input {
            lease,
            reader: BodyReader::new(kind, buffered, u64::MAX),
            feed,
            spooled: Some((total, rest)),
            reading: SocketRule {
                timeout: Duration::from_millis(timeouts.socket_ms),
                body: *timeouts,
                started: Instant::now(),
                received: 0,
                // The I/O thread sent it, if it was owed.
                continue_pending: false,
            },
            limits: *limits,
        }
    }

    /// Makes decoded bytes available; the error an application sees.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        if !self.lease.is_open() {
            return Err(PyValueError::new_err(
                "wsgi.input read after its request ended",
            ));
        }
        let filled = match &mut self.feed {
            Feed::Socket => self.reader.fill(&mut SocketSource {
                lease: &self.lease,
                rule: &mut self.reading,
                py: Some(py),
            }),
            Feed::File(file) => {
                let file = FileSource(file);
                let reader = &mut self.reader;
                py.detach(move || {
                    let mut file = file;
                    reader.fill(&mut file)
                })
            }
            Feed::Memory => self.reader.fill(&mut Nothing),
        };
        filled.map_err(|e| self.failure(&e))
    }

    /// The exception for a failed read; a refused body is also recorded
    /// so the client gets its 400 or 413.
    fn failure(&self, e: &BodyError) -> PyErr {
        match e {
            BodyError::Refused(http) => {
                self.lease.refuse(http.clone());
                PyOSError::new_err(format!(
                    "request body refused ({}): {}",
                    http.status,
                    http.explain(&self.limits)
                ))
            }
            BodyError::Io(msg) if !self.lease.is_open() => PyValueError::new_err(msg.clone()),
            other => PyOSError::new_err(other.to_string()),
        }
    }

    fn read_line(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let mut out = Vec::new();
        while limit.is_none_or(|l| out.len() < l) && self.fill(py)? {
            let avail = self.reader.available();
            let room = limit.map_or(avail.len(), |l| l - out.len());
            let (n, done) = line_part(avail, room);
            out.extend_from_slice(&avail[..n]);
            self.reader.consume(n);
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// The length of a spooled body (`CONTENT_LENGTH`).
    pub fn spooled_length(&self) -> Option<u64> {
        self.spooled.as_ref().map(|(n, _)| *n)
    }

    /// Why reading the body failed, if it did.
    pub fn body_error(&self) -> Option<&BodyError> {
        self.reader.error()
    }

    /// The whole body has been received from the client.
    pub fn body_received(&self) -> bool {
        self.spooled.is_some() || self.reader.is_complete()
    }

    /// After the response: reads and drops a small unread body so the
    /// connection can carry the next request. False when it must close.
    pub fn discard_rest(&mut self, py: Python<'_>) -> bool {
        if self.body_received() {
            return self.reader.error().is_none();
        }
        if self.reading.continue_pending || self.reader.error().is_some() {
            // The client waits for a 100 Continue that never came, or the
            // body is broken: neither can be followed by another request.
            return false;
        }
        let mut src = SocketSource {
            lease: &self.lease,
            rule: &mut self.reading,
            py: Some(py),
        };
        matches!(self.reader.skip(&mut src, DISCARD_LIMIT), Ok(true))
    }

    /// Ends the request for this object: the bytes received after the body
    /// (a pipelined request) go back to the connection.
    pub fn detach(&mut self) -> Vec<u8> {
        match self.spooled.as_mut() {
            Some((_, rest)) => std::mem::take(rest),
            None => self.reader.take_rest(),
        }
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
        let mut out = Vec::with_capacity(limit.unwrap_or(0).min(rwsgi_http::BODY_BLOCK));
        while limit.is_none_or(|l| out.len() < l) && self.fill(py)? {
            let avail = self.reader.available();
            let n = read_part(limit, out.len(), avail.len());
            out.extend_from_slice(&avail[..n]);
            self.reader.consume(n);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(body_ms: u64, body_min_rate: u64, body_max_ms: u64) -> Timeouts {
        Timeouts {
            body_ms,
            body_min_rate,
            body_max_ms,
            ..Timeouts::default()
        }
    }

    const SOCKET: Duration = Duration::from_secs(60);

    #[test]
    fn a_read_waits_what_is_left_of_the_body_deadline() {
        let t = rule(10_000, 0, 0);
        assert_eq!(
            read_allowance(&t, SOCKET, Duration::ZERO, 0),
            Duration::from_secs(10)
        );
        assert_eq!(
            read_allowance(&t, SOCKET, Duration::from_secs(4), 0),
            Duration::from_secs(6)
        );
        assert_eq!(
            read_allowance(&t, SOCKET, Duration::from_secs(11), 0),
            Duration::ZERO
        );
    }

    #[test]
    fn bytes_received_buy_time_up_to_the_cap() {
        // 1000 B/s: 5000 bytes in buy five more seconds.
        let t = rule(10_000, 1000, 0);
        assert_eq!(
            read_allowance(&t, SOCKET, Duration::from_secs(12), 5000),
            Duration::from_secs(3)
        );
        let capped = rule(10_000, 1000, 13_000);
        assert_eq!(
            read_allowance(&capped, SOCKET, Duration::from_secs(12), 5000),
            Duration::from_secs(1)
        );
        // An absurd count cannot overflow into a short deadline.
        assert_eq!(read_allowance(&t, SOCKET, Duration::ZERO, u64::MAX), SOCKET);
    }

    #[test]
    fn no_single_read_waits_longer_than_the_socket_timeout() {
        let t = rule(300_000, 0, 0);
        assert_eq!(
            read_allowance(&t, Duration::from_secs(30), Duration::ZERO, 0),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn continue_is_owed_only_while_the_client_waits_for_it() {
        assert!(continue_owed(true, BodyKind::Length(10), 0));
        assert!(continue_owed(true, BodyKind::Length(10), 9));
        assert!(!continue_owed(true, BodyKind::Length(10), 10));
        assert!(continue_owed(true, BodyKind::Chunked, 0));
        assert!(!continue_owed(true, BodyKind::Chunked, 1));
        assert!(!continue_owed(true, BodyKind::Empty, 0));
        assert!(!continue_owed(false, BodyKind::Length(10), 0));
    }

    #[test]
    fn a_line_ends_at_its_newline_or_its_limit() {
        assert_eq!(line_part(b"ab\ncd", 100), (3, true));
        assert_eq!(line_part(b"abcd", 100), (4, false));
        assert_eq!(line_part(b"ab\ncd", 2), (2, false));
        assert_eq!(line_part(b"ab\ncd", 3), (3, true));
        assert_eq!(line_part(b"\n", 1), (1, true));
        assert_eq!(line_part(b"abc", 0), (0, false));
    }

    #[test]
    fn a_read_takes_no_more_than_its_size() {
        assert_eq!(read_part(None, 0, 70), 70);
        assert_eq!(read_part(Some(10), 0, 70), 10);
        assert_eq!(read_part(Some(10), 7, 70), 3);
        assert_eq!(read_part(Some(10), 10, 70), 0);
        assert_eq!(read_part(Some(10), 0, 4), 4);
    }
}
