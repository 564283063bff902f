//! The internal HTTP/1.1 connections of one h2 connection, kept alive
//! between its streams: a socket pair and the I/O thread's adoption of it
//! cost more than the request they carried. One request at a time on each;
//! a connection goes back only when its exchange ended cleanly
//! ([`reusable`]), so no byte of one stream can reach another. They are
//! per h2 connection because they carry its client's address and TLS
//! facts.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;

/// Idle internal connections kept per h2 connection (h2load and browsers
/// keep 6 to 10 streams in flight); more are closed.
pub const MAX_IDLE: usize = 16;

/// How one stream's exchange on an internal connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// The whole request (head and body) was written.
    pub request_sent: bool,
    /// The whole response was read, and nothing after it.
    pub response_read: bool,
    /// The worker said it closes (`Connection: close`) or delimits the
    /// body by closing.
    pub worker_closes: bool,
}

/// Whether the connection may carry the next stream: anything left
/// half-sent or half-read would be taken for the next request's, or its
/// response.
pub fn reusable(e: Ended) -> bool {
    e.request_sent && e.response_read && !e.worker_closes
}

/// Our end of an internal connection, counted while open (see `H2::held`).
pub struct Internal {
    pub stream: UnixStream,
    _counted: super::Held,
}

impl Internal {
    pub fn new(stream: UnixStream, count: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Internal {
        Internal {
            stream,
            _counted: super::Held::new(count),
        }
    }
}

struct Idle {
    conn: Internal,
    since: Instant,
}

pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    /// Kept no longer than this: the I/O thread closes a connection idle
    /// for `--keep-alive-timeout`, and a request must not meet that close.
    max_idle: Duration,
}

impl Pool {
    pub fn new(max_idle: Duration) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// The connection used last, if it is still open and quiet.
    pub fn take(&self) -> Option<Internal> {
        let mut idle = super::lock(&self.idle);
        while let Some(c) = idle.pop() {
            if c.since.elapsed() > self.max_idle {
                // The others are older still.
                idle.clear();
                return None;
            }
            // An idle connection has nothing to say: a byte or its end
            // means the worker closed it (draining, shed at --max-clients).
            match c.conn.stream.try_read(&mut [0u8; 1]) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(c.conn),
                _ => {}
            }
        }
        None
    }

    pub fn put(&self, conn: Internal) {
        let mut idle = super::lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: Ended = Ended {
        request_sent: true,
        response_read: true,
        worker_closes: false,
    };

    #[test]
    fn only_a_clean_exchange_leaves_a_connection_reusable() {
        assert!(reusable(CLEAN));
        // A body still being sent (the stream was answered or reset first).
        assert!(!reusable(Ended {
            request_sent: false,
            ..CLEAN
        }));
        // A response cut short (the client reset the stream).
        assert!(!reusable(Ended {
            response_read: false,
            ..CLEAN
        }));
        assert!(!reusable(Ended {
            worker_closes: true,
            ..CLEAN
        }));
    }
}
