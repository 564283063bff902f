//! Socket I/O for request threads: non-blocking sockets driven with poll(2)
//! and a deadline, so a stalled client costs a timeout, never a hung thread.
//! Callers release the GIL around these functions.

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "socket timed out")
}

fn wait(fd: BorrowedFd<'_>, flags: PollFlags, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(fd, flags)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads what is available right now (at most `max` bytes) into the end of
/// `buf` without waiting. `Ok(None)`: nothing yet; `Ok(Some(0))`: end of stream.
///
/// Reads into the vector's spare capacity: zero-filling 16 KiB before every
/// read showed up as the largest single cost of a small request.
pub fn try_read(fd: impl AsFd, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<usize>> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(max);
    loop {
        // SAFETY: read(2) writes at most `len` bytes into the spare capacity,
        // which is valid for writes; `set_len` then covers only what it wrote.
        let n = unsafe { libc::read(fd.as_fd().as_raw_fd(), spare.as_mut_ptr().cast(), len) };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: the kernel initialised exactly `n` bytes after the old length.
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(Some(n));
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::EAGAIN => return Ok(None),
            e => return Err(io::Error::from(e)),
        }
    }
}

/// Like `try_read`, but waits up to `timeout` for data. Returns 0 at end of stream.
pub fn read_some(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
    timeout: Duration,
) -> io::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(n) = try_read(fd, buf, max)? {
            return Ok(n);
        }
        wait(fd, PollFlags::POLLIN, deadline)?;
    }
}

/// Writes every byte of `parts`, waiting up to `timeout` whenever the socket
/// buffer stays full (the timeout is per stall, not per response).
pub fn write_all(fd: BorrowedFd<'_>, parts: &[&[u8]], timeout: Duration) -> io::Result<()> {
    let mut part = 0;
    let mut offset = 0;
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len());
    loop {
        while part < parts.len() && offset >= parts[part].len() {
            part += 1;
            offset = 0;
        }
        if part >= parts.len() {
            return Ok(());
        }
        slices.clear();
        slices.push(IoSlice::new(&parts[part][offset..]));
        slices.extend(
            parts[part + 1..]
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| IoSlice::new(p)),
        );
        match nix::sys::uio::writev(fd, &slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                while n > 0 && part < parts.len() {
                    let left = parts[part].len() - offset;
                    if n >= left {
                        n -= left;
                        part += 1;
                        offset = 0;
                    } else {
                        offset += n;
                        n = 0;
                    }
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait(fd, PollFlags::POLLOUT, Instant::now() + timeout)?,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends `count` bytes of `file` from `offset` with sendfile(2), waiting up
/// to `timeout` per stall. Returns the bytes sent: fewer than `count` when
/// the file is shorter than announced.
pub fn send_file(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    count: u64,
    timeout: Duration,
) -> io::Result<u64> {
    let mut off = offset as libc::off64_t;
    let mut sent = 0u64;
    while sent < count {
        let chunk = (count - sent).min(1 << 30) as usize;
        match nix::sys::sendfile::sendfile64(sock, file, Some(&mut off), chunk) {
            Ok(0) => break,
            Ok(n) => sent += n as u64,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait(sock, PollFlags::POLLOUT, Instant::now() + timeout)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sent)
}
