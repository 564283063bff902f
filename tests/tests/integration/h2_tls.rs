//! `h2` over TLS with the h2 thread doing the TLS itself (no socket pair
//! to the TLS thread): the worker holds no pair per connection and the TLS
//! thread sleeps through streams; large bodies both ways to a slow reader;
//! a client gone mid-stream; close_notify after GOAWAY; h2load with many
//! streams. Clients: Python's ssl with a minimal h2 framer (hpack from the
//! test venv), curl, h2load, trusting the test CA.

use nix::sys::signal::Signal;
use rwsgi_tests::pki::Pki;
use rwsgi_tests::Server;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Python's ssl with ALPN `h2` and raw frames; `sys.argv`: port, CA, mode,
/// then the mode's own arguments.
const CLIENT: &str = r#"
import os, socket, ssl, struct, sys, time
import hpack

port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
args = sys.argv[4:]
deadline = time.monotonic() + 60
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["h2"])
DATA, HEADERS, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 4, 6, 7, 8

class Conn:
    def __init__(self):
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        # A close without close_notify raises instead of reading as the end.
        self.s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
        assert self.s.selected_alpn_protocol() == "h2", self.s.selected_alpn_protocol()
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.buf = b""
        self.next_id = 1
        self.goaway = False
        # A large connection window: no WINDOW_UPDATE is needed per stream.
        self.s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0, b"")
                       + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 30)))
        # The server's SETTINGS: the h2 thread has the connection.
        self.until(lambda f: f[0] == SETTINGS and not f[1] & 1)

    def read_frame(self):
        while True:
            if len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + n:
                    kind, flags = self.buf[3], self.buf[4]
                    sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
                    payload = self.buf[9:9 + n]
                    self.buf = self.buf[9 + n:]
                    return self.answer((kind, flags, sid, payload))
            assert time.monotonic() < deadline, "too slow"
            chunk = self.s.recv(65536)  # SSLEOFError without close_notify
            if not chunk:
                return None
            self.buf += chunk

    def answer(self, f):
        kind, flags, sid, payload = f
        if kind == SETTINGS and not flags & 1:
            self.s.sendall(frame(SETTINGS, 1, 0, b""))
        elif kind == PING and not flags & 1:
            self.s.sendall(frame(PING, 1, 0, payload))
        elif kind == GOAWAY:
            self.goaway = True
        return f

    def until(self, done):
        while True:
            f = self.read_frame()
            assert f is not None, "closed"
            if done(f):
                return f

    def get(self, path):
        sid = self.next_id
        self.next_id += 2
        block = self.enc.encode([(":method", "GET"), (":path", path), (":scheme", "https"),
                                 (":authority", "localhost")])
        self.s.sendall(frame(HEADERS, 0x5, sid, block))
        return sid

    def response(self, sid):
        """(status, body) of stream `sid`."""
        status, body = None, b""
        while True:
            kind, flags, got, payload = self.until(lambda f: f[2] == sid)
            if kind == HEADERS:
                status = dict(self.dec.decode(payload))[":status"]
            elif kind == DATA:
                body += payload
                if payload:
                    self.s.sendall(frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", len(payload))))
            if flags & 1:
                return status, body

def frame(kind, flags, sid, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload

if mode == "no-pairs":
    worker = int(args[0])
    before = unix_sockets(worker)
    # Connections with no stream yet: no internal connection either.
    conns = [Conn() for _ in range(4)]
    held = unix_sockets(worker) - before
    woke = switches(worker, "rwsgi-tls")
    started = time.monotonic()
    for i in range(200):
        c = conns[i % 4]
        status, body = c.response(c.get("/pid"))
        assert status == "200" and b"pid" in body, (status, body)
    woke = switches(worker, "rwsgi-tls") - woke
    sweeps = int((time.monotonic() - started) / 0.25) + 1
    facts = "%d more Unix sockets in the worker for %d h2 connections; the TLS thread woke %d times in 200 streams (%d sweeps)" % (held, len(conns), woke, sweeps)
    assert held < len(conns) and woke <= 2 * sweeps + 20, facts
    print("ok")
elif mode == "gone-mid-stream":
    c = Conn()
    sid = c.get(args[0])
    got = 0
    # Some of the file, then the socket closes (no close_notify, no RST_STREAM).
    while got < 256 * 1024:
        kind, flags, _, payload = c.until(lambda f: f[2] == sid)
        assert not flags & 1, "the whole file came"
        if kind == DATA and payload:
            got += len(payload)
            c.s.sendall(frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", len(payload))))
    c.s.close()
    # The worker serves on.
    c = Conn()
    status, body = c.response(c.get("/pid"))
    assert status == "200", status
    print("ok")
elif mode == "goaway":
    c = Conn()
    sid = c.get("/sleep?1.5")
    status, body = c.response(sid)
    assert status == "200" and b"slept" in body, (status, body)
    # Read on to the end: close_notify reads as b"" (SSLEOFError without).
    while c.read_frame() is not None:
        pass
    assert c.goaway, "no GOAWAY"
    print("ok")
"#;

fn venv_python() -> PathBuf {
    rwsgi_tests::test_venv().join("bin/python")
}

fn client(pki: &Pki, port: u16, mode: &str, args: &[&str]) -> String {
    pki.client(&[rwsgi_tests::PROCFS_PY, CLIENT].concat(), port, mode, args)
}

/// A server with `--http2` and HTTPS: (server, https port).
fn serve(pki: &Pki, extra: &[&str]) -> (Server, u16) {
    let mut args = vec!["--http2", "--processes", "1"];
    args.extend_from_slice(extra);
    rwsgi_tests::pki::serve_https(pki, "app.py", &args)
}

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok();
    if !found {
        rwsgi_tests::skip::missing(
            "an HTTP/2 over TLS test",
            name,
            "Debian: apt-get install nghttp2-client",
        );
    }
    found
}

/// A directory with a file of `size` bytes (`big.bin`), removed on drop.
struct Files(PathBuf);

impl Files {
    fn new(tag: &str, size: usize) -> Files {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("h2-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.join("big.bin"), data).expect("write");
        Files(dir)
    }

    fn dir(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }

    fn big(&self) -> String {
        self.0.join("big.bin").to_string_lossy().into_owned()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn h2_over_tls_holds_no_socket_pair_and_leaves_the_tls_thread_idle() {
    let pki = Pki::new();
    let (server, port) = serve(&pki, &[]);
    let workers = server.worker_pids();
    assert_eq!(workers.len(), 1, "{workers:?}");
    let worker = workers[0].to_string();
    let out = client(&pki, port, "no-pairs", &[&worker]);
    assert_eq!(out.trim(), "ok", "{}", server.log.text());
}

#[test]
fn large_bodies_cross_h2_over_tls_both_ways_to_a_slow_reader() {
    let pki = Pki::new();
    let files = Files::new("bodies", 6 * 1024 * 1024);
    let (server, port) = serve(&pki, &["--url-alias", "/static", &files.dir()]);
    let want = std::fs::read(files.big()).expect("read");
    let ca = pki.p("ca.crt");
    let upload = format!("@{}", files.big());
    let echo = format!("https://localhost:{port}/echo");
    let file = format!("https://localhost:{port}/static/big.bin");
    // Up and back down through the application, then a static file; curl
    // reads (and sends) slowly: every buffer on the way fills.
    let runs: [&[&str]; 2] = [&["--data-binary", &upload, &echo], &[&file]];
    for run in runs {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "60", "--http2", "--cacert", &ca])
            .args(["--limit-rate", "3M", "-o", "-", "-w", "\n%{http_version}"])
            .args(run)
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "curl {run:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log.text()
        );
        let mut body = out.stdout;
        let at = body.iter().rposition(|&b| b == b'\n').expect("the -w line");
        assert_eq!(&body[at + 1..], b"2", "{run:?}");
        body.truncate(at);
        assert!(
            body.len() == want.len() && body == want,
            "{run:?}: {} of {} bytes, intact: {}",
            body.len(),
            want.len(),
            body == want
        );
    }
}

#[test]
fn a_client_gone_mid_stream_over_h2_tls_leaves_the_worker_serving() {
    let pki = Pki::new();
    let files = Files::new("gone", 16 * 1024 * 1024);
    let (server, port) = serve(&pki, &["--url-alias", "/static", &files.dir()]);
    let out = client(&pki, port, "gone-mid-stream", &["/static/big.bin"]);
    assert_eq!(out.trim(), "ok", "{}", server.log.text());
    // The gone client's connection is let go: no socket of the HTTPS port
    // but its listener is left (one in CLOSE_WAIT would be still held).
    let worker = server.worker_pids()[0];
    let local = format!(":{port:04X}");
    let let_go = || {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{worker}/net/tcp")) else {
            return false;
        };
        !text.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, rem_address, st (0A: listening).
            fields.len() > 3 && fields[1].ends_with(&local) && fields[3] != "0A"
        })
    };
    server.wait_until(
        "the gone client's connection closes",
        Duration::from_secs(20),
        let_go,
    );
}

#[test]
fn goaway_over_h2_tls_ends_with_close_notify() {
    let pki = Pki::new();
    let (mut server, port) = serve(&pki, &[]);
    let child = Command::new(venv_python())
        .arg("-c")
        .arg(CLIENT)
        .args([&port.to_string(), &pki.p("ca.crt"), "goaway"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    server.wait_running("GET /sleep");
    server.signal(Signal::SIGTERM);
    let out = child.wait_with_output().expect("python");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log.text()
    );
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("rwsgi exits");
    assert_eq!(status.code(), Some(0), "{}", server.log.text());
}

#[test]
fn h2load_over_tls_runs_many_streams_without_errors() {
    if !tool("h2load") {
        return;
    }
    let pki = Pki::new();
    let (server, port) = serve(&pki, &["--threads", "4"]);
    let out = Command::new("h2load")
        .args(["-n", "3000", "-c", "4", "-m", "32"])
        .arg(format!("https://127.0.0.1:{port}/pid"))
        .output()
        .expect("h2load");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("3000 succeeded, 0 failed, 0 errored"),
        "{text}\n{}",
        server.log.text()
    );
    assert!(text.contains("status codes: 3000 2xx"), "{text}");
    assert!(text.contains("Application protocol: h2"), "{text}");
}
