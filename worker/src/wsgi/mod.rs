//! The WSGI side of a request (PEP 3333): environ, `wsgi.input`,
//! `start_response`, the response body, `wsgi.errors`.

mod access_log;
mod environ;
pub mod errors;
mod input;
mod response;

use crate::conn::Conn;
use crate::python::Application;
use input::Input;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use response::StartResponse;
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::http::{HttpError, RequestHead};
use rwsgi_shared::scoreboard::Scoreboard;
use slog::{debug, Logger};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Everything a request thread needs, borrowed for its lifetime.
pub struct RequestContext<'a> {
    pub app: &'a Application,
    pub config: &'a ServerConfig,
    pub scoreboard: &'a Scoreboard,
    pub slot: usize,
    pub thread: usize,
    pub log: &'a Logger,
}

/// A request whose application part is done.
pub struct Handled {
    pub conn: Conn,
    /// Response bytes still to be written (without the GIL).
    pub unsent: Vec<u8>,
    /// Whether the connection may serve another request afterwards.
    pub keep_alive: bool,
}

/// Runs one request with the GIL held; the caller writes `unsent`.
pub fn handle(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    mut conn: Conn,
    head: RequestHead,
) -> Handled {
    let sb = ctx.scoreboard.worker(ctx.slot);
    if let Some(sb) = sb {
        sb.begin_request(ctx.thread, &head.method, &head.path, conn.peer);
    }
    let started = Instant::now();
    let result = run(py, ctx, &mut conn, &head);
    if let Some(sb) = sb {
        sb.end_request(ctx.thread);
    }
    conn.served += 1;
    if ctx.config.access_log {
        access_log::write(
            ctx.log,
            &conn,
            &head,
            result.status,
            result.body_bytes,
            started.elapsed(),
        );
    }
    Handled {
        conn,
        unsent: result.unsent,
        keep_alive: result.keep_alive,
    }
}

/// How a request ended, for the connection and the access log.
struct Outcome {
    status: u16,
    body_bytes: u64,
    keep_alive: bool,
    unsent: Vec<u8>,
}

fn run(py: Python<'_>, ctx: &RequestContext<'_>, conn: &mut Conn, head: &RequestHead) -> Outcome {
    let timeout = Duration::from_millis(ctx.config.timeouts.socket_ms);
    let fd = conn.stream.as_raw_fd();
    let path_info = match environ::path_info(&head.path, &ctx.config.mount_point) {
        Ok(p) => p,
        Err(e) => return server_error(&e, head),
    };
    let input = Input::new(
        fd,
        std::mem::take(&mut conn.buf),
        head,
        ctx.config.limits.request_body,
        &ctx.config.timeouts,
    );
    let response = StartResponse::new(fd, head, timeout);
    let (input, response) = match (Py::new(py, input), Py::new(py, response)) {
        (Ok(i), Ok(r)) => (i, r),
        _ => {
            return server_error(&HttpError::new(500, "out of memory"), head);
        }
    };
    let called = environ::build(py, ctx, head, &path_info, conn.peer, &input).and_then(|environ| {
        ctx.app
            .callable
            .bind(py)
            .call1((environ, response.clone_ref(py)))
    });
    let mut app_ok = true;
    match called {
        Ok(iterable) => {
            if let Err(e) = send_body(py, ctx, &iterable, &response) {
                app_ok = false;
                report(py, ctx, &e, &response);
            }
            // Lists and tuples have no close(); asking anyway would build an
            // AttributeError (with a formatted message) on every request.
            let plain = iterable.is_exact_instance_of::<PyList>()
                || iterable.is_exact_instance_of::<PyTuple>();
            let close = if plain {
                None
            } else {
                iterable
                    .getattr_opt(pyo3::intern!(py, "close"))
                    .ok()
                    .flatten()
            };
            if let Some(close) = close {
                if let Err(e) = close.call0() {
                    app_ok = false;
                    log_error(py, ctx, &e, "close() of the response iterable raised:");
                }
            }
        }
        Err(e) => {
            app_ok = false;
            log_error(
                py,
                ctx,
                &e,
                &format!("{} {} raised:", head.method, head.target),
            );
        }
    }
    let mut r = response.borrow_mut(py);
    if !app_ok && !r.headers_sent() {
        r.discard();
        drop(r);
        let mut i = input.borrow_mut(py);
        conn.buf = i.detach();
        return server_error(
            &HttpError::new(500, "the application raised an exception"),
            head,
        );
    }
    let finished = r.finish();
    let (status, body_bytes, response_keep_alive) =
        (r.status_code(), r.body_bytes(), r.keep_alive());
    drop(r);
    let mut i = input.borrow_mut(py);
    let body_clean = i.body_done() || {
        let input_ref: &mut Input = &mut i;
        py.detach(|| input_ref.discard_rest())
    };
    conn.buf = i.detach();
    let unsent = match finished {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            debug!(ctx.log, "response not completed"; "error" => %e, "client" => %conn.peer);
            None
        }
    };
    Outcome {
        status,
        body_bytes,
        keep_alive: app_ok
            && unsent.is_some()
            && response_keep_alive
            && body_clean
            && head.keep_alive,
        unsent: unsent.unwrap_or_default(),
    }
}

/// A `wsgi.file_wrapper` around a real, regular file: (fd, offset, length).
fn real_file(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    iterable: &Bound<'_, PyAny>,
) -> Option<(std::os::fd::RawFd, u64, u64)> {
    let wrapper_type = ctx.app.bootstrap.bind(py).getattr("FileWrapper").ok()?;
    if !iterable.is_instance(&wrapper_type).ok()? {
        return None;
    }
    let filelike = iterable.getattr("filelike").ok()?;
    let fd: std::os::fd::RawFd = filelike.call_method0("fileno").ok()?.extract().ok()?;
    let offset: u64 = filelike.call_method0("tell").ok()?.extract().ok()?;
    // SAFETY: the descriptor belongs to the file object the application
    // handed us, which stays open while we look at it.
    let file = unsafe { crate::net::borrow(fd) };
    let stat = nix::sys::stat::fstat(file).ok()?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let size = u64::try_from(stat.st_size).ok()?;
    Some((fd, offset, size.saturating_sub(offset)))
}

/// Iterates the application's response and sends every block.
fn send_body(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    iterable: &Bound<'_, PyAny>,
    response: &Py<StartResponse>,
) -> PyResult<()> {
    if let Some((fd, offset, count)) = real_file(py, ctx, iterable) {
        return response.borrow_mut(py).send_file(py, fd, offset, count);
    }
    // A list or tuple of bytes has a known length: send Content-Length instead of chunks.
    let known = if let Ok(list) = iterable.cast::<PyList>() {
        total_len(list.iter())
    } else if let Ok(tuple) = iterable.cast::<PyTuple>() {
        total_len(tuple.iter())
    } else {
        None
    };
    if let Some(n) = known {
        response.borrow_mut(py).set_known_length(n);
    }
    for item in iterable.try_iter()? {
        let item = item?;
        let bytes = item.cast::<PyBytes>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "the response iterable yielded {} instead of bytes",
                item.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let mut r = response.borrow_mut(py);
        r.send(py, bytes.as_bytes())?;
        if known.is_none() {
            // A streamed block must not wait for the next one (PEP 3333):
            // the application may take its time producing it.
            r.flush_pending(py)?;
        }
    }
    Ok(())
}

fn total_len<'py>(items: impl Iterator<Item = Bound<'py, PyAny>>) -> Option<u64> {
    let mut total = 0u64;
    for item in items {
        total += item.cast::<PyBytes>().ok()?.as_bytes().len() as u64;
    }
    Some(total)
}

fn report(py: Python<'_>, ctx: &RequestContext<'_>, e: &PyErr, response: &Py<StartResponse>) {
    if response.borrow(py).client_gone() {
        debug!(ctx.log, "client went away during the response");
    } else {
        log_error(py, ctx, e, "error while sending the response:");
    }
}

/// A response the server makes itself; the connection is closed after it.
fn server_error(err: &HttpError, head: &RequestHead) -> Outcome {
    let mut dates = rwsgi_shared::http::DateCache::default();
    let mut bytes = rwsgi_shared::http::error_response(err.status, dates.now(), false);
    if head.method == "HEAD" {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            bytes.truncate(end + 4);
        }
    }
    Outcome {
        status: err.status,
        body_bytes: 0,
        keep_alive: false,
        unsent: bytes,
    }
}

/// Logs an application exception with its traceback.
fn log_error(py: Python<'_>, ctx: &RequestContext<'_>, e: &PyErr, what: &str) {
    crate::python::log_exception(py, ctx.app.bootstrap.bind(py), e, ctx.log, what);
}
