//! The shared-memory scoreboard.
//!
//! One `memfd`, sized once and sealed against resizing, mapped `MAP_SHARED` by
//! the master and inherited by every worker across exec. The layout is
//! `#[repr(C)]` fixed arrays of fixed-width atomics, no pointers.
//!
//! Each field is written by one process, named on the field; the other
//! only reads it:
//! - the header: the master (a worker or `rwsgi status` only reads it);
//! - a slot's first block (`pid`, `generation`, `threads`, `epoch`,
//!   `spawned_at_ms`): the master, and only while no worker of the slot can
//!   run (`claim`, before it starts or asks the template to fork the
//!   worker; `release`, after the worker was reaped), except `pid`, which
//!   no worker relies on (`set_pid`, once the master learns it);
//! - the rest of a slot: its worker. A forked worker runs before the master
//!   knows its pid, so the master never resets these fields: the worker
//!   initialises them itself when it attaches (`attach`), then stamps them
//!   with the slot's occupancy `epoch` it was started with. Inside the
//!   worker several threads write them: the counters (`busy_threads`,
//!   `requests`, the activity counts, the metrics) take atomic adds from
//!   whichever thread counts (request threads, the I/O thread, the
//!   static-file threads), and `queued` is stored by the I/O thread when
//!   it queues a request and by the request thread that takes one (each
//!   stores the length it saw; the last store stands). The other fields
//!   are the I/O thread's, except `python_heartbeat_ms` (the thread that
//!   takes the GIL to beat it);
//! - a thread's block: that request thread alone (cleared by `attach`
//!   before any thread exists).
//!
//! Each occupancy of a slot has its own epoch, bumped by the master before
//! the worker can run (and again when it releases the slot). Until the
//! worker's stamp equals the slot's epoch (`attached`), the worker's fields
//! still describe the previous occupant, and the master, `rwsgi status` and
//! the liveness judge ignore them: no reading is charged to the wrong worker.

use crate::metrics::Metrics;
use memmap2::MmapMut;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

pub const MAGIC: u64 = 0x7277_7367_695f_7362; // "rwsgi_sb"
pub const LAYOUT_VERSION: u32 = 8;
/// Worker slots: room for a full second generation during a reload.
pub const MAX_WORKERS: usize = 128;
/// Request threads per worker.
pub const MAX_THREADS: usize = 256;
/// Bytes of the request path kept per thread for status pages and stack dumps.
pub const PATH_PREFIX: usize = 48;

#[derive(Debug, thiserror::Error)]
pub enum ScoreboardError {
    #[error("cannot create the scoreboard: {0}")]
    Create(#[source] std::io::Error),
    #[error("cannot map the scoreboard: {0}")]
    Map(#[source] std::io::Error),
    #[error("the scoreboard is {0} bytes, expected {1}")]
    Size(usize, usize),
    #[error(
        "the scoreboard has magic {0:#x} version {1}, expected {MAGIC:#x} version {LAYOUT_VERSION}"
    )]
    Layout(u64, u32),
}

/// Life-cycle state of a worker, written by the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum WorkerState {
    Empty = 0,
    Starting = 1,
    Ready = 2,
    Draining = 3,
    Exited = 4,
}

impl WorkerState {
    fn from_u32(v: u32) -> WorkerState {
        match v {
            1 => WorkerState::Starting,
            2 => WorkerState::Ready,
            3 => WorkerState::Draining,
            4 => WorkerState::Exited,
            _ => WorkerState::Empty,
        }
    }
}

/// What a request thread is doing, written by that thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ThreadState {
    Idle = 0,
    /// Running the application for a request.
    Busy = 1,
}

#[repr(C)]
pub struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    max_workers: AtomicU32,
    max_threads: AtomicU32,
    master_pid: AtomicU32,
    started_at_ms: AtomicU64,
    /// Master: current generation (bumped on every reload).
    generation: AtomicU32,
    /// Master: the number of workers it wants running.
    wanted_workers: AtomicU32,
    /// Master: the pid of the template workers are forked from (0: none).
    template_pid: AtomicU32,
    /// Master: the metrics of every worker that has exited, folded in when
    /// it is reaped, so totals never go down.
    retired: Metrics,
    /// Master: workers started, and exited by reason (the supervisor's
    /// order of reasons), requests past --request-timeout.
    worker_starts: AtomicU64,
    worker_exits: [AtomicU64; WORKER_EXIT_REASONS],
    request_timeouts: AtomicU64,
    /// Master: capacity utilization over the last 10 s, in millionths.
    utilization_ppm: AtomicU64,
}

/// How many exit reasons the header counts.
pub const WORKER_EXIT_REASONS: usize = 11;

/// Why workers exit, as the metrics and `rwsgi status --json` label them.
pub const EXIT_REASONS: [&str; WORKER_EXIT_REASONS] = [
    "crash",
    "max-requests",
    "restart-interval",
    "memory",
    "cpu",
    "request-timeout",
    "deadlock",
    "startup-timeout",
    "reload",
    "scale-down",
    "shutdown",
];

/// The master's own counters, as published in the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MasterCounters {
    pub worker_starts: u64,
    pub worker_exits: [u64; WORKER_EXIT_REASONS],
    pub request_timeouts: u64,
    pub utilization_ppm: u64,
}

/// Per-thread activity. Written only by the thread it describes (cleared
/// by its worker's `attach`, before the thread exists).
#[repr(C)]
pub struct ThreadSlot {
    state: AtomicU32,
    client_port: AtomicU32,
    request_started_ms: AtomicU64,
    requests: AtomicU64,
    method: AtomicU64,
    path: [AtomicU64; PATH_PREFIX / 8],
    client_ip: [AtomicU64; 2],
}

/// One worker process. The first block is written by the master, the rest by the worker.
#[repr(C)]
pub struct WorkerSlot {
    // Written by the master.
    /// The occupant's pid, 0 while the slot is free (or its worker is not
    /// started yet). Set once the master learns it: after the worker runs.
    pid: AtomicU32,
    /// Written by `claim`, before the worker can run.
    generation: AtomicU32,
    threads: AtomicU32,
    /// This occupancy of the slot, bumped by `claim` (never 0 once claimed).
    epoch: AtomicU32,
    /// When the occupancy began (`claim`, monotonic ms): liveness is never
    /// measured from before it.
    spawned_at_ms: AtomicU64,
    // Written by the worker (initialised by it in `attach`).
    /// The epoch the worker was started with, stored last by `attach`:
    /// the worker's fields belong to this occupancy only when it equals `epoch`.
    attached_epoch: AtomicU32,
    /// `--inactivity-timeout`: requests running that count as activity
    /// (those under `--ignore-activity` do not).
    active_busy: AtomicU32,
    state: AtomicU32,
    busy_threads: AtomicU32,
    queued: AtomicU32,
    idle_connections: AtomicU32,
    /// Connections the worker holds (idle, reading or running).
    connections: AtomicU32,
    /// Descriptors the worker can still open (its limit minus those open):
    /// the master hands it no connection it could not receive.
    fd_headroom: AtomicU32,
    /// Connections received from the master.
    accepted: AtomicU64,
    requests: AtomicU64,
    /// Beaten by the I/O thread (without the GIL) every sweep.
    heartbeat_ms: AtomicU64,
    ready_at_ms: AtomicU64,
    /// Beaten by a thread that takes the GIL for it: stale while C code
    /// holds the GIL (or the whole process is stopped).
    python_heartbeat_ms: AtomicU64,
    /// `--inactivity-timeout`: requests finished that count as activity.
    active_requests: AtomicU64,
    /// This worker's request metrics.
    metrics: Metrics,
    thread: [ThreadSlot; MAX_THREADS],
}

#[repr(C)]
struct Layout {
    header: Header,
    workers: [WorkerSlot; MAX_WORKERS],
}

/// A mapped scoreboard. Cheap to share by reference between threads.
pub struct Scoreboard {
    map: MmapMut,
    file: File,
}

impl Scoreboard {
    pub const SIZE: usize = std::mem::size_of::<Layout>();

    /// Creates, sizes, seals and initialises a new scoreboard (master).
    pub fn create(master_pid: u32) -> Result<Scoreboard, ScoreboardError> {
        let fd = memfd_create(
            "rwsgi-scoreboard",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|e| ScoreboardError::Create(e.into()))?;
        let file = File::from(fd);
        file.set_len(Self::SIZE as u64)
            .map_err(ScoreboardError::Create)?;
        fcntl(
            file.as_fd(),
            FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW),
        )
        .map_err(|e| ScoreboardError::Create(e.into()))?;
        let sb = Self::map(file)?;
        let h = sb.header();
        h.version.store(LAYOUT_VERSION, Relaxed);
        h.max_workers.store(MAX_WORKERS as u32, Relaxed);
        h.max_threads.store(MAX_THREADS as u32, Relaxed);
        h.master_pid.store(master_pid, Relaxed);
        h.started_at_ms.store(crate::time::now_ms(), Relaxed);
        h.magic.store(MAGIC, std::sync::atomic::Ordering::Release);
        Ok(sb)
    }

    /// Maps an inherited scoreboard and checks its layout (worker, `rwsgi status`).
    pub fn attach(fd: OwnedFd) -> Result<Scoreboard, ScoreboardError> {
        let file = File::from(fd);
        let len = file.metadata().map_err(ScoreboardError::Map)?.len() as usize;
        if len != Self::SIZE {
            return Err(ScoreboardError::Size(len, Self::SIZE));
        }
        let sb = Self::map(file)?;
        let h = sb.header();
        let (magic, version) = (
            h.magic.load(std::sync::atomic::Ordering::Acquire),
            h.version.load(Relaxed),
        );
        if magic != MAGIC || version != LAYOUT_VERSION {
            return Err(ScoreboardError::Layout(magic, version));
        }
        Ok(sb)
    }

    fn map(file: File) -> Result<Scoreboard, ScoreboardError> {
        // SAFETY: the memfd is sealed against shrinking, so the mapping never
        // loses its backing pages; every byte is only accessed through atomics.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(ScoreboardError::Map)?;
        if map.len() != Self::SIZE {
            return Err(ScoreboardError::Size(map.len(), Self::SIZE));
        }
        Ok(Scoreboard { map, file })
    }

    fn layout(&self) -> &Layout {
        // SAFETY: the map is page-aligned, exactly `size_of::<Layout>()` long,
        // zero-initialised by the kernel, and `Layout` consists only of atomics
        // (for which all-zero bytes are valid), so shared references are sound
        // even while other processes write the same memory.
        unsafe { &*(self.map.as_ptr() as *const Layout) }
    }

    pub fn header(&self) -> &Header {
        &self.layout().header
    }

    /// The slot at `index`, or `None` beyond `MAX_WORKERS`.
    pub fn worker(&self, index: usize) -> Option<&WorkerSlot> {
        self.layout().workers.get(index)
    }

    pub fn workers(&self) -> impl Iterator<Item = (usize, &WorkerSlot)> {
        self.layout().workers.iter().enumerate()
    }

    /// The descriptor to pass to workers.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Header {
    pub fn master_pid(&self) -> u32 {
        self.master_pid.load(Relaxed)
    }
    pub fn generation(&self) -> u32 {
        self.generation.load(Relaxed)
    }
    pub fn set_generation(&self, generation: u32) {
        self.generation.store(generation, Relaxed)
    }
    /// The template's pid, `None` without one (`--preload none`, or while
    /// a new one starts).
    pub fn template_pid(&self) -> Option<u32> {
        Some(self.template_pid.load(Relaxed)).filter(|&p| p != 0)
    }
    pub fn set_template_pid(&self, pid: Option<u32>) {
        self.template_pid.store(pid.unwrap_or(0), Relaxed)
    }
    /// Publishes the master's counters (the master only).
    pub fn set_master_counters(&self, c: &MasterCounters) {
        self.worker_starts.store(c.worker_starts, Relaxed);
        for (a, v) in self.worker_exits.iter().zip(c.worker_exits) {
            a.store(v, Relaxed);
        }
        self.request_timeouts.store(c.request_timeouts, Relaxed);
        self.utilization_ppm.store(c.utilization_ppm, Relaxed);
    }

    pub fn master_counters(&self) -> MasterCounters {
        MasterCounters {
            worker_starts: self.worker_starts.load(Relaxed),
            worker_exits: std::array::from_fn(|i| self.worker_exits[i].load(Relaxed)),
            request_timeouts: self.request_timeouts.load(Relaxed),
            utilization_ppm: self.utilization_ppm.load(Relaxed),
        }
    }

    /// The folded metrics of exited workers (written by the master).
    pub fn retired(&self) -> &Metrics {
        &self.retired
    }

    /// When the master started (monotonic ms).
    pub fn started_at_ms(&self) -> u64 {
        self.started_at_ms.load(Relaxed)
    }
    pub fn wanted_workers(&self) -> u32 {
        self.wanted_workers.load(Relaxed)
    }
    pub fn set_wanted_workers(&self, n: u32) {
        self.wanted_workers.store(n, Relaxed)
    }
}

impl WorkerSlot {
    // --- master side ---

    /// Claims the slot for a worker about to be started, before it can run:
    /// a new epoch, the generation and thread count it is started with, and
    /// the occupancy's start. Returns the epoch to hand to the worker. The
    /// worker's own fields are left to it (`attach`).
    pub fn claim(&self, generation: u32, threads: u32) -> u32 {
        use std::sync::atomic::Ordering::Release;
        let epoch = next_epoch(self.epoch.load(Relaxed));
        self.pid.store(0, Release);
        self.generation.store(generation, Relaxed);
        self.threads.store(threads, Relaxed);
        self.spawned_at_ms.store(crate::time::now_ms(), Relaxed);
        self.epoch.store(epoch, Release);
        epoch
    }

    /// Records the pid of the slot's worker, once the master learns it (a
    /// forked worker may be serving already).
    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, std::sync::atomic::Ordering::Release);
    }

    /// Marks the slot free after its worker was reaped, folding its
    /// metrics into `retired` (the worker is gone: nothing writes them
    /// now). A worker that died before it attached has no metrics of its
    /// own: the slot's are the previous occupant's, already folded. The
    /// occupancy ends with a new epoch, so nothing started for it can
    /// attach any more.
    pub fn release(&self, retired: &Metrics) {
        use std::sync::atomic::Ordering::Release;
        if self.attached() {
            retired.add(&self.metrics.snapshot());
        }
        self.epoch
            .store(next_epoch(self.epoch.load(Relaxed)), Release);
        self.pid.store(0, Release);
    }

    /// This occupancy's epoch (0: never claimed).
    pub fn epoch(&self) -> u32 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the worker's fields describe the current occupant: it has
    /// attached with the slot's epoch. Read before the worker's fields.
    pub fn attached(&self) -> bool {
        let stamp = self
            .attached_epoch
            .load(std::sync::atomic::Ordering::Acquire);
        belongs(self.epoch(), stamp)
    }

    pub fn pid(&self) -> u32 {
        self.pid.load(Relaxed)
    }
    pub fn generation(&self) -> u32 {
        self.generation.load(Relaxed)
    }
    pub fn threads(&self) -> u32 {
        self.threads.load(Relaxed)
    }
    pub fn spawned_at_ms(&self) -> u64 {
        self.spawned_at_ms.load(Relaxed)
    }

    // --- worker side ---

    /// Takes the slot for the occupancy of `epoch` (the one the master
    /// started this worker with): initialises every field the worker owns,
    /// then stamps them with `epoch`. `false`, with nothing written, if the
    /// slot has moved on to another occupancy (the master gave up on this
    /// worker, e.g. a fork that answered too late).
    pub fn attach(&self, epoch: u32) -> bool {
        if epoch == 0 || self.epoch() != epoch {
            return false;
        }
        self.state.store(WorkerState::Starting as u32, Relaxed);
        self.busy_threads.store(0, Relaxed);
        self.queued.store(0, Relaxed);
        self.idle_connections.store(0, Relaxed);
        self.connections.store(0, Relaxed);
        self.fd_headroom.store(u32::MAX, Relaxed);
        self.accepted.store(0, Relaxed);
        self.requests.store(0, Relaxed);
        self.heartbeat_ms.store(0, Relaxed);
        self.ready_at_ms.store(0, Relaxed);
        self.python_heartbeat_ms.store(0, Relaxed);
        self.active_busy.store(0, Relaxed);
        self.active_requests.store(0, Relaxed);
        self.metrics.clear();
        for t in self.thread.iter() {
            t.state.store(ThreadState::Idle as u32, Relaxed);
            t.request_started_ms.store(0, Relaxed);
            t.requests.store(0, Relaxed);
        }
        self.attached_epoch
            .store(epoch, std::sync::atomic::Ordering::Release);
        true
    }

    pub fn set_state(&self, state: WorkerState) {
        if state == WorkerState::Ready {
            self.ready_at_ms.store(crate::time::now_ms(), Relaxed);
        }
        self.state
            .store(state as u32, std::sync::atomic::Ordering::Release);
    }
    pub fn state(&self) -> WorkerState {
        WorkerState::from_u32(self.state.load(std::sync::atomic::Ordering::Acquire))
    }
    pub fn ready_at_ms(&self) -> u64 {
        self.ready_at_ms.load(Relaxed)
    }
    pub fn note_accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
        self.metrics.accepted();
    }
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Relaxed)
    }
    pub fn set_queued(&self, n: usize) {
        self.queued.store(n as u32, Relaxed);
    }
    pub fn queued(&self) -> u32 {
        self.queued.load(Relaxed)
    }
    pub fn set_idle_connections(&self, n: usize) {
        self.idle_connections.store(n as u32, Relaxed);
    }
    pub fn idle_connections(&self) -> u32 {
        self.idle_connections.load(Relaxed)
    }
    pub fn set_connections(&self, n: usize) {
        self.connections.store(n as u32, Relaxed);
    }
    pub fn set_fd_headroom(&self, n: u64) {
        self.fd_headroom
            .store(u32::try_from(n).unwrap_or(u32::MAX), Relaxed);
    }
    pub fn fd_headroom(&self) -> u32 {
        self.fd_headroom.load(Relaxed)
    }
    pub fn connections(&self) -> u32 {
        self.connections.load(Relaxed)
    }
    pub fn busy_threads(&self) -> u32 {
        self.busy_threads.load(Relaxed)
    }
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }
    /// A request that counts as activity starts (`--ignore-activity`).
    pub fn begin_activity(&self) {
        self.active_busy.fetch_add(1, Relaxed);
    }
    /// It ends: counted before it stops running, so the master never sees
    /// neither.
    pub fn end_activity(&self) {
        self.active_requests.fetch_add(1, Relaxed);
        self.active_busy.fetch_sub(1, Relaxed);
    }
    /// Requests that counted as activity: (finished, running).
    pub fn activity(&self) -> (u64, u32) {
        (
            self.active_requests.load(Relaxed),
            self.active_busy.load(Relaxed),
        )
    }
    pub fn heartbeat(&self) {
        self.heartbeat_ms.store(crate::time::now_ms(), Relaxed);
    }
    /// This worker's request metrics (written by the worker).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    pub fn python_heartbeat(&self) {
        self.python_heartbeat_ms
            .store(crate::time::now_ms(), Relaxed);
    }
    pub fn python_heartbeat_ms(&self) -> u64 {
        self.python_heartbeat_ms.load(Relaxed)
    }
    pub fn heartbeat_ms(&self) -> u64 {
        self.heartbeat_ms.load(Relaxed)
    }

    /// Threads neither running a request nor spoken for by a queued one.
    pub fn free_threads(&self) -> i64 {
        i64::from(self.threads()) - i64::from(self.busy_threads()) - i64::from(self.queued())
    }

    pub fn thread(&self, index: usize) -> Option<&ThreadSlot> {
        self.thread.get(index)
    }

    /// Records that thread `index` started a request (worker, request thread).
    pub fn begin_request(
        &self,
        index: usize,
        method: &str,
        path: &str,
        client: std::net::SocketAddr,
    ) {
        self.busy_threads.fetch_add(1, Relaxed);
        if let Some(t) = self.thread.get(index) {
            t.begin(method, path, client);
        }
    }

    /// Records that thread `index` finished its request.
    pub fn end_request(&self, index: usize) {
        self.busy_threads.fetch_sub(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        if let Some(t) = self.thread.get(index) {
            t.end();
        }
    }

    /// The longest-running request of this worker: (thread index, started at ms).
    pub fn oldest_request(&self) -> Option<(usize, u64)> {
        let n = (self.threads() as usize).min(MAX_THREADS);
        self.thread[..n]
            .iter()
            .enumerate()
            .filter(|(_, t)| t.state() == ThreadState::Busy)
            .map(|(i, t)| (i, t.request_started_ms()))
            .filter(|(_, started)| *started > 0)
            .min_by_key(|(_, started)| *started)
    }
}

/// The epoch after `epoch`; 0 is skipped, as a never-used slot's stamp is 0.
pub fn next_epoch(epoch: u32) -> u32 {
    match epoch.wrapping_add(1) {
        0 => 1,
        e => e,
    }
}

/// Whether a worker's stamp `stamp` belongs to the slot's occupancy `epoch`.
pub fn belongs(epoch: u32, stamp: u32) -> bool {
    epoch != 0 && stamp == epoch
}

pub(crate) fn pack(bytes: &[u8], out: &[AtomicU64]) {
    for (i, word) in out.iter().enumerate() {
        let mut chunk = [0u8; 8];
        let start = i * 8;
        if start < bytes.len() {
            let end = (start + 8).min(bytes.len());
            chunk[..end - start].copy_from_slice(&bytes[start..end]);
        }
        word.store(u64::from_le_bytes(chunk), Relaxed);
    }
}

pub(crate) fn unpack(words: &[AtomicU64]) -> String {
    let mut bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.load(Relaxed).to_le_bytes())
        .collect();
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

impl ThreadSlot {
    fn begin(&self, method: &str, path: &str, client: std::net::SocketAddr) {
        pack(method.as_bytes(), std::slice::from_ref(&self.method));
        pack(path.as_bytes(), &self.path);
        let octets = match client.ip() {
            std::net::IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(ip) => ip.octets(),
        };
        pack(&octets, &self.client_ip);
        self.client_port.store(u32::from(client.port()), Relaxed);
        self.request_started_ms
            .store(crate::time::now_ms(), Relaxed);
        self.state.store(
            ThreadState::Busy as u32,
            std::sync::atomic::Ordering::Release,
        );
    }

    fn end(&self) {
        self.requests.fetch_add(1, Relaxed);
        self.state.store(
            ThreadState::Idle as u32,
            std::sync::atomic::Ordering::Release,
        );
        self.request_started_ms.store(0, Relaxed);
    }

    pub fn state(&self) -> ThreadState {
        match self.state.load(std::sync::atomic::Ordering::Acquire) {
            1 => ThreadState::Busy,
            _ => ThreadState::Idle,
        }
    }
    pub fn request_started_ms(&self) -> u64 {
        self.request_started_ms.load(Relaxed)
    }
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }
    /// The client of the current (or last) request (`mod_wsgi.server_metrics()`).
    pub fn client(&self) -> std::net::SocketAddr {
        let mut octets = [0u8; 16];
        for (i, w) in self.client_ip.iter().enumerate() {
            octets[i * 8..i * 8 + 8].copy_from_slice(&w.load(Relaxed).to_le_bytes());
        }
        let ip = std::net::Ipv6Addr::from(octets);
        let ip = ip
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(ip), std::net::IpAddr::V4);
        std::net::SocketAddr::new(ip, self.client_port.load(Relaxed) as u16)
    }
    /// Method and path prefix of the current request, for logs and status.
    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            unpack(std::slice::from_ref(&self.method)),
            unpack(&self.path)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_sees_what_the_master_wrote_through_a_second_mapping() {
        let master = Scoreboard::create(1234).expect("create");
        let dup = master.fd().try_clone_to_owned().expect("dup");
        let worker = Scoreboard::attach(dup).expect("attach");
        assert_eq!(worker.header().master_pid(), 1234);
        let epoch = master.worker(3).expect("slot").claim(2, 4);
        master.worker(3).expect("slot").set_pid(999);
        let slot = worker.worker(3).expect("slot");
        assert!(slot.attach(epoch));
        assert_eq!((slot.pid(), slot.generation(), slot.threads()), (999, 2, 4));
        slot.set_state(WorkerState::Ready);
        slot.begin_request(1, "GET", "/hello", "127.0.0.1:5000".parse().expect("addr"));
        let seen = master.worker(3).expect("slot");
        assert_eq!(seen.state(), WorkerState::Ready);
        assert_eq!(seen.free_threads(), 3);
        assert_eq!(seen.oldest_request().map(|(i, _)| i), Some(1));
        assert_eq!(seen.thread(1).expect("thread").describe(), "GET /hello");
        assert_eq!(
            seen.thread(1).expect("thread").client().to_string(),
            "127.0.0.1:5000"
        );
        slot.end_request(1);
        assert_eq!(seen.free_threads(), 4);
        assert_eq!(seen.requests(), 1);
    }

    /// The master's and a worker's view of one slot, through two mappings
    /// as across processes.
    fn pair() -> (Scoreboard, Scoreboard) {
        let master = Scoreboard::create(1).expect("create");
        let worker =
            Scoreboard::attach(master.fd().try_clone_to_owned().expect("dup")).expect("attach");
        (master, worker)
    }

    /// A worker that served and beat for a while, then died.
    fn earlier_occupant(master: &WorkerSlot, worker: &WorkerSlot) {
        let epoch = master.claim(1, 2);
        master.set_pid(100);
        assert!(worker.attach(epoch));
        worker.set_state(WorkerState::Ready);
        worker.heartbeat();
        worker.python_heartbeat();
        worker.note_accepted();
        worker.begin_request(0, "GET", "/", "127.0.0.1:1".parse().expect("addr"));
        worker.end_request(0);
        master.release(&Metrics::default());
    }

    #[test]
    fn a_forked_worker_that_runs_before_the_master_knows_it_keeps_its_fields() {
        // Worker first: forked from the template, it attaches, becomes
        // ready and beats before the master records its pid.
        let (m, w) = pair();
        let (master, worker) = (m.worker(0).expect("slot"), w.worker(0).expect("slot"));
        earlier_occupant(master, worker);
        let epoch = master.claim(2, 2);
        assert!(!master.attached(), "the earlier occupant's fields count");
        assert!(worker.attach(epoch));
        worker.set_state(WorkerState::Ready);
        worker.heartbeat();
        let (ready_at, beat) = (worker.ready_at_ms(), worker.heartbeat_ms());
        assert!(ready_at > 0 && beat > 0);
        master.set_pid(200);
        // Nothing the worker wrote was reset by the master.
        assert!(master.attached());
        assert_eq!(master.state(), WorkerState::Ready);
        assert_eq!(
            (master.ready_at_ms(), master.heartbeat_ms()),
            (ready_at, beat)
        );
        assert_eq!((master.pid(), master.generation()), (200, 2));
        assert!(master.spawned_at_ms() > 0);
    }

    #[test]
    fn until_the_worker_attaches_the_earlier_occupants_fields_are_not_its() {
        // Master first: the slot is claimed and the pid known before the
        // worker runs; what the slot says then is the dead worker's.
        let (m, w) = pair();
        let (master, worker) = (m.worker(0).expect("slot"), w.worker(0).expect("slot"));
        let retired = Metrics::default();
        let epoch = master.claim(1, 2);
        master.set_pid(100);
        assert!(worker.attach(epoch));
        worker.set_state(WorkerState::Ready);
        worker.note_accepted();
        master.release(&retired);
        assert_eq!(retired.snapshot().accepted, 1);
        let epoch = master.claim(2, 2);
        master.set_pid(200);
        assert!(!master.attached());
        assert_eq!(
            master.state(),
            WorkerState::Ready,
            "still the dead worker's"
        );
        // It dies before attaching: the dead worker's metrics are not
        // folded a second time.
        master.release(&retired);
        assert_eq!(retired.snapshot().accepted, 1);
        assert!(!worker.attach(epoch), "the slot moved on");
        let epoch = master.claim(2, 2);
        master.set_pid(300);
        assert!(worker.attach(epoch));
        assert!(master.attached());
        assert_eq!(master.state(), WorkerState::Starting);
        assert_eq!((master.accepted(), master.requests()), (0, 0));
        assert_eq!(master.metrics().snapshot().accepted, 0);
        assert_eq!(
            (
                master.heartbeat_ms(),
                master.python_heartbeat_ms(),
                master.ready_at_ms()
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_worker_started_for_an_earlier_occupancy_writes_nothing() {
        // The master gave up waiting for a fork and started the slot's
        // worker the ordinary way; the fork then runs after all.
        let (m, w) = pair();
        let (master, worker) = (m.worker(5).expect("slot"), w.worker(5).expect("slot"));
        let stray = master.claim(1, 1);
        let epoch = master.claim(1, 1);
        assert_ne!(stray, epoch);
        assert!(worker.attach(epoch));
        worker.set_state(WorkerState::Ready);
        assert!(!worker.attach(stray));
        assert_eq!(master.state(), WorkerState::Ready);
        assert!(master.attached());
        assert!(!worker.attach(0));
    }

    #[test]
    fn epochs_skip_zero_and_a_fresh_slot_belongs_to_nobody() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(u32::MAX), 1);
        assert!(!belongs(0, 0));
        assert!(belongs(7, 7) && !belongs(7, 6));
        let (m, _w) = pair();
        assert!(!m.worker(0).expect("slot").attached());
    }

    #[test]
    fn attach_refuses_a_foreign_memfd() {
        let fd = memfd_create("other", MFdFlags::MFD_CLOEXEC).expect("memfd");
        let file = File::from(fd);
        file.set_len(Scoreboard::SIZE as u64).expect("len");
        assert!(matches!(
            Scoreboard::attach(OwnedFd::from(file)),
            Err(ScoreboardError::Layout(0, 0))
        ));
    }

    // Checked when compiling: the layout is part of the contract between
    // a master and workers of the same build.
    const _: () = assert!(std::mem::size_of::<ThreadSlot>() == 96);
    const _: () = assert!(Scoreboard::SIZE < 4 * 1024 * 1024);
}
