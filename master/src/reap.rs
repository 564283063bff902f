//! Reaping children: `waitpid` in a loop, because SIGCHLD signals coalesce.

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use rwsgi_shared::exit::ExitCode;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    Exited(i32),
    Signaled(Signal),
}

impl Death {
    /// A line for the log that says why.
    pub fn describe(self) -> String {
        match self {
            Death::Exited(code) => match ExitCode::from_code(code) {
                Some(known) => format!("exited with code {code} ({})", known.describe()),
                None => format!("exited with code {code}"),
            },
            Death::Signaled(Signal::SIGKILL) => "killed by SIGKILL (out of memory?)".to_owned(),
            Death::Signaled(sig) => format!("killed by {}", sig.as_str()),
        }
    }

    pub fn exit_code(self) -> Option<ExitCode> {
        match self {
            Death::Exited(code) => ExitCode::from_code(code),
            Death::Signaled(_) => None,
        }
    }
}

/// Every child that has ended since the last call.
pub fn reap_all() -> Vec<(u32, Death)> {
    let mut dead = Vec::new();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                dead.push((pid.as_raw() as u32, Death::Exited(code)))
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                dead.push((pid.as_raw() as u32, Death::Signaled(sig)))
            }
            Ok(WaitStatus::StillAlive) => break,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break, // ECHILD: no children left.
        }
    }
    dead
}
