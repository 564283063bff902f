//! RFC 9112 rules on the request line and Host, seen from a client: what
//! is refused never reaches the application, and what is accepted reaches
//! it with the right environ.

use rwsgi_tests::{app, get, request, Server};
use std::time::Duration;

fn status(port: u16, raw: &[u8]) -> u16 {
    request(port, raw).map(|r| r.status).unwrap_or(0)
}

fn calls(server: &Server) -> u64 {
    get(server.port, "/calls").text().parse().expect("a count")
}

#[test]
fn host_rules_refuse_before_the_application() {
    let server = Server::start(&[&app("misuse.py")]);
    let before = calls(&server);
    for (raw, why) in [
        (&b"GET /calls HTTP/1.1\r\n\r\n"[..], "HTTP/1.1 without Host"),
        (b"GET /calls HTTP/1.1\r\nHost:\r\n\r\n", "empty Host"),
        (
            b"GET /calls HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "two Hosts",
        ),
        (b"GET /calls HTTP/1.1\r\nHost: a b\r\n\r\n", "space in Host"),
        (b"GET /calls HTTP/1.1\r\nHost: h:8x\r\n\r\n", "bad port"),
        (b"GET /calls HTTP/1.1\r\nHost: user@h\r\n\r\n", "userinfo"),
        (
            b"GET /calls HTTP/1.1\r\nHost: [::1\r\n\r\n",
            "unclosed IPv6 literal",
        ),
        (
            b"GET http://user@h/calls HTTP/1.1\r\nHost: h\r\n\r\n",
            "userinfo in the target",
        ),
        (b"GET /calls#frag HTTP/1.1\r\nHost: h\r\n\r\n", "fragment"),
        (
            b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
            "raw UTF-8 in the target",
        ),
        (
            b"GET /\xe9 HTTP/1.1\r\nHost: h\r\n\r\n",
            "raw latin-1 in the target",
        ),
    ] {
        assert_eq!(status(server.port, raw), 400, "{why}");
    }
    // Only the two counting requests reached the application.
    assert_eq!(calls(&server), before + 1);
    // HTTP/1.0 needs no Host.
    assert_eq!(status(server.port, b"GET /calls HTTP/1.0\r\n\r\n"), 200);
}

#[test]
fn an_absolute_form_target_wins_over_host() {
    let server = Server::start(&[&app("app.py")]);
    let r = request(
        server.port,
        b"GET http://a.example:8080/environ?x=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .expect("response");
    assert_eq!(r.status, 200, "{}", server.log.text());
    let env: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(env["HTTP_HOST"], "a.example:8080");
    assert_eq!(env["SERVER_NAME"], "a.example");
    assert_eq!(env["SERVER_PORT"], "8080");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["QUERY_STRING"], "x=1");
    // From Host, when the target is a path: the name, and the port if given.
    let r = request(
        server.port,
        b"GET /environ HTTP/1.1\r\nHost: b.example:81\r\nConnection: close\r\n\r\n",
    )
    .expect("response");
    let env: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(env["SERVER_NAME"], "b.example");
    assert_eq!(env["SERVER_PORT"], "81");
}

#[test]
fn each_request_gets_its_own_host_names_whatever_came_before() {
    // One request thread: consecutive requests with the same, then other,
    // Host values must each see their own (the strings are reused when
    // the Host repeats).
    let server = Server::start(&["--threads", "1", &app("app.py")]);
    let cases = [
        ("a.example:8080", "a.example", "8080"),
        ("a.example:8080", "a.example", "8080"),
        ("b.example", "b.example", &*server.port.to_string()),
        ("b.example", "b.example", &*server.port.to_string()),
        ("[::1]:9", "[::1]", "9"),
        ("a.example:8080", "a.example", "8080"),
    ];
    for (host, name, port) in cases {
        let raw = format!("GET /environ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let r = request(server.port, raw.as_bytes()).expect("response");
        let env: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(env["HTTP_HOST"], host);
        assert_eq!(env["SERVER_NAME"], name, "Host {host}");
        assert_eq!(env["SERVER_PORT"], port, "Host {host}");
    }
    // HTTP/1.0 without Host after all that: the server's own name and port.
    let r = request(server.port, b"GET /environ HTTP/1.0\r\n\r\n").expect("response");
    let env: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert!(env.get("HTTP_HOST").is_none(), "{env}");
    assert_eq!(env["SERVER_PORT"], server.port.to_string());
}

#[test]
fn request_lines_of_8000_octets_are_served_by_default() {
    let server = Server::start(&[&app("misuse.py")]);
    let target = format!("/calls?{}", "q".repeat(8000 - 20));
    let line = format!("GET {target} HTTP/1.1");
    assert!(line.len() >= 8000);
    let raw = format!("{line}\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_eq!(status(server.port, raw.as_bytes()), 200);
}

#[test]
fn a_request_line_over_the_limit_is_a_414_naming_the_option() {
    let server = Server::start(&["--limit-request-line", "100", &app("misuse.py")]);
    let raw = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(200));
    assert_eq!(status(server.port, raw.as_bytes()), 414);
    assert!(server
        .log
        .wait_for("--limit-request-line is 100 bytes", Duration::from_secs(5)));
}
