//! The return path: connections the request threads and the static lanes
//! give back (to wait for the next request, to close, closed, or with the
//! next request's head already routed).

use super::{Entry, IoLoop, Mode};
use crate::handoff::Returned;
use std::time::Instant;

impl IoLoop<'_> {
    pub(super) fn returned(&mut self, r: Returned) {
        if let Returned::Adopt(conn) = r {
            self.adopt(*conn);
            return;
        }
        let (token, conn) = match &r {
            Returned::Idle(token, conn)
            | Returned::Close(token, conn)
            | Returned::Routed(token, conn, _) => (token, conn),
            Returned::Closed(token) => {
                // Its socket is closed (which took it out of the poll):
                // only the entry is left to free.
                self.take(*token);
                return;
            }
            Returned::Adopt(_) => return,
        };
        if let Some(slot @ Some(Entry::Lane)) = self.entries.get_mut(*token) {
            *slot = Some(Entry::Busy);
            // Watched here again from now on (a closing connection too: its
            // client's FIN must wake this loop).
            if !self.watch(*token, conn.transport.fd()) {
                // Dropping `r` closes the socket.
                return;
            }
        }
        match r {
            Returned::Closed(_) | Returned::Adopt(_) => {}
            Returned::Close(token, conn) => self.close(token, conn),
            Returned::Routed(token, mut conn, routed) => {
                if let Mode::Draining { .. } = self.mode {
                    // Goes back to the master with the head still buffered.
                    self.take(token);
                    self.give_up(conn);
                    return;
                }
                conn.since = Instant::now();
                self.dispatch(token, conn, *routed);
            }
            Returned::Idle(token, mut conn) => {
                if let Mode::Draining { .. } = self.mode {
                    self.take(token);
                    self.give_up(conn);
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
}
