//! One log record, one line: every record from every process and thread
//! (master, template, workers, access records, the application's prints,
//! `wsgi.errors`, stack dumps) reaches the output whole, in JSON and text,
//! while several processes and threads log at once and through a reload.

use nix::sys::signal::Signal;
use rwsgi_tests::{app, get, Server};
use std::time::Duration;

const CLIENTS: usize = 8;
const REQUESTS: usize = 60;

/// Drives 4 x 2 workers hard with every kind of record, a reload and a
/// stack dump on the way, then stops the server and returns its output.
fn busy_log(format: &str) -> String {
    let started = std::time::Instant::now();
    let mut server = Server::start(&[
        "--processes",
        "4",
        "--threads",
        "2",
        "--log-format",
        format,
        "--access-log",
        &app("chatty.py"),
    ]);
    let port = server.port;
    let run = |round: usize| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                std::thread::spawn(move || {
                    for i in 0..REQUESTS {
                        let kind = if i % 10 == 0 { "long" } else { "r" };
                        let tag = format!("t{round}c{c}i{i}");
                        let r = get(port, &format!("/{kind}/{tag}"));
                        assert_eq!(r.status, 200);
                    }
                })
            })
            .collect();
        clients
    };
    let first = run(0);
    server.signal(Signal::SIGUSR1);
    for c in first {
        c.join().expect("client");
    }
    server.wait_until("the reload", Duration::from_secs(30), || {
        server.log.text().contains("reload complete")
    });
    let second = run(1);
    // Stack dumps while the second round runs: faulthandler's output
    // becomes records too.
    let workers = server.worker_pids();
    for pid in &workers {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGUSR2);
    }
    for c in second {
        c.join().expect("client");
    }
    server.wait_until("the stack dumps", Duration::from_secs(20), || {
        server.log.count("Python stacks of every thread") >= workers.len()
    });
    eprintln!("{format}: load done after {:?}", started.elapsed());
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(30)).is_some());
    assert!(server.log.wait_closed(Duration::from_secs(10)));
    eprintln!("{format}: stopped after {:?}", started.elapsed());
    server.log.text()
}

/// Every tag of every request, with the records it must appear in.
fn expected_tags() -> Vec<String> {
    (0..2)
        .flat_map(|round| {
            (0..CLIENTS).flat_map(move |c| (0..REQUESTS).map(move |i| format!("t{round}c{c}i{i}")))
        })
        .collect()
}

/// Each tagged application line must appear exactly once, whole.
fn check_app_lines(messages: &[String], text: &str) {
    for tag in expected_tags() {
        for kind in ["printed", "stderr", "errors"] {
            let want = format!("{kind} {tag} END");
            let n = messages.iter().filter(|m| m.contains(&want)).count();
            assert_eq!(n, 1, "{want:?} found {n} times\n{text}");
        }
    }
}

#[test]
fn json_logs_stay_one_valid_record_per_line_under_concurrency() {
    let text = busy_log("json");
    let mut messages = Vec::new();
    let mut access = 0;
    let mut cut = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n\n{text}"));
        let msg = v["msg"]
            .as_str()
            .unwrap_or_else(|| panic!("no msg: {line}"));
        if msg == "access" {
            access += 1;
        }
        if v["cut"] == true {
            cut += 1;
        }
        messages.push(msg.to_owned());
    }
    eprintln!(
        "{} JSON lines, {access} access records, {cut} cut",
        messages.len()
    );
    check_app_lines(&messages, &text);
    assert_eq!(access, 2 * CLIENTS * REQUESTS, "{text}");
    // The long prints do not fit a pipe's atomic write: cut, still JSON.
    assert_eq!(cut, 2 * CLIENTS * REQUESTS / 10, "{text}");
}

/// `Dec 07 13:14:19.591 INFO `: the start of every text record.
fn is_record_start(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20
        && b[0].is_ascii_uppercase()
        && b[3] == b' '
        && b[6] == b' '
        && b[9] == b':'
        && b[12] == b':'
        && b[15] == b'.'
        && b[19] == b' '
}

#[test]
fn text_logs_keep_every_record_whole_under_concurrency() {
    let text = busy_log("text");
    let mut messages = Vec::new();
    for line in text.lines() {
        // A stack dump's record goes on over faulthandler's lines.
        let dump_line = line.is_empty()
            || line.starts_with("  ")
            || line.starts_with("Thread 0x")
            || line.starts_with("Current thread 0x");
        assert!(
            is_record_start(line) || dump_line,
            "not a whole record: {line:?}\n\n{text}"
        );
        // A second record spliced into this one would bring its own stamp.
        let stamps = line.match_indices(" INFO ").count() + line.match_indices(" WARN ").count();
        assert!(stamps <= 1 || line.contains("long "), "spliced: {line:?}");
        messages.push(line.to_owned());
    }
    check_app_lines(&messages, &text);
    // The long prints do not fit a pipe's atomic write: cut to fit, with a
    // marker, rather than written in pieces another process can split.
    let cut = messages
        .iter()
        .filter(|m| m.contains(" long t") && m.ends_with("…[cut]") && m.len() <= 4096)
        .count();
    assert_eq!(cut, 2 * CLIENTS * REQUESTS / 10, "{text}");
    let access = messages.iter().filter(|m| m.contains("\"GET /")).count();
    assert_eq!(access, 2 * CLIENTS * REQUESTS, "{text}");
}
