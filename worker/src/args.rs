//! The worker's own command line, written by the master (not for users).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

pub struct Args {
    /// The worker's scoreboard slot; `None` for the template (`--template`).
    pub slot: Option<usize>,
    pub generation: u32,
    /// The slot's occupancy this worker attaches to (see `scoreboard`).
    pub epoch: u32,
    pub channel: OwnedFd,
    pub scoreboard: OwnedFd,
}

pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut slot, mut generation, mut channel, mut scoreboard) = (None, None, None, None);
    let mut epoch = None;
    let mut template = false;
    while let Some(flag) = args.next() {
        if flag == "--template" {
            template = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--slot" => slot = Some(number(&value)? as usize),
            "--generation" => generation = Some(number(&value)? as u32),
            "--epoch" => epoch = Some(number(&value)? as u32),
            "--channel-fd" => channel = Some(number(&value)? as RawFd),
            "--scoreboard-fd" => scoreboard = Some(number(&value)? as RawFd),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    let fd = |v: Option<RawFd>, name: &str| -> Result<OwnedFd, String> {
        let raw = v.ok_or(format!("missing {name}"))?;
        // fcntl(F_GETFD) tells whether the descriptor is really open.
        // SAFETY: F_GETFD only reads the descriptor flags.
        if raw < 3 || unsafe { libc::fcntl(raw, libc::F_GETFD) } == -1 {
            return Err(format!("{name} {raw} is not an open descriptor"));
        }
        // SAFETY: the master passed this descriptor to us alone; we take ownership once.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // Close-on-exec again, so subprocesses started by the application do not inherit it.
        // SAFETY: setting FD_CLOEXEC on a descriptor we own.
        unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) };
        Ok(owned)
    };
    Ok(Args {
        slot: match (slot, template) {
            (Some(_), true) => return Err("--template takes no --slot".into()),
            (None, false) => return Err("missing --slot".into()),
            (slot, _) => slot,
        },
        generation: generation.unwrap_or(0),
        epoch: match (epoch, template) {
            (Some(0), _) => return Err("--epoch 0 names no occupancy".into()),
            (None, false) => return Err("missing --epoch".into()),
            (epoch, _) => epoch.unwrap_or(0),
        },
        channel: fd(channel, "--channel-fd")?,
        scoreboard: fd(scoreboard, "--scoreboard-fd")?,
    })
}
