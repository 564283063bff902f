//! Starting a worker: fork+exec of `rwsgi-worker` with exactly two inherited
//! descriptors, its channel end and the scoreboard, named on its command line.

use rwsgi_shared::channel::{Channel, ChannelError, Message};
use rwsgi_shared::config::ServerConfig;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot find the rwsgi-worker program next to rwsgi ({0}); set RWSGI_WORKER_BIN")]
    NoWorkerBinary(String),
    #[error("cannot create the worker channel: {0}")]
    Channel(#[from] ChannelError),
    #[error("cannot start {0}: {1}")]
    Exec(String, std::io::Error),
}

/// Where `rwsgi-worker` lives: `RWSGI_WORKER_BIN`, else beside this executable.
pub fn worker_binary() -> Result<PathBuf, SpawnError> {
    if let Some(p) = std::env::var_os("RWSGI_WORKER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| SpawnError::NoWorkerBinary(e.to_string()))?;
    let candidate = exe.with_file_name("rwsgi-worker");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(SpawnError::NoWorkerBinary(candidate.display().to_string()))
    }
}

/// `HOME`, `USER` and `LOGNAME` of the `--user` the master switched to, for
/// every process it starts (as mod_wsgi sets `HOME` for its daemons): the
/// environment still names root's otherwise.
static CHILD_IDENTITY: std::sync::OnceLock<Vec<(&'static str, std::ffi::OsString)>> =
    std::sync::OnceLock::new();

pub fn set_child_identity(run_as: &rwsgi_shared::config::RunAs) {
    let mut env = Vec::new();
    if let Some(home) = &run_as.home {
        env.push(("HOME", home.clone().into_os_string()));
    }
    if let Some(login) = &run_as.login {
        env.push(("USER", login.into()));
        env.push(("LOGNAME", login.into()));
    }
    let _ = CHILD_IDENTITY.set(env);
}

/// `--debug-mode`: workers read the master's standard input (the
/// terminal, for pdb) instead of /dev/null.
static WORKERS_GET_STDIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn give_workers_stdin() {
    WORKERS_GET_STDIN.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Gives `cmd` the `HOME`, `USER` and `LOGNAME` every started process gets
/// (see [`set_child_identity`]).
pub fn child_identity_env(cmd: &mut Command) {
    if let Some(env) = CHILD_IDENTITY.get() {
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
    }
}

/// A started worker process and the master's end of its channel.
pub struct Spawned {
    pub pid: u32,
    pub channel: Channel,
}

/// What the started program is to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A worker for a scoreboard slot, and the slot's occupancy (its
    /// epoch) it attaches to.
    Worker { slot: usize, epoch: u32 },
    /// The template workers are forked from (`--preload`).
    Template,
}

/// Starts one worker (or the template) and sends it the configuration.
pub fn spawn(
    binary: &std::path::Path,
    role: Role,
    generation: u32,
    scoreboard: BorrowedFd<'_>,
    config_bytes: &[u8],
) -> Result<Spawned, SpawnError> {
    let (ours, theirs) = Channel::pair()?;
    let channel_fd: RawFd = theirs.as_raw_fd();
    let scoreboard_fd: RawFd = scoreboard.as_raw_fd();
    let mut cmd = Command::new(binary);
    match role {
        Role::Worker { slot, epoch } => cmd
            .arg("--slot")
            .arg(slot.to_string())
            .arg("--epoch")
            .arg(epoch.to_string()),
        Role::Template => cmd.arg("--template"),
    };
    cmd.arg("--generation")
        .arg(generation.to_string())
        .arg("--channel-fd")
        .arg(channel_fd.to_string())
        .arg("--scoreboard-fd")
        .arg(scoreboard_fd.to_string())
        .stdin(
            match WORKERS_GET_STDIN.load(std::sync::atomic::Ordering::Relaxed) {
                true => Stdio::inherit(),
                false => Stdio::null(),
            },
        );
    if let Some(env) = CHILD_IDENTITY.get() {
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
    }
    // SAFETY: between fork and exec the closure only makes raw close_range(2)
    // and fcntl(2) system calls (async-signal-safe, no allocation) on
    // descriptors that are open in the child.
    unsafe {
        cmd.pre_exec(move || {
            // Whatever the master itself inherited (a supervisor's pipes, a
            // shell's descriptors) is not passed on: everything from 3 up
            // becomes close-on-exec, then exactly our two are let through.
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            for fd in [channel_fd, scoreboard_fd] {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| SpawnError::Exec(binary.display().to_string(), e))?;
    drop(theirs);
    // The channel is empty, so this first message cannot block for long.
    ours.send(&Message::Config(config_bytes.to_vec()), None)?;
    ours.set_nonblocking(true)?;
    Ok(Spawned {
        pid: child.id(),
        channel: ours,
    })
}

/// Serialized configuration, computed once per server.
pub fn config_bytes(config: &ServerConfig) -> Vec<u8> {
    config.to_bytes()
}
