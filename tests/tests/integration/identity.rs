//! `--user`, `--group`: started as root, the server runs as the user once
//! its port is bound; no process that runs Python keeps uid 0.

use rwsgi_tests::server::binary;
use rwsgi_tests::{app, get, Server};
use std::process::Command;

const NOBODY: u32 = 65534;

/// The real, effective, saved and filesystem ids of a process.
fn ids(pid: i32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn environ(pid: i32, name: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    raw.split(|b| *b == 0)
        .map(|kv| String::from_utf8_lossy(kv).into_owned())
        .find_map(|kv| kv.strip_prefix(&prefix).map(str::to_owned))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether `nobody` can run the test virtualenv's Python (a Python under a
/// mode-700 home cannot be loaded by another user at all).
fn nobody_can_run_python() -> bool {
    let python = rwsgi_tests::test_venv().join("bin/python");
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(python)
        .args(["-c", "import sys"])
        .status()
        .is_ok_and(|s| s.success())
}

fn skip(why: &str) {
    eprintln!("\n!!!!!!!! SKIPPED: {why} !!!!!!!!\n");
}

#[test]
fn started_as_root_with_user_no_process_keeps_root() {
    if !is_root() {
        return skip("--user needs the tests to run as root");
    }
    if !nobody_can_run_python() {
        return skip("user nobody cannot run the test virtualenv's Python (is it under a mode-700 home?); --user is checked in docker/test-images instead");
    }
    for preload in ["interpreter", "none"] {
        let server = Server::start(&[
            "--user",
            "nobody",
            "--processes",
            "2",
            "--preload",
            preload,
            &app("hello.py"),
        ]);
        assert_eq!(get(server.port, "/").text(), "Hello World!");
        let mut pids = vec![server.pid()];
        pids.extend(server.worker_pids());
        pids.extend(server.template_pids());
        assert!(pids.len() >= 3, "{pids:?}");
        for pid in pids {
            assert_eq!(ids(pid, "Uid:"), vec![NOBODY; 4], "pid {pid} ({preload})");
            assert_eq!(ids(pid, "Gid:"), vec![NOBODY; 4], "pid {pid} ({preload})");
            assert_eq!(ids(pid, "Groups:"), vec![NOBODY], "pid {pid} ({preload})");
        }
        for pid in server.worker_pids() {
            assert_eq!(environ(pid, "USER").as_deref(), Some("nobody"));
            assert_eq!(environ(pid, "HOME").as_deref(), Some("/nonexistent"));
        }
        assert!(
            server
                .log
                .text()
                .contains("running as user nobody (uid 65534"),
            "{}",
            server.log.text()
        );
    }
}

fn rwsgi_as(user: Option<&str>, args: &[&str]) -> (i32, String) {
    // Bounded: a server that does not refuse the options would run on.
    let mut cmd = Command::new("timeout");
    cmd.arg("30");
    if let Some(u) = user {
        cmd.arg("setpriv")
            .args([&format!("--reuid={u}"), "--regid=nogroup", "--clear-groups"]);
    }
    let out = cmd
        .arg(binary("rwsgi"))
        .arg("start-server")
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .current_dir("/")
        .output()
        .expect("run rwsgi");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_user_or_group_is_an_error_naming_the_option() {
    let (code, err) = rwsgi_as(None, &["--user", "no-such-user-rwsgi", &app("hello.py")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'--user'") && err.contains("no-such-user-rwsgi"),
        "{err}"
    );
    let (code, err) = rwsgi_as(None, &["--group", "no-such-group-rwsgi", &app("hello.py")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("'--group'"), "{err}");
}

#[test]
fn without_root_another_user_is_an_error_and_the_same_user_is_fine() {
    if !is_root() {
        return skip("setpriv needs the tests to run as root");
    }
    let (code, err) = rwsgi_as(Some("nobody"), &["--user", "root", &app("hello.py")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("'--user'") && err.contains("root"), "{err}");
    // The same user is no switch: --user is accepted (an invalid option
    // checked after it shows the check got past --user).
    let (code, err) = rwsgi_as(
        Some("nobody"),
        &[
            "--user",
            "nobody",
            "--server-name",
            "not a name",
            &app("hello.py"),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'--server-name'") && !err.contains("--user"),
        "{err}"
    );
}
