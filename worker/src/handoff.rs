//! Hand-off between the I/O thread and the request threads.
//!
//! The I/O thread queues connections whose request head is complete; request
//! threads take them, and give connections back (keep-alive) or report them
//! closed, waking the I/O thread through a mio `Waker`.

use crate::conn::Conn;
use mio::{Poll, Token, Waker};
use rwsgi_http::RequestHead;
use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

pub const WAKER: Token = Token(1);

/// The token of an h2 stream's connection that the h2 thread queued itself
/// (`http2::direct`): it is in no table of the I/O thread. Kept alive, it
/// goes straight back to its pair's pool; closed, it needs nothing.
pub const DIRECT: usize = usize::MAX;

/// A request ready to run.
pub struct QueuedRequest {
    pub conn: Conn,
    pub head: RequestHead,
    /// The I/O thread's token for this connection.
    pub token: usize,
    pub queued_at: Instant,
    /// The body, when the I/O thread received it before queueing the request.
    pub body: Option<crate::spool::Spooled>,
    /// A static request that must pass `--auth-user-script` or
    /// `--host-access-script` first: a lane serves it once they allow it.
    pub guarded_static: Option<GuardedStatic>,
}

/// What the I/O thread found for a static request (see `static_lanes::StaticRequest`).
pub struct GuardedStatic {
    pub resolution: Option<rwsgi_http::statics::Resolution>,
    /// A proxied request instead (`proxy_pass`): guarded as Apache's
    /// `<Location />` guards the URLs mod_proxy maps, then relayed.
    pub proxy: Option<rwsgi_http::proxy_pass::Target>,
}

/// What a request thread gives back to the I/O thread.
pub enum Returned {
    /// Keep-alive: wait for the next request on this connection.
    Idle(usize, Conn),
    /// The next request's head is here and was routed, but is not for the
    /// thread that found it (a static file, a body to receive first, a
    /// request thread's business): the I/O thread carries the routing out
    /// without parsing the head again. The head is still in `conn.buf`.
    Routed(usize, Conn, Box<crate::route::Routed>),
    /// The connection must close: the I/O thread closes it gracefully
    /// (half-close, then read and drop what the client still sends).
    Close(usize, Conn),
    /// The request thread closed the connection itself: the whole request
    /// had been read, so there was nothing to linger for.
    Closed(usize),
    /// A new connection (an HTTPS one whose handshake the TLS thread
    /// finished): the I/O thread takes it as it takes the master's.
    Adopt(Box<Conn>),
}

struct Queue {
    jobs: VecDeque<QueuedRequest>,
    shutdown: bool,
    /// Threads blocked in `next_request` and not yet signalled.
    waiting: usize,
    /// Threads signalled and not yet running again. A notify is a futex
    /// syscall: a burst of jobs must not pay one per job for threads that
    /// are already on their way (that was one syscall per request).
    signalled: usize,
}

pub struct Handoff {
    queue: Mutex<Queue>,
    ready: Condvar,
    returns: Mutex<Vec<Returned>>,
    waker: Waker,
    /// The I/O thread is (about to be) blocked in epoll: only then does a
    /// give-back need to wake it (an eventfd write, a syscall).
    io_sleeping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the server down with it: the data is
    // plain queues and stays consistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Handoff {
    /// The queue and the poller of the I/O thread (the waker is registered on it).
    pub fn new() -> std::io::Result<(Handoff, Poll)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        Ok((
            Handoff {
                queue: Mutex::new(Queue {
                    jobs: VecDeque::new(),
                    shutdown: false,
                    waiting: 0,
                    signalled: 0,
                }),
                ready: Condvar::new(),
                returns: Mutex::new(Vec::new()),
                waker,
                io_sleeping: AtomicBool::new(false),
            },
            poll,
        ))
    }

    /// Queues a request; returns the queue length.
    pub fn push(&self, job: QueuedRequest) -> usize {
        let mut q = lock(&self.queue);
        q.jobs.push_back(job);
        let n = q.jobs.len();
        let wake = q.waiting > 0 && n > q.signalled;
        if wake {
            q.waiting -= 1;
            q.signalled += 1;
        }
        drop(q);
        if wake {
            self.ready.notify_one();
        }
        n
    }

    /// Queues a request without waking a thread for it; true when a wake is
    /// owed, which the caller gives with [`Handoff::wake_for_queued`] once
    /// it has queued all it has. The h2 thread queues a connection's
    /// streams in a burst: woken one by one, a request thread took the
    /// core from it at each stream (on one core, two context switches per
    /// stream), and went back to sleep after it.
    pub fn push_unwoken(&self, job: QueuedRequest) -> bool {
        let mut q = lock(&self.queue);
        q.jobs.push_back(job);
        q.waiting > 0 && q.jobs.len() > q.signalled
    }

    /// Wakes a thread for each queued request that no thread is on its way
    /// to yet, as `push` would have one by one.
    pub fn wake_for_queued(&self) {
        let mut q = lock(&self.queue);
        let owed = q.jobs.len().saturating_sub(q.signalled).min(q.waiting);
        q.waiting -= owed;
        q.signalled += owed;
        drop(q);
        for _ in 0..owed {
            self.ready.notify_one();
        }
    }

    /// Blocks until a request is queued; `None` once it shuts down.
    pub fn next_request(&self) -> Option<(QueuedRequest, usize)> {
        let mut q = lock(&self.queue);
        loop {
            if let Some(job) = q.jobs.pop_front() {
                return Some((job, q.jobs.len()));
            }
            if q.shutdown {
                return None;
            }
            q.waiting += 1;
            q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            // Signalled, or woken spuriously: either way one thread fewer is
            // in the wait, and the two counts keep adding up to those that are.
            if q.signalled > 0 {
                q.signalled -= 1;
            } else {
                q.waiting -= 1;
            }
        }
    }

    pub fn queued(&self) -> usize {
        lock(&self.queue).jobs.len()
    }

    pub fn give_back(&self, returned: Returned) {
        let returned = match returned {
            Returned::Idle(DIRECT, conn) => return crate::http2::go_home(conn),
            Returned::Closed(DIRECT) => return,
            other => other,
        };
        lock(&self.returns).push(returned);
        // Pairs with the fence in `io_sleep`: either the I/O thread sees this
        // return before it sleeps, or we see that it sleeps and wake it.
        // Only the first return after it fell asleep wakes it (an eventfd
        // write): it takes every return when it runs, and until it does, it
        // is runnable but not running, so each later write would be wasted.
        fence(Ordering::SeqCst);
        if self.io_sleeping.swap(false, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }

    /// Called by the I/O thread before it blocks; false when returns are
    /// already waiting (then it must not block).
    pub fn io_sleep(&self) -> bool {
        self.io_sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        lock(&self.returns).is_empty()
    }

    pub fn io_awake(&self) {
        self.io_sleeping.store(false, Ordering::SeqCst);
    }

    pub fn take_returns(&self, into: &mut Vec<Returned>) {
        into.append(&mut lock(&self.returns));
    }

    /// Wakes every request thread so it can exit.
    pub fn shutdown(&self) {
        lock(&self.queue).shutdown = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rwsgi_http::{parse_request_head, Parsed};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    fn job(stream: &TcpStream, token: usize) -> QueuedRequest {
        let head =
            match parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &Default::default()) {
                Ok(Parsed::Complete(head, _)) => head,
                _ => panic!("a complete head"),
            };
        QueuedRequest {
            conn: Conn::new(
                stream.try_clone().unwrap(),
                rwsgi_shared::origin::Origin::accepted(stream.local_addr().unwrap()),
                Vec::new(),
            ),
            head,
            token,
            queued_at: Instant::now(),
            body: None,
            guarded_static: None,
        }
    }

    /// Spins until `done`, failing the test after 10 s.
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::yield_now();
        }
    }

    /// Four request threads taking jobs, and `queue` pushing bursts of them
    /// (`queue(handoff, jobs)`); every thread is let back to waiting
    /// every 13 bursts. No job may be left in the queue while a thread
    /// sleeps.
    fn every_job_is_taken(queue: impl Fn(&Handoff, Vec<QueuedRequest>)) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (handoff, _poll) = Handoff::new().unwrap();
        let handoff = Arc::new(handoff);
        let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (handoff, taken) = (Arc::clone(&handoff), Arc::clone(&taken));
                std::thread::spawn(move || {
                    while handoff.next_request().is_some() {
                        taken.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let mut pushed = 0;
        for burst in 1..=200 {
            let jobs: Vec<_> = (0..burst % 9).map(|i| job(&stream, pushed + i)).collect();
            pushed += jobs.len();
            queue(&handoff, jobs);
            if burst % 13 == 0 {
                wait_for("a job was left in the queue", || {
                    taken.load(Ordering::SeqCst) == pushed && lock(&handoff.queue).waiting == 4
                });
            }
        }
        wait_for("a job was left in the queue", || {
            taken.load(Ordering::SeqCst) == pushed
        });
        handoff.shutdown();
        for t in threads {
            t.join().unwrap();
        }
    }

    /// Notifies are rationed to threads not already signalled: bursts that
    /// arrive while every thread waits, or while some are on their way,
    /// must still leave no job behind and no thread asleep with work queued.
    #[test]
    fn every_job_of_every_burst_is_taken() {
        every_job_is_taken(|handoff, jobs| {
            for j in jobs {
                handoff.push(j);
            }
        });
    }

    /// The h2 thread's way: a burst queued without a wake, then one round
    /// of wakes for it (none when none was owed).
    #[test]
    fn bursts_queued_unwoken_are_all_taken_after_their_wake() {
        every_job_is_taken(|handoff, jobs| {
            let mut owed = false;
            for j in jobs {
                owed |= handoff.push_unwoken(j);
            }
            if owed {
                handoff.wake_for_queued();
            }
        });
    }
}
