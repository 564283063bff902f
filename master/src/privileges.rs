//! `--user`, `--group`: the master gives up root once its listeners are
//! bound and its scoreboard exists, before it starts any process.
//!
//! Why the master and not only the children: everything it still needs
//! (the listening sockets, the scoreboard memfd, the channels) is already
//! open, a reload keeps the listeners, and a container user expects nothing
//! to run as root after start (uWSGI's order; Apache keeps its parent as
//! root because it reopens logs and rebinds on restart, which rwsgi does
//! not do). So a port below 1024 works, and every worker and the template
//! are started by an unprivileged parent: no process that runs Python has
//! ever had uid 0.

use nix::unistd::{getegid, geteuid, getgid, getuid, initgroups, setgid, setgroups, setuid};
use nix::unistd::{Gid, Uid};
use rwsgi_shared::config::RunAs;
use std::ffi::CString;

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("--user/--group: cannot set the supplementary groups of {0}: {1}")]
    Groups(String, nix::Error),
    #[error("--group: cannot switch to gid {0}: {1}")]
    Gid(u32, nix::Error),
    #[error("--user: cannot switch to uid {0}: {1}")]
    Uid(u32, nix::Error),
    #[error(
        "--user: after switching to uid {0} the process could become root again; refusing to start"
    )]
    StillRoot(u32),
    #[error("--user/--group: the switch did not take (uid {0}/{1}, gid {2}/{3})")]
    NotSwitched(u32, u32, u32, u32),
}

/// Groups, then gid, then uid (the order that leaves no way back), then a
/// check that it worked: a failure stops the start instead of serving as root.
pub fn drop_to(run_as: &RunAs) -> Result<(), PrivilegeError> {
    let gid = Gid::from_raw(run_as.gid);
    let uid = Uid::from_raw(run_as.uid);
    let login = run_as
        .login
        .as_deref()
        .and_then(|name| CString::new(name).ok());
    match &login {
        Some(name) => initgroups(name, gid),
        None => setgroups(&[gid]),
    }
    .map_err(|e| PrivilegeError::Groups(run_as.user.clone(), e))?;
    setgid(gid).map_err(|e| PrivilegeError::Gid(run_as.gid, e))?;
    setuid(uid).map_err(|e| PrivilegeError::Uid(run_as.uid, e))?;
    let ids = (getuid(), geteuid(), getgid(), getegid());
    if ids != (uid, uid, gid, gid) {
        return Err(PrivilegeError::NotSwitched(
            ids.0.as_raw(),
            ids.1.as_raw(),
            ids.2.as_raw(),
            ids.3.as_raw(),
        ));
    }
    if !uid.is_root() && setuid(Uid::from_raw(0)).is_ok() {
        return Err(PrivilegeError::StillRoot(run_as.uid));
    }
    // Changing uid cleared the dumpable flag, which makes /proc/PID of the
    // master root's: `rwsgi status` run as the same user could not open
    // the scoreboard through it. The master holds nothing that user's
    // workers do not hold already.
    let _ = nix::sys::prctl::set_dumpable(true);
    Ok(())
}
