//! The service board: what `rwsgi status` reads of the `--service-script`
//! processes.
//!
//! Its own small `memfd` (`rwsgi-services`), not the scoreboard: services
//! serve no requests, and the workers never see it (it is close-on-exec
//! and passed to nobody). The master is its only writer; `rwsgi status`
//! finds it through `/proc/PID/fd` as it finds the scoreboard. Like the
//! scoreboard it is `#[repr(C)]` fixed arrays of atomics, with a magic
//! number and a layout version checked on attach.

use crate::scoreboard::{pack, unpack};
use memmap2::MmapMut;
use nix::sys::memfd::{memfd_create, MFdFlags};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

pub const MAGIC: u64 = 0x7277_7367_695f_7376; // "rwsgi_sv"
pub const LAYOUT_VERSION: u32 = 1;
/// The most `--service-script` entries.
pub const MAX_SERVICES: usize = 32;
/// The memfd's name, as `/proc/PID/fd` shows it (`/memfd:NAME`).
pub const MEMFD_NAME: &str = "rwsgi-services";

/// What a service is doing, as status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ServiceState {
    /// Not started yet, or waiting out its restart back-off.
    Waiting = 0,
    Running = 1,
    /// Asked to stop (shutdown or reload).
    Stopping = 2,
    /// Stopped for good (the server is stopping).
    Stopped = 3,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Waiting => "waiting",
            ServiceState::Running => "running",
            ServiceState::Stopping => "stopping",
            ServiceState::Stopped => "stopped",
        }
    }

    fn from_u32(v: u32) -> ServiceState {
        match v {
            1 => ServiceState::Running,
            2 => ServiceState::Stopping,
            3 => ServiceState::Stopped,
            _ => ServiceState::Waiting,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("cannot create the service board: {0}")]
    Create(#[source] std::io::Error),
    #[error("cannot map the service board: {0}")]
    Map(#[source] std::io::Error),
    #[error("the service board has an unexpected size or layout")]
    Layout,
}

/// One service. Every field is the master's.
#[repr(C)]
struct Entry {
    name: [AtomicU64; crate::config::SERVICE_NAME_MAX / 8],
    /// The running process, 0 when none.
    pid: AtomicU32,
    state: AtomicU32,
    /// Processes started, and those that ended without being asked to.
    starts: AtomicU64,
    crashes: AtomicU64,
    /// When the running process started (monotonic ms, as `time::now_ms`).
    started_at_ms: AtomicU64,
    /// While waiting: when the next start is due (monotonic ms).
    next_start_ms: AtomicU64,
}

#[repr(C)]
struct Layout {
    magic: AtomicU64,
    version: AtomicU32,
    count: AtomicU32,
    entries: [Entry; MAX_SERVICES],
}

/// A service as the board shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceReading {
    pub name: String,
    pub pid: u32,
    pub state: ServiceState,
    pub starts: u64,
    pub crashes: u64,
    pub started_at_ms: u64,
    pub next_start_ms: u64,
}

/// A mapped service board.
pub struct ServiceBoard {
    map: MmapMut,
    file: File,
}

impl ServiceBoard {
    const SIZE: usize = std::mem::size_of::<Layout>();

    /// Creates the board for the services `names` (master).
    pub fn create(names: &[String]) -> Result<ServiceBoard, BoardError> {
        let fd = memfd_create(MEMFD_NAME, MFdFlags::MFD_CLOEXEC)
            .map_err(|e| BoardError::Create(e.into()))?;
        let file = File::from(fd);
        file.set_len(Self::SIZE as u64)
            .map_err(BoardError::Create)?;
        let board = Self::map(file)?;
        let l = board.layout();
        for (entry, name) in l.entries.iter().zip(names) {
            pack(name.as_bytes(), &entry.name);
        }
        l.count.store(names.len().min(MAX_SERVICES) as u32, Relaxed);
        l.version.store(LAYOUT_VERSION, Relaxed);
        l.magic.store(MAGIC, std::sync::atomic::Ordering::Release);
        Ok(board)
    }

    /// Maps another process's board (`rwsgi status`) and checks its layout.
    pub fn attach(fd: OwnedFd) -> Result<ServiceBoard, BoardError> {
        let file = File::from(fd);
        let len = file.metadata().map_err(BoardError::Map)?.len() as usize;
        if len != Self::SIZE {
            return Err(BoardError::Layout);
        }
        let board = Self::map(file)?;
        let l = board.layout();
        if l.magic.load(std::sync::atomic::Ordering::Acquire) != MAGIC
            || l.version.load(Relaxed) != LAYOUT_VERSION
        {
            return Err(BoardError::Layout);
        }
        Ok(board)
    }

    fn map(file: File) -> Result<ServiceBoard, BoardError> {
        // SAFETY: the memfd is only ever sized once, by its creator, before
        // it is mapped; every byte is accessed through atomics.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(BoardError::Map)?;
        if map.len() != Self::SIZE {
            return Err(BoardError::Layout);
        }
        Ok(ServiceBoard { map, file })
    }

    fn layout(&self) -> &Layout {
        // SAFETY: the map is page-aligned, exactly `size_of::<Layout>()`
        // long, zero-initialised by the kernel, and `Layout` is atomics
        // only (all-zero bytes are valid), so shared references are sound
        // while another process writes the same memory.
        unsafe { &*(self.map.as_ptr() as *const Layout) }
    }

    /// Publishes service `index` (master).
    pub fn set(&self, index: usize, r: &ServiceReading) {
        let Some(e) = self.layout().entries.get(index) else {
            return;
        };
        e.pid.store(r.pid, Relaxed);
        e.state.store(r.state as u32, Relaxed);
        e.starts.store(r.starts, Relaxed);
        e.crashes.store(r.crashes, Relaxed);
        e.started_at_ms.store(r.started_at_ms, Relaxed);
        e.next_start_ms.store(r.next_start_ms, Relaxed);
    }

    /// Every service on the board.
    pub fn read(&self) -> Vec<ServiceReading> {
        let l = self.layout();
        let count = (l.count.load(Relaxed) as usize).min(MAX_SERVICES);
        l.entries[..count]
            .iter()
            .map(|e| ServiceReading {
                name: unpack(&e.name),
                pid: e.pid.load(Relaxed),
                state: ServiceState::from_u32(e.state.load(Relaxed)),
                starts: e.starts.load(Relaxed),
                crashes: e.crashes.load(Relaxed),
                started_at_ms: e.started_at_ms.load(Relaxed),
                next_start_ms: e.next_start_ms.load(Relaxed),
            })
            .collect()
    }

    /// The board's descriptor, to map it a second time (tests).
    pub fn try_clone_fd(&self) -> std::io::Result<OwnedFd> {
        self.file.try_clone().map(OwnedFd::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sees_what_the_master_wrote_through_a_second_mapping() {
        let names = vec![
            "consumer".to_owned(),
            "a-name-of-exactly-32-bytes-long!".to_owned(),
        ];
        assert_eq!(names[1].len(), 32);
        let master = ServiceBoard::create(&names).expect("create");
        master.set(
            1,
            &ServiceReading {
                name: String::new(),
                pid: 4321,
                state: ServiceState::Running,
                starts: 3,
                crashes: 2,
                started_at_ms: 77,
                next_start_ms: 0,
            },
        );
        let status = ServiceBoard::attach(master.try_clone_fd().expect("dup")).expect("attach");
        let seen = status.read();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].name, "consumer");
        assert_eq!(seen[0].state, ServiceState::Waiting);
        assert_eq!(seen[1].name, names[1]);
        assert_eq!(
            (seen[1].pid, seen[1].state, seen[1].starts, seen[1].crashes),
            (4321, ServiceState::Running, 3, 2)
        );
    }
}
