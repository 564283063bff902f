//! The strict request-head parser (RFC 9112), httparse underneath.
//!
//! The request line is read here (it is short, and the rules for methods,
//! targets and versions are ours); httparse tokenises the header fields. The
//! rules on top refuse whatever could let two parsers disagree about where a
//! request ends (request smuggling): bare LF or CR, obs-fold, Content-Length
//! and Transfer-Encoding together, duplicate or malformed lengths, transfer
//! codings other than a final `chunked`. They also refuse whatever could let
//! two parsers disagree about what a request is for: an HTTP/1.1 request
//! without Host, more than one Host, or a Host that is not `uri-host [":"
//! port]` (RFC 9112 3.2, RFC 3986 3.2.2 and 3.2.3; userinfo included); an
//! absolute-form target whose authority is not `host[:port]` (RFC 9110 4.2.4
//! forbids userinfo in http URIs); an empty host in either (RFC 9110 4.2.1:
//! a recipient must reject an http URI with an empty host, so an empty Host is
//! refused although 9112's grammar allows one); a fragment in the target (not
//! part of a request-target, RFC 9112 3.2); and a raw byte outside ASCII in
//! the target (RFC 3986 2: a URI is ASCII, anything else percent-encoded).
//! The Host header is checked even when an absolute-form target's authority
//! overrides it ([`RequestHead::effective_host`], RFC 9112 3.2.2).
//!
//! A valid head costs one pass over its bytes: httparse hands back slices
//! into the buffer, and where each field line starts tells where the previous
//! one ended, so line lengths and CRLFs are checked from the offsets. Only
//! when something is wrong, or a partial head nears a limit, is the field
//! section scanned again, to report the first problem in the order the bytes
//! arrive: a head gets the same verdict however it is split across reads.
//!
//! Deliberately lenient, and nothing else:
//! - empty lines before the request line are skipped (RFC 9112 2.2 says a
//!   server should ignore at least one);
//! - HTTP/1.2 to 1.9 are served as HTTP/1.1 (RFC 9110 2.5: a later minor
//!   version is understood as the highest one the recipient implements);
//! - `gzip`, `deflate`, `compress`, `x-gzip`, `x-compress` or `identity`
//!   before a final `chunked` (RFC 9112 6.1 allows codings before chunked,
//!   7.2 names the `x-` aliases; `identity`, dropped by RFC 7230, means no
//!   coding): the body reaches the application still so encoded, and the
//!   connection closes after the request, as gunicorn does;
//! - in the path and query, the visible ASCII characters RFC 3986 leaves out
//!   of a URI (`"` `<` `>` `\` `^` `` ` `` `{` `|` `}` `[` `]`) and a `%` not
//!   followed by two hex digits are passed on as sent: RFC 9112 3 asks for a
//!   400 with SHOULD, clients send them, and gunicorn accepts them;
//! - an empty port after the colon in Host or an authority (`h:`), which
//!   RFC 3986 3.2.3's grammar allows (it means the default port).
//!
//! Stricter than the grammar: methods with lowercase letters (case-sensitive
//! tokens that are typos or probes), and more than one Content-Type.

use super::HttpError;
use rwsgi_shared::config::Limits;

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
    /// The request-target exactly as sent (visible ASCII, no fragment).
    pub target: String,
    /// The path part of the target, still percent-encoded; `*` for the
    /// asterisk form, the path of an absolute-form target.
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

    /// The authority (`host[:port]`) of an absolute-form target
    /// (`http://host:port/...`), which RFC 9112 3.2.2 says an origin server
    /// uses instead of `Host`.
    pub fn target_authority(&self) -> Option<&str> {
        let rest = strip_http_scheme(&self.target)?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        Some(&rest[..end])
    }

    /// The host (and port) the request is for: an absolute-form target's
    /// authority, which wins over Host (RFC 9112 3.2.2), else the Host
    /// header; `None` for an HTTP/1.0 request without Host.
    pub fn effective_host(&self) -> Option<&[u8]> {
        self.target_authority()
            .map(str::as_bytes)
            .or_else(|| self.header("host"))
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

/// Header slots on the stack: enough for a browser behind a proxy or two.
/// Initialising them is a visible part of the cost of a small request, so a
/// head with more fields is parsed again with `header_fields` slots on the heap.
const STACK_HEADERS: usize = 48;

/// Parses the request head at the start of `buf`.
pub fn parse_request_head(buf: &[u8], limits: &Limits) -> Result<Parsed, HttpError> {
    // A head must fit in the header buffer: nothing past it is looked at, so
    // a problem inside it is reported before the buffer overflows, in the
    // order the bytes arrive.
    let view = &buf[..buf.len().min(limits.header_buffer)];
    let overflow = buf.len() > limits.header_buffer;
    // RFC 9112 2.2: a server should ignore empty lines before the request line.
    let skipped = leading_crlfs(view);
    let rest = &view[skipped..];
    let Some(line) = request_line(rest, limits)? else {
        return if overflow {
            Err(HEAD_TOO_LARGE)
        } else {
            Ok(Parsed::Partial)
        };
    };
    let fields = FieldSection {
        bytes: &rest[line.len..],
        head_start: skipped + line.len,
        overflow,
    };
    parse_fields(line, fields, limits)
}

const HEAD_TOO_LARGE: HttpError = HttpError::new(431, "request head larger than the header buffer");
const FIELD_TOO_LARGE: HttpError = HttpError::new(431, "header field too large");

fn leading_crlfs(buf: &[u8]) -> usize {
    let mut i = 0;
    while buf.len() >= i + 2 && buf[i] == b'\r' && buf[i + 1] == b'\n' {
        i += 2;
    }
    i
}

/// The request line: `method SP request-target SP HTTP-version CRLF`.
#[derive(Debug, Clone, Copy)]
struct RequestLine<'b> {
    method: &'b str,
    target: &'b str,
    version: Version,
    /// Bytes used, CRLF included.
    len: usize,
}

/// Reads the request line, or `None` if it is not complete yet.
fn request_line<'b>(buf: &'b [u8], limits: &Limits) -> Result<Option<RequestLine<'b>>, HttpError> {
    // Only look as far as a line within the limit can reach (its CRLF included).
    let window = &buf[..buf.len().min(limits.request_line + 2)];
    let incomplete = || {
        if window.len() == limits.request_line + 2 {
            Err(HttpError::new(414, "request line too long"))
        } else {
            Ok(None)
        }
    };
    match window {
        // The first half of an empty line before the request line.
        b"\r" => return Ok(None),
        [b'\r', ..] => return Err(HttpError::bad("bare CR before the request line")),
        _ => {}
    }

    let method_len = window
        .iter()
        .position(|&b| !is_method_byte(b))
        .unwrap_or(window.len());
    if method_len == window.len() {
        return incomplete();
    }
    if window[method_len] != b' ' {
        return Err(method_error(window[method_len]));
    }
    if method_len == 0 {
        return Err(HttpError::bad("empty method"));
    }

    let target_start = method_len + 1;
    let target_len = window[target_start..]
        .iter()
        .position(|&b| !is_target_byte(b))
        .unwrap_or(window.len() - target_start);
    let target_end = target_start + target_len;
    if target_end == window.len() {
        return incomplete();
    }
    match window[target_end] {
        b' ' if target_len == 0 => return Err(HttpError::bad("empty request target")),
        b' ' => {}
        b'\r' | b'\n' => return Err(HttpError::bad("request line without an HTTP version")),
        b'#' => return Err(HttpError::bad("fragment in request target")),
        0x80..=0xff => return Err(HttpError::bad("non-ASCII byte in request target")),
        _ => return Err(HttpError::bad("invalid character in request target")),
    }

    let version_start = target_end + 1;
    let Some(cr) = window[version_start..]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
    else {
        return incomplete();
    };
    let version_end = version_start + cr;
    if window[version_end] == b'\n' {
        return Err(HttpError::bad("bare LF in request line"));
    }
    match window.get(version_end + 1) {
        None => return incomplete(),
        Some(b'\n') => {}
        Some(_) => return Err(HttpError::bad("bare CR in request line")),
    }
    let version = parse_version(&window[version_start..version_end])?;
    let method =
        std::str::from_utf8(&window[..method_len]).map_err(|_| HttpError::bad("invalid method"))?;
    // Visible ASCII only, so always UTF-8.
    let target = std::str::from_utf8(&window[target_start..target_end])
        .map_err(|_| HttpError::bad("non-ASCII byte in request target"))?;
    Ok(Some(RequestLine {
        method,
        target,
        version,
        len: version_end + 2,
    }))
}

fn method_error(b: u8) -> HttpError {
    if b == b'\n' {
        HttpError::bad("bare LF in request line")
    } else if b == b'\r' {
        HttpError::bad("request line ends after the method")
    } else if b.is_ascii_lowercase() {
        // Methods are case-sensitive; lowercase ones are typos or probes.
        HttpError::bad("method is not uppercase")
    } else {
        HttpError::bad("invalid character in method")
    }
}

/// `HTTP/1.0` and `HTTP/1.1`; a later 1.x is served as 1.1 (RFC 9110 2.5),
/// another major version is 505, anything else 400.
fn parse_version(v: &[u8]) -> Result<Version, HttpError> {
    match v {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major == b'1' {
                Ok(Version::Http11)
            } else {
                Err(HttpError::new(505, "HTTP version not supported"))
            }
        }
        _ => Err(HttpError::bad("invalid HTTP version")),
    }
}

/// The bytes after the request line (within the header buffer).
#[derive(Debug, Clone, Copy)]
struct FieldSection<'b> {
    bytes: &'b [u8],
    /// Where they start in the buffer.
    head_start: usize,
    /// More bytes arrived than the header buffer holds.
    overflow: bool,
}

impl FieldSection<'_> {
    /// The first problem in the order the bytes arrive (see [`first_field_error`]).
    fn first_error(&self, limits: &Limits) -> Option<HttpError> {
        first_field_error(self.bytes, self.overflow, limits)
    }
}

fn parse_fields(
    line: RequestLine<'_>,
    fields: FieldSection<'_>,
    limits: &Limits,
) -> Result<Parsed, HttpError> {
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap = Vec::new();
    let mut tokens = httparse::parse_headers(
        fields.bytes,
        &mut stack[..limits.header_fields.min(STACK_HEADERS)],
    );
    if tokens == Err(httparse::Error::TooManyHeaders) && limits.header_fields > STACK_HEADERS {
        heap.resize(limits.header_fields, httparse::EMPTY_HEADER);
        tokens = httparse::parse_headers(fields.bytes, &mut heap);
    }
    let (fields_len, headers) = match tokens {
        Ok(httparse::Status::Complete(done)) => done,
        Ok(httparse::Status::Partial) => {
            // Refuse what can no longer become valid: a line or head past its limit.
            if fields.overflow || fields.bytes.len() + 2 > limits.header_field_size {
                if let Some(e) = fields.first_error(limits) {
                    return Err(e);
                }
            }
            return Ok(Parsed::Partial);
        }
        Err(e) => {
            let fallback = match e {
                httparse::Error::TooManyHeaders => HttpError::new(431, "too many header fields"),
                _ => HttpError::bad("invalid header field"),
            };
            return Err(fields.first_error(limits).unwrap_or(fallback));
        }
    };
    if let Err(e) = check_field_lines(fields.bytes, fields_len, headers, limits) {
        return Err(fields.first_error(limits).unwrap_or(e));
    }
    let used = fields.head_start + fields_len;

    let (path, query) = split_target(line.method, line.target)?;
    let mut head = RequestHead {
        method: line.method.to_owned(),
        target: line.target.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        version: line.version,
        headers: Vec::with_capacity(headers.len()),
        body: BodyKind::Empty,
        keep_alive: false,
        expect_continue: false,
    };
    let mut framing = Framing::default();
    for h in headers {
        // httparse refused control characters and trimmed the value already.
        framing.see(h.name, h.value, line.version)?;
        head.headers.push((h.name.to_owned(), h.value.to_vec()));
    }
    framing.finish(&mut head)?;
    if let BodyKind::Length(n) = head.body {
        if n > limits.request_body {
            return Err(HttpError::new(413, "request body larger than the limit"));
        }
    }
    Ok(Parsed::Complete(head, used))
}

/// Checks every field line's CRLF and length from where the lines start:
/// httparse accepts a bare LF as a line end, RFC 9112 2.2 does not. This is
/// the fast path of a valid head; any problem is then located precisely by
/// [`first_field_error`].
fn check_field_lines(
    fields: &[u8],
    fields_len: usize,
    headers: &[httparse::Header<'_>],
    limits: &Limits,
) -> Result<(), HttpError> {
    let ends_in_crlf =
        |end: usize| end >= 2 && fields[end - 2] == b'\r' && fields[end - 1] == b'\n';
    if !ends_in_crlf(fields_len) {
        return Err(HttpError::bad("bare LF in request head"));
    }
    let base = fields.as_ptr() as usize;
    // Each line ends where the next begins; the last one where the empty line begins.
    let mut line_start = None;
    for end in headers
        .iter()
        .map(|h| h.name.as_ptr() as usize - base)
        .chain([fields_len - 2])
    {
        if let Some(start) = line_start {
            // CRLF included, as gunicorn counts it.
            if end - start > limits.header_field_size {
                return Err(FIELD_TOO_LARGE);
            }
            if !ends_in_crlf(end) {
                return Err(HttpError::bad("bare LF in request head"));
            }
        }
        line_start = Some(end);
    }
    Ok(())
}

/// The first problem in a field section, in the order its bytes arrive, or
/// `None` while the bytes so far can still begin a valid head.
///
/// Runs only when something is wrong or a limit is near, never for a valid
/// head. Because it reports the earliest problem and decides nothing a later
/// byte could change, a head is refused with the same reason however its
/// bytes are split across reads.
fn first_field_error(fields: &[u8], overflow: bool, limits: &Limits) -> Option<HttpError> {
    let mut count = 0;
    let mut lines = fields.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        match field_line(line, lines.peek().is_some(), limits) {
            Err(e) => return Some(e),
            Ok(Line::Field) => {
                count += 1;
                if count > limits.header_fields {
                    return Some(HttpError::new(431, "too many header fields"));
                }
            }
            Ok(Line::Empty) => return None,
            Ok(Line::Pending) => break,
        }
    }
    overflow.then_some(HEAD_TOO_LARGE)
}

/// What one line of a field section turned out to be.
enum Line {
    /// A complete, valid field line.
    Field,
    /// The empty line that ends the head.
    Empty,
    /// Valid so far, not complete.
    Pending,
}

/// Checks one field line (without its LF; `terminated` if the LF came).
fn field_line(line: &[u8], terminated: bool, limits: &Limits) -> Result<Line, HttpError> {
    match line {
        [] if terminated => return Err(HttpError::bad("bare LF in request head")),
        [] => return Ok(Line::Pending),
        [b'\r'] if terminated => return Ok(Line::Empty),
        [b'\r'] => return Ok(Line::Pending),
        [b'\r', ..] => return Err(HttpError::bad("bare CR in request head")),
        [b' ' | b'\t', ..] => return Err(HttpError::bad("obs-fold (folded header line)")),
        _ => {}
    }
    // Bytes past the length limit are never looked at: the limit comes first.
    let max_content = limits.header_field_size.saturating_sub(2);
    let mut in_value = false;
    for (i, &b) in line.iter().enumerate().take(max_content) {
        let problem = if !in_value {
            match b {
                b':' if i == 0 => "empty header name",
                b':' => {
                    in_value = true;
                    continue;
                }
                _ if is_tchar(b) => continue,
                b' ' | b'\t' => "whitespace in or after a header name",
                0 => "NUL in header field",
                b'\r' => "header line without a colon",
                _ => "invalid character in header name",
            }
        } else {
            match b {
                b'\t' | 0x20..=0x7e | 0x80..=0xff => continue,
                // The line end, or undecided until the next byte comes.
                b'\r' if i + 1 == line.len() => continue,
                b'\r' => "bare CR in header field",
                0 => "NUL in header field",
                _ => "control character in header value",
            }
        };
        return Err(HttpError::bad(problem));
    }
    // A final CR may be the line end, but only after the colon: in a name it
    // is one more byte of a line that cannot end there.
    let content = match line.strip_suffix(b"\r") {
        Some(content) if in_value => content,
        _ => line,
    };
    if content.len() > max_content {
        return Err(FIELD_TOO_LARGE);
    }
    match (terminated, content.len() < line.len()) {
        (false, _) => Ok(Line::Pending),
        (true, true) => Ok(Line::Field),
        (true, false) => Err(HttpError::bad("bare LF in request head")),
    }
}

/// Splits a target into (path, query), refusing forms the method does not allow.
fn split_target<'t>(method: &str, target: &'t str) -> Result<(&'t str, &'t str), HttpError> {
    let path_and_query = if method == "CONNECT" {
        // authority-form: a tunnel, which a WSGI application cannot serve.
        return Err(HttpError::new(501, "CONNECT is not supported"));
    } else if target.starts_with('/') {
        target
    } else if target == "*" {
        if method != "OPTIONS" {
            return Err(HttpError::bad("asterisk-form target outside OPTIONS"));
        }
        return Ok(("*", ""));
    } else if let Some(rest) = strip_http_scheme(target) {
        // absolute-form: the authority stands in for Host, the rest is the path.
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        match check_authority(&rest.as_bytes()[..end]) {
            Ok(()) => {}
            Err(AuthorityProblem::Userinfo) => {
                return Err(HttpError::bad("userinfo in absolute-form target"))
            }
            Err(AuthorityProblem::EmptyHost | AuthorityProblem::Invalid) => {
                return Err(HttpError::bad("invalid authority in absolute-form target"))
            }
        }
        match &rest[end..] {
            "" => "/",
            p if p.starts_with('/') => p,
            p => return Ok(("/", split_query(p).1)),
        }
    } else {
        return Err(HttpError::bad("invalid request target"));
    };
    Ok(split_query(path_and_query))
}

/// `path?query` into (path, query).
fn split_query(s: &str) -> (&str, &str) {
    s.split_once('?').unwrap_or((s, ""))
}

fn strip_http_scheme(target: &str) -> Option<&str> {
    // The usual origin-form target (`/path`) is answered at its first byte.
    if !target.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let (scheme, rest) = target.split_once("://")?;
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")).then_some(rest)
}

/// Why a Host value or an absolute-form authority is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthorityProblem {
    /// No host before the port, or nothing at all.
    EmptyHost,
    /// `user@host`: RFC 9110 4.2.4 makes an http URI with userinfo invalid.
    Userinfo,
    /// Anything else that is not `uri-host [":" port]`.
    Invalid,
}

/// Checks `uri-host [":" port]` (RFC 9112 3.2, RFC 3986 3.2.2 and 3.2.3):
/// a reg-name (unreserved, sub-delims and `%XX`; an IPv4 address is one too),
/// or an IPv6 or IPvFuture literal in brackets, then optionally a colon and
/// digits. The host must not be empty (RFC 9110 4.2.1).
fn check_authority(authority: &[u8]) -> Result<(), AuthorityProblem> {
    if authority.contains(&b'@') {
        return Err(AuthorityProblem::Userinfo);
    }
    // An IP literal's colons are inside its brackets; the port follows them.
    let host_end = if authority.first() == Some(&b'[') {
        authority
            .iter()
            .position(|&b| b == b']')
            .map_or(authority.len(), |close| close + 1)
    } else {
        authority
            .iter()
            .position(|&b| b == b':')
            .unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    let port = match rest {
        [] => rest,
        [b':', port @ ..] => port,
        _ => return Err(AuthorityProblem::Invalid),
    };
    let host_ok = match host {
        [] => return Err(AuthorityProblem::EmptyHost),
        [b'[', literal @ .., b']'] => is_ip_literal(literal),
        _ => is_reg_name(host),
    };
    if host_ok && port.iter().all(u8::is_ascii_digit) {
        Ok(())
    } else {
        Err(AuthorityProblem::Invalid)
    }
}

/// A Host value as the parser accepts one (`uri-host [":" port]`): what a
/// forwarded host must be too.
pub(crate) fn is_valid_host(value: &[u8]) -> bool {
    check_authority(value).is_ok()
}

/// RFC 3986 pchar, but for `%XX`, which the caller checks: a path
/// segment's bytes.
pub(crate) const fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@')
}

/// RFC 3986 reg-name: `*( unreserved / pct-encoded / sub-delims )`.
fn is_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'%' => {
                let hex = host.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
            }
            b if is_unreserved(b) || is_sub_delim(b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// The inside of an RFC 3986 IP-literal: an IPv6 address (without a zone
/// id) or `v` HEXDIG+ `.` (unreserved / sub-delims / `:`)+.
fn is_ip_literal(literal: &[u8]) -> bool {
    match literal {
        [b'v' | b'V', rest @ ..] => {
            let Some(dot) = rest.iter().position(|&b| b == b'.') else {
                return false;
            };
            let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
            !version.is_empty()
                && version.iter().all(u8::is_ascii_hexdigit)
                && !tail.is_empty()
                && tail
                    .iter()
                    .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':')
        }
        _ => std::str::from_utf8(literal).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok()),
    }
}

/// Collects the headers that decide message framing and connection handling.
#[derive(Default)]
struct Framing {
    content_length: Option<u64>,
    transfer_encoding: bool,
    /// `chunked` was the last coding seen so far.
    chunked: bool,
    /// A coding other than `chunked` (`gzip, chunked`): the body reaches the
    /// application still encoded, and the connection is closed afterwards.
    other_coding: bool,
    unknown_coding: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    expect_continue: bool,
    hosts: usize,
    content_types: usize,
}

impl Framing {
    fn see(&mut self, name: &str, value: &[u8], version: Version) -> Result<(), HttpError> {
        // Dispatch on the length first: most fields are none of these.
        match name.len() {
            4 if name.eq_ignore_ascii_case("host") => {
                self.hosts += 1;
                if self.hosts > 1 {
                    return Err(HttpError::bad("more than one Host header"));
                }
                // The target URI would have no host (RFC 9110 4.2.1).
                if value.is_empty() {
                    return Err(HttpError::bad("empty Host header"));
                }
                if check_authority(value).is_err() {
                    return Err(HttpError::bad("invalid Host header"));
                }
            }
            // RFC 9110 10.1.1: an HTTP/1.0 server ignores Expect.
            6 if name.eq_ignore_ascii_case("expect") && version == Version::Http11 => {
                if !value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(HttpError::new(417, "unsupported expectation"));
                }
                self.expect_continue = true;
            }
            10 if name.eq_ignore_ascii_case("connection") => {
                for token in value.split(|&b| b == b',') {
                    let token = trim_ows(token);
                    if token.eq_ignore_ascii_case(b"close") {
                        self.connection_close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.connection_keep_alive = true;
                    }
                }
            }
            12 if name.eq_ignore_ascii_case("content-type") => {
                self.content_types += 1;
                if self.content_types > 1 {
                    return Err(HttpError::bad("more than one Content-Type header"));
                }
            }
            14 if name.eq_ignore_ascii_case("content-length") => {
                if self.content_length.is_some() {
                    return Err(HttpError::bad("duplicate Content-Length"));
                }
                self.content_length = Some(parse_content_length(value)?);
            }
            17 if name.eq_ignore_ascii_case("transfer-encoding") => {
                self.see_transfer_encoding(value)?
            }
            _ => {}
        }
        Ok(())
    }

    fn see_transfer_encoding(&mut self, value: &[u8]) -> Result<(), HttpError> {
        self.transfer_encoding = true;
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
            } else if is_known_coding(coding) {
                self.other_coding = true;
            } else if is_token(coding) {
                self.unknown_coding = true;
            } else {
                return Err(HttpError::bad("invalid transfer coding"));
            }
        }
        Ok(())
    }

    fn finish(self, head: &mut RequestHead) -> Result<(), HttpError> {
        if self.transfer_encoding {
            if self.content_length.is_some() {
                return Err(HttpError::bad("both Content-Length and Transfer-Encoding"));
            }
            if head.version == Version::Http10 {
                // RFC 9112 6.1: the framing of such a message is faulty.
                return Err(HttpError::bad("Transfer-Encoding in an HTTP/1.0 request"));
            }
            if !self.chunked {
                // RFC 9112 6.3: the body length cannot be determined.
                return Err(HttpError::bad("Transfer-Encoding without a final chunked"));
            }
            if self.unknown_coding {
                return Err(HttpError::new(501, "unsupported transfer coding"));
            }
        }
        // RFC 9112 3.2; HTTP/1.0 predates Host and may go without.
        if self.hosts == 0 && head.version == Version::Http11 {
            return Err(HttpError::bad("missing Host header"));
        }
        head.body = if self.chunked {
            BodyKind::Chunked
        } else {
            match self.content_length {
                Some(0) | None => BodyKind::Empty,
                Some(n) => BodyKind::Length(n),
            }
        };
        head.keep_alive = !self.connection_close
            && !self.other_coding
            && (head.version == Version::Http11 || self.connection_keep_alive);
        head.expect_continue = self.expect_continue;
        Ok(())
    }
}

/// Registered transfer codings accepted before a final `chunked`, and `identity`.
fn is_known_coding(coding: &[u8]) -> bool {
    [
        "gzip",
        "deflate",
        "compress",
        "x-gzip",
        "x-compress",
        "identity",
    ]
    .iter()
    .any(|k| coding.eq_ignore_ascii_case(k.as_bytes()))
}

/// `1*DIGIT`, nothing else: no sign, no list, no whitespace inside.
fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::bad("invalid Content-Length"));
    }
    value
        .iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(HttpError::bad("Content-Length out of range"))
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// RFC 9110 tchar.
const fn is_tchar(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\''
        | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// A method is a token; lowercase letters are refused as well.
const fn is_method_byte(b: u8) -> bool {
    is_tchar(b) && !b.is_ascii_lowercase()
}

/// Visible ASCII but `#` (a fragment is not part of a request-target).
const fn is_target_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && b != b'#'
}

/// RFC 3986 unreserved.
const fn is_unreserved(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 sub-delims.
const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

pub(super) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

#[cfg(test)]
mod tests;
