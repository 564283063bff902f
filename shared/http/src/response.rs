//! Pieces every response needs: reason phrases, the `Date` header, and the
//! error responses the server sends itself.

use std::time::SystemTime;

/// Value of the `Server` header.
pub const SERVER_HEADER: &str = concat!("rwsgi/", env!("CARGO_PKG_VERSION"));

/// The standard reason phrase of a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Caches the formatted `Date` value; it changes once a second.
#[derive(Debug, Default)]
pub struct DateCache {
    second: u64,
    value: String,
}

impl DateCache {
    /// The current IMF-fixdate.
    pub fn now(&mut self) -> &str {
        let now = SystemTime::now();
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if second != self.second || self.value.is_empty() {
            self.second = second;
            self.value = httpdate::fmt_http_date(now);
        }
        &self.value
    }
}

/// A complete response the server makes itself (a redirect, a status or
/// documentation page) after which the connection is closed: `extra` is
/// header lines, each ending in CRLF; no body for a HEAD (`with_body`
/// false), its length all the same.
pub fn closing_response(
    status: u16,
    date: &str,
    extra: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nServer: {SERVER_HEADER}\r\nDate: {date}\r\n{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

/// A complete response the server sends on its own (parser rejections, 503,
/// 500 before headers): small plain-text body, `Connection: close` unless
/// `keep_alive`.
pub fn error_response(status: u16, date: &str, keep_alive: bool) -> Vec<u8> {
    let reason = reason_phrase(status);
    let body = format!("{status} {reason}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nServer: {SERVER_HEADER}\r\nDate: {date}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes()
}

#[cfg(test)]
mod closing_tests {
    use super::closing_response;

    #[test]
    fn a_closing_response_frames_its_body_and_leaves_it_out_for_head() {
        let r = closing_response(
            301,
            "D",
            "Location: /x/\r\n",
            "text/plain",
            b"moved\n",
            true,
        );
        let text = String::from_utf8(r).unwrap_or_default();
        assert!(text.starts_with("HTTP/1.1 301 Moved Permanently\r\n"));
        assert!(text.contains("\r\nLocation: /x/\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nmoved\n"));
        let head = closing_response(301, "D", "", "text/plain", b"moved\n", false);
        assert!(head.ends_with(b"Content-Length: 6\r\nConnection: close\r\n\r\n"));
    }
}
