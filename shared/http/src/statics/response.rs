//! The response to a request for a file: method, conditional requests
//! (RFC 9110 13), ranges (RFC 9110 14), headers. Pure functions of the
//! request head and the file's metadata; the worker sends the plan.

use super::range::{self, Ranges};
use crate::{error_response, reason_phrase, RequestHead, Version, SERVER_HEADER};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Value of `Allow` on a 405.
pub const ALLOW: &str = "GET, HEAD";

/// What the response needs to know about the file (or its precompressed sibling).
#[derive(Debug, Clone)]
pub struct FileInfo<'a> {
    pub len: u64,
    pub modified: SystemTime,
    /// Quoted strong entity tag, see [`etag`].
    pub etag: &'a str,
    pub content_type: &'a str,
    /// `Content-Encoding` of a precompressed sibling.
    pub encoding: Option<&'a str>,
    /// Add `Vary: Accept-Encoding` (a precompressed sibling exists).
    pub vary: bool,
}

/// Response options from the configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `Cache-Control: public, max-age=N`.
    pub max_age: Option<u64>,
}

/// A piece of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Bytes(Vec<u8>),
    /// Bytes of the file.
    File {
        offset: u64,
        len: u64,
    },
}

/// A response ready to be written: `head`, then `body` in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub status: u16,
    /// Status line and header fields, blank line included.
    pub head: Vec<u8>,
    /// Empty for HEAD and for statuses without a body.
    pub body: Vec<Segment>,
    /// Whether the connection may serve another request afterwards.
    pub keep_alive: bool,
}

impl Plan {
    /// Body bytes that will be sent (for the access log).
    pub fn body_len(&self) -> u64 {
        self.body
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) => b.len() as u64,
                Segment::File { len, .. } => *len,
            })
            .sum()
    }
}

/// A strong entity tag that changes whenever the file does: inode, size and
/// modification time to the nanosecond.
pub fn etag(len: u64, modified: SystemTime, inode: u64) -> String {
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("\"{inode:x}-{len:x}-{nanos:x}\"")
}

/// `Content-Type` for a file name, with `charset=utf-8` for text.
pub fn content_type(name: &str) -> String {
    content_type_with(name, &HashMap::new())
}

/// As [`content_type`], with `extra` (extension in lower case to type,
/// from `--mime-types`) looked up before the built-in table.
pub fn content_type_with(name: &str, extra: &HashMap<String, String>) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let from_file = base
        .rsplit_once('.')
        .and_then(|(_, ext)| extra.get(&ext.to_ascii_lowercase()));
    let mime = match from_file {
        Some(t) => match t.parse::<mime_guess::Mime>() {
            Ok(m) => m,
            // Not a type the parser takes: sent as the file says.
            Err(_) => return t.clone(),
        },
        None => match mime_guess::from_path(name).first() {
            Some(m) => m,
            None => return "application/octet-stream".to_owned(),
        },
    };
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.essence_str(),
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/manifest+json"
                | "image/svg+xml"
        );
    if textual && mime.get_param("charset").is_none() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_owned()
    }
}

/// The response to `req` for a file. `keep_alive`: the connection may be
/// kept (the request and its body allow it). `boundary` separates the parts
/// of a multipart/byteranges body.
pub fn respond(
    req: &RequestHead,
    file: &FileInfo<'_>,
    opts: &Options,
    date: &str,
    keep_alive: bool,
    boundary: &str,
) -> Plan {
    let head_only = match req.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return not_allowed(req, date, keep_alive),
    };
    if let Some(status) = precondition(req, file) {
        if status == 412 {
            return error(412, req, date, keep_alive, &[]);
        }
        let mut out = status_line(304, date);
        validators(&mut out, file, opts);
        return finish(304, out, Vec::new(), req, keep_alive);
    }
    let ranges = match (head_only, req.header("range")) {
        (false, Some(value)) if if_range_holds(req, file) => range::parse(value, file.len),
        _ => Ranges::Full,
    };
    match ranges {
        Ranges::Full => {
            let mut out = status_line(200, date);
            entity(&mut out, file, opts);
            let _ = write!(out, "Content-Length: {}\r\n", file.len);
            let body = if head_only || file.len == 0 {
                Vec::new()
            } else {
                vec![Segment::File {
                    offset: 0,
                    len: file.len,
                }]
            };
            finish(200, out, body, req, keep_alive)
        }
        Ranges::Unsatisfiable => {
            let content_range = format!("bytes */{}", file.len);
            error(
                416,
                req,
                date,
                keep_alive,
                &[("Content-Range", &content_range)],
            )
        }
        Ranges::Some(ranges) if ranges.len() == 1 => {
            let (first, last) = ranges[0];
            let mut out = status_line(206, date);
            entity(&mut out, file, opts);
            let _ = write!(
                out,
                "Content-Range: bytes {first}-{last}/{}\r\nContent-Length: {}\r\n",
                file.len,
                last - first + 1
            );
            let body = vec![Segment::File {
                offset: first,
                len: last - first + 1,
            }];
            finish(206, out, body, req, keep_alive)
        }
        Ranges::Some(ranges) => {
            let mut body = Vec::with_capacity(ranges.len() * 2 + 1);
            for (first, last) in &ranges {
                let part = format!(
                    "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Range: bytes {first}-{last}/{}\r\n\r\n",
                    file.content_type, file.len
                );
                body.push(Segment::Bytes(part.into_bytes()));
                body.push(Segment::File {
                    offset: *first,
                    len: last - first + 1,
                });
            }
            body.push(Segment::Bytes(
                format!("\r\n--{boundary}--\r\n").into_bytes(),
            ));
            let mut out = status_line(206, date);
            validators(&mut out, file, opts);
            out.push_str("Accept-Ranges: bytes\r\n");
            if let Some(coding) = file.encoding {
                let _ = write!(out, "Content-Encoding: {coding}\r\n");
            }
            let plan_len: u64 = body
                .iter()
                .map(|s| match s {
                    Segment::Bytes(b) => b.len() as u64,
                    Segment::File { len, .. } => *len,
                })
                .sum();
            let _ = write!(
                out,
                "Content-Type: multipart/byteranges; boundary={boundary}\r\nContent-Length: {plan_len}\r\n"
            );
            finish(206, out, body, req, keep_alive)
        }
    }
}

/// 405 with `Allow`, for methods other than GET and HEAD.
pub fn not_allowed(req: &RequestHead, date: &str, keep_alive: bool) -> Plan {
    error(405, req, date, keep_alive, &[("Allow", ALLOW)])
}

/// 301 to `location` (a directory asked for without its trailing slash).
pub fn redirect(req: &RequestHead, location: &str, date: &str, keep_alive: bool) -> Plan {
    error(301, req, date, keep_alive, &[("Location", location)])
}

/// A response from the server's common error path
/// ([`crate::error_response`]) with `extra` header fields; no body
/// for HEAD.
pub fn error(
    status: u16,
    req: &RequestHead,
    date: &str,
    keep_alive: bool,
    extra: &[(&str, &str)],
) -> Plan {
    let mut bytes = error_response(status, date, keep_alive);
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Plan {
            status,
            head: bytes,
            body: Vec::new(),
            keep_alive,
        };
    };
    let body = bytes.split_off(end + 4);
    bytes.truncate(end + 2);
    for (name, value) in extra {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    if req.version == Version::Http10 && keep_alive && !bytes_have_keep_alive(&bytes) {
        bytes.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    Plan {
        status,
        head: bytes,
        body: if req.method == "HEAD" || body.is_empty() {
            Vec::new()
        } else {
            vec![Segment::Bytes(body)]
        },
        keep_alive,
    }
}

fn bytes_have_keep_alive(head: &[u8]) -> bool {
    head.windows(24)
        .any(|w| w.eq_ignore_ascii_case(b"Connection: keep-alive\r\n"))
}

fn status_line(status: u16, date: &str) -> String {
    let mut out = String::with_capacity(320);
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nServer: {SERVER_HEADER}\r\nDate: {date}\r\n",
        reason_phrase(status)
    );
    out
}

/// Headers a 304 repeats from the 200.
fn validators(out: &mut String, file: &FileInfo<'_>, opts: &Options) {
    let _ = write!(
        out,
        "Last-Modified: {}\r\nETag: {}\r\n",
        httpdate::fmt_http_date(file.modified),
        file.etag
    );
    if let Some(age) = opts.max_age {
        let _ = write!(out, "Cache-Control: public, max-age={age}\r\n");
    }
    if file.vary {
        out.push_str("Vary: Accept-Encoding\r\n");
    }
}

/// Headers describing the representation (200 and single-range 206).
fn entity(out: &mut String, file: &FileInfo<'_>, opts: &Options) {
    let _ = write!(out, "Content-Type: {}\r\n", file.content_type);
    if let Some(coding) = file.encoding {
        let _ = write!(out, "Content-Encoding: {coding}\r\n");
    }
    validators(out, file, opts);
    out.push_str("Accept-Ranges: bytes\r\n");
}

fn finish(
    status: u16,
    mut out: String,
    body: Vec<Segment>,
    req: &RequestHead,
    keep_alive: bool,
) -> Plan {
    if !keep_alive {
        out.push_str("Connection: close\r\n");
    } else if req.version == Version::Http10 {
        out.push_str("Connection: keep-alive\r\n");
    }
    out.push_str("\r\n");
    Plan {
        status,
        head: out.into_bytes(),
        body: if req.method == "HEAD" {
            Vec::new()
        } else {
            body
        },
        keep_alive,
    }
}

/// RFC 9110 13.2.2: the status a failed precondition gives (412, or 304
/// for a GET or HEAD whose cached copy is current), `None` to go on.
fn precondition(req: &RequestHead, file: &FileInfo<'_>) -> Option<u16> {
    let modified = seconds(file.modified);
    if let Some(list) = req.header("if-match") {
        if !etag_listed(list, file.etag, true) {
            return Some(412);
        }
    } else if let Some(date) = req.header("if-unmodified-since").and_then(http_date) {
        if modified > date {
            return Some(412);
        }
    }
    if let Some(list) = req.header("if-none-match") {
        if etag_listed(list, file.etag, false) {
            return Some(if matches!(req.method.as_str(), "GET" | "HEAD") {
                304
            } else {
                412
            });
        }
    } else if let Some(date) = req.header("if-modified-since").and_then(http_date) {
        if matches!(req.method.as_str(), "GET" | "HEAD") && modified <= date {
            return Some(304);
        }
    }
    None
}

/// `If-Range`: the range applies only to the representation the client has.
fn if_range_holds(req: &RequestHead, file: &FileInfo<'_>) -> bool {
    let Some(value) = req.header("if-range") else {
        return true;
    };
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return etag_listed(value, file.etag, true);
    }
    http_date(value).is_some_and(|d| d == seconds(file.modified))
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn http_date(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?;
    httpdate::parse_http_date(s.trim()).ok().map(seconds)
}

/// Whether `etag` is in the list (or the list is `*`). Strong comparison
/// refuses weak tags; weak comparison ignores the `W/` prefix.
fn etag_listed(list: &[u8], etag: &str, strong: bool) -> bool {
    let list = match std::str::from_utf8(list) {
        Ok(l) => l.trim(),
        Err(_) => return false,
    };
    if list == "*" {
        return true;
    }
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let weak = rest.starts_with("W/");
        if weak {
            rest = &rest[2..];
        }
        if !rest.starts_with('"') {
            return false;
        }
        let Some(end) = rest[1..].find('"') else {
            return false;
        };
        let tag = &rest[..end + 2];
        if tag == etag && !(strong && weak) {
            return true;
        }
        rest = &rest[end + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Version;
    use std::time::Duration;

    fn req(method: &str, headers: &[(&str, &str)]) -> RequestHead {
        super::super::test_head(method, "/static/a.css", headers)
    }

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn modified() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(250)
    }

    fn info(etag: &str) -> FileInfo<'_> {
        FileInfo {
            len: 100,
            modified: modified(),
            etag,
            content_type: "text/css; charset=utf-8",
            encoding: None,
            vary: false,
        }
    }

    fn run(method: &str, headers: &[(&str, &str)]) -> (Plan, String) {
        let e = "\"abc-64-1\"";
        let plan = respond(
            &req(method, headers),
            &info(e),
            &Options { max_age: None },
            DATE,
            true,
            "BOUNDARY",
        );
        let head = String::from_utf8(plan.head.clone()).expect("test");
        (plan, head)
    }

    #[test]
    fn full_get_has_every_header() {
        let (plan, head) = run("GET", &[]);
        assert_eq!(plan.status, 200);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        for want in [
            "Content-Type: text/css; charset=utf-8\r\n",
            "Content-Length: 100\r\n",
            "Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n",
            "ETag: \"abc-64-1\"\r\n",
            "Accept-Ranges: bytes\r\n",
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
        ] {
            assert!(head.contains(want), "{want} missing in\n{head}");
        }
        assert!(!head.contains("Connection:"));
        assert!(head.ends_with("\r\n\r\n"));
        assert_eq!(
            plan.body,
            vec![Segment::File {
                offset: 0,
                len: 100
            }]
        );
    }

    #[test]
    fn head_has_headers_and_no_body() {
        let (plan, head) = run("HEAD", &[("Range", "bytes=0-1")]);
        assert_eq!(plan.status, 200);
        assert!(head.contains("Content-Length: 100\r\n"));
        assert!(plan.body.is_empty());
    }

    #[test]
    fn other_methods_get_405_with_allow() {
        for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            let (plan, head) = run(m, &[]);
            assert_eq!(plan.status, 405, "{m}");
            assert!(head.contains("Allow: GET, HEAD\r\n"), "{head}");
        }
    }

    #[test]
    fn conditional_get() {
        assert_eq!(
            run("GET", &[("If-None-Match", "\"abc-64-1\"")]).0.status,
            304
        );
        assert_eq!(
            run("GET", &[("If-None-Match", "\"x\", W/\"abc-64-1\"")])
                .0
                .status,
            304
        );
        assert_eq!(run("GET", &[("If-None-Match", "*")]).0.status, 304);
        assert_eq!(run("GET", &[("If-None-Match", "\"other\"")]).0.status, 200);
        let lm = "Tue, 14 Nov 2023 22:13:20 GMT";
        assert_eq!(run("GET", &[("If-Modified-Since", lm)]).0.status, 304);
        assert_eq!(
            run(
                "GET",
                &[("If-Modified-Since", "Tue, 14 Nov 2023 22:13:19 GMT")]
            )
            .0
            .status,
            200
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            run(
                "GET",
                &[("If-None-Match", "\"other\""), ("If-Modified-Since", lm)]
            )
            .0
            .status,
            200
        );
        assert_eq!(
            run("GET", &[("If-Modified-Since", "garbage")]).0.status,
            200
        );
        let (plan, head) = run("GET", &[("If-None-Match", "\"abc-64-1\"")]);
        assert!(plan.body.is_empty());
        assert!(head.contains("ETag: \"abc-64-1\"\r\n"));
        assert!(!head.contains("Content-Length"));
    }

    #[test]
    fn failed_preconditions_give_412() {
        assert_eq!(run("GET", &[("If-Match", "\"other\"")]).0.status, 412);
        assert_eq!(run("GET", &[("If-Match", "W/\"abc-64-1\"")]).0.status, 412);
        assert_eq!(run("GET", &[("If-Match", "\"abc-64-1\"")]).0.status, 200);
        assert_eq!(run("GET", &[("If-Match", "*")]).0.status, 200);
        assert_eq!(
            run(
                "GET",
                &[("If-Unmodified-Since", "Tue, 14 Nov 2023 22:13:19 GMT")]
            )
            .0
            .status,
            412
        );
        assert_eq!(
            run(
                "GET",
                &[("If-Unmodified-Since", "Tue, 14 Nov 2023 22:13:20 GMT")]
            )
            .0
            .status,
            200
        );
    }

    #[test]
    fn single_range() {
        let (plan, head) = run("GET", &[("Range", "bytes=10-19")]);
        assert_eq!(plan.status, 206);
        assert!(
            head.contains("Content-Range: bytes 10-19/100\r\n"),
            "{head}"
        );
        assert!(head.contains("Content-Length: 10\r\n"));
        assert_eq!(
            plan.body,
            vec![Segment::File {
                offset: 10,
                len: 10
            }]
        );
    }

    #[test]
    fn unsatisfiable_range_gives_416() {
        let (plan, head) = run("GET", &[("Range", "bytes=100-")]);
        assert_eq!(plan.status, 416);
        assert!(head.contains("Content-Range: bytes */100\r\n"), "{head}");
    }

    #[test]
    fn multiple_ranges_are_multipart() {
        let (plan, head) = run("GET", &[("Range", "bytes=0-4,10-14")]);
        assert_eq!(plan.status, 206);
        assert!(head.contains("Content-Type: multipart/byteranges; boundary=BOUNDARY\r\n"));
        let len: u64 = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("test")
            .parse()
            .expect("test");
        assert_eq!(len, plan.body_len());
        let Segment::Bytes(first) = &plan.body[0] else {
            panic!()
        };
        assert_eq!(
            String::from_utf8_lossy(first),
            "\r\n--BOUNDARY\r\nContent-Type: text/css; charset=utf-8\r\nContent-Range: bytes 0-4/100\r\n\r\n"
        );
        assert_eq!(
            plan.body.last(),
            Some(&Segment::Bytes(b"\r\n--BOUNDARY--\r\n".to_vec()))
        );
    }

    #[test]
    fn if_range_with_an_old_validator_sends_everything() {
        let r = [("Range", "bytes=0-4"), ("If-Range", "\"old\"")];
        assert_eq!(run("GET", &r).0.status, 200);
        let r = [("Range", "bytes=0-4"), ("If-Range", "\"abc-64-1\"")];
        assert_eq!(run("GET", &r).0.status, 206);
        let r = [
            ("Range", "bytes=0-4"),
            ("If-Range", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ];
        assert_eq!(run("GET", &r).0.status, 206);
        let r = [
            ("Range", "bytes=0-4"),
            ("If-Range", "Tue, 14 Nov 2023 22:13:21 GMT"),
        ];
        assert_eq!(run("GET", &r).0.status, 200);
    }

    #[test]
    fn cache_control_vary_and_encoding() {
        let e = "\"e\"";
        let mut f = info(e);
        f.encoding = Some("gzip");
        f.vary = true;
        let plan = respond(
            &req("GET", &[]),
            &f,
            &Options {
                max_age: Some(3600),
            },
            DATE,
            false,
            "B",
        );
        let head = String::from_utf8(plan.head).expect("test");
        assert!(head.contains("Cache-Control: public, max-age=3600\r\n"));
        assert!(head.contains("Vary: Accept-Encoding\r\n"));
        assert!(head.contains("Content-Encoding: gzip\r\n"));
        assert!(head.contains("Connection: close\r\n"));
    }

    #[test]
    fn errors_use_the_common_error_response() {
        let r = req("GET", &[]);
        let plan = error(404, &r, DATE, true, &[]);
        let head = String::from_utf8(plan.head.clone()).expect("test");
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert_eq!(plan.body, vec![Segment::Bytes(b"404 Not Found\n".to_vec())]);
        let plan = redirect(&req("HEAD", &[]), "/static/dir/", DATE, true);
        let head = String::from_utf8(plan.head.clone()).expect("test");
        assert!(head.contains("Location: /static/dir/\r\n"));
        assert!(plan.body.is_empty());
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn http10_keep_alive_is_announced() {
        let mut r = req("GET", &[]);
        r.version = Version::Http10;
        let plan = respond(&r, &info("\"e\""), &Options::default(), DATE, true, "B");
        let head = String::from_utf8(plan.head).expect("test");
        assert!(head.contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("a.html"), "text/html; charset=utf-8");
        assert!(content_type("a.js").ends_with("javascript; charset=utf-8"));
        assert_eq!(content_type("a.json"), "application/json; charset=utf-8");
        assert_eq!(content_type("a.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type("a.png"), "image/png");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
        let extra: HashMap<String, String> = [
            ("thing".to_owned(), "application/x-thing".to_owned()),
            ("css".to_owned(), "text/x-mine".to_owned()),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            content_type_with("d/a.THING", &extra),
            "application/x-thing"
        );
        assert_eq!(
            content_type_with("a.css", &extra),
            "text/x-mine; charset=utf-8"
        );
        assert_eq!(content_type_with("a.png", &extra), "image/png");
        assert_eq!(
            content_type_with("thing", &extra),
            "application/octet-stream"
        );
    }

    #[test]
    fn etags_change_with_the_file() {
        let t = modified();
        let a = etag(100, t, 7);
        assert_ne!(a, etag(101, t, 7));
        assert_ne!(a, etag(100, t + Duration::from_nanos(1), 7));
        assert_ne!(a, etag(100, t, 8));
        assert!(a.starts_with('"') && a.ends_with('"'));
    }
}
