//! The WSGI contract (PEP 3333) as the server keeps it, and what happens
//! when an application breaks it.

use rwsgi_tests::client::{connect, read_response};
use rwsgi_tests::json;
use rwsgi_tests::{app, get, poll_until, request, Server};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn post(port: u16, path: &str, body: &str) -> rwsgi_tests::Response {
    request(
        port,
        format!("POST {path} HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
    )
    .expect("response")
}

#[test]
fn input_read_readline_readlines_and_reads_past_the_end() {
    let server = Server::start(&[&app("pep3333.py")]);
    let r = post(server.port, "/input-methods", "first\nabcdef\nwxyz\nl1\nl2");
    assert_eq!(r.status, 200, "{}", server.log.text());
    let v = json(&r.body);
    assert_eq!(v["readline"], "first\n");
    assert_eq!(v["readline3"], "abc");
    assert_eq!(v["rest_of_line"], "def\n");
    assert_eq!(v["read4"], "wxyz");
    assert_eq!(v["readlines"], serde_json::json!(["\n", "l1\n", "l2"]));
    assert_eq!(v["after_end"], "");
    assert_eq!(v["readline_after_end"], "");
    let lines = json(&post(server.port, "/iterate", "a\nb\nc").body);
    assert_eq!(lines, serde_json::json!(["a\n", "b\n", "c"]));
}

#[test]
fn expect_100_continue_is_answered_and_the_body_reaches_the_app() {
    let server = Server::start(&[&app("pep3333.py")]);
    let mut s = connect(server.port);
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .expect("write");
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).expect("100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").expect("body");
    let r = read_response(&mut s, &mut Vec::new(), false).expect("final response");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

#[test]
fn expect_100_continue_is_answered_by_the_server_that_receives_the_body() {
    // rwsgi receives a body before the application runs (no Python thread
    // waits for a client), so it answers 100 Continue itself, as nginx
    // does, whether or not the application reads the body.
    let server = Server::start(&[&app("pep3333.py")]);
    let mut s = connect(server.port);
    s.write_all(
        b"POST /nothing HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .expect("write");
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).expect("100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").expect("body");
    let r = read_response(&mut s, &mut Vec::new(), false).expect("response");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    // Over the limit: 413 at once, and no 100 Continue.
    let server = Server::start(&["--limit-request-body", "4", &app("pep3333.py")]);
    let r = rwsgi_tests::request(
        server.port,
        b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .expect("response");
    assert_eq!(r.status, 413, "{}", r.head);
}

#[test]
fn a_client_that_stalls_mid_body_is_cut_off_by_the_io_thread() {
    let server = Server::start(&[
        "--body-timeout",
        "1",
        "--body-min-rate",
        "0",
        "--threads",
        "1",
        &app("pep3333.py"),
    ]);
    let mut s = connect(server.port);
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab")
        .expect("write");
    // The only Python thread stays free for everyone else meanwhile.
    assert_eq!(get(server.port, "/").text(), "ok");
    let started = Instant::now();
    let r = read_response(&mut s, &mut Vec::new(), false).expect("response");
    assert_eq!(r.status, 408, "{}", r.head);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_client_that_stalls_mid_head_is_cut_off_by_the_io_thread() {
    let server = Server::start(&[
        "--header-timeout",
        "1",
        "--header-max-timeout",
        "2",
        "--threads",
        "1",
        &app("pep3333.py"),
    ]);
    let mut slow = connect(server.port);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ")
        .expect("write");
    // The only Python thread stays free for everyone else meanwhile.
    assert_eq!(get(server.port, "/").text(), "ok");
    let started = Instant::now();
    let r = read_response(&mut slow, &mut Vec::new(), false).expect("408");
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn close_is_called_when_the_client_disconnects_mid_response() {
    let server = Server::start(&[&app("pep3333.py")]);
    let before = json(&get(server.port, "/close-count").body)["count"]
        .as_i64()
        .unwrap_or(-1);
    {
        let mut s = connect(server.port);
        s.write_all(b"GET /slow-stream HTTP/1.1\r\nHost: h\r\n\r\n")
            .expect("write");
        let mut first = [0u8; 100];
        s.read_exact(&mut first).expect("first bytes");
    } // dropped: the client goes away
    let closed = poll_until(Duration::from_secs(10), || {
        let now = json(&get(server.port, "/close-count").body)["count"]
            .as_i64()
            .unwrap_or(-1);
        now > before
    });
    assert!(
        closed,
        "close() was not called; log:\n{}",
        server.log.text()
    );
}

#[test]
fn exc_info_replaces_before_and_reraises_after_headers() {
    let server = Server::start(&[&app("pep3333.py")]);
    let r = get(server.port, "/excinfo-before");
    assert_eq!((r.status, r.text().as_str()), (500, "replaced"));
    let r = request(
        server.port,
        b"GET /excinfo-after HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    // Headers were sent: the response is cut short and the connection closed.
    match r {
        Ok(r) => assert_eq!(r.status, 200),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
    }
    assert!(
        server
            .log
            .wait_for("too late to replace", Duration::from_secs(5)),
        "{}",
        server.log.text()
    );
}

#[test]
fn wsgi_errors_lines_reach_the_log() {
    let server = Server::start(&[&app("pep3333.py")]);
    assert_eq!(get(server.port, "/errors").status, 200);
    for line in ["first line", "second line", "unterminated"] {
        assert!(
            server.log.wait_for(line, Duration::from_secs(5)),
            "{line}: {}",
            server.log.text()
        );
    }
}

#[test]
fn file_wrapper_iterates_file_likes_and_sends_real_files() {
    let server = Server::start(&[&app("pep3333.py")]);
    assert_eq!(
        get(server.port, "/file-wrapper-bytesio").text(),
        "from a BytesIO ".repeat(100)
    );
    let dir = std::env::temp_dir().join(format!("rwsgi-sendfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("data.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).expect("write");
    let raw = Server::start(&[&app("misbehaving.py")]);
    let r = get(raw.port, &format!("/sendfile?{}", file.display()));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("3000000"));
    assert!(r.body == data, "body differs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn header_values_with_crlf_are_refused_no_response_splitting() {
    let server = Server::start(&[&app("misbehaving.py")]);
    let r = get(server.port, "/crlf-header");
    assert_eq!(r.status, 500);
    assert!(!r.head.to_ascii_lowercase().contains("stolen"));
    assert!(
        server.log.wait_for(
            "invalid value for response header X-Evil",
            Duration::from_secs(5)
        ),
        "{}",
        server.log.text()
    );
    assert_eq!(get(server.port, "/bad-status").status, 500);
    assert!(server
        .log
        .wait_for("invalid status", Duration::from_secs(5)));
    assert_eq!(get(server.port, "/no-start-response").status, 500);
    assert_eq!(get(server.port, "/not-bytes").status, 500);
    assert!(server
        .log
        .wait_for("instead of bytes", Duration::from_secs(5)));
}

#[test]
fn a_response_shorter_or_longer_than_its_content_length_closes_the_connection() {
    let server = Server::start(&[&app("misbehaving.py")]);
    for path in ["/short", "/long"] {
        let mut s = connect(server.port);
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        .expect("write");
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all); // returns at EOF: the server closed
        let text = String::from_utf8_lossy(&all);
        assert_eq!(text.matches("HTTP/1.1 200").count(), 1, "{path}: {text}");
        if path == "/long" {
            assert!(text.ends_with("\r\n\r\nabc"), "{text}");
        }
    }
}

#[test]
fn a_smuggling_attempt_is_refused_before_the_app() {
    let server = Server::start(&["--access-log", &app("pep3333.py")]);
    let r = request(
        server.port,
        b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .expect("response");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(server
        .log
        .wait_for("request refused", Duration::from_secs(5)));
    assert!(
        !server.log.text().contains("\"POST /echo"),
        "the app saw it: {}",
        server.log.text()
    );
}

#[test]
fn http10_keep_alive_is_honoured() {
    let server = Server::start(&[&app("pep3333.py")]);
    let mut s = connect(server.port);
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .expect("write");
        let r = read_response(&mut s, &mut buf, false).expect("response");
        assert_eq!(r.text(), "ok");
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}
