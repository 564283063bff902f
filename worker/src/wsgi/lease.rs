//! A request's revocable hold on its connection.
//!
//! Every object handed to Python for a request (`start_response` and its
//! `write`, `wsgi.input`) reaches the socket only through the request's
//! `Lease`. The request thread revokes it when the request ends, before
//! the connection is reused or closed; from then on every use fails and
//! touches no socket. An application that keeps `write` or `wsgi.input`
//! (in a global, a background thread, a later request) can therefore never
//! write into, or read from, another client's connection that happens to
//! get the same descriptor number.
//!
//! Socket I/O runs under the read lock, revocation takes the write lock: a
//! revocation waits for an I/O call already under way (bounded by its
//! socket timeout), so the descriptor stays this request's for as long as
//! any call uses it. Neither side holds the lock while it waits for the GIL.
//!
//! An HTTPS connection's TLS session moves into the lease for the request
//! (the connection cannot use it meanwhile) and back into the connection
//! when the lease is revoked; I/O calls take turns on it (a mutex).

use crate::transport::{Io, Session, Transport};
use pyo3::Python;
use rwsgi_http::HttpError;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::{Mutex, OnceLock, RwLock};

pub struct Lease {
    fd: RawFd,
    open: RwLock<bool>,
    /// HTTPS: the connection's session, until `revoke` gives it back.
    tls: Option<Mutex<Option<Session>>>,
    /// The request body was refused (malformed or too large): the response
    /// must be that refusal, whatever the application does with the error.
    refused: OnceLock<HttpError>,
}

/// What a use of a revoked lease gets.
pub fn ended() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the request this object belongs to has ended",
    )
}

impl Lease {
    /// Takes the connection for a request; [`Lease::revoke`] gives it back.
    pub fn new(transport: &mut Transport) -> Lease {
        let (fd, session) = transport.lend();
        Lease {
            fd,
            open: RwLock::new(true),
            tls: session.map(|s| Mutex::new(Some(s))),
            refused: OnceLock::new(),
        }
    }

    /// Runs `f` on the socket if the request is still running. Call
    /// without the GIL: `f` may block for up to its socket timeout.
    pub fn io<R>(&self, f: impl FnOnce(&mut Io<'_>) -> io::Result<R>) -> io::Result<R> {
        let open = self.open.read().unwrap_or_else(|p| p.into_inner());
        if !*open {
            return Err(ended());
        }
        // SAFETY: the request thread owns the connection (and so keeps the
        // descriptor open) until it has revoked the lease, which waits for
        // this read guard to be dropped.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        match &self.tls {
            None => f(&mut Io::new(fd, None)),
            Some(session) => {
                let mut session = session.lock().unwrap_or_else(|p| p.into_inner());
                match session.as_deref_mut() {
                    Some(s) => f(&mut Io::new(fd, Some(s))),
                    None => Err(ended()),
                }
            }
        }
    }

    pub fn is_open(&self) -> bool {
        *self.open.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the request's hold on the connection, and gives `transport`
    /// (the connection's) its TLS session back. Called by the request
    /// thread (holding the GIL) before it gives the connection up; waits,
    /// without the GIL, for an I/O call another thread has under way.
    pub fn revoke(&self, py: Python<'_>, transport: &mut Transport) {
        match self.open.try_write() {
            Ok(mut open) => *open = false,
            Err(_) => py.detach(|| {
                *self.open.write().unwrap_or_else(|p| p.into_inner()) = false;
            }),
        }
        // No I/O call runs now, and none can start.
        if let Some(session) = &self.tls {
            transport.restore(session.lock().unwrap_or_else(|p| p.into_inner()).take());
        }
    }

    /// Records that the body was refused; the first refusal wins.
    pub fn refuse(&self, err: HttpError) {
        let _ = self.refused.set(err);
    }

    pub fn refusal(&self) -> Option<&HttpError> {
        self.refused.get()
    }
}
