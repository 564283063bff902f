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

/// Largest datagram: a request head that was already read plus framing.
pub const MAX_MESSAGE: usize = 128 * 1024;

/// Instructions from the master to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop taking connections, finish in-flight requests, hand back idle ones, exit.
    GracefulStop,
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
    Fork { slot: u16, generation: u32 },
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
    #[error("channel I/O error: {0}")]
    Io(#[from] Errno),
}

const TAG_CONFIG: u8 = 1;
const TAG_HANDOFF: u8 = 2;
const TAG_CONTROL: u8 = 3;
const TAG_HANDBACK: u8 = 4;
const TAG_EVENT: u8 = 5;
const TAG_FORK: u8 = 6;

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
                        out.extend_from_slice(why.as_bytes());
                    }
                    Event::Forked { slot, pid } => {
                        out.push(4);
                        out.extend_from_slice(&slot.to_le_bytes());
                        out.extend_from_slice(&pid.to_le_bytes());
                    }
                }
            }
            Message::Fork { slot, generation } => {
                out.push(TAG_FORK);
                out.extend_from_slice(&slot.to_le_bytes());
                out.extend_from_slice(&generation.to_le_bytes());
            }
        }
    }

    /// Reads a datagram's payload. Only the exact bytes `encode` writes are
    /// accepted (nothing trailing, IPv4 only in mapped form), so a framing
    /// error is refused here rather than acted on.
    pub fn decode(bytes: &[u8]) -> Result<Message, ChannelError> {
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
                [s0, s1, g0, g1, g2, g3] => Ok(Message::Fork {
                    slot: u16::from_le_bytes([*s0, *s1]),
                    generation: u32::from_le_bytes([*g0, *g1, *g2, *g3]),
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
            return Err(ChannelError::Malformed("message too large"));
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
    }
}
