//! Starting and stopping a real `rwsgi` for one test.
//!
//! The server binds port 0 and logs the address the kernel gave it; the
//! harness reads the port from that line. No port is ever chosen by the
//! test and released for the server to take (another test could take it
//! in between).

use crate::wait::poll_until;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the master logs once its listener is bound, followed by `HOST:PORT/`.
const LISTENING: &str = "listening on http://";
/// What the master logs once its admin endpoints are bound, then `HOST:PORT/`.
const ADMIN_LISTENING: &str = "admin endpoints on http://";
/// What the master logs once every worker is ready.
const READY: &str = "server ready";
/// How long a server may take to bind, and then to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the log readers may take to see the end of the output once
/// the master has exited (its workers may still be on their way out).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an exit-aware wait looks at the master between log lines.
const EXIT_CHECK_INTERVAL: Duration = Duration::from_millis(20);

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

#[derive(Default)]
struct LogState {
    text: String,
    /// Output pipes not yet at end of file.
    open_pipes: usize,
}

#[derive(Default)]
struct LogShared {
    state: Mutex<LogState>,
    /// Notified on every line and every pipe at end of file.
    changed: Condvar,
}

/// Everything the server has written to stderr and stdout so far.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<LogShared>);

impl LogBuffer {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, line: &str) {
        let mut state = self.lock();
        state.text.push_str(line);
        state.text.push('\n');
        self.0.changed.notify_all();
    }

    fn pipe_opened(&self) {
        self.lock().open_pipes += 1;
    }

    fn pipe_closed(&self) {
        self.lock().open_pipes -= 1;
        self.0.changed.notify_all();
    }

    /// Waits until `done` holds for the state (true) or the timeout passes.
    fn wait(&self, timeout: Duration, done: impl Fn(&LogState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if done(&state) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .0
                .changed
                .wait_timeout(state, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    pub fn text(&self) -> String {
        self.lock().text.clone()
    }

    /// Waits until the log contains `needle` (or the timeout passes).
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        self.wait(timeout, |s| s.text.contains(needle))
    }

    /// Waits until every output pipe is at end of file: nothing the server
    /// (or a worker) wrote is still on its way to the log.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        self.wait(timeout, |s| s.open_pipes == 0)
    }

    /// How many times `needle` appears.
    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }

    /// The port of the first `listening on http://HOST:PORT/` line.
    pub fn listening_port(&self) -> Option<u16> {
        let text = self.text();
        let rest = &text[text.find(LISTENING)? + LISTENING.len()..];
        let address = &rest[..rest.find('/')?];
        address.rsplit_once(':')?.1.parse().ok()
    }
}

pub struct ServerBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    wait_ready: bool,
    host_port: bool,
    nofile: Option<u64>,
    current_dir: Option<PathBuf>,
    stray_fd: Option<i32>,
    only_cpu: Option<usize>,
    stdin_piped: bool,
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
    /// Do not wait for "server ready" (for servers expected to fail): wait
    /// only until the server listens or exits; `port` is 0 if it never
    /// listened.
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }
    /// Starts the server with this open-files limit (soft and hard).
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }
    /// Do not add --host/--port (the test passes its own, e.g. the port
    /// of a listener it holds).
    pub fn raw_args(mut self) -> Self {
        self.host_port = false;
        self
    }
    /// Starts the server in `dir`, so relative paths on its command line
    /// mean what they mean to a user typing them there.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }
    /// Runs the server on this one CPU only (its affinity mask).
    pub fn only_cpu(mut self, cpu: usize) -> Self {
        self.only_cpu = Some(cpu);
        self
    }
    /// The master inherits descriptor `fd` (a copy of its stdin, without
    /// close-on-exec), as from a careless supervisor.
    pub fn inherit_stray_fd(mut self, fd: i32) -> Self {
        self.stray_fd = Some(fd);
        self
    }

    /// The master's stdin is a pipe the test writes to (see
    /// `Server::take_stdin`), as a terminal a user types into.
    pub fn stdin_piped(mut self) -> Self {
        self.stdin_piped = true;
        self
    }

    pub fn start(self) -> Server {
        let mut cmd = Command::new(binary("rwsgi"));
        cmd.arg("start-server");
        if self.host_port {
            cmd.args(["--host", "127.0.0.1", "--port", "0"]);
        }
        cmd.args(&self.args)
            .stdin(if self.stdin_piped {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("VIRTUAL_ENV")
            .process_group(0);
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let (nofile, stray_fd, only_cpu) = (self.nofile, self.stray_fd, self.only_cpu);
        if nofile.is_some() || stray_fd.is_some() || only_cpu.is_some() {
            // SAFETY: setrlimit, dup2 and sched_setaffinity are system calls
            // that touch no memory of the parent; nothing here allocates.
            unsafe {
                cmd.pre_exec(move || {
                    if let Some(cpu) = only_cpu {
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        libc::CPU_SET(cpu, &mut set);
                        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
                            != 0
                        {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    if let Some(n) = nofile {
                        let lim = libc::rlimit {
                            rlim_cur: n,
                            rlim_max: n,
                        };
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    if let Some(fd) = stray_fd {
                        // dup2 leaves the new descriptor without FD_CLOEXEC.
                        if libc::dup2(0, fd) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
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
            log.pipe_opened();
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
                log.pipe_closed();
            });
        }
        let mut server = Server {
            child,
            port: 0,
            log,
            exited: None,
        };
        server.wait_listening(self.wait_ready);
        if self.wait_ready {
            server.wait_ready();
        }
        server
    }
}

/// What an exit-aware wait for a log line ended with.
enum LineOrExit {
    Line,
    Exited(ExitStatus),
    TimedOut,
}

/// A running `rwsgi` in its own process group; the group is killed on drop.
pub struct Server {
    child: Child,
    /// The port the server reported (0 if it exited without listening).
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
            current_dir: None,
            stray_fd: None,
            only_cpu: None,
            stdin_piped: false,
        }
    }

    /// Starts `rwsgi start-server ARGS` on a port the kernel picks and
    /// waits until it is ready.
    pub fn start(args: &[&str]) -> Server {
        Server::builder().args(args.iter().copied()).start()
    }

    /// The port of the admin endpoints (`--admin-port 0`), from the line
    /// the master logs once it has bound them.
    pub fn admin_port(&self) -> u16 {
        assert!(
            self.log.wait_for(ADMIN_LISTENING, START_TIMEOUT),
            "no admin endpoints: {}",
            self.log.text()
        );
        let text = self.log.text();
        let rest = &text[text.find(ADMIN_LISTENING).unwrap_or(0) + ADMIN_LISTENING.len()..];
        rest.split('/')
            .next()
            .and_then(|address| address.rsplit_once(':'))
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_else(|| panic!("no admin port in the log: {text}"))
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The write end of the master's stdin (`ServerBuilder::stdin_piped`).
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// Waits until the log contains `needle` or the master exits.
    fn wait_line_or_exit(&mut self, needle: &str, timeout: Duration) -> LineOrExit {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log.wait_for(needle, EXIT_CHECK_INTERVAL) {
                return LineOrExit::Line;
            }
            if let Some(status) = self.reap() {
                // The line may have been written just before the exit.
                return if self.log.text().contains(needle) {
                    LineOrExit::Line
                } else {
                    LineOrExit::Exited(status)
                };
            }
            if Instant::now() >= deadline {
                return LineOrExit::TimedOut;
            }
        }
    }

    /// Waits for the line that reports the bound address and takes the
    /// port from it. `required`: the server must listen (else it may exit).
    fn wait_listening(&mut self, required: bool) {
        match self.wait_line_or_exit(LISTENING, START_TIMEOUT) {
            LineOrExit::Line => {
                self.port = self.log.listening_port().unwrap_or_else(|| {
                    panic!("no port in the listening line; log:\n{}", self.log.text())
                });
            }
            LineOrExit::Exited(status) if required => panic!(
                "rwsgi exited ({status}) before listening; log:\n{}",
                self.log.text()
            ),
            LineOrExit::Exited(_) => self.port = 0,
            LineOrExit::TimedOut => panic!(
                "rwsgi neither listened nor exited within {START_TIMEOUT:?}; log:\n{}",
                self.log.text()
            ),
        }
    }

    /// Waits until the master logs "server ready"; panics, with the log,
    /// if it exits first or takes longer than 30 s.
    pub fn wait_ready(&mut self) {
        match self.wait_line_or_exit(READY, START_TIMEOUT) {
            LineOrExit::Line => {}
            LineOrExit::Exited(status) => panic!(
                "rwsgi exited ({status}) before it was ready; log:\n{}",
                self.log.text()
            ),
            LineOrExit::TimedOut => panic!(
                "rwsgi did not become ready within {START_TIMEOUT:?}; log:\n{}",
                self.log.text()
            ),
        }
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid()), sig).expect("signal rwsgi");
    }

    /// The master's exit status if it has exited (then everything it wrote
    /// is in the log, as far as `DRAIN_TIMEOUT` allows).
    fn reap(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                self.log.wait_closed(DRAIN_TIMEOUT);
            }
        }
        self.exited
    }

    /// Waits for the master to exit; `None` on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        poll_until(timeout, || {
            status = self.reap();
            status.is_some()
        });
        status
    }

    /// Checks `condition` until it holds; if `timeout` passes first, panics
    /// naming `what`, with the server's log.
    pub fn wait_until(&self, what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
        assert!(
            poll_until(timeout, condition),
            "timed out after {timeout:?} waiting for {what}; log:\n{}",
            self.log.text()
        );
    }

    /// What `rwsgi status` prints for this server (its scoreboard, read
    /// from outside).
    pub fn status(&self) -> String {
        String::from_utf8_lossy(&self.run_status(&[])).into_owned()
    }

    /// What `rwsgi status --json` prints for this server.
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.run_status(&["--json"])).expect("rwsgi status --json")
    }

    fn run_status(&self, extra: &[&str]) -> Vec<u8> {
        Command::new(binary("rwsgi"))
            .args(["status", "--pid", &self.pid().to_string()])
            .args(extra)
            .output()
            .expect("run rwsgi status")
            .stdout
    }

    /// Waits until `rwsgi status` lists a running request whose line
    /// contains `request` (e.g. "GET /sleep"): it is in the application.
    pub fn wait_running(&self, request: &str) {
        let running = || {
            self.status()
                .split_once("running requests:")
                .is_some_and(|(_, list)| list.contains(request))
        };
        assert!(
            poll_until(Duration::from_secs(10), running),
            "{request} never showed as running in `rwsgi status`:\n{}\nlog:\n{}",
            self.status(),
            self.log.text()
        );
    }

    /// The pids of the worker processes, from /proc.
    pub fn worker_pids(&self) -> Vec<i32> {
        self.children_named("rwsgi-worker")
    }

    /// The pids of the master's template processes (`--preload`).
    pub fn template_pids(&self) -> Vec<i32> {
        self.children_named("rwsgi-template")
    }

    /// The master's children whose process name is `name`, from /proc.
    fn children_named(&self, name: &str) -> Vec<i32> {
        let comm = format!("({name})");
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
            if ppid == Some(self.pid()) && stat.contains(&comm) {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        pids
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Kill the whole group even when the master is gone: no worker may
        // outlive the test.
        let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        if self.exited.is_none() {
            let _ = self.child.wait();
        }
    }
}
