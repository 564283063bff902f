//! One HTTPS connection through its handshake; then the connection itself
//! with its session ([`Handshake::established`]): the thread that serves
//! it encrypts and decrypts as it does the I/O (see `transport` for
//! HTTP/1.1, `http2::tls_io` for `h2`).
//!
//! Readiness is edge-triggered: every event on the socket runs
//! [`Handshake::pump`], which moves everything it can until nothing moves.

use crate::conn::Conn;
use crate::transport::{Session, Transport};
use rwsgi_http::tls::Facts;
use rwsgi_shared::origin::Origin;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Instant;

/// What became of a connection after moving its bytes.
pub enum Pumped {
    Open,
    /// The handshake is done: the connection is to be taken out
    /// ([`Handshake::established`]).
    Established,
    /// Over; the reason is logged when it is worth a line.
    Done(Option<String>),
}

pub struct Handshake {
    tcp: TcpStream,
    tls: rustls::ServerConnection,
    origin: Origin,
    accepted_at: Option<Instant>,
    deadline: Instant,
    /// The client sent its last byte (FIN).
    client_done: bool,
    /// What the socket may do without blocking, as far as we know: set by
    /// the poll's (edge-triggered) events, cleared by `WouldBlock`.
    ready: Ready,
}

#[derive(Debug, Clone, Copy)]
struct Ready {
    read: bool,
    write: bool,
}

/// A connection through its handshake, its session with it.
pub struct Established {
    pub tcp: TcpStream,
    pub session: Session,
    /// Plaintext that came with the handshake's end.
    pub buf: Vec<u8>,
    pub origin: Origin,
    pub accepted_at: Option<Instant>,
    pub facts: Arc<Facts>,
    /// ALPN chose `h2` (only announced with `--http2`).
    pub h2: bool,
}

impl Established {
    /// The connection for the I/O thread (HTTP/1.1).
    pub fn into_conn(self) -> Conn {
        let transport = Transport::new_tls(self.tcp, self.session);
        let mut conn = Conn::with(transport, self.origin, self.buf);
        conn.accepted_at = self.accepted_at;
        conn.tls = Some(self.facts);
        conn
    }
}

impl Handshake {
    pub fn new(
        tcp: TcpStream,
        tls: rustls::ServerConnection,
        origin: Origin,
        accepted_at: Option<Instant>,
        deadline: Instant,
    ) -> Handshake {
        Handshake {
            tcp,
            tls,
            origin,
            accepted_at,
            deadline,
            client_done: false,
            ready: Ready {
                read: true,
                write: true,
            },
        }
    }

    /// An event: the socket may read or write again.
    pub fn ready(&mut self, read: bool, write: bool) {
        self.ready.read |= read;
        self.ready.write |= write;
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn deregister(&self, registry: &mio::Registry) {
        let _ = registry.deregister(&mut mio::unix::SourceFd(&self.tcp.as_raw_fd()));
    }

    /// Whether the handshake is to be dropped at `now`: past its deadline,
    /// or the worker stops.
    pub fn expired(&self, now: Instant, stopping: bool) -> bool {
        stopping || now > self.deadline
    }

    /// Moves whatever can move.
    pub fn pump(&mut self) -> Pumped {
        loop {
            let mut moved = false;
            // The client's bytes into rustls.
            if !self.client_done && self.ready.read {
                let mut probe = ShortRead::new(&mut self.tcp);
                let read = self.tls.read_tls(&mut probe);
                if probe.drained {
                    self.ready.read = false;
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
                    Err(e) if retry(&e) => self.ready.read = false,
                    Err(e) => return Pumped::Done(Some(format!("read: {e}"))),
                }
            }
            if !self.tls.is_handshaking() {
                return Pumped::Established;
            }
            if self.client_done {
                return Pumped::Done(None);
            }
            // rustls's records to the client.
            while self.tls.wants_write() && self.ready.write {
                match self.tls.write_tls(&mut self.tcp) {
                    Ok(0) => break,
                    Ok(_) => moved = true,
                    Err(e) if retry(&e) => {
                        self.ready.write = false;
                        break;
                    }
                    Err(e) => return Pumped::Done(Some(format!("write: {e}"))),
                }
            }
            if !moved {
                return Pumped::Open;
            }
        }
    }

    /// The handshake is done: the connection with its session, what rustls
    /// has to send sent as far as the socket takes it (the rest goes first
    /// with the next write), and the plaintext that came with the
    /// handshake's end. The caller has deregistered the socket from this
    /// thread's poll.
    pub fn established(mut self) -> Established {
        let _ = crate::transport::flush(&mut self.tls, self.tcp.as_fd());
        let mut buf = Vec::new();
        // The end of the stream, if it came too, is rustls's to tell again.
        let _ = crate::transport::take_plaintext(&mut self.tls, &mut buf);
        let facts = Arc::new(Facts::of(&self.tls));
        let h2 = self.tls.alpn_protocol() == Some(b"h2");
        Established {
            tcp: self.tcp,
            session: Box::new(self.tls),
            buf,
            origin: self.origin,
            accepted_at: self.accepted_at,
            facts,
            h2,
        }
    }
}

/// Whether a read of `n` bytes into room for `asked` emptied the socket.
///
/// A stream socket's read returns less than asked only when nothing more
/// was there, and with edge-triggered readiness anything arriving later is
/// a new event: the read that would only say `WouldBlock` is not made.
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
    use std::io::Write;
    use std::os::fd::OwnedFd;

    #[test]
    fn a_short_read_empties_the_socket_and_a_full_one_may_not() {
        assert!(drained(100, 16384));
        assert!(!drained(16384, 16384), "more may be waiting");
        // End of stream and errors are told apart elsewhere.
        assert!(!drained(0, 16384));
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
