//! The internal HTTP/1.1 connections of one h2 connection, kept between
//! its streams: a socket pair and its adoption cost more than the request
//! they carry. One request at a time on each.
//!
//! Both ends of a pair are kept here, not just ours: ours once its
//! exchange ended cleanly ([`reusable`]), the worker's once the thread
//! that answered gave it back (the I/O thread passes a stream's connection
//! on, see [`go_home`]). A pair is taken again only when both have come
//! back, so no byte of one stream can reach another; and the worker's end
//! never waits in the I/O thread: the next stream's request goes into its
//! buffer and the I/O thread routes it from there, with no write, no poll
//! and no read of the pair. They are per h2 connection because they carry
//! its client's address and TLS facts.

use crate::conn::Conn;
use bytes::BytesMut;
use rwsgi_shared::origin::Origin;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::net::UnixStream;

/// Pairs kept per h2 connection, whole or with one end back (h2load and
/// browsers keep 6 to 10 streams in flight); past this, ends coming back
/// are closed.
pub const MAX_KEPT: usize = 32;

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

/// What the two ends of a pair know of each other: whether the other one
/// is gone (closed), so a half that comes back waits for nothing.
#[derive(Default)]
struct Pair {
    ours_gone: AtomicBool,
    theirs_gone: AtomicBool,
}

/// Our end of an internal connection.
pub struct Internal {
    pub stream: UnixStream,
    /// Kept with the connection: one response's buffer serves the next.
    pub buf: BytesMut,
    pair: Arc<Pair>,
}

impl Drop for Internal {
    fn drop(&mut self) {
        self.pair.ours_gone.store(true, Ordering::SeqCst);
    }
}

/// The worker's end's tie to its pair and pool (`Conn::http2`). While the
/// end is away from the pool it counts in `H2::held`'s internal
/// connections: the I/O thread's table holds it then.
pub struct WorkerEnd {
    pair: Arc<Pair>,
    pool: Weak<Pool>,
    counted: Option<super::Held>,
}

impl Drop for WorkerEnd {
    fn drop(&mut self) {
        self.pair.theirs_gone.store(true, Ordering::SeqCst);
    }
}

/// A stream's connection whose request was answered and whose end is still
/// good for another: back to its pool (the I/O thread calls this for
/// `Returned::Idle`). Closed when its h2 connection is gone.
pub fn go_home(mut conn: Conn) {
    let Some(end) = conn.http2.as_mut() else {
        return;
    };
    end.counted = None;
    let Some(pool) = end.pool.upgrade() else {
        return;
    };
    // A large body's buffer is not kept for the next stream's head.
    if conn.buf.capacity() > crate::conn::READ_CHUNK {
        conn.buf = Vec::new();
    }
    pool.put(Half::Theirs(conn));
}

/// A new pair of `pool`: our end, and the worker's as a connection of
/// `origin`'s (with its TLS facts), which the worker reads and writes as it
/// would a TCP socket. Not yet counted (see [`leaving`]).
pub fn pair(
    pool: &Arc<Pool>,
    origin: Origin,
    tls: Option<Arc<rwsgi_http::tls::Facts>>,
) -> std::io::Result<(Internal, Conn)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    theirs.set_nonblocking(true)?;
    let pair = Arc::new(Pair::default());
    let internal = Internal {
        stream: UnixStream::from_std(ours)?,
        buf: BytesMut::new(),
        pair: Arc::clone(&pair),
    };
    let mut conn = Conn::new(TcpStream::from(OwnedFd::from(theirs)), origin, Vec::new());
    conn.tls = tls;
    conn.http2 = Some(WorkerEnd {
        pair,
        pool: Arc::downgrade(pool),
        counted: None,
    });
    Ok((internal, conn))
}

/// Counts the worker's end as held by the I/O thread from now on.
pub fn leaving(conn: &mut Conn, count: &Arc<std::sync::atomic::AtomicUsize>) {
    if let Some(end) = conn.http2.as_mut() {
        end.counted = Some(super::Held::new(count));
    }
}

enum Half {
    Ours(Internal),
    Theirs(Conn),
}

impl Half {
    fn pair(&self) -> Option<&Arc<Pair>> {
        match self {
            Half::Ours(i) => Some(&i.pair),
            Half::Theirs(c) => c.http2.as_ref().map(|e| &e.pair),
        }
    }
}

/// A pair with one or both ends back.
struct Slot {
    pair: Arc<Pair>,
    ours: Option<Internal>,
    theirs: Option<Conn>,
}

impl Slot {
    /// Waits for an end that is gone: never usable.
    fn dead(&self) -> bool {
        (self.ours.is_none() && self.pair.ours_gone.load(Ordering::SeqCst))
            || (self.theirs.is_none() && self.pair.theirs_gone.load(Ordering::SeqCst))
    }
}

#[derive(Default)]
pub struct Pool {
    slots: Mutex<Vec<Slot>>,
}

impl Pool {
    /// A pair whose ends are both back, the worker's with an empty buffer.
    pub fn take(&self) -> Option<(Internal, Conn)> {
        let mut slots = super::lock(&self.slots);
        let at = slots
            .iter()
            .rposition(|s| s.ours.is_some() && s.theirs.is_some())?;
        let slot = slots.swap_remove(at);
        drop(slots);
        Some((slot.ours?, slot.theirs?))
    }

    /// Our end after a clean exchange.
    pub fn put_ours(&self, ours: Internal) {
        self.put(Half::Ours(ours));
    }

    fn put(&self, half: Half) {
        let Some(pair) = half.pair().cloned() else {
            return;
        };
        // Closed after the lock is let go (a close is a system call).
        let mut closed = Vec::new();
        let mut slots = super::lock(&self.slots);
        let mut i = 0;
        while i < slots.len() {
            if slots[i].dead() {
                closed.push(slots.swap_remove(i));
            } else {
                i += 1;
            }
        }
        let slot = match slots.iter().position(|s| Arc::ptr_eq(&s.pair, &pair)) {
            Some(at) => Some(&mut slots[at]),
            None if slots.len() < MAX_KEPT => {
                slots.push(Slot {
                    pair,
                    ours: None,
                    theirs: None,
                });
                slots.last_mut()
            }
            None => None,
        };
        match (slot, half) {
            (Some(s), Half::Ours(o)) => s.ours = Some(o),
            (Some(s), Half::Theirs(t)) => s.theirs = Some(t),
            (None, half) => drop(half),
        }
        drop(slots);
        drop(closed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap()
    }

    /// A new pair of `pool`: our end and the worker's connection.
    fn new_pair(pool: &Arc<Pool>) -> (Internal, Conn) {
        pair(pool, Origin::accepted("127.0.0.1:1".parse().unwrap()), None).unwrap()
    }

    #[test]
    fn a_pair_is_taken_again_only_when_both_ends_are_back() {
        let rt = runtime();
        let _entered = rt.enter();
        let pool = Arc::new(Pool::default());
        let (ours, theirs) = new_pair(&pool);
        // The worker's end first (the usual order: it is given back when
        // the response is written, before ours has read it).
        go_home(theirs);
        assert!(pool.take().is_none());
        pool.put_ours(ours);
        let (ours, theirs) = pool.take().unwrap();
        assert!(pool.take().is_none());
        // The other order.
        pool.put_ours(ours);
        assert!(pool.take().is_none());
        go_home(theirs);
        assert!(pool.take().is_some());
    }

    #[test]
    fn a_half_whose_other_end_is_gone_is_never_taken() {
        let rt = runtime();
        let _entered = rt.enter();
        let pool = Arc::new(Pool::default());
        // Our end dropped (the stream was reset): the worker's, back later,
        // is closed.
        let (ours, theirs) = new_pair(&pool);
        drop(ours);
        go_home(theirs);
        // The worker closed its end (Connection: close): ours waits for
        // nothing.
        let (ours, theirs) = new_pair(&pool);
        pool.put_ours(ours);
        drop(theirs);
        assert!(pool.take().is_none());
        // Both dead halves are gone at the next put.
        let (ours, theirs) = new_pair(&pool);
        pool.put_ours(ours);
        go_home(theirs);
        assert_eq!(super::super::lock(&pool.slots).len(), 1);
        assert!(pool.take().is_some());
    }

    #[test]
    fn the_worker_end_counts_while_away_and_closes_when_its_pool_is_gone() {
        let rt = runtime();
        let _entered = rt.enter();
        let count = Arc::new(AtomicUsize::new(0));
        let pool = Arc::new(Pool::default());
        let (ours, mut theirs) = new_pair(&pool);
        leaving(&mut theirs, &count);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        pool.put_ours(ours);
        go_home(theirs);
        assert_eq!(count.load(Ordering::SeqCst), 0);
        let (ours, mut theirs) = pool.take().unwrap();
        leaving(&mut theirs, &count);
        drop(ours);
        drop(pool);
        // Its h2 connection ended meanwhile: closed, uncounted.
        go_home(theirs);
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn no_more_than_the_cap_is_kept() {
        let rt = runtime();
        let _entered = rt.enter();
        let pool = Arc::new(Pool::default());
        let mut kept = Vec::new();
        for _ in 0..2 * MAX_KEPT {
            let (ours, theirs) = new_pair(&pool);
            pool.put_ours(ours);
            kept.push(theirs);
        }
        assert_eq!(super::super::lock(&pool.slots).len(), MAX_KEPT);
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
