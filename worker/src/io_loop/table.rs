//! The table of connections this worker holds: tokens, the budget
//! (`--max-clients` and the descriptor limit), shedding the longest-waiting
//! when full, and what the master reads of it in the scoreboard.

use super::{Entry, IoLoop, FIRST_CONN};
use crate::conn::Conn;
use mio::unix::SourceFd;
use mio::{Interest, Token};
use slog::warn;

/// Descriptors kept free for what a request opens (static files, the
/// application's own), on top of those the connections use.
const FD_RESERVE: u64 = 16;

/// This process's descriptors: the limit, and how many were open before
/// the first connection (the application's own among them).
pub(super) struct Fds {
    pub(super) limit: u64,
    pub(super) baseline: u64,
}

impl IoLoop<'_> {
    /// The connections this worker holds at most: its share of
    /// `--max-clients`, and never so many that a hand-off could find no
    /// descriptor to arrive in (the kernel would drop the socket).
    pub(super) fn budget(&self) -> usize {
        let c = self.ctx.config;
        connection_budget(c.max_clients, c.processes, &self.fds)
    }

    /// At the budget, closes the connections that have gone longest
    /// without a complete request head (idle keep-alive ones, slow or
    /// silent new ones) so a new client can be held. Busy connections are
    /// never touched. This is what makes idle connections cheap: a flood of
    /// slow clients costs the oldest of them their connection, not new
    /// clients their service.
    pub(super) fn make_room(&mut self) {
        let held = self.entries.len() - self.free.len();
        if held < self.budget() {
            return;
        }
        let oldest = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(token, e)| match e {
                Some(Entry::Idle(conn)) => Some((conn.since, token)),
                // A body trickling in is a slow client too.
                Some(Entry::Body(r)) => Some((r.conn.since, token)),
                _ => None,
            })
            .min();
        if let Some((_, token)) = oldest {
            self.shed += 1;
            self.drop_conn(token);
        }
    }

    pub(super) fn insert(&mut self, entry: Entry) -> usize {
        let token = match self.free.pop() {
            Some(t) => {
                self.entries[t] = Some(entry);
                t
            }
            None => {
                self.entries.push(Some(entry));
                self.watched.push(false);
                self.entries.len() - 1
            }
        };
        self.publish_connections();
        token
    }

    /// Takes a connection's entry out of the table. A connection still in
    /// it stops being watched here (it closes, or goes to another thread);
    /// one a request thread or a lane holds was already taken out of the
    /// poll, or closed, which took it out.
    pub(super) fn take(&mut self, token: usize) -> Option<Entry> {
        let e = self.entries.get_mut(token)?.take();
        if let Some(entry) = &e {
            match entry.held() {
                Some(conn) => self.unwatch(token, conn),
                // Closed by whoever held it, if it was: no descriptor to
                // deregister (its number may already be another file's).
                None => self.watched[token] = false,
            }
            self.free.push(token);
            self.publish_connections();
        }
        e
    }

    /// Makes sure connection `token`'s socket is watched in this loop's
    /// poller: called when it is left to wait here for its client. A
    /// connection is registered only then, not when it arrives: a request
    /// that arrives whole (the common case: the listener defers accepts
    /// until data has come) runs and closes without an `epoll_ctl` of its
    /// own. Registering a socket that is already readable reports it at
    /// once, so nothing that arrived before is missed. When registering
    /// fails (logged), the entry is freed, which closes the socket.
    pub(super) fn watch(&mut self, token: usize) {
        if self.watched.get(token).copied().unwrap_or(true) {
            return;
        }
        let Some(fd) = self
            .entries
            .get(token)
            .and_then(Option::as_ref)
            .and_then(Entry::held)
            .map(|conn| conn.transport.fd())
        else {
            return;
        };
        let registered = self.ctx.poll.registry().register(
            &mut SourceFd(&fd),
            Token(token + FIRST_CONN),
            Interest::READABLE,
        );
        if let Err(e) = registered {
            warn!(self.ctx.log, "cannot watch a connection"; "error" => %e);
            self.take(token);
            return;
        }
        self.watched[token] = true;
    }

    /// Stops watching connection `token`'s socket here (it closes, or
    /// another thread watches it now). Nothing to do when it was not.
    pub(super) fn unwatch(&mut self, token: usize, conn: &Conn) {
        if let Some(w @ true) = self.watched.get_mut(token) {
            *w = false;
            let fd = conn.transport.fd();
            let _ = self.ctx.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    /// The master reads this to enforce `--max-clients`.
    pub(super) fn publish_connections(&self) {
        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
            // HTTPS connections still in their handshake are this
            // worker's too: --max-clients counts them.
            let handshaking = self.ctx.tls.map_or(0, |t| t.handshaking());
            let held = self.entries.len() - self.free.len();
            // HTTP/2 clients are the h2 thread's (see `H2::held`).
            let held = self.ctx.http2.map_or(held, |h2| h2.held(held));
            sb.set_connections(held + handshaking);
        }
        self.publish_fd_headroom(false);
    }

    /// How many more descriptors this worker can open, for the master's
    /// dispatch: estimated from the connections held, counted exactly in
    /// /proc when the estimate nears the limit (or `exact`).
    pub(super) fn publish_fd_headroom(&self, exact: bool) {
        let held = (self.entries.len() - self.free.len()) as u64;
        let mut used = self.fds.baseline + held;
        if exact || used * 2 > self.fds.limit {
            if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
                used = dir.count() as u64;
            }
        }
        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
            sb.set_fd_headroom(self.fds.limit.saturating_sub(used));
        }
    }
}

/// The connections a worker holds at most (see `IoLoop::budget`): its share
/// of `--max-clients`, within what its descriptor limit leaves after the
/// descriptors it had before the first connection and a reserve.
fn connection_budget(max_clients: usize, processes: usize, fds: &Fds) -> usize {
    let share = max_clients.div_ceil(processes.max(1)).max(1);
    let reserve = 2 * FD_RESERVE;
    let fits = fds.limit.saturating_sub(fds.baseline + reserve).max(1);
    share.min(usize::try_from(fits).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_a_share_of_max_clients_within_the_descriptors() {
        let plenty = Fds {
            limit: 1 << 20,
            baseline: 40,
        };
        assert_eq!(connection_budget(1000, 4, &plenty), 250);
        assert_eq!(connection_budget(1001, 4, &plenty), 251);
        assert_eq!(connection_budget(3, 8, &plenty), 1);
        assert_eq!(connection_budget(100, 0, &plenty), 100);
        let tight = Fds {
            limit: 256,
            baseline: 40,
        };
        assert_eq!(
            connection_budget(1000, 1, &tight),
            256 - 40 - 2 * FD_RESERVE as usize
        );
        let none_left = Fds {
            limit: 50,
            baseline: 40,
        };
        assert_eq!(connection_budget(1000, 1, &none_left), 1);
    }
}
