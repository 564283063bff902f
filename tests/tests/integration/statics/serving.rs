//! Static files: serving under load, with the application, configuration.

use super::*;
use std::sync::Arc;

#[test]
fn served_while_every_python_thread_is_busy() {
    let site = Site::new();
    let server = site.serve(&["--threads", "1"]);
    let p = server.port;
    // Occupy the only Python thread.
    let mut sleeper = connect(p);
    sleeper
        .write_all(b"GET /sleep?3 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    server.wait_running("GET /sleep");
    let t = Instant::now();
    for _ in 0..20 {
        assert_eq!(get(p, "/static/css/site.css").text(), CSS);
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "static files waited for Python: {:?}",
        t.elapsed()
    );
    let r = read_response(&mut sleeper, &mut Vec::new(), false).expect("sleep");
    assert_eq!(r.status, 200);
}

#[test]
fn pipelined_static_and_application_requests_keep_their_order() {
    let site = Site::new();
    let server = site.serve(&[]);
    let mut s = connect(server.port);
    s.write_all(
        b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /static/css/site.css HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /static/missing HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /static/4k.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("send");
    let mut buf = Vec::new();
    let statuses: Vec<(u16, usize)> = (0..5)
        .map(|_| {
            let r = read_response(&mut s, &mut buf, false).expect("response");
            (r.status, r.body.len())
        })
        .collect();
    assert_eq!(statuses[1], (200, CSS.len()));
    assert_eq!(statuses[2].0, 404);
    assert_eq!(statuses[3], (200, 4096));
    assert_eq!((statuses[0].0, statuses[4].0), (200, 200));
    // Keep-alive: one connection for everything, closed at the end as asked.
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    assert_eq!(s.read_to_end(&mut rest).unwrap_or(0), 0);
}

#[test]
fn a_slow_reader_does_not_hold_up_other_clients() {
    let site = Site::new();
    site.write("htdocs/big.bin", &pattern(32 * 1024 * 1024));
    let server = site.serve(&[]);
    // More stalled downloads than there are static threads.
    let mut stalled = Vec::new();
    for _ in 0..6 {
        let mut s = connect(server.port);
        s.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        stalled.push(s);
    }
    // Each download has begun: the server is sending on every connection.
    for s in &stalled {
        assert_eq!(s.peek(&mut [0u8; 1]).expect("the first bytes"), 1);
    }
    let t = Instant::now();
    for _ in 0..20 {
        assert_eq!(get(server.port, "/static/css/site.css").text(), CSS);
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The stalled downloads still complete once read.
    for mut s in stalled {
        let r = read_response(&mut s, &mut Vec::new(), false).expect("big");
        assert_eq!(r.body.len(), 32 * 1024 * 1024);
    }
}

#[test]
fn single_file_alias_and_longest_prefix() {
    let site = Site::new();
    let htdocs = site.s("htdocs");
    let other = site.s("other");
    let icon = site.s("favicon.ico");
    let server = Server::start(&[
        "--url-alias",
        "/static",
        &htdocs,
        "--url-alias",
        "/static/css/",
        &other,
        "--url-alias",
        "/favicon.ico",
        &icon,
        &app("app.py"),
    ]);
    let r = get(server.port, "/favicon.ico");
    assert_eq!(r.text(), "ICO");
    assert_eq!(r.header("content-type"), Some("image/x-icon"));
    assert_eq!(get(server.port, "/favicon.ico/x").status, 404);
    // /static/css/ maps to other/, not htdocs/css/.
    assert_eq!(get(server.port, "/static/css/x.txt").text(), "other");
    assert_eq!(get(server.port, "/static/css/site.css").status, 404);
    assert_eq!(get(server.port, "/static/app.js").text(), JS);
    let log = server.log.text();
    assert!(log.contains("static files: "), "{log}");
    assert!(log.contains("/static/css/ -> "), "{log}");
    assert!(log.contains("/favicon.ico -> "), "{log}");
}

#[test]
fn relative_paths_are_relative_to_the_start_directory() {
    let site = Site::new();
    // The path of htdocs relative to this process's directory (where rwsgi starts).
    let cwd = std::env::current_dir().expect("cwd");
    let rel = relative(&cwd, &site.path("htdocs"));
    assert!(rel.is_relative());
    let server = Server::start(&[
        "--working-directory",
        "/",
        "--url-alias",
        "/static",
        &rel.to_string_lossy(),
        &app("app.py"),
    ]);
    assert_eq!(get(server.port, "/static/css/site.css").text(), CSS);
}

fn relative(from: &Path, to: &Path) -> PathBuf {
    let mut rel = PathBuf::new();
    for _ in from.components().skip(1) {
        rel.push("..");
    }
    rel.push(to.strip_prefix("/").unwrap_or(to));
    rel
}

#[test]
fn document_root_serves_existing_files_and_leaves_the_rest_to_the_app() {
    let site = Site::new();
    let root = site.s("htdocs");
    let server = Server::start(&["--document-root", &root, &app("app.py")]);
    let p = server.port;
    assert_eq!(get(p, "/css/site.css").text(), CSS);
    assert_eq!(get(p, "/environ").status, 200);
    // Missing files, directories without an index, refused names: the app's.
    for path in [
        "/missing.css",
        "/",
        "/docs/",
        "/.env",
        "/out.txt",
        "/%2e%2e/secret.txt",
    ] {
        let r = get(p, path);
        assert_eq!(r.text(), "not found", "{path}: {}", r.head);
    }
    // POST to an existing file is not the app's either.
    assert_eq!(req(p, "POST", "/css/site.css", &[]).status, 405);
    drop(server);
    let server = Server::start(&[
        "--document-root",
        &root,
        "--directory-index",
        "index.html",
        &app("app.py"),
    ]);
    assert_eq!(get(server.port, "/docs/").text(), "<h1>docs</h1>");
    assert_eq!(get(server.port, "/docs").header("location"), Some("/docs/"));
    assert_eq!(get(server.port, "/nodex/").text(), "not found");
}

#[test]
fn application_type_static_serves_only_files() {
    let site = Site::new();
    site.write("htdocs/index.html", b"home page");
    let root = site.s("htdocs");
    // The document root as the entry point, as with mod_wsgi-express.
    let server = Server::start(&["--application-type", "static", &root]);
    let p = server.port;
    assert_eq!(get(p, "/").text(), "home page");
    assert_eq!(get(p, "/css/site.css").text(), CSS);
    assert_eq!(get(p, "/docs").status, 301);
    let r = get(p, "/missing");
    assert_eq!((r.status, r.text().as_str()), (404, "404 Not Found\n"));
    assert_eq!(get(p, "/%2e%2e/secret.txt").status, 403);
    assert_eq!(req(p, "POST", "/", &[]).status, 405);
    drop(server);
    let server = Server::start(&["--application-type", "static", "--document-root", &root]);
    assert_eq!(get(server.port, "/css/site.css").text(), CSS);
    assert!(server.log.text().contains("(static only)"));
}

#[test]
fn curl_sees_the_same_headers() {
    let site = Site::new();
    let server = site.serve(&[]);
    let url = format!("http://127.0.0.1:{}/static/4k.bin", server.port);
    let (_, head) = curl(&["-I", &url]);
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    for want in [
        "http/1.1 200 ok",
        "content-length: 4096",
        "accept-ranges: bytes",
        "etag: \"",
        "last-modified: ",
        "content-type: application/octet-stream",
    ] {
        assert!(head.contains(want), "{want} in\n{head}");
    }
    let (_, body) = curl(&["-r", "10-19", &url]);
    assert_eq!(body, &pattern(4096)[10..20]);
    let (_, code) = curl(&["-o", "/dev/null", "-w", "%{http_code}", "-r", "9000-", &url]);
    assert_eq!(String::from_utf8_lossy(&code), "416");
    // -z: If-Modified-Since from a file's time.
    let (_, code) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-z",
        &site.s("htdocs/4k.bin"),
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&code), "304");
    let (_, code) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "DELETE",
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&code), "405");
    let dir = format!("http://127.0.0.1:{}/static/docs", server.port);
    let (_, body) = curl(&["-L", &dir]);
    assert_eq!(String::from_utf8_lossy(&body), "<h1>docs</h1>");
    // Keep-alive: curl reuses one connection for two URLs.
    let css = format!("http://127.0.0.1:{}/static/css/site.css", server.port);
    let (err, _) = curl(&["-v", "-o", "/dev/null", "-o", "/dev/null", &url, &css]);
    // "Re-using existing connection" (curl 7), "Re-using existing http: connection"
    // (curl 8.14), "Reusing existing http: connection" (curl 8.23).
    assert!(
        err.contains("Re-using existing") || err.contains("Reusing existing"),
        "{err}"
    );
}

#[test]
fn options_are_real_and_checked() {
    let out = Command::new(binary("rwsgi"))
        .args(["start-server", "--help"])
        .output()
        .expect("run rwsgi");
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--url-alias",
        "--document-root",
        "--directory-index",
        "--static-max-age",
        "--static-follow-symlinks",
        "--static-allow-dotfiles",
    ] {
        assert!(help.contains(opt), "{opt} missing from help");
    }
    let site = Site::new();
    let htdocs = site.s("htdocs");
    // No "accepted but ignored" warning any more.
    let server = site.serve(&[]);
    assert!(!server.log.text().contains("--url-alias is accepted"));
    drop(server);
    for (args, needle) in [
        (
            vec!["--url-alias", "static", htdocs.as_str()],
            "--url-alias",
        ),
        (
            vec!["--document-root", "/nonexistent/dir"],
            "--document-root",
        ),
        (vec!["--directory-index", "../x"], "--directory-index"),
    ] {
        let mut all = args.clone();
        let a = app("hello.py");
        all.push(&a);
        let mut server = Server::builder().args(all).no_wait().start();
        let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
        assert!(!status.success());
        assert!(server.log.text().contains(needle), "{}", server.log.text());
    }
    // A missing alias directory is reported, and served once it exists.
    let later = site.s("later");
    let server = Server::start(&["--url-alias", "/later", &later, &app("hello.py")]);
    assert!(server.log.text().contains("(missing)"));
    assert_eq!(get(server.port, "/later/x.txt").status, 404);
    site.write("later/x.txt", b"now here");
    assert_eq!(get(server.port, "/later/x.txt").text(), "now here");
}

#[test]
fn one_connection_moves_between_static_files_and_the_app() {
    let site = Site::new();
    let server = site.serve(&[]);
    let mut s = connect(server.port);
    let mut buf = Vec::new();
    let mut ask = |path: &str| {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .expect("send");
        read_response(&mut s, &mut buf, false).expect("response")
    };
    // Request by request (not pipelined), with pauses shorter and longer
    // than a static thread keeps a connection.
    assert_eq!(ask("/static/css/site.css").text(), CSS);
    assert_eq!(ask("/static/4k.bin").body.len(), 4096);
    assert_eq!(ask("/pid").status, 200);
    assert_eq!(ask("/static/css/site.css").text(), CSS);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(ask("/static/missing").status, 404);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(ask("/static/css/site.css").text(), CSS);
    assert_eq!(ask("/environ").status, 200);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(ask("/static/docs/").text(), "<h1>docs</h1>");
}

#[test]
fn graceful_stop_is_not_held_up_by_a_busy_static_client() {
    let site = Site::new();
    let mut server = site.serve(&["--graceful-timeout", "30"]);
    let port = server.port;
    let served = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&served);
    let client = std::thread::spawn(move || {
        // One keep-alive connection asking for static files without a pause.
        let mut s = connect(port);
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut buf = Vec::new();
        loop {
            if s.write_all(b"GET /static/css/site.css HTTP/1.1\r\nHost: x\r\n\r\n")
                .is_err()
            {
                break;
            }
            match read_response(&mut s, &mut buf, false) {
                Ok(r) if r.status == 200 => counted.fetch_add(1, Ordering::Relaxed),
                _ => break,
            };
        }
    });
    server.wait_until(
        "the static client to be busy",
        Duration::from_secs(10),
        || served.load(Ordering::Relaxed) > 10,
    );
    let asked = Instant::now();
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("rwsgi exits");
    assert!(status.success(), "{status:?}\n{}", server.log.text());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the stop waited {:?} for a static connection",
        asked.elapsed()
    );
    client.join().expect("client");
    let served = served.load(Ordering::Relaxed);
    assert!(served > 10, "{served} responses before the stop");
}
