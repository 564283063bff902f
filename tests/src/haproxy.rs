//! A real HAProxy (Debian's package; CI installs it) for the tests of
//! proxies and rolling updates, killed on drop.
//!
//! Its frontends listen on sockets this process binds (port 0, so the
//! kernel picks) and hands over still open (`bind fd@N`): no port is
//! released and bound again, which another test could take in between.
//! Its runtime API listens on a Unix socket in its own directory.

use crate::wait::wait_until;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Haproxy {
    child: Child,
    dir: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where HAProxy is; `None` (with a loud warning) on a developer's machine
/// without it, a failure in CI.
pub fn binary() -> Option<&'static str> {
    let found = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file());
    if found.is_none() {
        crate::skip::missing(
            "a test through HAProxy",
            "haproxy",
            "apt-get install haproxy",
        );
    }
    found
}

impl Haproxy {
    /// Starts HAProxy with `listeners` frontends and the sections
    /// `sections(binds)` writes after the global and default ones, where
    /// `binds[i]` is what the i-th frontend's `bind` line names; returns
    /// the frontends' ports in the same order, once HAProxy runs.
    pub fn start(
        listeners: usize,
        sections: impl FnOnce(&[String]) -> String,
    ) -> Option<(Haproxy, Vec<u16>)> {
        let binary = binary()?;
        let dir = std::env::temp_dir().join(format!(
            "rwsgi-haproxy-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sockets: Vec<TcpListener> = (0..listeners)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("a listening socket"))
            .collect();
        let ports: Vec<u16> = sockets
            .iter()
            .map(|l| l.local_addr().expect("its address").port())
            .collect();
        let fds: Vec<i32> = sockets.iter().map(|l| l.as_raw_fd()).collect();
        let binds: Vec<String> = fds.iter().map(|fd| format!("fd@{fd}")).collect();
        let cfg = format!(
            "global\n  maxconn 200\n  stats socket {}/api.sock level admin\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n{}",
            dir.display(),
            sections(&binds)
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("config");
        let mut cmd = Command::new(binary);
        cmd.args(["-db", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let inherited = fds.clone();
        // SAFETY: fcntl is async-signal-safe and touches no memory of the
        // parent; the closure allocates nothing. It clears close-on-exec on
        // the listening sockets in the child only, so no other child the
        // test process spawns meanwhile inherits them.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &inherited {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start haproxy");
        // HAProxy holds them now; a copy here would keep the ports open
        // after HAProxy is gone.
        drop(sockets);
        let h = Haproxy { child, dir };
        // The sockets accepted from the start (into their backlog); HAProxy
        // runs once its runtime API answers.
        wait_until("haproxy to run", Duration::from_secs(10), || {
            h.try_command("show info")
                .is_some_and(|s| s.contains("Pid:"))
        });
        Some((h, ports))
    }

    /// Runs one command of HAProxy's runtime API (its stats socket) and
    /// returns the answer; panics if HAProxy cannot be reached.
    pub fn command(&self, command: &str) -> String {
        self.try_command(command)
            .unwrap_or_else(|| panic!("haproxy's runtime API did not answer {command:?}"))
    }

    fn try_command(&self, command: &str) -> Option<String> {
        let mut s = UnixStream::connect(self.dir.join("api.sock")).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(format!("{command}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        Some(answer)
    }
}
