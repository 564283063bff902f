//! `start_response`, the `write` callable and the response on the wire.
//!
//! Headers are validated when the application passes them (a bad header is
//! an exception in the application, so the request becomes a 500 with a
//! clear log line, and CR/LF can never split a response); what is valid is
//! decided in [`super::headers`]. The head is sent with the first body
//! bytes; small pieces are gathered and written with one `writev`, with
//! the GIL released.
//!
//! The socket is reached only through the request's [`Lease`]: a `write`
//! kept past its request raises and writes nothing. A response the
//! application breaks off after its head went out is never completed: the
//! connection is closed without the last chunk (or short of the length).

use super::compression::Compression;
use super::headers::{self, Refused};
use super::lease::Lease;
use pyo3::exceptions::{PyAssertionError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use rwsgi_http::{DateCache, RequestHead, Version, SERVER_HEADER};
use std::cell::RefCell;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

/// Pieces smaller than this are copied into the output buffer; larger
/// ones are written from the Python bytes object directly.
const COPY_LIMIT: usize = 16 * 1024;
/// The output buffer is flushed when it grows beyond this.
const FLUSH_AT: usize = 64 * 1024;

thread_local! {
    static DATES: RefCell<DateCache> = RefCell::new(DateCache::default());
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Not decided: the head has not been sent.
    Undecided,
    /// No body may be sent (HEAD, 1xx, 204, 304).
    NoBody,
    Length(u64),
    Chunked,
    /// HTTP/1.0 without a length: the body ends when the connection closes.
    UntilClose,
}

/// What decides how a response's body is framed: the request, and what
/// the application (or the server, for a file) said about the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    version: Version,
    head_request: bool,
    code: u16,
    /// The Content-Length the application set.
    app_length: Option<u64>,
    /// The length the server knows (an empty body, a file's size).
    known_length: Option<u64>,
    /// The connection may stay open, as far as the request and the
    /// application's headers go.
    keep_alive: bool,
}

/// How a response is framed, and what the server adds to its head for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    framing: Framing,
    /// A Content-Length the server adds (the application set none).
    add_length: Option<u64>,
    /// The connection stays open after this response.
    keep_alive: bool,
    /// The Connection header the server adds, if any.
    connection: Option<&'static str>,
}

/// Decides a response's framing (RFC 9112 section 6.3): no body for 1xx,
/// 204, 304 and HEAD; else the length when one is known; else chunked on
/// HTTP/1.1, or the body ends with the connection on HTTP/1.0.
fn plan(f: Facts) -> Plan {
    let status_without_body = f.code < 200 || f.code == 204 || f.code == 304;
    let no_body = f.head_request || status_without_body;
    let mut keep_alive = f.keep_alive;
    let mut add_length = None;
    let framing = if status_without_body {
        Framing::NoBody
    } else if let Some(n) = f.app_length.or(f.known_length) {
        // HEAD says the length a GET would have had.
        if f.app_length.is_none() {
            add_length = Some(n);
        }
        if no_body {
            Framing::NoBody
        } else {
            Framing::Length(n)
        }
    } else if no_body {
        Framing::NoBody
    } else if f.version == Version::Http11 {
        Framing::Chunked
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    let connection = if !keep_alive {
        Some("close")
    } else if f.version == Version::Http10 {
        Some("keep-alive")
    } else {
        None
    };
    Plan {
        framing,
        add_length,
        keep_alive,
        connection,
    }
}

/// How many of `offered` body bytes may follow the `sent` ones: none where
/// no body may be sent, never more than an announced length (the excess
/// would be read by the client as the next response).
fn room(framing: Framing, sent: u64, offered: u64) -> u64 {
    match framing {
        Framing::NoBody | Framing::Undecided => 0,
        Framing::Length(n) => offered.min(n.saturating_sub(sent)),
        Framing::Chunked | Framing::UntilClose => offered,
    }
}

#[pyclass(module = "rwsgi")]
pub struct StartResponse {
    lease: Arc<Lease>,
    /// Headers the server adds unless the application set them:
    /// `--request-id-header` (name, id), `--hsts-policy` on HTTPS.
    echo: Vec<(String, String)>,
    timeout: Duration,
    head_request: bool,
    version: Version,
    status: Option<String>,
    code: u16,
    headers: Vec<(String, String)>,
    app_length: Option<u64>,
    known_length: Option<u64>,
    has_date: bool,
    has_server: bool,
    framing: Framing,
    body_bytes: u64,
    out: Vec<u8>,
    keep_alive: bool,
    client_gone: bool,
    /// Response bytes have reached the socket: the response can no longer
    /// be replaced by an error page.
    on_wire: bool,
    /// `--compress-responses` (`None` when off: nothing else is done).
    compression: Option<Box<Compression>>,
}

/// A status or header the application got wrong: its `start_response`
/// raises, so the request becomes a 500 logged with this text (or the
/// application catches it and answers otherwise).
fn refused(e: Refused) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn compression_failed(e: std::io::Error) -> PyErr {
    PyOSError::new_err(format!("cannot compress the response: {e}"))
}

impl StartResponse {
    pub fn new(
        lease: Arc<Lease>,
        head: &RequestHead,
        timeout: Duration,
        echo: Vec<(String, String)>,
        compress: bool,
    ) -> StartResponse {
        StartResponse {
            echo,
            lease,
            timeout,
            head_request: head.method == "HEAD",
            version: head.version,
            status: None,
            code: 0,
            headers: Vec::new(),
            app_length: None,
            known_length: None,
            has_date: false,
            has_server: false,
            framing: Framing::Undecided,
            body_bytes: 0,
            out: Vec::with_capacity(512),
            keep_alive: head.keep_alive,
            client_gone: false,
            on_wire: false,
            compression: Compression::for_request(compress, head),
        }
    }

    /// `--error-override` and an error status: nothing of the application's
    /// response is sent; the server sends its page for the status instead.
    pub fn replaced(&self) -> bool {
        crate::error_pages::overrides(self.code)
    }

    pub fn headers_sent(&self) -> bool {
        self.framing != Framing::Undecided
    }
    /// The response headers the application set.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
    pub fn status_code(&self) -> u16 {
        self.code
    }
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }
    pub fn keep_alive(&self) -> bool {
        self.keep_alive && self.framing != Framing::UntilClose
    }
    pub fn client_gone(&self) -> bool {
        self.client_gone
    }
    /// The body's total length, when the server can tell it in advance.
    pub fn set_known_length(&mut self, n: u64) {
        self.known_length = Some(n);
    }
    /// Whether any byte of the response has been written to the socket.
    pub fn on_wire(&self) -> bool {
        self.on_wire
    }
    /// Forgets what is not yet sent: the server sends an error page instead
    /// (nothing is on the wire yet) or closes the connection, so that a
    /// response the application broke off is never framed as complete.
    pub fn discard(&mut self) {
        self.out.clear();
        self.keep_alive = false;
    }

    fn set(&mut self, status: &Bound<'_, PyAny>, list: &Bound<'_, PyAny>) -> PyResult<()> {
        let status: String = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("status must be a str"))?
            .to_str()?
            .to_owned();
        let code = headers::status(&status).map_err(refused)?;
        let items: Vec<Bound<'_, PyAny>> = if let Ok(list) = list.cast::<PyList>() {
            list.iter().collect()
        } else if let Ok(tuple) = list.cast::<PyTuple>() {
            tuple.iter().collect()
        } else {
            return Err(PyTypeError::new_err(
                "response headers must be a list of (name, value) tuples",
            ));
        };
        let mut pairs = Vec::with_capacity(items.len());
        for item in items {
            let pair = item.cast::<PyTuple>().map_err(|_| {
                PyTypeError::new_err("each response header must be a (name, value) tuple")
            })?;
            if pair.len() != 2 {
                return Err(PyTypeError::new_err(
                    "each response header must be a (name, value) tuple",
                ));
            }
            let name: String = pair
                .get_item(0)?
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("header names must be str"))?
                .to_str()?
                .to_owned();
            let value: String = pair
                .get_item(1)?
                .cast::<PyString>()
                .map_err(|_| {
                    PyTypeError::new_err(format!("the value of header {name:?} must be a str"))
                })?
                .to_str()?
                .to_owned();
            pairs.push((name, value));
        }
        let reviewed = headers::review(code, pairs).map_err(refused)?;
        self.status = Some(status);
        self.code = code;
        self.headers = reviewed.headers;
        if let Some(c) = self.compression.as_deref_mut() {
            c.review(code, &mut self.headers);
        }
        self.app_length = reviewed.length;
        self.keep_alive = self.keep_alive && !reviewed.close;
        self.has_date = reviewed.has_date;
        self.has_server = reviewed.has_server;
        Ok(())
    }

    fn write_head(&mut self) -> PyResult<()> {
        if let Some(refused) = self.lease.refusal() {
            // The body was malformed or too large: the client gets the
            // refusal, not what the application made of the error.
            return Err(PyOSError::new_err(format!(
                "the request body was refused ({} {}); the response is the refusal",
                refused.status, refused.reason
            )));
        }
        let Some(status) = &self.status else {
            return Err(PyAssertionError::new_err(
                "the application sent a body before calling start_response",
            ));
        };
        let out = &mut self.out;
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            // Values are latin-1 by PEP 3333: one byte per character.
            out.extend(value.chars().map(|c| c as u32 as u8));
            out.extend_from_slice(b"\r\n");
        }
        if !self.has_server {
            out.extend_from_slice(b"Server: ");
            out.extend_from_slice(SERVER_HEADER.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        for (name, id) in &self.echo {
            if !self
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                for part in [name.as_bytes(), b": ", id.as_bytes(), b"\r\n"] {
                    out.extend_from_slice(part);
                }
            }
        }
        if !self.has_date {
            DATES.with(|d| {
                out.extend_from_slice(b"Date: ");
                out.extend_from_slice(d.borrow_mut().now().as_bytes());
                out.extend_from_slice(b"\r\n");
            });
        }
        let plan = plan(Facts {
            version: self.version,
            head_request: self.head_request,
            code: self.code,
            app_length: self.app_length,
            known_length: self.known_length,
            keep_alive: self.keep_alive,
        });
        if let Some(n) = plan.add_length {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if plan.framing == Framing::Chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        if let Some(value) = plan.connection {
            out.extend_from_slice(b"Connection: ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        self.keep_alive = plan.keep_alive;
        self.framing = plan.framing;
        Ok(())
    }

    /// Sends the buffer and then `extra` pieces, without the GIL.
    fn flush(&mut self, py: Python<'_>, extra: &[&[u8]]) -> PyResult<()> {
        if self.client_gone {
            return Err(PyOSError::new_err("the client closed the connection"));
        }
        if self.out.is_empty() && extra.iter().all(|e| e.is_empty()) {
            return Ok(());
        }
        let timeout = self.timeout;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + extra.len());
        parts.push(&self.out);
        parts.extend_from_slice(extra);
        let lease = &self.lease;
        let result = py.detach(|| lease.io(|io| io.write_all(&parts, timeout)));
        self.out.clear();
        self.on_wire = true;
        result.map_err(|e| {
            self.client_gone = true;
            self.keep_alive = false;
            PyOSError::new_err(format!("cannot send the response: {e}"))
        })
    }

    /// Sends what is buffered now (a streamed block, or `write`).
    pub fn flush_pending(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(c) = self.compression.as_deref_mut().filter(|c| c.active()) {
            let block = c.flush().map_err(compression_failed)?;
            if !block.is_empty() {
                self.send_raw(py, &block)?;
            }
        }
        self.flush(py, &[])
    }

    /// Sends one block of the body (from the iterable or `write`).
    pub fn send(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        if data.is_empty() || self.replaced() {
            // PEP 3333: the head waits for the first non-empty block (or
            // the end), so `exc_info` can still replace the response. A
            // body --error-override replaces is never sent.
            return Ok(());
        }
        if self.compressing() {
            return self.send_compressed(py, data);
        }
        self.send_raw(py, data)
    }

    /// Sends body bytes as they are on the wire (compressed, if so).
    fn send_raw(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        if !self.headers_sent() {
            self.write_head()?;
        }
        let data = self.admit(data);
        if data.is_empty() {
            return Ok(());
        }
        if data.len() >= COPY_LIMIT {
            let trailer: &[u8] = if self.framing == Framing::Chunked {
                b"\r\n"
            } else {
                b""
            };
            return self.flush(py, &[data, trailer]);
        }
        self.buffer(data);
        if self.out.len() >= FLUSH_AT {
            self.flush(py, &[])?;
        }
        Ok(())
    }

    /// The part of `data` the framing lets follow (counted as sent), with
    /// its chunk header buffered.
    fn admit<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        if matches!(self.framing, Framing::NoBody | Framing::Undecided) {
            return &[];
        }
        let allowed = room(self.framing, self.body_bytes, data.len() as u64);
        let data = if allowed < data.len() as u64 {
            // More than announced: the rest is dropped, and the connection
            // closes after this response.
            self.keep_alive = false;
            &data[..allowed as usize]
        } else {
            data
        };
        self.body_bytes += data.len() as u64;
        if self.framing == Framing::Chunked && !data.is_empty() {
            let _ = write!(self.out, "{:x}\r\n", data.len());
        }
        data
    }

    /// Buffers admitted body bytes and their chunk's end.
    fn buffer(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        if self.framing == Framing::Chunked {
            self.out.extend_from_slice(b"\r\n");
        }
    }

    /// Whether the body goes through the encoder: decided at its first
    /// bytes, while the head can still say so.
    fn compressing(&mut self) -> bool {
        let Some(c) = self.compression.as_deref_mut() else {
            return false;
        };
        if c.active() {
            return true;
        }
        if self.framing != Framing::Undecided
            || !c.start(&mut self.headers, self.app_length, self.known_length)
        {
            return false;
        }
        // The compressed length is known only at the end.
        self.app_length = None;
        self.known_length = None;
        true
    }

    fn send_compressed(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let Some(c) = self.compression.as_deref_mut() else {
            return self.send_raw(py, data);
        };
        if c.feed(data).map_err(compression_failed)? {
            // Beyond the application's Content-Length: dropped, as without
            // compression, and the connection closes after the response.
            self.keep_alive = false;
        }
        let waiting = c.waiting(FLUSH_AT);
        if waiting.is_empty() {
            return Ok(());
        }
        self.send_raw(py, &waiting)
    }

    /// Sends `count` bytes of an open file from `offset` with sendfile(2)
    /// (`wsgi.file_wrapper` on a real file): no copy through Python.
    pub fn send_file(
        &mut self,
        py: Python<'_>,
        file: &OwnedFd,
        offset: u64,
        count: u64,
    ) -> PyResult<()> {
        if self.replaced() {
            return Ok(());
        }
        if !self.headers_sent() {
            if self.app_length.is_none() && self.known_length.is_none() {
                self.known_length = Some(count);
            }
            self.write_head()?;
        }
        let count = room(self.framing, self.body_bytes, count);
        if count == 0 {
            return Ok(());
        }
        if self.framing == Framing::Chunked {
            let _ = write!(self.out, "{count:x}\r\n");
        }
        self.flush(py, &[])?;
        let file = file.as_fd();
        let timeout = self.timeout;
        let lease = &self.lease;
        self.on_wire = true;
        let sent = py
            .detach(|| lease.io(|io| io.send_file(file, offset, count, timeout)))
            .map_err(|e| {
                self.client_gone = true;
                self.keep_alive = false;
                PyOSError::new_err(format!("cannot send the file: {e}"))
            })?;
        self.body_bytes += sent;
        if sent < count {
            // The file shrank: the announced length cannot be honoured.
            self.keep_alive = false;
            self.client_gone = true;
            return Err(PyOSError::new_err("the file is shorter than announced"));
        }
        if self.framing == Framing::Chunked {
            self.out.extend_from_slice(b"\r\n");
        }
        Ok(())
    }

    /// Completes the response: head if not yet sent, last chunk. Returns
    /// the bytes still to send, so the caller can write them in the same
    /// GIL-free stretch in which it waits for the next request.
    pub fn finish(&mut self) -> PyResult<Vec<u8>> {
        let mut short = false;
        if let Some(c) = self.compression.as_deref_mut().filter(|c| c.active()) {
            short = c.short();
            let rest = c.finish().map_err(compression_failed)?;
            if !self.headers_sent() && !short {
                // The whole body was given before anything went out: its
                // compressed length frames it.
                self.known_length = Some(rest.len() as u64);
            }
            if !self.headers_sent() {
                if self.status.is_none() {
                    return Err(PyAssertionError::new_err(
                        "the application returned without calling start_response",
                    ));
                }
                self.write_head()?;
            }
            let rest = self.admit(&rest);
            self.buffer(rest);
        }
        if short {
            // Less than the application's Content-Length: never framed as
            // complete (no last chunk, and the connection closes).
            self.keep_alive = false;
            if self.client_gone {
                return Err(PyOSError::new_err("the client closed the connection"));
            }
            return Ok(std::mem::take(&mut self.out));
        }
        if !self.headers_sent() {
            if self.status.is_none() {
                return Err(PyAssertionError::new_err(
                    "the application returned without calling start_response",
                ));
            }
            if self.app_length.is_none() && self.known_length.is_none() {
                // Nothing was sent, so the body is empty.
                self.known_length = Some(0);
            }
            self.write_head()?;
        }
        match self.framing {
            Framing::Chunked => self.out.extend_from_slice(b"0\r\n\r\n"),
            Framing::Length(n) if self.body_bytes < n => {
                // The client would wait for bytes that never come: close.
                self.keep_alive = false;
            }
            _ => {}
        }
        if self.client_gone {
            return Err(PyOSError::new_err("the client closed the connection"));
        }
        Ok(std::mem::take(&mut self.out))
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        {
            // Another thread of the application may be using this object
            // right now: that is its error to see, never a panic here.
            let mut me = slf.try_borrow_mut()?;
            if !me.lease.is_open() {
                return Err(PyValueError::new_err(
                    "start_response called after its request ended",
                ));
            }
            match exc_info.filter(|e| !e.is_none()) {
                Some(exc) if me.headers_sent() => {
                    // Too late to change the response: re-raise the original error.
                    return Err(PyErr::from_value(exc.get_item(1)?));
                }
                Some(_) => {}
                None if me.status.is_some() => {
                    return Err(PyAssertionError::new_err(
                        "start_response was called a second time without exc_info",
                    ))
                }
                None => {}
            }
            me.set(status, headers)?;
        }
        slf.getattr(pyo3::intern!(slf.py(), "write"))
    }

    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() takes bytes"))?;
        if !self.lease.is_open() {
            // Kept past its request: the descriptor may be another client's now.
            return Err(PyValueError::new_err(
                "write() called after its request ended",
            ));
        }
        if self.status.is_none() {
            return Err(PyAssertionError::new_err(
                "write() called before start_response",
            ));
        }
        self.send(py, bytes.as_bytes())?;
        // write() must not return before the data is on its way (PEP 3333).
        self.flush_pending(py)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GET on HTTP/1.1 that may stay open, with a 200 the application
    /// gave no length.
    fn get11() -> Facts {
        Facts {
            version: Version::Http11,
            head_request: false,
            code: 200,
            app_length: None,
            known_length: None,
            keep_alive: true,
        }
    }

    #[test]
    fn a_length_the_app_set_frames_the_body_and_is_not_added_again() {
        let p = plan(Facts {
            app_length: Some(5),
            known_length: Some(9),
            ..get11()
        });
        assert_eq!(p.framing, Framing::Length(5));
        assert_eq!(p.add_length, None);
        assert!(p.keep_alive);
        assert_eq!(p.connection, None);
    }

    #[test]
    fn a_length_the_server_knows_is_added() {
        let p = plan(Facts {
            known_length: Some(0),
            ..get11()
        });
        assert_eq!((p.framing, p.add_length), (Framing::Length(0), Some(0)));
    }

    #[test]
    fn without_a_length_http11_is_chunked_and_http10_ends_with_the_connection() {
        let p = plan(get11());
        assert_eq!(p.framing, Framing::Chunked);
        assert!(p.keep_alive);
        let p = plan(Facts {
            version: Version::Http10,
            ..get11()
        });
        assert_eq!(p.framing, Framing::UntilClose);
        assert!(!p.keep_alive);
        assert_eq!(p.connection, Some("close"));
    }

    #[test]
    fn statuses_without_a_body_have_no_framing_headers() {
        for code in [100, 101, 204, 304] {
            let p = plan(Facts {
                code,
                known_length: Some(0),
                ..get11()
            });
            assert_eq!(p.framing, Framing::NoBody, "{code}");
            assert_eq!(p.add_length, None, "{code}");
            assert!(p.keep_alive, "{code}");
        }
        // Not even on HTTP/1.0, where no length would otherwise close.
        let p = plan(Facts {
            code: 304,
            version: Version::Http10,
            ..get11()
        });
        assert_eq!(p.framing, Framing::NoBody);
        assert!(p.keep_alive);
    }

    #[test]
    fn head_announces_the_length_a_get_would_have_and_sends_no_body() {
        let head = Facts {
            head_request: true,
            ..get11()
        };
        let p = plan(Facts {
            known_length: Some(42),
            ..head
        });
        assert_eq!((p.framing, p.add_length), (Framing::NoBody, Some(42)));
        // Without a length: no chunked framing, and the connection stays open.
        let p = plan(head);
        assert_eq!((p.framing, p.add_length), (Framing::NoBody, None));
        assert!(p.keep_alive);
        let p = plan(Facts {
            version: Version::Http10,
            ..head
        });
        assert_eq!(p.framing, Framing::NoBody);
        assert!(p.keep_alive);
        assert_eq!(p.connection, Some("keep-alive"));
    }

    #[test]
    fn the_connection_header_follows_keep_alive_and_version() {
        let closing = plan(Facts {
            keep_alive: false,
            known_length: Some(1),
            ..get11()
        });
        assert_eq!(closing.connection, Some("close"));
        let kept10 = plan(Facts {
            version: Version::Http10,
            known_length: Some(1),
            ..get11()
        });
        assert_eq!(kept10.connection, Some("keep-alive"));
        assert!(kept10.keep_alive);
    }

    #[test]
    fn no_more_body_than_announced_and_none_where_none_may_go() {
        assert_eq!(room(Framing::Length(10), 0, 4), 4);
        assert_eq!(room(Framing::Length(10), 8, 4), 2);
        assert_eq!(room(Framing::Length(10), 10, 4), 0);
        assert_eq!(room(Framing::Length(10), 12, 4), 0);
        assert_eq!(room(Framing::Chunked, 1 << 40, 4), 4);
        assert_eq!(room(Framing::UntilClose, 0, 4), 4);
        assert_eq!(room(Framing::NoBody, 0, 4), 0);
        assert_eq!(room(Framing::Undecided, 0, 4), 0);
    }
}
