//! HTTP/2 (`--http2`): h2 by ALPN on the HTTPS port and h2c with prior
//! knowledge on the plain port, with real clients (curl, nghttp2's h2load
//! and nghttp, Python's httpx and, for what well-behaved clients never do,
//! the h2 library over a raw socket): the environ, bodies both ways, static
//! files, many streams on one connection, flow control, the protocol's
//! attacks, and GOAWAY when the server stops.

use nix::sys::signal::Signal;
use rwsgi_tests::pki::{https_port, Pki};
use rwsgi_tests::{app, Server};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A server with `--http2` (and HTTPS when `pki` is given): (server, https port).
fn serve(pki: Option<&Pki>, extra: &[&str]) -> (Server, u16) {
    let mut args: Vec<String> = vec!["--http2".into(), "--processes".into(), "1".into()];
    if let Some(pki) = pki {
        args.extend(pki.https_args());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push(app("app.py"));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&refs);
    let port = match pki {
        Some(_) => https_port(&server),
        None => 0,
    };
    (server, port)
}

/// curl: (protocol version it used, status, body).
fn curl(args: &[&str]) -> (String, u16, Vec<u8>) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-o",
            "-",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut body = out.stdout;
    let at = body.iter().rposition(|&b| b == b'\n').expect("the -w line");
    let tail = String::from_utf8_lossy(&body[at + 1..]).into_owned();
    body.truncate(at);
    let (version, status) = tail.split_once(' ').expect("version and status");
    (version.to_owned(), status.parse().expect("a status"), body)
}

fn python(script: &str, args: &[&str]) -> String {
    rwsgi_tests::venv_python(script, args)
}

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok();
    if !found {
        rwsgi_tests::skip::missing(
            "an HTTP/2 test",
            name,
            "Debian: apt-get install nghttp2-client",
        );
    }
    found
}

#[test]
fn curl_speaks_h2_by_alpn_over_tls_and_h2c_with_prior_knowledge() {
    let pki = Pki::new();
    let (server, https) = serve(Some(&pki), &[]);
    let url = format!("https://localhost:{https}/environ");
    let (version, status, body) = curl(&["--cacert", &pki.p("ca.crt"), "--http2", &url]);
    assert_eq!(
        (version.as_str(), status),
        ("2", 200),
        "{}",
        server.log.text()
    );
    let environ = rwsgi_tests::json(&body);
    assert_eq!(environ["SERVER_PROTOCOL"], "HTTP/2");
    assert_eq!(environ["wsgi.url_scheme"], "https");
    assert_eq!(environ["HTTPS"], "on");
    assert_eq!(environ["HTTP_HOST"], format!("localhost:{https}"));

    let url = format!("http://127.0.0.1:{}/environ", server.port);
    let (version, status, body) = curl(&["--http2-prior-knowledge", &url]);
    assert_eq!((version.as_str(), status), ("2", 200));
    let environ = rwsgi_tests::json(&body);
    assert_eq!(environ["SERVER_PROTOCOL"], "HTTP/2");
    assert_eq!(environ["wsgi.url_scheme"], "http");

    // HTTP/1.1 is still served on both ports.
    let (version, _, body) = curl(&[&url]);
    assert_eq!(version, "1.1");
    assert_eq!(rwsgi_tests::json(&body)["SERVER_PROTOCOL"], "HTTP/1.1");
    // An `Upgrade: h2c` request is served as HTTP/1.1 (no upgrade offered).
    let (version, status, _) = curl(&["--http2", &url]);
    assert_eq!((version.as_str(), status), ("1.1", 200));
    let url = format!("https://localhost:{https}/environ");
    let (version, _, _) = curl(&["--cacert", &pki.p("ca.crt"), "--http1.1", &url]);
    assert_eq!(version, "1.1");
}

#[test]
fn bodies_and_static_files_travel_over_h2() {
    let pki = Pki::new();
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("h2-body-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let upload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = dir.join("upload.bin");
    std::fs::write(&file, &upload).expect("write");
    let htdocs = dir.join("htdocs");
    std::fs::create_dir_all(&htdocs).expect("mkdir");
    std::fs::write(htdocs.join("page.txt"), "a static page\n").expect("write");
    let htdocs = htdocs.to_string_lossy().into_owned();
    let (server, https) = serve(Some(&pki), &["--url-alias", "/static", &htdocs]);
    let data = format!("@{}", file.display());
    let plain = format!("http://127.0.0.1:{}", server.port);
    let tls = format!("https://localhost:{https}");
    let ca = pki.p("ca.crt");
    // A body with its length, and one without (chunked to the worker).
    for extra in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
        let mut args = vec!["--http2-prior-knowledge", "--data-binary", &data];
        args.extend_from_slice(extra);
        let url = format!("{plain}/echo");
        args.push(&url);
        let (version, status, body) = curl(&args);
        assert_eq!((version.as_str(), status), ("2", 200), "{extra:?}");
        assert!(
            body == upload,
            "{extra:?}: the echoed body differs ({} bytes)",
            body.len()
        );
        let url = format!("{tls}/echo");
        let mut args = vec!["--cacert", &ca, "--http2", "--data-binary", &data];
        args.extend_from_slice(extra);
        args.push(&url);
        let (version, status, body) = curl(&args);
        assert_eq!((version.as_str(), status), ("2", 200), "{extra:?}");
        assert!(
            body == upload,
            "{extra:?}: the echoed body differs over TLS"
        );
    }
    let (version, status, body) = curl(&[
        "--http2-prior-knowledge",
        &format!("{plain}/static/page.txt"),
    ]);
    assert_eq!(
        (version.as_str(), status, &body[..]),
        ("2", 200, &b"a static page\n"[..])
    );
    let (version, status, body) = curl(&[
        "--cacert",
        &ca,
        "--http2",
        &format!("{tls}/static/page.txt"),
    ]);
    assert_eq!(
        (version.as_str(), status, &body[..]),
        ("2", 200, &b"a static page\n"[..])
    );
    // A streamed response (chunked from the application), and a HEAD.
    let (_, status, body) = curl(&["--http2-prior-knowledge", &format!("{plain}/stream")]);
    assert_eq!((status, &body[..]), (200, &b"part 0\npart 1\npart 2\n"[..]));
    let (_, status, body) = curl(&["--http2-prior-knowledge", "-I", &format!("{plain}/method")]);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body)
        .to_ascii_lowercase()
        .contains("x-method: head"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn h2load_and_nghttp_run_many_streams_on_one_connection() {
    if !tool("h2load") || !tool("nghttp") {
        return;
    }
    let pki = Pki::new();
    let (server, https) = serve(Some(&pki), &["--threads", "4"]);
    for url in [
        format!("http://127.0.0.1:{}/pid", server.port),
        format!("https://127.0.0.1:{https}/pid"),
    ] {
        let out = Command::new("h2load")
            .args(["-n", "200", "-c", "1", "-m", "20", &url])
            .output()
            .expect("h2load");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("200 succeeded, 0 failed, 0 errored"),
            "{url}: {text}\n{}",
            server.log.text()
        );
        assert!(text.contains("status codes: 200 2xx"), "{text}");
    }
    // nghttp: several requests multiplexed, with their statistics.
    let url = format!("http://127.0.0.1:{}/pid", server.port);
    let out = Command::new("nghttp")
        .args(["-n", "-s", "-m", "10", &url])
        .output()
        .expect("nghttp");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" 200 ").count(), 10, "{text}");
}

#[test]
fn httpx_with_http2_gets_h2_responses() {
    let pki = Pki::new();
    let (_server, https) = serve(Some(&pki), &[]);
    let script = r#"
import sys, httpx
with httpx.Client(http2=True, verify=sys.argv[2]) as c:
    for i in range(5):
        r = c.post(sys.argv[1] + "/echo", content=b"x" * (i * 1000))
        assert r.status_code == 200 and r.content == b"x" * (i * 1000), r
    r = c.get(sys.argv[1] + "/environ")
    print(r.http_version, r.json()["SERVER_PROTOCOL"])
"#;
    let out = python(
        script,
        &[&format!("https://localhost:{https}"), &pki.p("ca.crt")],
    );
    assert_eq!(out.trim(), "HTTP/2 HTTP/2");
}

/// A client speaking h2 over a raw socket (Python's h2), prelude of the
/// scripts below: `conn(port)`, `get(c, path)`, `events(s, c, until)`.
const H2_CLIENT: &str = r#"
import socket, sys, time
import h2.connection, h2.config, h2.events, h2.exceptions

def conn(port, **settings):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(20)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    if settings:
        c.update_settings(settings)
    s.sendall(c.data_to_send())
    return s, c

def get(s, c, path, extra=()):
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                         (":authority", "localhost")] + list(extra), end_stream=True)
    s.sendall(c.data_to_send())
    return sid

def events(s, c, until, deadline=20):
    end = time.monotonic() + deadline
    seen = []
    while not until(seen) and time.monotonic() < end:
        try:
            data = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            seen.append("eof")
            break
        try:
            seen.extend(c.receive_data(data))
        except h2.exceptions.ProtocolError as e:
            seen.append(e)
            break
        out = c.data_to_send()
        if out:
            try:
                s.sendall(out)
            except OSError:
                pass
    return seen

def ended(seen, sid):
    return any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in seen)

def status(seen, sid):
    for e in seen:
        if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
            return dict(e.headers)[":status"]
    return None

def goaway(seen):
    return next((e for e in seen if isinstance(e, h2.events.ConnectionTerminated)), None)
"#;

#[test]
fn a_stream_the_client_does_not_read_does_not_block_another() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("h2-slow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("big.bin"), vec![b'b'; 4 * 1024 * 1024]).expect("write");
    let htdocs = dir.to_string_lossy().into_owned();
    let (server, _) = serve(None, &["--url-alias", "/static", &htdocs]);
    // Stream 1's window (65535 bytes) is never given back; the connection's
    // is, generously: stream 1 stalls, stream 3 must still be answered.
    let script = format!(
        "{H2_CLIENT}\n{}",
        r#"
s, c = conn(int(sys.argv[1]))
c.increment_flow_control_window(64 * 1024 * 1024)
s.sendall(c.data_to_send())
big = get(s, c, "/static/big.bin")
got = 0
def first_window(seen):
    global got
    got = sum(len(e.data) for e in seen if isinstance(e, h2.events.DataReceived) and e.stream_id == big)
    return got >= 65535
seen = events(s, c, first_window)
small = get(s, c, "/pid")
def small_done(more):
    for e in more:
        if isinstance(e, h2.events.DataReceived):
            c.increment_flow_control_window(e.flow_controlled_length)
            if e.stream_id == small:
                c.acknowledge_received_data(e.flow_controlled_length, small)
    return ended(more, small)
more = events(s, c, small_done)
print(got, status(more, small), ended(more, small), ended(seen + more, big))
"#
    );
    let out = python(&script, &[&server.port.to_string()]);
    assert_eq!(out.trim(), "65535 200 True False", "{}", server.log.text());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rapid_reset_is_cut_off_with_goaway_and_others_are_still_served() {
    let (server, _) = serve(None, &[]);
    let script = format!(
        "{H2_CLIENT}\n{}",
        r#"
s, c = conn(int(sys.argv[1]))
sent = 0
try:
    for i in range(5000):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(":method", "GET"), (":path", "/pid"), (":scheme", "http"),
                             (":authority", "localhost")], end_stream=True)
        c.reset_stream(sid)
        s.sendall(c.data_to_send())
        sent += 1
except OSError:
    pass
g = goaway(events(s, c, goaway))
print(sent < 5000 or g is not None, g.error_code if g else None)
"#
    );
    let out = python(&script, &[&server.port.to_string()]);
    // ENHANCE_YOUR_CALM.
    assert_eq!(out.trim(), "True 11", "{}", server.log.text());
    assert!(server
        .log
        .wait_for("HTTP/2 connection closed", Duration::from_secs(5)));
    let url = format!("http://127.0.0.1:{}/pid", server.port);
    let (version, status, _) = curl(&["--http2-prior-knowledge", &url]);
    assert_eq!((version.as_str(), status), ("2", 200));
}

#[test]
fn ping_and_settings_floods_queue_nothing_and_the_connection_still_serves() {
    let (server, _) = serve(None, &[]);
    let script = format!(
        "{H2_CLIENT}\n{}",
        r#"
s, c = conn(int(sys.argv[1]))
s.settimeout(2)
sent = 0
try:
    # Never reading the acks: the server answers one at a time, then stops
    # reading until they are taken.
    for i in range(20000):
        c.ping(b"%08d" % i)
        if i % 2 == 0:
            c.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100 + i % 7})
        s.sendall(c.data_to_send())
        sent += 1
except socket.timeout:
    pass
s.settimeout(20)
sid = get(s, c, "/pid")
seen = events(s, c, lambda seen: ended(seen, sid), deadline=60)
print(sent > 0, status(seen, sid), goaway(seen) is None)
"#
    );
    let script = script.replace(
        "import socket, sys, time",
        "import socket, sys, time, h2.settings",
    );
    let out = python(&script, &[&server.port.to_string()]);
    assert_eq!(out.trim(), "True 200 True", "{}", server.log.text());
}

#[test]
fn a_header_block_beyond_the_limit_is_refused() {
    let (server, _) = serve(None, &["--header-buffer-size", "16384"]);
    let script = format!(
        "{H2_CLIENT}\n{}",
        r#"
port, size = int(sys.argv[1]), int(sys.argv[2])
s, c = conn(port)
sid = get(s, c, "/pid", [("x-big-%d" % i, "v" * 1000) for i in range(size // 1000)])
seen = events(s, c, lambda seen: ended(seen, sid) or goaway(seen) or any(
    isinstance(e, h2.events.StreamReset) for e in seen))
g = goaway(seen)
print(status(seen, sid), g is not None)
"#
    );
    let port = server.port.to_string();
    assert_eq!(python(&script, &[&port, "8000"]).trim(), "200 False");
    // Beyond the limit: 431, and far beyond it (CONTINUATION frames),
    // the connection is closed.
    assert_eq!(python(&script, &[&port, "24000"]).trim(), "431 False");
    let out = python(&script, &[&port, "400000"]);
    assert_eq!(out.trim(), "None True", "{}", server.log.text());
}

#[test]
fn sigterm_sends_goaway_and_the_open_stream_finishes() {
    if !tool("nghttp") {
        return;
    }
    let (mut server, _) = serve(None, &[]);
    // nghttp -v shows the frames (Python's h2 takes the GOAWAY's PING,
    // which the h2 crate sends with it, for a protocol error).
    let child = Command::new("nghttp")
        .args(["-v", &format!("http://127.0.0.1:{}/sleep?1.5", server.port)])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("nghttp");
    server.wait_running("GET /sleep");
    server.signal(Signal::SIGTERM);
    let out = child.wait_with_output().expect("nghttp");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("recv GOAWAY"), "{text}");
    assert!(
        text.contains(":status: 200"),
        "{text}\n{}",
        server.log.text()
    );
    assert!(text.contains("\"slept\": 1.5"), "{text}");
    let goaway = text.find("recv GOAWAY").unwrap_or(usize::MAX);
    let response = text.find(":status: 200").unwrap_or(0);
    assert!(
        goaway < response,
        "the GOAWAY came before the response: {text}"
    );
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("rwsgi exits");
    assert_eq!(status.code(), Some(0), "{}", server.log.text());
}

/// Requests with bodies and their whole responses over `H2_CLIENT`'s
/// socket: `request(s, c, method, path, body, length)` sends a body (with
/// a content-length when `length`), returns (status, body), acking DATA so
/// that any number of streams fits in the windows.
const H2_REQUESTS: &str = r#"
def send_body(s, c, sid, body):
    while body:
        n = min(len(body), c.local_flow_control_window(sid), c.max_outbound_frame_size)
        if n == 0:
            events(s, c, lambda seen: any(isinstance(e, h2.events.WindowUpdated) for e in seen), deadline=10)
            continue
        c.send_data(sid, body[:n])
        s.sendall(c.data_to_send())
        body = body[n:]
    c.end_stream(sid)
    s.sendall(c.data_to_send())

def response(s, c, sid):
    got = []
    def done(seen):
        for e in seen[len(got):]:
            got.append(e)
            if isinstance(e, h2.events.DataReceived):
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        s.sendall(c.data_to_send())
        return ended(seen, sid) or any(
            isinstance(e, h2.events.StreamReset) and e.stream_id == sid for e in seen)
    seen = events(s, c, done)
    data = b"".join(e.data for e in seen if isinstance(e, h2.events.DataReceived) and e.stream_id == sid)
    return status(seen, sid), data

def request(s, c, method, path, body=b"", length=True):
    sid = c.get_next_available_stream_id()
    headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "localhost")]
    if length:
        headers.append(("content-length", str(len(body))))
    c.send_headers(sid, headers, end_stream=method == "GET")
    s.sendall(c.data_to_send())
    if method != "GET":
        send_body(s, c, sid, body)
    return response(s, c, sid)

def sockets(pid):
    # The worker's socket descriptors: an internal connection is one pair
    # of them, both ends in the worker.
    found = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found
"#;

fn h2_script(body: &str) -> String {
    format!("{H2_CLIENT}\n{H2_REQUESTS}\nimport os, json\n{body}")
}

#[test]
fn sequential_streams_reuse_internal_connections_and_get_their_own_responses() {
    // A keep-alive timeout no pause of a loaded machine reaches: the
    // internal connection is never idle long enough to be let go.
    let (server, _) = serve(None, &["--keep-alive-timeout", "60"]);
    let script = h2_script(
        r#"
import urllib.request
port = int(sys.argv[1])
pid = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/pid" % port).read())["pid"]
before = sockets(pid)
s, c = conn(port)
kept = None
wrong = []
for i in range(40):
    # Bodies of every size and framing, and bodiless requests, in turn.
    payload = (b"stream %d;" % i) * (i * 157 % 6000)
    if i % 4 == 0:
        st, body = request(s, c, "GET", "/environ")
        ok = st == "200" and json.loads(body)["SERVER_PROTOCOL"] == "HTTP/2"
    else:
        st, body = request(s, c, "POST", "/echo", payload, length=i % 4 != 3)
        ok = st == "200" and body == payload
    if not ok:
        wrong.append((i, st, body[:80]))
    now = sockets(pid) - before
    kept = now if kept is None else kept & now
# One internal connection (a socket pair, both ends in the worker) served
# every stream: without reuse, each had its own, closed after it.
print(wrong, len(kept) >= 2)
"#,
    );
    let out = python(&script, &[&server.port.to_string()]);
    assert_eq!(out.trim(), "[] True", "{}", server.log.text());
}

#[test]
fn a_stream_reset_mid_response_leaves_nothing_for_the_next_streams() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("h2-reset-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("big.bin"), vec![b'b'; 2 * 1024 * 1024]).expect("write");
    let htdocs = dir.to_string_lossy().into_owned();
    let (server, _) = serve(None, &["--url-alias", "/static", &htdocs]);
    // A static file and a large application response, each cut by the
    // client after its first DATA frame; then streams on the same h2
    // connection (and the internal connections it keeps) must get their
    // own responses, none of the cut ones' bytes.
    let script = h2_script(
        r#"
s, c = conn(int(sys.argv[1]))
wrong = []
for round in range(6):
    if round % 2 == 0:
        sid = get(s, c, "/static/big.bin")
    else:
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(":method", "POST"), (":path", "/echo"), (":scheme", "http"),
                             (":authority", "localhost"), ("content-length", "200000")])
        s.sendall(c.data_to_send())
        send_body(s, c, sid, b"e" * 200000)
    got = events(s, c, lambda seen: any(
        isinstance(e, h2.events.DataReceived) and e.stream_id == sid for e in seen))
    for e in got:
        if isinstance(e, h2.events.DataReceived):
            c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
    # More than the stream's window is on its way: it is cut mid-response.
    c.reset_stream(sid, 8)
    s.sendall(c.data_to_send())
    for i in range(5):
        payload = b"after %d %d;" % (round, i) * (i * 300)
        st, body = request(s, c, "POST", "/echo", payload)
        if st != "200" or body != payload:
            wrong.append((round, i, st, body[:40]))
        st, body = request(s, c, "GET", "/method")
        if st != "200" or body != b"the body":
            wrong.append((round, i, st, body[:40]))
print(wrong)
"#,
    );
    let out = python(&script, &[&server.port.to_string()]);
    assert_eq!(out.trim(), "[]", "{}", server.log.text());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_access_log_shows_h2_requests_as_http2() {
    let (server, _) = serve(None, &["--access-log"]);
    let url = format!("http://127.0.0.1:{}/pid?h2", server.port);
    let (version, status, _) = curl(&["--http2-prior-knowledge", &url]);
    assert_eq!((version.as_str(), status), ("2", 200));
    let url = format!("http://127.0.0.1:{}/pid?h1", server.port);
    let (version, _, _) = curl(&[&url]);
    assert_eq!(version, "1.1");
    // As Apache's mod_log_config writes them.
    assert!(
        server
            .log
            .wait_for("\"GET /pid?h2 HTTP/2.0\" 200", Duration::from_secs(10)),
        "{}",
        server.log.text()
    );
    assert!(server
        .log
        .wait_for("\"GET /pid?h1 HTTP/1.1\" 200", Duration::from_secs(10)));
}

#[test]
fn application_streams_bypass_the_io_thread_and_every_path_keeps_its_own_responses() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("h2-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("small.txt"), b"a static file\n").expect("write");
    let htdocs = dir.to_string_lossy().into_owned();
    let (server, _) = serve(
        None,
        &[
            "--url-alias",
            "/static",
            &htdocs,
            "--keep-alive-timeout",
            "60",
        ],
    );
    let script = format!(
        "{}{}",
        rwsgi_tests::PROCFS_PY,
        h2_script(
            r#"
import urllib.request
port = int(sys.argv[1])
pid = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/pid" % port).read())["pid"]
s, c = conn(port)
wrong = []
st, body = request(s, c, "GET", "/pid")
# The application's streams go from the h2 thread to the request threads
# and back to their pair's pool: the I/O thread (the worker's main thread)
# wakes only for its sweeps, not for each stream.
woke = switches(pid, "rwsgi-worker")
started = time.monotonic()
for i in range(300):
    st, body = request(s, c, "GET", "/method")
    if st != "200" or body != b"the body":
        wrong.append((i, st, body[:40]))
woke = switches(pid, "rwsgi-worker") - woke
sweeps = int((time.monotonic() - started) / 0.25) + 1
quiet = woke <= 2 * sweeps + 20
# Every other path, in turn on the same connection and its pairs: a body
# the application leaves unread (the worker closes that pair), a static
# file (a lane), a body larger than what comes with the request (the I/O
# thread receives it), a streamed response.
for i in range(8):
    st, body = request(s, c, "POST", "/pid", b"x" * 3000)
    if st != "200" or b"pid" not in body:
        wrong.append(("unread", i, st, body[:40]))
    st, body = request(s, c, "GET", "/static/small.txt")
    if st != "200" or body != b"a static file\n":
        wrong.append(("static", i, st, body[:40]))
    payload = b"%d;" % i * 60000
    st, body = request(s, c, "POST", "/echo", payload, length=i % 2 == 0)
    if st != "200" or body != payload:
        wrong.append(("upload", i, st, len(body)))
    st, body = request(s, c, "GET", "/stream")
    if st != "200" or body != b"part 0\npart 1\npart 2\n":
        wrong.append(("stream", i, st, body[:40]))
print(wrong, quiet or "the I/O thread woke %d times in 300 streams (%d sweeps)" % (woke, sweeps))
"#
        )
    );
    let out = python(&script, &[&server.port.to_string()]);
    assert_eq!(out.trim(), "[] True", "{}", server.log.text());
    let _ = std::fs::remove_dir_all(&dir);
}
