//! `--server-metrics` (mod_wsgi.server_metrics()), `--telemetry-service`
//! with `--telemetry-interval`, `--telemetry-options` and `--slow-requests`
//! (mod_wsgi 6's telemetry datagrams, received on a unix datagram socket
//! the test binds, as the mod_wsgi-telemetry ingester does), and
//! `--enable-docs` (/__wsgi__/docs/).

use rwsgi_tests::server::binary;
use rwsgi_tests::{app, get, json, request, Server};
use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

#[test]
fn server_metrics_show_the_workers_and_the_requests_they_served() {
    let server = Server::start(&[
        "--processes",
        "2",
        "--threads",
        "3",
        "--server-metrics",
        &app("metrics.py"),
    ]);
    for _ in 0..5 {
        assert_eq!(get(server.port, "/hello").status, 200);
    }
    let r = get(server.port, "/server-metrics");
    assert_eq!(r.status, 200, "{}", server.log.text());
    let m = json(&r.body);
    for key in [
        "server_limit",
        "thread_limit",
        "running_generation",
        "running_time",
    ] {
        assert!(m[key].is_u64(), "{key}: {m}");
    }
    assert!(
        m["restart_time"].as_f64() <= m["current_time"].as_f64(),
        "{m}"
    );
    let processes = m["processes"].as_array().expect("processes");
    let mut pids: Vec<i64> = processes
        .iter()
        .map(|p| p["pid"].as_i64().expect("pid"))
        .collect();
    pids.sort();
    let mut workers: Vec<i64> = server.worker_pids().into_iter().map(i64::from).collect();
    workers.sort();
    assert_eq!(pids, workers, "{m}");
    let threads: Vec<&serde_json::Value> = processes
        .iter()
        .flat_map(|p| {
            assert_eq!(p["quiescing"], false, "{p}");
            let w = p["workers"].as_array().expect("workers");
            assert_eq!(w.len(), 3, "{p}");
            w.iter()
        })
        .collect();
    // The five requests before, counted where they ran; this one running.
    let served: u64 = threads
        .iter()
        .map(|t| t["access_count"].as_u64().expect("count"))
        .sum();
    assert_eq!(served, 5, "{m}");
    let running: Vec<_> = threads.iter().filter(|t| t["status"] == "W").collect();
    assert_eq!(running.len(), 1, "{m}");
    assert_eq!(running[0]["request"], "GET /server-metrics", "{m}");
    assert_eq!(running[0]["client"], "127.0.0.1", "{m}");
}

#[test]
fn without_server_metrics_the_function_returns_none() {
    let server = Server::start(&[&app("metrics.py")]);
    let r = get(server.port, "/server-metrics");
    assert_eq!((r.status, r.text()), (200, "null".to_owned()));
}

#[test]
fn process_metrics_answer_once_recording_starts_and_never_with_telemetry() {
    let server = Server::start(&["--threads", "2", &app("metrics.py")]);
    assert_eq!(get(server.port, "/process-metrics").text(), "null");
    assert_eq!(get(server.port, "/start-recording").text(), "null");
    for _ in 0..3 {
        assert_eq!(get(server.port, "/hello").status, 200);
    }
    let r = get(server.port, "/process-metrics");
    assert_eq!(r.status, 200, "{}", server.log.text());
    let m = json(&r.body);
    assert_eq!(
        m["pid"].as_i64(),
        Some(i64::from(server.worker_pids()[0])),
        "{m}"
    );
    // The five requests before this one, which is running.
    assert_eq!(m["request_count"], 5, "{m}");
    assert_eq!(m["request_threads"], 2, "{m}");
    assert_eq!(m["active_requests"], 1, "{m}");
    let threads = m["threads"].as_array().expect("threads");
    assert_eq!(threads.len(), 2, "{m}");
    let per_thread: u64 = threads
        .iter()
        .map(|t| t["request_count"].as_u64().expect("n"))
        .sum();
    assert_eq!(per_thread, 5, "{m}");
    assert!(m["memory_rss"].as_u64().is_some_and(|v| v > 0), "{m}");
    assert!(m["cpu_time"].as_f64().is_some_and(|v| v > 0.0), "{m}");
    assert!(
        m["request_busy_time"].as_f64().is_some_and(|v| v >= 0.0),
        "{m}"
    );
    // With a telemetry service the reporter is the one consumer (mod_wsgi).
    let dir = Scratch::new();
    let target = format!("unix:{}", dir.0.join("nobody.sock").display());
    let told = Server::start(&["--telemetry-service", &target, &app("metrics.py")]);
    assert_eq!(get(told.port, "/start-recording").status, 200);
    assert_eq!(get(told.port, "/process-metrics").text(), "null");
}

/// One datagram as mod_wsgi-telemetry's wire.py decodes it.
#[derive(Debug)]
struct Sample {
    kind: u8,
    pid: u32,
    seq: u32,
    fields: HashMap<u16, Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    U64(u64),
    F64(f64),
    Bytes(String),
    I32s(Vec<i32>),
    F64s(Vec<f64>),
}

impl Sample {
    fn u64(&self, id: u16) -> Option<u64> {
        match self.fields.get(&id) {
            Some(Value::U64(v)) => Some(*v),
            _ => None,
        }
    }
    fn f64(&self, id: u16) -> Option<f64> {
        match self.fields.get(&id) {
            Some(Value::F64(v)) => Some(*v),
            _ => None,
        }
    }
    fn text(&self, id: u16) -> Option<&str> {
        match self.fields.get(&id) {
            Some(Value::Bytes(v)) => Some(v),
            _ => None,
        }
    }
}

fn decode(buf: &[u8]) -> Sample {
    assert!(buf.len() >= 24, "short datagram {buf:?}");
    assert_eq!(&buf[..4], b"WSGI");
    assert_eq!(buf[4], 1, "version");
    let u16_at = |o: usize| u16::from_le_bytes([buf[o], buf[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().expect("4"));
    let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().expect("8"));
    let (kind, pid, seq) = (buf[5], u32_at(8), u32_at(12));
    let mut fields = HashMap::new();
    let mut o = 24;
    while o < buf.len() {
        let (id, ty) = (u16_at(o), buf[o + 2]);
        o += 3;
        let value = match ty {
            1 => Value::U64(u64_at(o)),
            2 => Value::F64(f64::from_bits(u64_at(o))),
            4 => {
                let n = u16_at(o) as usize;
                o += 2;
                Value::Bytes(String::from_utf8(buf[o..o + n].to_vec()).expect("utf-8"))
            }
            5 => {
                let n = u16_at(o) as usize;
                o += 2;
                Value::I32s((0..n).map(|i| u32_at(o + 4 * i) as i32).collect())
            }
            6 => {
                let n = u16_at(o) as usize;
                o += 2;
                Value::F64s((0..n).map(|i| f64::from_bits(u64_at(o + 8 * i))).collect())
            }
            other => panic!("type tag {other:#x} in {buf:?}"),
        };
        o += match &value {
            Value::U64(_) | Value::F64(_) => 8,
            Value::Bytes(s) => s.len(),
            Value::I32s(v) => 4 * v.len(),
            Value::F64s(v) => 8 * v.len(),
        };
        fields.insert(id, value);
    }
    assert_eq!(o, buf.len(), "trailing bytes");
    Sample {
        kind,
        pid,
        seq,
        fields,
    }
}

/// A directory of the test's own, removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rwsgi-telemetry-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const STARTED: u8 = 5;
const REQUEST: u8 = 2;
const SLOW: u8 = 4;
const STOPPING: u8 = 6;
const STOPPED: u8 = 7;

/// Receives datagrams until `done` says so or `limit` passes.
fn receive_until(
    socket: &UnixDatagram,
    got: &mut Vec<Sample>,
    limit: Duration,
    mut done: impl FnMut(&[Sample]) -> bool,
) -> bool {
    let end = Instant::now() + limit;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < end {
        if done(got) {
            return true;
        }
        match socket.recv(&mut buf) {
            Ok(n) => got.push(decode(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    done(got)
}

#[test]
fn workers_push_mod_wsgi_telemetry_datagrams_to_the_ingester_socket() {
    let dir = Scratch::new();
    let path = dir.0.join("telemetry.sock");
    let socket = UnixDatagram::bind(&path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let target = format!("unix:{}", path.display());
    let mut server = Server::start(&[
        "--threads",
        "2",
        "--process-group",
        "tele",
        "--telemetry-service",
        &target,
        "--telemetry-interval",
        "0.5",
        "--telemetry-options",
        "+CaptureUserAgent",
        "--slow-requests",
        "1",
        &app("metrics.py"),
    ]);
    let worker = server.worker_pids()[0] as u32;
    for _ in 0..3 {
        assert_eq!(get(server.port, "/hello").status, 200);
    }
    let slow = request(
        server.port,
        b"GET /sleep?2 HTTP/1.1\r\nHost: tele.example\r\nUser-Agent: telemetry-test/1\r\nConnection: close\r\n\r\n",
    )
    .expect("GET /sleep");
    assert_eq!(slow.status, 200);
    let mut got = Vec::new();
    let completed_slow = |s: &Sample| s.kind == SLOW && s.u64(200) == Some(1);
    let counted = |got: &[Sample]| {
        got.iter()
            .filter(|s| s.kind == REQUEST)
            .filter_map(|s| s.u64(20))
            .sum::<u64>()
    };
    let all_seen = receive_until(&socket, &mut got, Duration::from_secs(20), |got| {
        got.iter().any(|s| s.kind == STARTED) && got.iter().any(completed_slow) && counted(got) >= 4
    });
    assert!(all_seen, "datagrams: {got:#?}\nlog:\n{}", server.log.text());
    assert!(got.iter().all(|s| s.pid == worker), "{got:#?}");
    let started = got.iter().find(|s| s.kind == STARTED).expect("started");
    assert_eq!(started.text(6), Some("tele"));
    assert_eq!(started.u64(7), Some(server.pid() as u64));
    assert!(
        started.text(2).is_some_and(|v| v.starts_with('3')),
        "{started:?}"
    );
    // The sequence numbers grow by one per datagram of the process.
    let seqs: Vec<u32> = got.iter().map(|s| s.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let sample = got.iter().find(|s| s.kind == REQUEST).expect("a sample");
    assert_eq!(sample.f64(11), Some(0.5), "{sample:?}");
    assert_eq!(sample.f64(12), Some(1.0), "{sample:?}");
    assert_eq!(sample.u64(50), Some(2), "{sample:?}");
    assert!(sample.u64(40).is_some_and(|rss| rss > 0), "{sample:?}");
    assert_eq!(counted(&got), 4, "{got:#?}");
    // Busy thread time over available thread time, the slow request's
    // seconds spread over the intervals it ran in.
    for s in got.iter().filter(|s| s.kind == REQUEST) {
        assert!(s.f64(22).is_some_and(|c| (0.0..=1.0).contains(&c)), "{s:?}");
    }
    let ok: u64 = got
        .iter()
        .filter(|s| s.kind == REQUEST)
        .filter_map(|s| s.u64(121))
        .sum();
    assert_eq!(ok, 4, "status 2xx totals: {got:#?}");
    // The slow request: seen running past the threshold, then completed,
    // both records with the same start stamp (the ingester's key).
    let done = got.iter().find(|s| completed_slow(s)).expect("completed");
    assert_eq!(done.text(210), Some("GET"));
    assert_eq!(done.text(214), Some("/sleep"));
    assert_eq!(done.text(212), Some("tele.example"));
    assert_eq!(done.text(217), Some("telemetry-test/1"));
    assert_eq!(done.text(216), Some("127.0.0.1"));
    assert_eq!(done.u64(240), Some(200));
    assert!(done.f64(202).is_some_and(|d| d >= 2.0), "{done:?}");
    let active = got
        .iter()
        .find(|s| s.kind == SLOW && s.u64(200) == Some(0))
        .expect("an active slow record");
    assert_eq!(active.text(214), Some("/sleep"));
    assert_eq!(active.f64(201), done.f64(201), "start stamps");
    assert_eq!(active.u64(203), done.u64(203), "thread");
    // Stopped: the lifetime total arrives with the worker's end.
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(20)).is_some());
    let stopped = receive_until(&socket, &mut got, Duration::from_secs(5), |got| {
        got.iter().any(|s| s.kind == STOPPED)
    });
    assert!(stopped, "{got:#?}");
    let stop_at = got.iter().position(|s| s.kind == STOPPED).expect("stopped");
    let stopping_at = got
        .iter()
        .position(|s| s.kind == STOPPING)
        .expect("stopping");
    assert!(stopping_at < stop_at, "{got:#?}");
    let stop = &got[stop_at];
    assert_eq!(stop.u64(132), Some(4), "{stop:?}");
    assert_eq!(stop.u64(135), Some(1), "{stop:?}");
}

#[test]
fn a_udp_telemetry_target_is_refused_with_mod_wsgi_express_message() {
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(binary("rwsgi"))
        .args([
            "start-server",
            "--port",
            "0",
            "--telemetry-service",
            "udp:127.0.0.1:9",
        ])
        .arg(app("hello.py"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run rwsgi");
    // Refused at once; a server that started instead is stopped.
    let end = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().expect("wait").is_none() {
        let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
    }
    let out = child.wait_with_output().expect("rwsgi's output");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--telemetry-service must be 'unix:/path' (remote 'udp:host:port' targets are no longer supported)"),
        "{err}"
    );
}

fn curl(url: &str) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-D", "-", "-o", "-", "--max-time", "20", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_owned(), body.to_owned())
}

#[test]
fn enable_docs_serves_rwsgi_documentation_and_without_it_the_path_is_the_apps() {
    let server = Server::start(&["--enable-docs", &app("metrics.py")]);
    let base = format!("http://127.0.0.1:{}/__wsgi__/docs", server.port);
    let (head, body) = curl(&format!("{base}/"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    let readme =
        std::fs::read_to_string(rwsgi_tests::repo_root().join("README.md")).expect("README");
    let title = readme
        .lines()
        .next()
        .expect("a title")
        .trim_start_matches("# ");
    assert!(body.contains(&format!(">{title}</h1>")), "{body:.400}");
    assert!(
        body.contains("href=\"docker.html"),
        "the guides link each other"
    );
    assert!(!body.contains("app saw"), "{body:.400}");
    let (head, body) = curl(&format!("{base}/docker.html"));
    assert!(
        head.starts_with("HTTP/1.1 200") && body.contains("<h1"),
        "{head}"
    );
    let (head, _) = curl(&base);
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert!(head.contains("/__wsgi__/docs/"), "{head}");
    // Other paths are the application's as before.
    assert_eq!(get(server.port, "/other").text(), "app saw /other");
    // Without the option the path is the application's, as before.
    let plain = Server::start(&[&app("metrics.py")]);
    let r = get(plain.port, "/__wsgi__/docs/");
    assert_eq!(r.text(), "app saw /__wsgi__/docs/");
}
