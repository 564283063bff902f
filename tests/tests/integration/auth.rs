//! mod_wsgi's auth and host-access providers: `--auth-user-script` with
//! `--auth-type Basic|Digest`, `--auth-group-script` with `--auth-group`,
//! `--host-access-script`. Real clients (curl, python requests) against the
//! whole site, static files included.

use rwsgi_tests::client::{connect, read_response};
use rwsgi_tests::server::binary;
use rwsgi_tests::{app, json, request, test_venv, Server};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const STATIC_TEXT: &str = "a static file behind the guard\n";

/// A directory with one static file, removed when dropped.
struct StaticDir(PathBuf);

impl StaticDir {
    fn new() -> StaticDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "auth-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("f.txt"), STATIC_TEXT).expect("write");
        StaticDir(dir)
    }

    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for StaticDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn script(name: &str) -> String {
    app(&format!("auth/{name}"))
}

/// A server of tests/apps/auth/app.py with `args` and `/static` mounted.
fn start(statics: &StaticDir, args: &[&str]) -> Server {
    let mut all = vec![
        app("auth/app.py"),
        "--threads".into(),
        "2".into(),
        "--url-alias".into(),
        "/static".into(),
        statics.path(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    Server::start(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

/// curl's status line, headers and body (`-i`), with `args` before the URL.
fn curl(port: u16, path: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "20"])
        .args(args)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    // With --digest, curl prints the 401 of the first round too: the last
    // response is the answer.
    let last = text
        .rfind("HTTP/1.1 ")
        .map(|i| text[i..].to_owned())
        .unwrap_or_default();
    let status = last
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, last)
}

fn body(response: &str) -> &str {
    response
        .split_once("\n\n")
        .map(|(_, b)| b)
        .unwrap_or_default()
}

/// Runs python requests from the test venv: prints "status body" per URL.
fn requests(port: u16, auth: &str, user: &str, password: &str, paths: &[&str]) -> Vec<String> {
    let code = format!(
        r#"
import sys, requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth
s = requests.Session()
s.auth = {auth}({user:?}, {password:?})
for path in sys.argv[1:]:
    r = s.get("http://127.0.0.1:{port}" + path, timeout=20)
    print(r.status_code, r.text.strip())
"#
    );
    let out = Command::new(test_venv().join("bin/python"))
        .arg("-c")
        .arg(code)
        .args(paths)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn basic_auth_guards_the_application_and_static_files() {
    let statics = StaticDir::new();
    let server = start(&statics, &["--auth-user-script", &script("users.py")]);
    let port = server.port;

    // No credentials: 401 with mod_wsgi-express's realm, static files too.
    for path in ["/", "/static/f.txt"] {
        let (status, r) = curl(port, path, &[]);
        assert_eq!(status, 401, "{path}: {r}");
        assert!(
            r.contains("WWW-Authenticate: Basic realm=\"127.0.0.1:0\""),
            "{r}"
        );
        assert!(!r.contains(STATIC_TEXT), "{r}");
    }
    // Wrong password (False) and unknown user (None) alike.
    for user in ["alice:wrong", "nobody:x"] {
        let (status, r) = curl(port, "/", &["--user", user]);
        assert_eq!(status, 401, "{user}: {r}");
    }
    let (status, r) = curl(port, "/", &["--user", "alice:wonder land"]);
    assert_eq!(status, 200, "{r}");
    let env = json(body(&r).as_bytes());
    assert_eq!(env["REMOTE_USER"], "alice");
    assert_eq!(env["AUTH_TYPE"], "Basic");
    // Off the I/O thread: the script ran on a request thread.
    let thread = env["script_thread"].as_str().unwrap_or_default();
    assert!(thread.starts_with("rwsgi-request"), "{thread}");

    let (status, r) = curl(port, "/static/f.txt", &["--user", "alice:wonder land"]);
    assert_eq!(status, 200, "{r}");
    assert_eq!(body(&r), STATIC_TEXT);

    // check_password may name the user; an exception is a 500.
    let (_, r) = curl(port, "/", &["--user", "alias:x"]);
    assert_eq!(json(body(&r).as_bytes())["REMOTE_USER"], "alice", "{r}");
    let (status, _) = curl(port, "/", &["--user", "raise:x"]);
    assert_eq!(status, 500);
    assert!(server
        .log
        .wait_for("the user store is down", std::time::Duration::from_secs(10)));

    // python requests, one session: the app then static files on a kept-alive connection.
    let lines = requests(
        port,
        "HTTPBasicAuth",
        "bob",
        "builder",
        &["/", "/static/f.txt", "/static/f.txt"],
    );
    assert!(
        lines[0].starts_with("200 ") && lines[0].contains("\"bob\""),
        "{lines:?}"
    );
    let static_ok = format!("200 {}", STATIC_TEXT.trim());
    assert_eq!(lines[1..], [static_ok.clone(), static_ok], "{lines:?}");
    let lines = requests(
        port,
        "HTTPBasicAuth",
        "bob",
        "wrong",
        &["/", "/static/f.txt"],
    );
    assert!(lines.iter().all(|l| l.starts_with("401 ")), "{lines:?}");
}

#[test]
fn a_static_request_after_an_allowed_one_is_checked_too() {
    // Two requests pipelined on one connection: the second has no
    // credentials and must not ride on the first one's check.
    let statics = StaticDir::new();
    let server = start(&statics, &["--auth-user-script", &script("users.py")]);
    let mut s = connect(server.port);
    // "alice:wonder land"
    s.write_all(
        b"GET /static/f.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6d29uZGVyIGxhbmQ=\r\n\r\n\
          GET /static/f.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .expect("send");
    let mut buf = Vec::new();
    let first = read_response(&mut s, &mut buf, false).expect("first");
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), STATIC_TEXT);
    let second = read_response(&mut s, &mut buf, false).expect("second");
    assert_eq!(second.status, 401, "{}", second.head);
}

#[test]
fn digest_auth_with_curl_and_requests() {
    let statics = StaticDir::new();
    let server = start(
        &statics,
        &[
            "--auth-user-script",
            &script("users.py"),
            "--auth-type",
            "Digest",
        ],
    );
    let port = server.port;

    let (status, r) = curl(port, "/static/f.txt", &[]);
    assert_eq!(status, 401, "{r}");
    assert!(
        r.contains("WWW-Authenticate: Digest realm=\"127.0.0.1:0\""),
        "{r}"
    );
    assert!(r.contains("qop=\"auth\""), "{r}");

    let (status, r) = curl(port, "/p?q=1", &["--digest", "--user", "alice:wonder land"]);
    assert_eq!(status, 200, "{r}");
    let env = json(body(&r).as_bytes());
    assert_eq!(env["REMOTE_USER"], "alice");
    assert_eq!(env["AUTH_TYPE"], "Digest");
    let (status, r) = curl(
        port,
        "/static/f.txt",
        &["--digest", "--user", "alice:wonder land"],
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(body(&r), STATIC_TEXT);
    for user in ["alice:wrong", "nobody:x"] {
        let (status, r) = curl(port, "/", &["--digest", "--user", user]);
        assert_eq!(status, 401, "{user}: {r}");
    }
    // Basic credentials are no answer to a Digest site.
    let (status, _) = curl(port, "/", &["--basic", "--user", "alice:wonder land"]);
    assert_eq!(status, 401);

    let lines = requests(
        port,
        "HTTPDigestAuth",
        "bob",
        "builder",
        &["/", "/static/f.txt", "/"],
    );
    assert!(
        lines[0].starts_with("200 ") && lines[0].contains("\"Digest\""),
        "{lines:?}"
    );
    assert_eq!(lines[1], format!("200 {}", STATIC_TEXT.trim()), "{lines:?}");
    assert!(lines[2].starts_with("200 "), "{lines:?}");
    let lines = requests(port, "HTTPDigestAuth", "bob", "wrong", &["/"]);
    assert!(lines[0].starts_with("401 "), "{lines:?}");
}

#[test]
fn a_forged_digest_nonce_is_refused() {
    let statics = StaticDir::new();
    let server = start(
        &statics,
        &[
            "--auth-user-script",
            &script("users.py"),
            "--auth-type",
            "Digest",
        ],
    );
    // A well-formed answer with the right password for a nonce this server
    // never made.
    let nonce = "0000000000000001ffffffffffffffffffffffffffffffff";
    let realm = "127.0.0.1:0";
    let md5 = |s: String| -> String {
        let out = Command::new(test_venv().join("bin/python"))
            .args([
                "-c",
                "import hashlib,sys; print(hashlib.md5(sys.argv[1].encode()).hexdigest())",
            ])
            .arg(s)
            .output()
            .expect("python");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let ha1 = md5(format!("alice:{realm}:wonder land"));
    let ha2 = md5("GET:/".to_owned());
    let response = md5(format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}"));
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Digest username=\"alice\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"/\", qop=auth, nc=00000001, cnonce=\"abc\", response=\"{response}\"\r\n\r\n"
    );
    let r = request(server.port, raw.as_bytes()).expect("request");
    assert_eq!(r.status, 401, "{}", r.head);
}

#[test]
fn groups_for_user_must_hold_the_auth_group() {
    let statics = StaticDir::new();
    let users = script("users.py");
    let server = start(
        &statics,
        &[
            "--auth-user-script",
            &users,
            "--auth-group-script",
            &users,
            "--auth-group",
            "editors",
        ],
    );
    // alice's groups hold b"editors" (bytes, as mod_wsgi accepts); bob's do not.
    let (status, r) = curl(server.port, "/", &["--user", "alice:wonder land"]);
    assert_eq!(status, 200, "{r}");
    for path in ["/", "/static/f.txt"] {
        let (status, r) = curl(server.port, path, &["--user", "bob:builder"]);
        assert_eq!(status, 401, "{path}: {r}");
        assert!(r.contains("WWW-Authenticate: Basic"), "{r}");
    }
}

#[test]
fn host_access_script_refuses_with_403_for_the_whole_site() {
    let statics = StaticDir::new();
    let server = start(&statics, &["--host-access-script", &script("hosts.py")]);
    for path in ["/", "/static/f.txt"] {
        let (status, r) = curl(server.port, path, &[]);
        assert_eq!(status, 403, "{path}: {r}");
        assert!(!r.contains(STATIC_TEXT));
        let (status, r) = curl(server.port, path, &["-H", "X-Access: let-me-in"]);
        assert_eq!(status, 200, "{path}: {r}");
        // None: no opinion, and nothing else forbids.
        let (status, _) = curl(server.port, path, &["-H", "X-Access: no-opinion"]);
        assert_eq!(status, 200, "{path}");
        // A failing script lets no one in.
        let (status, _) = curl(server.port, path, &["-H", "X-Access: raise"]);
        assert_eq!(status, 403, "{path}");
    }
    // No authentication configured: no user in the environ.
    let (_, r) = curl(server.port, "/", &["-H", "X-Access: let-me-in"]);
    assert_eq!(
        json(body(&r).as_bytes())["REMOTE_USER"],
        serde_json::Value::Null
    );
}

#[test]
fn a_script_that_cannot_be_loaded_stops_the_start_naming_its_option() {
    let run = |args: &[&str]| {
        // Bounded: a server that starts anyway must not hang the test.
        let out = Command::new("timeout")
            .arg("60")
            .arg(binary("rwsgi"))
            .arg("start-server")
            .arg(app("auth/app.py"))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .output()
            .expect("run rwsgi");
        assert!(!out.status.success());
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let text = run(&["--auth-user-script", "/nonexistent/users.py"]);
    assert!(text.contains("--auth-user-script"), "{text}");
    let text = run(&["--host-access-script", "/nonexistent/hosts.py"]);
    assert!(text.contains("--host-access-script"), "{text}");
    // Loads, but has no check_password(): the workers cannot serve it.
    let text = run(&["--auth-user-script", &script("no_check.py")]);
    assert!(
        text.contains("--auth-user-script") && text.contains("check_password"),
        "{text}"
    );
    let text = run(&[
        "--auth-user-script",
        &script("users.py"),
        "--auth-type",
        "Bearer",
    ]);
    assert!(text.contains("--auth-type"), "{text}");
    let text = run(&["--auth-group-script", &script("users.py")]);
    assert!(text.contains("--auth-group-script"), "{text}");
}

#[test]
fn a_static_only_site_is_guarded_too() {
    let statics = StaticDir::new();
    let server = Server::start(&[
        "--application-type",
        "static",
        &statics.path(),
        "--auth-user-script",
        &script("users.py"),
        "--host-access-script",
        &script("hosts.py"),
    ]);
    let let_in = ["-H", "X-Access: let-me-in"];
    let (status, _) = curl(server.port, "/f.txt", &[]);
    assert_eq!(status, 403, "the host check comes first");
    let (status, _) = curl(server.port, "/f.txt", &let_in);
    assert_eq!(status, 401);
    let (status, r) = curl(
        server.port,
        "/f.txt",
        &[let_in[0], let_in[1], "--user", "alice:wonder land"],
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(body(&r), STATIC_TEXT);
}
