//! A request body received before the application runs: held in memory
//! while small, then in an anonymous temporary file (removed by the kernel
//! when closed), the way nginx buffers request bodies. Written by the I/O
//! thread as the bytes arrive, read by `wsgi.input` on a request thread.

use std::fs::File;
use std::io::{Seek, Write};

/// Bytes a body may keep in memory before it moves to a temporary file.
/// Small enough that a thousand slow uploads cost a quarter of a GiB at
/// most; large enough that a form or a JSON document never touches a file.
pub const IN_MEMORY: usize = 256 * 1024;

/// A body being received.
#[derive(Default)]
pub struct Spool {
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
}

/// A body received whole.
pub enum Spooled {
    Memory(Vec<u8>),
    /// Rewound to its start; its length.
    File(File, u64),
}

impl Spooled {
    pub fn len(&self) -> u64 {
        match self {
            Spooled::Memory(m) => m.len() as u64,
            Spooled::File(_, n) => *n,
        }
    }
}

impl Spool {
    pub fn write(&mut self, block: &[u8]) -> std::io::Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        self.len += block.len() as u64;
        if let Some(f) = &mut self.file {
            return f.write_all(block);
        }
        if self.memory.len() + block.len() <= IN_MEMORY {
            self.memory.extend_from_slice(block);
            return Ok(());
        }
        let mut f = tempfile::tempfile()?;
        f.write_all(&self.memory)?;
        f.write_all(block)?;
        self.memory = Vec::new();
        self.file = Some(f);
        Ok(())
    }

    pub fn finish(self) -> std::io::Result<Spooled> {
        match self.file {
            Some(mut f) => {
                f.rewind()?;
                Ok(Spooled::File(f, self.len))
            }
            None => Ok(Spooled::Memory(self.memory)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn small_bodies_stay_in_memory_large_ones_spill() {
        let mut s = Spool::default();
        s.write(b"abc").unwrap();
        assert!(matches!(s.finish().unwrap(), Spooled::Memory(m) if m == b"abc"));

        let block: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        let mut s = Spool::default();
        for _ in 0..3 {
            s.write(&block).unwrap();
        }
        match s.finish().unwrap() {
            Spooled::File(mut f, n) => {
                assert_eq!(n, 300_000);
                let mut back = Vec::new();
                f.read_to_end(&mut back).unwrap();
                assert_eq!(back.len(), 300_000);
                assert!(back.chunks(100_000).all(|c| c == block));
            }
            Spooled::Memory(_) => panic!("300 kB stayed in memory"),
        }
    }
}
