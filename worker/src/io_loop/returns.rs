//! The return path: connections the request threads and the static lanes
//! give back (to wait for the next request, to close, closed, or with the
//! next request's head already routed). An h2 stream's connection that
//! comes back idle goes on to its pair's pool, never to wait here.

use super::{Entry, IoLoop, Mode};
use crate::handoff::{Returned, DIRECT};
use std::time::Instant;

impl IoLoop<'_> {
    pub(super) fn returned(&mut self, r: Returned) {
        if let Returned::Adopt(conn) = r {
            self.adopt(*conn);
            return;
        }
        if let Returned::Close(DIRECT, conn) | Returned::Routed(DIRECT, conn, _) = r {
            // Queued by the h2 thread: in the table only for its close.
            let token = self.insert(Entry::Busy);
            self.close(token, conn);
            return;
        }
        let token = match &r {
            Returned::Idle(token, _)
            | Returned::Close(token, _)
            | Returned::Routed(token, _, _) => *token,
            Returned::Closed(token) => {
                // Its socket is closed (which took it out of the poll):
                // only the entry is left to free.
                self.take(*token);
                return;
            }
            Returned::Adopt(_) => return,
        };
        if let Some(slot @ Some(Entry::Lane)) = self.entries.get_mut(token) {
            // Watched here again once it waits here (see `IoLoop::watch`).
            *slot = Some(Entry::Busy);
        }
        match r {
            Returned::Closed(_) | Returned::Adopt(_) => {}
            Returned::Close(token, conn) => self.close(token, conn),
            Returned::Routed(token, mut conn, routed) => {
                if let Mode::Draining { .. } = self.mode {
                    // Goes back to the master with the head still buffered.
                    self.hand_away(token, conn);
                    return;
                }
                conn.since = Instant::now();
                self.dispatch(token, conn, *routed);
            }
            Returned::Idle(token, conn) if conn.http2.is_some() => {
                // An h2 stream's: its pair's pool keeps it for the next
                // stream, whose request comes with it (draining: none will).
                self.unwatch(token, &conn);
                self.take(token);
                if let Mode::Serving = self.mode {
                    crate::http2::go_home(conn);
                }
            }
            Returned::Idle(token, mut conn) => {
                if let Mode::Draining { .. } = self.mode {
                    self.hand_away(token, conn);
                    return;
                }
                conn.since = Instant::now();
                if let Some(slot) = self.entries.get_mut(token) {
                    *slot = Some(Entry::Idle(conn));
                }
                // Bytes may have arrived while a request thread had it.
                self.read_conn(token);
            }
        }
    }

    /// A connection given back while draining leaves (see `give_up`). Its
    /// entry is `Busy`, so `take` cannot see whether it is still watched:
    /// it is deregistered here first, or the descriptor, alive in the
    /// master, would keep reporting to a token another connection gets.
    fn hand_away(&mut self, token: usize, conn: crate::conn::Conn) {
        self.unwatch(token, &conn);
        self.take(token);
        self.give_up(conn);
    }
}
