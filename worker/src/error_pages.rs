//! The server's error pages in this worker: the default ones, or those of
//! `--error-document` (see `rwsgi_http::statics::error_documents`).
//!
//! Error responses are made in many places (the I/O thread refusing a
//! head, a request thread ending a failed request, a static lane), all of
//! them answering from the one set of static files of this process; so the
//! pages are installed once, when the static files are opened at start,
//! before any thread that sends an error runs, and read without a lock.

use rwsgi_http::statics::error_documents::ErrorPages;
use rwsgi_http::statics::{Plan, Segment, StaticFiles};
use rwsgi_http::{DateCache, RequestHead};
use rwsgi_shared::config::StaticConfig;
use std::sync::{Arc, OnceLock};

struct Installed {
    files: Arc<StaticFiles>,
    pages: ErrorPages,
}

static PAGES: OnceLock<Installed> = OnceLock::new();

/// Called once, with the static files of this process.
pub fn install(files: Arc<StaticFiles>, config: &StaticConfig) {
    let _ = PAGES.set(Installed {
        files,
        pages: ErrorPages::new(config),
    });
}

/// An error response, ready to write.
pub struct Page {
    /// The status sent: the error's, or 302 for a document that is a URL.
    pub status: u16,
    pub bytes: Vec<u8>,
    /// Body bytes in `bytes` (for the access log).
    pub body_len: u64,
}

/// The response for `status`: the configured page, else the default.
/// `req`: the request, when the head was read (HEAD gets no body).
pub fn response(status: u16, req: Option<&RequestHead>, keep_alive: bool) -> Page {
    let mut dates = DateCache::default();
    let date = dates.now();
    let (status, bytes) = match PAGES.get() {
        Some(p) => p.pages.response(&p.files, status, req, date, keep_alive),
        None => ErrorPages::default().response(&no_files(), status, req, date, keep_alive),
    };
    let body_len = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |end| (bytes.len() - end - 4) as u64);
    Page {
        status,
        bytes,
        body_len,
    }
}

fn no_files() -> StaticFiles {
    StaticFiles::new(&StaticConfig::default()).0
}

/// The configured page for an error of a static lane, `None` for none.
pub fn plan(status: u16, req: &RequestHead, date: &str, keep_alive: bool) -> Option<Plan> {
    let p = PAGES.get()?;
    p.pages.plan(&p.files, status, Some(req), date, keep_alive)
}

/// The configured page for `status` as bytes, with `extra` header lines
/// (each ending in CRLF) after the status line; `None` for none.
pub fn configured(
    status: u16,
    req: &RequestHead,
    keep_alive: bool,
    extra: &str,
) -> Option<Vec<u8>> {
    let mut dates = DateCache::default();
    let page = plan(status, req, dates.now(), keep_alive)?;
    let line_end = page.head.windows(2).position(|w| w == b"\r\n")? + 2;
    let mut bytes = Vec::with_capacity(page.head.len() + extra.len() + page.body_len() as usize);
    bytes.extend_from_slice(&page.head[..line_end]);
    bytes.extend_from_slice(extra.as_bytes());
    bytes.extend_from_slice(&page.head[line_end..]);
    for segment in &page.body {
        if let Segment::Bytes(b) = segment {
            bytes.extend_from_slice(b);
        }
    }
    Some(bytes)
}

/// `--error-override`: whether the application's response with `status`
/// is replaced by the server's page.
pub fn overrides(status: u16) -> bool {
    PAGES.get().is_some_and(|p| p.pages.overrides(status))
}
