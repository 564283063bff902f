//! Stack dumps that do not need the GIL, and the Python-side heartbeat.
//!
//! A request stuck in C code that holds the GIL (a `ctypes.PyDLL` call, a
//! C extension in a loop) cannot be diagnosed by Python code, which would
//! need the very GIL it waits for. CPython's `faulthandler` dumps every
//! thread's stack from a signal handler without it: it is registered on
//! [`DUMP_SIGNAL`], writing into a pipe that a Rust thread turns into one log
//! record. The master sends the signal when a request overruns
//! `--request-timeout` or the worker stops beating.
//!
//! The heartbeat thread takes the GIL twice a second and stamps the
//! scoreboard: its stamp goes stale exactly when the interpreter is stuck
//! (mod_wsgi's deadlock detector works the same way).

use pyo3::prelude::*;
use rwsgi_shared::scoreboard::Scoreboard;
use slog::{warn, Logger};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

/// The signal on which faulthandler dumps every thread's stack.
pub const DUMP_SIGNAL: nix::sys::signal::Signal = nix::sys::signal::Signal::SIGUSR2;

/// How often the Python heartbeat is stamped.
const BEAT: Duration = Duration::from_millis(500);
/// A dump is complete when the pipe stays quiet this long.
const QUIET: Duration = Duration::from_millis(200);

/// Registers faulthandler on [`DUMP_SIGNAL`] and starts the thread that
/// logs what it writes. The pipe's write end lives as long as the process.
pub fn install_dump(py: Python<'_>, log: &Logger) -> PyResult<()> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
    let faulthandler = py.import("faulthandler")?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("file", write.as_raw_fd())?;
    kwargs.set_item("all_threads", true)?;
    kwargs.set_item("chain", false)?;
    faulthandler.call_method("register", (DUMP_SIGNAL as i32,), Some(&kwargs))?;
    // faulthandler keeps only the number: the descriptor must stay open.
    std::mem::forget(write);
    let log = log.clone();
    std::thread::Builder::new()
        .name("rwsgi-stacks".into())
        .spawn(move || log_dumps(read, &log))
        .map(drop)
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))
}

fn log_dumps(read: OwnedFd, log: &Logger) {
    let mut pipe = std::fs::File::from(read);
    let mut buf = [0u8; 8192];
    let mut dump = Vec::new();
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => dump.extend_from_slice(&buf[..n]),
        }
        // Gather the rest of this dump: it ends when the pipe goes quiet.
        loop {
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&pipe),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = nix::poll::PollTimeout::try_from(QUIET.as_millis() as i32)
                .unwrap_or(nix::poll::PollTimeout::ZERO);
            let ready = nix::poll::poll(&mut fds, ms);
            match ready {
                Ok(n) if n > 0 => match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => dump.extend_from_slice(&buf[..n]),
                },
                Err(nix::errno::Errno::EINTR) => {}
                _ => break,
            }
        }
        log_dump(log, String::from_utf8_lossy(&dump).trim_end());
        dump.clear();
    }
}

/// Logs a dump as records with the stack in a field, so a collector of
/// JSON logs parses it like any record. A dump longer than what standard
/// error takes in one piece is split at line boundaries into parts, each a
/// record of its own (`part` of `parts`), rather than cut.
fn log_dump(log: &Logger, dump: &str) {
    // Room for the record's other fields and for escaping in JSON.
    let room = rwsgi_shared::log::record_limit().saturating_sub(1024) / 2;
    let parts = split_lines(dump, room.max(256));
    let n = parts.len();
    for (i, stack) in parts.iter().enumerate() {
        warn!(log, "Python stacks of every thread (faulthandler)";
            "stack" => %stack, "part" => i + 1, "parts" => n);
    }
}

/// `text` in pieces of at most `room` bytes, split after a newline where
/// one is within reach (a longer line is split where it must).
fn split_lines(text: &str, room: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > room {
        let mut at = room;
        while !rest.is_char_boundary(at) {
            at -= 1;
        }
        let cut = rest[..at].rfind('\n').map_or(at, |i| i + 1);
        let cut = if cut == 0 { at } else { cut };
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    parts.push(rest);
    parts
}

/// Starts the thread that stamps the Python heartbeat.
pub fn beat_python(scoreboard: Arc<Scoreboard>, slot: usize) {
    let _ = std::thread::Builder::new()
        .name("rwsgi-heartbeat".into())
        .spawn(move || loop {
            Python::attach(|_| {
                if let Some(sb) = scoreboard.worker(slot) {
                    sb.python_heartbeat();
                }
            });
            std::thread::sleep(BEAT);
        });
}

#[cfg(test)]
mod tests {
    use super::split_lines;

    #[test]
    fn a_dump_is_split_after_newlines_and_nothing_is_lost() {
        let dump: String = (0..200)
            .map(|i| format!("  File \"app.py\", line {i}\n"))
            .collect();
        let parts = split_lines(&dump, 300);
        assert!(parts.len() > 1);
        assert_eq!(parts.concat(), dump);
        for p in &parts {
            assert!(p.len() <= 300);
            assert!(p.ends_with('\n'));
        }
        let long = "é".repeat(400);
        assert_eq!(split_lines(&long, 301).concat(), long);
    }
}
