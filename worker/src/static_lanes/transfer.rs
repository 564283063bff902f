//! One static response being written, as far as the socket takes it at
//! each step: the head and small files with one `sendmsg`, larger bodies
//! with `sendfile(2)`. Over TLS, the file is read a chunk at a time and
//! encrypted instead, and a response is finished only once no ciphertext
//! is left queued.

use crate::conn::Conn;
use crate::net;
use crate::transport::{pread, Io, TLS_FILE_CHUNK};
use nix::errno::Errno;
use nix::sys::socket::{sendmsg, MsgFlags, SockaddrStorage};
use rwsgi_http::statics::{Plan, Segment};
use rwsgi_http::RequestHead;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;
use std::time::Instant;

/// Files up to this size are read and sent with the head in one `sendmsg`.
const SMALL_FILE: u64 = 32 * 1024;

/// A response being written.
pub(super) struct Transfer {
    pub(super) head: RequestHead,
    file: Option<File>,
    /// What is left to send: the head first, then the body.
    parts: VecDeque<Segment>,
    /// Bytes of the first part already sent (when it is `Bytes`).
    sent_of_first: usize,
    pub(super) keep_alive: bool,
    pub(super) status: u16,
    pub(super) body_bytes: u64,
    pub(super) started: Instant,
    pub(super) last_progress: Instant,
    /// Over TLS: file bytes read for encryption (allocated on first use).
    chunk: Vec<u8>,
}

/// Moves past `n` bytes just sent from the leading in-memory `parts`
/// (`sent_of_first` of the first were sent before).
fn consume_sent(parts: &mut VecDeque<Segment>, sent_of_first: &mut usize, n: usize) {
    let in_memory = parts.iter().map_while(|p| match p {
        Segment::Bytes(b) => Some(b.len()),
        Segment::File { .. } => None,
    });
    let (done, into) = net::after_write(in_memory, *sent_of_first, n);
    parts.drain(..done);
    *sent_of_first = into;
}

impl Transfer {
    pub(super) fn new(
        head: RequestHead,
        plan: Plan,
        file: Option<File>,
        started: Instant,
    ) -> Transfer {
        let body_bytes = plan.body_len();
        let mut parts = VecDeque::with_capacity(plan.body.len() + 1);
        parts.push_back(Segment::Bytes(plan.head));
        let mut keep_alive = plan.keep_alive;
        for segment in plan.body {
            match (segment, &file) {
                // Small: read it now, so head and body leave in one packet.
                (Segment::File { offset, len }, Some(f)) if len <= SMALL_FILE => {
                    let mut bytes = vec![0; len as usize];
                    match f.read_exact_at(&mut bytes, offset) {
                        Ok(()) => parts.push_back(Segment::Bytes(bytes)),
                        Err(_) => {
                            // Shrunk since it was opened: the length is sent already.
                            keep_alive = false;
                            break;
                        }
                    }
                }
                (segment, _) => parts.push_back(segment),
            }
        }
        Transfer {
            head,
            file,
            parts,
            sent_of_first: 0,
            keep_alive,
            status: plan.status,
            body_bytes,
            started,
            last_progress: Instant::now(),
            chunk: Vec::new(),
        }
    }

    /// Sends as much as the socket takes. `Ok(true)`: all sent;
    /// `Ok(false)`: the socket is full.
    pub(super) fn advance(&mut self, conn: &mut Conn) -> io::Result<bool> {
        if conn.transport.is_tls() {
            let mut io = conn.transport.io()?;
            return self.advance_tls(&mut io);
        }
        let Some(sock) = conn.transport.plain() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        loop {
            let sent = match self.parts.front() {
                None => return Ok(true),
                Some(Segment::Bytes(_)) => self.send_bytes(sock.as_raw_fd()),
                Some(Segment::File { .. }) => self.send_file(sock),
            };
            match sent {
                Ok(()) => self.last_progress = Instant::now(),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The leading in-memory parts, up to 64 of them; whether file bytes
    /// follow them.
    fn leading_bytes(&self) -> (Vec<IoSlice<'_>>, bool) {
        let mut slices = Vec::with_capacity(4);
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Segment::Bytes(b) => {
                    let from = if i == 0 { self.sent_of_first } else { 0 };
                    slices.push(IoSlice::new(&b[from..]));
                }
                Segment::File { .. } => return (slices, true),
            }
            if slices.len() == 64 {
                break;
            }
        }
        (slices, false)
    }

    /// One `sendmsg` of the leading in-memory parts; `MSG_MORE` when file
    /// bytes follow, so the head does not leave in a packet of its own.
    fn send_bytes(&mut self, sock: std::os::fd::RawFd) -> Result<(), Errno> {
        let (slices, file_follows) = self.leading_bytes();
        let mut flags = MsgFlags::MSG_NOSIGNAL;
        if file_follows {
            flags |= MsgFlags::from_bits_retain(libc::MSG_MORE);
        }
        let n = sendmsg::<SockaddrStorage>(sock, &slices, &[], flags, None)?;
        drop(slices);
        consume_sent(&mut self.parts, &mut self.sent_of_first, n);
        Ok(())
    }

    fn send_file(&mut self, sock: impl AsFd) -> Result<(), Errno> {
        let Some(Segment::File { offset, len }) = self.parts.front_mut() else {
            return Ok(());
        };
        let Some(file) = &self.file else {
            return Err(Errno::EBADF);
        };
        let n = net::send_file_once(sock, file, offset, *len)?;
        if n == 0 {
            // The file shrank after its length was sent.
            return Err(Errno::EIO);
        }
        *len -= n as u64;
        if *len == 0 {
            self.parts.pop_front();
        }
        Ok(())
    }

    /// `advance` over TLS: queued ciphertext goes first; then the next
    /// plaintext is encrypted (rustls buffers a bounded amount) and sent.
    fn advance_tls(&mut self, io: &mut Io<'_>) -> io::Result<bool> {
        loop {
            if !io.flush_pending()? {
                return Ok(false);
            }
            match self.parts.front() {
                None => return Ok(true),
                Some(Segment::Bytes(_)) => {
                    let (slices, _) = self.leading_bytes();
                    let written = io.try_write(&slices);
                    drop(slices);
                    match written {
                        Ok(w) => consume_sent(&mut self.parts, &mut self.sent_of_first, w.accepted),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                        Err(e) => return Err(e),
                    }
                }
                Some(Segment::File { .. }) => {
                    if !self.encrypt_file_chunk(io)? {
                        return Ok(false);
                    }
                }
            }
            self.last_progress = Instant::now();
        }
    }

    /// Reads the next chunk of the leading file part and hands it to the
    /// session. `Ok(false)`: the socket is full.
    fn encrypt_file_chunk(&mut self, io: &mut Io<'_>) -> io::Result<bool> {
        let Some(Segment::File { offset, len }) = self.parts.front_mut() else {
            return Ok(true);
        };
        let Some(file) = &self.file else {
            return Err(io::Error::from(Errno::EBADF));
        };
        if self.chunk.is_empty() {
            self.chunk = vec![0; TLS_FILE_CHUNK];
        }
        let want = self
            .chunk
            .len()
            .min(usize::try_from(*len).unwrap_or(usize::MAX));
        let n = pread(file.as_fd(), &mut self.chunk[..want], *offset)?;
        if n == 0 {
            // The file shrank after its length was sent.
            return Err(io::Error::from(Errno::EIO));
        }
        let taken = match io.try_write(&[IoSlice::new(&self.chunk[..n])]) {
            Ok(w) => w.accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        // What rustls did not take is read again next time.
        *offset += taken as u64;
        *len -= taken as u64;
        if *len == 0 {
            self.parts.pop_front();
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(parts: &VecDeque<Segment>) -> Vec<Vec<u8>> {
        parts
            .iter()
            .filter_map(|p| match p {
                Segment::Bytes(b) => Some(b.clone()),
                Segment::File { .. } => None,
            })
            .collect()
    }

    #[test]
    fn bytes_sent_move_through_the_parts() {
        let mut parts: VecDeque<Segment> = VecDeque::from([
            Segment::Bytes(b"head".to_vec()),
            Segment::Bytes(b"body".to_vec()),
            Segment::File { offset: 0, len: 9 },
        ]);
        let mut first = 0;
        consume_sent(&mut parts, &mut first, 3);
        assert_eq!((parts.len(), first), (3, 3));
        // The rest of the head and part of the body.
        consume_sent(&mut parts, &mut first, 3);
        assert_eq!((parts.len(), first), (2, 2));
        assert_eq!(bytes(&parts), [b"body".to_vec()]);
        consume_sent(&mut parts, &mut first, 2);
        assert_eq!((parts.len(), first), (1, 0));
        // The file part is sendfile's: bytes sent never eat into it.
        consume_sent(&mut parts, &mut first, 5);
        assert_eq!(parts.front(), Some(&Segment::File { offset: 0, len: 9 }));
        assert_eq!(first, 0);
    }
}
