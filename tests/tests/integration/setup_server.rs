//! `rwsgi setup-server` and the `apachectl` it writes: mod_wsgi-express's
//! prepare-once, control-later deployments (init scripts, Dockerfiles that
//! run `SERVER-ROOT/apachectl start -DFOREGROUND`).

use rwsgi_tests::server::binary;
use rwsgi_tests::{app, get, json, poll_until, wait_until};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const LISTENING: &str = "listening on http://";

struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        let dir = std::env::temp_dir().join(format!("rwsgi-setup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Root(dir)
    }

    fn ctl(&self, verb: &[&str]) -> Output {
        Command::new(self.0.join("apachectl"))
            .args(verb)
            .stdin(Stdio::null())
            .output()
            .expect("run apachectl")
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.0.join("httpd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.0.join("error_log")).unwrap_or_default()
    }

    /// The port the server logged into the server root's error_log.
    fn port(&self) -> Option<u16> {
        let text = std::fs::read_to_string(self.0.join("error_log")).ok()?;
        let rest = &text[text.rfind(LISTENING)? + LISTENING.len()..];
        rest[..rest.find('/')?].rsplit_once(':')?.1.parse().ok()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // A server the test left running is stopped by its pid file.
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup(root: &Root, extra: &[&str]) -> Output {
    let mut cmd = Command::new(binary("rwsgi"));
    cmd.arg("setup-server")
        .args(["--server-root", root.0.to_str().expect("utf-8")])
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(extra)
        .arg(app("app.py"))
        .stdin(Stdio::null())
        .env_remove("VIRTUAL_ENV");
    cmd.output().expect("run rwsgi setup-server")
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn worker_pid(port: u16) -> i64 {
    json(&get(port, "/pid").body)["pid"].as_i64().expect("pid")
}

#[test]
fn apachectl_starts_reloads_and_stops_the_server_setup_server_checked() {
    let root = Root::new("cycle");
    let out = setup(&root, &["--processes", "1"]);
    assert!(
        out.status.success(),
        "setup-server failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Control Script     : "), "{said}");
    let script = root.0.join("apachectl");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&script).expect("script").permissions(),
    );
    assert_eq!(mode & 0o111, 0o111, "apachectl is executable");
    assert!(root.0.join("envvars").exists());

    // Nothing serves yet; configtest checks the options and serves nothing.
    assert!(root.pid().is_none());
    let check = root.ctl(&["configtest"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // start returns once the server runs, detached, logging to the root.
    let started = root.ctl(&["start"]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let pid = root.pid().expect("pid file written");
    assert!(alive(pid));
    let mut port = None;
    wait_until(
        "the listening line in error_log",
        Duration::from_secs(30),
        || {
            port = root.port();
            port.is_some()
        },
    );
    let port = port.expect("port");
    let answered = poll_until(Duration::from_secs(30), || {
        rwsgi_tests::request(
            port,
            b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .is_ok_and(|r| r.status == 200)
    });
    assert!(answered, "no answer on {port}; error_log:\n{}", root.log());
    // A second start leaves the running server alone.
    assert!(root.ctl(&["start"]).status.success());
    assert_eq!(root.pid(), Some(pid));

    // graceful: new workers, same master, no refused request.
    let before = worker_pid(port);
    assert!(root.ctl(&["graceful"]).status.success());
    wait_until(
        "a new worker after graceful",
        Duration::from_secs(30),
        || worker_pid(port) != before,
    );
    assert_eq!(root.pid(), Some(pid));

    // status reads the running server's scoreboard.
    let status = root.ctl(&["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains(&format!("rwsgi master {pid}")));

    // stop returns once the server is gone, and takes its pid file along.
    let stopped = root.ctl(&["stop"]);
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(!alive(pid) || poll_until(Duration::from_secs(5), || !alive(pid)));
    assert!(root.pid().is_none(), "pid file removed at exit");
    let log = std::fs::read_to_string(root.0.join("error_log")).expect("error_log");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn apachectl_start_in_the_foreground_runs_the_saved_options_and_stops_on_sigterm() {
    let root = Root::new("fg");
    // Relative paths in the options are relative to where setup-server ran.
    let here = std::env::temp_dir().join(format!("rwsgi-setup-fgdir-{}", std::process::id()));
    std::fs::create_dir_all(here.join("assets")).expect("dir");
    std::fs::write(here.join("assets/a.txt"), "saved option\n").expect("file");
    let out = Command::new(binary("rwsgi"))
        .current_dir(&here)
        .arg("setup-server")
        .args(["--server-root", root.0.to_str().expect("utf-8")])
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--url-alias",
            "/files",
            "assets",
        ])
        .arg(app("app.py"))
        .env_remove("VIRTUAL_ENV")
        .output()
        .expect("setup-server");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = Command::new(root.0.join("apachectl"))
        .args(["start", "-DFOREGROUND"])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("apachectl start -DFOREGROUND");
    // In the foreground the log goes to the terminal (stderr here).
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(at) = line.find(LISTENING) {
                let rest = &line[at + LISTENING.len()..];
                if let Some(p) = rest.split('/').next().and_then(|a| a.rsplit_once(':')) {
                    let _ = tx.send(p.1.parse::<u16>().ok());
                }
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .ok()
        .flatten()
        .expect("listening line");
    let r = get(port, "/files/a.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"saved option\n");
    // exec: the script's process is the server, as Apache's under -DFOREGROUND.
    assert_eq!(root.pid(), Some(child.id() as i32));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    let mut status = None;
    wait_until(
        "the server to stop on SIGTERM",
        Duration::from_secs(30),
        || {
            status = child.try_wait().expect("wait");
            status.is_some()
        },
    );
    assert!(status.expect("status").success());
    let _ = std::fs::remove_dir_all(&here);
}

#[test]
fn setup_server_checks_the_options_before_writing_anything() {
    let root = Root::new("bad");
    let out = setup(&root, &["--processes", "many"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--processes"));
    assert!(!root.0.join("apachectl").exists());
}

#[test]
fn apache_module_commands_say_why_they_do_not_apply() {
    for cmd in ["module-config", "module-location", "install-module"] {
        let out = Command::new(binary("rwsgi"))
            .arg(cmd)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(cmd) && err.contains("rwsgi start-server"),
            "{err}"
        );
    }
}
