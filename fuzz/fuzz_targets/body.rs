//! The request body as `wsgi.input` reads it: a `BodyReader` (chunked or
//! Content-Length framing) over a source that delivers arbitrary pieces,
//! consumed in arbitrary amounts. It never panics, never hands out more
//! than the body nor more than the limit, keeps its error once it has one,
//! and reaches the same body, error and leftover bytes however the input is
//! split and however the reader is drained.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use rwsgi_http::{BodyError, BodyKind, BodyReader, BodySource};

/// Delivers the input in pieces whose sizes come from `sizes`, then end of stream.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    next: usize,
}

impl BodySource for Pieces<'_> {
    fn read_more(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<usize, BodyError> {
        assert!(max > 0, "asked to read nothing");
        let size = if self.sizes.is_empty() {
            usize::MAX
        } else {
            usize::from(self.sizes[self.next % self.sizes.len()]) + 1
        };
        self.next += 1;
        let n = self.data.len().min(size).min(max);
        buf.extend_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    body: Vec<u8>,
    error: Option<BodyError>,
    /// What the reader did not use: the bytes it holds plus those never read.
    rest: Vec<u8>,
}

/// Reads the whole body, taking `takes[i]` bytes at a time (0: all available).
fn read(kind: BodyKind, input: &[u8], limit: u64, sizes: &[u8], takes: &[u8]) -> Outcome {
    let split = usize::from(sizes.first().copied().unwrap_or(0)).min(input.len());
    let (buffered, later) = input.split_at(split);
    let mut reader = BodyReader::new(kind, buffered.to_vec(), limit);
    let mut src = Pieces {
        data: later,
        sizes,
        next: 0,
    };
    let mut body = Vec::new();
    let mut turn = 0;
    let error = loop {
        match reader.fill(&mut src) {
            Ok(true) => {
                let available = reader.available().len();
                assert!(available > 0, "fill said yes with nothing available");
                let want = match takes.get(turn % takes.len().max(1)) {
                    Some(&t) if t > 0 => usize::from(t).min(available),
                    _ => available,
                };
                turn += 1;
                body.extend_from_slice(&reader.available()[..want]);
                reader.consume(want);
            }
            Ok(false) => {
                assert!(reader.is_finished());
                break None;
            }
            Err(e) => {
                assert_eq!(reader.error(), Some(&e), "the error is not kept");
                assert_eq!(
                    reader.fill(&mut src),
                    Err(e.clone()),
                    "the error is not sticky"
                );
                break Some(e);
            }
        }
    };
    if let BodyKind::Length(n) = kind {
        assert!(body.len() as u64 <= n, "more than the Content-Length");
    }
    assert!(body.len() as u64 <= limit || matches!(kind, BodyKind::Length(_)));
    if error.is_none() {
        assert_eq!(
            reader.decoded(),
            body.len() as u64,
            "decoded() is not what was read"
        );
    }
    let mut rest = reader.into_rest();
    rest.extend_from_slice(src.data);
    Outcome { body, error, rest }
}

fuzz_target!(|data: &[u8]| {
    let [sel, n_sizes, n_takes, rest @ ..] = data else {
        return;
    };
    let n_sizes = usize::from(*n_sizes % 8).min(rest.len());
    let (sizes, rest) = rest.split_at(n_sizes);
    let n_takes = usize::from(*n_takes % 8).min(rest.len());
    let (takes, input) = rest.split_at(n_takes);
    let kind = match sel % 4 {
        0 => BodyKind::Length(u64::from(sel / 4) * 7),
        _ => BodyKind::Chunked,
    };
    let limit = if sel & 0x80 != 0 {
        u64::from(sel & 0x7f) * 5
    } else {
        u64::MAX
    };
    let whole = read(kind, input, limit, &[], &[]);
    let pieces = read(kind, input, limit, sizes, takes);
    // A failed read stops where its pieces happened to end, so the body
    // and the leftover are compared only for bodies read to the end.
    assert_eq!(pieces.error, whole.error, "verdict differs when split");
    if whole.error.is_none() {
        assert_eq!(pieces.body, whole.body, "body differs when split");
        assert_eq!(pieces.rest, whole.rest, "leftover differs when split");
    }
});
