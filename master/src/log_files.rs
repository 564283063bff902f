//! `--log-directory`, `--error-log-name`, `--access-log-name`,
//! `--rotate-logs`: the logs go to files instead of the terminal.
//!
//! Every process writes its records to standard error as it does without
//! log files, each whole with one `write(2)` of at most `PIPE_BUF` bytes
//! (see `rwsgi_shared::log`). With log files the master's standard error,
//! which every process it starts inherits, is a pipe whose one reader is a
//! thread of the master: it cuts what it reads into whole lines, sends each
//! to its file (access records, marked with `ACCESS_MARK`, to the access
//! log) and rotates a file between two lines. One reader, so a rotation
//! loses no line and splits none between two files, and no other process
//! needs to know that a file changed (as Apache's piped `rotatelogs`).
//!
//! The files are opened here, by the master, before it gives up root
//! (`--user`): a worker writes into the pipe, whoever it runs as.

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
// The copies of standard error and output every child inherits.
use nix::unistd::{dup2_stderr, dup2_stdout};
use rwsgi_shared::config::{LogFiles as LogFilesConfig, LogFormat, LogRotation, RunAs};
use rwsgi_shared::log::ACCESS_MARK;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum LogFilesError {
    #[error("log files: cannot create the directory {0}: {1}")]
    Directory(PathBuf, std::io::Error),
    #[error("log files: cannot open {0}: {1}")]
    Open(PathBuf, std::io::Error),
    #[error("log files: {0}")]
    Pipe(std::io::Error),
}

/// Set by SIGUSR1 and SIGHUP (the reload): the reader opens its files
/// again, for a log rotation done by another program (logrotate's
/// `create` method: move the file away, then signal).
static REOPEN: AtomicBool = AtomicBool::new(false);

pub fn reopen() {
    REOPEN.store(true, Ordering::Relaxed);
}

/// The running reader; [`LogFiles::finish`] (or drop) drains what is left.
pub struct LogFiles {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// The standard error the master started with, for its last words
    /// once the reader is gone.
    terminal: OwnedFd,
    /// Standard output was redirected too (not in `--debug-mode`).
    stdout_too: bool,
    startup: Option<File>,
}

/// Opens the files (creating their directories), makes standard error
/// (and standard output unless `keep_stdout`) the pipe and starts the
/// reader. Called while the master is still root and before it starts any
/// process or logger.
pub fn start(
    config: &LogFilesConfig,
    format: LogFormat,
    run_as: Option<&RunAs>,
    keep_stdout: bool,
) -> Result<LogFiles, LogFilesError> {
    let terminal = dup_cloexec(std::io::stderr().as_fd())?;
    let sink = |path: &Option<PathBuf>| -> Result<Sink, LogFilesError> {
        Ok(match path {
            Some(p) => Sink::file(p, open_log(p, run_as)?, config.rotate),
            None => Sink::fd(dup_cloexec(terminal.as_fd())?),
        })
    };
    let drain = Drain {
        pending: Vec::new(),
        error: sink(&config.error)?,
        access: sink(&config.access)?,
        format,
    };
    let startup = match &config.startup {
        Some(p) => Some(open_log(p, run_as)?),
        None => None,
    };
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(pipe_error)?;
    // Only the reader's end: the writers' stays blocking (a full pipe
    // makes them wait, it does not drop their lines).
    fcntl(read.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(pipe_error)?;
    // Room for bursts while the reader waits on the disk (best effort).
    let _ = fcntl(write.as_fd(), FcntlArg::F_SETPIPE_SZ(1 << 20));
    dup2_stderr(&write).map_err(pipe_error)?;
    if !keep_stdout {
        dup2_stdout(&write).map_err(pipe_error)?;
    }
    drop(write);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("log-files".into())
            .spawn(move || run(drain, read, &stop))
            .map_err(LogFilesError::Pipe)?
    };
    Ok(LogFiles {
        thread: Some(thread),
        stop,
        terminal,
        stdout_too: !keep_stdout,
        startup,
    })
}

impl LogFiles {
    /// `--startup-log`'s file, for the master's start-up lines.
    pub fn take_startup(&mut self) -> Option<File> {
        self.startup.take()
    }

    /// Ends the reader once every line written so far is in its file.
    /// The master's own standard error goes back to the terminal first,
    /// so the pipe ends when the last child is gone.
    pub fn finish(mut self) {
        self.stop_reader();
    }

    fn stop_reader(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let _ = dup2_stderr(&self.terminal);
        if self.stdout_too {
            let _ = dup2_stdout(&self.terminal);
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = thread.join();
    }
}

impl Drop for LogFiles {
    fn drop(&mut self) {
        self.stop_reader();
    }
}

fn pipe_error(e: nix::Error) -> LogFilesError {
    LogFilesError::Pipe(e.into())
}

fn dup_cloexec(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd, LogFilesError> {
    fd.try_clone_to_owned().map_err(LogFilesError::Pipe)
}

/// Opens `path` for appending, creating it and its directory; a directory
/// created here is given to `--user`, so the reader, running as that user
/// after the start, can rotate in it.
fn open_log(path: &Path, run_as: Option<&RunAs>) -> Result<File, LogFilesError> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| LogFilesError::Directory(dir.to_owned(), e))?;
            if let Some(who) = run_as {
                let _ = std::os::unix::fs::chown(dir, Some(who.uid), Some(who.gid));
            }
        }
    }
    append(path).map_err(|e| LogFilesError::Open(path.to_owned(), e))
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
}

/// Where one log's lines go.
enum Target {
    File {
        path: PathBuf,
        file: File,
        size: u64,
    },
    /// The terminal, for a log without a file of its own.
    Fd(File),
}

struct Sink {
    target: Target,
    rotate: Option<LogRotation>,
    /// Lines read but not yet written (one `write` per read).
    buf: Vec<u8>,
}

impl Sink {
    fn file(path: &Path, file: File, rotate: Option<LogRotation>) -> Sink {
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Sink {
            target: Target::File {
                path: path.to_owned(),
                file,
                size,
            },
            rotate,
            buf: Vec::new(),
        }
    }

    fn fd(fd: OwnedFd) -> Sink {
        Sink {
            target: Target::Fd(File::from(fd)),
            rotate: None,
            buf: Vec::new(),
        }
    }

    /// Takes one whole line; rotates first when it would not fit.
    fn push(&mut self, line: &[u8], notes: &mut Vec<String>) {
        if let (Some(rotate), Target::File { size, .. }) = (self.rotate, &self.target) {
            let after = *size + self.buf.len() as u64 + line.len() as u64;
            if after > rotate.max_bytes && *size + self.buf.len() as u64 > 0 {
                self.flush(notes);
                self.rotate(rotate.keep, notes);
            }
        }
        self.buf.extend_from_slice(line);
    }

    fn flush(&mut self, notes: &mut Vec<String>) {
        if self.buf.is_empty() {
            return;
        }
        match &mut self.target {
            Target::File { file, size, path } => match file.write_all(&self.buf) {
                Ok(()) => *size += self.buf.len() as u64,
                Err(e) => notes.push(format!("cannot write to {}: {e}", path.display())),
            },
            // The terminal is gone: there is nowhere left to say so.
            Target::Fd(f) => drop(f.write_all(&self.buf)),
        }
        self.buf.clear();
    }

    /// NAME.(keep-1) becomes NAME.keep (the oldest goes), …, NAME becomes
    /// NAME.1, and a new NAME is opened.
    fn rotate(&mut self, keep: u32, notes: &mut Vec<String>) {
        let Target::File { path, file, size } = &mut self.target else {
            return;
        };
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
        for n in (1..keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        let renamed = std::fs::rename(&*path, numbered(1));
        match renamed.and_then(|()| append(path)) {
            Ok(new) => {
                *file = new;
                *size = 0;
            }
            Err(e) => {
                // Go on in the same file; try again after another
                // --max-log-size rather than at every line.
                *size = 0;
                notes.push(format!(
                    "--rotate-logs: cannot rotate {}: {e}; writing on to it",
                    path.display()
                ));
            }
        }
    }

    fn reopen(&mut self, notes: &mut Vec<String>) {
        if let Target::File { path, file, size } = &mut self.target {
            match append(path) {
                Ok(new) => {
                    *size = new.metadata().map(|m| m.len()).unwrap_or(0);
                    *file = new;
                }
                Err(e) => notes.push(format!("cannot reopen {}: {e}", path.display())),
            }
        }
    }
}

/// Cuts the stream into lines and routes each to its log.
struct Drain {
    /// The start of a line whose end has not been read yet.
    pending: Vec<u8>,
    error: Sink,
    access: Sink,
    format: LogFormat,
}

/// A line longer than this without a newline (a program writing raw
/// bytes) is written as it is, so the reader's memory stays bounded.
const LONGEST_LINE: usize = 1 << 20;

impl Drain {
    fn take(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        let mut notes = Vec::new();
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let line = self.pending[start..start + end + 1].to_vec();
            self.route(&line, &mut notes);
            start += end + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > LONGEST_LINE {
            self.pending.push(b'\n');
            let line = std::mem::take(&mut self.pending);
            self.route(&line, &mut notes);
        }
        self.flush(notes);
    }

    fn route(&mut self, line: &[u8], notes: &mut Vec<String>) {
        match line.iter().position(|&b| b == ACCESS_MARK) {
            None => self.error.push(line, notes),
            Some(at) => {
                if at > 0 {
                    // A partial line (raw bytes without their newline)
                    // came before the access record: it ends here.
                    let mut before = line[..at].to_vec();
                    before.push(b'\n');
                    self.error.push(&before, notes);
                }
                self.access.push(&line[at + 1..], notes);
            }
        }
    }

    fn flush(&mut self, notes: Vec<String>) {
        let mut more = Vec::new();
        self.error.flush(&mut more);
        self.access.flush(&mut more);
        for note in notes.into_iter().chain(more) {
            let line = note_line(self.format, &note);
            self.error.buf.extend_from_slice(&line);
            self.error.flush(&mut Vec::new());
        }
    }

    fn reopen(&mut self) {
        let mut notes = Vec::new();
        self.error.reopen(&mut notes);
        self.access.reopen(&mut notes);
        self.flush(notes);
    }

    /// The last bytes, even without their newline.
    fn finish(&mut self) {
        if !self.pending.is_empty() {
            self.take(b"\n");
        }
        self.flush(Vec::new());
    }
}

/// A warning of the reader itself, written straight into the error log
/// (through the pipe it could wait on itself).
fn note_line(format: LogFormat, msg: &str) -> Vec<u8> {
    let mut line = match format {
        LogFormat::Text => format!("WARN {msg}, proc: master"),
        LogFormat::Json => {
            serde_json::json!({"msg": msg, "level": "WARN", "proc": "master"}).to_string()
        }
    }
    .into_bytes();
    line.push(b'\n');
    line
}

/// How long the reader goes on after the master is done.
const LAST_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The reader: until the pipe ends, or until it is told to stop and
/// nothing more is waiting in it.
fn run(mut drain: Drain, read: OwnedFd, stop: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    // Once told to stop: a process the master does not wait for (an
    // application's daemon child) may hold the pipe and keep writing.
    let mut stopping_since = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            let since = *stopping_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > LAST_DRAIN {
                break;
            }
        }
        if REOPEN.swap(false, Ordering::Relaxed) {
            drain.reopen();
        }
        let mut fds = [PollFd::new(read.as_fd(), PollFlags::POLLIN)];
        let ready = match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(n) => n > 0,
            Err(_) => false,
        };
        if !ready {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            continue;
        }
        match nix::unistd::read(&read, &mut buf) {
            Ok(0) => break,
            Ok(n) => drain.take(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    drain.finish();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rwsgi-logfiles-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn drain(dir: &Path, rotate: Option<LogRotation>) -> Drain {
        let (e, a) = (dir.join("error_log"), dir.join("access_log"));
        Drain {
            pending: Vec::new(),
            error: Sink::file(&e, append(&e).unwrap(), rotate),
            access: Sink::file(&a, append(&a).unwrap(), rotate),
            format: LogFormat::Text,
        }
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn lines_cut_anywhere_are_routed_whole() {
        let dir = temp("route");
        let mut d = drain(&dir, None);
        let stream = b"one\n\x1eGET /a\ntw\x1eGET /b\nthree";
        for chunk in stream.chunks(3) {
            d.take(chunk);
        }
        d.finish();
        assert_eq!(read(dir.join("error_log")), "one\ntw\nthree\n");
        assert_eq!(read(dir.join("access_log")), "GET /a\nGET /b\n");
    }

    #[test]
    fn rotation_keeps_every_line_once_and_whole() {
        let dir = temp("rotate");
        let rotate = LogRotation {
            max_bytes: 100,
            keep: 3,
        };
        let mut d = drain(&dir, Some(rotate));
        for i in 0..40 {
            d.take(format!("line {i:03} of the error log\n").as_bytes());
        }
        d.finish();
        let mut lines = Vec::new();
        for name in ["error_log.3", "error_log.2", "error_log.1", "error_log"] {
            let text = read(dir.join(name));
            assert!(text.len() <= 100, "{name}: {}", text.len());
            lines.extend(text.lines().map(str::to_owned));
        }
        assert!(!dir.join("error_log.4").exists());
        // The oldest were rotated away; the rest are there once, in order.
        let first: usize = lines[0][5..8].parse().unwrap();
        let want: Vec<String> = (first..40)
            .map(|i| format!("line {i:03} of the error log"))
            .collect();
        assert_eq!(lines, want);
    }
}
