//! `--enable-docs`: rwsgi's documentation at /__wsgi__/docs/ (where
//! mod_wsgi-express serves its own), answered without Python. The pages
//! are the project's Markdown guides, embedded at build time and rendered
//! to HTML once per worker, on the first request for them.
//!
//! The I/O thread hands the connection to a short-lived thread that writes
//! the page (some tens of KiB, more than a non-blocking write can promise)
//! and gives the connection back to be closed.

use crate::conn::Conn;
use crate::handoff::{Handoff, Returned};
use pulldown_cmark::{html, CowStr, Event, Parser, Tag};
use rwsgi_http::RequestHead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The URL prefix, as mod_wsgi-express's.
pub const PREFIX: &str = "/__wsgi__/docs";

/// Each page: its file name under [`PREFIX`], its title, its Markdown, and
/// the repository path other pages link it by.
const PAGES: &[(&str, &str, &str, &str)] = &[
    (
        "index.html",
        "rwsgi",
        include_str!("../../README.md"),
        "README.md",
    ),
    (
        "docker.html",
        "rwsgi in containers",
        include_str!("../../docker/README.md"),
        "docker/README.md",
    ),
    (
        "bench.html",
        "rwsgi benchmarks",
        include_str!("../../bench/README.md"),
        "bench/README.md",
    ),
];

/// Documentation requests being written at once; past it, 503.
const MAX_IN_FLIGHT: usize = 8;
/// How long a client may take to read a page.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Whether `path` is the documentation's (the app never sees it then).
pub fn is_docs(path: &str) -> bool {
    path == PREFIX
        || path
            .strip_prefix(PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// What a documentation path gets: status, extra header, content type, body.
fn answer(path: &str) -> (u16, String, &'static str, Arc<String>) {
    static RENDERED: OnceLock<Vec<Arc<String>>> = OnceLock::new();
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    if rest.is_empty() {
        let to = format!("{PREFIX}/");
        return (
            301,
            format!("Location: {to}\r\n"),
            "text/plain; charset=utf-8",
            Arc::new(format!("{to}\n")),
        );
    }
    let name = match rest.trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let pages = RENDERED.get_or_init(|| PAGES.iter().map(|p| Arc::new(render(p.1, p.2))).collect());
    match PAGES.iter().position(|p| p.0 == name) {
        Some(i) => (
            200,
            String::new(),
            "text/html; charset=utf-8",
            Arc::clone(&pages[i]),
        ),
        None => (
            404,
            String::new(),
            "text/plain; charset=utf-8",
            Arc::new("404 Not Found\n".to_owned()),
        ),
    }
}

/// One page as HTML; links between the guides point at their pages here.
fn render(title: &str, markdown: &str) -> String {
    let relink = |dest: CowStr<'static>| -> CowStr<'static> {
        let (file, anchor) = dest.split_once('#').map_or((&*dest, ""), |(f, a)| (f, a));
        let file = file.trim_start_matches("./").trim_start_matches("../");
        match PAGES.iter().find(|p| p.3 == file) {
            Some(p) if anchor.is_empty() => CowStr::from(p.0.to_owned()),
            Some(p) => CowStr::from(format!("{}#{anchor}", p.0)),
            None => dest,
        }
    };
    let mut options = pulldown_cmark::Options::empty();
    options.insert(pulldown_cmark::Options::ENABLE_TABLES);
    let events = Parser::new_ext(markdown, options).map(|e| match e {
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: relink(dest_url.into_static()),
            title,
            id,
        }),
        other => other,
    });
    let mut body = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut body, events);
    let mut nav = String::new();
    for p in PAGES {
        nav.push_str(&format!("<a href=\"{}\">{}</a> ", p.0, p.1));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>body{{max-width:60em;margin:auto;padding:1em;font-family:sans-serif;line-height:1.5}}pre{{background:#f4f4f4;padding:.5em;overflow:auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .4em}}</style></head>\n<body><nav>{nav}</nav>\n{body}</body></html>\n"
    )
}

/// Answers `head` on `conn` in a thread of its own, then hands the
/// connection back to be closed.
pub fn serve(pool: &Arc<Handoff>, token: usize, mut conn: Conn, head: RequestHead) {
    let (status, extra, kind, body) = if IN_FLIGHT.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        (
            503,
            String::new(),
            "text/plain; charset=utf-8",
            Arc::new("503 Service Unavailable\n".to_owned()),
        )
    } else {
        let runner = Arc::clone(pool);
        let spawned = std::thread::Builder::new()
            .name("rwsgi-docs".into())
            .spawn(move || {
                let (status, extra, kind, body) = answer(&head.path);
                write_response(&mut conn, &head, status, &extra, kind, &body);
                IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                runner.give_back(Returned::Close(token, conn));
            });
        if spawned.is_err() {
            // The connection went with the closure: its socket is closed.
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            pool.give_back(Returned::Closed(token));
        }
        return;
    };
    write_response(&mut conn, &head, status, &extra, kind, &body);
    pool.give_back(Returned::Close(token, conn));
}

fn write_response(
    conn: &mut Conn,
    head: &RequestHead,
    status: u16,
    extra: &str,
    kind: &str,
    body: &str,
) {
    let mut dates = rwsgi_http::DateCache::default();
    let out = rwsgi_http::closing_response(
        status,
        dates.now(),
        extra,
        kind,
        body.as_bytes(),
        head.method != "HEAD",
    );
    // Waits for room at most WRITE_TIMEOUT at a time.
    let _ = conn.transport.write_all(&[&out], WRITE_TIMEOUT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_and_below_are_the_docs() {
        assert!(is_docs("/__wsgi__/docs"));
        assert!(is_docs("/__wsgi__/docs/"));
        assert!(is_docs("/__wsgi__/docs/docker.html"));
        assert!(!is_docs("/__wsgi__/docsx"));
        assert!(!is_docs("/"));
    }

    #[test]
    fn pages_render_and_link_each_other() {
        let (status, _, kind, index) = answer("/__wsgi__/docs/");
        assert_eq!((status, kind), (200, "text/html; charset=utf-8"));
        assert!(index.contains("<h1"), "a heading");
        assert!(!index.contains("](docker/README.md)"), "Markdown left raw");
        assert_eq!(answer("/__wsgi__/docs").0, 301);
        assert_eq!(answer("/__wsgi__/docs/bench.html").0, 200);
        assert_eq!(answer("/__wsgi__/docs/nothing").0, 404);
        let html = render(
            "t",
            "see [the docker guide](docker/README.md#run) and <b>x</b> & `a<b`",
        );
        assert!(html.contains("href=\"docker.html#run\""), "{html}");
        assert!(html.contains("<code>a&lt;b</code>"), "{html}");
    }
}
