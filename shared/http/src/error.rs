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

impl HttpError {
    /// The reason with the option an operator would change, for the log
    /// and for the exception an application sees: a refusal caused by a
    /// limit names the limit and its value.
    pub fn explain(&self, limits: &rwsgi_shared::config::Limits) -> String {
        let limit = match (self.status, self.reason) {
            (413, _) => Some(("--limit-request-body", limits.request_body, "bytes")),
            (414, _) => Some(("--limit-request-line", limits.request_line as u64, "bytes")),
            (431, r) if r.contains("too many") => Some((
                "--limit-request-fields",
                limits.header_fields as u64,
                "fields",
            )),
            (431, r) if r.contains("header buffer") => {
                Some(("--header-buffer-size", limits.header_buffer as u64, "bytes"))
            }
            (431, r) if r.contains("header field") => Some((
                "--limit-request-field-size",
                limits.header_field_size as u64,
                "bytes",
            )),
            _ => None,
        };
        match limit {
            Some((option, value, unit)) => format!(
                "{} ({option} is {value} {unit}; raise it to accept more)",
                self.reason
            ),
            None => self.reason.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rwsgi_shared::config::Limits;

    #[test]
    fn limits_are_named_with_their_value() {
        let limits = Limits::default();
        let e = HttpError::new(413, "request body larger than the limit");
        assert!(e
            .explain(&limits)
            .contains("--limit-request-body is 10485760 bytes"));
        let e = HttpError::new(431, "too many header fields");
        assert!(e
            .explain(&limits)
            .contains("--limit-request-fields is 100 fields"));
        assert_eq!(HttpError::bad("bare LF").explain(&limits), "bare LF");
    }
}
