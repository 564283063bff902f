//! Incremental decoder for `Transfer-Encoding: chunked` request bodies.
//!
//! Strict: chunk sizes are 1–16 hex digits, extensions must be well-formed
//! tokens, every line ends in CRLF, trailers are well-formed fields.

use super::head::is_token;
use super::HttpError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line (size, extensions, CRLF).
    SizeLine,
    /// Copying chunk data; `remaining` bytes left.
    Data,
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading trailer field lines until an empty line.
    Trailer,
    Done,
}

/// Decodes a chunked body fed in arbitrary pieces.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    remaining: u64,
    total: u64,
    limit: u64,
    line: Vec<u8>,
    trailer_bytes: usize,
}

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 8192;

impl ChunkedDecoder {
    /// A decoder refusing bodies larger than `limit` bytes (413).
    pub fn new(limit: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::SizeLine,
            remaining: 0,
            total: 0,
            limit,
            line: Vec::new(),
            trailer_bytes: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of body decoded so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Decodes from `input`, appending body bytes to `out` but never more than
    /// `max_out` of them. Returns how many input bytes were consumed; stops at
    /// the end of the body, leaving what follows (a pipelined request) unread.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>, max_out: usize) -> Result<usize, HttpError> {
        let mut pos = 0;
        let start_len = out.len();
        while pos < input.len() && self.state != State::Done {
            match self.state {
                State::Data => {
                    let room = max_out.saturating_sub(out.len() - start_len);
                    if room == 0 {
                        break;
                    }
                    let n = (input.len() - pos).min(room).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[pos..pos + n]);
                    pos += n;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataEnd;
                    }
                }
                State::SizeLine | State::DataEnd | State::Trailer => {
                    let Some(line_end) = self.take_line(input, &mut pos)? else {
                        break;
                    };
                    let line = std::mem::take(&mut self.line);
                    self.finish_line(&line[..line_end])?;
                }
                State::Done => break,
            }
        }
        Ok(pos)
    }

    /// Accumulates one CRLF-terminated line; returns its length without CRLF when complete.
    fn take_line(&mut self, input: &[u8], pos: &mut usize) -> Result<Option<usize>, HttpError> {
        while *pos < input.len() {
            let b = input[*pos];
            *pos += 1;
            if b == b'\n' {
                if self.line.last() != Some(&b'\r') {
                    return Err(HttpError::bad("bare LF in chunked body"));
                }
                return Ok(Some(self.line.len() - 1));
            }
            if self.line.last() == Some(&b'\r') {
                return Err(HttpError::bad("bare CR in chunked body"));
            }
            self.line.push(b);
            if self.line.len() > MAX_LINE {
                return Err(HttpError::bad("chunk line too long"));
            }
        }
        Ok(None)
    }

    fn finish_line(&mut self, line: &[u8]) -> Result<(), HttpError> {
        match self.state {
            State::SizeLine => {
                let size = parse_size_line(line)?;
                if self.total.saturating_add(size) > self.limit {
                    return Err(HttpError::new(413, "request body larger than the limit"));
                }
                self.total += size;
                if size == 0 {
                    self.state = State::Trailer;
                } else {
                    self.remaining = size;
                    self.state = State::Data;
                }
            }
            State::DataEnd => {
                if !line.is_empty() {
                    return Err(HttpError::bad("chunk data longer than its size"));
                }
                self.state = State::SizeLine;
            }
            State::Trailer => {
                if line.is_empty() {
                    self.state = State::Done;
                } else {
                    self.trailer_bytes += line.len();
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(HttpError::new(431, "trailer section too large"));
                    }
                    check_trailer(line)?;
                }
            }
            State::Data | State::Done => {}
        }
        Ok(())
    }
}

fn parse_size_line(line: &[u8]) -> Result<u64, HttpError> {
    let (size, ext) = match line.iter().position(|&b| b == b';') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    // BWS before the extension is tolerated by RFC 9112 7.1.1; nothing else.
    let size = trim_trailing_ws(size);
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(HttpError::bad("invalid chunk size"));
    }
    let mut n: u64 = 0;
    for &d in size {
        let v = (d as char).to_digit(16).unwrap_or(0);
        n = n
            .checked_mul(16)
            .and_then(|n| n.checked_add(u64::from(v)))
            .ok_or(HttpError::bad("chunk size overflows"))?;
    }
    if let Some(ext) = ext {
        check_extensions(ext)?;
    }
    Ok(n)
}

fn trim_trailing_ws(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |e| e + 1);
    &s[..end]
}

fn check_extensions(ext: &[u8]) -> Result<(), HttpError> {
    for part in ext.split(|&b| b == b';') {
        let part = trim_ws(part);
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (trim_ws(&part[..i]), Some(trim_ws(&part[i + 1..]))),
            None => (part, None),
        };
        if !is_token(name) {
            return Err(HttpError::bad("invalid chunk extension"));
        }
        if let Some(v) = value {
            let quoted = v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"'
                && v[1..v.len() - 1].iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
            if !quoted && !is_token(v) {
                return Err(HttpError::bad("invalid chunk extension"));
            }
        }
    }
    Ok(())
}

fn trim_ws(s: &[u8]) -> &[u8] {
    let t = trim_trailing_ws(s);
    let start = t.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(t.len());
    &t[start..]
}

fn check_trailer(line: &[u8]) -> Result<(), HttpError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::bad("invalid trailer field"))?;
    if !is_token(&line[..colon]) {
        return Err(HttpError::bad("invalid trailer field"));
    }
    if line[colon + 1..].iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HttpError::bad("control character in trailer"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), HttpError> {
        let mut d = ChunkedDecoder::new(1 << 20);
        let mut out = Vec::new();
        let used = d.decode(input, &mut out, usize::MAX)?;
        assert!(d.is_done(), "not done");
        Ok((out, used))
    }

    #[test]
    fn decodes_and_stops_at_the_end() {
        let (body, used) = decode_all(b"5\r\nhello\r\n6;x=\"y\"\r\n world\r\n0\r\nT: v\r\n\r\nGET").expect("ok");
        assert_eq!(body, b"hello world");
        assert_eq!(used, 38);
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let raw = b"3\r\nabc\r\na\r\n0123456789\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::new(100);
        let mut out = Vec::new();
        for b in raw.chunks(1) {
            assert_eq!(d.decode(b, &mut out, usize::MAX).expect("ok"), 1);
        }
        assert!(d.is_done());
        assert_eq!(out, b"abc0123456789");
    }

    #[test]
    fn refuses_bad_framing() {
        for bad in [&b"x\r\n"[..], b"5\nhello", b"5\r\nhelloX\r\n", b"-1\r\n", b"11111111111111111\r\n", b"5;\x01\r\n", b"0\r\nbad trailer\r\n\r\n"] {
            let mut d = ChunkedDecoder::new(100);
            assert!(d.decode(bad, &mut Vec::new(), usize::MAX).is_err(), "{bad:?}");
        }
        let mut d = ChunkedDecoder::new(4);
        assert_eq!(d.decode(b"5\r\n", &mut Vec::new(), usize::MAX).map_err(|e| e.status), Err(413));
    }
}
