//! Why a request was refused, and with which status.

/// A request the parser refused. The status is what the client gets; the
/// reason goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct HttpError {
    pub status: u16,
    pub reason: &'static str,
}

impl HttpError {
    pub const fn new(status: u16, reason: &'static str) -> HttpError {
        HttpError { status, reason }
    }
    pub const fn bad(reason: &'static str) -> HttpError {
        HttpError::new(400, reason)
    }
}
