//! Starting and stopping a real `rwsgi` for one test.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where cargo put the binaries: next to the `deps/` folder of this test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .map(PathBuf::from)
        .unwrap_or_default();
    dir.join(name)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Everything the server has written to stderr and stdout so far.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<(Mutex<String>, Condvar)>);

impl LogBuffer {
    fn push(&self, line: &str) {
        let (text, cv) = &*self.0;
        let mut t = text.lock().unwrap_or_else(|p| p.into_inner());
        t.push_str(line);
        t.push('\n');
        cv.notify_all();
    }

    pub fn text(&self) -> String {
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until the log contains `needle` (or the timeout passes).
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (text, cv) = &*self.0;
        let mut t = text.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if t.contains(needle) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            t = cv
                .wait_timeout(t, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// How many times `needle` appears.
    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

pub struct ServerBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    wait_ready: bool,
    host_port: bool,
    nofile: Option<u64>,
}

impl ServerBuilder {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }
    /// Do not wait for "server ready" (for servers expected to fail).
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }
    /// Starts the server with this open-files limit (soft and hard).
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }
    /// Do not add --host/--port (the test passes its own).
    pub fn raw_args(mut self) -> Self {
        self.host_port = false;
        self
    }

    pub fn start(self) -> Server {
        let port = free_port();
        let mut cmd = Command::new(binary("rwsgi"));
        cmd.arg("start-server");
        if self.host_port {
            cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
        }
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("VIRTUAL_ENV")
            .process_group(0);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(n) = self.nofile {
            // SAFETY: setrlimit is async-signal-safe and touches no memory
            // of the parent; nothing here allocates.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().expect("start rwsgi (run `cargo build` first)");
        let log = LogBuffer::default();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    match line {
                        Ok(l) => {
                            if std::env::var_os("RWSGI_TEST_ECHO").is_some() {
                                eprintln!("[rwsgi] {l}");
                            }
                            log.push(&l);
                        }
                        Err(_) => break,
                    }
                }
            });
        }
        let server = Server {
            child,
            port,
            log,
            exited: None,
        };
        if self.wait_ready {
            server.wait_ready();
        }
        server
    }
}

/// A running `rwsgi` in its own process group; the group is killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub log: LogBuffer,
    exited: Option<ExitStatus>,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            args: Vec::new(),
            env: Vec::new(),
            wait_ready: true,
            host_port: true,
            nofile: None,
        }
    }

    /// Starts `rwsgi start-server ARGS` on a free port and waits until it is ready.
    pub fn start(args: &[&str]) -> Server {
        Server::builder().args(args.iter().copied()).start()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn wait_ready(&self) {
        if !self.log.wait_for("server ready", Duration::from_secs(30)) {
            panic!("rwsgi did not become ready; log:\n{}", self.log.text());
        }
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid()), sig).expect("signal rwsgi");
    }

    /// Waits for the master to exit; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited {
            return Some(s);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                // Give the log readers a moment to drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The pids of the worker processes, from /proc.
    pub fn worker_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return pids;
        };
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Field 4 (after the parenthesised name) is the parent pid.
            let after = stat.rsplit(')').next().unwrap_or_default();
            let ppid = after
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(self.pid()) && stat.contains("(rwsgi-worker)") {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        pids
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
            let _ = self.child.wait();
        } else {
            // The master is gone; make sure no worker outlives the test.
            let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        }
    }
}
