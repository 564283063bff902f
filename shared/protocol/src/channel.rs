//! The master/worker channel: one `SOCK_SEQPACKET` socketpair per worker.
//!
//! Every message is one datagram carrying a small tagged payload and at most
//! one file descriptor (SCM_RIGHTS). The receiver checks truncation of both
//! the payload and the control data, and receives descriptors close-on-exec.

use crate::origin::{Claim, Origin};
use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::config::MAX_HEADER_BUFFER;

/// Most bytes read past a complete request head, or past a request body,
/// in one read: a pipelined request may sit there when a connection
/// changes hands. The worker's head reads and the body blocks are no
/// larger (asserted where each is defined).
pub const MAX_READ_AHEAD: usize = 64 * 1024;

/// The most bytes a connection carries with it across the channel: a
/// partial head (at most `--header-buffer-size`), or a complete one and
/// what was read after it.
pub const MAX_BUFFERED: usize = MAX_HEADER_BUFFER + MAX_READ_AHEAD;

/// An encoded address: family, 16 octets, port, flow label, scope id.
const ADDR: usize = 1 + 16 + 2 + 4 + 4;

/// What a hand-off carries besides the bytes: tag, the peer's address,
/// time, and the claim (one byte, and the client's address when a
/// preamble named one).
const ENVELOPE: usize = 1 + ADDR + 8 + 1 + ADDR;

/// Largest datagram: a connection's bytes in their envelope. Derived, so
/// that no head the configuration accepts is too large to hand back; a
/// failure text is shortened to fit, and `rwsgi-conf` refuses a
/// configuration that does not.
pub const MAX_MESSAGE: usize = MAX_BUFFERED + ENVELOPE;

// A PROXY v2 preamble (16 bytes and a 16-bit length) may be all a
// connection has sent so far.
const _: () = assert!(16 + u16::MAX as usize <= MAX_BUFFERED);

/// Send buffer asked for each end (the kernel doubles it, up to twice
/// `net.core.wmem_max`): it refuses a datagram larger than the send buffer
/// (EMSGSIZE), so the largest must fit whatever the system's default. No
/// more than that: undelivered messages count against it too, and a full
/// channel is how the master sees that a worker takes no more connections.
const SEND_BUFFER: usize = MAX_MESSAGE + 4096;

/// Instructions from the master to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop taking connections, finish in-flight requests, hand back idle ones, exit.
    GracefulStop,
    /// The same for a worker replaced by a reload: within `--eviction-timeout`.
    Evict,
}

/// What a worker tells the master (worker → master). Liveness is not an
/// event: it is read from the scoreboard's heartbeats, because a stuck
/// worker cannot send anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The application is loaded; the worker takes connections.
    Ready,
    /// A loaded module's file changed (`--reload-on-changes`): reload.
    ReloadRequested,
    /// The worker cannot go on, and why; it exits after sending this.
    Failed(String),
    /// A worker forked from the template for `slot` runs as `pid` (sent by
    /// that worker over the template's channel, as the answer to `Fork`).
    Forked { slot: u16, pid: u32 },
}

/// One message on the channel. `Handoff` and `HandBack` travel with a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Master → worker, first message: the serialized `ServerConfig`.
    Config(Vec<u8>),
    /// Master → worker: a client connection and any bytes already read from it.
    Handoff {
        /// The TCP peer and, once a worker read one, what its PROXY
        /// preamble claimed (a hand-back handed on).
        origin: Origin,
        accepted_at_us: u64,
        buffered: Vec<u8>,
    },
    /// Master → worker.
    Control(Control),
    /// Worker → master: a connection the worker gives up while draining.
    HandBack { origin: Origin, buffered: Vec<u8> },
    /// Worker → master.
    Event(Event),
    /// Master → template: fork a worker for `slot` of `generation`; its
    /// channel end travels with the message.
    Fork {
        slot: u16,
        generation: u32,
        /// The slot's occupancy the worker attaches to (see `scoreboard`).
        epoch: u32,
    },
}

/// A message as received, with the descriptor that came with it.
#[derive(Debug)]
pub struct Received {
    pub message: Message,
    pub fd: Option<OwnedFd>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("the channel would block")]
    WouldBlock,
    #[error("the peer closed the channel")]
    Closed,
    #[error("malformed channel message: {0}")]
    Malformed(&'static str),
    /// Refused before sending: the peer could not receive it whole.
    #[error("a {len}-byte message is larger than the channel carries ({MAX_MESSAGE} bytes)")]
    TooLarge { len: usize },
    #[error("channel I/O error: {0}")]
    Io(#[from] Errno),
}

const TAG_CONFIG: u8 = 1;
const TAG_HANDOFF: u8 = 2;
const TAG_CONTROL: u8 = 3;
const TAG_HANDBACK: u8 = 4;
const TAG_EVENT: u8 = 5;
const TAG_FORK: u8 = 6;

/// The longest start of `text` of at most `max` bytes that ends on a
/// character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Takes the next `N` bytes off the front of `bytes`.
fn take<const N: usize>(bytes: &mut &[u8], short: &'static str) -> Result<[u8; N], ChannelError> {
    let (head, rest) = bytes
        .split_first_chunk::<N>()
        .ok_or(ChannelError::Malformed(short))?;
    *bytes = rest;
    Ok(*head)
}

/// A peer address on the wire: family, 16 octets (IPv4 mapped into IPv6),
/// port, then flow label and scope id (zero for IPv4). The scope id keeps a
/// link-local peer on its interface.
fn encode_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    let (family, octets, flowinfo, scope_id) = match addr {
        SocketAddr::V4(a) => (4, a.ip().to_ipv6_mapped().octets(), 0, 0),
        SocketAddr::V6(a) => (6, a.ip().octets(), a.flowinfo(), a.scope_id()),
    };
    out.push(family);
    out.extend_from_slice(&octets);
    out.extend_from_slice(&addr.port().to_be_bytes());
    out.extend_from_slice(&flowinfo.to_be_bytes());
    out.extend_from_slice(&scope_id.to_be_bytes());
}

/// A claim is one byte (0 unread, 1 no client, 2 a client), the client's
/// address after a 2.
fn encode_claim(out: &mut Vec<u8>, claim: Claim) {
    match claim {
        Claim::Unread => out.push(0),
        Claim::NoClient => out.push(1),
        Claim::Client(addr) => {
            out.push(2);
            encode_addr(out, &addr);
        }
    }
}

fn decode_claim(bytes: &mut &[u8]) -> Result<Claim, ChannelError> {
    match take::<1>(bytes, "missing claim")? {
        [0] => Ok(Claim::Unread),
        [1] => Ok(Claim::NoClient),
        [2] => Ok(Claim::Client(decode_addr(bytes)?)),
        _ => Err(ChannelError::Malformed("a claim other than 0, 1 or 2")),
    }
}

fn decode_addr(bytes: &mut &[u8]) -> Result<SocketAddr, ChannelError> {
    const SHORT: &str = "short address";
    let [family] = take(bytes, SHORT)?;
    let ip = Ipv6Addr::from(take::<16>(bytes, SHORT)?);
    let port = u16::from_be_bytes(take(bytes, SHORT)?);
    let flowinfo = u32::from_be_bytes(take(bytes, SHORT)?);
    let scope_id = u32::from_be_bytes(take(bytes, SHORT)?);
    match family {
        4 => match ip.to_ipv4_mapped() {
            Some(v4) if (flowinfo, scope_id) == (0, 0) => Ok(SocketAddr::new(v4.into(), port)),
            _ => Err(ChannelError::Malformed("malformed IPv4 address")),
        },
        6 => Ok(SocketAddr::V6(SocketAddrV6::new(
            ip, port, flowinfo, scope_id,
        ))),
        _ => Err(ChannelError::Malformed("unknown address family")),
    }
}

impl Message {
    /// Appends the wire form of the message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Message::Config(json) => {
                out.push(TAG_CONFIG);
                out.extend_from_slice(json);
            }
            Message::Handoff {
                origin,
                accepted_at_us,
                buffered,
            } => {
                out.push(TAG_HANDOFF);
                encode_addr(out, &origin.peer());
                out.extend_from_slice(&accepted_at_us.to_le_bytes());
                encode_claim(out, origin.claim());
                out.extend_from_slice(buffered);
            }
            Message::Control(control) => {
                out.push(TAG_CONTROL);
                out.push(match control {
                    Control::GracefulStop => 1,
                    Control::Evict => 2,
                });
            }
            Message::HandBack { origin, buffered } => {
                out.push(TAG_HANDBACK);
                encode_addr(out, &origin.peer());
                encode_claim(out, origin.claim());
                out.extend_from_slice(buffered);
            }
            Message::Event(event) => {
                out.push(TAG_EVENT);
                match event {
                    Event::Ready => out.push(1),
                    Event::ReloadRequested => out.push(2),
                    Event::Failed(why) => {
                        out.push(3);
                        // A traceback can be longer than a message: its
                        // start still says why, where the whole would say nothing.
                        let room = MAX_MESSAGE - (out.len() - start);
                        out.extend_from_slice(prefix(why, room).as_bytes());
                    }
                    Event::Forked { slot, pid } => {
                        out.push(4);
                        out.extend_from_slice(&slot.to_le_bytes());
                        out.extend_from_slice(&pid.to_le_bytes());
                    }
                }
            }
            Message::Fork {
                slot,
                generation,
                epoch,
            } => {
                out.push(TAG_FORK);
                out.extend_from_slice(&slot.to_le_bytes());
                out.extend_from_slice(&generation.to_le_bytes());
                out.extend_from_slice(&epoch.to_le_bytes());
            }
        }
    }

    /// Reads a datagram's payload. Only the exact bytes `encode` writes are
    /// accepted (nothing trailing, IPv4 only in mapped form), so a framing
    /// error is refused here rather than acted on.
    pub fn decode(bytes: &[u8]) -> Result<Message, ChannelError> {
        if bytes.len() > MAX_MESSAGE {
            return Err(ChannelError::Malformed("longer than any message"));
        }
        let (&tag, mut body) = bytes
            .split_first()
            .ok_or(ChannelError::Malformed("empty message"))?;
        match tag {
            TAG_CONFIG => Ok(Message::Config(body.to_vec())),
            TAG_HANDOFF => {
                let peer = decode_addr(&mut body)?;
                let at = take(&mut body, "short handoff")?;
                let claim = decode_claim(&mut body)?;
                Ok(Message::Handoff {
                    origin: Origin::new(peer, claim),
                    accepted_at_us: u64::from_le_bytes(at),
                    buffered: body.to_vec(),
                })
            }
            TAG_CONTROL => match body {
                [1] => Ok(Message::Control(Control::GracefulStop)),
                [2] => Ok(Message::Control(Control::Evict)),
                [_] => Err(ChannelError::Malformed("unknown control")),
                _ => Err(ChannelError::Malformed("control of the wrong length")),
            },
            TAG_HANDBACK => {
                let peer = decode_addr(&mut body)?;
                let claim = decode_claim(&mut body)?;
                Ok(Message::HandBack {
                    origin: Origin::new(peer, claim),
                    buffered: body.to_vec(),
                })
            }
            TAG_EVENT => match body {
                [1] => Ok(Message::Event(Event::Ready)),
                [2] => Ok(Message::Event(Event::ReloadRequested)),
                [3, why @ ..] => std::str::from_utf8(why)
                    .map(|w| Message::Event(Event::Failed(w.to_owned())))
                    .map_err(|_| ChannelError::Malformed("event text is not UTF-8")),
                [4, s0, s1, p0, p1, p2, p3] => Ok(Message::Event(Event::Forked {
                    slot: u16::from_le_bytes([*s0, *s1]),
                    pid: u32::from_le_bytes([*p0, *p1, *p2, *p3]),
                })),
                [] => Err(ChannelError::Malformed("event without its kind")),
                [_] => Err(ChannelError::Malformed("unknown event")),
                _ => Err(ChannelError::Malformed("event of the wrong length")),
            },
            TAG_FORK => match body {
                [s0, s1, g0, g1, g2, g3, e0, e1, e2, e3] => Ok(Message::Fork {
                    slot: u16::from_le_bytes([*s0, *s1]),
                    generation: u32::from_le_bytes([*g0, *g1, *g2, *g3]),
                    epoch: u32::from_le_bytes([*e0, *e1, *e2, *e3]),
                }),
                _ => Err(ChannelError::Malformed("fork of the wrong length")),
            },
            _ => Err(ChannelError::Malformed("unknown tag")),
        }
    }

    /// Whether the message must carry a descriptor.
    pub fn carries_fd(&self) -> bool {
        matches!(
            self,
            Message::Handoff { .. } | Message::HandBack { .. } | Message::Fork { .. }
        )
    }
}

/// One end of a master/worker channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair, both ends close-on-exec and blocking.
    pub fn pair() -> Result<(Channel, Channel), ChannelError> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        for end in [&a, &b] {
            // Best effort: with less, the largest messages fail with
            // EMSGSIZE (the unit tests check that they go through).
            let _ =
                nix::sys::socket::setsockopt(end, nix::sys::socket::sockopt::SndBuf, &SEND_BUFFER);
        }
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// Another handle on the same channel (one more descriptor), for a
    /// second thread that sends: each datagram goes whole, so senders never
    /// interleave.
    pub fn try_clone(&self) -> Result<Channel, ChannelError> {
        self.fd
            .try_clone()
            .map(|fd| Channel { fd })
            .map_err(|e| ChannelError::Io(Errno::from_raw(e.raw_os_error().unwrap_or(0))))
    }

    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel { fd }
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<(), ChannelError> {
        set_nonblocking(self.fd.as_fd(), nonblocking)?;
        Ok(())
    }

    /// Sends one message, with `fd` attached when given.
    pub fn send(&self, message: &Message, fd: Option<BorrowedFd<'_>>) -> Result<(), ChannelError> {
        let mut payload = Vec::with_capacity(64);
        message.encode(&mut payload);
        if payload.len() > MAX_MESSAGE {
            return Err(ChannelError::TooLarge { len: payload.len() });
        }
        let iov = [IoSlice::new(&payload)];
        let raw: [RawFd; 1] = [fd.map(|f| f.as_raw_fd()).unwrap_or(-1)];
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage] = if fd.is_some() { &cmsg } else { &[] };
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Err(ChannelError::WouldBlock),
                Err(Errno::EPIPE) | Err(Errno::ECONNRESET) => return Err(ChannelError::Closed),
                Err(e) => return Err(ChannelError::Io(e)),
            }
        }
    }

    /// Sends like [`send`](Self::send) on a non-blocking channel, waiting up
    /// to `patience` for room while the peer has earlier messages to read
    /// (a draining worker hands back its idle connections in a burst).
    pub fn send_waiting(
        &self,
        message: &Message,
        fd: Option<BorrowedFd<'_>>,
        patience: Duration,
    ) -> Result<(), ChannelError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let deadline = Instant::now() + patience;
        loop {
            match self.send(message, fd) {
                Err(ChannelError::WouldBlock) => {}
                other => return other,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ChannelError::WouldBlock);
            }
            // Rounded up: a wait of zero would spin until the deadline.
            let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            let wait = PollTimeout::try_from(ms.saturating_add(1)).unwrap_or(PollTimeout::MAX);
            match poll(
                &mut [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)],
                wait,
            ) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(ChannelError::Io(e)),
            }
        }
    }

    /// Receives one message. `buf` is scratch space reused between calls.
    pub fn recv(&self, buf: &mut Vec<u8>) -> Result<Received, ChannelError> {
        buf.resize(MAX_MESSAGE + 1, 0);
        let mut cmsg_space = nix::cmsg_space!([RawFd; 1]);
        let (len, fd, flags) = loop {
            let mut iov = [IoSliceMut::new(buf.as_mut_slice())];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    // A control-data truncation means a descriptor was dropped: refuse.
                    let cmsgs = msg
                        .cmsgs()
                        .map_err(|_| ChannelError::Malformed("truncated fds"))?;
                    for cmsg in cmsgs {
                        if let ControlMessageOwned::ScmRights(fds) = cmsg {
                            for raw in fds {
                                // SAFETY: the kernel just installed `raw` in our table for us alone.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                if fd.is_none() {
                                    fd = Some(owned);
                                }
                            }
                        }
                    }
                    break (msg.bytes, fd, msg.flags);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Err(ChannelError::WouldBlock),
                Err(Errno::ECONNRESET) => return Err(ChannelError::Closed),
                Err(e) => return Err(ChannelError::Io(e)),
            }
        };
        if len == 0 {
            return Err(ChannelError::Closed);
        }
        if flags.contains(MsgFlags::MSG_TRUNC) || len > MAX_MESSAGE {
            return Err(ChannelError::Malformed("truncated message"));
        }
        let message = Message::decode(&buf[..len])?;
        if message.carries_fd() && fd.is_none() {
            return Err(ChannelError::Malformed("handoff without a descriptor"));
        }
        Ok(Received { message, fd })
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Sets or clears `O_NONBLOCK` on a descriptor.
pub fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> Result<(), Errno> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    let wanted = if nonblocking {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    if wanted != flags {
        fcntl(fd, FcntlArg::F_SETFL(wanted))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn handoff_carries_the_socket_and_the_bytes() {
        let (master, worker) = Channel::pair().expect("pair");
        let (mut ours, theirs) = UnixStream::pair().expect("stream pair");
        let peer: SocketAddr = "192.0.2.7:4711".parse().expect("addr");
        let msg = Message::Handoff {
            origin: Origin::accepted(peer),
            accepted_at_us: 42,
            buffered: b"GET / HTTP/1.1\r\n".to_vec(),
        };
        master.send(&msg, Some(theirs.as_fd())).expect("send");
        drop(theirs);
        let mut buf = Vec::new();
        let got = worker.recv(&mut buf).expect("recv");
        assert_eq!(got.message, msg);
        let fd = got.fd.expect("fd");
        let mut passed = UnixStream::from(fd);
        passed.write_all(b"ping").expect("write");
        let mut four = [0u8; 4];
        ours.read_exact(&mut four).expect("read");
        assert_eq!(&four, b"ping");
    }

    #[test]
    fn control_and_config_round_trip_and_eof_is_closed() {
        let (master, worker) = Channel::pair().expect("pair");
        master
            .send(&Message::Config(b"{}".to_vec()), None)
            .expect("send");
        master
            .send(&Message::Event(Event::Ready), None)
            .expect("send");
        let mut buf = Vec::new();
        assert_eq!(
            worker.recv(&mut buf).expect("recv").message,
            Message::Config(b"{}".to_vec())
        );
        assert_eq!(
            worker.recv(&mut buf).expect("recv").message,
            Message::Event(Event::Ready)
        );
        drop(master);
        assert!(matches!(worker.recv(&mut buf), Err(ChannelError::Closed)));
    }

    #[test]
    fn nonblocking_empty_channel_would_block() {
        let (_master, worker) = Channel::pair().expect("pair");
        worker.set_nonblocking(true).expect("nonblocking");
        let mut buf = Vec::new();
        assert!(matches!(
            worker.recv(&mut buf),
            Err(ChannelError::WouldBlock)
        ));
    }

    #[test]
    fn ipv6_peer_round_trips() {
        let peer: SocketAddr = "[2001:db8::1]:80".parse().expect("addr");
        for claim in [
            Claim::NoClient,
            Claim::Client("192.0.2.9:1234".parse().expect("addr")),
            Claim::Client("[2001:db8::9]:1234".parse().expect("addr")),
        ] {
            let msg = Message::HandBack {
                origin: Origin::new(peer, claim),
                buffered: vec![1, 2, 3],
            };
            let mut out = Vec::new();
            msg.encode(&mut out);
            // The peer and the claim stay two addresses on the way.
            assert_eq!(Message::decode(&out).expect("decode"), msg);
        }
    }

    /// The largest connection the configuration allows goes through the
    /// kernel whole, both ways, and one byte more is refused before sending.
    #[test]
    fn the_largest_buffered_connection_fits_a_message() {
        let (master, worker) = Channel::pair().expect("pair");
        let (_ours, theirs) = UnixStream::pair().expect("stream pair");
        let peer = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().expect("ip"), 1, 2, 3));
        let origin = Origin::new(peer, Claim::Client(peer));
        let back = Message::HandBack {
            origin,
            buffered: vec![b'h'; MAX_BUFFERED],
        };
        let off = Message::Handoff {
            origin,
            accepted_at_us: 7,
            buffered: vec![b'o'; MAX_BUFFERED],
        };
        let mut wire = Vec::new();
        off.encode(&mut wire);
        assert_eq!(
            wire.len(),
            MAX_MESSAGE,
            "the envelope is what encode writes"
        );
        let mut buf = Vec::new();
        worker.send(&back, Some(theirs.as_fd())).expect("hand back");
        assert_eq!(master.recv(&mut buf).expect("recv").message, back);
        master.send(&off, Some(theirs.as_fd())).expect("hand off");
        assert_eq!(worker.recv(&mut buf).expect("recv").message, off);

        let too_large = Message::Handoff {
            origin,
            accepted_at_us: 7,
            buffered: vec![0; MAX_BUFFERED + 1],
        };
        assert!(matches!(
            master.send(&too_large, Some(theirs.as_fd())),
            Err(ChannelError::TooLarge { len }) if len == MAX_MESSAGE + 1
        ));
    }

    #[test]
    fn a_failure_text_too_long_for_a_message_keeps_its_start() {
        let (master, worker) = Channel::pair().expect("pair");
        let why = format!("ImportError: {}", "é".repeat(MAX_MESSAGE));
        worker
            .send(&Message::Event(Event::Failed(why.clone())), None)
            .expect("send");
        let mut buf = Vec::new();
        let Message::Event(Event::Failed(got)) = master.recv(&mut buf).expect("recv").message
        else {
            panic!("not a failure");
        };
        assert!(
            why.starts_with(&got) && got.len() > MAX_MESSAGE - 4,
            "{}",
            got.len()
        );
    }

    #[test]
    fn send_waiting_waits_for_the_peer_to_make_room() {
        let (master, worker) = Channel::pair().expect("pair");
        worker.set_nonblocking(true).expect("nonblocking");
        let (_ours, theirs) = UnixStream::pair().expect("stream pair");
        let msg = Message::HandBack {
            origin: Origin::new("192.0.2.7:4711".parse().expect("addr"), Claim::NoClient),
            buffered: vec![b'x'; MAX_BUFFERED],
        };
        let mut sent = 0;
        while sent < 1000 {
            match worker.send(&msg, Some(theirs.as_fd())) {
                Ok(()) => sent += 1,
                Err(ChannelError::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        assert!(
            (1..1000).contains(&sent),
            "{sent} sent before the buffer was full"
        );
        assert!(matches!(
            worker.send_waiting(&msg, Some(theirs.as_fd()), Duration::from_millis(20)),
            Err(ChannelError::WouldBlock)
        ));
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            (0..=sent)
                .map(|_| master.recv(&mut buf).map(|r| r.message))
                .all(|m| m.is_ok())
        });
        worker
            .send_waiting(&msg, Some(theirs.as_fd()), Duration::from_secs(30))
            .expect("sent once there was room");
        assert!(reader.join().expect("reader"));
    }

    /// Found by `fuzz/fuzz_targets/channel.rs`: the flow label and scope id of
    /// an IPv6 peer were dropped on the way, so a link-local peer lost its interface.
    #[test]
    fn ipv6_flow_label_and_scope_round_trip() {
        let peer = SocketAddr::V6(SocketAddrV6::new(
            "fe80::1".parse().expect("ip"),
            8080,
            7,
            3,
        ));
        let msg = Message::Handoff {
            origin: Origin::new(peer, Claim::NoClient),
            accepted_at_us: 1,
            buffered: Vec::new(),
        };
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(Message::decode(&out).expect("decode"), msg);
    }

    /// Found by `fuzz/fuzz_targets/channel.rs`: bytes after a control and an
    /// IPv4 address that is not IPv4-mapped were accepted (the latter as
    /// 0.0.0.0), so a framing error passed as a message.
    #[test]
    fn only_the_wire_form_decodes() {
        let wire = |m: &Message| {
            let mut out = Vec::new();
            m.encode(&mut out);
            out
        };
        let refused =
            |bytes: &[u8]| matches!(Message::decode(bytes), Err(ChannelError::Malformed(_)));

        for c in [Control::GracefulStop, Control::Evict] {
            let m = Message::Control(c);
            assert_eq!(Message::decode(&wire(&m)).expect("decode"), m);
        }
        let mut control = wire(&Message::Control(Control::GracefulStop));
        control.push(0);
        assert!(refused(&control), "trailing byte after a control");
        assert!(refused(&[TAG_CONTROL]), "control without its byte");

        let v4 = Message::HandBack {
            origin: Origin::new("192.0.2.7:4711".parse().expect("addr"), Claim::NoClient),
            buffered: Vec::new(),
        };
        let good = wire(&v4);
        assert_eq!(Message::decode(&good).expect("decode"), v4);
        let mut unmapped = good.clone();
        unmapped[1] = 0x20; // 2000::/16, not ::ffff:0:0/96
        assert!(refused(&unmapped), "IPv4 family with an unmapped address");
        // The address, then the one-byte flag (no buffered bytes here).
        let flag = good.len() - 1;
        let mut scoped = good.clone();
        scoped[flag - 1] = 1;
        assert!(refused(&scoped), "IPv4 family with a scope id");
        let mut flagged = good.clone();
        flagged[flag] = 3;
        assert!(refused(&flagged), "a claim other than 0, 1 or 2");
        flagged[flag] = 2;
        assert!(refused(&flagged), "a client claimed without its address");
        assert!(refused(&good[..flag]), "no flag");
        assert!(refused(&good[..flag - 1]), "short address");

        let fork = Message::Fork {
            slot: 3,
            generation: 70_000,
            epoch: 4_000_000_000,
        };
        assert_eq!(Message::decode(&wire(&fork)).expect("decode"), fork);
        let mut long = wire(&fork);
        long.push(0);
        assert!(refused(&long), "trailing byte after a fork");
        let forked = Message::Event(Event::Forked {
            slot: 9,
            pid: 4_000_000,
        });
        let good = wire(&forked);
        assert_eq!(Message::decode(&good).expect("decode"), forked);
        assert!(refused(&good[..good.len() - 1]), "short forked event");

        let mut long = wire(&Message::Event(Event::Failed("x".repeat(MAX_MESSAGE - 2))));
        assert_eq!(long.len(), MAX_MESSAGE);
        assert!(Message::decode(&long).is_ok());
        long.push(b'x');
        assert!(refused(&long), "longer than a message");
    }
}
