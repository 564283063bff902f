//! Static files: `--url-alias`, `--document-root`, `--directory-index`,
//! `--application-type static`. Every header behaviour over raw sockets
//! and with curl, traversal attempts, files over 4 GiB, and static files
//! served while every Python thread is busy.

use rwsgi_tests::client::{connect, read_response, Response};
use rwsgi_tests::server::binary;
use rwsgi_tests::{app, get, request, Server};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CSS: &str = "body { color: red }\n";
const JS: &str = "console.log('identity');\n";
const SECRET: &str = "TOP SECRET outside the root";
const DOTFILE: &str = "SECRET=in a dotfile";

/// A fixture directory, removed when dropped.
struct Site {
    dir: PathBuf,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Site {
    /// `htdocs/` (mounted in the tests) next to `secret.txt` (never served).
    fn new() -> Site {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "statics-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let site = Site { dir };
        site.write("htdocs/css/site.css", CSS.as_bytes());
        site.write("htdocs/app.js", JS.as_bytes());
        site.write("htdocs/app.js.br", b"BROTLI BYTES");
        site.write("htdocs/app.js.gz", b"GZIP BYTES");
        site.write("htdocs/gz-only.js", JS.as_bytes());
        site.write("htdocs/gz-only.js.gz", &gzip(JS.as_bytes()));
        site.write("htdocs/4k.bin", &pattern(4096));
        site.write("htdocs/100k.bin", &pattern(100_000));
        site.write("htdocs/empty.txt", b"");
        site.write("htdocs/docs/index.html", b"<h1>docs</h1>");
        site.write("htdocs/nodex/file.txt", b"x");
        site.write("htdocs/inner.txt", b"inner");
        site.write("htdocs/.env", DOTFILE.as_bytes());
        site.write("htdocs/.git/config", DOTFILE.as_bytes());
        site.write("secret.txt", SECRET.as_bytes());
        site.write("favicon.ico", b"ICO");
        site.write("other/x.txt", b"other");
        let h = site.path("htdocs");
        std::os::unix::fs::symlink("inner.txt", h.join("in.txt")).expect("symlink");
        std::os::unix::fs::symlink(site.path("secret.txt"), h.join("out.txt")).expect("symlink");
        std::os::unix::fs::symlink("../other", h.join("outdir")).expect("symlink");
        site
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.path(rel).to_string_lossy().into_owned()
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, bytes).expect("write fixture");
    }

    /// The seed's layout: `--url-alias /static htdocs` next to an application.
    fn serve(&self, extra: &[&str]) -> Server {
        let htdocs = self.s("htdocs");
        let mut args = vec!["--url-alias", "/static", &htdocs];
        args.extend_from_slice(extra);
        let app = app("app.py");
        args.push(&app);
        Server::start(&args)
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import gzip,sys; sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read()))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 for gzip");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("feed gzip");
    let out = child.wait_with_output().expect("gzip");
    assert!(out.status.success());
    out.stdout
}

/// `METHOD path` with extra header lines, on a new connection.
fn req(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    request(port, raw.as_bytes()).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.stdout,
    )
}

fn assert_not_leaked(r: &Response, what: &str) {
    let body = r.text();
    assert!(
        !body.contains("TOP SECRET") && !body.contains("SECRET="),
        "{what} leaked a file: {}",
        r.head
    );
    assert_ne!(r.status, 200, "{what}: {}", r.head);
}

#[test]
fn url_alias_serves_a_file_with_every_header() {
    let site = Site::new();
    let server = site.serve(&[]);
    let r = get(server.port, "/static/css/site.css");
    assert_eq!(r.status, 200, "{}", server.log.text());
    assert_eq!(r.text(), CSS);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(
        r.header("content-length"),
        Some(CSS.len().to_string().as_str())
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("date").is_some());
    assert!(r.header("server").is_some_and(|s| s.starts_with("rwsgi/")));
    let etag = r.header("etag").expect("ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong: {etag}"
    );
    let modified = std::fs::metadata(site.path("htdocs/css/site.css"))
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(r.header("last-modified"), Some(httpdate(modified).as_str()));
    assert!(r.header("cache-control").is_none());
    assert!(r.header("vary").is_none());
    // Binary files, a larger one sent with sendfile, an empty one.
    assert_eq!(get(server.port, "/static/4k.bin").body, pattern(4096));
    let big = get(server.port, "/static/100k.bin");
    assert_eq!(big.body, pattern(100_000));
    assert_eq!(big.header("content-type"), Some("application/octet-stream"));
    let empty = get(server.port, "/static/empty.txt");
    assert_eq!((empty.status, empty.body.len()), (200, 0));
    assert_eq!(empty.header("content-length"), Some("0"));
    // Everything else is the application's.
    assert_eq!(get(server.port, "/environ").status, 200);
    assert_eq!(get(server.port, "/staticx").text(), "not found");
}

fn httpdate(t: std::time::SystemTime) -> String {
    // The test only needs the same formatting as the server: ask Python.
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import email.utils; print(email.utils.formatdate({secs}, usegmt=True))"),
        ])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn head_sends_the_headers_without_the_body() {
    let site = Site::new();
    let server = site.serve(&[]);
    // HEAD then GET on one connection: no body bytes may leak into the second response.
    let mut s = connect(server.port);
    s.write_all(
        b"HEAD /static/4k.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /static/css/site.css HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .expect("send");
    let mut buf = Vec::new();
    let head = read_response(&mut s, &mut buf, true).expect("HEAD response");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("4096"));
    assert!(head.header("etag").is_some());
    let next = read_response(&mut s, &mut buf, false).expect("GET response");
    assert_eq!(next.status, 200);
    assert_eq!(next.text(), CSS);
}

#[test]
fn other_methods_get_405_with_allow() {
    let site = Site::new();
    let server = site.serve(&[]);
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r = req(server.port, method, "/static/css/site.css", &[]);
        assert_eq!(r.status, 405, "{method}: {}", r.head);
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
    }
    // A body that arrived with the request is skipped; the connection stays usable.
    let mut s = connect(server.port);
    s.write_all(
        b"POST /static/css/site.css HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /static/css/site.css HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .expect("send");
    let mut buf = Vec::new();
    assert_eq!(
        read_response(&mut s, &mut buf, false).expect("405").status,
        405
    );
    let next = read_response(&mut s, &mut buf, false).expect("next");
    assert_eq!((next.status, next.text().as_str()), (200, CSS));
}

#[test]
fn conditional_requests_give_304_and_412() {
    let site = Site::new();
    let server = site.serve(&["--static-max-age", "600"]);
    let p = server.port;
    let first = get(p, "/static/css/site.css");
    let etag = first.header("etag").expect("etag").to_owned();
    let lm = first.header("last-modified").expect("lm").to_owned();
    let r = req(
        p,
        "GET",
        "/static/css/site.css",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304, "{}", r.head);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("cache-control"), Some("public, max-age=600"));
    let weak = format!("\"nope\", W/{etag}");
    assert_eq!(
        req(
            p,
            "GET",
            "/static/css/site.css",
            &[("If-None-Match", &weak)]
        )
        .status,
        304
    );
    assert_eq!(
        req(
            p,
            "HEAD",
            "/static/css/site.css",
            &[("If-None-Match", &etag)]
        )
        .status,
        304
    );
    assert_eq!(
        req(
            p,
            "GET",
            "/static/css/site.css",
            &[("If-Modified-Since", &lm)]
        )
        .status,
        304
    );
    assert_eq!(
        req(
            p,
            "GET",
            "/static/css/site.css",
            &[("If-Modified-Since", "Thu, 01 Jan 1998 00:00:00 GMT")]
        )
        .status,
        200
    );
    // If-None-Match takes precedence over If-Modified-Since.
    assert_eq!(
        req(
            p,
            "GET",
            "/static/css/site.css",
            &[("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)]
        )
        .status,
        200
    );
    let r = req(
        p,
        "GET",
        "/static/css/site.css",
        &[("If-Match", "\"other\"")],
    );
    assert_eq!(r.status, 412, "{}", r.head);
    assert_eq!(
        req(p, "GET", "/static/css/site.css", &[("If-Match", &etag)]).status,
        200
    );
    assert_eq!(
        req(
            p,
            "GET",
            "/static/css/site.css",
            &[("If-Unmodified-Since", "Thu, 01 Jan 1998 00:00:00 GMT")]
        )
        .status,
        412
    );
    assert_eq!(
        req(
            p,
            "GET",
            "/static/css/site.css",
            &[("If-Unmodified-Since", &lm)]
        )
        .status,
        200
    );
    assert_eq!(
        get(p, "/static/css/site.css").header("cache-control"),
        Some("public, max-age=600")
    );
}

#[test]
fn ranges_single_multiple_unsatisfiable_and_if_range() {
    let site = Site::new();
    let server = site.serve(&[]);
    let p = server.port;
    let data = pattern(4096);
    let r = req(p, "GET", "/static/4k.bin", &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206, "{}", r.head);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/4096"));
    assert_eq!(r.header("content-length"), Some("100"));
    assert_eq!(r.body, &data[100..200]);
    let r = req(p, "GET", "/static/4k.bin", &[("Range", "bytes=-10")]);
    assert_eq!(r.body, &data[4086..]);
    assert_eq!(r.header("content-range"), Some("bytes 4086-4095/4096"));
    let r = req(p, "GET", "/static/4k.bin", &[("Range", "bytes=4000-")]);
    assert_eq!(r.body, &data[4000..]);
    // Unsatisfiable: 416 with the length.
    let r = req(p, "GET", "/static/4k.bin", &[("Range", "bytes=5000-6000")]);
    assert_eq!(r.status, 416, "{}", r.head);
    assert_eq!(r.header("content-range"), Some("bytes */4096"));
    // Multiple ranges: multipart/byteranges.
    let r = req(
        p,
        "GET",
        "/static/4k.bin",
        &[("Range", "bytes=0-9,100-109")],
    );
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").expect("content-type").to_owned();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    let mut want = Vec::new();
    for (a, b) in [(0usize, 9usize), (100, 109)] {
        want.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {a}-{b}/4096\r\n\r\n"
            )
            .as_bytes(),
        );
        want.extend_from_slice(&data[a..=b]);
    }
    want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(r.body, want);
    // Overlapping ranges: the whole file.
    let r = req(
        p,
        "GET",
        "/static/4k.bin",
        &[("Range", "bytes=0-100,50-150")],
    );
    assert_eq!((r.status, r.body.len()), (200, 4096));
    // A syntactically invalid Range is ignored.
    let r = req(p, "GET", "/static/4k.bin", &[("Range", "bytes=9-1")]);
    assert_eq!(r.status, 200);
    // If-Range: the range only when the client's copy is current.
    let etag = get(p, "/static/4k.bin")
        .header("etag")
        .expect("etag")
        .to_owned();
    let r = req(
        p,
        "GET",
        "/static/4k.bin",
        &[("Range", "bytes=0-0"), ("If-Range", &etag)],
    );
    assert_eq!(r.status, 206);
    let r = req(
        p,
        "GET",
        "/static/4k.bin",
        &[("Range", "bytes=0-0"), ("If-Range", "\"stale\"")],
    );
    assert_eq!((r.status, r.body.len()), (200, 4096));
}

#[test]
fn directories_redirect_and_use_the_index() {
    let site = Site::new();
    let server = site.serve(&[]);
    let r = get(server.port, "/static/docs?x=1");
    assert_eq!(r.status, 301, "{}", r.head);
    assert_eq!(r.header("location"), Some("/static/docs/?x=1"));
    let r = get(server.port, "/static/docs/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>docs</h1>"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        get(server.port, "/static").header("location"),
        Some("/static/")
    );
    // No index and no listing.
    assert_eq!(get(server.port, "/static/nodex/").status, 404);
    // A file asked for as a directory.
    assert_eq!(get(server.port, "/static/css/site.css/").status, 404);
}

#[test]
fn missing_files_get_the_servers_404() {
    let site = Site::new();
    let server = site.serve(&[]);
    let r = get(server.port, "/static/missing.css");
    assert_eq!(r.status, 404);
    // The same response the server makes for its own errors.
    assert_eq!(r.text(), "404 Not Found\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = req(server.port, "HEAD", "/static/missing.css", &[]);
    assert_eq!((r.status, r.body.len()), (404, 0));
}

#[test]
fn precompressed_siblings_with_vary() {
    let site = Site::new();
    let server = site.serve(&[]);
    let p = server.port;
    let r = req(
        p,
        "GET",
        "/static/app.js",
        &[("Accept-Encoding", "gzip, br")],
    );
    assert_eq!(r.text(), "BROTLI BYTES");
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.contains("javascript")));
    let r = req(p, "GET", "/static/app.js", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.text(), "GZIP BYTES");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = req(
        p,
        "GET",
        "/static/app.js",
        &[("Accept-Encoding", "gzip;q=0, br;q=0")],
    );
    assert_eq!(r.text(), JS);
    assert!(r.header("content-encoding").is_none());
    let r = get(p, "/static/app.js");
    assert_eq!(r.text(), JS);
    assert!(r.header("content-encoding").is_none());
    // A real client decodes what it gets.
    let url = format!("http://127.0.0.1:{p}/static/gz-only.js");
    let (_, body) = curl(&["--compressed", &url]);
    assert_eq!(String::from_utf8_lossy(&body), JS);
    let (_, head) = curl(&["--compressed", "-o", "/dev/null", "-D", "-", &url]);
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
}

#[test]
fn traversal_and_encoding_tricks_never_leave_the_directory() {
    let site = Site::new();
    let server = site.serve(&[]);
    let p = server.port;
    // Each reaches the static files and is refused there.
    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/.%2e/secret.txt",
        "/static/css/..%2f..%2fsecret.txt",
        "/static/css%2f..%2f..%2fsecret.txt",
        "/static/..%5csecret.txt",
        "/static/%c0%ae%c0%ae/secret.txt",
        "/static/%e0%80%ae%e0%80%ae/secret.txt",
        "/static/%c0%af..%c0%afsecret.txt",
        "/static/css/site.css%00.png",
        "/static/%00",
        "/static/.env",
        "/static/%2eenv",
        "/static/.git/config",
        "/static/out.txt",
        "/static/outdir/x.txt",
    ] {
        let r = get(p, path);
        assert_not_leaked(&r, path);
        assert_eq!(r.status, 403, "{path}: {}", r.head);
    }
    // Whatever the parser does with these, nothing leaks.
    for raw in [
        "GET /static/..\\secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /static/a/../../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET http://x/static/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /static/\u{0}x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        match request(p, raw.as_bytes()) {
            Ok(r) => assert_not_leaked(&r, raw),
            Err(e) => assert!(
                e.kind() == std::io::ErrorKind::UnexpectedEof,
                "{raw:?}: {e}"
            ),
        }
    }
    // A symlink that stays inside the directory is fine.
    assert_eq!(get(p, "/static/in.txt").text(), "inner");
    assert!(server.log.text().contains("static request refused"));
}

#[test]
fn symlinks_out_and_dotfiles_only_with_their_options() {
    let site = Site::new();
    let server = site.serve(&["--static-follow-symlinks", "--static-allow-dotfiles"]);
    assert_eq!(get(server.port, "/static/out.txt").text(), SECRET);
    assert_eq!(get(server.port, "/static/outdir/x.txt").text(), "other");
    assert_eq!(get(server.port, "/static/.env").text(), DOTFILE);
    // `..` stays refused whatever the options.
    assert_eq!(get(server.port, "/static/%2e%2e/secret.txt").status, 403);
}

#[test]
fn a_changed_file_gets_a_new_etag() {
    let site = Site::new();
    let server = site.serve(&[]);
    let p = server.port;
    let first = get(p, "/static/css/site.css");
    let etag = first.header("etag").expect("etag").to_owned();
    // Same size, new content: only the modification time and the content
    // differ. The new time is set, not waited for: the clock's granularity
    // is no concern of this test.
    let path = site.path("htdocs/css/site.css");
    let old_mtime = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    site.write("htdocs/css/site.css", b"body { color: blue}\n");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(old_mtime + Duration::from_secs(2)))
        .expect("set the modification time");
    let second = get(p, "/static/css/site.css");
    assert_eq!(second.text(), "body { color: blue}\n");
    let etag2 = second.header("etag").expect("etag").to_owned();
    assert_ne!(etag, etag2);
    let r = req(
        p,
        "GET",
        "/static/css/site.css",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 200);
    let r = req(
        p,
        "GET",
        "/static/css/site.css",
        &[("If-None-Match", &etag2)],
    );
    assert_eq!(r.status, 304);
}

#[test]
fn ranges_beyond_4_gib_in_a_sparse_file() {
    let site = Site::new();
    let size: u64 = 5 * 1024 * 1024 * 1024;
    let marker_at: u64 = 4 * 1024 * 1024 * 1024 + 12345;
    {
        let f = std::fs::File::create(site.path("htdocs/huge.bin")).expect("create");
        f.set_len(size).expect("sparse file");
        std::os::unix::fs::FileExt::write_all_at(&f, b"MARKER>4GiB", marker_at).expect("write");
    }
    let server = site.serve(&[]);
    let r = req(server.port, "HEAD", "/static/huge.bin", &[]);
    assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
    let range = format!("bytes={}-{}", marker_at, marker_at + 10);
    let r = req(server.port, "GET", "/static/huge.bin", &[("Range", &range)]);
    assert_eq!(r.status, 206, "{}", r.head);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {}-{}/{size}", marker_at, marker_at + 10).as_str())
    );
    assert_eq!(r.text(), "MARKER>4GiB");
    // sendfile from an offset past 4 GiB, a larger piece than fits in one packet.
    let range = format!("bytes={}-", size - 300_000);
    let r = req(server.port, "GET", "/static/huge.bin", &[("Range", &range)]);
    assert_eq!((r.status, r.body.len()), (206, 300_000));
    assert!(r.body.iter().all(|b| *b == 0));
}

mod serving;
