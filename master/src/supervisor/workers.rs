//! The supervisor's view of its workers: one record per scoreboard slot,
//! plain data (the channels live with `effects`), so the supervisor's
//! decisions can be tested without processes. Only the supervisor adds,
//! removes or changes records; the dispatcher may only count what it sends
//! and mark a channel that failed ([`Workers::handed_off`],
//! [`Workers::channel_closed`]).

use std::time::Instant;

/// Where a worker is in its life, from the master's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Spawned, not yet ready.
    Starting,
    /// Taking connections.
    Ready,
    /// Told to stop; takes no new connections; killed at the deadline.
    Stopping { deadline: Instant },
}

/// One live worker process.
#[derive(Debug, Clone)]
pub struct Worker {
    pub pid: u32,
    pub generation: u32,
    /// The channel reached EOF or failed: nothing more can be sent.
    pub channel_open: bool,
    /// Connections sent over the channel (compared with the worker's
    /// `accepted` counter to know how many are still in flight).
    pub sent: u64,
    pub phase: Phase,
    pub spawned_at: Instant,
    /// Why this worker is being replaced; it keeps serving until its
    /// replacement is ready.
    pub retiring: Option<String>,
    /// `--maximum-requests` plus this worker's jitter.
    pub request_limit: u64,
    /// `--restart-interval` plus this worker's jitter.
    pub restart_after: std::time::Duration,
    /// Its heartbeat is stale: it gets no new connections until it beats again.
    pub unresponsive: bool,
    /// A request overran `--request-timeout`: no new connections, and once
    /// stopping it has `--graceful-timeout`, not more.
    pub stuck: bool,
    /// Why the master killed it, for the log when it is reaped.
    pub killed: Option<String>,
    /// Why it is killed if it is still alive at its stop deadline.
    pub overdue: &'static str,
    /// Why it was stopped or killed, as the metrics count it ("" until then).
    pub exit_reason: &'static str,
    /// `--inactivity-timeout`: the requests it had served when it was last
    /// seen busy, and when that was.
    pub active_requests: u64,
    pub active_at: Instant,
}

impl Worker {
    pub fn accepts_work(&self) -> bool {
        self.phase == Phase::Ready && self.channel_open && !self.unresponsive && !self.stuck
    }

    /// A worker just spawned for `generation`.
    pub fn new(pid: u32, generation: u32, now: Instant) -> Worker {
        Worker {
            pid,
            generation,
            channel_open: true,
            sent: 0,
            phase: Phase::Starting,
            spawned_at: now,
            retiring: None,
            request_limit: u64::MAX,
            restart_after: std::time::Duration::MAX,
            unresponsive: false,
            stuck: false,
            killed: None,
            overdue: "",
            exit_reason: "",
            active_requests: 0,
            active_at: now,
        }
    }

    pub fn is_stopping(&self) -> bool {
        matches!(self.phase, Phase::Stopping { .. })
    }

    /// An old generation or a retiring worker: to be stopped once a
    /// replacement is ready.
    pub fn is_replaceable(&self, generation: u32) -> bool {
        self.generation != generation || self.retiring.is_some()
    }
}

/// Workers indexed by scoreboard slot.
pub struct Workers {
    slots: Vec<Option<Worker>>,
}

impl Workers {
    pub(super) fn new(capacity: usize) -> Workers {
        Workers {
            slots: (0..capacity).map(|_| None).collect(),
        }
    }

    pub fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(Option::is_none)
    }

    pub(super) fn insert(&mut self, slot: usize, worker: Worker) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(worker);
        }
    }

    pub(super) fn remove(&mut self, slot: usize) -> Option<Worker> {
        self.slots.get_mut(slot).and_then(Option::take)
    }

    pub fn get(&self, slot: usize) -> Option<&Worker> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    pub(super) fn get_mut(&mut self, slot: usize) -> Option<&mut Worker> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    pub fn slot_of_pid(&self, pid: u32) -> Option<usize> {
        self.iter().find(|(_, w)| w.pid == pid).map(|(i, _)| i)
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &Worker)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.as_ref().map(|w| (i, w)))
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut Worker)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, w)| w.as_mut().map(|w| (i, w)))
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// Live workers of `generation` that are neither stopping nor retiring.
    pub fn serving_count(&self, generation: u32) -> usize {
        self.iter()
            .filter(|(_, w)| !w.is_replaceable(generation) && !w.is_stopping())
            .count()
    }

    pub fn any_ready(&self) -> bool {
        self.iter().any(|(_, w)| w.accepts_work())
    }

    /// A connection was sent over `slot`'s channel.
    pub fn handed_off(&mut self, slot: usize) {
        if let Some(w) = self.get_mut(slot) {
            w.sent += 1;
        }
    }

    /// `slot`'s channel reached EOF or failed: nothing more can be sent.
    pub fn channel_closed(&mut self, slot: usize) {
        if let Some(w) = self.get_mut(slot) {
            w.channel_open = false;
        }
    }
}
