//! Carrying out the service decisions (`services`): starting a service
//! process (fork+exec of `rwsgi-worker --service NAME`, as another user
//! with `--service-user`/`--service-group`, its output to
//! `--service-log-file`), signalling it, and publishing the services on
//! the service board for `rwsgi status`. Nothing here decides.

use crate::services::{ServiceAction, Services};
use crate::supervisor::Level;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rwsgi_shared::channel::{Channel, Message};
use rwsgi_shared::config::{RunAs, ServerConfig, Service};
use rwsgi_shared::service_board::ServiceBoard;
use slog::{error, info, warn, Logger};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct ServiceProcs {
    services: Vec<Service>,
    worker_bin: PathBuf,
    /// The configuration each service process is sent (as a worker is).
    config_bytes: Vec<u8>,
    /// What `rwsgi status` reads; `None` without services.
    board: Option<ServiceBoard>,
    log: Logger,
}

impl ServiceProcs {
    pub fn new(config: &ServerConfig, worker_bin: PathBuf, log: Logger) -> ServiceProcs {
        let names: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
        let board = if names.is_empty() {
            None
        } else {
            match ServiceBoard::create(&names) {
                Ok(b) => Some(b),
                Err(e) => {
                    warn!(log, "`rwsgi status` will not show the services: {}", e);
                    None
                }
            }
        };
        ServiceProcs {
            services: config.services.clone(),
            worker_bin,
            config_bytes: config.to_bytes(),
            board,
            log,
        }
    }

    /// Carries out `actions`, and what the reports of its starts bring.
    pub fn carry_out(&mut self, actions: Vec<ServiceAction>, services: &mut Services) {
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                ServiceAction::Start { index } => {
                    let now = Instant::now();
                    let more = match self.spawn(index) {
                        Ok(pid) => services.started(index, pid, now),
                        Err(why) => services.start_failed(index, &why, now),
                    };
                    queue.extend(more);
                }
                ServiceAction::Terminate { pid } => signal(pid, Signal::SIGTERM),
                ServiceAction::Kill { pid } => signal(pid, Signal::SIGKILL),
                ServiceAction::Log {
                    level,
                    service,
                    message,
                } => {
                    let log = match service {
                        Some((name, pid)) => {
                            self.log.new(slog::o!("service" => name, "pid" => pid))
                        }
                        None => self.log.clone(),
                    };
                    match level {
                        Level::Info => info!(log, "{}", message),
                        Level::Warn => warn!(log, "{}", message),
                        Level::Error => error!(log, "{}", message),
                    }
                }
            }
        }
    }

    /// Publishes the services for `rwsgi status`.
    pub fn publish(&self, services: &Services) {
        let Some(board) = &self.board else {
            return;
        };
        let readings = services.readings(Instant::now(), rwsgi_shared::time::now_ms());
        for (i, r) in readings.iter().enumerate() {
            board.set(i, r);
        }
    }

    /// The master is exiting on an error: no service is left behind.
    pub fn kill_all(&self, services: &mut Services) {
        let pids = services.pids();
        for &pid in &pids {
            signal(pid, Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for pid in pids {
            while Instant::now() < deadline {
                match nix::sys::wait::waitpid(
                    Pid::from_raw(pid as i32),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                ) {
                    Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => break,
                }
            }
        }
        services.forget_all();
    }

    /// Starts service `index`; its pid, or why not.
    fn spawn(&self, index: usize) -> Result<u32, String> {
        let svc = self
            .services
            .get(index)
            .ok_or_else(|| format!("no service {index}"))?;
        let (ours, theirs) = Channel::pair().map_err(|e| e.to_string())?;
        let channel_fd: RawFd = theirs.as_raw_fd();
        let mut cmd = Command::new(&self.worker_bin);
        cmd.arg("--service")
            .arg(&svc.name)
            .arg("--channel-fd")
            .arg(channel_fd.to_string())
            .stdin(Stdio::null());
        if let Some(path) = &svc.log_file {
            let file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .map_err(|e| format!("--service-log-file {}: {e}", path.display()))?;
            let copy = file.try_clone().map_err(|e| e.to_string())?;
            cmd.stdout(copy).stderr(file);
        }
        let switch = match &svc.run_as {
            Some(run_as) => {
                identity_env(&mut cmd, run_as);
                Some(Switch::of(run_as))
            }
            None => {
                crate::spawn::child_identity_env(&mut cmd);
                None
            }
        };
        // SAFETY: between fork and exec the closure makes only raw
        // close_range(2), fcntl(2), setgroups(2), setgid(2) and setuid(2)
        // calls (async-signal-safe, no allocation: the group list was made
        // before the fork) on descriptors open in the child.
        unsafe {
            cmd.pre_exec(move || {
                // What the master inherited is not passed on; the channel is.
                libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                );
                if libc::fcntl(channel_fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(s) = &switch {
                    // Groups, then gid, then uid: the order that leaves no way back.
                    if libc::setgroups(s.groups.len(), s.groups.as_ptr()) == -1
                        || libc::setgid(s.gid) == -1
                        || libc::setuid(s.uid) == -1
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.worker_bin.display()))?;
        drop(theirs);
        // The channel is empty: the configuration is queued at once, and
        // read by the service after our end is gone.
        if let Err(e) = ours.send(&Message::Config(self.config_bytes.clone()), None) {
            // A process nobody knows of must not be left to run (or to be
            // reaped as a stranger).
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot send the configuration: {e}"));
        }
        Ok(child.id())
    }
}

/// `--service-user`/`--service-group`, ready for the child.
struct Switch {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

impl Switch {
    fn of(run_as: &RunAs) -> Switch {
        let groups = run_as
            .login
            .as_deref()
            .and_then(|name| std::ffi::CString::new(name).ok())
            .and_then(|name| {
                nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(run_as.gid)).ok()
            })
            .map(|gs| gs.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|| vec![run_as.gid]);
        Switch {
            uid: run_as.uid,
            gid: run_as.gid,
            groups,
        }
    }
}

/// `HOME`, `USER`, `LOGNAME` of the service's own user.
fn identity_env(cmd: &mut Command, run_as: &RunAs) {
    if let Some(home) = &run_as.home {
        cmd.env("HOME", home);
    }
    if let Some(login) = &run_as.login {
        cmd.env("USER", login).env("LOGNAME", login);
    }
}

fn signal(pid: u32, sig: Signal) {
    if pid != 0 {
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
}
