//! `--service-script` (with `--service-user`, `--service-group`,
//! `--service-log-file`): supervised processes that run a Python script
//! beside the workers, as mod_wsgi-express's managed services do. Real
//! scripts: one writes a heartbeat file, one always fails to import.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rwsgi_tests::server::binary;
use rwsgi_tests::{app, get, Server};
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rwsgi-services-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The pid in the heartbeat file, if one was written.
fn beat_pid(beat: &Path) -> Option<i32> {
    std::fs::read_to_string(beat)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    // A zombie has no /proc/PID/status "State: Z" ... check it too: a
    // process not yet reaped is not running any more.
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => !status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z')),
        Err(_) => false,
    }
}

/// Starts the server with the heartbeat service `beat` (and `extra`).
fn with_beat(beat: &Path, extra: &[&str]) -> Server {
    Server::builder()
        .env("RWSGI_TEST_BEAT", &beat.display().to_string())
        .args(["--service-script", "beat", &app("service_beat.py")])
        .args(extra.iter().copied())
        .arg(app("hello.py"))
        .start()
}

/// Waits until the heartbeat file names a live process other than `not`.
fn wait_beat(server: &Server, beat: &Path, not: Option<i32>) -> i32 {
    let mut pid = 0;
    server.wait_until("a heartbeat from the service", WAIT, || {
        pid = beat_pid(beat).unwrap_or(0);
        pid != 0 && Some(pid) != not && alive(pid)
    });
    pid
}

/// The service `name` of `rwsgi status --json`.
fn service(server: &Server, name: &str) -> serde_json::Value {
    let status = server.status_json();
    status["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no service {name} in status: {status}"))
}

#[test]
fn a_service_runs_beside_the_workers_and_shows_in_status_and_metrics() {
    let dir = scratch("runs");
    let beat = dir.join("beat");
    let server = with_beat(&beat, &["--admin-port", "0"]);
    let pid = wait_beat(&server, &beat, None);
    assert_eq!(get(server.port, "/").status, 200);
    // Still beating: the script's top level returned, the process lives on.
    let first = std::fs::read_to_string(&beat).expect("beat");
    server.wait_until("a later heartbeat", WAIT, || {
        std::fs::read_to_string(&beat).is_ok_and(|b| b != first)
    });
    let s = service(&server, "beat");
    assert_eq!(s["pid"], pid, "{s}");
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["crashes"], 0, "{s}");
    let text = server.status();
    assert!(
        text.lines().any(|l| l.starts_with("beat ")
            && l.contains(&pid.to_string())
            && l.contains("running")),
        "{text}"
    );
    let metrics = get(server.admin_port(), "/metrics").text();
    assert!(
        metrics.contains("rwsgi_service_up{service=\"beat\"} 1\n"),
        "{metrics}"
    );
    assert!(
        server.log.text().contains("service beat: /"),
        "the start-up summary names the service: {}",
        server.log.text()
    );
    assert!(
        server
            .log
            .text()
            .contains("beat service started as _rwsgi_"),
        "imported as a module, not as __main__: {}",
        server.log.text()
    );
}

#[test]
fn a_killed_service_is_restarted_with_a_new_pid() {
    let dir = scratch("killed");
    let beat = dir.join("beat");
    let server = with_beat(&beat, &[]);
    let first = wait_beat(&server, &beat, None);
    kill(Pid::from_raw(first), Signal::SIGKILL).expect("kill the service");
    let second = wait_beat(&server, &beat, Some(first));
    assert_ne!(first, second);
    assert!(!alive(first));
    server.wait_until("status to show the restart", WAIT, || {
        let s = service(&server, "beat");
        s["pid"] == second && s["crashes"] == 1 && s["starts"] == 2
    });
    assert!(server
        .log
        .text()
        .contains("service died: killed by SIGKILL"));
}

#[test]
fn a_crashing_service_never_stops_the_web_workers() {
    let dir = scratch("crash");
    let server = Server::builder()
        .args(["--admin-port", "0"])
        .args(["--service-script", "crash", &app("service_crash.py")])
        .arg(app("hello.py"))
        .start();
    // Ready (Server::start waited for it) while the service fails, and
    // serving through its restarts, which back off.
    for crashes in 1..=3 {
        // Each crash logs its traceback and a summary, both with the error.
        server.wait_until("another crash", WAIT, || {
            server.log.count("the crash service always fails") >= 2 * crashes
        });
        assert_eq!(get(server.port, "/").status, 200);
    }
    server.wait_until("three crashes backing off", WAIT, || {
        server
            .log
            .text()
            .contains("restarting it in 0.4 s (3 failures in a row)")
    });
    assert_eq!(get(server.port, "/").status, 200);
    let s = service(&server, "crash");
    assert!(s["crashes"].as_u64().unwrap_or(0) >= 3, "{s}");
    let metrics = get(server.admin_port(), "/metrics").text();
    assert!(
        metrics.contains("rwsgi_service_crashes_total{service=\"crash\"}"),
        "{metrics}"
    );
    assert!(
        server
            .log
            .text()
            .contains("RuntimeError: the crash service always fails"),
        "the traceback is logged: {}",
        server.log.text()
    );
    drop(dir);
}

#[test]
fn sigusr1_restarts_the_service() {
    let dir = scratch("reload");
    let beat = dir.join("beat");
    let server = with_beat(&beat, &[]);
    let first = wait_beat(&server, &beat, None);
    server.signal(Signal::SIGUSR1);
    let second = wait_beat(&server, &beat, Some(first));
    server.wait_until("the old service process to be gone", WAIT, || !alive(first));
    assert_ne!(first, second);
    assert!(server.log.text().contains("stopping service: reload"));
    let s = service(&server, "beat");
    assert_eq!(s["crashes"], 0, "a reload is no crash: {s}");
    assert_eq!(get(server.port, "/").status, 200);
}

#[test]
fn sigterm_stops_the_service_and_leaves_no_orphan() {
    let dir = scratch("stop");
    let beat = dir.join("beat");
    let mut server = with_beat(&beat, &[]);
    let pid = wait_beat(&server, &beat, None);
    server.signal(Signal::SIGTERM);
    let status = server.wait_exit(WAIT).expect("the master exits");
    assert!(status.success(), "{status}: {}", server.log.text());
    assert!(!alive(pid), "the service process {pid} outlived the master");
    let log = server.log.text();
    assert!(log.contains("beat service atexit handler ran"), "{log}");
    assert!(log.contains("service stopped"), "{log}");
}

#[test]
fn the_service_log_file_receives_its_output() {
    let dir = scratch("logfile");
    let beat = dir.join("beat");
    let file = dir.join("beat.log");
    let server = with_beat(
        &beat,
        &["--service-log-file", "beat", &file.display().to_string()],
    );
    wait_beat(&server, &beat, None);
    server.wait_until("the service's print in its log file", WAIT, || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("beat service started"))
    });
    assert!(
        !server.log.text().contains("beat service started"),
        "the service's output went to the server's log too: {}",
        server.log.text()
    );
}

#[test]
fn service_users_are_checked_at_start_with_the_option_named() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(binary("rwsgi"))
            .arg("start-server")
            // The options are resolved, then it exits: a server that
            // accepted them would not run on and hang the test.
            .arg("--setup-only")
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--service-script", "beat", &app("service_beat.py")])
            .args(args)
            .arg(app("hello.py"))
            .output()
            .expect("run rwsgi");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--service-user", "beat", "no-such-user-here"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("'--service-user beat'") && err.contains("no-such-user-here"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, err) = run(&["--service-group", "beat", "no-such-group-here"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("'--service-group beat'"), "{err}");
    // Another user than the master's needs a master that keeps root.
    let other = if nix::unistd::geteuid().is_root() {
        run(&["--user", "nobody", "--service-user", "beat", "root"])
    } else {
        run(&["--service-user", "beat", "root"])
    };
    assert_eq!(other.0, Some(2), "{}", other.1);
    assert!(other.1.contains("'--service-user beat'"), "{}", other.1);
}

/// Whether `nobody` can run the test virtualenv's Python (a Python under a
/// mode-700 home cannot be loaded by another user at all).
fn nobody_can_run_python() -> bool {
    let python = rwsgi_tests::test_venv().join("bin/python");
    std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(python)
        .args(["-c", "import sys"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_root_master_runs_the_service_as_its_service_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("\n!!!!!!!! SKIPPED: --service-user needs the tests to run as root !!!!!!!!\n");
        return;
    }
    if !nobody_can_run_python() {
        eprintln!(
            "\n!!!!!!!! SKIPPED: user nobody cannot run the test virtualenv's Python !!!!!!!!\n"
        );
        return;
    }
    let dir = scratch("user");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let beat = dir.join("beat");
    let server = with_beat(&beat, &["--service-user", "beat", "nobody"]);
    let pid = wait_beat(&server, &beat, None);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let ids = |key: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|r| r.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    assert_eq!(ids("Uid:"), vec!["65534"; 4], "{status}");
    assert!(!ids("Gid:").contains(&"0".to_owned()), "{status}");
    assert!(!ids("Groups:").contains(&"0".to_owned()), "{status}");
    assert!(
        server.log.text().contains("uid 65534"),
        "{}",
        server.log.text()
    );
    // The workers keep the master's identity.
    assert_eq!(get(server.port, "/").status, 200);
}

#[test]
fn a_server_that_cannot_start_leaves_no_service_behind() {
    let dir = scratch("fail");
    let beat = dir.join("beat");
    let mut server = Server::builder()
        .no_wait()
        .env("RWSGI_TEST_BEAT", &beat.display().to_string())
        .args(["--service-script", "beat", &app("service_beat.py")])
        .arg(app("import_error.py"))
        .start();
    let status = server.wait_exit(WAIT).expect("the master gives up");
    assert_eq!(status.code(), Some(3), "{}", server.log.text());
    assert!(
        server.log.text().contains("started service beat"),
        "{}",
        server.log.text()
    );
    // Whatever the service had time to do, its process is gone with the master.
    if let Some(pid) = beat_pid(&beat) {
        assert!(!alive(pid), "service {pid} outlived the master");
    }
    let leftover = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|kv| kv == format!("RWSGI_TEST_BEAT={}", beat.display()).as_bytes())
            }) && alive(*pid)
        })
        .collect::<Vec<_>>();
    assert!(leftover.is_empty(), "left behind: {leftover:?}");
}
