//! `--compress-responses`: the application's textual responses and static
//! files, compressed as the client's Accept-Encoding prefers, decoded by
//! curl; what must stay as it is, streams that still stream, and a short
//! body that never looks complete.

use rwsgi_tests::client::{connect, Response};
use rwsgi_tests::{app, request, Server};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn text() -> Vec<u8> {
    "<p>The quick brown fox jumps over the lazy dog.</p>\n"
        .repeat(100)
        .into_bytes()
}

fn serve(extra: &[&str]) -> Server {
    let app = app("compressible.py");
    let mut args = vec!["--compress-responses"];
    args.extend_from_slice(extra);
    args.push(&app);
    Server::start(&args)
}

fn req(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    request(port, raw.as_bytes()).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// curl with `Accept-Encoding: accept`, decoding what comes back: the
/// response head (lower case) and the decoded body.
fn curl(url: &str, accept: &str, extra: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "--compressed",
            "-D",
            "/dev/stderr",
        ])
        .args(["-H", &format!("Accept-Encoding: {accept}")])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stderr).to_ascii_lowercase(),
        out.stdout,
    )
}

#[test]
fn textual_responses_are_compressed_as_the_client_prefers() {
    let server = serve(&[]);
    let url = format!("http://127.0.0.1:{}/text", server.port);
    for (accept, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, deflate, br, zstd", "zstd"),
        ("br;q=0.5, gzip", "gzip"),
    ] {
        let (head, body) = curl(&url, accept, &[]);
        assert!(
            head.contains(&format!("content-encoding: {coding}\r\n")),
            "{accept}: {head}"
        );
        assert_eq!(body, text(), "{accept}: curl decodes the whole page");
        // The whole body was given at once: framed by its compressed length.
        let r = req(server.port, "GET", "/text", &[("Accept-Encoding", accept)]);
        let length: usize = r
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert_eq!(length, r.body.len(), "{accept}: {}", r.head);
        assert!(
            length < text().len() / 5,
            "{accept}: compressed to {length}"
        );
        assert_eq!(
            r.header("etag"),
            Some(format!("\"v1-{coding}\"").as_str()),
            "{}",
            r.head
        );
        assert_eq!(
            r.header("vary"),
            Some("Cookie, Accept-Encoding"),
            "{}",
            r.head
        );
    }
    // The JSON a write() callable sent, compressed too.
    let (head, body) = curl(
        &format!("http://127.0.0.1:{}/write", server.port),
        "br",
        &[],
    );
    assert!(head.contains("content-encoding: br\r\n"), "{head}");
    assert!(body.starts_with(b"{\"items\": [\"item\",") && body.ends_with(b"]}"));
}

#[test]
fn what_must_stay_as_it_is_is_sent_as_it_is() {
    let server = serve(&[]);
    let p = server.port;
    let gz = [("Accept-Encoding", "gzip, br, zstd")];
    // No coding accepted: the body as it is, but the response still varies.
    let r = req(p, "GET", "/text", &[]);
    assert_eq!(
        (r.header("content-encoding"), r.body.clone()),
        (None, text()),
        "{}",
        r.head
    );
    assert_eq!(r.header("vary"), Some("Cookie, Accept-Encoding"));
    assert_eq!(r.header("etag"), Some("\"v1\""));
    let r = req(
        p,
        "GET",
        "/text",
        &[("Accept-Encoding", "identity, gzip;q=0")],
    );
    assert_eq!(r.header("content-encoding"), None, "{}", r.head);
    // Too small to gain anything.
    let r = req(p, "GET", "/tiny", &gz);
    assert_eq!(
        (r.header("content-encoding"), r.text().as_str()),
        (None, "tiny")
    );
    // Not a textual type: no coding, no Vary.
    let r = req(p, "GET", "/png", &gz);
    assert_eq!(
        (r.header("content-encoding"), r.header("vary")),
        (None, None),
        "{}",
        r.head
    );
    assert_eq!(r.body, text());
    // Encoded by the application: untouched.
    let r = req(p, "GET", "/encoded", &[("Accept-Encoding", "br")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head);
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut decoded)
        .expect("the application's own gzip");
    assert_eq!(decoded, text());
    // Cache-Control: no-transform.
    let r = req(p, "GET", "/no-transform", &gz);
    assert_eq!(r.header("content-encoding"), None, "{}", r.head);
    // HEAD: the headers of the body as it is.
    let r = req(p, "HEAD", "/text", &gz);
    assert_eq!(r.header("content-encoding"), None, "{}", r.head);
    assert_eq!(
        r.header("content-length"),
        Some(text().len().to_string().as_str())
    );
}

/// Reads a chunked response from `stream` as it comes: each chunk's data
/// is handed to `on_data` as soon as it is complete. Returns whether the
/// last chunk came (a complete response).
fn read_chunks(stream: &mut std::net::TcpStream, mut on_data: impl FnMut(&[u8])) -> bool {
    let mut buf = Vec::new();
    let mut head_done = false;
    let mut tmp = [0u8; 8192];
    loop {
        loop {
            if !head_done {
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    break;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                assert!(head.contains("transfer-encoding: chunked"), "{head}");
                buf.drain(..end + 4);
                head_done = true;
            }
            let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
                break;
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&buf[..line_end])
                    .expect("chunk size")
                    .trim(),
                16,
            )
            .expect("hex chunk size");
            if size == 0 {
                return true;
            }
            if buf.len() < line_end + 2 + size + 2 {
                break;
            }
            on_data(&buf[line_end + 2..line_end + 2 + size]);
            buf.drain(..line_end + 2 + size + 2);
        }
        match stream.read(&mut tmp) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

#[test]
fn a_streamed_response_is_compressed_block_by_block_and_still_streams() {
    let server = serve(&[]);
    let flag = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("compress-stream-{}", std::process::id()));
    let _ = std::fs::remove_file(&flag);
    let mut s = connect(server.port);
    write!(
        s,
        "GET /stream?{} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        flag.display()
    )
    .expect("send");
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let started = Instant::now();
    let complete = read_chunks(&mut s, |data| {
        decoder.write_all(data).expect("gzip");
        decoder.flush().expect("gzip");
        let so_far = String::from_utf8_lossy(decoder.get_ref()).into_owned();
        if so_far.contains("first block") && !flag.exists() {
            // The first block arrived decodable while the application waits.
            std::fs::write(&flag, b"").expect("flag");
        }
    });
    assert!(complete, "the stream ends with its last chunk");
    let decoded = decoder.finish().expect("a complete gzip stream");
    let text = String::from_utf8_lossy(&decoded);
    let _ = std::fs::remove_file(&flag);
    assert!(
        text.contains("released second block"),
        "the first block must reach the client before the second is made: {}",
        &text[text.len().saturating_sub(60)..]
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_body_shorter_than_its_length_is_never_framed_as_complete() {
    let server = serve(&[]);
    let mut s = connect(server.port);
    s.write_all(b"GET /short HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        .expect("send");
    let complete = read_chunks(&mut s, |_| {});
    assert!(
        !complete,
        "a body shorter than its Content-Length must not end with a last chunk"
    );
    // And the connection is closed, not kept for another request.
    let mut rest = Vec::new();
    assert!(s.read_to_end(&mut rest).is_ok());
    assert!(rest.is_empty());
}

#[test]
fn static_files_are_compressed_once_and_fresh_siblings_are_preferred() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("compress-static-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let css = "body { color: black; margin: 0 auto; }\n".repeat(200);
    std::fs::write(dir.join("site.css"), &css).expect("css");
    std::fs::write(dir.join("app.js"), &css).expect("js");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(css.as_bytes()).expect("gzip");
    std::fs::write(dir.join("app.js.gz"), gz.finish().expect("gzip")).expect("sibling");
    let d = dir.to_string_lossy().into_owned();
    let server = serve(&["--url-alias", "/static", &d]);
    let p = server.port;
    let url = format!("http://127.0.0.1:{p}/static/site.css");
    for coding in ["zstd", "br", "gzip"] {
        let (head, body) = curl(&url, coding, &[]);
        assert!(
            head.contains(&format!("content-encoding: {coding}\r\n")),
            "{head}"
        );
        assert!(head.contains("vary: accept-encoding\r\n"), "{head}");
        assert_eq!(body, css.as_bytes(), "{coding}");
    }
    // The variant has its own validator, and a conditional GET on it is a 304.
    let r = req(p, "GET", "/static/site.css", &[("Accept-Encoding", "br")]);
    let etag = r.header("etag").expect("etag").to_owned();
    assert!(etag.ends_with("-br\""), "{etag}");
    let plain = req(p, "GET", "/static/site.css", &[]);
    assert_ne!(plain.header("etag"), Some(etag.as_str()));
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let r = req(
        p,
        "GET",
        "/static/site.css",
        &[("Accept-Encoding", "br"), ("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304, "{}", r.head);
    // A range is of the file as it is.
    let r = req(
        p,
        "GET",
        "/static/site.css",
        &[("Accept-Encoding", "br"), ("Range", "bytes=0-3")],
    );
    assert_eq!(
        (r.status, r.header("content-encoding"), r.text().as_str()),
        (206, None, "body")
    );
    // The precompressed sibling, not a compression of the file.
    let r = req(
        p,
        "GET",
        "/static/app.js",
        &[("Accept-Encoding", "gzip, br")],
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head);
    assert_eq!(
        r.body,
        std::fs::read(dir.join("app.js.gz")).expect("sibling")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
