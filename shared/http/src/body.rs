//! Reading a request body as the application asks for it: Content-Length or
//! chunked framing, decoded from whatever pieces the socket delivers.
//!
//! The reader is plain data over a [`BodySource`], so the same code runs
//! behind `wsgi.input`, when a chunked body is spooled before the
//! application starts, and under the fuzzer. Its result never depends on
//! how the bytes are split. A failure is sticky and typed: a body the client
//! framed wrongly or made too large is the client's error ([`BodyError::Refused`],
//! answered 400 or 413), never the application's.

use super::{BodyKind, ChunkedDecoder, HttpError};

/// Decoded bytes made available at a time.
pub const BLOCK: usize = 64 * 1024;
// What is read past a body may change hands over the channel.
const _: () = assert!(BLOCK <= rwsgi_shared::channel::MAX_READ_AHEAD);

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Malformed framing (400) or a body over the limit (413): the
    /// client's error, answered with this status.
    #[error("{0}")]
    Refused(HttpError),
    /// The client stopped sending before the body deadline.
    #[error("the request body did not arrive in time (--body-timeout, --body-min-rate)")]
    TimedOut,
    /// The client closed the connection mid-body.
    #[error("the client closed the connection before sending the whole request body")]
    Closed,
    /// Any other socket error.
    #[error("error reading the request body: {0}")]
    Io(String),
}

impl BodyError {
    /// The status the client gets when this error ends the request.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::Refused(e) => e.status,
            BodyError::TimedOut => 408,
            BodyError::Closed | BodyError::Io(_) => 400,
        }
    }
}

/// Where raw body bytes come from (a socket, in the server).
pub trait BodySource {
    /// Appends between 1 and `max` bytes to `buf`, waiting as long as the
    /// source allows; `Ok(0)` at the end of the stream.
    fn read_more(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<usize, BodyError>;
}

/// Where a body's decoding stands: the one state both the I/O thread's
/// [`Intake`](super::Intake) and the request thread's [`BodyReader`] keep.
#[derive(Debug)]
pub(super) enum Framing {
    /// Content-Length: this many bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

impl Framing {
    /// The state at the start of a body framed as `kind`.
    pub(super) fn start(kind: BodyKind, limit: u64) -> Framing {
        match kind {
            BodyKind::Empty => Framing::Done,
            BodyKind::Length(n) => Framing::Length(n),
            BodyKind::Chunked => Framing::Chunked(ChunkedDecoder::new(limit)),
        }
    }
}

/// A request body being read, one block of decoded bytes at a time.
#[derive(Debug)]
pub struct BodyReader {
    framing: Framing,
    /// Raw bytes received and not yet decoded; what follows the body
    /// belongs to the next request.
    raw: Vec<u8>,
    /// Decoded bytes not yet consumed, from `pos`.
    ready: Vec<u8>,
    pos: usize,
    /// Decoded bytes in all.
    decoded: u64,
    error: Option<BodyError>,
}

impl BodyReader {
    /// A reader for a body framed as `kind`, starting with the bytes that
    /// arrived with the head; a chunked body over `limit` bytes is refused.
    pub fn new(kind: BodyKind, buffered: Vec<u8>, limit: u64) -> BodyReader {
        BodyReader {
            framing: Framing::start(kind, limit),
            raw: buffered,
            ready: Vec::new(),
            pos: 0,
            decoded: 0,
            error: None,
        }
    }

    /// The whole body has been received and decoded (not necessarily consumed).
    pub fn is_complete(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    /// Every body byte has been consumed.
    pub fn is_finished(&self) -> bool {
        self.is_complete() && self.pos >= self.ready.len()
    }

    /// The error that ended reading, if any.
    pub fn error(&self) -> Option<&BodyError> {
        self.error.as_ref()
    }

    /// Decoded bytes so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Decoded bytes available now, without reading.
    pub fn available(&self) -> &[u8] {
        &self.ready[self.pos..]
    }

    /// Marks `n` available bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.ready.len());
    }

    /// Makes decoded bytes available, reading from `src` when none are.
    /// `Ok(false)`: the body is over.
    pub fn fill(&mut self, src: &mut impl BodySource) -> Result<bool, BodyError> {
        loop {
            if self.pos < self.ready.len() {
                return Ok(true);
            }
            if let Some(e) = &self.error {
                return Err(e.clone());
            }
            self.ready.clear();
            self.pos = 0;
            if self.is_complete() {
                return Ok(false);
            }
            if let Err(e) = self.step(src) {
                // Bytes decoded just before the error are dropped with it:
                // the verdict must not depend on where the input was split.
                self.ready.clear();
                self.error = Some(e.clone());
                return Err(e);
            }
        }
    }

    /// Decodes what is buffered; reads from the source only when that gives nothing.
    fn step(&mut self, src: &mut impl BodySource) -> Result<(), BodyError> {
        self.decode()?;
        if !self.ready.is_empty() || self.is_complete() {
            return Ok(());
        }
        let want = match self.framing {
            // Never read past a body of known length: what follows is the
            // next request's, and need not be read yet.
            Framing::Length(rem) => usize::try_from(rem).unwrap_or(BLOCK).clamp(1, BLOCK),
            _ => BLOCK,
        };
        match src.read_more(&mut self.raw, want)? {
            0 => Err(BodyError::Closed),
            _ => self.decode(),
        }
    }

    /// Moves decodable bytes from `raw` to `ready`.
    fn decode(&mut self) -> Result<(), BodyError> {
        let before = self.ready.len();
        match &mut self.framing {
            Framing::Done => {}
            Framing::Length(rem) => {
                let n = usize::try_from(*rem)
                    .unwrap_or(usize::MAX)
                    .min(self.raw.len())
                    .min(BLOCK);
                self.ready.extend(self.raw.drain(..n));
                *rem -= n as u64;
                if *rem == 0 {
                    self.framing = Framing::Done;
                }
            }
            Framing::Chunked(dec) => {
                let used = dec
                    .decode(&self.raw, &mut self.ready, BLOCK)
                    .map_err(BodyError::Refused)?;
                self.raw.drain(..used);
                if dec.is_done() {
                    self.framing = Framing::Done;
                }
            }
        }
        self.decoded += (self.ready.len() - before) as u64;
        Ok(())
    }

    /// Reads and drops the rest of the body, at most `max` more decoded
    /// bytes. `Ok(true)`: the body is over and the connection can carry
    /// another request; `Ok(false)`: it is longer than `max`.
    pub fn skip(&mut self, src: &mut impl BodySource, max: u64) -> Result<bool, BodyError> {
        let mut skipped = 0u64;
        loop {
            skipped += self.available().len() as u64;
            self.pos = self.ready.len();
            if skipped > max {
                return Ok(false);
            }
            if !self.fill(src)? {
                return Ok(true);
            }
        }
    }

    /// Ends reading: the raw bytes that followed the body (a pipelined request).
    pub fn into_rest(self) -> Vec<u8> {
        self.raw
    }

    /// Takes the rest without consuming the reader (see [`into_rest`](Self::into_rest)).
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers `data` in pieces of at most `piece` bytes, then end of stream.
    struct Pieces<'a> {
        data: &'a [u8],
        piece: usize,
    }

    impl BodySource for Pieces<'_> {
        fn read_more(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<usize, BodyError> {
            let n = self.data.len().min(self.piece).min(max);
            buf.extend_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_all(
        kind: BodyKind,
        head_bytes: &[u8],
        rest: &[u8],
        piece: usize,
    ) -> (Result<Vec<u8>, BodyError>, Vec<u8>) {
        let mut reader = BodyReader::new(kind, head_bytes.to_vec(), 100);
        let mut src = Pieces { data: rest, piece };
        let mut body = Vec::new();
        let result = loop {
            match reader.fill(&mut src) {
                Ok(true) => {
                    body.extend_from_slice(reader.available());
                    let n = reader.available().len();
                    reader.consume(n);
                }
                Ok(false) => break Ok(body),
                Err(e) => break Err(e),
            }
        };
        let mut leftover = reader.into_rest();
        leftover.extend_from_slice(src.data);
        (result, leftover)
    }

    #[test]
    fn length_bodies_stop_at_their_end() {
        for piece in [1, 3, 1000] {
            let (body, rest) = read_all(BodyKind::Length(5), b"he", b"lloGET /", piece);
            assert_eq!(body, Ok(b"hello".to_vec()));
            assert_eq!(rest, b"GET /");
        }
    }

    #[test]
    fn chunked_bodies_in_any_split() {
        let raw = b"5\r\nhello\r\n0\r\n\r\nNEXT";
        for piece in [1, 2, 7, 1000] {
            let (body, rest) = read_all(BodyKind::Chunked, b"", raw, piece);
            assert_eq!(body, Ok(b"hello".to_vec()), "piece {piece}");
            assert_eq!(rest, b"NEXT");
        }
    }

    #[test]
    fn errors_are_typed_and_sticky() {
        let (body, _) = read_all(BodyKind::Chunked, b"", b"zz\r\n", 10);
        assert_eq!(body.map_err(|e| e.status()), Err(400));
        let (body, _) = read_all(BodyKind::Chunked, b"", b"ff\r\n", 10);
        assert_eq!(body.map_err(|e| e.status()), Err(413));
        let (body, _) = read_all(BodyKind::Length(10), b"", b"abc", 10);
        assert_eq!(body, Err(BodyError::Closed));

        let mut reader = BodyReader::new(BodyKind::Chunked, b"x\r\n".to_vec(), 100);
        let mut src = Pieces {
            data: b"",
            piece: 1,
        };
        assert!(reader.fill(&mut src).is_err());
        assert!(reader.fill(&mut src).is_err());
        assert!(matches!(reader.error(), Some(BodyError::Refused(_))));
    }

    #[test]
    fn skip_reads_small_bodies_only() {
        let mut reader = BodyReader::new(BodyKind::Length(4), b"abcdX".to_vec(), 100);
        let mut src = Pieces {
            data: b"",
            piece: 1,
        };
        assert_eq!(reader.skip(&mut src, 10), Ok(true));
        assert_eq!(reader.into_rest(), b"X");
        let mut reader = BodyReader::new(BodyKind::Length(40), vec![b'a'; 40], 100);
        assert_eq!(reader.skip(&mut src, 10), Ok(false));
    }
}
