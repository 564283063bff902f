//! Start-up failures, worker crashes, signals.

use nix::sys::signal::Signal;
use rwsgi_tests::{app, get, Server};
use std::time::Duration;

#[test]
fn a_worker_that_dies_is_replaced_and_the_server_keeps_answering() {
    let server = Server::start(&["--processes", "1", &app("app.py")]);
    let before = server.worker_pids();
    assert_eq!(before.len(), 1);
    // The request that kills the worker fails; that is all it may cost.
    let _ = rwsgi_tests::request(
        server.port,
        b"GET /exit HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert!(
        server.log.wait_for("worker died", Duration::from_secs(5)),
        "{}",
        server.log.text()
    );
    assert!(server.log.text().contains("exited with code 17"));
    server.wait_until("a replacement worker", Duration::from_secs(10), || {
        let after = server.worker_pids();
        after.len() == 1 && after != before
    });
    assert!(server.log.wait_for("worker ready", Duration::from_secs(10)));
    server.wait_until(
        "the server to answer again",
        Duration::from_secs(10),
        || get(server.port, "/pid").status == 200,
    );
}

#[test]
fn sigterm_lets_the_slow_request_finish_and_exits_zero() {
    let mut server = Server::start(&[&app("app.py")]);
    let port = server.port;
    let slow = std::thread::spawn(move || get(port, "/sleep?1.5"));
    server.wait_running("GET /sleep");
    server.signal(Signal::SIGTERM);
    let r = slow.join().expect("client thread");
    assert_eq!(r.status, 200, "{}", server.log.text());
    assert!(r.text().contains("slept"));
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("rwsgi exits");
    assert_eq!(status.code(), Some(0), "{}", server.log.text());
    assert!(server.worker_pids().is_empty());
}

#[test]
fn sigint_stops_fast() {
    let mut server = Server::start(&[&app("hello.py")]);
    server.signal(Signal::SIGINT);
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("rwsgi exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn an_app_with_a_syntax_error_makes_rwsgi_exit_nonzero_with_the_traceback() {
    let mut server = Server::builder()
        .arg(app("syntax_error.py"))
        .no_wait()
        .start();
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("rwsgi exits instead of looping");
    assert_eq!(status.code(), Some(3), "{}", server.log.text());
    let log = server.log.text();
    assert!(log.contains("SyntaxError"), "{log}");
    assert!(log.contains("syntax_error.py"), "{log}");
    assert!(log.contains("could not be loaded"), "{log}");
}

#[test]
fn an_app_that_fails_to_import_names_the_missing_module() {
    let mut server = Server::builder()
        .arg(app("import_error.py"))
        .no_wait()
        .start();
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("rwsgi exits");
    assert_eq!(status.code(), Some(3));
    assert!(server
        .log
        .text()
        .contains("module_that_does_not_exist_anywhere"));
}

#[test]
fn a_taken_port_gives_a_clear_error() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port().to_string();
    let mut server = Server::builder()
        .raw_args()
        .args(["--host", "127.0.0.1", "--port", &port, &app("hello.py")])
        .no_wait()
        .start();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("rwsgi exits");
    assert_ne!(status.code(), Some(0));
    let log = server.log.text();
    assert!(log.contains("already in use"), "{log}");
    assert!(log.contains(&port), "{log}");
}

fn set_nofile(pid: i32, limit: u64) {
    let new = libc::rlimit {
        rlim_cur: limit,
        rlim_max: 4096,
    };
    // SAFETY: prlimit(2) on a process this test started; `new` is a valid rlimit.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn the_master_survives_running_out_of_file_descriptors() {
    let server = Server::start(&[&app("hello.py")]);
    let lowest_free = || {
        let open: std::collections::HashSet<u64> =
            std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
                .expect("fds")
                .filter_map(|e| e.ok()?.file_name().to_string_lossy().parse().ok())
                .collect();
        (0..).find(|n| !open.contains(n)).unwrap_or(0)
    };
    // No descriptor number left for accept(2): the next connection hits
    // EMFILE. A file the master had open for a moment (a cgroup or /proc
    // file it reads after start-up) can hide a lower free number, and then
    // the connection is simply served: tighten the limit and try again.
    let mut attempts = 0;
    let client = loop {
        attempts += 1;
        server.wait_until(
            "a limit below every free descriptor",
            Duration::from_secs(10),
            || {
                let limit = lowest_free();
                set_nofile(server.pid(), limit);
                lowest_free() >= limit
            },
        );
        let port = server.port;
        let client = std::thread::spawn(move || get(port, "/"));
        rwsgi_tests::wait::poll_until(Duration::from_secs(10), || {
            server.log.count("cannot accept") > 0 || client.is_finished()
        });
        if server.log.count("cannot accept") > 0 {
            break client;
        }
        assert!(
            attempts < 5 && client.is_finished(),
            "the master neither refused nor served:\n{}",
            server.log.text()
        );
        assert_eq!(client.join().expect("client").text(), "Hello World!");
    };
    set_nofile(server.pid(), 1024);
    let r = client.join().expect("client");
    assert_eq!(r.text(), "Hello World!");
    // Logged once per pause, not once per loop turn.
    assert!(
        server.log.count("cannot accept") < 50,
        "{}",
        server.log.text()
    );
    assert_eq!(get(server.port, "/").status, 200);
}

#[test]
fn workers_inherit_exactly_their_channel_and_the_scoreboard() {
    // The master itself inherits a stray descriptor (as from a careless supervisor).
    let server = Server::builder()
        .inherit_stray_fd(57)
        .arg(app("hello.py"))
        .start();
    let workers = server.worker_pids();
    assert_eq!(workers.len(), 1, "{}", server.log.text());
    let worker = workers[0];
    // One request served: the worker is at rest afterwards, as in production.
    assert_eq!(get(server.port, "/").status, 200);
    let master_fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("fds")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        master_fds.contains(&"57".to_owned()),
        "the test setup failed: {master_fds:?}"
    );
    let targets: Vec<String> = std::fs::read_dir(format!("/proc/{worker}/fd"))
        .expect("worker fds")
        .flatten()
        .map(|e| {
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                std::fs::read_link(e.path()).unwrap_or_default().display()
            )
        })
        .collect();
    assert!(
        !targets.iter().any(|t| t.starts_with("57 ")),
        "stray descriptor inherited: {targets:?}"
    );
    assert_eq!(
        targets
            .iter()
            .filter(|t| t.contains("rwsgi-scoreboard"))
            .count(),
        1,
        "{targets:?}"
    );
    // stdio, the scoreboard, the channel (and the script-reloading
    // monitor's second handle on it), the poller and its waker, the
    // stack-dump pipe (both ends): nothing else at rest.
    assert!(targets.len() <= 11, "{targets:?}");
}

#[test]
fn processes_auto_follows_the_cpus_the_server_may_use() {
    // One CPU in the affinity mask (and no tighter quota here): one worker.
    let server = Server::builder()
        .only_cpu(0)
        .args(["--processes", "auto", &app("hello.py")])
        .start();
    assert_eq!(server.worker_pids().len(), 1, "{}", server.log.text());
    assert!(server.log.text().contains("container: "));
    // A wrong value names the option.
    let out = std::process::Command::new(rwsgi_tests::server::binary("rwsgi"))
        .args(["start-server", "--processes", "many", &app("hello.py")])
        .output()
        .expect("run rwsgi");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--processes"));
}

/// A draining worker hands an idle connection back to the master with the
/// head it has read so far, as large as `--header-buffer-size` allows: the
/// channel carries it whole and the next generation answers the request
/// (a channel smaller than the header buffer closed it without a word).
#[test]
fn a_reload_hands_back_a_connection_with_the_largest_partial_head() {
    use std::io::Write;
    let max = rwsgi_shared::config::MAX_HEADER_BUFFER;
    let server = Server::start(&[
        "--header-buffer-size",
        &max.to_string(),
        "--limit-request-fields",
        "1000",
        &app("hello.py"),
    ]);
    let old = server.worker_pids();
    assert_eq!(old.len(), 1, "{}", server.log.text());
    // Everything but the head's last CRLF, in fields of 4000 bytes.
    let mut head = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    let field = |i: usize| format!("X-Pad-{i:04}: {}\r\n", "a".repeat(4000)).into_bytes();
    while head.len() + field(0).len() + 2 <= max {
        head.extend_from_slice(&field(head.len()));
    }
    assert!(head.len() > max - 4100);
    let mut idle = rwsgi_tests::client::connect(server.port);
    idle.write_all(&head).expect("partial head");
    // Answered after the worker's loop has read what the idle one sent before.
    assert_eq!(get(server.port, "/").text(), "Hello World!");

    server.signal(Signal::SIGUSR1);
    server.wait_until("the old worker gone", Duration::from_secs(30), || {
        let now = server.worker_pids();
        now.len() == 1 && now != old
    });
    idle.write_all(b"\r\n").expect("the head's end");
    let r = rwsgi_tests::client::read_response(&mut idle, &mut Vec::new(), false)
        .unwrap_or_else(|e| panic!("no response ({e}); log:\n{}", server.log.text()));
    assert_eq!((r.status, r.text().as_str()), (200, "Hello World!"));
    assert!(
        !server
            .log
            .text()
            .contains("could not hand a connection back"),
        "{}",
        server.log.text()
    );
}

/// `--eviction-timeout` (mod_wsgi-express 6): a reload gives the replaced
/// worker that long to finish its requests, not `--graceful-timeout`.
#[test]
fn a_reload_lets_a_request_finish_within_the_eviction_timeout() {
    let server = Server::start(&[
        "--graceful-timeout",
        "1",
        "--shutdown-timeout",
        "1",
        "--eviction-timeout",
        "60",
        &app("app.py"),
    ]);
    let port = server.port;
    // Longer than --graceful-timeout + --shutdown-timeout.
    let slow = std::thread::spawn(move || get(port, "/sleep?4"));
    server.wait_running("GET /sleep");
    server.signal(Signal::SIGUSR1);
    let r = slow.join().expect("client thread");
    assert_eq!(r.status, 200, "{}", server.log.text());
    assert!(r.text().contains("slept"));
    server.wait_until("the old worker stopped", Duration::from_secs(20), || {
        server.log.count("worker stopped") >= 1
    });
}
