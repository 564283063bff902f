//! `--access-log-format`: Apache's log directives, parsed once (so a wrong
//! one is a configuration error naming the option) and rendered per
//! request, with Apache's escaping so a hostile value cannot forge a line.

use crate::RequestHead;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

/// Apache's combined format, mod_wsgi-express's default.
pub const COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i""#;
/// Apache's common format.
pub const COMMON: &str = r#"%h %l %u %t "%r" %>s %b"#;

/// One request, as the access log sees it.
pub struct Record<'a> {
    pub client: IpAddr,
    pub head: &'a RequestHead,
    pub status: u16,
    pub bytes: u64,
    pub took: Duration,
    pub queue_wait: Option<Duration>,
    pub request_id: &'a str,
    /// Response headers, for `%{Name}o`.
    pub response_headers: &'a [(String, String)],
    /// The request came over HTTP/2 (the worker read it as HTTP/1.1).
    pub http2: bool,
}

impl Record<'_> {
    /// The protocol as Apache logs it (`%H`, the end of `%r`).
    pub fn protocol(&self) -> &'static str {
        match self.http2 {
            true => "HTTP/2.0",
            false => self.head.version.as_str(),
        }
    }
}

/// A parsed `--access-log-format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// `%h` the client address.
    Client,
    /// `%l`, `%u`: identd and user, always `-`.
    Dash,
    /// `%t` the time, Apache style.
    Time,
    /// `%r` the request line.
    RequestLine,
    /// `%s`, `%>s` the status.
    Status,
    /// `%b` body bytes, `-` for none; `%B` 0 for none.
    Bytes {
        dash: bool,
    },
    /// `%D` microseconds, `%T` seconds, `%{ms}T` milliseconds.
    Took(Unit),
    /// `%L` the request id.
    RequestId,
    /// `%m`, `%U`, `%q`, `%H`.
    Method,
    Path,
    Query,
    Protocol,
    /// `%{Name}i` a request header, `%{Name}o` a response header.
    RequestHeader(String),
    ResponseHeader(String),
    /// `%P` the worker's process id.
    Pid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Micros,
    Millis,
    Seconds,
}

/// The directive letters of Apache's mod_log_config: rwsgi renders those it
/// can and shows the others as `-`; any other letter is an error, as in
/// Apache.
const APACHE_DIRECTIVES: &str = "aABbCDefhHiklLmnopPqrRsStTuUvVXIO";
const APACHE_DIRECTIVES_LIST: &str =
    "a A B b C D e f h H i k l L m n o p P q r R s S t T u U v V X I O";

impl Format {
    /// Parses Apache directives; `common` and `combined` name the usual ones.
    pub fn parse(spec: &str) -> Result<Format, String> {
        Self::parse_lenient(spec).map(|(format, _)| format)
    }

    /// As `parse`, with the directives rwsgi cannot render (`%v`, `%{X}e`,
    /// `%k`…), which are rendered as `-`: a CMD written for Apache keeps
    /// working, and the caller warns once about what is missing.
    pub fn parse_lenient(spec: &str) -> Result<(Format, Vec<String>), String> {
        let mut unsupported = Vec::new();
        let spec = match spec {
            "combined" => COMBINED,
            "common" => COMMON,
            s => s,
        };
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = spec.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            let mut arg = None;
            if chars.peek() == Some(&'{') {
                chars.next();
                let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                arg = Some(name);
            }
            // `%>s` and `%<s` (final or original request): one request here.
            if matches!(chars.peek(), Some('>' | '<')) {
                chars.next();
            }
            let Some(d) = chars.next() else {
                unsupported.push("a % at the end".to_owned());
                text.push('%');
                break;
            };
            let piece = match (d, arg.as_deref()) {
                ('%', None) => {
                    text.push('%');
                    continue;
                }
                ('h' | 'a', None) => Piece::Client,
                ('l' | 'u', None) => Piece::Dash,
                ('t', None) => Piece::Time,
                ('r', None) => Piece::RequestLine,
                ('s', None) => Piece::Status,
                ('b', None) => Piece::Bytes { dash: true },
                ('B', None) => Piece::Bytes { dash: false },
                ('D', None) => Piece::Took(Unit::Micros),
                ('T', None | Some("s")) => Piece::Took(Unit::Seconds),
                ('T', Some("ms")) => Piece::Took(Unit::Millis),
                ('T', Some("us")) => Piece::Took(Unit::Micros),
                ('L', None) => Piece::RequestId,
                ('m', None) => Piece::Method,
                ('U', None) => Piece::Path,
                ('q', None) => Piece::Query,
                ('H', None) => Piece::Protocol,
                ('i', Some(name)) => Piece::RequestHeader(name.to_owned()),
                ('o', Some(name)) => Piece::ResponseHeader(name.to_owned()),
                ('P', None | Some("pid")) => Piece::Pid,
                (d, arg) if !APACHE_DIRECTIVES.contains(d) => {
                    // Apache itself refuses to start on these: a typo.
                    let directive = match arg {
                        Some(a) => format!("%{{{a}}}{d}"),
                        None => format!("%{d}"),
                    };
                    return Err(format!(
                        "{directive} is not an Apache log format directive (Apache's are %{APACHE_DIRECTIVES_LIST})"
                    ));
                }
                (d, arg) => {
                    let directive = match arg {
                        Some(a) => format!("%{{{a}}}{d}"),
                        None => format!("%{d}"),
                    };
                    if !unsupported.contains(&directive) {
                        unsupported.push(directive);
                    }
                    Piece::Dash
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok((Format(pieces), unsupported))
    }

    /// Whether rendering needs the response's headers (`%{Name}o`).
    pub fn needs_response_headers(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Piece::ResponseHeader(_)))
    }

    pub fn render(&self, r: &Record<'_>) -> String {
        let mut out = String::with_capacity(160);
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Client => {
                    let _ = write!(out, "{}", r.client);
                }
                Piece::Dash => out.push('-'),
                Piece::Pid => {
                    let _ = write!(out, "{}", std::process::id());
                }
                Piece::Time => {
                    let _ = write!(out, "[{}]", rwsgi_shared::time::apache_now());
                }
                Piece::RequestLine => {
                    let _ = write!(
                        out,
                        "{} {} {}",
                        r.head.method,
                        escape(r.head.target.as_bytes()),
                        r.protocol()
                    );
                }
                Piece::Status => {
                    let _ = write!(out, "{}", r.status);
                }
                Piece::Bytes { dash } => {
                    if r.bytes == 0 && *dash {
                        out.push('-');
                    } else {
                        let _ = write!(out, "{}", r.bytes);
                    }
                }
                Piece::Took(unit) => {
                    let _ = match unit {
                        Unit::Micros => write!(out, "{}", r.took.as_micros()),
                        Unit::Millis => write!(out, "{}", r.took.as_millis()),
                        Unit::Seconds => write!(out, "{}", r.took.as_secs()),
                    };
                }
                Piece::RequestId => out.push_str(&escape(r.request_id.as_bytes())),
                Piece::Method => out.push_str(&r.head.method),
                Piece::Path => out.push_str(&escape(r.head.path.as_bytes())),
                Piece::Query => {
                    if !r.head.query.is_empty() {
                        out.push('?');
                        out.push_str(&escape(r.head.query.as_bytes()));
                    }
                }
                Piece::Protocol => out.push_str(r.protocol()),
                Piece::RequestHeader(name) => match r.head.header(name) {
                    Some(v) => out.push_str(&escape(v)),
                    None => out.push('-'),
                },
                Piece::ResponseHeader(name) => {
                    match r
                        .response_headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    {
                        Some((_, v)) => out.push_str(&escape(v.as_bytes())),
                        None => out.push('-'),
                    }
                }
            }
        }
        out
    }
}

/// Apache's escaping: `"` and `\` backslashed, control and non-ASCII bytes
/// as `\xHH`, so a hostile header cannot forge or split a log line.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_request_head, Parsed};
    use rwsgi_shared::config::Limits;

    fn head(raw: &[u8]) -> RequestHead {
        match parse_request_head(raw, &Limits::default()) {
            Ok(Parsed::Complete(h, _)) => h,
            other => panic!("{other:?}"),
        }
    }

    fn record<'a>(h: &'a RequestHead, out: &'a [(String, String)]) -> Record<'a> {
        Record {
            client: "10.0.0.1".parse().expect("ip"),
            head: h,
            status: 201,
            bytes: 0,
            took: Duration::from_micros(1_234_567),
            queue_wait: Some(Duration::from_micros(42)),
            request_id: "abc",
            response_headers: out,
            http2: false,
        }
    }

    #[test]
    fn an_http2_request_is_logged_as_apache_logs_it() {
        let h = head(b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n");
        let f = Format::parse("\"%r\" %H").expect("format");
        let r = Record {
            http2: true,
            ..record(&h, &[])
        };
        assert_eq!(f.render(&r), "\"GET /p HTTP/2.0\" HTTP/2.0");
    }

    #[test]
    fn directives_render() {
        let h = head(b"GET /p?q=1 HTTP/1.1\r\nHost: h\r\nX-A: va\r\n\r\n");
        let out = vec![("X-B".to_owned(), "vb".to_owned())];
        let f =
            Format::parse("%h %>s %b %B %D %T %{ms}T %L %m %U%q %H %{X-A}i %{X-B}o %{X-C}i 100%%")
                .expect("format");
        assert_eq!(
            f.render(&record(&h, &out)),
            "10.0.0.1 201 - 0 1234567 1 1234 abc GET /p?q=1 HTTP/1.1 va vb - 100%"
        );
        let (f, unsupported) = Format::parse_lenient("%v %X %{%d/%b}t %k %v %P").expect("lenient");
        assert_eq!(unsupported, ["%v", "%X", "%{%d/%b}t", "%k"]);
        assert_eq!(
            f.render(&record(&h, &out)),
            format!("- - - - - {}", std::process::id())
        );
        // Not Apache's either: refused, as Apache refuses it.
        assert!(Format::parse_lenient("%h %Z").is_err());
        assert!(Format::parse_lenient("%{x}j").is_err());
        assert!(Format::parse("combined").is_ok());
    }

    #[test]
    fn hostile_values_cannot_forge_a_line() {
        let h = head(b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: a\" 200 9 \"\xff\\x\r\n\r\n");
        let f = Format::parse(COMBINED).expect("format");
        let line = f.render(&record(&h, &[]));
        assert!(line.ends_with("\"a\\\" 200 9 \\\"\\xff\\\\x\""), "{line}");
    }
}
