//! The WSGI side of a request (PEP 3333): environ, `wsgi.input`,
//! `start_response`, the response body, `wsgi.errors`.

mod environ;
pub mod errors;
mod headers;
mod input;
mod lease;
mod response;

use crate::conn::Conn;
use crate::python::Application;
use crate::spool::Spooled;
pub use environ::{for_guard as guard_environ, path_info, reserve_request_keys};
use input::Input;
use lease::Lease;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use response::StartResponse;
use rwsgi_shared::access_log::Record;
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::http::{BodyError, HttpError, RequestHead};
use rwsgi_shared::scoreboard::Scoreboard;
use slog::{debug, error, info, warn, Logger};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a request thread needs, borrowed for its lifetime.
pub struct RequestContext<'a> {
    pub app: &'a Application,
    pub config: &'a ServerConfig,
    pub scoreboard: &'a Scoreboard,
    pub slot: usize,
    pub thread: usize,
    /// For routing a pipelined request (see `route`).
    pub files: &'a rwsgi_shared::statics::StaticFiles,
    /// The lanes (see `guard`).
    pub statics: &'a crate::statics::Statics,
    /// `None` without `--access-log`.
    pub access: Option<&'a crate::access_log::AccessLog>,
    pub proxy: &'a rwsgi_shared::proxy::Rules,
    /// `None` without `--interrupt-timeout`.
    pub interrupts: Option<&'a crate::python::Interrupts>,
    pub log: &'a Logger,
}

/// A request whose application part is done.
pub struct Handled {
    pub conn: Conn,
    /// Response bytes still to be written (without the GIL).
    pub unsent: Vec<u8>,
    /// Whether the connection may serve another request afterwards.
    pub keep_alive: bool,
    /// Every byte of the request (head and body) was read, and nothing
    /// after it: a close cannot throw the response away with a reset.
    pub request_read: bool,
}

/// Creates the Python types requests use (`wsgi.input`, `start_response`),
/// which pyo3 otherwise makes on first use: made in the template, they are
/// shared by every worker forked from it instead of built in each.
pub fn create_types(py: Python<'_>) {
    py.get_type::<Input>();
    py.get_type::<StartResponse>();
    py.get_type::<errors::ErrorStream>();
}

/// Runs one request with the GIL held; the caller writes `unsent`.
pub fn handle(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    mut conn: Conn,
    head: RequestHead,
    body: Option<Spooled>,
    queued_at: Instant,
    user: Option<&crate::guard::User>,
) -> Handled {
    let sb = ctx.scoreboard.worker(ctx.slot);
    // The list is usually empty: then nothing is compared.
    let activity = ctx.config.ignore_activity.is_empty()
        || rwsgi_shared::config::counts_as_activity(&head.path, &ctx.config.ignore_activity);
    if let Some(sb) = sb {
        sb.begin_request(ctx.thread, &head.method, &head.path, conn.origin.client());
        if activity {
            sb.begin_activity();
        }
    }
    let started = Instant::now();
    let queued = started.saturating_duration_since(queued_at);
    let request_id = crate::request_id::of(head.header("x-request-id"));
    if let Some(i) = ctx.interrupts {
        i.begin(py, ctx.thread, request_id.as_str());
    }
    let result = run(py, ctx, &mut conn, &head, body, request_id.as_str(), user);
    if let Some(i) = ctx.interrupts {
        i.end(py, ctx.thread);
    }
    let took = started.elapsed();
    if let Some(sb) = sb {
        if activity {
            sb.end_activity();
        }
        sb.end_request(ctx.thread);
        let m = sb.metrics();
        if result.server_refusal {
            m.refused(result.status);
        } else {
            m.request(&head.method, result.status, micros(took), micros(queued));
        }
    }
    conn.served += 1;
    if let Some(access) = ctx.access {
        access.write(
            ctx.log,
            &Record {
                client: conn.origin.client().ip(),
                head: &head,
                status: result.status,
                bytes: result.body_bytes,
                took,
                queue_wait: Some(queued),
                request_id: request_id.as_str(),
                response_headers: &result.response_headers,
            },
        );
    }
    Handled {
        conn,
        unsent: result.unsent,
        keep_alive: result.keep_alive,
        request_read: result.request_read,
    }
}

/// How a request ended, for the connection, the access log and the metrics.
struct Outcome {
    status: u16,
    body_bytes: u64,
    keep_alive: bool,
    unsent: Vec<u8>,
    /// The server refused the request (its body) without the application.
    server_refusal: bool,
    /// The request's body was read to its end (see `Handled`).
    request_read: bool,
    /// The response's headers, kept only when the access log shows some.
    response_headers: Vec<(String, String)>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What is known when the application is done with a request.
#[derive(Debug, Clone, Copy)]
struct Facts<'a> {
    /// The application (or its iterable, or `close()`) raised.
    app_raised: bool,
    /// What it raised was the RequestTimeout of `--interrupt-timeout`.
    timed_out: bool,
    /// Response bytes already reached the socket.
    on_wire: bool,
    /// The client went away while the response was being sent.
    client_gone: bool,
    /// The body was malformed or too large (decided by the server).
    refused: Option<&'a HttpError>,
    /// Reading the body failed otherwise (timeout, disconnect).
    body_failed: Option<&'a BodyError>,
}

/// How the server ends the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Send what the application produced, completed.
    Complete,
    /// Nothing is on the wire yet: send this error page, then close.
    ErrorPage(u16),
    /// Part of the response is on the wire and it cannot be completed:
    /// close without completing its framing, so the client sees it cut short.
    CutShort,
}

/// Who the log blames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blame {
    Nobody,
    /// The application's exception, with its traceback (ERROR).
    Application,
    /// The client's request body (INFO, no traceback).
    ClientBody,
    /// The client left (DEBUG).
    ClientGone,
    /// `--interrupt-timeout` interrupted it (WARN, no traceback: the
    /// stack was logged when it was interrupted).
    Interrupted,
}

/// The decision table for the end of a request. A refused body is the
/// client's error whatever the application did with the exception; a body
/// that failed otherwise is the client's only when it made the application
/// fail; an exception is the application's. What is on the wire decides
/// between an error page and a response cut short.
fn ending(f: Facts<'_>) -> (Ending, Blame) {
    let cut_or = |status| {
        if f.on_wire {
            Ending::CutShort
        } else {
            Ending::ErrorPage(status)
        }
    };
    if let Some(refused) = f.refused {
        return (cut_or(refused.status), Blame::ClientBody);
    }
    if !f.app_raised {
        return (Ending::Complete, Blame::Nobody);
    }
    if f.client_gone {
        return (Ending::CutShort, Blame::ClientGone);
    }
    // mod_wsgi 6: 504 Gateway Timeout, or cut short if the response began.
    if f.timed_out {
        return (cut_or(504), Blame::Interrupted);
    }
    match f.body_failed {
        Some(e) => (cut_or(e.status()), Blame::ClientBody),
        None => (cut_or(500), Blame::Application),
    }
}

fn run(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    conn: &mut Conn,
    head: &RequestHead,
    body: Option<Spooled>,
    request_id: &str,
    user: Option<&crate::guard::User>,
) -> Outcome {
    let timeout = Duration::from_millis(ctx.config.timeouts.socket_ms);
    let limits = &ctx.config.limits;
    let path_info = match environ::path_info(&head.path, &ctx.config.mount_point) {
        Ok(p) => p,
        Err(e) => return error_page(e.status, head),
    };
    // Trusted proxy headers: an invalid value is the proxy's error, refused
    // before the body is read or the application called.
    let proxied = match ctx.proxy.apply(&conn.origin, &head.headers) {
        Ok(p) => p,
        Err(e) => {
            info!(ctx.log, "request refused"; "status" => 400, "reason" => %e, "client" => %conn.origin);
            return Outcome {
                server_refusal: true,
                request_read: false,
                ..error_page(400, head)
            };
        }
    };
    let lease = Arc::new(Lease::new(&conn.stream));
    let input = match body {
        // Received by the I/O thread: nothing here waits on the client.
        Some(body) => Input::spooled(
            Arc::clone(&lease),
            body,
            std::mem::take(&mut conn.buf),
            limits,
            &ctx.config.timeouts,
        ),
        // No body, one that came whole with its head, or a chunked body the
        // application streams (--chunked-request).
        None => Input::new(
            Arc::clone(&lease),
            std::mem::take(&mut conn.buf),
            head,
            limits,
            &ctx.config.timeouts,
        ),
    };
    let echo = ctx
        .config
        .request_id_header
        .as_ref()
        .map(|name| (name.clone(), request_id.to_owned()));
    let response = StartResponse::new(Arc::clone(&lease), head, timeout, echo);
    let (input, response) = match (Py::new(py, input), Py::new(py, response)) {
        (Ok(i), Ok(r)) => (i, r),
        _ => {
            lease.revoke(py);
            return error_page(500, head);
        }
    };
    let mut raised: Vec<(PyErr, String)> = Vec::new();
    let called = environ::build(py, ctx, head, &path_info, &proxied, &input, request_id).and_then(
        |environ| {
            if let Some(user) = user {
                environ.set_item(pyo3::intern!(py, "REMOTE_USER"), &user.name)?;
                environ.set_item(pyo3::intern!(py, "AUTH_TYPE"), user.scheme.as_str())?;
            }
            ctx.app
                .callable
                .bind(py)
                .call1((environ, response.clone_ref(py)))
        },
    );
    match called {
        Ok(iterable) => {
            if let Err(e) = send_body(py, ctx, &iterable, &response) {
                raised.push((e, "error while sending the response:".to_owned()));
            }
            if let Err(e) = close_iterable(py, &iterable) {
                raised.push((e, "close() of the response iterable raised:".to_owned()));
            }
        }
        Err(e) => raised.push((e, format!("{} {} raised:", head.method, head.target))),
    }

    // A thread the application started may hold either object right now
    // (it kept `write` or `wsgi.input`): then the connection cannot be
    // trusted to carry anything more, and closes.
    let (Ok(mut r), Ok(mut i)) = (response.try_borrow_mut(py), input.try_borrow_mut(py)) else {
        lease.revoke(py);
        for (e, what) in &raised {
            log_error(py, ctx, e, what);
        }
        warn!(ctx.log, "another thread was using this request's start_response or wsgi.input when it ended; closing the connection");
        return Outcome {
            status: 500,
            body_bytes: 0,
            keep_alive: false,
            unsent: Vec::new(),
            server_refusal: false,
            request_read: false,
            response_headers: Vec::new(),
        };
    };
    let refused = lease.refusal().cloned();
    let body_failed = i.body_error().cloned();
    let timed_out = ctx
        .interrupts
        .is_some_and(|t| raised.iter().any(|(e, _)| t.is_request_timeout(py, e)));
    let (end, blame) = ending(Facts {
        app_raised: !raised.is_empty(),
        timed_out,
        on_wire: r.on_wire(),
        client_gone: r.client_gone(),
        refused: refused.as_ref(),
        body_failed: body_failed.as_ref(),
    });
    match blame {
        Blame::Nobody => {}
        Blame::Application => {
            for (e, what) in &raised {
                log_error(py, ctx, e, what);
            }
        }
        Blame::ClientBody => match (&refused, &body_failed) {
            (Some(http), _) => {
                log_body_failure(ctx, conn, &BodyError::Refused(http.clone()));
            }
            (None, Some(e)) => log_body_failure(ctx, conn, e),
            (None, None) => {}
        },
        Blame::ClientGone => debug!(ctx.log, "client went away during the response"),
        Blame::Interrupted => {
            warn!(ctx.log, "request interrupted by RequestTimeout (--interrupt-timeout); the thread serves on";
                "request" => format!("{} {}", head.method, head.target),
                "response" => if r.on_wire() { "cut short" } else { "504" })
        }
    }
    let outcome = match end {
        Ending::ErrorPage(status) => {
            r.discard();
            Outcome {
                server_refusal: blame == Blame::ClientBody,
                ..error_page(status, head)
            }
        }
        Ending::CutShort => {
            r.discard();
            if blame == Blame::Application {
                error!(ctx.log, "response cut short: the application failed after it began; the connection is closed so the client sees an incomplete response";
                    "status" => r.status_code(), "sent" => r.body_bytes(), "client" => %conn.origin);
            }
            Outcome {
                status: r.status_code(),
                body_bytes: r.body_bytes(),
                keep_alive: false,
                unsent: Vec::new(),
                server_refusal: false,
                request_read: false,
                response_headers: Vec::new(),
            }
        }
        Ending::Complete => {
            let finished = r.finish();
            let unsent = match finished {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    debug!(ctx.log, "response not completed"; "error" => %e, "client" => %conn.origin);
                    None
                }
            };
            let keep_alive = unsent.is_some() && r.keep_alive() && head.keep_alive;
            // An unread body is read and dropped (if small) so the
            // connection can carry the next request.
            let body_clean = keep_alive && i.discard_rest(py);
            Outcome {
                status: r.status_code(),
                body_bytes: r.body_bytes(),
                keep_alive: keep_alive && body_clean,
                unsent: unsent.unwrap_or_default(),
                server_refusal: false,
                request_read: false,
                response_headers: match ctx.access {
                    Some(a) if a.format.needs_response_headers() => r.headers().to_vec(),
                    _ => Vec::new(),
                },
            }
        }
    };
    let request_read = i.body_received() && i.body_error().is_none();
    drop(r);
    // From here on, whatever the application kept raises instead of
    // touching the socket, which may soon belong to another client.
    lease.revoke(py);
    conn.buf = i.detach();
    Outcome {
        request_read,
        ..outcome
    }
}

/// Calls the iterable's `close()`, if it has one.
fn close_iterable(py: Python<'_>, iterable: &Bound<'_, PyAny>) -> PyResult<()> {
    // Lists and tuples have no close(); asking anyway would build an
    // AttributeError (with a formatted message) on every request.
    if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    match iterable.getattr_opt(pyo3::intern!(py, "close")) {
        Ok(Some(close)) => close.call0().map(drop),
        _ => Ok(()),
    }
}

/// A body the client framed wrongly, made too large, or did not send in
/// time: logged as the client's, with the option to change when a limit
/// refused it.
fn log_body_failure(ctx: &RequestContext<'_>, conn: &Conn, e: &BodyError) {
    match e {
        BodyError::Refused(http) => info!(ctx.log, "request refused";
            "status" => http.status, "reason" => http.explain(&ctx.config.limits), "client" => %conn.origin),
        other => info!(ctx.log, "request body not received";
            "status" => other.status(), "reason" => %other, "client" => %conn.origin),
    }
}

/// A `wsgi.file_wrapper` around a real, regular file: (fd, offset, length).
fn real_file(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    iterable: &Bound<'_, PyAny>,
) -> Option<(std::os::fd::OwnedFd, u64, u64)> {
    // The usual list of bytes is answered without a lookup.
    if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
        return None;
    }
    let wrapper_type = ctx
        .app
        .bootstrap
        .bind(py)
        .getattr(pyo3::intern!(py, "FileWrapper"))
        .ok()?;
    if !iterable.is_instance(&wrapper_type).ok()? {
        return None;
    }
    let filelike = iterable.getattr("filelike").ok()?;
    let fileno = filelike.call_method0("fileno").ok()?;
    // Anything but a number that can name a descriptor (an object without
    // one may answer -1) means a file-like object, sent by reading it.
    let Some(fd) = fileno.extract::<i64>().ok().and_then(descriptor) else {
        debug!(ctx.log, "wsgi.file_wrapper: fileno() gave no descriptor; reading the object instead";
            "fileno" => %fileno);
        return None;
    };
    let offset: u64 = filelike.call_method0("tell").ok()?.extract().ok()?;
    // Our own copy (the application may close its file object while the
    // response is being sent), made while the object is alive (we hold it).
    let file = dup_descriptor(fd)?;
    let stat = nix::sys::stat::fstat(&file).ok()?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let size = u64::try_from(stat.st_size).ok()?;
    Some((file, offset, size.saturating_sub(offset)))
}

/// The descriptor a `fileno()` result names, if it can name one at all.
fn descriptor(fileno: i64) -> Option<std::os::fd::RawFd> {
    std::os::fd::RawFd::try_from(fileno)
        .ok()
        .filter(|fd| *fd >= 0)
}

/// A close-on-exec copy of descriptor `fd`, if it is open.
fn dup_descriptor(fd: std::os::fd::RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_DUPFD_CLOEXEC only reads the number (one that is not open
    // fails with EBADF): no `BorrowedFd` is made for a number that may name
    // nothing, which `BorrowedFd::borrow_raw(-1)` would (a panic).
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    // SAFETY: the kernel just made `copy` for us alone.
    (copy >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(copy) })
}

/// Iterates the application's response and sends every block.
fn send_body(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    iterable: &Bound<'_, PyAny>,
    response: &Py<StartResponse>,
) -> PyResult<()> {
    if let Some((fd, offset, count)) = real_file(py, ctx, iterable) {
        return response
            .try_borrow_mut(py)?
            .send_file(py, &fd, offset, count);
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
        response.try_borrow_mut(py)?.set_known_length(n);
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
        let mut r = response.try_borrow_mut(py)?;
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

/// A response the server makes itself; the connection is closed after it.
fn error_page(status: u16, head: &RequestHead) -> Outcome {
    let mut dates = rwsgi_shared::http::DateCache::default();
    let mut bytes = rwsgi_shared::http::error_response(status, dates.now(), false);
    if head.method == "HEAD" {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            bytes.truncate(end + 4);
        }
    }
    Outcome {
        status,
        body_bytes: 0,
        keep_alive: false,
        unsent: bytes,
        server_refusal: false,
        request_read: false,
        response_headers: Vec::new(),
    }
}

/// Logs an application exception with its traceback.
fn log_error(py: Python<'_>, ctx: &RequestContext<'_>, e: &PyErr, what: &str) {
    crate::python::log_exception(py, ctx.app.bootstrap.bind(py), e, ctx.log, what);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts<'static> {
        Facts {
            app_raised: false,
            timed_out: false,
            on_wire: false,
            client_gone: false,
            refused: None,
            body_failed: None,
        }
    }

    #[test]
    fn an_interrupted_request_gets_a_504_before_its_response_began() {
        let f = Facts {
            app_raised: true,
            timed_out: true,
            ..facts()
        };
        assert_eq!(ending(f), (Ending::ErrorPage(504), Blame::Interrupted));
    }

    #[test]
    fn an_interrupted_response_that_began_is_cut_short() {
        let f = Facts {
            app_raised: true,
            timed_out: true,
            on_wire: true,
            ..facts()
        };
        assert_eq!(ending(f), (Ending::CutShort, Blame::Interrupted));
    }

    #[test]
    fn other_exceptions_are_still_the_applications_500() {
        let f = Facts {
            app_raised: true,
            ..facts()
        };
        assert_eq!(ending(f), (Ending::ErrorPage(500), Blame::Application));
    }

    #[test]
    fn a_request_that_caught_the_interrupt_and_answered_completes() {
        assert_eq!(ending(facts()), (Ending::Complete, Blame::Nobody));
    }

    #[test]
    fn only_a_number_that_can_name_a_descriptor_is_one() {
        assert_eq!(descriptor(0), Some(0));
        assert_eq!(descriptor(7), Some(7));
        assert_eq!(descriptor(i64::from(i32::MAX)), Some(i32::MAX));
        for none in [
            -1,
            -2,
            i64::from(i32::MIN),
            i64::from(i32::MAX) + 1,
            i64::MAX,
        ] {
            assert_eq!(descriptor(none), None, "{none}");
        }
    }

    #[test]
    fn a_number_that_is_not_open_gives_no_copy() {
        // Far above anything a test process opens.
        assert!(dup_descriptor(i32::MAX - 1).is_none());
        assert!(dup_descriptor(-1).is_none());
        let file = tempfile::tempfile().expect("temp file");
        let copy = dup_descriptor(std::os::fd::AsRawFd::as_raw_fd(&file)).expect("a copy");
        assert!(nix::sys::stat::fstat(&copy).is_ok());
    }
}
