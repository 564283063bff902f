//! HTTPS (`--https-port` and the `--ssl-*` options): certificates made with
//! the openssl command, real clients (curl, Python's ssl through requests,
//! openssl s_client), the application and static files over TLS, client
//! certificates, `--https-only`, renewals, and bad material refused at start.

use rwsgi_tests::pki::Pki;
use rwsgi_tests::server::binary;
use rwsgi_tests::{app, Server};
use std::process::Command;
use std::time::{Duration, Instant};

/// curl over HTTPS trusting the test CA: (status, headers lower case, body).
fn curl(pki: &Pki, url: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "--cacert",
            &pki.p("ca.crt"),
            "-D",
            "/dev/stderr",
        ])
        .args(["-o", "-", "-w", ""])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, out.stdout)
}

fn serve(pki: &Pki, extra: &[&str]) -> (Server, u16) {
    rwsgi_tests::pki::serve_https(pki, "app.py", extra)
}

#[test]
fn the_application_and_static_files_are_served_over_https() {
    let pki = Pki::new();
    let statics = pki.dir.join("htdocs");
    std::fs::create_dir_all(&statics).expect("mkdir");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(statics.join("big.bin"), &big).expect("file");
    std::fs::write(statics.join("small.txt"), b"small file").expect("file");
    let htdocs = statics.to_string_lossy().into_owned();
    let (server, port) = serve(
        &pki,
        &["--ssl-environment", "--url-alias", "/static", &htdocs],
    );
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let (status, _, body) = curl(&pki, &url("/environ"), &[]);
    assert_eq!(status, 200);
    let env = rwsgi_tests::json(&body);
    assert_eq!(env["wsgi.url_scheme"], "https", "{env}");
    assert_eq!(env["HTTPS"], "on");
    assert_eq!(env["SERVER_PORT"], port.to_string());
    assert_eq!(env["SSL_PROTOCOL"], "TLSv1.3");
    assert!(
        env["SSL_CIPHER"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS_")),
        "{env}"
    );
    assert_eq!(env["SSL_CLIENT_VERIFY"], "NONE");
    assert_eq!(env["SSL_TLS_SNI"], "localhost");
    // TLS 1.2 too.
    let (status, _, body) = curl(&pki, &url("/environ"), &["--tlsv1.2", "--tls-max", "1.2"]);
    assert_eq!(status, 200);
    assert_eq!(rwsgi_tests::json(&body)["SSL_PROTOCOL"], "TLSv1.2");
    // Static files (sendfile into the pair), whole and in ranges.
    let (status, _, body) = curl(&pki, &url("/static/big.bin"), &[]);
    assert_eq!((status, body.len()), (200, big.len()));
    assert!(body == big, "the file arrives intact");
    let (status, _, body) = curl(&pki, &url("/static/big.bin"), &["-r", "100000-100009"]);
    assert_eq!((status, body.as_slice()), (206, &big[100_000..100_010]));
    // Several requests on one connection, and an upload.
    let (status, head, body) = curl(
        &pki,
        &url("/static/small.txt"),
        &[
            "--next",
            "--cacert",
            &pki.p("ca.crt"),
            &url("/static/small.txt"),
        ],
    );
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, b"small filesmall file");
    let payload = "x".repeat(200_000);
    std::fs::write(pki.dir.join("payload"), &payload).expect("payload");
    let upload = format!("@{}", pki.p("payload"));
    let (status, _, body) = curl(&pki, &url("/echo"), &["--data-binary", &upload]);
    assert_eq!((status, body.len()), (200, payload.len()));
    // Plain HTTP still serves, as http.
    let plain = rwsgi_tests::get(server.port, "/environ");
    assert_eq!(rwsgi_tests::json(&plain.body)["wsgi.url_scheme"], "http");
    // A client speaking plain HTTP to the HTTPS port gets no answer from the application.
    let r = rwsgi_tests::client::request(port, b"GET /environ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.map_or(true, |r| r.status != 200));
}

#[test]
fn https_only_redirects_plain_requests_and_sends_hsts() {
    let pki = Pki::new();
    let htdocs = pki.dir.join("htdocs");
    std::fs::create_dir_all(&htdocs).expect("mkdir");
    std::fs::write(htdocs.join("a.txt"), b"static").expect("file");
    let htdocs = htdocs.to_string_lossy().into_owned();
    let (server, port) = serve(
        &pki,
        &[
            "--https-only",
            "--hsts-policy",
            "max-age=31536000",
            "--url-alias",
            "/static",
            &htdocs,
        ],
    );
    let r = rwsgi_tests::client::request(
        server.port,
        b"GET /environ?a=1 HTTP/1.1\r\nHost: localhost:8000\r\nConnection: close\r\n\r\n",
    )
    .expect("plain request");
    assert_eq!(r.status, 301, "{}", r.head);
    assert_eq!(
        r.header("location"),
        Some(format!("https://localhost:{port}/environ?a=1").as_str())
    );
    for path in ["/environ", "/static/a.txt"] {
        let (status, head, _) = curl(&pki, &format!("https://localhost:{port}{path}"), &[]);
        assert_eq!(status, 200, "{path}");
        assert!(
            head.contains("strict-transport-security: max-age=31536000\r\n"),
            "{path}: {head}"
        );
    }
    // Static files on plain HTTP are redirected too.
    let r = rwsgi_tests::client::request(
        server.port,
        b"GET /static/a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .expect("plain request");
    assert_eq!(r.status, 301, "{}", r.head);
}

#[test]
fn client_certificates_guard_the_paths_that_need_them() {
    let pki = Pki::new();
    let ca = pki.p("ca.crt");
    let (server, port) = serve(
        &pki,
        &[
            "--ssl-ca-certificate-file",
            &ca,
            "--ssl-verify-client",
            "/admin",
            "--ssl-environment",
        ],
    );
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let (status, _, _) = curl(&pki, &url("/admin/environ"), &[]);
    assert_eq!(status, 403, "no certificate, no entry");
    let (status, _, _) = curl(&pki, &url("/environ"), &[]);
    assert_eq!(status, 200, "the rest of the site needs none");
    let cert = [
        "--cert",
        &pki.p("client.crt"),
        "--key",
        &pki.p("client.key"),
    ];
    let (status, _, body) = curl(&pki, &url("/environ"), &cert);
    assert_eq!(status, 200);
    let env = rwsgi_tests::json(&body);
    assert_eq!(env["SSL_CLIENT_VERIFY"], "SUCCESS", "{env}");
    assert!(
        env["SSL_CLIENT_S_DN"]
            .as_str()
            .is_some_and(|dn| dn.contains("CN=client one")),
        "{env}"
    );
    assert!(env["SSL_CLIENT_CERT"]
        .as_str()
        .is_some_and(|p| p.starts_with("-----BEGIN CERTIFICATE-----")));
    let (status, _, _) = curl(&pki, &url("/admin/environ"), &cert);
    assert_ne!(status, 403, "a verified client reaches the guarded path");
    // Plain HTTP never reaches a guarded path.
    let r = rwsgi_tests::get(server.port, "/admin/environ");
    assert_eq!(r.status, 403);
    // A certificate the CA did not sign fails the handshake.
    let other = ["--cert", &pki.p("server.crt"), "--key", &pki.p("other.key")];
    let (status, _, _) = curl(&pki, &url("/environ"), &other);
    assert_eq!(
        status, 0,
        "no response to a client with a foreign certificate"
    );
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart_and_a_bad_one_is_not() {
    let pki = Pki::new();
    let (server, port) = serve(&pki, &[]);
    let serial = || {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial"
            ))
            .output()
            .expect("openssl s_client");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let first = serial();
    assert!(first.starts_with("serial="), "{first:?}");
    // Renewed in place (a new key and certificate), as certbot does.
    pki.issue("server", "/CN=localhost", Some("server.ext"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while serial() == first {
        assert!(Instant::now() < deadline, "the renewal was not picked up");
        std::thread::sleep(Duration::from_millis(200));
    }
    let renewed = serial();
    // A broken renewal: the log says so, the renewed certificate serves on.
    std::fs::write(pki.dir.join("server.crt"), b"not a certificate").expect("write");
    assert!(server
        .log
        .wait_for("cannot be loaded", Duration::from_secs(30)));
    assert_eq!(serial(), renewed);
    let (status, _, _) = curl(&pki, &format!("https://localhost:{port}/environ"), &[]);
    assert_eq!(status, 200);
}

/// `rwsgi start-server --setup-only ARGS`: exit code and stderr.
fn setup_only(args: &[&str]) -> (i32, String) {
    let out = Command::new(binary("rwsgi"))
        .arg("start-server")
        .arg("--setup-only")
        .args(args)
        .arg(app("hello.py"))
        .output()
        .expect("rwsgi");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_tls_material_stops_the_start_with_a_line_naming_the_option() {
    let pki = Pki::new();
    let (crt, key, other) = (pki.p("server.crt"), pki.p("server.key"), pki.p("other.key"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--https-port",
                "0",
                "--ssl-certificate-file",
                "/nonexistent.crt",
                "--ssl-certificate-key-file",
                &key,
            ],
            "--ssl-certificate-file: /nonexistent.crt",
        ),
        (
            vec![
                "--https-port",
                "0",
                "--ssl-certificate-file",
                &crt,
                "--ssl-certificate-key-file",
                &other,
            ],
            "--ssl-certificate-key-file",
        ),
        (
            vec![
                "--https-port",
                "0",
                "--ssl-certificate-file",
                &key,
                "--ssl-certificate-key-file",
                &key,
            ],
            "--ssl-certificate-file",
        ),
        (
            vec!["--https-port", "0", "--ssl-certificate-file", &crt],
            "--https-port",
        ),
        (
            vec![
                "--ssl-certificate-file",
                &crt,
                "--ssl-certificate-key-file",
                &key,
            ],
            "'--ssl-certificate-file': needs --https-port",
        ),
        (
            vec![
                "--https-port",
                "0",
                "--ssl-certificate-file",
                &crt,
                "--ssl-certificate-key-file",
                &key,
                "--ssl-verify-client",
                "/a",
            ],
            "--ssl-verify-client",
        ),
    ];
    for (args, want) in cases {
        let (code, err) = setup_only(&args);
        assert_ne!(code, 0, "{args:?} started");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // --ssl-certificate: the common path of NAME.crt and NAME.key.
    let common = pki.p("server");
    let (code, err) = setup_only(&["--https-port", "0", "--ssl-certificate", &common]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn silent_clients_on_the_https_port_hold_no_thread_and_are_dropped() {
    use std::io::Read;
    let pki = Pki::new();
    let (_server, port) = serve(&pki, &["--threads", "1", "--header-timeout", "2"]);
    // Twenty connections that never say hello: handshakes wait in the TLS
    // thread, not on the one request thread.
    let mut silent: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let (status, _, _) = curl(&pki, &format!("https://localhost:{port}/environ"), &[]);
    assert_eq!(status, 200, "served while twenty handshakes wait");
    // Each is closed once its handshake time is up.
    for s in &mut silent {
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a silent handshake was not closed: {other:?}"),
        }
    }
}

/// A TLS client in the test venv's Python for what curl does not do:
/// pipelining, reading slowly, uploading while the worker is slow to
/// read, sending half a record. Prints `ok` when every check held.
const TLS_CLIENT: &str = r#"
import socket, ssl, sys, time
port, ca, mode, size = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
deadline = time.monotonic() + 60

def connect():
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    return ctx.wrap_socket(raw, server_hostname="localhost")

def responses(s, count, pace=0.0):
    data, out = b"", []
    while len(out) < count:
        assert time.monotonic() < deadline, "too slow"
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            head = data[:end].decode("latin-1").lower().split("\r\n")
            length = [int(l.split(":", 1)[1]) for l in head if l.startswith("content-length:")]
            length = length[0] if length else 0
            if len(data) >= end + 4 + length:
                out.append((head[0].split()[1], data[end + 4:end + 4 + length]))
                data = data[end + 4 + length:]
                continue
        chunk = s.recv(16384)
        assert chunk, "closed after %d responses" % len(out)
        data += chunk
        if pace:
            time.sleep(pace)
    assert data == b"", "bytes past the responses"
    return out

def pattern(n):
    return bytes(i * 7 % 251 for i in range(n))

if mode == "pipelined":
    s = connect()
    upload = b"u" * 3000
    reqs = []
    for i in range(size):
        if i % 3 == 0:
            reqs.append(b"GET /static/small.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        else:
            reqs.append(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(upload) + i, upload + b"v" * i))
    s.sendall(b"".join(reqs))
    got = responses(s, size)
    for i, (status, body) in enumerate(got):
        assert status == "200", (i, status)
        want = b"small file" if i % 3 == 0 else upload + b"v" * i
        assert body == want, (i, len(body))
elif mode == "slow-reader":
    s = connect()
    s.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n"
              b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
    # Every buffer on the way fills before the first byte is read.
    time.sleep(1)
    (status, body), (status2, body2) = responses(s, 2, pace=0.002)
    assert status == "200" and body == pattern(size), (status, len(body))
    assert (status2, body2) == ("200", b"hello")
elif mode == "upload":
    s = connect()
    body = pattern(size)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % size + body)
    [(status, echoed)] = responses(s, 1)
    assert status == "200" and echoed == body, (status, len(echoed))
elif mode == "half-record":
    # The records by hand (a memory BIO), so half of one can be sent.
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    def flush():
        out = outgoing.read()
        if out:
            raw.sendall(out)
    def feed():
        chunk = raw.recv(65536)
        if chunk:
            incoming.write(chunk)
        else:
            incoming.write_eof()
        return chunk
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            assert feed(), "closed in the handshake"
    flush()
    def half_request():
        tls.write(b"GET /static/small.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        record = outgoing.read()
        raw.sendall(record[: len(record) // 2])
        return record[len(record) // 2:]
    rest = half_request()
    # The one request thread and the TLS thread serve others meanwhile.
    other = connect()
    other.sendall(b"GET /environ HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert responses(other, 1)[0][0] == "200"
    other.close()
    time.sleep(0.5)
    raw.sendall(rest)
    data = b""
    while b"small file" not in data:
        assert feed(), "closed before the response"
        try:
            data += tls.read(65536)
        except ssl.SSLWantReadError:
            pass
    assert data.startswith(b"HTTP/1.1 200"), data
    # Half a record again, then silence: the server ends the connection.
    half_request()
    while True:
        assert time.monotonic() < deadline, "a stalled record kept the connection open"
        try:
            if not feed():
                break
        except ConnectionResetError:
            break
print("ok")
"#;

fn tls_client(pki: &Pki, port: u16, mode: &str, size: usize) -> String {
    rwsgi_tests::venv_python(
        TLS_CLIENT,
        &[&port.to_string(), &pki.p("ca.crt"), mode, &size.to_string()],
    )
}

/// Serves `htdocs` with `big.bin` of `size` bytes and `small.txt`.
fn serve_files(pki: &Pki, size: usize, extra: &[&str]) -> (Server, u16) {
    let statics = pki.dir.join("htdocs");
    std::fs::create_dir_all(&statics).expect("mkdir");
    let big: Vec<u8> = (0..size as u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(statics.join("big.bin"), &big).expect("file");
    std::fs::write(statics.join("small.txt"), b"small file").expect("file");
    let htdocs = statics.to_string_lossy().into_owned();
    let mut args = vec!["--url-alias", "/static", &htdocs];
    args.extend_from_slice(extra);
    serve(pki, &args)
}

#[test]
fn pipelined_requests_over_https_are_answered_in_order() {
    let pki = Pki::new();
    let (_server, port) = serve_files(&pki, 1000, &[]);
    // Static (a lane) and application requests mixed, all sent at once.
    assert_eq!(tls_client(&pki, port, "pipelined", 60).trim(), "ok");
}

#[test]
fn large_https_transfers_survive_a_slow_reader_and_a_slow_application() {
    let pki = Pki::new();
    let size = 6 * 1024 * 1024;
    let (_server, port) = serve_files(&pki, size, &[]);
    // A response larger than every buffer on its way, read slowly.
    assert_eq!(tls_client(&pki, port, "slow-reader", size).trim(), "ok");
    // An upload larger than the socket pair holds: the TLS thread waits
    // for the application to read and resumes.
    assert_eq!(tls_client(&pki, port, "upload", size).trim(), "ok");
}

#[test]
fn half_a_tls_record_waits_for_the_rest_and_a_stalled_one_is_closed() {
    let pki = Pki::new();
    let (_server, port) = serve_files(
        &pki,
        1000,
        &[
            "--threads",
            "1",
            "--keep-alive-timeout",
            "2",
            "--header-timeout",
            "2",
        ],
    );
    assert_eq!(tls_client(&pki, port, "half-record", 0).trim(), "ok");
}
