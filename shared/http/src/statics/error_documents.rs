//! `--error-document CODE DOCUMENT` and `--error-override`: the error page
//! a user configured, as Apache's `ErrorDocument` gives it.
//!
//! The server's own error responses (a static file's 404, a refused head's
//! 400 or 431, a 413, a 503 after `--queue-timeout`, the 500 and 504 of a
//! failed request) are replaced by the document for their status; with
//! `--error-override` the application's 4xx and 5xx responses are too
//! (mod_wsgi's `WSGIErrorOverride On`: the application's body is dropped
//! and the server's error page for the status sent instead, the document
//! when there is one).
//!
//! A document is what Apache makes of the value ([`classify`]): a local URL
//! path, whose file is sent with the original status (Apache's internal
//! redirect; here only to a static file, checked at start, since a refused
//! head never reaches the application); a full URL, a 302 to it; or text,
//! sent as the page.

use super::response::{Plan, Segment};
use super::{Resolution, StaticFiles};
use crate::{error_response, reason_phrase, BodyKind, RequestHead, Version, SERVER_HEADER};
use rwsgi_shared::config::{Document, ErrorDocument, StaticConfig};
use std::fmt::Write as _;
use std::io::Read;

/// Largest document file: error pages are read whole, on the error path.
pub const MAX_DOCUMENT: u64 = 1024 * 1024;

/// What Apache 2.4 makes of an `ErrorDocument` value: a value that starts
/// with `"` or holds a space is text (the quotes a user wrote around it
/// dropped), one that starts with `/` a local URL path, one with a scheme
/// (`https://…`) a redirect; anything else is text.
pub fn classify(value: &str) -> Document {
    if let Some(quoted) = value.strip_prefix('"') {
        let text = quoted.strip_suffix('"').unwrap_or(quoted);
        return Document::Text(text.to_owned());
    }
    if value.contains(' ') {
        Document::Text(value.to_owned())
    } else if value.starts_with('/') {
        Document::Local(value.to_owned())
    } else if is_url(value) {
        Document::Redirect(value.to_owned())
    } else {
        Document::Text(value.to_owned())
    }
}

/// `scheme:rest` (RFC 3986 3.1), as Apache's `ap_is_url`.
fn is_url(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
}

/// The status of `--error-document`: a 4xx or 5xx code.
pub fn parse_status(value: &str) -> Result<u16, String> {
    match value.trim().parse::<u16>() {
        Ok(code) if (400..=599).contains(&code) => Ok(code),
        _ => Err(format!("{value:?} is not a 4xx or 5xx status")),
    }
}

/// The document for `status`: the last one given for it.
pub fn choose(documents: &[ErrorDocument], status: u16) -> Option<&Document> {
    documents
        .iter()
        .rev()
        .find(|d| d.status == status)
        .map(|d| &d.document)
}

/// Whether `--error-override` replaces an application response of `status`.
pub fn overrides(error_override: bool, status: u16) -> bool {
    error_override && (400..=599).contains(&status)
}

/// The body of an error page and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

/// How the page is sent: what of the request matters to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sending<'a> {
    /// A HEAD request: the head only.
    pub head_only: bool,
    pub version: Version,
    pub date: &'a str,
    pub keep_alive: bool,
}

/// The response for `status` with `document`; `local` is the content of
/// a local document, `None` when it cannot be read now (then the caller's
/// own page goes out, as Apache adds its default text to a failed one).
pub fn render(
    status: u16,
    document: &Document,
    local: Option<Content>,
    how: Sending<'_>,
) -> Option<Plan> {
    match document {
        Document::Local(_) => Some(page(status, local?, &[], how)),
        Document::Text(text) => Some(page(
            status,
            Content {
                bytes: text.as_bytes().to_vec(),
                content_type: "text/html; charset=utf-8".to_owned(),
            },
            &[],
            how,
        )),
        Document::Redirect(url) => {
            let href = super::listing::escape(url);
            let body = format!(
                "<!DOCTYPE html>\n<html><head><title>302 Found</title></head><body>\n<h1>Found</h1>\n<p>The document has moved <a href=\"{href}\">here</a>.</p>\n</body></html>\n"
            );
            let content = Content {
                bytes: body.into_bytes(),
                content_type: "text/html; charset=utf-8".to_owned(),
            };
            // A URL from the command line; a CR or LF in it never splits the head.
            let location = url.replace(['\r', '\n'], "");
            Some(page(302, content, &[("Location", &location)], how))
        }
    }
}

fn page(status: u16, content: Content, extra: &[(&str, &str)], how: Sending<'_>) -> Plan {
    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {status} {}\r\nServer: {SERVER_HEADER}\r\nDate: {}\r\n",
        reason_phrase(status),
        how.date
    );
    for (name, value) in extra {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(
        head,
        "Content-Type: {}\r\nContent-Length: {}\r\n",
        content.content_type,
        content.bytes.len()
    );
    if !how.keep_alive {
        head.push_str("Connection: close\r\n");
    } else if how.version == Version::Http10 {
        head.push_str("Connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
    Plan {
        status,
        head: head.into_bytes(),
        body: if how.head_only || content.bytes.is_empty() {
            Vec::new()
        } else {
            vec![Segment::Bytes(content.bytes)]
        },
        keep_alive: how.keep_alive,
    }
}

/// A plain GET of `path` (a local document), as the static files resolve it.
pub fn get(path: &str) -> RequestHead {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    RequestHead {
        method: "GET".to_owned(),
        target: path.to_owned(),
        path: path.to_owned(),
        query: String::new(),
        version: Version::Http11,
        headers: Vec::new(),
        body: BodyKind::Empty,
        keep_alive: true,
        expect_continue: false,
    }
}

/// Reads the file a local document names, through the static files' rules.
pub fn load(files: &StaticFiles, path: &str) -> Result<Content, String> {
    match files.resolve(&get(path)) {
        Resolution::File(f) => {
            if f.len > MAX_DOCUMENT {
                return Err(format!(
                    "{path} is larger than {} KiB",
                    MAX_DOCUMENT / 1024
                ));
            }
            let mut bytes = Vec::with_capacity(f.len as usize);
            (&f.file)
                .take(MAX_DOCUMENT)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("{path}: {e}"))?;
            Ok(Content {
                bytes,
                content_type: f.content_type,
            })
        }
        Resolution::Redirect(_) => Err(format!("{path} is a directory")),
        Resolution::NotFound(why) => Err(format!("{path}: {why}")),
        Resolution::Forbidden(why) => Err(format!("{path} is refused by the static file rules: {why}")),
        Resolution::NotStatic => Err(format!(
            "{path} names no file under a --url-alias or the --document-root (rwsgi serves error documents from static files, not from the application)"
        )),
    }
}

/// The error pages of one worker.
#[derive(Debug, Clone, Default)]
pub struct ErrorPages {
    documents: Vec<ErrorDocument>,
    error_override: bool,
}

impl ErrorPages {
    pub fn new(config: &StaticConfig) -> ErrorPages {
        ErrorPages {
            documents: config.error_documents.clone(),
            error_override: config.error_override,
        }
    }

    /// Whether the application's response with `status` is replaced.
    pub fn overrides(&self, status: u16) -> bool {
        overrides(self.error_override, status)
    }

    /// Checks at start that every local document can be served: one
    /// message naming the first that cannot.
    pub fn check(&self, files: &StaticFiles) -> Result<(), String> {
        for d in &self.documents {
            if let Document::Local(path) = &d.document {
                load(files, path).map_err(|e| format!("{} {path}: {e}", d.status))?;
            }
        }
        Ok(())
    }

    /// The configured page for `status`, `None` when there is none (or
    /// its file cannot be read now): the caller sends its default page.
    pub fn plan(
        &self,
        files: &StaticFiles,
        status: u16,
        req: Option<&RequestHead>,
        date: &str,
        keep_alive: bool,
    ) -> Option<Plan> {
        let document = choose(&self.documents, status)?;
        let local = match document {
            Document::Local(path) => load(files, path).ok(),
            _ => None,
        };
        let how = Sending {
            head_only: req.is_some_and(|r| r.method == "HEAD"),
            version: req.map_or(Version::Http11, |r| r.version),
            date,
            keep_alive,
        };
        render(status, document, local, how)
    }

    /// The whole response for `status` as bytes: the configured page, or
    /// the server's default one (`error_response`).
    pub fn response(
        &self,
        files: &StaticFiles,
        status: u16,
        req: Option<&RequestHead>,
        date: &str,
        keep_alive: bool,
    ) -> (u16, Vec<u8>) {
        match self.plan(files, status, req, date, keep_alive) {
            Some(plan) => {
                let mut bytes = plan.head;
                for s in plan.body {
                    if let Segment::Bytes(b) = s {
                        bytes.extend_from_slice(&b);
                    }
                }
                (plan.status, bytes)
            }
            None => {
                let mut bytes = error_response(status, date, keep_alive);
                if req.is_some_and(|r| r.method == "HEAD") {
                    if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                        bytes.truncate(end + 4);
                    }
                }
                (status, bytes)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(status: u16, value: &str) -> ErrorDocument {
        ErrorDocument {
            status,
            document: classify(value),
        }
    }

    const HOW: Sending<'static> = Sending {
        head_only: false,
        version: Version::Http11,
        date: "Sun, 06 Nov 1994 08:49:37 GMT",
        keep_alive: true,
    };

    fn text(plan: &Plan) -> (String, String) {
        let head = String::from_utf8(plan.head.clone()).expect("test");
        let body = plan
            .body
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                Segment::File { .. } => panic!("no file parts"),
            })
            .collect();
        (head, body)
    }

    #[test]
    fn values_are_classified_as_apache_does() {
        assert_eq!(
            classify("/errors/404.html"),
            Document::Local("/errors/404.html".into())
        );
        assert_eq!(
            classify("https://example.com/oops"),
            Document::Redirect("https://example.com/oops".into())
        );
        assert_eq!(
            classify("\"Gone fishing\""),
            Document::Text("Gone fishing".into())
        );
        assert_eq!(
            classify("\"Gone fishing"),
            Document::Text("Gone fishing".into())
        );
        assert_eq!(
            classify("Sorry, not here"),
            Document::Text("Sorry, not here".into())
        );
        assert_eq!(classify("/a b.html"), Document::Text("/a b.html".into()));
        assert_eq!(classify("oops"), Document::Text("oops".into()));
        assert_eq!(classify("1:"), Document::Text("1:".into()));
    }

    #[test]
    fn statuses_are_4xx_or_5xx() {
        assert_eq!(parse_status("404"), Ok(404));
        assert_eq!(parse_status("599"), Ok(599));
        for bad in ["200", "302", "600", "abc", "", "-404"] {
            assert!(parse_status(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_last_document_for_a_status_wins() {
        let docs = [doc(404, "/a.html"), doc(500, "x"), doc(404, "/b.html")];
        assert_eq!(choose(&docs, 404), Some(&Document::Local("/b.html".into())));
        assert_eq!(choose(&docs, 403), None);
        assert!(overrides(true, 404) && overrides(true, 503));
        assert!(!overrides(true, 302) && !overrides(false, 404) && !overrides(true, 200));
    }

    #[test]
    fn a_local_document_keeps_the_status_and_brings_its_type() {
        let content = Content {
            bytes: b"<h1>lost</h1>".to_vec(),
            content_type: "text/html; charset=utf-8".into(),
        };
        let plan = render(404, &classify("/e/404.html"), Some(content), HOW).expect("test");
        let (head, body) = text(&plan);
        assert_eq!(plan.status, 404);
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(head.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(head.contains("Content-Length: 13\r\n"));
        assert!(!head.contains("Connection"));
        assert_eq!(body, "<h1>lost</h1>");
        // Unreadable now: the caller's default page.
        assert_eq!(render(404, &classify("/e/404.html"), None, HOW), None);
    }

    #[test]
    fn text_and_redirects() {
        let how = Sending {
            head_only: true,
            keep_alive: false,
            ..HOW
        };
        let plan = render(503, &classify("\"Back soon\""), None, how).expect("test");
        let (head, body) = text(&plan);
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("Content-Length: 9\r\n"));
        assert!(head.contains("Connection: close\r\n"));
        assert_eq!(body, "");
        let plan = render(404, &classify("https://example.com/x?a=<1>"), None, HOW).expect("test");
        let (head, body) = text(&plan);
        assert_eq!(plan.status, 302);
        assert!(head.contains("Location: https://example.com/x?a=<1>\r\n"));
        assert!(body.contains("href=\"https://example.com/x?a=&lt;1&gt;\""));
        let how = Sending {
            version: Version::Http10,
            ..HOW
        };
        let (head, _) = text(&render(500, &classify("x"), None, how).expect("test"));
        assert!(head.contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn without_a_document_the_default_page_goes_out() {
        let pages = ErrorPages::new(&StaticConfig {
            error_documents: vec![doc(500, "\"Oops\"")],
            ..StaticConfig::default()
        });
        let (files, _) = StaticFiles::new(&StaticConfig::default());
        let (status, bytes) = pages.response(&files, 404, None, HOW.date, false);
        assert_eq!(status, 404);
        assert!(String::from_utf8_lossy(&bytes).ends_with("\r\n\r\n404 Not Found\n"));
        let (status, bytes) = pages.response(&files, 500, None, HOW.date, false);
        assert_eq!(status, 500);
        assert!(String::from_utf8_lossy(&bytes).ends_with("\r\n\r\nOops"));
        let head = super::super::test_head("HEAD", "/x", &[]);
        let (_, bytes) = pages.response(&files, 404, Some(&head), HOW.date, false);
        assert!(String::from_utf8_lossy(&bytes).ends_with("\r\n\r\n"));
        // A local document that names nothing static is refused at start.
        let pages = ErrorPages::new(&StaticConfig {
            error_documents: vec![doc(404, "/nowhere.html")],
            ..StaticConfig::default()
        });
        let err = pages.check(&files).expect_err("test");
        assert!(err.contains("404 /nowhere.html"), "{err}");
    }
}
