//! The shared-memory scoreboard.
//!
//! One `memfd`, sized once and sealed against resizing, mapped `MAP_SHARED` by
//! the master and inherited by every worker across exec. The layout is
//! `#[repr(C)]` fixed arrays of fixed-width atomics, no pointers. Each field has
//! exactly one writer: the master writes a slot's identity and wishes, the
//! worker writes its own state, counters and per-thread activity.

use crate::metrics::Metrics;
use memmap2::MmapMut;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

pub const MAGIC: u64 = 0x7277_7367_695f_7362; // "rwsgi_sb"
pub const LAYOUT_VERSION: u32 = 6;
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

/// Per-thread activity. Written only by the thread it describes.
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
    pid: AtomicU32,
    generation: AtomicU32,
    threads: AtomicU32,
    _master_pad: AtomicU32,
    spawned_at_ms: AtomicU64,
    // Written by the worker.
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

    /// Claims the slot for a newly spawned worker and clears the worker's fields.
    pub fn assign(&self, pid: u32, generation: u32, threads: u32) {
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
        self.metrics.clear();
        for t in self.thread.iter() {
            t.state.store(ThreadState::Idle as u32, Relaxed);
            t.request_started_ms.store(0, Relaxed);
            t.requests.store(0, Relaxed);
        }
        self.generation.store(generation, Relaxed);
        self.threads.store(threads, Relaxed);
        self.spawned_at_ms.store(crate::time::now_ms(), Relaxed);
        self.pid.store(pid, std::sync::atomic::Ordering::Release);
    }

    /// Marks the slot free after its worker was reaped.
    /// Marks the slot free after its worker was reaped, folding its
    /// metrics into `retired` (the worker is gone: nothing writes them now).
    pub fn release(&self, retired: &Metrics) {
        retired.add(&self.metrics.snapshot());
        self.metrics.clear();
        self.state.store(WorkerState::Exited as u32, Relaxed);
        self.pid.store(0, std::sync::atomic::Ordering::Release);
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

fn pack(bytes: &[u8], out: &[AtomicU64]) {
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

fn unpack(words: &[AtomicU64]) -> String {
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
        master.worker(3).expect("slot").assign(999, 2, 4);
        let slot = worker.worker(3).expect("slot");
        assert_eq!((slot.pid(), slot.generation(), slot.threads()), (999, 2, 4));
        slot.set_state(WorkerState::Ready);
        slot.begin_request(1, "GET", "/hello", "127.0.0.1:5000".parse().expect("addr"));
        let seen = master.worker(3).expect("slot");
        assert_eq!(seen.state(), WorkerState::Ready);
        assert_eq!(seen.free_threads(), 3);
        assert_eq!(seen.oldest_request().map(|(i, _)| i), Some(1));
        assert_eq!(seen.thread(1).expect("thread").describe(), "GET /hello");
        slot.end_request(1);
        assert_eq!(seen.free_threads(), 4);
        assert_eq!(seen.requests(), 1);
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
