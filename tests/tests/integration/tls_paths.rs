//! HTTPS on every path that reads or writes a connection, now that the
//! threads doing a connection's I/O also do its TLS (no socket pair to the
//! TLS thread): the worker holds no pair and the TLS thread sleeps through
//! requests; close_notify at `Connection: close`; a large
//! `wsgi.file_wrapper` response read slowly; uploads with `100 Continue`,
//! received by the I/O thread or read by the application in small pieces;
//! a `write` kept past its request; `--proxy-mount-point`. Clients: Python's
//! `ssl` (test venv) and curl, trusting the test CA.

use rwsgi_tests::pki::Pki;
use rwsgi_tests::{app, Server};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Python's ssl on raw sockets; `sys.argv`: port, CA, mode, then the
/// mode's own arguments.
const CLIENT: &str = r#"
import hashlib, os, socket, ssl, sys, time

port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
args = sys.argv[4:]
deadline = time.monotonic() + 60
ctx = ssl.create_default_context(cafile=ca)

def connect():
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    # A close without close_notify raises instead of reading as the end.
    return ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)

def read_head(s, data=b""):
    while b"\r\n\r\n" not in data:
        assert time.monotonic() < deadline, "too slow"
        chunk = s.recv(65536)
        assert chunk, "closed before a response head: %r" % data
        data += chunk
    end = data.index(b"\r\n\r\n")
    return data[:end].decode("latin-1"), data[end + 4:]

def length_of(head):
    for line in head.lower().split("\r\n")[1:]:
        if line.startswith("content-length:"):
            return int(line.split(":", 1)[1])
    raise AssertionError("no length: " + head)

def response(s, data=b"", pace=0.0):
    """(status line, body, bytes after it) of one response with a length."""
    head, data = read_head(s, data)
    want = length_of(head)
    while len(data) < want:
        assert time.monotonic() < deadline, "too slow: %d of %d" % (len(data), want)
        chunk = s.recv(65536)
        assert chunk, "closed after %d of %d bytes" % (len(data), want)
        data += chunk
        if pace:
            time.sleep(pace)
    return head.split("\r\n")[0], data[:want], data[want:]

def get(s, path):
    s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path.encode())
    status, body, rest = response(s)
    assert rest == b"", rest
    return status, body

if mode == "no-pairs":
    worker = int(args[0])
    before = unix_sockets(worker)
    conns = [connect() for _ in range(4)]
    for s in conns:
        assert get(s, "/hello") == ("HTTP/1.1 200 OK", b"hello")
    held = unix_sockets(worker) - before
    # The TLS thread has nothing to do with requests once the handshake is
    # done: it wakes only for its periodic sweep.
    woke = switches(worker, "rwsgi-tls")
    started = time.monotonic()
    for i in range(300):
        assert get(conns[i % 4], "/hello")[1] == b"hello"
    woke = switches(worker, "rwsgi-tls") - woke
    sweeps = int((time.monotonic() - started) / 0.25) + 1
    facts = "%d more Unix sockets in the worker for %d HTTPS connections; the TLS thread woke %d times in 300 requests (%d sweeps)" % (held, len(conns), woke, sweeps)
    assert held < len(conns) and woke <= 2 * sweeps + 20, facts
    print("ok")
elif mode == "close-notify":
    s = connect()
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        assert time.monotonic() < deadline, "too slow"
        chunk = s.recv(65536)  # raises SSLEOFError without close_notify
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nhello"), data
    print("ok")
elif mode == "slow-file":
    path, name = args[0], args[1]
    with open(name, "rb") as f:
        want = f.read()
    s = connect()
    s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path.encode())
    head, data = read_head(s)
    # Every buffer on the way fills while the client reads nothing.
    time.sleep(1)
    status, body, rest = response(s, b"\r\n\r\n".join([head.encode(), data]), pace=0.002)
    assert status == "HTTP/1.1 200 OK", status
    assert len(body) == len(want) and body == want, "%d of %d bytes, intact: %s" % (len(body), len(want), body == want)
    # The connection serves on.
    assert get(s, "/hello") == ("HTTP/1.1 200 OK", b"hello")
    print("ok")
elif mode in ("continue-length", "continue-chunked"):
    size = int(args[0])
    body = bytes(i * 7 % 251 for i in range(size))
    s = connect()
    if mode == "continue-length":
        framing = b"Content-Length: %d" % size
    else:
        framing = b"Transfer-Encoding: chunked"
    s.sendall(b"POST /pieces HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n%s\r\n\r\n" % framing)
    head, rest = read_head(s)
    assert head == "HTTP/1.1 100 Continue" and rest == b"", (head, rest)
    for at in range(0, size, 65536):
        piece = body[at:at + 65536]
        if mode == "continue-length":
            s.sendall(piece)
        else:
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    if mode == "continue-chunked":
        s.sendall(b"0\r\n\r\n")
    status, got, rest = response(s)
    assert status == "HTTP/1.1 200 OK", status
    assert got == b"%d %s" % (size, hashlib.sha256(body).hexdigest().encode()), got
    assert rest == b""
    assert get(s, "/hello") == ("HTTP/1.1 200 OK", b"hello")
    print("ok")
elif mode == "kept-write":
    s = connect()
    s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % p
                       for p in (b"/keep", b"/use-kept", b"/hello")))
    got, rest = [], b""
    for _ in range(3):
        status, body, rest = response(s, rest)
        got.append(body)
    assert got == [b"kept", b"raised", b"hello"] and rest == b"", (got, rest)
    print("ok")
"#;

fn client(pki: &Pki, port: u16, mode: &str, args: &[&str]) -> String {
    pki.client(&[rwsgi_tests::PROCFS_PY, CLIENT].concat(), port, mode, args)
}

fn serve(pki: &Pki, extra: &[&str]) -> (Server, u16) {
    rwsgi_tests::pki::serve_https(pki, "tls_paths.py", extra)
}

#[test]
fn https_connections_hold_no_socket_pair_and_leave_the_tls_thread_idle() {
    let pki = Pki::new();
    let (server, port) = serve(&pki, &["--processes", "1"]);
    let workers = server.worker_pids();
    assert_eq!(workers.len(), 1, "{workers:?}");
    let worker = workers[0].to_string();
    assert_eq!(client(&pki, port, "no-pairs", &[&worker]).trim(), "ok");
}

#[test]
fn connection_close_over_https_ends_with_close_notify() {
    let pki = Pki::new();
    let (_server, port) = serve(&pki, &[]);
    assert_eq!(client(&pki, port, "close-notify", &[]).trim(), "ok");
}

#[test]
fn a_large_file_wrapper_response_over_https_survives_a_slow_reader() {
    let pki = Pki::new();
    let data: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i * 13 % 253) as u8)
        .collect();
    let file = pki.dir.join("five.bin");
    std::fs::write(&file, &data).expect("file");
    // The connection's keep-alive time runs from the response's last write
    // into the socket, while the slow client may still be reading what the
    // buffers hold: long enough that a loaded machine does not close it
    // under the follow-up request.
    let (_server, port) = serve(&pki, &["--keep-alive-timeout", "60"]);
    let file = file.to_string_lossy().into_owned();
    let path = format!("/file?{file}");
    assert_eq!(
        client(&pki, port, "slow-file", &[&path, &file]).trim(),
        "ok"
    );
}

#[test]
fn uploads_over_https_get_100_continue_and_arrive_whole() {
    let pki = Pki::new();
    // --chunked-request: the application reads a chunked body from the
    // connection itself, 1000 bytes at a time.
    let (_server, port) = serve(&pki, &["--chunked-request"]);
    let size = (5 * 1024 * 1024).to_string();
    // Received by the I/O thread before the application runs.
    assert_eq!(client(&pki, port, "continue-length", &[&size]).trim(), "ok");
    assert_eq!(
        client(&pki, port, "continue-chunked", &[&size]).trim(),
        "ok"
    );
}

#[test]
fn a_write_kept_past_its_request_cannot_reach_the_next_one_over_https() {
    let pki = Pki::new();
    let (_server, port) = serve(&pki, &["--threads", "1"]);
    assert_eq!(client(&pki, port, "kept-write", &[]).trim(), "ok");
}

/// `apps/proxy_backend.py` on a port it picks; killed on drop.
struct Backend(Child, u16);

impl Backend {
    fn start() -> Backend {
        let mut child = Command::new(rwsgi_tests::test_venv().join("bin/python"))
            .arg(app("proxy_backend.py"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python runs the backend");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the backend says its port");
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port from the backend: {line:?}"));
        Backend(child, port)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn proxy_mounts_relay_over_https() {
    let pki = Pki::new();
    let backend = Backend::start();
    let target = format!("http://127.0.0.1:{}/v1", backend.1);
    let (_server, port) = serve(&pki, &["--proxy-mount-point", "/api", &target]);
    let payload = "p".repeat(300_000);
    let file = pki.dir.join("payload");
    std::fs::write(&file, &payload).expect("payload");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "--cacert", &pki.p("ca.crt")])
        .args(["--data-binary", &format!("@{}", file.display())])
        .arg(format!("https://localhost:{port}/api/echo"))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let echo = rwsgi_tests::json(&out.stdout);
    assert_eq!(echo["target"], "/v1/echo", "{echo}");
    assert_eq!(echo["body"].as_str().map(str::len), Some(payload.len()));
}
