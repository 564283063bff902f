//! The admin listener (`--admin-port`): `/healthz`, `/readyz`, `/metrics`
//! and `/server-status`, answered in the master's own event loop from the
//! scoreboard (this module speaks the HTTP; `observe` composes the
//! answers). No worker and no Python is involved, so the answers come
//! even when every request thread is busy or a worker is stuck.
//!
//! Deliberately small HTTP: one GET or HEAD per connection, a head of at
//! most 8 KiB within `HEAD_DEADLINE`, `Connection: close`. Probes and
//! scrapers need no more, and the loop never waits on a client.
//!
//! A kubelet restarts the pod when `/healthz` goes unanswered, so no crowd
//! of clients may keep a probe from its answer: a connection is read the
//! moment it is accepted (a probe's head is usually there already), one
//! the peer closed is freed at once, a head gets a short deadline, and a
//! full table makes room by dropping its oldest unanswered connection
//! rather than the newcomer.

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use rwsgi_http::{parse_request_head, reason_phrase, Parsed};
use rwsgi_shared::config::Limits;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Tokens of admin connections start here (below are the listeners and channels).
pub const CONN_BASE: usize = 1 << 20;
/// Connections served at once. Probes and a scraper or two need a handful;
/// beyond that the table only bounds what a flood costs (fds, buffers).
const MAX_CONNS: usize = 128;
const MAX_HEAD: usize = 8 * 1024;
/// A probe sends its head with its connect; a kubelet gives up after 1 s
/// by default. Longer only holds a place for a slow or idle client.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(2);
/// For a client to take its answer (a large `/metrics` to a slow reader).
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(5);
/// Connections the kernel queues before the loop accepts them. Generous:
/// a flood that overflows the queue makes the kernel drop a probe's
/// handshake, and its retransmission comes a second later.
const BACKLOG: i32 = 1024;

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    pub query: String,
    /// The `Accept` header, for content negotiation ("" when absent).
    pub accept: String,
    /// Who asked: what they may see depends on it (`may_see_requests`).
    pub peer: SocketAddr,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Where a connection is in its one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the request head.
    Head,
    /// Writing the answer.
    Answer,
}

/// When a connection that entered `stage` at `since` is given up.
pub fn deadline(stage: Stage, since: Instant) -> Instant {
    since
        + match stage {
            Stage::Head => HEAD_DEADLINE,
            Stage::Answer => ANSWER_DEADLINE,
        }
}

/// Which connection gives its place to a newcomer when the table is full:
/// the oldest still sending its head (a slow or idle client: a probe's head
/// comes at once), else the oldest still taking its answer. Never the
/// newcomer: dropping it is what lets a flood starve a probe.
pub fn victim(conns: impl IntoIterator<Item = (usize, Stage, Instant)>) -> Option<usize> {
    conns
        .into_iter()
        .min_by_key(|&(_, stage, since)| (stage != Stage::Head, since))
        .map(|(index, _, _)| index)
}

/// Whether a client may see what the running requests are (their paths
/// can carry secrets, e.g. `/password-reset/TOKEN`): one on this host, or
/// anyone with `--admin-status-public`. Everything else on the admin port
/// (health, readiness, counts, PIDs) is for whoever reaches it, as
/// Apache's mod_status without ExtendedStatus. An IPv4 client of a
/// dual-stack listener shows as `::ffff:127.0.0.1`: that is loopback too.
pub fn may_see_requests(peer: IpAddr, status_public: bool) -> bool {
    status_public || peer.to_canonical().is_loopback()
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    stage: Stage,
    /// When the connection entered its stage.
    since: Instant,
}

/// What a turn did to a connection.
#[derive(Debug, PartialEq, Eq)]
enum Turn {
    /// It waits for more bytes, or for room to write.
    Waiting,
    /// Answered, or the peer is gone: close it.
    Finished,
}

pub struct Admin {
    listener: TcpListener,
    token: Token,
    conns: Vec<Option<Conn>>,
}

impl Admin {
    /// Binds the admin listener and registers it under `token`.
    pub fn bind(
        host: &str,
        port: u16,
        registry: &Registry,
        token: Token,
    ) -> Result<(Admin, SocketAddr), crate::listener::BindError> {
        let mut listener = crate::listener::bind(host, port, BACKLOG, Default::default())?;
        let addr = listener
            .local_addr()
            .map_err(|e| crate::listener::BindError::Other(([0, 0, 0, 0], port).into(), e))?;
        registry
            .register(&mut listener, token, Interest::READABLE)
            .map_err(|e| crate::listener::BindError::Other(addr, e))?;
        Ok((
            Admin {
                listener,
                token,
                conns: Vec::new(),
            },
            addr,
        ))
    }

    /// Whether an event's token is the admin listener's or one of its connections'.
    pub fn owns(&self, token: Token) -> bool {
        token == self.token || token.0 >= CONN_BASE
    }

    /// Handles an event: accepts, reads, answers, writes.
    pub fn ready(
        &mut self,
        token: Token,
        registry: &Registry,
        answer: &mut dyn FnMut(&Request) -> Reply,
    ) {
        if token == self.token {
            self.accept(registry, answer);
            return;
        }
        self.take_turn(token.0 - CONN_BASE, registry, answer);
    }

    fn take_turn(
        &mut self,
        index: usize,
        registry: &Registry,
        answer: &mut dyn FnMut(&Request) -> Reply,
    ) {
        let Some(Some(conn)) = self.conns.get_mut(index) else {
            return;
        };
        if advance(conn, answer) == Turn::Finished {
            self.close(index, registry);
        }
    }

    fn accept(&mut self, registry: &Registry, answer: &mut dyn FnMut(&Request) -> Reply) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    let index = self.place(registry);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if registry
                        .register(&mut stream, Token(CONN_BASE + index), interest)
                        .is_err()
                    {
                        continue;
                    }
                    self.conns[index] = Some(Conn {
                        stream,
                        peer,
                        buf: Vec::new(),
                        out: Vec::new(),
                        sent: 0,
                        stage: Stage::Head,
                        since: Instant::now(),
                    });
                    // Its head (or its close) is often here already: answer
                    // (or free) it now rather than hold a place for it.
                    self.take_turn(index, registry, answer);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // WouldBlock, or a descriptor shortage: try again at the next event.
                Err(_) => return,
            }
        }
    }

    /// A free place in the table, made by closing the `victim` when it is full.
    fn place(&mut self, registry: &Registry) -> usize {
        if let Some(i) = self.conns.iter().position(Option::is_none) {
            return i;
        }
        if self.conns.len() < MAX_CONNS {
            self.conns.push(None);
            return self.conns.len() - 1;
        }
        let taken = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c.stage, c.since)));
        // The table is full, so there is always a victim.
        let index = victim(taken).unwrap_or(0);
        self.close(index, registry);
        index
    }

    /// Closes connections past their deadline.
    pub fn sweep(&mut self, registry: &Registry) {
        let now = Instant::now();
        for index in 0..self.conns.len() {
            if self.conns[index]
                .as_ref()
                .is_some_and(|c| now > deadline(c.stage, c.since))
            {
                self.close(index, registry);
            }
        }
    }

    fn close(&mut self, index: usize, registry: &Registry) {
        if let Some(mut conn) = self.conns.get_mut(index).and_then(Option::take) {
            let _ = registry.deregister(&mut conn.stream);
            let _ = conn.stream.shutdown(std::net::Shutdown::Write);
        }
    }
}

/// Reads the head and prepares the answer, then writes what it can.
fn advance(conn: &mut Conn, answer: &mut dyn FnMut(&Request) -> Reply) -> Turn {
    if conn.stage == Stage::Head {
        match read_head(conn, answer) {
            Head::Incomplete => return Turn::Waiting,
            Head::Abandoned => return Turn::Finished,
            Head::Answered => {
                conn.stage = Stage::Answer;
                conn.since = Instant::now();
            }
        }
    }
    if flush(conn) {
        Turn::Finished
    } else {
        Turn::Waiting
    }
}

/// What reading a head came to.
enum Head {
    /// More is needed.
    Incomplete,
    /// The peer closed (or reset) before its head was complete: nobody is
    /// left to answer.
    Abandoned,
    /// The answer is in `out`.
    Answered,
}

/// Reads what has arrived; once the head is complete, prepares the answer.
fn read_head(conn: &mut Conn, answer: &mut dyn FnMut(&Request) -> Reply) -> Head {
    let mut chunk = [0u8; 2048];
    let mut gone = false;
    loop {
        match conn.stream.read(&mut chunk) {
            Ok(0) => {
                gone = true;
                break;
            }
            Ok(n) => {
                conn.buf.extend_from_slice(&chunk[..n]);
                if conn.buf.len() > MAX_HEAD {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                gone = true;
                break;
            }
        }
    }
    let limits = Limits {
        header_buffer: MAX_HEAD,
        ..Limits::default()
    };
    let (reply, head_only) = match parse_request_head(&conn.buf, &limits) {
        Ok(Parsed::Partial) if gone => return Head::Abandoned,
        Ok(Parsed::Partial) if conn.buf.len() <= MAX_HEAD => return Head::Incomplete,
        Ok(Parsed::Partial) => (Reply::text(431, "request head too large\n"), false),
        Err(e) => (Reply::text(e.status, format!("{}\n", e.reason)), false),
        Ok(Parsed::Complete(head, _)) => match head.method.as_str() {
            "GET" | "HEAD" => (
                answer(&Request {
                    path: head.path.clone(),
                    query: head.query.clone(),
                    accept: head
                        .header("accept")
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .unwrap_or_default(),
                    peer: conn.peer,
                }),
                head.method == "HEAD",
            ),
            _ => (Reply::text(405, "only GET and HEAD\n"), false),
        },
    };
    conn.out = render(&reply, head_only);
    Head::Answered
}

fn render(reply: &Reply, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        reply.status,
        reason_phrase(reply.status),
        reply.content_type,
        reply.body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(reply.body.as_bytes());
    }
    out
}

/// Writes what it can; true once everything is sent (or the client is gone).
fn flush(conn: &mut Conn) -> bool {
    while conn.sent < conn.out.len() {
        match conn.stream.write(&conn.out[conn.sent..]) {
            Ok(0) => return true,
            Ok(n) => conn.sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_gives_up_its_oldest_head_before_any_answer() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let conns = [
            (0, Stage::Answer, at(0)),
            (1, Stage::Head, at(30)),
            (2, Stage::Head, at(10)),
            (3, Stage::Answer, at(5)),
        ];
        assert_eq!(victim(conns), Some(2));
        // Only answers left: the oldest of them.
        assert_eq!(
            victim([(4, Stage::Answer, at(9)), (5, Stage::Answer, at(3))]),
            Some(5)
        );
        assert_eq!(victim([]), None);
    }

    #[test]
    fn a_head_has_a_shorter_deadline_than_an_answer() {
        let t0 = Instant::now();
        assert_eq!(deadline(Stage::Head, t0), t0 + HEAD_DEADLINE);
        assert_eq!(deadline(Stage::Answer, t0), t0 + ANSWER_DEADLINE);
        assert!(HEAD_DEADLINE <= Duration::from_secs(2));
    }

    #[test]
    fn only_this_host_sees_the_running_requests_unless_made_public() {
        let seen = |addr: &str, public| may_see_requests(addr.parse().expect("address"), public);
        for local in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert!(seen(local, false), "{local}");
        }
        for stranger in ["10.1.2.3", "192.0.2.2", "fd00::2", "::ffff:10.1.2.3"] {
            assert!(!seen(stranger, false), "{stranger}");
            assert!(seen(stranger, true), "{stranger}");
        }
    }
}
