//! A request body received by the I/O thread before a request thread runs
//! the request, so no Python thread ever waits on a slow client (DESIGN:
//! "No request thread waits on the network").
//!
//! The I/O thread holds the connection as it holds an incomplete head: it
//! feeds whatever arrives to an [`Intake`] (which counts every wire byte
//! against `--limit-request-body`) and a [`Spool`], and queues the request
//! once the body is complete. A body that takes too long is cut off by
//! [`body_allowance`], the body's version of the head's rule.

use crate::conn::Conn;
use crate::spool::{Spool, Spooled};
use rwsgi_http::{Fed, HttpError, Intake, RequestHead};
use rwsgi_shared::config::Timeouts;
use std::time::{Duration, Instant};

/// Read size while receiving a body: larger than a head's, so a body
/// arriving at line rate costs fewer reads.
const BODY_READ: usize = 64 * 1024;
/// Bytes one turn of the I/O thread takes from a body before it serves
/// the other connections: a body arriving at loopback speed must not hold
/// the thread for the whole of it.
const TURN: usize = 1024 * 1024;

pub struct Receiving {
    pub conn: Conn,
    pub head: RequestHead,
    intake: Intake,
    spool: Spool,
    /// Decoded bytes not yet written to the spool.
    scratch: Vec<u8>,
    started: Instant,
}

/// Where receiving stands after the socket has been read dry.
pub enum Pump {
    /// Waiting for more bytes.
    Pending,
    /// More may be waiting in the socket; this turn is over (see [`TURN`]).
    Yield,
    /// The body is complete; the connection's buffer holds what followed it.
    Complete,
    /// The client framed it wrongly or made it too large.
    Refused(HttpError),
    /// The client closed the connection (or it failed) mid-body.
    Closed,
    /// The body could not be stored (no temporary file).
    Failed(std::io::Error),
}

impl Receiving {
    pub fn new(conn: Conn, head: RequestHead, limit: u64) -> Receiving {
        Receiving {
            intake: Intake::new(head.body, limit),
            conn,
            head,
            spool: Spool::default(),
            scratch: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Takes what is buffered, then what the socket has, until it has
    /// nothing more, the body is complete, or the turn is over.
    pub fn pump(&mut self) -> Pump {
        let mut read = 0;
        loop {
            if !self.conn.buf.is_empty() {
                let fed = match self.intake.feed(&self.conn.buf, &mut self.scratch) {
                    Ok(fed) => fed,
                    Err(e) => return Pump::Refused(e),
                };
                if let Err(e) = self.spool.write(&self.scratch) {
                    return Pump::Failed(e);
                }
                self.scratch.clear();
                match fed {
                    Fed::Complete { used } => {
                        self.conn.buf.drain(..used);
                        return Pump::Complete;
                    }
                    Fed::More => self.conn.buf.clear(),
                }
            }
            if read >= TURN {
                return Pump::Yield;
            }
            match self.conn.transport.try_read(&mut self.conn.buf, BODY_READ) {
                Ok(Some(0)) | Err(_) => return Pump::Closed,
                Ok(Some(n)) => read += n,
                Ok(None) => return Pump::Pending,
            }
        }
    }

    /// The received body (after [`Pump::Complete`]).
    pub fn finish(self) -> (Conn, RequestHead, std::io::Result<Spooled>) {
        (self.conn, self.head, self.spool.finish())
    }

    /// Gives the connection up with the body unfinished (to answer it).
    pub fn into_conn(self) -> Conn {
        self.conn
    }

    pub fn expired(&self, now: Instant, t: &Timeouts) -> bool {
        now.saturating_duration_since(self.started) > body_allowance(t, self.intake.wire())
    }
}

/// How long a body may take once `received` bytes of it (framing included)
/// have arrived: `--body-timeout`, one more second per `--body-min-rate`
/// bytes, never more than `--body-max-timeout` (0: no cap). The
/// mod_reqtimeout rule, as for the head.
pub fn body_allowance(t: &Timeouts, received: u64) -> Duration {
    let extra_ms = (received.saturating_mul(1000))
        .checked_div(t.body_min_rate)
        .unwrap_or(0);
    let mut ms = t.body_ms.saturating_add(extra_ms);
    if t.body_max_ms > 0 {
        ms = ms.min(t.body_max_ms.max(t.body_ms));
    }
    Duration::from_millis(ms)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rwsgi_http::{parse_request_head, Parsed};
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    /// A receiving connection for `head`, with `early` bytes already read,
    /// and the client's end of its socket.
    fn receiving(head: &str, early: &[u8], limit: u64) -> (Receiving, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let head = match parse_request_head(head.as_bytes(), &Default::default()) {
            Ok(Parsed::Complete(h, _)) => h,
            other => panic!("{other:?}"),
        };
        let conn = Conn::new(
            server,
            rwsgi_shared::origin::Origin::accepted(peer),
            early.to_vec(),
        );
        (Receiving::new(conn, head, limit), client)
    }

    /// Pumps until something other than `Pending` (the bytes are on their way).
    fn pump(r: &mut Receiving) -> Pump {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match r.pump() {
                Pump::Pending if Instant::now() < deadline => std::thread::yield_now(),
                other => return other,
            }
        }
    }

    /// The body received, what followed it, and whether it was in a file.
    fn body(r: Receiving) -> (Vec<u8>, Vec<u8>, bool) {
        let (conn, _, spooled) = r.finish();
        match spooled.unwrap() {
            Spooled::Memory(m) => (m, conn.buf, false),
            Spooled::File(mut f, _) => {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut v).unwrap();
                (v, conn.buf, true)
            }
        }
    }

    #[test]
    fn a_body_in_pieces_is_complete_and_the_next_request_stays() {
        let post = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (mut r, mut client) = receiving(post, b"3\r\nab", 100);
        assert!(matches!(r.pump(), Pump::Pending));
        client
            .write_all(b"c\r\n0\r\n\r\nGET / HTTP/1.1\r\n")
            .unwrap();
        assert!(matches!(pump(&mut r), Pump::Complete));
        assert_eq!(
            body(r),
            (b"abc".to_vec(), b"GET / HTTP/1.1\r\n".to_vec(), false)
        );
    }

    #[test]
    fn what_ends_a_body_early() {
        let post = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
        let (mut r, client) = receiving(post, b"abc", 100);
        drop(client);
        assert!(matches!(pump(&mut r), Pump::Closed));

        let chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (mut r, _client) = receiving(chunked, b"65\r\n", 100);
        assert!(matches!(r.pump(), Pump::Refused(e) if e.status == 413));
        let (mut r, _client) = receiving(chunked, b"zz\r\n", 100);
        assert!(matches!(r.pump(), Pump::Refused(e) if e.status == 400));
    }

    #[test]
    fn a_large_body_takes_turns_and_spills_to_a_file() {
        let len = 3 * TURN;
        let post = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n");
        let (mut r, mut client) = receiving(&post, b"", u64::MAX);
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || client.write_all(&sent).unwrap());
        // How many turns it takes depends on how far ahead the writer is;
        // whatever the number, the body comes out whole.
        loop {
            match pump(&mut r) {
                Pump::Yield => {}
                Pump::Complete => break,
                _ => panic!("the body did not arrive"),
            }
        }
        writer.join().unwrap();
        let (received, rest, in_file) = body(r);
        assert!(in_file);
        assert!(received == data && rest.is_empty());
    }

    #[test]
    fn a_trickling_body_is_cut_off_at_the_cap() {
        let t = Timeouts {
            body_ms: 15_000,
            body_min_rate: 500,
            body_max_ms: 120_000,
            ..Timeouts::default()
        };
        let s = Duration::from_secs;
        assert_eq!(body_allowance(&t, 0), s(15));
        assert_eq!(body_allowance(&t, 5_000), s(25));
        // 600 B/s forever no longer buys forever.
        assert_eq!(body_allowance(&t, 10 << 20), s(120));
        assert_eq!(body_allowance(&t, u64::MAX), s(120));
        // 0: no cap, as before; a rate of 0: no extension.
        let uncapped = Timeouts {
            body_max_ms: 0,
            ..t
        };
        assert_eq!(body_allowance(&uncapped, 1_000_000), s(2_015));
        let flat = Timeouts {
            body_min_rate: 0,
            ..t
        };
        assert_eq!(body_allowance(&flat, 1_000_000), s(15));
        // A cap below the base timeout does not shorten the base.
        let odd = Timeouts {
            body_max_ms: 5_000,
            ..t
        };
        assert_eq!(body_allowance(&odd, 0), s(15));
    }
}
