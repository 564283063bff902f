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

/// The command line as numbers, each checked for its type and range, before
/// any descriptor is taken.
#[derive(Debug, PartialEq, Eq)]
struct Numbers {
    slot: Option<usize>,
    generation: u32,
    epoch: u32,
    channel: RawFd,
    scoreboard: RawFd,
}

fn numbers(mut args: impl Iterator<Item = String>) -> Result<Numbers, String> {
    let (mut slot, mut generation, mut channel, mut scoreboard) = (None, None, None, None);
    let mut epoch = None;
    let mut template = false;
    while let Some(flag) = args.next() {
        if flag == "--template" {
            template = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag}: {value:?} is not {what}");
        match flag.as_str() {
            "--slot" => slot = Some(value.parse::<usize>().map_err(|_| bad("a slot number"))?),
            "--generation" => {
                generation = Some(value.parse::<u32>().map_err(|_| bad("a generation"))?)
            }
            "--epoch" => epoch = Some(value.parse::<u32>().map_err(|_| bad("an epoch"))?),
            "--channel-fd" | "--scoreboard-fd" => {
                // 0 to 2 are stdin, stdout and stderr, never ours to own.
                let fd = value
                    .parse::<RawFd>()
                    .ok()
                    .filter(|fd| *fd >= 3)
                    .ok_or_else(|| bad("a descriptor from 3 up"))?;
                if flag == "--channel-fd" {
                    channel = Some(fd);
                } else {
                    scoreboard = Some(fd);
                }
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    let channel = channel.ok_or("missing --channel-fd")?;
    let scoreboard = scoreboard.ok_or("missing --scoreboard-fd")?;
    if channel == scoreboard {
        // Owned twice, it would be closed twice (the second time perhaps
        // as another file that reused the number).
        return Err(format!(
            "--channel-fd and --scoreboard-fd are both {channel}: each descriptor has one owner"
        ));
    }
    Ok(Numbers {
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
        channel,
        scoreboard,
    })
}

pub fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let n = numbers(args)?;
    let fd = |raw: RawFd, name: &str| -> Result<OwnedFd, String> {
        // fcntl(F_GETFD) tells whether the descriptor is really open.
        // SAFETY: F_GETFD only reads the descriptor flags.
        if unsafe { libc::fcntl(raw, libc::F_GETFD) } == -1 {
            return Err(format!("{name} {raw} is not an open descriptor"));
        }
        // SAFETY: the master passed this descriptor to us alone, and
        // `numbers` made sure the two are different: each is owned once.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // Close-on-exec again, so subprocesses started by the application do not inherit it.
        // SAFETY: setting FD_CLOEXEC on a descriptor we own.
        unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) };
        Ok(owned)
    };
    Ok(Args {
        slot: n.slot,
        generation: n.generation,
        epoch: n.epoch,
        channel: fd(n.channel, "--channel-fd")?,
        scoreboard: fd(n.scoreboard, "--scoreboard-fd")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Result<Numbers, String> {
        numbers(line.split(' ').map(str::to_owned))
    }

    #[test]
    fn what_the_master_writes_parses() {
        assert_eq!(
            parsed("--slot 3 --generation 7 --epoch 2 --channel-fd 5 --scoreboard-fd 4"),
            Ok(Numbers {
                slot: Some(3),
                generation: 7,
                epoch: 2,
                channel: 5,
                scoreboard: 4
            })
        );
        assert_eq!(
            parsed("--template --channel-fd 5 --scoreboard-fd 4").map(|n| n.slot),
            Ok(None)
        );
    }

    #[test]
    fn every_number_is_checked_for_its_range() {
        for (line, flag) in [
            (
                "--slot -1 --epoch 1 --channel-fd 5 --scoreboard-fd 4",
                "--slot",
            ),
            (
                "--slot 1 --epoch 1 --generation 4294967296 --channel-fd 5 --scoreboard-fd 4",
                "--generation",
            ),
            (
                "--slot 1 --epoch 1 --generation -1 --channel-fd 5 --scoreboard-fd 4",
                "--generation",
            ),
            (
                "--slot 1 --epoch 1 --channel-fd -1 --scoreboard-fd 4",
                "--channel-fd",
            ),
            (
                "--slot 1 --epoch 1 --channel-fd 2 --scoreboard-fd 4",
                "--channel-fd",
            ),
            (
                "--slot 1 --epoch 1 --channel-fd 4294967301 --scoreboard-fd 4",
                "--channel-fd",
            ),
            (
                "--slot 1 --epoch 1 --channel-fd 5 --scoreboard-fd x",
                "--scoreboard-fd",
            ),
            ("--slot 1 --epoch 1 --channel-fd 5", "--scoreboard-fd"),
            (
                "--slot 1 --epoch 1 --channel-fd 5 --scoreboard-fd 5",
                "both 5",
            ),
            (
                "--template --slot 1 --channel-fd 5 --scoreboard-fd 4",
                "--template",
            ),
            ("--channel-fd 5 --scoreboard-fd 4", "--slot"),
            (
                "--slot 1 --epoch 0 --channel-fd 5 --scoreboard-fd 4",
                "--epoch",
            ),
            (
                "--slot 1 --epoch -1 --channel-fd 5 --scoreboard-fd 4",
                "--epoch",
            ),
            ("--slot 1 --channel-fd 5 --scoreboard-fd 4", "--epoch"),
        ] {
            let err = parsed(line).expect_err(line);
            assert!(err.contains(flag), "{line}: {err}");
        }
    }
}
