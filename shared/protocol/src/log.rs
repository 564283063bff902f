//! Log set-up shared by master and workers: slog to standard error.
//!
//! The drain is synchronous (a mutex around the formatter) on purpose: an
//! asynchronous drain drops lines when it overflows or when a process exits,
//! and a server's last words are the ones an operator needs most.
//!
//! Every record reaches standard error whole, with one `write(2)`: the
//! formatters write into a [`RecordWriter`], which holds the record until the
//! formatter flushes it at the record's end. The master, the template and
//! every worker share one standard error (usually a pipe to a container's log
//! collector), and only a single write of at most `PIPE_BUF` bytes is atomic
//! on a pipe: a record written in pieces gets spliced with another process's
//! (slog-json writes a record key by key). Longer records are cut to fit
//! (see [`fit`]): text at line boundaries, JSON by shortening its longest
//! values, each with a marker, so a collector can still parse every line.

use crate::config::{LogFormat, LogLevel};
use slog::{o, Drain, Level, Logger};
use std::io::{self, Write};
use std::sync::Mutex;

pub use slog::{debug, error, info, warn};

fn slog_level(level: LogLevel) -> Level {
    match level {
        LogLevel::Debug => Level::Debug,
        LogLevel::Info => Level::Info,
        LogLevel::Warn => Level::Warning,
        LogLevel::Error => Level::Error,
    }
}

/// A logger writing to standard error in the chosen format.
pub fn logger(format: LogFormat, level: LogLevel, component: &'static str) -> Logger {
    let level = slog_level(level);
    let out = RecordWriter::stderr(format);
    match format {
        LogFormat::Text => {
            let decorator = slog_term::PlainSyncDecorator::new(out);
            let drain = slog_term::FullFormat::new(decorator)
                .use_original_order()
                .build()
                .filter_level(level)
                .fuse();
            Logger::root(Mutex::new(drain).fuse(), o!("proc" => component))
        }
        LogFormat::Json => {
            let drain = slog_json::Json::new(out)
                .add_default_keys()
                .set_flush(true)
                .build()
                .filter_level(level)
                .fuse();
            Logger::root(Mutex::new(drain).fuse(), o!("proc" => component))
        }
    }
}

/// A logger writing to `file` (the start-up log), in the chosen format.
pub fn file_logger(format: LogFormat, level: LogLevel, file: std::fs::File) -> Logger {
    let level = slog_level(level);
    match format {
        LogFormat::Text => {
            let decorator = slog_term::PlainSyncDecorator::new(file);
            let drain = slog_term::FullFormat::new(decorator)
                .use_original_order()
                .build()
                .filter_level(level)
                .fuse();
            Logger::root(Mutex::new(drain).fuse(), o!("proc" => "master"))
        }
        LogFormat::Json => {
            let drain = slog_json::Json::new(file)
                .add_default_keys()
                .set_flush(true)
                .build()
                .filter_level(level)
                .fuse();
            Logger::root(Mutex::new(drain).fuse(), o!("proc" => "master"))
        }
    }
}

/// The longest record that is written to standard error in one piece
/// without another process's output landing inside it: `PIPE_BUF` for a
/// pipe or a socket (a log collector), no limit for a terminal or a file
/// (a single `write` to a regular file is not interleaved).
pub fn record_limit() -> usize {
    use nix::sys::stat::{fstat, SFlag};
    match fstat(std::io::stderr()) {
        Ok(st) => {
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            if kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK {
                libc::PIPE_BUF
            } else {
                usize::MAX
            }
        }
        Err(_) => libc::PIPE_BUF,
    }
}

/// Collects one record and writes it with a single `write(2)` when the
/// formatter flushes at the record's end.
pub struct RecordWriter {
    buf: Vec<u8>,
    format: LogFormat,
    limit: usize,
    /// Each piece starts with [`ACCESS_MARK`] (see [`access_logger`]).
    marked: bool,
}

impl RecordWriter {
    pub fn stderr(format: LogFormat) -> RecordWriter {
        RecordWriter {
            buf: Vec::with_capacity(512),
            format,
            limit: record_limit(),
            marked: false,
        }
    }
}

/// The first byte of an access record on standard error when the access
/// log has a file of its own (`--access-log-name`, `--log-directory`): the
/// master's log-file reader sends marked lines to the access log and the
/// others to the error log. One stream and one reader, so the records of
/// both logs stay whole and in order across rotations, and no worker needs
/// a descriptor of its own for the access log. (ASCII's record separator:
/// it starts no line of text a program writes.)
pub const ACCESS_MARK: u8 = 0x1e;

/// A record that is not an access record never holds [`ACCESS_MARK`]: a
/// line the application logs (with text from a request in it) cannot pass
/// for an access record. (JSON escapes it anyway.)
pub fn unmark(record: &mut [u8]) {
    for b in record.iter_mut().filter(|b| **b == ACCESS_MARK) {
        *b = b' ';
    }
}

/// Writes an access record (one line, with its newline) marked with
/// [`ACCESS_MARK`], whole, with one `write(2)`.
pub fn write_access_record(record: &[u8], format: LogFormat) -> io::Result<()> {
    let limit = record_limit().saturating_sub(1).max(64);
    fit(record, format, limit).iter().try_for_each(|piece| {
        let mut marked = Vec::with_capacity(piece.len() + 1);
        marked.push(ACCESS_MARK);
        marked.extend_from_slice(piece);
        write_once(&marked)
    })
}

/// A logger of JSON access records, each marked with [`ACCESS_MARK`]
/// (with `--log-format json` and an access log file of its own).
pub fn access_logger() -> Logger {
    let out = RecordWriter {
        buf: Vec::with_capacity(512),
        format: LogFormat::Json,
        limit: record_limit().saturating_sub(1).max(64),
        marked: true,
    };
    let drain = slog_json::Json::new(out)
        .add_default_keys()
        .set_flush(true)
        .build()
        .fuse();
    Logger::root(Mutex::new(drain).fuse(), o!("proc" => "worker"))
}

impl Write for RecordWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut record = std::mem::take(&mut self.buf);
        let marked = self.marked;
        if !marked {
            unmark(&mut record);
        }
        let result =
            fit(&record, self.format, self.limit)
                .iter()
                .try_for_each(|piece| match marked {
                    false => write_once(piece),
                    true => write_once(&[&[ACCESS_MARK][..], piece].concat()),
                });
        self.buf = record;
        self.buf.clear();
        result
    }
}

/// Writes `piece` to standard error with one system call where the kernel
/// takes it whole (it does for a pipe up to `PIPE_BUF`), retrying only what
/// a short write or a signal left.
fn write_once(mut piece: &[u8]) -> io::Result<()> {
    let stderr = std::io::stderr();
    while !piece.is_empty() {
        match nix::unistd::write(&stderr, piece) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => piece = &piece[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                // A non-blocking standard error that is full: wait for room
                // rather than drop the record.
                let fd = std::os::fd::AsFd::as_fd(&stderr);
                let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(1000u16));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The marker left where a record was cut.
const CUT: &str = "…[cut]";

/// The pieces, each at most `limit` bytes and each ending in a newline, that
/// a record is written as. A record that fits is one piece. A longer text
/// record is split at line boundaries (one line longer than the limit is cut,
/// with a marker); a longer JSON record becomes one record whose longest
/// string values are shortened, with `"cut": true`.
pub fn fit(record: &[u8], format: LogFormat, limit: usize) -> Vec<Vec<u8>> {
    if record.len() <= limit {
        return vec![record.to_vec()];
    }
    match format {
        LogFormat::Text => fit_text(record, limit),
        LogFormat::Json => vec![fit_json(record, limit)],
    }
}

fn fit_text(record: &[u8], limit: usize) -> Vec<Vec<u8>> {
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut piece = Vec::new();
    for line in record.split_inclusive(|&b| b == b'\n') {
        let line = cut_line(line, limit);
        if piece.len() + line.len() > limit && !piece.is_empty() {
            pieces.push(std::mem::take(&mut piece));
        }
        piece.extend_from_slice(&line);
    }
    if !piece.is_empty() {
        pieces.push(piece);
    }
    pieces
}

/// A line that fits `limit` with its newline, cut with a marker if it did not.
fn cut_line(line: &[u8], limit: usize) -> Vec<u8> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    if body.len() < limit {
        let mut l = body.to_vec();
        l.push(b'\n');
        return l;
    }
    let keep = floor_char_boundary(body, limit.saturating_sub(CUT.len() + 1));
    let mut l = body[..keep].to_vec();
    l.extend_from_slice(CUT.as_bytes());
    l.push(b'\n');
    l
}

/// The largest index <= `at` that does not split a UTF-8 sequence.
fn floor_char_boundary(bytes: &[u8], at: usize) -> usize {
    let mut i = at.min(bytes.len());
    while i > 0 && i < bytes.len() && (bytes[i] & 0xC0) == 0x80 {
        i -= 1;
    }
    i
}

fn fit_json(record: &[u8], limit: usize) -> Vec<u8> {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(record) else {
        return fallback_json(limit);
    };
    map.insert("cut".into(), serde_json::Value::Bool(true));
    // Shorten the longest string value until the record fits; every round
    // at least halves the longest one, so this ends.
    for _ in 0..64 {
        let Ok(mut out) = serde_json::to_vec(&map) else {
            break;
        };
        out.push(b'\n');
        if out.len() <= limit {
            return out;
        }
        let over = out.len() - limit;
        let longest = map
            .iter_mut()
            .filter_map(|(_, v)| match v {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .max_by_key(|s| s.len());
        let Some(s) = longest else { break };
        if s.len() <= CUT.len() {
            break;
        }
        // Escaping may make a character longer on the wire than in the
        // string: cut at least half, and more when that is not enough.
        let target = s.len().saturating_sub(over.max(s.len() / 2) + CUT.len());
        let keep = floor_str_boundary(s, target);
        s.truncate(keep);
        s.push_str(CUT);
    }
    fallback_json(limit)
}

fn floor_str_boundary(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A record that says a record was lost, for the case nothing else fits.
fn fallback_json(limit: usize) -> Vec<u8> {
    let mut out =
        br#"{"msg":"a log record too long to write was dropped","level":"ERRO","cut":true}"#
            .to_vec();
    out.push(b'\n');
    out.truncate(limit.max(1));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn json_record(msg: &str) -> Vec<u8> {
        let mut r = serde_json::to_vec(&serde_json::json!({
            "msg": msg, "level": "INFO", "pid": 7, "path": "/x"
        }))
        .unwrap();
        r.push(b'\n');
        r
    }

    #[test]
    fn a_record_that_fits_is_one_piece_unchanged() {
        let r = json_record("hello");
        assert_eq!(fit(&r, LogFormat::Json, 4096), vec![r.clone()]);
        assert_eq!(
            fit(b"a\nb\n", LogFormat::Text, 4096),
            vec![b"a\nb\n".to_vec()]
        );
    }

    #[test]
    fn a_long_json_record_stays_one_valid_record_with_a_marker() {
        for msg in [
            "x".repeat(10_000),
            "é\"\\\n".repeat(3_000),
            "\u{1}".repeat(5_000),
        ] {
            let pieces = fit(&json_record(&msg), LogFormat::Json, 4096);
            assert_eq!(pieces.len(), 1);
            let p = &pieces[0];
            assert!(p.len() <= 4096, "{}", p.len());
            assert!(p.ends_with(b"\n"));
            assert_eq!(p.iter().filter(|&&b| b == b'\n').count(), 1);
            let v: serde_json::Value = serde_json::from_slice(p).unwrap();
            assert_eq!(v["cut"], true);
            assert_eq!(v["pid"], 7);
            assert_eq!(v["path"], "/x");
            assert!(v["msg"].as_str().unwrap().ends_with(CUT));
        }
    }

    #[test]
    fn a_long_text_record_is_split_at_lines_and_a_long_line_cut() {
        let mut r = Vec::new();
        for i in 0..300 {
            r.extend_from_slice(format!("line {i} of a stack dump\n").as_bytes());
        }
        r.extend_from_slice("é".repeat(3000).as_bytes());
        r.push(b'\n');
        let pieces = fit(&r, LogFormat::Text, 4096);
        assert!(pieces.len() > 1);
        for p in &pieces {
            assert!(p.len() <= 4096);
            assert!(p.ends_with(b"\n"));
            assert!(std::str::from_utf8(p).is_ok());
        }
        let joined: Vec<u8> = pieces.concat();
        assert!(joined.starts_with(&r[..1000]));
        assert!(String::from_utf8(joined).unwrap().trim_end().ends_with(CUT));
    }

    #[test]
    fn only_access_records_carry_the_mark() {
        let mut r = b"INFO forged \x1e127.0.0.1 - - GET /admin\n".to_vec();
        unmark(&mut r);
        assert_eq!(r, b"INFO forged  127.0.0.1 - - GET /admin\n");
    }

    #[test]
    fn a_record_that_is_not_json_is_replaced_by_one_that_is() {
        let pieces = fit(&vec![b'{'; 9000], LogFormat::Json, 4096);
        let _: serde_json::Value = serde_json::from_slice(&pieces[0]).unwrap();
    }
}
