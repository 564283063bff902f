//! Calling the application (PEP 3333): its environ, the call, iterating
//! the response it returns into `start_response`'s writer, and the
//! iterable's `close()`. What it raised is collected, not judged here.

use super::response::StartResponse;
use super::{environ, Prepared, Raised, RequestContext};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use rwsgi_http::RequestHead;
use slog::debug;

/// Builds the environ and calls the application with it, then sends what
/// it returns; every exception on the way is in the result, in order.
pub(super) fn call_app(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    head: &RequestHead,
    prepared: &Prepared,
    request_id: &str,
    user: Option<&super::User>,
) -> Raised {
    let mut raised = Raised::new();
    let called = environ::build(
        py,
        ctx,
        head,
        &prepared.path_info,
        &prepared.proxied,
        &prepared.input,
        request_id,
    )
    .and_then(|environ| {
        if let (Some(facts), Some(true)) = (
            &prepared.tls,
            ctx.config.tls.as_ref().map(|t| t.environment),
        ) {
            // mod_ssl's `SSLOptions +StdEnvVars`.
            for (name, value) in facts.variables() {
                environ.set_item(name, value)?;
            }
        }
        if prepared.http2 {
            // The h2 thread wrote it as HTTP/1.1 for the worker's parser.
            environ.set_item(pyo3::intern!(py, "SERVER_PROTOCOL"), "HTTP/2")?;
        }
        if let Some(user) = user {
            environ.set_item(pyo3::intern!(py, "REMOTE_USER"), &user.name)?;
            environ.set_item(pyo3::intern!(py, "AUTH_TYPE"), user.scheme.as_str())?;
        }
        ctx.app
            .callable
            .bind(py)
            .call1((environ, prepared.response.clone_ref(py)))
    });
    match called {
        Ok(iterable) => {
            if let Err(e) = send_body(py, ctx, &iterable, &prepared.response) {
                raised.push((e, "error while sending the response:".to_owned()));
            }
            if let Err(e) = close_iterable(py, &iterable) {
                raised.push((e, "close() of the response iterable raised:".to_owned()));
            }
        }
        Err(e) => raised.push((e, format!("{} {} raised:", head.method, head.target))),
    }

    raised
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

#[cfg(test)]
mod tests {
    use super::*;

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
