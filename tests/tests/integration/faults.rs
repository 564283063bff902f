//! Fault injection with real processes and signals: a frozen worker, C
//! code holding the GIL, signals sent to the whole process group, the
//! master killed outright.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use rwsgi_tests::{app, get, request, wait_until, Server};
use std::time::{Duration, Instant};

fn alive(pid: i32) -> bool {
    // A zombie counts as gone: it only waits for its parent to reap it.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or_default()
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn a_stopped_worker_gets_no_new_connections_and_is_killed_and_replaced() {
    let server = Server::start(&[
        "--processes",
        "2",
        "--deadlock-timeout",
        "4",
        &app("faults.py"),
    ]);
    let pids = server.worker_pids();
    assert_eq!(pids.len(), 2);
    let frozen = pids[0];
    kill(Pid::from_raw(frozen), Signal::SIGSTOP).expect("SIGSTOP");
    let stopped = Instant::now();
    assert!(
        server
            .log
            .wait_for("worker unresponsive", Duration::from_secs(10)),
        "{}",
        server.log.text()
    );
    let detected = stopped.elapsed();
    assert!(
        detected < Duration::from_secs(5),
        "detected after {detected:?}"
    );
    // Every new client is served by the other worker meanwhile.
    for _ in 0..20 {
        let r = get(server.port, "/pid");
        assert_eq!(r.status, 200);
        assert_ne!(r.text(), frozen.to_string());
    }
    assert!(
        server
            .log
            .wait_for("worker killed by the master", Duration::from_secs(15)),
        "{}",
        server.log.text()
    );
    let log = server.log.text();
    assert!(log.contains("--deadlock-timeout"), "{log}");
    assert!(!log.contains("out of memory"), "{log}");
    wait_until("a replacement", Duration::from_secs(20), || {
        let now = server.worker_pids();
        now.len() == 2 && !now.contains(&frozen)
    });
    assert!(!alive(frozen));
    assert_eq!(get(server.port, "/").text(), "ok");
}

#[test]
fn c_code_holding_the_gil_is_dumped_by_name_and_its_worker_replaced() {
    let server = Server::start(&[
        "--processes",
        "2",
        "--request-timeout",
        "2",
        "--graceful-timeout",
        "2",
        &app("faults.py"),
    ]);
    let port = server.port;
    let stuck = std::thread::spawn(move || {
        request(port, b"GET /hold-gil?30 HTTP/1.1\r\nHost: h\r\n\r\n").map(|r| r.status)
    });
    assert!(server
        .log
        .wait_for("holding the GIL", Duration::from_secs(10)));
    let hog = server.worker_pids().into_iter().find(|&pid| {
        // The worker whose Python heartbeat stopped is the one holding it.
        std::fs::read_to_string(format!("/proc/{pid}/wchan"))
            .map(|w| w.contains("hrtimer") || w.contains("nanosleep"))
            .unwrap_or(false)
    });
    assert!(
        server
            .log
            .wait_for("Python stacks of every thread", Duration::from_secs(15)),
        "{}",
        server.log.text()
    );
    assert!(
        server
            .log
            .wait_for("hold_the_gil_in_c", Duration::from_secs(5)),
        "the dump does not name the function:\n{}",
        server.log.text()
    );
    // The other worker serves every new client meanwhile.
    for _ in 0..10 {
        assert_eq!(get(server.port, "/").status, 200);
    }
    assert!(
        server
            .log
            .wait_for("worker killed by the master", Duration::from_secs(20)),
        "{}",
        server.log.text()
    );
    // The stuck request is lost with its worker, and nothing else.
    assert!(!matches!(stuck.join(), Ok(Ok(200))));
    if let Some(pid) = hog {
        wait_until("the hog to be gone", Duration::from_secs(10), || {
            !alive(pid)
        });
    }
    wait_until("two workers again", Duration::from_secs(20), || {
        server.worker_pids().len() == 2
    });
}

#[test]
fn a_group_sigterm_lets_the_in_flight_request_finish() {
    let mut server = Server::start(&["--threads", "2", &app("faults.py")]);
    let port = server.port;
    let slow = std::thread::spawn(move || {
        request(port, b"GET /sleep?3 HTTP/1.1\r\nHost: h\r\n\r\n").map(|r| (r.status, r.text()))
    });
    assert!(server
        .log
        .wait_for("sleep started", Duration::from_secs(10)));
    // What systemd (KillMode=control-group), `kill -- -PGID` and many inits do.
    killpg(Pid::from_raw(server.pid()), Signal::SIGTERM).expect("killpg");
    let answer = slow.join().expect("client thread");
    assert_eq!(
        answer.as_ref().map(|(s, t)| (*s, t.as_str())).ok(),
        Some((200, "slept")),
        "{answer:?}\n{}",
        server.log.text()
    );
    let status = server.wait_exit(Duration::from_secs(20)).expect("exit");
    assert_eq!(status.code(), Some(0), "{}", server.log.text());
}

#[test]
fn a_group_sigint_still_stops_fast() {
    let mut server = Server::start(&["--threads", "2", &app("faults.py")]);
    let port = server.port;
    let _slow =
        std::thread::spawn(move || request(port, b"GET /sleep?30 HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert!(server
        .log
        .wait_for("sleep started", Duration::from_secs(10)));
    let workers = server.worker_pids();
    let sent = Instant::now();
    killpg(Pid::from_raw(server.pid()), Signal::SIGINT).expect("killpg");
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    wait_until("the workers to go", Duration::from_secs(5), || {
        workers.iter().all(|&p| !alive(p))
    });
}

#[test]
fn killing_the_master_leaves_no_orphans() {
    let mut server = Server::start(&["--processes", "2", &app("faults.py")]);
    let workers = server.worker_pids();
    assert_eq!(workers.len(), 2);
    server.signal(Signal::SIGKILL);
    server
        .wait_exit(Duration::from_secs(5))
        .expect("the master died");
    wait_until("the workers to exit", Duration::from_secs(10), || {
        workers.iter().all(|&p| !alive(p))
    });
}

#[test]
fn slow_clients_beyond_max_clients_do_not_lock_new_clients_out() {
    let server = Server::start(&[
        "--max-clients",
        "50",
        "--header-timeout",
        "60",
        "--header-max-timeout",
        "60",
        &app("faults.py"),
    ]);
    // Three times the limit in connections that never finish their head.
    let mut slow = Vec::new();
    for _ in 0..150 {
        let mut s = rwsgi_tests::client::connect(server.port);
        let _ = std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ");
        slow.push(s);
    }
    // New clients keep arriving, and every one is served.
    for i in 0..10 {
        let mut s = rwsgi_tests::client::connect(server.port);
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        std::io::Write::write_all(
            &mut s,
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
        .expect("write");
        let r = rwsgi_tests::client::read_response(&mut s, &mut Vec::new(), false)
            .unwrap_or_else(|e| panic!("new client {i} not served: {e}\n{}", server.log.text()));
        assert_eq!(r.status, 200);
    }
    assert!(server
        .log
        .wait_for("at --max-clients", Duration::from_secs(5)));
    drop(slow);
}

#[test]
fn descriptor_exhaustion_loses_no_connection() {
    // 256 descriptors, 400 clients each holding a keep-alive connection,
    // and a --max-clients far beyond what the descriptors allow.
    let server = Server::builder()
        .nofile(256)
        .args([
            "--keep-alive-timeout",
            "30",
            "--max-clients",
            "1000",
            &app("faults.py"),
        ])
        .start();
    let port = server.port;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut held = Vec::new();
                let mut failed = 0;
                for _ in 0..50 {
                    let mut s = rwsgi_tests::client::connect(port);
                    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
                    let sent =
                        std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
                    let answered = sent.is_ok()
                        && rwsgi_tests::client::read_response(&mut s, &mut Vec::new(), false)
                            .is_ok_and(|r| r.status == 200);
                    if !answered {
                        failed += 1;
                    }
                    held.push(s);
                }
                failed
            })
        })
        .collect();
    let failed: usize = clients.into_iter().map(|c| c.join().unwrap_or(50)).sum();
    let log = server.log.text();
    assert_eq!(failed, 0, "{failed} of 400 requests failed\n{log}");
    assert!(!log.contains("truncated"), "{log}");
    // And the server still has its capacity afterwards.
    assert_eq!(get(server.port, "/").status, 200);
}
