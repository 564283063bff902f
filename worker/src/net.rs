//! Socket I/O for request threads: non-blocking sockets driven with poll(2)
//! and a deadline, so a stalled client costs a timeout, never a hung thread.
//! Callers release the GIL around these functions.
//!
//! The static lanes, which wait in their own poller instead, share the
//! steps: a read, one `sendfile` call, and the bookkeeping of a short write.

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "socket timed out")
}

pub fn wait(fd: BorrowedFd<'_>, flags: PollFlags, deadline: Instant) -> io::Result<()> {
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
    send_all(fd, parts, timeout, Then::More)
}

/// `write_all` for the last bytes a connection carries, when the caller
/// closes it right after: they go with MSG_MORE, so the kernel holds the
/// last segment for the FIN that the close appends to it. One packet
/// instead of two per `Connection: close` response, and on loopback each
/// packet is the sender's work too (the receiver's stack runs in its
/// context). The close must follow at once: until it does (or 200 ms pass)
/// the tail of the response waits in the kernel.
pub fn write_all_then_close(
    fd: BorrowedFd<'_>,
    parts: &[&[u8]],
    timeout: Duration,
) -> io::Result<()> {
    send_all(fd, parts, timeout, Then::Close)
}

/// What follows the bytes `send_all` writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Perhaps more, perhaps nothing for a while: sent at once.
    More,
    /// The close of the connection (see `write_all_then_close`).
    Close,
}

fn send_all(fd: BorrowedFd<'_>, parts: &[&[u8]], timeout: Duration, then: Then) -> io::Result<()> {
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
        let sent = match then {
            Then::More => nix::sys::uio::writev(fd, &slices),
            Then::Close => nix::sys::socket::sendmsg::<()>(
                fd.as_raw_fd(),
                &slices,
                &[],
                // nix names no MSG_MORE.
                nix::sys::socket::MsgFlags::from_bits_retain(libc::MSG_MORE | libc::MSG_NOSIGNAL),
                None,
            ),
        };
        match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let (done, into) = after_write(parts[part..].iter().map(|p| p.len()), offset, n);
                part += done;
                offset = into;
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait(fd, PollFlags::POLLOUT, Instant::now() + timeout)?,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Where `n` bytes just written leave a run of parts of lengths `lens`, the
/// first of which had `sent_of_first` bytes written before: how many parts
/// are now wholly written, and how many bytes of the next one.
pub fn after_write(
    lens: impl IntoIterator<Item = usize>,
    sent_of_first: usize,
    mut n: usize,
) -> (usize, usize) {
    let (mut done, mut into) = (0, sent_of_first);
    for len in lens {
        if n == 0 {
            break;
        }
        let left = len - into;
        if n >= left {
            n -= left;
            done += 1;
            into = 0;
        } else {
            into += n;
            n = 0;
        }
    }
    (done, into)
}

/// Largest `sendfile` call (the kernel caps one call near 2 GiB anyway).
const SENDFILE_CHUNK: u64 = 1 << 30;

/// One sendfile(2) call of at most `len` bytes of `file` from `*offset`,
/// which moves past what was sent. `Ok(0)`: the file ends there.
pub fn send_file_once(
    sock: impl AsFd,
    file: impl AsFd,
    offset: &mut u64,
    len: u64,
) -> Result<usize, Errno> {
    let mut off = *offset as libc::off64_t;
    let count = len.min(SENDFILE_CHUNK) as usize;
    let n = nix::sys::sendfile::sendfile64(sock, file, Some(&mut off), count)?;
    *offset += n as u64;
    Ok(n)
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
    let mut off = offset;
    let mut sent = 0u64;
    while sent < count {
        match send_file_once(sock, file, &mut off, count - sent) {
            Ok(0) => break,
            Ok(n) => sent += n as u64,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait(sock, PollFlags::POLLOUT, Instant::now() + timeout)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::after_write;

    #[test]
    fn a_short_write_moves_through_the_parts() {
        let lens = [4, 4, 9];
        // Within the first part, then across into the second.
        assert_eq!(after_write(lens, 0, 3), (0, 3));
        assert_eq!(after_write(lens, 3, 3), (1, 2));
        // To the end of a part exactly, and past every part.
        assert_eq!(after_write(lens, 2, 2), (1, 0));
        assert_eq!(after_write(lens, 0, 17), (3, 0));
        // Nothing written: nothing moves; empty parts wait for a byte.
        assert_eq!(after_write(lens, 1, 0), (0, 1));
        assert_eq!(after_write([0, 5], 0, 2), (1, 2));
    }
}
