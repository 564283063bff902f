//! The internal HTTP/1.1 connections of one h2 connection, kept alive
//! between its streams: a socket pair and the I/O thread's adoption of it
//! cost more than the request they carried. One request at a time on each;
//! a connection goes back only when its exchange ended cleanly
//! ([`reusable`]), so no byte of one stream can reach another. They are
//! per h2 connection because they carry its client's address and TLS
//! facts.

use std::os::fd::AsRawFd;
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
    pub fn new(
        stream: UnixStream,
        count: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> Internal {
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

/// An idle connection has nothing to say: a byte, or its end, means the
/// worker closed it (draining, its keep-alive timeout, shed at
/// `--max-clients`). Asked of the socket (a peek), not of tokio's last
/// readiness, which may not have seen the close yet.
fn quiet(stream: &UnixStream) -> bool {
    use nix::sys::socket::{recv, MsgFlags};
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    loop {
        match recv(stream.as_raw_fd(), &mut [0u8; 1], flags) {
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return true,
            _ => return false,
        }
    }
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
            if quiet(&c.conn.stream) {
                return Some(c.conn);
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// An internal connection (counted in `count`) and its other end.
    fn internal(count: &Arc<AtomicUsize>) -> (Internal, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        (
            Internal::new(UnixStream::from_std(ours).unwrap(), count),
            theirs,
        )
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap()
    }

    #[test]
    fn a_quiet_connection_is_reused_and_a_closed_one_is_not() {
        let rt = runtime();
        let _entered = rt.enter();
        let count = Arc::new(AtomicUsize::new(0));
        let pool = Pool::new(Duration::from_secs(60));
        let (a, _a_peer) = internal(&count);
        let (b, b_peer) = internal(&count);
        pool.put(a);
        pool.put(b);
        assert_eq!(count.load(Ordering::SeqCst), 2);
        // The last one put is taken first; its peer closed it meanwhile.
        drop(b_peer);
        let taken = pool.take().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert!(pool.take().is_none());
        drop(taken);
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_connection_idle_too_long_or_beyond_the_cap_is_closed() {
        let rt = runtime();
        let _entered = rt.enter();
        let count = Arc::new(AtomicUsize::new(0));
        let stale = Pool::new(Duration::ZERO);
        let (a, _peer) = internal(&count);
        stale.put(a);
        std::thread::sleep(Duration::from_millis(2));
        assert!(stale.take().is_none());
        let pool = Pool::new(Duration::from_secs(60));
        let mut peers = Vec::new();
        for _ in 0..MAX_IDLE + 3 {
            let (c, peer) = internal(&count);
            peers.push(peer);
            pool.put(c);
        }
        assert_eq!(count.load(Ordering::SeqCst), MAX_IDLE);
    }

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
