//! Applications that misuse the server's objects or break off responses,
//! and clients that send broken bodies: no crossed wires, no truncated
//! response framed as complete, client errors answered as client errors.

use rwsgi_tests::client::{connect, read_response};
use rwsgi_tests::{app, get, poll_until, request, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// Polls `path` until its body satisfies `done` (or fails after 10 s).
fn wait_for_body(server: &Server, path: &str, done: impl Fn(&str) -> bool) -> String {
    let mut body = String::new();
    let ready = poll_until(Duration::from_secs(10), || {
        body = get(server.port, path).text();
        done(&body)
    });
    assert!(
        ready,
        "{path} never became ready: {body}\nlog:\n{}",
        server.log.text()
    );
    body
}

/// Everything the server sends until it closes the connection.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    all
}

fn raw_get(port: u16, path: &str) -> Vec<u8> {
    let mut s = connect(port);
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
        .expect("write");
    read_to_close(&mut s)
}

/// curl's exit code and the status it saw.
fn curl(args: &[&str], url: &str) -> (i32, String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "30",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_kept_write_called_from_a_thread_never_reaches_another_client() {
    let server = Server::start(&["--threads", "2", &app("misuse.py")]);
    // The first client's response is complete and its connection closed
    // when the application's thread calls the kept `write`, a second later.
    let first = request(
        server.port,
        b"GET /write-later?1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .expect("first response");
    assert_eq!(first.text(), "first block\n");
    // Meanwhile another client's connection (likely the same descriptor
    // number in the worker) waits for its response.
    let mut second = connect(server.port);
    second
        .write_all(b"GET /sleep?2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .expect("write");
    let bytes = read_to_close(&mut second);
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("LEAKED"), "another request's bytes: {text}");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nslept"), "{text}");
    let outcomes = wait_for_body(&server, "/outcomes", |b| b != "[]");
    assert!(
        outcomes.contains("ValueError: write() called after its request ended"),
        "{outcomes}"
    );
}

#[test]
fn a_kept_write_raises_in_a_later_request_on_the_same_connection() {
    let server = Server::start(&["--threads", "1", &app("misuse.py")]);
    let mut s = connect(server.port);
    let mut buf = Vec::new();
    s.write_all(b"GET /keep-write HTTP/1.1\r\nHost: h\r\n\r\nGET /use-kept-write HTTP/1.1\r\nHost: h\r\n\r\n")
        .expect("write");
    let first = read_response(&mut s, &mut buf, false).expect("first");
    assert_eq!(first.text(), "first block\n");
    let second = read_response(&mut s, &mut buf, false).expect("second");
    assert_eq!(
        second.text(),
        "ValueError: write() called after its request ended"
    );
    assert!(
        buf.is_empty(),
        "stray bytes: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[test]
fn a_kept_wsgi_input_raises_instead_of_returning_old_bytes() {
    let server = Server::start(&["--threads", "1", &app("misuse.py")]);
    let r = request(
        server.port,
        b"POST /keep-input HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\nConnection: close\r\n\r\nsecret-body",
    )
    .expect("response");
    assert_eq!(r.text(), "sec");
    let later = get(server.port, "/use-kept-input").text();
    assert_eq!(later, "ValueError: wsgi.input read after its request ended");
}

#[test]
fn a_response_the_app_breaks_off_is_never_framed_as_complete() {
    let server = Server::start(&[&app("misuse.py")]);
    for path in ["/raise-mid-stream", "/raise-in-close", "/excinfo-after"] {
        let bytes = raw_get(server.port, path);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {text}");
        assert!(
            text.contains("Transfer-Encoding: chunked"),
            "{path}: {text}"
        );
        assert!(
            !text.ends_with("0\r\n\r\n"),
            "{path} ends with the last chunk: {text:?}"
        );
        let (code, status, err) = curl(&[], &format!("http://127.0.0.1:{}{path}", server.port));
        assert_eq!(
            (code, status.as_str()),
            (18, "200"),
            "{path}: curl said {err}"
        );
    }
    let bytes = raw_get(server.port, "/raise-mid-length");
    let text = String::from_utf8_lossy(&bytes);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(text.contains("Content-Length: 100\r\n"), "{text}");
    assert!(body.len() < 100, "{text}");
    let (code, _, err) = curl(
        &[],
        &format!("http://127.0.0.1:{}/raise-mid-length", server.port),
    );
    assert_eq!(code, 18, "curl said {err}");
    assert!(server
        .log
        .wait_for("response cut short", Duration::from_secs(5)));
    assert!(server.log.text().contains("the export failed half way"));
}

#[test]
fn a_response_broken_off_before_anything_was_sent_becomes_a_500() {
    let server = Server::start(&[&app("misuse.py")]);
    let r = get(server.port, "/raise-in-close-list");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(server
        .log
        .wait_for("close() failed after the body", Duration::from_secs(5)));
}

fn chunked_post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

#[test]
fn a_broken_chunked_body_read_by_the_app_is_a_400_whatever_the_app_does() {
    let server = Server::start(&["--chunked-request", &app("misuse.py")]);
    for path in ["/read-body", "/read-body-catch"] {
        for (broken, why) in [
            (&b"5\r\nhello\r\nzz\r\n"[..], "invalid chunk size"),
            (b"5\r\nhelloXX\r\n", "chunk data not followed by CRLF"),
            (b"5\nhello\r\n0\r\n\r\n", "bare LF"),
            (b"5;a=\"x\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
        ] {
            let r = request(server.port, &chunked_post(path, broken)).expect("response");
            assert_eq!(r.status, 400, "{path} {why}: {}", r.text());
            assert_eq!(r.header("connection"), Some("close"));
            assert!(
                server.log.wait_for(why, Duration::from_secs(5)),
                "{why} not logged:\n{}",
                server.log.text()
            );
        }
    }
    // The client's error is not logged as the application's.
    let log = server.log.text();
    assert!(!log.contains("Traceback"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

#[test]
fn forbidden_trailer_fields_are_a_400() {
    for mode in [&["--chunked-request"][..], &[]] {
        let server = Server::builder()
            .args(mode.iter().copied())
            .arg(app("misuse.py"))
            .start();
        for trailer in [
            "Content-Length: 5",
            "Transfer-Encoding: chunked",
            "Host: evil.example",
            "Authorization: Basic YTpi",
            "Cookie: a=1",
        ] {
            let body = format!("5\r\nhello\r\n0\r\n{trailer}\r\n\r\n");
            let r = request(server.port, &chunked_post("/read-body", body.as_bytes()))
                .expect("response");
            assert_eq!(r.status, 400, "{mode:?} {trailer}: {}", r.text());
        }
        // An ordinary trailer is fine.
        let r = request(
            server.port,
            &chunked_post("/read-body", b"5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n"),
        )
        .expect("response");
        assert_eq!((r.status, r.text().as_str()), (200, "read 5 bytes"));
    }
}

#[test]
fn a_body_over_the_limit_is_a_413_naming_the_option_in_both_framings() {
    for mode in [&["--chunked-request"][..], &[]] {
        let server = Server::builder()
            .args(["--limit-request-body", "1000"])
            .args(mode.iter().copied())
            .arg(app("misuse.py"))
            .start();
        let chunk = "x".repeat(600);
        let body = format!("258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n");
        for path in ["/read-body", "/read-body-catch"] {
            let r = request(server.port, &chunked_post(path, body.as_bytes())).expect("response");
            assert_eq!(r.status, 413, "{mode:?} {path}: {}", r.text());
        }
        let r = request(
            server.port,
            format!(
                "POST /read-body HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n{}",
                "y".repeat(1001)
            )
            .as_bytes(),
        )
        .expect("response");
        assert_eq!(r.status, 413);
        assert!(server
            .log
            .wait_for("--limit-request-body is 1000 bytes", Duration::from_secs(5)));
        assert!(!server.log.text().contains("malformed"));
        assert!(!server.log.text().contains("Traceback"));
        // The exception the application saw says the same.
        let caught = request(
            server.port,
            &chunked_post("/read-body-catch", body.as_bytes()),
        )
        .expect("response");
        assert_eq!(caught.status, 413);
    }
}

#[test]
fn a_broken_chunked_body_never_reaches_the_app_when_spooled() {
    let server = Server::start(&[&app("misuse.py")]);
    let before: u64 = get(server.port, "/calls").text().parse().expect("count");
    let r = request(
        server.port,
        &chunked_post("/read-body", b"5\r\nhello\r\nzz\r\n"),
    )
    .expect("response");
    assert_eq!(r.status, 400);
    let after: u64 = get(server.port, "/calls").text().parse().expect("count");
    // Only the /calls request itself was counted.
    assert_eq!(after, before + 1);
}

/// A file of `size` bytes in the temporary directory, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, size: usize) -> TempFile {
        let path = std::env::temp_dir().join(format!("rwsgi-{}-{name}", std::process::id()));
        std::fs::write(&path, vec![b'u'; size]).expect("write the upload");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_refused_upload_reaches_curl_as_a_413_not_a_reset() {
    let server = Server::start(&[&app("misuse.py")]);
    let upload = TempFile::new("20mib", 20 * 1024 * 1024);
    let data = format!("@{}", upload.0.display());
    let url = format!("http://127.0.0.1:{}/read-body", server.port);
    // `Expect:` empty: curl sends the whole body at once, without waiting
    // for 100 Continue, so the server answers while the upload is in flight.
    for framing in [
        &["-H", "Expect:"][..],
        &["-H", "Expect:", "-H", "Transfer-Encoding: chunked"],
        &[],
    ] {
        let mut args = vec!["--data-binary", data.as_str()];
        args.extend_from_slice(framing);
        let (code, status, err) = curl(&args, &url);
        assert_eq!((code, status.as_str()), (0, "413"), "{framing:?}: {err}");
    }
}

#[test]
fn an_app_that_ignores_a_large_body_is_answered_not_reset() {
    let server = Server::start(&["--limit-request-body", "33554432", &app("misuse.py")]);
    let upload = TempFile::new("ignored", 20 * 1024 * 1024);
    let data = format!("@{}", upload.0.display());
    let url = format!("http://127.0.0.1:{}/ignore-body", server.port);
    let (code, status, err) = curl(&["--data-binary", &data, "-H", "Expect:"], &url);
    assert_eq!((code, status.as_str()), (0, "200"), "{err}");
}

#[test]
fn status_rules_the_app_cannot_break() {
    let server = Server::start(&[&app("misuse.py")]);
    // RFC 9110 8.6: no Content-Length in a 204.
    let r = get(server.port, "/204-with-length");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-length"), None, "{}", r.head);
    // A 1xx cannot be a final response.
    assert_eq!(get(server.port, "/interim-status").status, 500);
    // PEP 3333: an empty first block does not send the head, so exc_info
    // can still replace the response.
    let r = get(server.port, "/empty-then-excinfo");
    assert_eq!((r.status, r.text().as_str()), (500, "replaced"));
}

/// The application's Content-Length is the only say it has in the framing:
/// two of them, or one a proxy could read differently, are refused when
/// start_response is called (a 500, logged naming the header), and so is
/// a Transfer-Encoding; the connection headers it sets are the server's.
#[test]
fn framing_headers_the_app_gets_wrong_are_refused_naming_the_header() {
    let server = Server::start(&[&app("misuse.py")]);
    for (path, header) in [
        ("/length-twice", "Content-Length"),
        ("/length-signed", "Content-Length"),
        ("/transfer-encoding", "Transfer-Encoding"),
    ] {
        let raw = raw_get(server.port, path);
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 500 "), "{path}: {text}");
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        assert_eq!(head.matches("Content-Length:").count(), 1, "{path}: {head}");
        assert!(!head.contains("Transfer-Encoding"), "{path}: {head}");
        assert!(!text.contains("hello"), "{path}: {text}");
        let needle = format!("invalid response header {header}");
        assert!(
            server.log.wait_for(&needle, Duration::from_secs(10)),
            "{path}: no log line naming {header}:\n{}",
            server.log.text()
        );
    }
    // The application sees the error and may answer otherwise.
    let r = get(server.port, "/length-caught");
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .starts_with("caught ValueError: invalid response header Content-Length: given twice"),
        "{}",
        r.text()
    );
    // Connection: close is honoured, its Keep-Alive dropped, one of each.
    let raw = raw_get(server.port, "/connection-close");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert_eq!(text.matches("Connection: close").count(), 1, "{text}");
    assert!(!text.contains("Keep-Alive"), "{text}");
    assert!(text.ends_with("closing"), "{text}");
}

/// A file wrapper's fileno() is a number from Python: -1 (no descriptor)
/// is read like any file-like object instead of reaching the descriptor
/// code, and a block size that cannot read is the application's error.
#[test]
fn a_file_wrapper_whose_fileno_is_minus_one_is_read_instead() {
    let server = Server::start(&[&app("misuse.py")]);
    let worker = server.worker_pids();
    let r = get(server.port, "/fileno-minus-one");
    assert_eq!(r.status, 200, "{}", server.log.text());
    assert_eq!(r.text(), "read, not sent from a descriptor\n".repeat(1000));
    let r = get(server.port, "/blksize-zero");
    assert!(
        r.text()
            .starts_with("caught ValueError: wsgi.file_wrapper: blksize must be positive"),
        "{}",
        r.text()
    );
    assert_eq!(server.worker_pids(), worker, "{}", server.log.text());
}
