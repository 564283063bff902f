//! Static files compressed on the fly (`--compress-responses`), each
//! variant made once and kept in memory while its file is unchanged.
//!
//! A file with a precompressed sibling never comes here. The variant is
//! keyed by the file's strong entity tag (inode, size, modification time),
//! so an edited file is compressed again and its old variant ages out.

use super::resolve::{StaticFile, StaticFiles};
use super::response::{FileInfo, Plan, Segment};
use crate::coding::{self, Coding};
use crate::RequestHead;
use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

/// Files larger than this are sent as they are: compressing them would
/// hold a lane for long, and memory for each variant.
const LARGEST: u64 = 8 << 20;
/// Memory all kept variants of one worker may take; the oldest go first.
const BUDGET: usize = 32 << 20;

type Key = (String, Coding);

/// The kept variants.
#[derive(Default)]
pub struct Compressed {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    by_key: HashMap<Key, Arc<[u8]>>,
    /// Insertion order, for eviction.
    order: VecDeque<Key>,
    bytes: usize,
}

impl Kept {
    fn insert(&mut self, key: Key, value: Arc<[u8]>) {
        if value.len() > BUDGET || self.by_key.contains_key(&key) {
            return;
        }
        while self.bytes + value.len() > BUDGET {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(v) = self.by_key.remove(&old) {
                self.bytes -= v.len();
            }
        }
        self.bytes += value.len();
        self.order.push_back(key.clone());
        self.by_key.insert(key, value);
    }
}

impl Compressed {
    /// Whether a file of `len` bytes is compressed on the fly.
    pub fn worth_it(len: u64) -> bool {
        (coding::MIN_LENGTH..=LARGEST).contains(&len)
    }

    /// `file` compressed with `coding`; `None` if it cannot be read whole.
    pub fn get(&self, file: &StaticFile, coding: Coding) -> Option<Arc<[u8]>> {
        let key = (file.etag.clone(), coding);
        if let Some(v) = self.lock().by_key.get(&key) {
            return Some(Arc::clone(v));
        }
        // Compressed outside the lock: another lane may do the same file at
        // the same moment, and both results are equal.
        let raw = read_whole(&file.file, file.len)?;
        let bytes: Arc<[u8]> = coding::compress(coding, &raw).ok()?.into();
        self.lock().insert(key, Arc::clone(&bytes));
        Some(bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A lane that panicked left a map that is still consistent enough
        // to read; a poisoned lock must not stop static files.
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The `len` bytes of `file`, or `None` if it is shorter now.
fn read_whole(file: &std::fs::File, len: u64) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => return None,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(buf)
}

/// The response to `req` for `file` compressed on the fly, when it is to
/// be sent so (see [`StaticFiles::compressed`]); else the caller sends
/// the file.
pub fn respond(
    files: &StaticFiles,
    req: &RequestHead,
    file: &StaticFile,
    date: &str,
    keep_alive: bool,
    boundary: &str,
) -> Option<Plan> {
    let (coding, bytes) = files.compressed(req, file)?;
    let etag = coding::variant_etag(&file.etag, coding);
    let info = variant_info(file, &etag, bytes.len() as u64, coding);
    let plan = super::response::respond(req, &info, files.options(), date, keep_alive, boundary);
    Some(with_body(plan, &bytes))
}

/// What the response needs to know about the compressed variant of `file`.
fn variant_info<'a>(file: &'a StaticFile, etag: &'a str, len: u64, coding: Coding) -> FileInfo<'a> {
    FileInfo {
        len,
        etag,
        encoding: Some(coding.token()),
        vary: true,
        ..file.info()
    }
}

/// `plan`, made for the variant, with its body taken from `bytes` (the
/// variant is never served in ranges, so the body is the whole of it, or
/// nothing for HEAD and 304).
fn with_body(mut plan: Plan, bytes: &[u8]) -> Plan {
    for segment in &mut plan.body {
        if let Segment::File { offset, len } = *segment {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = start
                .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                .min(bytes.len());
            *segment = Segment::Bytes(bytes[start..end].to_vec());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_variants_leave_when_the_budget_is_spent() {
        let mut kept = Kept::default();
        let big: Arc<[u8]> = vec![0u8; BUDGET / 3 + 1].into();
        for name in ["a", "b", "c"] {
            kept.insert((name.into(), Coding::Gzip), Arc::clone(&big));
        }
        assert!(!kept.by_key.contains_key(&("a".to_owned(), Coding::Gzip)));
        assert!(kept.by_key.contains_key(&("c".to_owned(), Coding::Gzip)));
        assert!(kept.bytes <= BUDGET);
        // Inserting a key twice counts it once.
        kept.insert(("c".into(), Coding::Gzip), Arc::clone(&big));
        assert_eq!(kept.bytes, 2 * big.len());
    }

    #[test]
    fn tiny_and_huge_files_are_sent_as_they_are() {
        assert!(!Compressed::worth_it(10));
        assert!(Compressed::worth_it(4096));
        assert!(!Compressed::worth_it(LARGEST + 1));
    }

    #[test]
    fn the_body_of_a_variant_plan_is_the_variant() {
        let plan = Plan {
            status: 200,
            head: b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
            body: vec![Segment::File { offset: 0, len: 3 }],
            keep_alive: true,
        };
        assert_eq!(
            with_body(plan, b"abc").body,
            vec![Segment::Bytes(b"abc".to_vec())]
        );
    }
}
