//! Supervision: reloads, recycling, timeouts and crashes under load.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rwsgi_tests::load::Load;
use rwsgi_tests::{app, get, Server};
use std::time::{Duration, Instant};

fn wait_workers(server: &Server, n: usize) {
    server.wait_until(&format!("{n} workers"), Duration::from_secs(20), || {
        server.worker_pids().len() == n
    });
}

#[test]
fn ten_reloads_under_load_fail_no_request() {
    let server = Server::start(&["--processes", "2", "--threads", "2", &app("supervision.py")]);
    let load = Load::start(server.port, 6, "/", Duration::from_secs(120));
    server.wait_until("load running", Duration::from_secs(10), || load.ok() > 50);
    let mut took = Vec::new();
    for i in 1..=10 {
        let started = Instant::now();
        server.signal(Signal::SIGUSR1);
        let needle = "reload complete";
        server.wait_until("reload complete", Duration::from_secs(30), || {
            server.log.count(needle) >= i
        });
        took.push(started.elapsed());
    }
    // The last old generations finish draining under load: only the two
    // new workers are left, and requests keep succeeding after that.
    server.wait_until(
        "the old generations to exit",
        Duration::from_secs(30),
        || server.worker_pids().len() == 2,
    );
    let drained = load.ok();
    server.wait_until("requests after the drain", Duration::from_secs(10), || {
        load.ok() > drained + 20
    });
    let (ok, failed, errors) = load.finish();
    eprintln!(
        "10 reloads under load: {ok} requests ok, {failed} failed; SIGUSR1 to new generation serving: {:?} ms",
        took.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    assert_eq!(failed, 0, "errors: {errors:?}\nlog:\n{}", server.log.text());
    assert!(ok > 100);
    assert_eq!(server.worker_pids().len(), 2);
}

#[test]
fn a_reload_picks_up_a_changed_application() {
    let dir = std::env::temp_dir().join(format!("rwsgi-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let script = dir.join("wsgi.py");
    let write = |text: &str| {
        std::fs::write(
            &script,
            format!(
                "def application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'{text}']\n"
            ),
        )
        .expect("write app");
    };
    write("version one");
    let server = Server::start(&[&script.to_string_lossy()]);
    assert_eq!(get(server.port, "/").text(), "version one");
    write("version two");
    server.signal(Signal::SIGHUP);
    server.wait_until("reload complete", Duration::from_secs(20), || {
        server.log.count("reload complete") >= 1
    });
    assert_eq!(get(server.port, "/").text(), "version two");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn maximum_requests_recycles_under_load_without_failures() {
    let server = Server::start(&[
        "--processes",
        "2",
        "--threads",
        "2",
        "--maximum-requests",
        "200",
        "--maximum-requests-jitter",
        "50",
        &app("supervision.py"),
    ]);
    let load = Load::start(server.port, 4, "/", Duration::from_secs(60));
    server.wait_until("two recycles", Duration::from_secs(40), || {
        server.log.count("worker stopped") >= 2
    });
    let (ok, failed, errors) = load.finish();
    eprintln!(
        "maximum-requests under load: {ok} ok, {failed} failed, {} recycles",
        server.log.count("worker stopped")
    );
    assert_eq!(failed, 0, "errors: {errors:?}\n{}", server.log.text());
    assert!(server.log.text().contains("--maximum-requests 200"));
}

#[test]
fn a_request_past_the_request_timeout_dumps_stacks_and_the_worker_is_replaced() {
    request_timeout_dumps_and_replaces("interpreter");
}

#[test]
fn the_same_holds_for_workers_forked_with_the_application_loaded() {
    request_timeout_dumps_and_replaces("application");
}

/// A stuck request, with the workers forked from a template that loaded
/// `preload` (see `--preload`): its stacks are dumped and its worker replaced.
fn request_timeout_dumps_and_replaces(preload: &str) {
    let server = Server::start(&[
        "--preload",
        preload,
        "--request-timeout",
        "1",
        "--graceful-timeout",
        "1",
        "--shutdown-timeout",
        "1",
        &app("supervision.py"),
    ]);
    let before = server.worker_pids();
    let port = server.port;
    let _stuck = std::thread::spawn(move || {
        rwsgi_tests::request(port, b"GET /stuck?30 HTTP/1.1\r\nHost: h\r\n\r\n")
    });
    assert!(
        server
            .log
            .wait_for("request timeout", Duration::from_secs(10)),
        "{}",
        server.log.text()
    );
    assert!(
        server
            .log
            .wait_for("stuck_in_sleep", Duration::from_secs(10)),
        "{}",
        server.log.text()
    );
    assert!(
        server.log.text().contains("GET /stuck"),
        "{}",
        server.log.text()
    );
    server.wait_until(
        "the stuck worker to be replaced",
        Duration::from_secs(20),
        || {
            let now = server.worker_pids();
            now.len() == 1 && now != before
        },
    );
    assert_eq!(get(server.port, "/").status, 200);
}

#[test]
fn a_memory_hungry_app_is_recycled_by_memory_limit() {
    let server = Server::start(&["--memory-limit", "80", &app("supervision.py")]);
    let before = server.worker_pids();
    for _ in 0..4 {
        assert_eq!(get(server.port, "/hog").status, 200);
    }
    assert!(
        server
            .log
            .wait_for("over --memory-limit 80 MB", Duration::from_secs(10)),
        "{}",
        server.log.text()
    );
    server.wait_until("a fresh worker", Duration::from_secs(20), || {
        let now = server.worker_pids();
        now.len() == 1 && now != before
    });
    assert_eq!(get(server.port, "/").status, 200);
}

#[test]
fn sigttin_and_sigttou_change_the_number_of_workers() {
    let server = Server::start(&["--processes", "1", &app("supervision.py")]);
    wait_workers(&server, 1);
    server.signal(Signal::SIGTTIN);
    wait_workers(&server, 2);
    server.signal(Signal::SIGTTIN);
    wait_workers(&server, 3);
    server.signal(Signal::SIGTTOU);
    wait_workers(&server, 2);
    assert_eq!(get(server.port, "/").status, 200);
    // The scoreboard, read from outside by `rwsgi status`, agrees.
    server.wait_until(
        "the scoreboard to show 2 ready workers",
        Duration::from_secs(10),
        || {
            let text = server.status();
            text.contains("2 workers wanted") && text.matches(" ready ").count() == 2
        },
    );
}

#[test]
fn kill_9_of_a_worker_under_load_fails_only_its_requests() {
    let server = Server::start(&["--processes", "2", "--threads", "2", &app("supervision.py")]);
    let clients = 4;
    let load = Load::start(server.port, clients, "/sleep?0.05", Duration::from_secs(60));
    server.wait_until("load running", Duration::from_secs(10), || load.ok() > 20);
    let victim = server.worker_pids()[0];
    kill(Pid::from_raw(victim), Signal::SIGKILL).expect("kill worker");
    assert!(server
        .log
        .wait_for("killed by SIGKILL (out of memory?)", Duration::from_secs(5)));
    server.wait_until("a replacement", Duration::from_secs(20), || {
        let pids = server.worker_pids();
        pids.len() == 2 && !pids.contains(&victim)
    });
    let after = load.ok();
    server.wait_until("more requests served", Duration::from_secs(10), || {
        load.ok() > after + 20
    });
    let (ok, failed, errors) = load.finish();
    eprintln!("kill -9 under load: {ok} ok, {failed} failed: {errors:?}");
    // At most the connections that worker held (one in flight per client).
    assert!(failed as usize <= clients, "{failed} failed: {errors:?}");
}
