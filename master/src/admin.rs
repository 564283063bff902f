//! The admin listener (`--admin-port`): `/healthz`, `/readyz`, `/metrics`
//! and `/server-status`, answered by the master's own event loop from the
//! scoreboard. No worker and no Python is involved, so the answers come
//! even when every request thread is busy or a worker is stuck.
//!
//! Deliberately small HTTP: one GET or HEAD per connection, a head of at
//! most 8 KiB within 5 s, `Connection: close`. Probes and scrapers need no
//! more, and the loop never waits on a client.

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use rwsgi_shared::config::Limits;
use rwsgi_shared::http::{parse_request_head, reason_phrase, Parsed};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Tokens of admin connections start here (below are the listeners and channels).
pub const CONN_BASE: usize = 1 << 20;
const MAX_CONNS: usize = 64;
const MAX_HEAD: usize = 8 * 1024;
const DEADLINE: Duration = Duration::from_secs(5);

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    pub query: String,
    /// The `Accept` header, for content negotiation ("" when absent).
    pub accept: String,
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

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    deadline: Instant,
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
        let mut listener = crate::listener::bind(host, port, 64)?;
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
            self.accept(registry);
            return;
        }
        let index = token.0 - CONN_BASE;
        let Some(Some(conn)) = self.conns.get_mut(index) else {
            return;
        };
        if conn.out.is_empty() && !read_head(conn, answer) {
            return;
        }
        if !conn.out.is_empty() && flush(conn) {
            self.close(index, registry);
        }
    }

    fn accept(&mut self, registry: &Registry) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let index = match self.conns.iter().position(Option::is_none) {
                        Some(i) => i,
                        None if self.conns.len() < MAX_CONNS => {
                            self.conns.push(None);
                            self.conns.len() - 1
                        }
                        // Too many at once: this one is dropped (closed).
                        None => continue,
                    };
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if registry
                        .register(&mut stream, Token(CONN_BASE + index), interest)
                        .is_err()
                    {
                        continue;
                    }
                    self.conns[index] = Some(Conn {
                        stream,
                        buf: Vec::new(),
                        out: Vec::new(),
                        sent: 0,
                        deadline: Instant::now() + DEADLINE,
                    });
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // WouldBlock, or a descriptor shortage: try again at the next event.
                Err(_) => return,
            }
        }
    }

    /// Closes connections past their deadline.
    pub fn sweep(&mut self, registry: &Registry) {
        let now = Instant::now();
        for index in 0..self.conns.len() {
            if self.conns[index].as_ref().is_some_and(|c| now > c.deadline) {
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

/// Reads what has arrived; once the head is complete, prepares the answer.
/// False while more is needed.
fn read_head(conn: &mut Conn, answer: &mut dyn FnMut(&Request) -> Reply) -> bool {
    let mut chunk = [0u8; 2048];
    loop {
        match conn.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                conn.buf.extend_from_slice(&chunk[..n]);
                if conn.buf.len() > MAX_HEAD {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let limits = Limits {
        header_buffer: MAX_HEAD,
        ..Limits::default()
    };
    let (reply, head_only) = match parse_request_head(&conn.buf, &limits) {
        Ok(Parsed::Partial) if conn.buf.len() <= MAX_HEAD => return false,
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
                }),
                head.method == "HEAD",
            ),
            _ => (Reply::text(405, "only GET and HEAD\n"), false),
        },
    };
    conn.out = render(&reply, head_only);
    true
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
