//! Connections: the listener, the queue of connections waiting for a
//! worker, hand-offs over the channels and hand-backs from draining workers.
//!
//! A connection goes to the worker holding the fewest connections (those
//! still in its channel counted), then to the one with the most free
//! threads, among those that have descriptors left to receive it; during a
//! reload the newest generation goes first while it has a free thread (see
//! `pick`). One no worker can take stays here until one can; beyond
//! `--max-clients` the master stops accepting only when no worker holds a
//! connection it could close to make room.

use crate::supervisor::Workers;
use mio::{Interest, Registry, Token};
use rwsgi_shared::channel::{Channel, ChannelError, Message};
use rwsgi_shared::origin::Origin;
use rwsgi_shared::scoreboard::Scoreboard;
use slog::{warn, Logger};
use std::collections::VecDeque;
use std::net::TcpStream;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// Descriptors a worker must have free, beyond the connections already on
/// their way to it, to be handed another one.
pub const MIN_FD_HEADROOM: i64 = 16;
/// Connections accepted but not yet handed to a worker; beyond this the
/// master stops accepting and lets the kernel backlog hold clients.
const MAX_PENDING: usize = 1024;

/// A connection waiting for a worker.
pub struct Pending {
    stream: TcpStream,
    /// The TCP peer, and what its PROXY preamble claimed once a worker
    /// read one (hand-backs).
    origin: Origin,
    accepted_at_us: u64,
    buffered: Vec<u8>,
}

/// The workers' side of a dispatch: their records, channels and scoreboard.
pub struct Fleet<'a> {
    pub workers: &'a mut Workers,
    pub channels: &'a [Option<Channel>],
    pub scoreboard: &'a Scoreboard,
}

/// A listening socket and whether it may have connections to accept.
struct Listening {
    socket: mio::net::TcpListener,
    readable: bool,
}

pub struct Dispatcher {
    /// The HTTP port, then the HTTPS port (`--https-port`): the master
    /// accepts on both alike; a worker tells them apart by the local port.
    listeners: Vec<Listening>,
    paused_until: Option<Instant>,
    pending: VecDeque<Pending>,
    rotate: usize,
    max_clients: usize,
    /// "holding connections" was logged since the queue was last empty.
    holding_logged: bool,
    log: Logger,
}

impl Dispatcher {
    pub fn new(
        sockets: Vec<(mio::net::TcpListener, Token)>,
        registry: &Registry,
        max_clients: usize,
        log: Logger,
    ) -> std::io::Result<Dispatcher> {
        let mut listeners = Vec::with_capacity(sockets.len());
        for (mut socket, token) in sockets {
            registry.register(&mut socket, token, Interest::READABLE)?;
            listeners.push(Listening {
                socket,
                readable: true,
            });
        }
        Ok(Dispatcher {
            listeners,
            paused_until: None,
            pending: VecDeque::new(),
            rotate: 0,
            max_clients,
            holding_logged: false,
            log,
        })
    }

    /// The `index`th listener reported readiness.
    pub fn listener_readable(&mut self, index: usize) {
        if let Some(l) = self.listeners.get_mut(index) {
            l.readable = true;
        }
    }

    /// Stops accepting. With `drain`, the connections already in the kernel
    /// backlog, which were promised service, are accepted and queued first.
    pub fn close_listener(&mut self, drain: bool, fleet: &mut Fleet<'_>, registry: &Registry) {
        if drain {
            for l in &mut self.listeners {
                l.readable = true;
            }
            self.paused_until = None;
            self.accept(fleet);
            self.dispatch_pending(fleet, false);
        }
        for mut l in self.listeners.drain(..) {
            let _ = registry.deregister(&mut l.socket);
        }
    }

    pub fn drop_pending(&mut self) {
        self.pending.clear();
    }

    /// Accepts while a worker can take connections and the limits allow.
    pub fn accept(&mut self, fleet: &mut Fleet<'_>) {
        if let Some(until) = self.paused_until {
            if Instant::now() < until {
                return;
            }
            self.paused_until = None;
        }
        for index in 0..self.listeners.len() {
            if !self.accept_from(index, fleet) {
                return;
            }
        }
    }

    /// Accepts from one listener until it has nothing more or the limits
    /// stop it; false when accepting must pause for every listener.
    fn accept_from(&mut self, index: usize, fleet: &mut Fleet<'_>) -> bool {
        while self.listeners.get(index).is_some_and(|l| l.readable)
            && fleet.workers.any_ready()
            && self.pending.len() < MAX_PENDING
            && (held(fleet, self.pending.len()) < self.max_clients || reclaimable(fleet) > 0)
        {
            let Some(listener) = self.listeners.get_mut(index) else {
                return true;
            };
            match listener.socket.accept() {
                Ok((stream, peer)) => {
                    // TCP_NODELAY comes from the listener (see `listener::bind`).
                    // The worker owns the socket from here; blocking mode is its choice.
                    let fd = OwnedFd::from(stream);
                    let conn = Pending {
                        stream: TcpStream::from(fd),
                        origin: Origin::accepted(peer),
                        accepted_at_us: rwsgi_shared::time::now_us(),
                        buffered: Vec::new(),
                    };
                    self.dispatch(conn, fleet);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => listener.readable = false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    warn!(self.log, "cannot accept: {}; pausing accepts for 100 ms", e);
                    self.paused_until = Some(Instant::now() + Duration::from_millis(100));
                    return false;
                }
                // ECONNABORTED and friends concern one client only.
                Err(_) => {}
            }
        }
        true
    }

    /// A connection a draining worker gave back, with what it had read.
    pub fn hand_back(
        &mut self,
        fd: OwnedFd,
        origin: Origin,
        buffered: Vec<u8>,
        fleet: &mut Fleet<'_>,
    ) {
        let conn = Pending {
            stream: TcpStream::from(fd),
            origin,
            accepted_at_us: rwsgi_shared::time::now_us(),
            buffered,
        };
        self.dispatch(conn, fleet);
    }

    fn dispatch(&mut self, conn: Pending, fleet: &mut Fleet<'_>) {
        let mut tried = Vec::new();
        loop {
            let Some(slot) = choose(fleet, &mut self.rotate, &tried) else {
                if !self.holding_logged && fleet.workers.any_ready() {
                    warn!(self.log, "holding connections: no worker can take one now (channels full, or descriptors short)";
                        "held" => self.pending.len() + 1);
                    self.holding_logged = true;
                }
                self.pending.push_back(conn);
                return;
            };
            let (Some(_), Some(Some(channel))) =
                (fleet.workers.get(slot), fleet.channels.get(slot))
            else {
                tried.push(slot);
                continue;
            };
            let msg = Message::Handoff {
                origin: conn.origin,
                accepted_at_us: conn.accepted_at_us,
                buffered: conn.buffered.clone(),
            };
            match channel.send(&msg, Some(conn.stream.as_fd())) {
                Ok(()) => {
                    fleet.workers.handed_off(slot);
                    return; // dropping `conn` closes the master's copy
                }
                Err(ChannelError::WouldBlock) => tried.push(slot),
                // This connection's fault, not the channel's (a worker's
                // hand-back is never this large: see `channel::MAX_BUFFERED`).
                Err(e @ ChannelError::TooLarge { .. }) => {
                    warn!(self.log, "cannot hand a connection to a worker; closing it"; "error" => %e, "client" => %conn.origin);
                    return;
                }
                Err(e) => {
                    warn!(self.log, "cannot hand a connection to worker"; "slot" => slot, "error" => %e);
                    fleet.workers.channel_closed(slot);
                    tried.push(slot);
                }
            }
        }
    }

    /// Hands queued connections to workers, oldest first. With no worker
    /// left to take them (`stopping`), they are dropped.
    pub fn dispatch_pending(&mut self, fleet: &mut Fleet<'_>, stopping: bool) {
        if self.pending.is_empty() {
            self.holding_logged = false;
        }
        for _ in 0..self.pending.len() {
            if !fleet.workers.any_ready() {
                if stopping {
                    self.pending.clear();
                }
                return;
            }
            let Some(conn) = self.pending.pop_front() else {
                return;
            };
            let before = self.pending.len();
            self.dispatch(conn, fleet);
            if self.pending.len() > before {
                return; // every channel is full; try again next turn
            }
        }
    }
}

/// Connections held by workers (or on their way) and waiting here, for `--max-clients`.
fn held(fleet: &Fleet<'_>, pending: usize) -> usize {
    let in_workers: u64 = fleet
        .workers
        .iter()
        .map(|(slot, w)| {
            // A worker not attached yet holds nothing; the slot's
            // counters are still its predecessor's.
            let sb = fleet.scoreboard.worker(slot).filter(|s| s.attached());
            let held = sb.map_or(0, |s| u64::from(s.connections()));
            held + w.sent.saturating_sub(sb.map_or(0, |s| s.accepted()))
        })
        .sum();
    in_workers as usize + pending
}

/// Connections the workers would close to make room for a new client
/// (idle, or without a complete request head), as of their last sweep.
fn reclaimable(fleet: &Fleet<'_>) -> usize {
    fleet
        .workers
        .iter()
        .filter(|(_, w)| w.accepts_work())
        .filter_map(|(slot, _)| fleet.scoreboard.worker(slot))
        .map(|sb| sb.idle_connections() as usize)
        .sum()
}

/// What the dispatcher weighs of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Load {
    slot: usize,
    /// Connections it holds, and those sent to it but not yet taken.
    connections: i64,
    /// Threads free for a request, less the connections on their way.
    free_threads: i64,
    /// Its generation: during a reload the old and the new one both serve.
    generation: u32,
}

/// The worker a new connection goes to: the one holding the fewest
/// connections, then the one with the most free threads, rotating among
/// equals. Connections first, because a keep-alive connection stays with
/// its worker: a burst of connections that arrives while one worker is
/// still busy must not all go to the other one (it did, and a sleeping
/// application then ran on half the threads). `loads` is in rotation order.
///
/// During a reload the newest generation goes first while it has a free
/// thread: once one new worker is ready, a client that got an answer from
/// the new code never gets one from the old code on its next connection
/// (nginx and Apache switch the same way: old workers stop accepting at
/// once). The old generation still takes what the new one has no thread
/// for, so a reload never lowers capacity.
fn pick(loads: &[Load]) -> Option<usize> {
    let newest = loads.iter().map(|l| l.generation).max()?;
    let reloading = loads.iter().any(|l| l.generation != newest);
    let fresh = loads
        .iter()
        .filter(|l| l.generation == newest && l.free_threads > 0);
    match fresh.clone().next() {
        Some(_) if reloading => fresh.min_by_key(key),
        _ => loads.iter().min_by_key(key),
    }
    .map(|l| l.slot)
}

fn key(l: &&Load) -> (i64, i64) {
    (l.connections, -l.free_threads)
}

/// Picks a worker slot (see `pick`).
fn choose(fleet: &Fleet<'_>, rotate: &mut usize, exclude: &[usize]) -> Option<usize> {
    let candidates: Vec<usize> = fleet
        .workers
        .iter()
        .filter(|(slot, w)| w.accepts_work() && !exclude.contains(slot))
        .map(|(slot, _)| slot)
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let n = candidates.len();
    let mut loads = Vec::with_capacity(n);
    for k in 0..n {
        let slot = candidates[(*rotate + k) % n];
        let (Some(worker), Some(sb)) = (fleet.workers.get(slot), fleet.scoreboard.worker(slot))
        else {
            continue;
        };
        let in_flight = worker.sent.saturating_sub(sb.accepted()) as i64;
        if i64::from(sb.fd_headroom()) - in_flight < MIN_FD_HEADROOM {
            continue;
        }
        loads.push(Load {
            slot,
            connections: i64::from(sb.connections()) + in_flight,
            free_threads: sb.free_threads() - in_flight,
            generation: worker.generation,
        });
    }
    *rotate = rotate.wrapping_add(1);
    pick(&loads)
}

#[cfg(test)]
mod tests {
    use super::{pick, Load};

    fn load(slot: usize, connections: i64, free_threads: i64) -> Load {
        Load {
            slot,
            connections,
            free_threads,
            generation: 1,
        }
    }

    #[test]
    fn during_a_reload_the_new_generation_goes_first_while_it_has_threads() {
        let new = |slot, connections, free_threads| Load {
            generation: 2,
            ..load(slot, connections, free_threads)
        };
        // The old workers hold fewer connections, yet the new one is chosen.
        assert_eq!(pick(&[load(0, 0, 4), new(2, 3, 1), load(1, 0, 4)]), Some(2));
        // Among new workers the usual rule.
        assert_eq!(pick(&[new(2, 3, 1), new(3, 1, 1)]), Some(3));
        // The new generation has no thread free: the old takes the connection.
        assert_eq!(pick(&[load(0, 2, 4), new(2, 4, 0), load(1, 1, 4)]), Some(1));
        // One generation: the usual rule, even for a worker with no free thread.
        assert_eq!(pick(&[new(2, 3, 1), new(3, 1, 0)]), Some(3));
    }

    #[test]
    fn a_burst_is_shared_even_while_one_worker_is_busy() {
        // Worker 1 is still busy with the last requests of closed connections.
        let mut conns = [0i64, 0];
        let busy = [4i64, 0];
        for k in 0..64 {
            let loads: Vec<Load> = (0..2)
                .map(|i| (i + k) % 2)
                .map(|s| load(s, conns[s], 4 - busy[s] - conns[s].min(4)))
                .collect();
            let s = pick(&loads).expect("a worker");
            conns[s] += 1;
        }
        assert_eq!(conns, [32, 32]);
    }

    #[test]
    fn among_equal_connections_the_freer_worker_wins_then_rotation() {
        assert_eq!(pick(&[load(0, 3, 0), load(1, 3, 2)]), Some(1));
        assert_eq!(pick(&[load(1, 3, 2), load(0, 3, 2)]), Some(1));
        assert_eq!(pick(&[load(0, 3, 2), load(1, 3, 2)]), Some(0));
        // A worker stuck on long requests holds their connections: avoided.
        assert_eq!(pick(&[load(0, 4, 0), load(1, 1, 3)]), Some(1));
        assert_eq!(pick(&[]), None);
    }
}
