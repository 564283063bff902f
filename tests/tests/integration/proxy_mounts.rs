//! `--proxy-mount-point`, `--proxy-url-alias`, `--proxy-virtual-host`,
//! `--proxy-timeout`: rwsgi relaying to another HTTP server (a plain
//! Python http.server, `apps/proxy_backend.py`) with curl and raw
//! sockets as the clients; and what a dead, a silent or a broken backend
//! costs the client.

use rwsgi_tests::client::{connect, read_response, Response};
use rwsgi_tests::{app, json, request, Server};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The backend: a Python http.server on a port it picks; killed on drop.
struct Backend {
    child: Child,
    port: u16,
}

impl Backend {
    fn start() -> Backend {
        let mut child = Command::new(rwsgi_tests::test_venv().join("bin/python"))
            .arg(app("proxy_backend.py"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the backend");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the backend says its port");
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port from the backend: {line:?}"));
        Backend { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The connection a client makes to `listener` within 20 s, if any
/// (bounded: without the proxy, nobody ever connects).
fn accept_within(listener: &TcpListener) -> Option<TcpStream> {
    listener.set_nonblocking(true).ok()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok()?;
                return Some(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(_) => return None,
        }
    }
    None
}

/// rwsgi serving hello.py with `extra` options.
fn serve(extra: &[&str]) -> Server {
    let hello = app("hello.py");
    let mut args: Vec<&str> = extra.to_vec();
    args.push(&hello);
    Server::start(&args)
}

fn curl(args: &[&str]) -> (i32, String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "/dev/stderr"])
        .args(args)
        .output()
        .expect("curl is installed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_ascii_lowercase(),
        out.stdout,
    )
}

/// The headers the backend received, as (lower-case name, value).
fn seen(body: &[u8]) -> Vec<(String, String)> {
    json(body)["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap_or("").to_ascii_lowercase(),
                p[1].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "rwsgi-proxy-{name}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn requests_under_a_mount_reach_the_backend_at_its_path() {
    let backend = Backend::start();
    let server = serve(&["--proxy-mount-point", "/api", &backend.url("/v1")]);
    let base = format!("http://127.0.0.1:{}", server.port);

    let (rc, head, body) = curl(&[&format!("{base}/api/echo?x=1&y=%2F")]);
    assert_eq!(rc, 0, "{head}");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let echo = json(&body);
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["target"], "/v1/echo?x=1&y=%2F");

    // A body of known length, and a chunked one, arrive whole.
    let (rc, _, body) = curl(&["--data-binary", "a body", &format!("{base}/api/echo")]);
    assert_eq!(rc, 0);
    assert_eq!(json(&body)["body"], "a body");
    let big = "0123456789abcdef".repeat(40_000);
    let file = TempDir::new("upload");
    let path = file.0.join("big");
    std::fs::write(&path, &big).expect("write the upload");
    let (rc, _, body) = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", path.display()),
        &format!("{base}/api/echo"),
    ]);
    assert_eq!(rc, 0);
    let echo = json(&body);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"].as_str().map(str::len), Some(big.len()));
    assert!(echo["body"] == big.as_str());

    // Outside the mount: the application, as before.
    assert_eq!(rwsgi_tests::get(server.port, "/").text(), "Hello World!");
    assert_eq!(
        rwsgi_tests::get(server.port, "/apix").text(),
        "Hello World!"
    );
    // ".." never climbs out of the mount into the backend's other paths.
    let r = rwsgi_tests::get(server.port, "/api/../secret");
    assert_eq!(r.text(), "Hello World!");

    // Two requests on one kept-alive connection, the second a pipelined POST.
    let mut s = connect(server.port);
    s.write_all(
        b"GET /api/echo HTTP/1.1\r\nHost: a\r\n\r\nPOST /api/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    )
    .expect("send");
    let mut buf = Vec::new();
    let first = read_response(&mut s, &mut buf, false).expect("first");
    let second = read_response(&mut s, &mut buf, false).expect("second");
    assert_eq!(json(&first.body)["method"], "GET");
    assert_eq!(json(&second.body)["body"], "abc");
}

#[test]
fn an_upload_reaches_the_backend_as_it_arrives() {
    let backend = Backend::start();
    let server = serve(&["--proxy-mount-point", "/api", &backend.url("/v1")]);
    let dir = TempDir::new("upload-stream");
    let flag = dir.0.join("first-chunk-arrived");
    let mut s = connect(server.port);
    s.write_all(
        format!(
            "POST /api/echo?flag={} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst \r\n",
            flag.display()
        )
        .as_bytes(),
    )
    .expect("send the first chunk");
    // The rest is sent only once the backend has the first chunk: a proxy
    // that waited for the whole body would wait forever.
    assert!(
        rwsgi_tests::poll_until(Duration::from_secs(20), || flag.exists()),
        "the first chunk never reached the backend"
    );
    s.write_all(b"6\r\nsecond\r\n0\r\n\r\n")
        .expect("send the rest");
    let r = read_response(&mut s, &mut Vec::new(), false).expect("response");
    assert_eq!(json(&r.body)["body"], "first second");
}

#[test]
fn the_backend_gets_x_forwarded_and_no_hop_by_hop_fields() {
    let backend = Backend::start();
    let server = serve(&["--proxy-url-alias", "/api/", &backend.url("/v1/")]);
    let raw = format!(
        "GET /api/echo HTTP/1.1\r\nHost: site.test:{}\r\nConnection: close, X-Private\r\n\
         X-Private: 1\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\nUpgrade: h2c\r\n\
         Proxy-Authorization: Basic eDp5\r\nX-Forwarded-For: 10.9.9.9\r\nX-Kept: yes\r\n\r\n",
        server.port
    );
    let r = request(server.port, raw.as_bytes()).expect("request");
    assert_eq!(r.status, 200, "{}", r.text());
    let h = seen(&r.body);
    for gone in [
        "x-private",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
    ] {
        assert_eq!(header(&h, gone), None, "{gone} forwarded: {h:?}");
    }
    assert_eq!(header(&h, "x-kept"), Some("yes"));
    // ProxyPreserveHost is off: the backend is addressed by its own name.
    assert_eq!(
        header(&h, "host"),
        Some(format!("127.0.0.1:{}", backend.port).as_str())
    );
    assert_eq!(header(&h, "x-forwarded-for"), Some("10.9.9.9, 127.0.0.1"));
    let site = format!("site.test:{}", server.port);
    assert_eq!(header(&h, "x-forwarded-host"), Some(site.as_str()));
    // Apache's ServerName: --server-name, else --host (the harness binds 127.0.0.1).
    assert_eq!(header(&h, "x-forwarded-server"), Some("127.0.0.1"));
    let port = server.port.to_string();
    assert_eq!(header(&h, "x-forwarded-port"), Some(port.as_str()));
    assert_eq!(header(&h, "x-forwarded-prefix"), Some("/api"));

    // Nor does the client get the backend's hop-by-hop fields.
    let r = rwsgi_tests::get(server.port, "/api/hop");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-end-to-end"), Some("kept"));
    for gone in ["x-hop-field", "keep-alive", "proxy-authenticate", "upgrade"] {
        assert_eq!(r.header(gone), None, "{gone} relayed: {}", r.head);
    }
}

#[test]
fn a_streamed_response_reaches_the_client_piece_by_piece() {
    let backend = Backend::start();
    let server = serve(&["--proxy-mount-point", "/api", &backend.url("/v1")]);
    let dir = TempDir::new("stream");
    let flag = dir.0.join("read-the-first-piece");
    let mut s = connect(server.port);
    s.write_all(
        format!(
            "GET /api/stream?flag={} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            flag.display()
        )
        .as_bytes(),
    )
    .expect("send");
    // The backend sends its second piece only once the first was read
    // here: the proxy must not wait for the whole body.
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("first\n") {
        let n = s.read(&mut chunk).expect("the first piece arrives alone");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(!String::from_utf8_lossy(&got).contains("second"));
    std::fs::write(&flag, b"").expect("flag");
    s.read_to_end(&mut got).expect("the rest");
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("second\n"), "{text}");
    // Re-chunked for the client, and ended properly.
    assert!(text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    assert!(text.ends_with("0\r\n\r\n"), "{text}");
}

#[test]
fn redirects_are_mapped_back_and_the_bare_mount_gets_its_slash() {
    let backend = Backend::start();
    let server = serve(&["--proxy-mount-point", "/api", &backend.url("/v1")]);
    let r = rwsgi_tests::get(server.port, "/api/redirect");
    assert_eq!(r.status, 302);
    // The backend said http://127.0.0.1:BACKEND/v1/target?n=1.
    assert_eq!(
        r.header("location"),
        Some("http://127.0.0.1/api/target?n=1"),
        "{}",
        r.head
    );
    let r = rwsgi_tests::get(server.port, "/api?q=1");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://127.0.0.1/api/?q=1"));
    // curl follows it to the backend.
    let (rc, _, body) = curl(&["-L", &format!("http://127.0.0.1:{}/api", server.port)]);
    assert_eq!(rc, 0);
    assert_eq!(json(&body)["target"], "/v1/");
}

#[test]
fn a_dead_backend_is_a_503_at_once_and_a_mute_one_a_502() {
    let mut backend = Backend::start();
    let url = backend.url("/v1");
    backend.stop();
    // Accepts, reads the request, closes without answering.
    let mute = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mute_url = format!("http://{}/", mute.local_addr().expect("addr"));
    let server = serve(&[
        "--proxy-mount-point",
        "/dead",
        &url,
        "--proxy-mount-point",
        "/mute",
        &mute_url,
    ]);
    let mute_thread = std::thread::spawn(move || {
        if let Some(mut s) = accept_within(&mute) {
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b);
        }
    });
    let started = Instant::now();
    let r = rwsgi_tests::get(server.port, "/dead/x");
    assert_eq!(r.status, 503, "{}", r.head);
    assert!(started.elapsed() < Duration::from_secs(10));
    let r = rwsgi_tests::get(server.port, "/mute/x");
    assert_eq!(r.status, 502, "{}", r.head);
    let _ = mute_thread.join();
    assert!(server.log.text().contains("backend failed"));
}

#[test]
fn a_backend_that_does_not_answer_is_a_504_after_the_proxy_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", silent.local_addr().expect("addr"));
    let server = serve(&["--proxy-mount-point", "/slow", &url, "--proxy-timeout", "1"]);
    let started = Instant::now();
    let (r, held) = std::thread::scope(|scope| {
        // Holds the connection open, never answering, until the client is done.
        let holder = scope.spawn(|| accept_within(&silent));
        let r = request(
            server.port,
            b"GET /slow/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        (r, holder.join().ok().flatten())
    });
    let r: Response = r.expect("an answer, not a hung client");
    assert_eq!(r.status, 504, "{}", r.head);
    assert!(held.is_some());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[test]
fn a_body_the_backend_cuts_short_is_never_complete_for_the_client() {
    let backend = Backend::start();
    let server = serve(&["--proxy-mount-point", "/api", &backend.url("/v1")]);
    // Content-Length 100, 10 bytes, then the backend closes: curl sees
    // the transfer end early (exit 18), never a complete response.
    let (rc, head, body) = curl(&[&format!("http://127.0.0.1:{}/api/cut", server.port)]);
    assert_eq!(rc, 18, "{head}");
    assert_eq!(body, b"0123456789");
    // A body delimited by the backend's close is complete when it closes,
    // and re-chunked: the client connection can stay open.
    let r = request(server.port, b"GET /api/close HTTP/1.1\r\nHost: a\r\n\r\n").expect("request");
    assert_eq!(r.text(), "until the end\n");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
}

#[test]
fn a_proxied_virtual_host_takes_every_path_of_its_host() {
    let backend = Backend::start();
    let server = serve(&[
        "--proxy-virtual-host",
        "side.example.test",
        &backend.url("/v1"),
    ]);
    let (rc, _, body) = curl(&[
        "-H",
        "Host: Side.Example.Test",
        &format!("http://127.0.0.1:{}/echo?z", server.port),
    ]);
    assert_eq!(rc, 0);
    let echo = json(&body);
    assert_eq!(echo["target"], "/v1/echo?z");
    let h = seen(&body);
    assert_eq!(header(&h, "x-forwarded-host"), Some("Side.Example.Test"));
    assert_eq!(header(&h, "x-forwarded-server"), Some("side.example.test"));
    assert_eq!(header(&h, "x-forwarded-prefix"), None);
    // Another Host: this site's application.
    assert_eq!(
        rwsgi_tests::get(server.port, "/echo").text(),
        "Hello World!"
    );
}

#[test]
fn a_backend_url_rwsgi_cannot_use_is_a_one_line_error_naming_the_option() {
    for (args, option) in [
        (
            ["--proxy-mount-point", "/api", "https://127.0.0.1/"],
            "--proxy-mount-point",
        ),
        (
            ["--proxy-mount-point", "api", "http://127.0.0.1/"],
            "--proxy-mount-point",
        ),
        (
            ["--proxy-url-alias", "/api", "ftp://127.0.0.1/"],
            "--proxy-url-alias",
        ),
        (
            ["--proxy-virtual-host", "side.test", "127.0.0.1:80"],
            "--proxy-virtual-host",
        ),
    ] {
        let mut child = Command::new(rwsgi_tests::server::binary("rwsgi"))
            .arg("start-server")
            .args(["--port", "0", "--host", "127.0.0.1"])
            .args(args)
            .arg(app("hello.py"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rwsgi runs");
        let exited = rwsgi_tests::poll_until(Duration::from_secs(20), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = child.kill();
        }
        let out = child.wait_with_output().expect("rwsgi ends");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(exited, "{args:?}: rwsgi started: {err}");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(option), "{args:?}: {err}");
    }
}

#[test]
fn the_auth_script_guards_proxied_requests_as_the_rest_of_the_site() {
    let backend = Backend::start();
    let server = serve(&[
        "--proxy-mount-point",
        "/api",
        &backend.url("/v1"),
        "--auth-user-script",
        &app("auth/users.py"),
    ]);
    let url = format!("http://127.0.0.1:{}/api/echo", server.port);
    let (rc, head, _) = curl(&[&url]);
    assert_eq!(rc, 0);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    let (rc, head, _) = curl(&["--user", "alice:wrong", &url]);
    assert_eq!(rc, 0);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    let (rc, head, body) = curl(&["--user", "alice:wonder land", &url]);
    assert_eq!(rc, 0);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(json(&body)["target"], "/v1/echo");
}
