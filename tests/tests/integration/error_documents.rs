//! `--error-document` and `--error-override` as a user meets them: the
//! configured page in place of the server's own error responses (and, with
//! override, the application's), the status kept; errors at start name
//! the option.

use rwsgi_tests::server::binary;
use rwsgi_tests::{app, json, request, Server};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const PAGE_404: &str = "<h1>Nothing here, sorry</h1>\n";
const PAGE_500: &str = "<h1>Our fault</h1>\n";

/// A fixture directory, removed when dropped.
struct Site(PathBuf);

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Site {
    fn new() -> Site {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "errdocs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("htdocs/errors")).expect("mkdir");
        std::fs::write(dir.join("htdocs/errors/404.html"), PAGE_404).expect("write");
        std::fs::write(dir.join("htdocs/errors/500.html"), PAGE_500).expect("write");
        std::fs::write(dir.join("htdocs/site.css"), "body{}").expect("write");
        std::fs::write(dir.join("htdocs/.env"), "SECRET").expect("write");
        Site(dir)
    }

    fn htdocs(&self) -> String {
        self.0.join("htdocs").to_string_lossy().into_owned()
    }
}

/// python requests in the test venv; `code` fills the dict `out`.
fn browse(base: &str, code: &str) -> serde_json::Value {
    let script = format!(
        "import json, requests\nbase = {base:?}\nout = {{}}\ndef page(r):\n    return [r.status_code, r.headers.get('Content-Type'), r.headers.get('Content-Length'), r.text, r.headers.get('Location')]\n{code}\nprint(json.dumps(out))\n"
    );
    json(rwsgi_tests::venv_python(&script, &[]).as_bytes())
}

fn raw(port: u16, bytes: &str) -> rwsgi_tests::Response {
    request(port, bytes.as_bytes()).expect("request")
}

#[test]
fn the_servers_own_errors_get_the_configured_pages() {
    let site = Site::new();
    let htdocs = site.htdocs();
    let server = Server::start(&[
        "--url-alias",
        "/static",
        &htdocs,
        "--error-document",
        "404",
        "/static/errors/404.html",
        "--error-document",
        "500",
        "/static/errors/500.html",
        "--error-document",
        "400",
        "\"Bad request, said the server",
        "--error-document",
        "403",
        "https://example.com/denied",
        &app("app.py"),
    ]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let out = browse(
        &base,
        r#"
out["missing"] = page(requests.get(base + "/static/no such file.css"))
h = requests.head(base + "/static/missing.css")
out["head"] = [h.status_code, h.headers.get("Content-Length"), len(h.content)]
out["file"] = page(requests.get(base + "/static/site.css"))
out["raised"] = page(requests.get(base + "/error"))
out["app404"] = page(requests.get(base + "/nothing"))
out["dotfile"] = page(requests.get(base + "/static/.env", allow_redirects=False))
"#,
    );
    let log = server.log.text();
    // A static file's 404: the document, with the status and its type.
    assert_eq!(out["missing"][0], 404, "{out}\n{log}");
    assert_eq!(out["missing"][1], "text/html; charset=utf-8");
    assert_eq!(out["missing"][2], PAGE_404.len().to_string());
    assert_eq!(out["missing"][3], PAGE_404);
    assert_eq!(out["head"][0], 404);
    assert_eq!(out["head"][1], PAGE_404.len().to_string());
    assert_eq!(out["head"][2], 0);
    assert_eq!(out["file"][0], 200);
    assert_eq!(out["file"][3], "body{}");
    // The 500 of an application that raised.
    assert_eq!(out["raised"][0], 500);
    assert_eq!(out["raised"][3], PAGE_500);
    // The application's own 404 is its own without --error-override.
    assert_eq!(out["app404"][0], 404);
    assert_eq!(out["app404"][3], "not found");
    // A full URL is a redirect to it.
    assert_eq!(out["dotfile"][0], 302);
    assert_eq!(out["dotfile"][4], "https://example.com/denied");
    assert!(!out["dotfile"][3].as_str().unwrap_or("").contains("SECRET"));
    // A head the server refuses (HTTP/1.1 without Host): the text.
    let r = raw(server.port, "GET / HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 400, "{}", r.head);
    assert_eq!(r.text(), "Bad request, said the server");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
}

#[test]
fn error_override_replaces_the_applications_error_responses() {
    let site = Site::new();
    let htdocs = site.htdocs();
    let server = Server::start(&[
        "--document-root",
        &htdocs,
        "--error-document",
        "404",
        "/errors/404.html",
        "--error-override",
        &app("app.py"),
    ]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let out = browse(
        &base,
        r#"
s = requests.Session()
out["app404"] = page(s.get(base + "/nothing"))
out["again"] = page(s.get(base + "/nothing/else"))
out["ok"] = page(s.get(base + "/environ"))
h = s.head(base + "/nothing")
out["head"] = [h.status_code, h.headers.get("Content-Length"), len(h.content)]
out["raised"] = page(s.get(base + "/error"))
"#,
    );
    let log = server.log.text();
    // The application's 404 body is replaced by the document; status kept.
    assert_eq!(out["app404"][0], 404, "{out}\n{log}");
    assert_eq!(out["app404"][1], "text/html; charset=utf-8");
    assert_eq!(out["app404"][2], PAGE_404.len().to_string());
    assert_eq!(out["app404"][3], PAGE_404);
    assert_eq!(out["again"][3], PAGE_404, "the connection serves on");
    assert_eq!(
        out["head"],
        serde_json::json!([404, PAGE_404.len().to_string(), 0])
    );
    // Success is the application's.
    assert_eq!(out["ok"][0], 200);
    assert!(out["ok"][3].as_str().unwrap_or("").contains("PATH_INFO"));
    // Without a document for 500: the server's default page.
    assert_eq!(out["raised"][0], 500);
    assert_eq!(out["raised"][3], "500 Internal Server Error\n");
}

#[test]
fn an_authentication_challenge_keeps_its_header_under_the_document() {
    let site = Site::new();
    let htdocs = site.htdocs();
    let server = Server::start(&[
        "--url-alias",
        "/static",
        &htdocs,
        "--auth-user-script",
        &app("auth/users.py"),
        "--error-document",
        "401",
        "\"Who goes there?\"",
        &app("auth/app.py"),
    ]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let out = browse(
        &base,
        r#"
r = requests.get(base + "/")
out["anonymous"] = page(r) + [r.headers.get("WWW-Authenticate")]
out["alice"] = requests.get(base + "/", auth=("alice", "wonder land")).status_code
"#,
    );
    assert_eq!(out["anonymous"][0], 401, "{out}\n{}", server.log.text());
    assert_eq!(out["anonymous"][3], "Who goes there?");
    let challenge = out["anonymous"][5].as_str().unwrap_or_default();
    assert!(challenge.starts_with("Basic realm="), "{out}");
    assert_eq!(out["alice"], 200);
}

/// `rwsgi start-server ARGS app.py`, which must exit at once: (code, stderr).
fn fails(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("timeout")
        .arg("60")
        .arg(binary("rwsgi"))
        .arg("start-server")
        .args(args)
        .arg(app("app.py"))
        .output()
        .expect("run rwsgi");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_error_documents_stop_the_start_with_one_line_naming_the_option() {
    let site = Site::new();
    let htdocs = site.htdocs();
    let cases: [(&[&str], &str); 3] = [
        (&["--error-document", "302", "/x.html"], "not a 4xx or 5xx"),
        (
            &[
                "--url-alias",
                "/static",
                &htdocs,
                "--error-document",
                "404",
                "/static/errors/gone.html",
            ],
            "no such file",
        ),
        (
            &["--error-document", "500", "/app/oops"],
            "not from the application",
        ),
    ];
    for (args, why) in cases {
        let (code, err) = fails(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        let line = err
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or_default();
        assert!(
            line.contains("--error-document") && line.contains(why),
            "{args:?}: {err}"
        );
    }
}
