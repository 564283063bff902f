//! Closing a connection: gracefully (our side shut for writing, then what
//! the client still sends read and dropped, within bounds), or at once.

use super::{Entry, IoLoop};
use crate::conn::Conn;
use std::time::{Duration, Instant};

/// A closing connection is read and drained for at most this long (as
/// Apache's lingering close and nginx's `lingering_time`): a client that is
/// still sending an upload at line rate when its 413 goes out must finish
/// sending before it reads the answer (curl does), and a reset before then
/// would throw the answer away…
const LINGER_MAX: Duration = Duration::from_secs(30);
/// …for at most this long without receiving anything (nginx's
/// `lingering_timeout`: git's pack-objects can pause that long between
/// chunks while it compresses)…
const LINGER_IDLE: Duration = Duration::from_secs(5);
/// …and for at most this many bytes.
const LINGER_BYTES: u64 = 256 * 1024 * 1024;
/// Read size while draining.
const LINGER_READ: usize = 64 * 1024;

pub(super) struct Closing {
    pub(super) conn: Conn,
    pub(super) until: Instant,
    pub(super) last_read: Instant,
    /// Bytes it may still drain.
    pub(super) left: u64,
}

impl Closing {
    pub(super) fn drain(&mut self) -> Drained {
        drain_input(&mut self.conn, &mut self.left)
    }
}

/// What a closing connection's socket says.
pub(super) enum Drained {
    /// The client closed, or the socket failed: close now.
    Over,
    /// Nothing more for now.
    Pending,
}

/// Reads and drops whatever has arrived, `left` bytes at most.
fn drain_input(conn: &mut Conn, left: &mut u64) -> Drained {
    loop {
        // Raw bytes: after our close_notify nothing needs decrypting.
        match conn.transport.discard(&mut conn.buf, LINGER_READ) {
            Ok(Some(0)) | Err(_) => return Drained::Over,
            Ok(Some(n)) => match left.checked_sub(n as u64) {
                Some(l) => *left = l,
                None => return Drained::Over,
            },
            Ok(None) => return Drained::Pending,
        }
    }
}

impl IoLoop<'_> {
    /// Closes a connection the way RFC 9112 9.6 recommends: shut down our
    /// side for writing (the response already queued goes out with a FIN),
    /// then read and drop what the client still sends, for a bounded time.
    /// Closing with unread bytes in the socket would send a reset instead,
    /// and a reset makes the client's kernel throw away the response it has
    /// not read yet: a 413 for an upload still in flight would reach curl
    /// as "connection reset".
    pub(super) fn close(&mut self, token: usize, mut conn: Conn) {
        // close_notify first over TLS, then the FIN.
        conn.transport.close();
        let mut left = LINGER_BYTES;
        if let Drained::Over = drain_input(&mut conn, &mut left) {
            self.unwatch(token, &conn);
            self.take(token);
            return;
        }
        let now = Instant::now();
        let closing = Entry::Closing(Closing {
            conn,
            until: now + LINGER_MAX,
            last_read: now,
            left,
        });
        // Watched under its token, so a FIN or more data wakes the loop.
        if let Some(slot @ Some(_)) = self.entries.get_mut(token) {
            *slot = Some(closing);
            self.watch(token);
        }
    }

    /// Forgets a connection and closes its socket (`take` stops watching it).
    pub(super) fn drop_conn(&mut self, token: usize) {
        self.take(token);
    }
}

/// A closing connection is dropped at its deadline, or once the client
/// has sent nothing for `LINGER_IDLE`.
pub(super) fn closing_over(c: &Closing, now: Instant) -> bool {
    closing_due(now, c.until, c.last_read)
}

fn closing_due(now: Instant, until: Instant, last_read: Instant) -> bool {
    now > until || now.duration_since(last_read) > LINGER_IDLE
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_closing_connection_goes_at_its_deadline_or_when_quiet() {
        let start = Instant::now();
        let until = start + LINGER_MAX;
        assert!(!closing_due(start + secs(1), until, start));
        assert!(closing_due(start + LINGER_IDLE + secs(1), until, start));
        let later = start + LINGER_MAX - secs(1);
        assert!(!closing_due(later, until, later - secs(1)));
        assert!(closing_due(until + secs(1), until, until));
    }
}
