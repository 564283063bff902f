//! The strict request-head parser (RFC 9112), httparse underneath.
//!
//! httparse tokenises; the rules on top refuse whatever could let two
//! parsers disagree about where a request ends (request smuggling): bare LF
//! or CR, obs-fold, Content-Length and Transfer-Encoding together, duplicate
//! or malformed lengths, transfer codings other than a final `chunked`.

use super::HttpError;
use crate::config::Limits;

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
}

/// A parsed and validated request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request-target exactly as sent.
    pub target: String,
    /// The path part of the target, still percent-encoded.
    pub path: String,
    /// Everything after the first `?`, raw.
    pub query: String,
    pub version: Version,
    /// Header fields in order, names as sent, values without surrounding whitespace.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: BodyKind,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

impl RequestHead {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Result of feeding the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete head, and how many bytes of the buffer it used.
    Complete(RequestHead, usize),
    /// More bytes are needed.
    Partial,
}

const STACK_HEADERS: usize = 128;

/// Parses the request head at the start of `buf`.
pub fn parse_request_head(buf: &[u8], limits: &Limits) -> Result<Parsed, HttpError> {
    // RFC 9112 2.2: a server may ignore empty lines before the request line.
    let skipped = leading_crlfs(buf);
    let buf = &buf[skipped..];
    check_line_endings(buf, limits)?;
    let result = if limits.header_fields < STACK_HEADERS {
        let mut headers = [httparse::EMPTY_HEADER; STACK_HEADERS];
        parse_with(buf, &mut headers[..limits.header_fields + 1], limits)
    } else {
        let mut headers = vec![httparse::EMPTY_HEADER; limits.header_fields + 1];
        parse_with(buf, &mut headers, limits)
    };
    match result? {
        Parsed::Complete(head, used) => Ok(Parsed::Complete(head, used + skipped)),
        Parsed::Partial => Ok(Parsed::Partial),
    }
}

fn leading_crlfs(buf: &[u8]) -> usize {
    let mut i = 0;
    while buf.len() >= i + 2 && &buf[i..i + 2] == b"\r\n" {
        i += 2;
    }
    i
}

/// Refuses bare CR, bare LF, NUL and over-long lines before httparse sees them,
/// and enforces the request-line and head size limits on partial input too.
fn check_line_endings(buf: &[u8], limits: &Limits) -> Result<(), HttpError> {
    let end = find_head_end(buf).unwrap_or(buf.len());
    let head = &buf[..end];
    let mut line_start = 0;
    let mut first_line = true;
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\n' => {
                if i == 0 || head[i - 1] != b'\r' {
                    return Err(HttpError::bad("bare LF in request head"));
                }
                let len = i - 1 - line_start;
                check_line_length(len, first_line, limits)?;
                first_line = false;
                line_start = i + 1;
            }
            b'\r' => {
                if head.get(i + 1).is_some_and(|&n| n != b'\n') {
                    return Err(HttpError::bad("bare CR in request head"));
                }
            }
            0 => return Err(HttpError::bad("NUL in request head")),
            _ => {}
        }
    }
    // The line still arriving must not already be over its limit.
    let pending = head.len() - line_start;
    check_line_length(pending.saturating_sub(1), first_line, limits)?;
    if find_head_end(buf).is_none() && buf.len() > limits.header_buffer {
        return Err(HttpError::new(431, "request head larger than the header buffer"));
    }
    Ok(())
}

fn check_line_length(len: usize, request_line: bool, limits: &Limits) -> Result<(), HttpError> {
    if request_line && len > limits.request_line {
        return Err(HttpError::new(414, "request line too long"));
    }
    if !request_line && len > limits.header_field_size {
        return Err(HttpError::new(431, "header field too large"));
    }
    Ok(())
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn parse_with<'b>(
    buf: &'b [u8],
    headers: &mut [httparse::Header<'b>],
    limits: &Limits,
) -> Result<Parsed, HttpError> {
    let mut req = httparse::Request::new(headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(e) => return Err(map_httparse_error(e, buf)),
    };
    if used > limits.header_buffer {
        return Err(HttpError::new(431, "request head larger than the header buffer"));
    }
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::new(505, "HTTP version not supported")),
    };
    let (path, query) = split_target(method, target)?;
    let mut head = RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        path,
        query,
        version,
        headers: Vec::with_capacity(req.headers.len()),
        body: BodyKind::Empty,
        keep_alive: version == Version::Http11,
        expect_continue: false,
    };
    let mut framing = Framing::default();
    for h in req.headers.iter() {
        check_field_value(h.value)?;
        framing.see(h.name, h.value, &mut head)?;
        head.headers.push((h.name.to_owned(), trim_ows(h.value).to_vec()));
    }
    framing.finish(&mut head)?;
    if let BodyKind::Length(n) = head.body {
        if n > limits.request_body {
            return Err(HttpError::new(413, "request body larger than the limit"));
        }
    }
    Ok(Parsed::Complete(head, used))
}

fn map_httparse_error(e: httparse::Error, buf: &[u8]) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::new(431, "too many header fields"),
        httparse::Error::Version => {
            // A well-formed but unsupported version gets 505, garbage gets 400.
            let line_end = buf.iter().position(|&b| b == b'\r').unwrap_or(buf.len());
            let line = &buf[..line_end];
            let v = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
            if v.len() == 8 && v.starts_with(b"HTTP/") && v[5].is_ascii_digit() && v[6] == b'.' && v[7].is_ascii_digit() {
                HttpError::new(505, "HTTP version not supported")
            } else {
                HttpError::bad("invalid HTTP version")
            }
        }
        httparse::Error::HeaderName => HttpError::bad("invalid header name"),
        httparse::Error::HeaderValue => HttpError::bad("invalid header value"),
        httparse::Error::Token => HttpError::bad("invalid method"),
        httparse::Error::NewLine => HttpError::bad("invalid line ending"),
        httparse::Error::Status => HttpError::bad("invalid request line"),
    }
}

fn split_target(method: &str, target: &str) -> Result<(String, String), HttpError> {
    if target.is_empty() {
        return Err(HttpError::bad("empty request target"));
    }
    let path_and_query = if target.starts_with('/') {
        target
    } else if target == "*" {
        if method != "OPTIONS" {
            return Err(HttpError::bad("asterisk target outside OPTIONS"));
        }
        "*"
    } else if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        // absolute-form: keep the path, the authority is the Host.
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => match rest.find('?') {
                Some(i) => &rest[i..],
                None => "/",
            },
        }
    } else if method == "CONNECT" {
        return Err(HttpError::new(501, "CONNECT is not supported"));
    } else {
        return Err(HttpError::bad("invalid request target"));
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path_and_query, ""),
    };
    let path = if path.is_empty() { "/" } else { path };
    // Fragments are never sent by conforming clients; refuse rather than guess.
    if path_and_query.contains('#') {
        return Err(HttpError::bad("fragment in request target"));
    }
    Ok((path.to_owned(), query.to_owned()))
}

fn check_field_value(value: &[u8]) -> Result<(), HttpError> {
    // httparse accepts obs-text; control characters other than HTAB are refused.
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HttpError::bad("control character in header value"));
    }
    Ok(())
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(v.len());
    let end = v.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |e| e + 1);
    &v[start..end]
}

/// Collects the headers that decide message framing and connection handling.
#[derive(Default)]
struct Framing {
    content_length: Option<u64>,
    chunked: bool,
    transfer_encoding_seen: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    hosts: usize,
}

impl Framing {
    fn see(&mut self, name: &str, raw: &[u8], head: &mut RequestHead) -> Result<(), HttpError> {
        let value = trim_ows(raw);
        if name.eq_ignore_ascii_case("content-length") {
            if self.content_length.is_some() {
                return Err(HttpError::bad("duplicate Content-Length"));
            }
            self.content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            self.see_transfer_encoding(value)?;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim_ows(token);
                if token.eq_ignore_ascii_case(b"close") {
                    self.connection_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.connection_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = head.version == Version::Http11;
            } else {
                return Err(HttpError::new(417, "unsupported expectation"));
            }
        } else if name.eq_ignore_ascii_case("host") {
            self.hosts += 1;
        }
        Ok(())
    }

    fn see_transfer_encoding(&mut self, value: &[u8]) -> Result<(), HttpError> {
        for coding in value.split(|&b| b == b',') {
            let coding = trim_ows(coding);
            if coding.is_empty() {
                continue;
            }
            if self.chunked {
                // Anything after chunked (or chunked twice) leaves the length unknowable.
                return Err(HttpError::bad("transfer coding after chunked"));
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked = true;
            } else if is_token(coding) {
                return Err(HttpError::new(501, "unsupported transfer coding"));
            } else {
                return Err(HttpError::bad("invalid transfer coding"));
            }
        }
        self.transfer_encoding_seen = true;
        Ok(())
    }

    fn finish(self, head: &mut RequestHead) -> Result<(), HttpError> {
        if self.transfer_encoding_seen && self.content_length.is_some() {
            return Err(HttpError::bad("both Content-Length and Transfer-Encoding"));
        }
        if self.transfer_encoding_seen && !self.chunked {
            return Err(HttpError::new(501, "unsupported transfer coding"));
        }
        if self.transfer_encoding_seen && head.version == Version::Http10 {
            return Err(HttpError::bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if self.hosts > 1 {
            return Err(HttpError::bad("more than one Host header"));
        }
        if self.hosts == 0 && head.version == Version::Http11 {
            return Err(HttpError::bad("HTTP/1.1 request without Host"));
        }
        head.body = if self.chunked {
            BodyKind::Chunked
        } else {
            match self.content_length {
                Some(0) | None => BodyKind::Empty,
                Some(n) => BodyKind::Length(n),
            }
        };
        head.keep_alive = match head.version {
            Version::Http11 => !self.connection_close,
            Version::Http10 => self.connection_keep_alive && !self.connection_close,
        };
        Ok(())
    }
}

fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::bad("invalid Content-Length"));
    }
    value
        .iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or(HttpError::bad("invalid Content-Length"))
}

pub(super) fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter().all(|&b| {
            b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Parsed, HttpError> {
        parse_request_head(raw, &Limits::default())
    }

    fn complete(raw: &[u8]) -> RequestHead {
        match parse(raw) {
            Ok(Parsed::Complete(head, used)) => {
                assert_eq!(used, raw.len());
                head
            }
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    fn status(raw: &[u8]) -> u16 {
        match parse(raw) {
            Err(e) => e.status,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn a_simple_get() {
        let head = complete(b"GET /a%20b?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/a%20b");
        assert_eq!(head.query, "x=1&y");
        assert!(head.keep_alive);
        assert_eq!(head.body, BodyKind::Empty);
    }

    #[test]
    fn partial_until_the_blank_line() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: h\r\n").ok(), Some(Parsed::Partial));
    }

    #[test]
    fn framing_rules() {
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 501);
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400);
        let head = complete(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(head.body, BodyKind::Chunked);
    }

    #[test]
    fn line_ending_rules() {
        assert_eq!(status(b"GET / HTTP/1.1\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400);
    }

    #[test]
    fn limits_and_versions() {
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(5000));
        assert_eq!(status(long.as_bytes()), 414);
        assert_eq!(status(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        let head = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!head.keep_alive);
        let head = complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(head.keep_alive);
    }
}
