//! `--server-name`, `--server-alias`, `--allow-localhost`: the Host
//! allow-list mod_wsgi-express builds from name-based virtual hosts, and
//! its redirect from the parent domain to a `www.` server name.

use rwsgi_tests::client::{connect, read_response};
use rwsgi_tests::{app, request, Response, Server};
use std::io::Write;
use std::path::PathBuf;

fn for_host(port: u16, host: &str, path: &str) -> Response {
    request(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap_or_else(|e| panic!("GET {path} for {host}: {e}"))
}

/// A directory with one static file, removed when the test ends.
struct Htdocs(PathBuf);

impl Htdocs {
    fn new() -> Htdocs {
        let dir = std::env::temp_dir().join(format!("rwsgi-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("style.css"), "body {}\n").expect("write");
        Htdocs(dir)
    }
    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for Htdocs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn only_the_server_name_and_its_aliases_are_served() {
    let htdocs = Htdocs::new();
    let server = Server::start(&[
        "--server-name",
        "example.com",
        "--server-alias",
        "*.example.org",
        "--url-alias",
        "/static",
        &htdocs.path(),
        &app("hello.py"),
    ]);
    let port = server.port;
    for host in ["example.com", "EXAMPLE.COM:8000", "api.example.org"] {
        let r = for_host(port, host, "/");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Hello World!"),
            "{host}"
        );
        assert_eq!(
            for_host(port, host, "/static/style.css").status,
            200,
            "{host}"
        );
    }
    for host in [
        "evil.com",
        "127.0.0.1",
        "example.org",
        "example.com.evil.com",
    ] {
        let r = for_host(port, host, "/");
        assert_eq!(r.status, 403, "{host}: {}", r.head);
        assert_ne!(r.text(), "Hello World!");
        assert_eq!(
            for_host(port, host, "/static/style.css").status,
            403,
            "{host}"
        );
    }
    // HTTP/1.0 without a Host: the default virtual host refuses it too.
    let r = request(port, b"GET / HTTP/1.0\r\n\r\n").expect("request");
    assert_eq!(r.status, 403);
    let log = server.log.text();
    assert!(log.contains("Host not served (--server-name)"), "{log}");
    assert!(!log.contains("--server-alias is accepted"), "{log}");
}

#[test]
fn a_pipelined_request_for_another_host_is_refused() {
    let server = Server::start(&["--server-name", "example.com", &app("hello.py")]);
    let mut s = connect(server.port);
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\nGET / HTTP/1.1\r\nHost: evil.com\r\n\r\n",
    )
    .expect("write");
    let mut buf = Vec::new();
    let first = read_response(&mut s, &mut buf, false).expect("first response");
    assert_eq!((first.status, first.text().as_str()), (200, "Hello World!"));
    let second = read_response(&mut s, &mut buf, false).expect("second response");
    assert_eq!(second.status, 403, "{}", second.head);
}

#[test]
fn allow_localhost_lets_local_clients_use_any_host() {
    let server = Server::start(&[
        "--server-name",
        "example.com",
        "--allow-localhost",
        "--trust-proxy-header",
        "X-Forwarded-For",
        "--trust-proxy",
        "127.0.0.1",
        &app("hello.py"),
    ]);
    // The tests' clients are on loopback.
    for host in ["localhost", "evil.com"] {
        let r = for_host(server.port, host, "/");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Hello World!"),
            "{host}"
        );
    }
    // A client far away (as a trusted proxy names it) is not local.
    let far = |host: &str| {
        request(
            server.port,
            format!(
                "GET / HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("request")
    };
    assert_eq!(far("evil.com").status, 403);
    assert_eq!(far("example.com").status, 200);
}

#[test]
fn the_parent_domain_of_a_www_name_is_redirected() {
    let server = Server::start(&["--server-name", "www.example.com", &app("hello.py")]);
    let port = server.port;
    let r = for_host(port, &format!("example.com:{port}"), "/a/b?x=1");
    assert_eq!(r.status, 301, "{}", r.head);
    assert_eq!(
        r.header("location"),
        Some(format!("http://www.example.com:{port}/a/b?x=1").as_str())
    );
    let r = for_host(port, "www.example.com", "/");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello World!"));
    assert_eq!(for_host(port, "other.example.com", "/").status, 403);
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_host_decides() {
    let server = Server::start(&[
        "--server-name",
        "www.example.com",
        "--trust-proxy-header",
        "X-Forwarded-Host",
        "--trust-proxy-header",
        "X-Forwarded-Proto",
        "--trust-proxy",
        "127.0.0.1",
        &app("hello.py"),
    ]);
    let ask = |host: &str, forwarded: &str| {
        request(
            server.port,
            format!("GET /p HTTP/1.1\r\nHost: {host}\r\n{forwarded}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .expect("request")
    };
    let r = ask("backend:8000", "X-Forwarded-Host: www.example.com\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello World!"));
    let r = ask("www.example.com", "X-Forwarded-Host: evil.com\r\n");
    assert_eq!(r.status, 403);
    let r = ask(
        "backend:8000",
        "X-Forwarded-Host: example.com\r\nX-Forwarded-Proto: https\r\n",
    );
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://www.example.com/p"));
}

#[test]
fn a_bad_server_name_is_an_error_naming_the_option() {
    // Bounded: a server that did not refuse the value would run on.
    let out = std::process::Command::new("timeout")
        .arg("30")
        .arg(rwsgi_tests::server::binary("rwsgi"))
        .args(["start-server", "--host", "127.0.0.1", "--port", "0"])
        .args(["--server-alias", "a b", "--server-name", "x.org"])
        .arg(app("hello.py"))
        .output()
        .expect("run rwsgi");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("'--server-alias'"), "{err}");
}
