//! One HTTPS connection: its handshake; then, for HTTP/1.1, the connection
//! itself with its session ([`Tunnel::into_conn`]: the worker's threads
//! encrypt and decrypt as they do the I/O, see `transport`), or, for `h2`,
//! bytes moved both ways between the client's TCP socket (through rustls)
//! and the worker's end of a Unix socket pair for the h2 thread, with
//! bounded buffers so neither side can make it grow.
//!
//! Readiness is edge-triggered: every event on either socket runs [`Tunnel::pump`],
//! which moves everything it can in every direction until nothing moves,
//! so a direction paused for a full buffer resumes when the buffer drains.

use crate::conn::Conn;
use crate::transport::Transport;
use mio::Interest;
use rwsgi_http::tls::Facts;
use rwsgi_shared::origin::Origin;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes moved per read.
pub const CHUNK: usize = 16 * 1024;
/// Plaintext from the client waiting for the worker; past this, the
/// client's socket is not read until the worker has taken some.
const TO_APP_LIMIT: usize = 64 * 1024;

/// What became of a connection after moving its bytes.
pub enum Pumped {
    Open,
    /// The handshake is done and ALPN did not choose `h2`: the connection
    /// is to be taken out ([`Tunnel::into_conn`]).
    Established,
    /// Over; the reason is logged when it is worth a line.
    Done(Option<String>),
}

pub struct Tunnel {
    tcp: TcpStream,
    tls: rustls::ServerConnection,
    /// The tunnel's end of the pair, once the handshake is done.
    inner: Option<UnixStream>,
    /// Registered with the poll yet?
    inner_registered: bool,
    /// Whether the pair's registration includes writability (see
    /// [`pair_interest`]).
    inner_watch_write: bool,
    /// Decrypted bytes not yet written to the pair.
    to_app: Vec<u8>,
    origin: Origin,
    accepted_at: Option<Instant>,
    handshake_deadline: Instant,
    /// The client sent its last byte (FIN or close_notify).
    client_done: bool,
    /// The pair's write side was shut after `client_done`.
    app_told: bool,
    /// The worker closed its end: close_notify queued.
    app_done: bool,
    /// Since when the tunnel has been waiting to flush its last bytes.
    closing_since: Option<Instant>,
    /// What each socket may do without blocking, as far as we know: set by
    /// the poll's (edge-triggered) events, cleared by `WouldBlock`. A call
    /// that would only return `WouldBlock` is not made: it was a third of
    /// this thread's system calls.
    ready: Ready,
}

#[derive(Debug, Clone, Copy)]
struct Ready {
    tcp_read: bool,
    tcp_write: bool,
    inner_read: bool,
    inner_write: bool,
}

impl Tunnel {
    pub fn new(
        tcp: TcpStream,
        tls: rustls::ServerConnection,
        origin: Origin,
        accepted_at: Option<Instant>,
        handshake_deadline: Instant,
    ) -> Tunnel {
        Tunnel {
            tcp,
            tls,
            inner: None,
            inner_registered: false,
            inner_watch_write: false,
            to_app: Vec::new(),
            origin,
            accepted_at,
            handshake_deadline,
            client_done: false,
            app_told: false,
            app_done: false,
            closing_since: None,
            ready: Ready {
                tcp_read: true,
                tcp_write: true,
                inner_read: true,
                inner_write: true,
            },
        }
    }

    /// Through the handshake, with the worker's end of its pair handed on
    /// (and registered).
    pub fn paired(&self) -> bool {
        self.inner_registered
    }

    /// An event: the socket (`inner`: the pair's end, else the client's)
    /// may read or write again.
    pub fn ready(&mut self, inner: bool, read: bool, write: bool) {
        let r = &mut self.ready;
        let (can_read, can_write) = if inner {
            (&mut r.inner_read, &mut r.inner_write)
        } else {
            (&mut r.tcp_read, &mut r.tcp_write)
        };
        *can_read |= read;
        *can_write |= write;
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The pair's descriptor, the first time it is asked for after the
    /// handshake (the caller registers it).
    pub fn newly_paired(&mut self) -> Option<RawFd> {
        if self.inner_registered {
            return None;
        }
        let fd = self.inner.as_ref()?.as_raw_fd();
        self.inner_registered = true;
        Some(fd)
    }

    /// The pair's interest when it is not what it is registered with, after
    /// a pump (the caller re-registers it).
    pub fn pair_interest_change(&mut self) -> Option<(RawFd, Interest)> {
        let inner = self.inner.as_ref().filter(|_| self.inner_registered)?;
        let watch_write = !self.ready.inner_write;
        if watch_write == self.inner_watch_write {
            return None;
        }
        self.inner_watch_write = watch_write;
        Some((inner.as_raw_fd(), pair_interest(watch_write)))
    }

    pub fn deregister(&self, registry: &mio::Registry) {
        let _ = registry.deregister(&mut mio::unix::SourceFd(&self.tcp.as_raw_fd()));
        if let (Some(inner), true) = (&self.inner, self.inner_registered) {
            let _ = registry.deregister(&mut mio::unix::SourceFd(&inner.as_raw_fd()));
        }
    }

    /// Whether the tunnel is to be dropped at `now`: a handshake past its
    /// deadline, a close that could not flush within `flush`, or, when the
    /// worker stops, any handshake still running.
    pub fn expired(&mut self, now: Instant, stopping: bool, flush: Duration) -> bool {
        if self.inner.is_none() {
            return stopping || now > self.handshake_deadline;
        }
        match self.closing_since {
            Some(since) => now.duration_since(since) > flush,
            None => false,
        }
    }

    /// Moves whatever can move; `adopt` receives the worker's end of the
    /// pair when the handshake completes.
    pub fn pump(&mut self, scratch: &mut [u8], adopt: &mut dyn FnMut(Conn)) -> Pumped {
        loop {
            let mut moved = false;
            // The client's bytes into rustls.
            if !self.client_done && self.ready.tcp_read && self.to_app.len() < TO_APP_LIMIT {
                let mut probe = ShortRead::new(&mut self.tcp);
                let read = self.tls.read_tls(&mut probe);
                if probe.drained {
                    self.ready.tcp_read = false;
                }
                match read {
                    Ok(0) => {
                        self.client_done = true;
                        moved = true;
                    }
                    Ok(_) => {
                        moved = true;
                        if let Err(e) = self.tls.process_new_packets() {
                            // The alert rustls queued tells the client why.
                            let _ = self.tls.write_tls(&mut self.tcp);
                            return Pumped::Done(Some(format!("TLS error: {e}")));
                        }
                    }
                    Err(e) if retry(&e) => self.ready.tcp_read = false,
                    Err(e) => return Pumped::Done(Some(format!("read: {e}"))),
                }
            }
            if self.inner.is_none() {
                if self.tls.is_handshaking() {
                    if self.client_done {
                        return Pumped::Done(None);
                    }
                } else if self.tls.alpn_protocol() != Some(b"h2") {
                    return Pumped::Established;
                } else {
                    match self.pair(adopt) {
                        Ok(()) => moved = true,
                        Err(e) => return Pumped::Done(Some(format!("socket pair: {e}"))),
                    }
                }
            }
            if let Some(inner) = self.inner.as_mut() {
                // Decrypted bytes to the worker.
                loop {
                    match self.tls.reader().read(scratch) {
                        Ok(0) => {
                            self.client_done = true;
                            break;
                        }
                        Ok(n) => {
                            self.to_app.extend_from_slice(&scratch[..n]);
                            moved = true;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        // Closed without close_notify: an end all the same.
                        Err(_) => {
                            self.client_done = true;
                            break;
                        }
                    }
                }
                while !self.to_app.is_empty() && self.ready.inner_write {
                    match inner.write(&self.to_app) {
                        Ok(0) => break,
                        Ok(n) => {
                            self.to_app.drain(..n);
                            moved = true;
                        }
                        Err(e) if retry(&e) => {
                            self.ready.inner_write = false;
                            break;
                        }
                        // The worker closed its end: nothing more goes in.
                        Err(_) => {
                            self.to_app.clear();
                            self.app_told = true;
                            break;
                        }
                    }
                }
                if self.client_done && self.to_app.is_empty() && !self.app_told {
                    let _ = inner.shutdown(Shutdown::Write);
                    self.app_told = true;
                }
                // The worker's bytes into rustls, one chunk at a time while
                // the client keeps up.
                if !self.app_done && self.ready.inner_read && !self.tls.wants_write() {
                    match inner.read(scratch) {
                        Ok(0) => {
                            self.app_done = true;
                            self.tls.send_close_notify();
                            moved = true;
                        }
                        Ok(n) => {
                            if drained(n, scratch.len()) {
                                self.ready.inner_read = false;
                            }
                            if self.tls.writer().write_all(&scratch[..n]).is_err() {
                                return Pumped::Done(Some("TLS write failed".into()));
                            }
                            moved = true;
                        }
                        Err(e) if retry(&e) => self.ready.inner_read = false,
                        Err(_) => {
                            self.app_done = true;
                            self.tls.send_close_notify();
                            moved = true;
                        }
                    }
                }
            }
            // rustls's records to the client.
            while self.tls.wants_write() && self.ready.tcp_write {
                match self.tls.write_tls(&mut self.tcp) {
                    Ok(0) => break,
                    Ok(_) => moved = true,
                    Err(e) if retry(&e) => {
                        self.ready.tcp_write = false;
                        break;
                    }
                    Err(e) => return Pumped::Done(Some(format!("write: {e}"))),
                }
            }
            if self.app_done {
                if !self.tls.wants_write() {
                    let _ = self.tcp.shutdown(Shutdown::Write);
                    return Pumped::Done(None);
                }
                self.closing_since.get_or_insert_with(Instant::now);
            }
            if !moved {
                return Pumped::Open;
            }
        }
    }

    /// The handshake is done (HTTP/1.1): the connection with its session,
    /// what rustls has to send sent as far as the socket takes it (the
    /// rest goes first with the next write), and the plaintext that came
    /// with the handshake's end in its buffer. The caller has deregistered
    /// the socket from this thread's poll.
    pub fn into_conn(mut self) -> Conn {
        let _ = crate::transport::flush(&mut self.tls, self.tcp.as_fd());
        let mut buf = Vec::new();
        // The end of the stream, if it came too, is rustls's to tell again.
        let _ = crate::transport::take_plaintext(&mut self.tls, &mut buf);
        let facts = Arc::new(Facts::of(&self.tls));
        let transport = Transport::new_tls(self.tcp, Box::new(self.tls));
        let mut conn = Conn::with(transport, self.origin, buf);
        conn.accepted_at = self.accepted_at;
        conn.tls = Some(facts);
        conn
    }

    /// The handshake chose `h2`: a socket pair, the worker's end adopted as
    /// a connection that carries what the handshake established.
    fn pair(&mut self, adopt: &mut dyn FnMut(Conn)) -> std::io::Result<()> {
        let (ours, theirs) = UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        theirs.set_nonblocking(true)?;
        // The worker reads and writes the pair as it would the TCP socket
        // (read, writev, sendfile, shutdown); `Conn::tls` says what it is.
        let stream = TcpStream::from(OwnedFd::from(theirs));
        let mut conn = Conn::new(stream, self.origin, Vec::new());
        conn.accepted_at = self.accepted_at;
        conn.tls = Some(Arc::new(Facts::of(&self.tls)));
        // Only announced with --http2 (see `ALPN_H2`).
        conn.http2 = self.tls.alpn_protocol() == Some(b"h2");
        self.inner = Some(ours);
        adopt(conn);
        Ok(())
    }
}

/// What the poll watches on the pair's end: readability, and writability
/// only while a write to it is waiting for room (`blocked`).
///
/// Every read the worker makes from its end wakes a watcher of this end's
/// writability (a Unix socket signals room whether or not a writer ran out
/// of it, unlike TCP), which was one wake-up of this thread per request
/// for nothing.
pub fn pair_interest(blocked: bool) -> Interest {
    if blocked {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    }
}

/// Whether a read of `n` bytes into room for `asked` emptied the socket.
///
/// A stream socket's read returns less than asked only when nothing more
/// was there, and with edge-triggered readiness anything arriving later is
/// a new event: the read that would only say `WouldBlock` is not made
/// (one system call per request in each direction).
fn drained(n: usize, asked: usize) -> bool {
    n > 0 && n < asked
}

/// The client's socket as rustls reads it, noting whether a read emptied
/// it (rustls chooses how much room it offers).
struct ShortRead<'a> {
    tcp: &'a mut TcpStream,
    drained: bool,
}

impl<'a> ShortRead<'a> {
    fn new(tcp: &'a mut TcpStream) -> ShortRead<'a> {
        ShortRead {
            tcp,
            drained: false,
        }
    }
}

impl Read for ShortRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.drained = drained(n, buf.len());
        Ok(n)
    }
}

fn retry(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_read_empties_the_socket_and_a_full_one_may_not() {
        assert!(drained(100, 16384));
        assert!(!drained(16384, 16384), "more may be waiting");
        // End of stream and errors are told apart elsewhere.
        assert!(!drained(0, 16384));
    }

    #[test]
    fn the_pair_is_watched_for_room_only_while_a_write_waits_for_it() {
        assert!(!pair_interest(false).is_writable());
        assert!(pair_interest(true).is_writable());
        assert!(pair_interest(false).is_readable() && pair_interest(true).is_readable());
    }

    #[test]
    fn a_short_read_of_the_client_is_noted() {
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut tcp = TcpStream::from(OwnedFd::from(theirs));
        ours.write_all(b"hello").expect("write");
        let mut probe = ShortRead::new(&mut tcp);
        let mut buf = [0u8; 16];
        assert_eq!(probe.read(&mut buf).expect("read"), 5);
        assert!(probe.drained);
        ours.write_all(&[7; 16]).expect("write");
        assert_eq!(probe.read(&mut buf).expect("read"), 16);
        assert!(!probe.drained, "a full read says nothing");
    }
}
