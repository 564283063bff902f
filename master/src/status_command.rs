//! `rwsgi status`: reads a running server's scoreboard from outside.
//!
//! The scoreboard is a memfd held open by the master, so another process
//! (with the same user, or root) can open it through /proc/PID/fd.

use rwsgi_shared::scoreboard::Scoreboard;
use rwsgi_shared::service_board::ServiceBoard;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no running rwsgi master found; pass --pid")]
    NoMaster,
    #[error("several rwsgi masters are running ({0}); pass --pid")]
    Ambiguous(String),
    #[error("process {0} has no rwsgi scoreboard (is it an rwsgi master?)")]
    NoScoreboard(u32),
    #[error("cannot read the scoreboard of process {0}: {1}")]
    Open(u32, std::io::Error),
    #[error("{0}")]
    Layout(#[from] rwsgi_shared::scoreboard::ScoreboardError),
}

fn masters() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                is_master(&c, || {
                    std::fs::read_link(format!("/proc/{pid}/exe"))
                        .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "rwsgi"))
                })
            })
        })
        .collect()
}

/// A master's command line is `rwsgi start-server ...`; with
/// `--process-name` its program is another name, and then the executable
/// (read only in that case) tells.
fn is_master(cmdline: &str, runs_rwsgi: impl FnOnce() -> bool) -> bool {
    let mut args = cmdline.split('\0');
    let program = args.next().unwrap_or_default();
    args.next() == Some("start-server")
        && (program.rsplit('/').next() == Some("rwsgi") || runs_rwsgi())
}

/// The memfd named `name` that process `pid` holds, opened through /proc.
fn open_memfd(pid: u32, name: &str) -> Result<Option<std::fs::File>, StatusError> {
    let dir =
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| StatusError::Open(pid, e))?;
    let wanted = format!("/memfd:{name}");
    for entry in dir.flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if target.to_string_lossy().starts_with(&wanted) {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(entry.path())
                .map_err(|e| StatusError::Open(pid, e))?;
            return Ok(Some(file));
        }
    }
    Ok(None)
}

fn open(pid: u32) -> Result<Scoreboard, StatusError> {
    match open_memfd(pid, "rwsgi-scoreboard")? {
        Some(file) => Ok(Scoreboard::attach(file.into())?),
        None => Err(StatusError::NoScoreboard(pid)),
    }
}

/// The `--service-script` board of master `pid`, if it has services.
fn open_services(pid: u32) -> Option<ServiceBoard> {
    let file = open_memfd(pid, rwsgi_shared::service_board::MEMFD_NAME).ok()??;
    ServiceBoard::attach(file.into()).ok()
}

/// The pid of master `pid` (or of the only master running).
fn master_pid(pid: Option<u32>) -> Result<u32, StatusError> {
    Ok(match pid {
        Some(p) => p,
        None => match masters().as_slice() {
            [] => return Err(StatusError::NoMaster),
            [one] => *one,
            many => {
                return Err(StatusError::Ambiguous(
                    many.iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                ))
            }
        },
    })
}

/// The status report of the master `pid` (or the only master running).
pub fn report(pid: Option<u32>, json: bool) -> Result<String, StatusError> {
    let pid = master_pid(pid)?;
    let sb = open(pid)?;
    let now = rwsgi_shared::time::now_ms();
    let mut status = rwsgi_shared::status::Status::read(&sb, now);
    if let Some(board) = open_services(pid) {
        status = status.with_services(&board, now);
    }
    Ok(if json {
        format!("{}\n", status.json())
    } else {
        status.text()
    })
}

#[cfg(test)]
mod tests {
    use super::is_master;

    #[test]
    fn a_renamed_master_is_found_by_its_executable() {
        assert!(is_master("/usr/bin/rwsgi\0start-server\0wsgi.py", || false));
        assert!(is_master("myapp\0start-server\0wsgi.py", || true));
        assert!(!is_master("myapp\0start-server\0wsgi.py", || false));
        assert!(!is_master("/usr/bin/rwsgi\0status\0", || true));
        assert!(!is_master("", || true));
    }
}
