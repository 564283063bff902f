//! One proxied request, on its own thread: connect to the backend, send
//! the head, stream the client's body to it as it arrives, read the
//! response head, stream the response to the client as it arrives.
//!
//! Both directions go through one buffer of at most `PIECE` bytes, written
//! out before the next read: a slow side slows the other (backpressure),
//! memory stays bounded. The client's socket stays non-blocking (the I/O
//! thread's setting, shared by the descriptor) and is waited on with
//! `--socket-timeout`; the backend's is blocking, each wait bounded by
//! `--proxy-timeout`. A body the backend cuts short is never framed as
//! complete: the client's connection is closed instead.

use super::ProxyPass;
use crate::conn::Conn;
use crate::handoff::Returned;
use rwsgi_http::access_log::Record;
use rwsgi_http::proxy_pass::{
    client_framing, failure_status, forwarded_port, request_head, response_body, response_head,
    ClientFraming, Failure, Forwarded, RequestFraming, ResponseBody, Route, Target,
};
use rwsgi_http::{
    error_response, BodyError, BodyKind, BodyReader, BodySource, ChunkedDecoder, DateCache,
    RequestHead,
};
use slog::{debug, info};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Most bytes read from one side before they are written to the other.
const PIECE: usize = 64 * 1024;
/// Largest backend response head (Apache's default field limits allow ~800 KiB;
/// a head this size is already a broken backend).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most fields in a backend response head (Apache's LimitRequestFields).
const MAX_FIELDS: usize = 100;

/// How the client connection ends.
enum End {
    /// The response was complete and so was the request: next request.
    KeepAlive,
    /// Closed gracefully (the I/O thread half-closes and drains).
    Close,
    /// Closed at once: the client left, or the backend broke off mid-body.
    Abort,
}

/// What the access log says of the exchange.
struct Outcome {
    end: End,
    status: u16,
    bytes: u64,
}

pub(super) fn run(
    p: &ProxyPass,
    token: usize,
    mut conn: Conn,
    head: RequestHead,
    target: Target,
) -> Returned {
    let started = Instant::now();
    let outcome = match target {
        Target::Redirect(to) => redirect(p, &mut conn, &head, &to),
        Target::Forward { route, target } => Exchange {
            p,
            conn: &mut conn,
            head: &head,
            route: &route,
        }
        .relay(&target),
    };
    if let Some(access) = &p.access {
        let id = crate::request_id::of(head.header("x-request-id"));
        access.write(
            &p.log,
            &Record {
                client: conn.origin.client().ip(),
                http2: conn.http2.is_some(),
                head: &head,
                status: outcome.status,
                bytes: outcome.bytes,
                took: started.elapsed(),
                queue_wait: None,
                request_id: id.as_str(),
                response_headers: &[],
            },
        );
    }
    finish(token, conn, outcome.end)
}

/// Answers `status` without a backend (too many requests in flight).
pub(super) fn refuse(p: &ProxyPass, token: usize, mut conn: Conn, status: u16) -> Returned {
    let end = error(p, &mut conn, status);
    finish(token, conn, end)
}

fn finish(token: usize, mut conn: Conn, end: End) -> Returned {
    match end {
        End::KeepAlive => {
            conn.served += 1;
            conn.since = Instant::now();
            Returned::Idle(token, conn)
        }
        End::Close => Returned::Close(token, conn),
        End::Abort => {
            drop(conn);
            Returned::Closed(token)
        }
    }
}

fn socket_timeout(p: &ProxyPass) -> Duration {
    Duration::from_millis(p.config.timeouts.socket_ms)
}

/// Writes to the client; any failure ends the exchange (nobody to answer).
fn send(p: &ProxyPass, conn: &mut Conn, parts: &[&[u8]]) -> Result<(), End> {
    conn.transport
        .write_all(parts, socket_timeout(p))
        .map_err(|_| End::Abort)
}

/// An error page, then the connection closes (the request's body, if
/// any, was not read).
fn error(p: &ProxyPass, conn: &mut Conn, status: u16) -> End {
    let mut dates = DateCache::default();
    let page = error_response(status, dates.now(), false);
    match send(p, conn, &[&page]) {
        Ok(()) => End::Close,
        Err(end) => end,
    }
}

/// The mount point without its slash: 302 to the slash form, as
/// mod_wsgi-express's rewrite rule does (`http://%{HTTP_HOST}...`).
fn redirect(p: &ProxyPass, conn: &mut Conn, head: &RequestHead, to: &str) -> Outcome {
    let site = site(p, conn, head);
    let location = format!("http://{site}{to}");
    let body = format!(
        "<!DOCTYPE html>\n<title>302 Found</title>\n<p>The document has moved <a href=\"{}\">here</a>.</p>\n",
        location.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;")
    );
    let mut dates = DateCache::default();
    let out = rwsgi_http::closing_response(
        302,
        dates.now(),
        &format!("Location: {location}\r\n"),
        "text/html; charset=utf-8",
        body.as_bytes(),
        head.method != "HEAD",
    );
    let end = match send(p, conn, &[&out]) {
        Ok(()) => End::Close,
        Err(end) => end,
    };
    Outcome {
        end,
        status: 302,
        bytes: if head.method == "HEAD" {
            0
        } else {
            body.len() as u64
        },
    }
}

/// This site as the client named it: its Host, else our name and port.
fn site(p: &ProxyPass, conn: &Conn, head: &RequestHead) -> String {
    match head
        .header("host")
        .and_then(|h| std::str::from_utf8(h).ok())
    {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => format!("{}:{}", p.config.server_name, local_port(conn)),
    }
}

fn local_port(conn: &Conn) -> u16 {
    conn.transport.local_port()
}

/// The client's socket as a body source, each wait bounded.
struct ClientBody<'a> {
    conn: &'a mut Conn,
    timeout: Duration,
}

impl BodySource for ClientBody<'_> {
    fn read_more(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<usize, BodyError> {
        self.conn
            .transport
            .read_some(buf, max, self.timeout)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::TimedOut {
                    BodyError::TimedOut
                } else {
                    BodyError::Io(e.to_string())
                }
            })
    }
}

struct Exchange<'a> {
    p: &'a ProxyPass,
    conn: &'a mut Conn,
    head: &'a RequestHead,
    route: &'a Route,
}

/// A backend response head, owned.
struct ResponseHead {
    status: u16,
    reason: String,
    headers: Vec<(String, Vec<u8>)>,
}

impl Exchange<'_> {
    fn relay(&mut self, target: &str) -> Outcome {
        let failed = |end: End, status: u16| Outcome {
            end,
            status,
            bytes: 0,
        };
        let timeout = Duration::from_millis(self.p.config.proxy_pass.timeout_ms);
        let mut backend = match self.connect(timeout) {
            Ok(b) => b,
            Err(why) => return self.fail(Failure::Connect, &why),
        };
        let framing = match self.head.body {
            BodyKind::Empty => RequestFraming::None,
            BodyKind::Length(n) => RequestFraming::Length(n),
            BodyKind::Chunked => RequestFraming::Chunked,
        };
        let fwd = Forwarded {
            client: self.conn.origin.client().ip().to_string(),
            // Apache's ServerName of the virtual host that took the request.
            server: self
                .route
                .host
                .as_deref()
                .unwrap_or(&self.p.config.server_name),
            port: forwarded_port(
                self.head.header("host"),
                match (&self.conn.tls, &self.p.config.tls) {
                    // The pair's end has no port: the HTTPS port it came on.
                    (Some(_), Some(tls)) => tls.port,
                    _ => local_port(self.conn),
                },
            ),
            https: self.conn.tls.is_some(),
        };
        let out = request_head(self.head, self.route, target, &fwd, framing);
        if let Err(e) = backend.write_all(&out) {
            return self.fail(Failure::Broken, &e.to_string());
        }
        // The body is read only now that the backend is there (a 503 for
        // a dead backend spares the client sending its upload).
        if self.head.expect_continue
            && self.head.body != BodyKind::Empty
            && self.conn.buf.is_empty()
        {
            if let Err(end) = send(self.p, self.conn, &[b"HTTP/1.1 100 Continue\r\n\r\n"]) {
                return failed(end, 0);
            }
        }
        let body_read = match self.send_body(&mut backend, framing) {
            Ok(complete) => complete,
            Err(outcome) => return outcome,
        };
        let (response, mut rest) = match read_response_head(&mut backend) {
            Ok(r) => r,
            Err((f, why)) => return self.fail(f, &why),
        };
        let body = match response_body(
            self.head.method == "HEAD",
            response.status,
            &response.headers,
        ) {
            Ok(b) => b,
            Err(why) => return self.fail(Failure::Broken, why),
        };
        let to_client = client_framing(body, self.head.version);
        let keep_alive = self.head.keep_alive && body_read;
        let site = site(self.p, self.conn, self.head);
        let out = response_head(
            response.status,
            &response.reason,
            &response.headers,
            self.route,
            &site,
            to_client,
            keep_alive,
        );
        if let Err(end) = send(self.p, self.conn, &[&out]) {
            return failed(end, response.status);
        }
        let mut relayed = Relayed {
            framing: to_client,
            bytes: 0,
        };
        let complete = match body {
            ResponseBody::None => Ok(()),
            ResponseBody::Length(n) => self.copy_length(&mut backend, &mut rest, n, &mut relayed),
            ResponseBody::Chunked => self.copy_chunked(&mut backend, &mut rest, &mut relayed),
            ResponseBody::UntilClose => {
                self.copy_until_close(&mut backend, &mut rest, &mut relayed)
            }
        };
        let end = match complete {
            Ok(()) => match to_client {
                ClientFraming::Chunked => match send(self.p, self.conn, &[b"0\r\n\r\n"]) {
                    Ok(()) if keep_alive => End::KeepAlive,
                    Ok(()) => End::Close,
                    Err(end) => end,
                },
                ClientFraming::UntilClose => End::Close,
                _ if keep_alive => End::KeepAlive,
                _ => End::Close,
            },
            Err(why) => {
                info!(self.p.log, "proxied response cut short; closing the client connection";
                    "why" => why, "backend" => &self.route.backend.authority, "path" => &self.head.path);
                End::Abort
            }
        };
        Outcome {
            end,
            status: response.status,
            bytes: relayed.bytes,
        }
    }

    /// The client gets the status of `failure`, logged with why.
    fn fail(&mut self, failure: Failure, why: &str) -> Outcome {
        let status = failure_status(failure);
        info!(self.p.log, "proxy: backend failed"; "status" => status, "why" => why,
            "backend" => &self.route.backend.authority, "path" => &self.head.path);
        Outcome {
            end: error(self.p, self.conn, status),
            status,
            bytes: 0,
        }
    }

    fn connect(&self, timeout: Duration) -> Result<TcpStream, String> {
        let b = &self.route.backend;
        let addrs = (b.host.as_str(), b.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", b.host))?;
        let mut last = format!("{}: no address", b.host);
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(timeout))
                        .map_err(|e| e.to_string())?;
                    s.set_write_timeout(Some(timeout))
                        .map_err(|e| e.to_string())?;
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(last)
    }

    /// Streams the client's body to the backend as it arrives.
    /// `Ok(true)`: all of it was read (the connection can carry another
    /// request); `Ok(false)`: the backend stopped taking it, and its
    /// response, if it sends one, still goes to the client.
    fn send_body(
        &mut self,
        backend: &mut TcpStream,
        framing: RequestFraming,
    ) -> Result<bool, Outcome> {
        if framing == RequestFraming::None {
            return Ok(true);
        }
        let limit = self.p.config.limits.request_body;
        let mut reader = BodyReader::new(self.head.body, std::mem::take(&mut self.conn.buf), limit);
        let mut source = ClientBody {
            conn: self.conn,
            timeout: socket_timeout(self.p),
        };
        let chunked = framing == RequestFraming::Chunked;
        loop {
            match reader.fill(&mut source) {
                Ok(true) => {
                    let piece = reader.available();
                    let n = piece.len();
                    let sent = if chunked {
                        let size = format!("{n:x}\r\n");
                        write_parts(backend, &[size.as_bytes(), piece, b"\r\n"])
                    } else {
                        backend.write_all(piece)
                    };
                    reader.consume(n);
                    if let Err(e) = sent {
                        debug!(self.p.log, "the backend stopped reading the request body"; "error" => %e);
                        return Ok(false);
                    }
                }
                Ok(false) => break,
                Err(BodyError::Refused(e)) => {
                    return Err(Outcome {
                        end: error(self.p, self.conn, e.status),
                        status: e.status,
                        bytes: 0,
                    })
                }
                // The client left or stalled: nobody to answer.
                Err(_) => {
                    return Err(Outcome {
                        end: End::Abort,
                        status: 400,
                        bytes: 0,
                    })
                }
            }
        }
        self.conn.buf = reader.into_rest();
        if chunked {
            if let Err(e) = backend.write_all(b"0\r\n\r\n") {
                debug!(self.p.log, "the backend stopped reading the request body"; "error" => %e);
            }
        }
        Ok(true)
    }

    /// Writes a relayed piece of body in the client's framing.
    fn relay_piece(&mut self, piece: &[u8], relayed: &mut Relayed) -> Result<(), &'static str> {
        if piece.is_empty() {
            return Ok(());
        }
        let sent = match relayed.framing {
            ClientFraming::Chunked => {
                let size = format!("{:x}\r\n", piece.len());
                send(self.p, self.conn, &[size.as_bytes(), piece, b"\r\n"])
            }
            _ => send(self.p, self.conn, &[piece]),
        };
        relayed.bytes += piece.len() as u64;
        sent.map_err(|_| "the client went away")
    }

    fn copy_length(
        &mut self,
        backend: &mut TcpStream,
        rest: &mut Vec<u8>,
        mut left: u64,
        relayed: &mut Relayed,
    ) -> Result<(), &'static str> {
        loop {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
            self.relay_piece(&rest[..n], relayed)?;
            left -= n as u64;
            if left == 0 {
                return Ok(());
            }
            rest.clear();
            if read_piece(backend, rest)? == 0 {
                return Err("the backend closed before the end of the body");
            }
        }
    }

    fn copy_chunked(
        &mut self,
        backend: &mut TcpStream,
        rest: &mut Vec<u8>,
        relayed: &mut Relayed,
    ) -> Result<(), &'static str> {
        let mut decoder = ChunkedDecoder::new(u64::MAX);
        let mut out = Vec::with_capacity(PIECE);
        loop {
            let mut pos = 0;
            while pos < rest.len() && !decoder.is_done() {
                out.clear();
                let used = decoder
                    .decode(&rest[pos..], &mut out, PIECE)
                    .map_err(|_| "the backend's chunked body is malformed")?;
                self.relay_piece(&out, relayed)?;
                if used == 0 {
                    // Never happens with room for output; never spin on it.
                    return Err("the backend's chunked body did not decode");
                }
                pos += used;
            }
            if decoder.is_done() {
                return Ok(());
            }
            rest.clear();
            if read_piece(backend, rest)? == 0 {
                return Err("the backend closed before the last chunk");
            }
        }
    }

    fn copy_until_close(
        &mut self,
        backend: &mut TcpStream,
        rest: &mut Vec<u8>,
        relayed: &mut Relayed,
    ) -> Result<(), &'static str> {
        loop {
            self.relay_piece(rest, relayed)?;
            rest.clear();
            if read_piece(backend, rest)? == 0 {
                return Ok(());
            }
        }
    }
}

/// Where the relayed body stands.
struct Relayed {
    framing: ClientFraming,
    bytes: u64,
}

fn write_parts(w: &mut TcpStream, parts: &[&[u8]]) -> io::Result<()> {
    // One write for small pieces (no Nagle stall between size and data).
    let mut joined = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        joined.extend_from_slice(p);
    }
    w.write_all(&joined)
}

/// Reads what the backend has sent, up to `PIECE` bytes, into `buf`.
fn read_piece(backend: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, &'static str> {
    let start = buf.len();
    buf.resize(start + PIECE, 0);
    loop {
        match backend.read(&mut buf[start..]) {
            Ok(n) => {
                buf.truncate(start + n);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) => {
                buf.truncate(start);
                return Err("the backend sent nothing within --proxy-timeout");
            }
            Err(_) => {
                buf.truncate(start);
                return Err("the backend connection failed");
            }
        }
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads the backend's final response head (interim 1xx ones skipped);
/// returns it with the body bytes read past it.
fn read_response_head(
    backend: &mut TcpStream,
) -> Result<(ResponseHead, Vec<u8>), (Failure, String)> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        if !buf.is_empty() {
            let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
            let mut parsed = httparse::Response::new(&mut fields);
            match parsed.parse(&buf) {
                Ok(httparse::Status::Complete(used)) => {
                    let status = parsed.code.unwrap_or(0);
                    let head = ResponseHead {
                        status,
                        reason: parsed.reason.unwrap_or("").to_owned(),
                        headers: parsed
                            .headers
                            .iter()
                            .map(|h| (h.name.to_owned(), h.value.to_vec()))
                            .collect(),
                    };
                    match status {
                        // No upgrade was offered (Upgrade is not forwarded).
                        101 => return Err((Failure::Broken, "an unrequested 101".into())),
                        100..=199 => {
                            buf.drain(..used);
                            continue;
                        }
                        _ => return Ok((head, buf.split_off(used))),
                    }
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err((Failure::Broken, format!("not an HTTP response: {e}"))),
            }
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err((Failure::Broken, "response head too large".into()));
        }
        let start = buf.len();
        buf.resize(start + 16 * 1024, 0);
        match backend.read(&mut buf[start..]) {
            Ok(0) => {
                return Err((
                    Failure::Broken,
                    "the backend closed the connection without a response".into(),
                ))
            }
            Ok(n) => buf.truncate(start + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
            Err(e) if timed_out(&e) => {
                return Err((
                    Failure::Timeout,
                    "no response within --proxy-timeout".into(),
                ))
            }
            Err(e) => return Err((Failure::Broken, e.to_string())),
        }
    }
}
