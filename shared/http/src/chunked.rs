//! Incremental decoder for `Transfer-Encoding: chunked` request bodies.
//!
//! Strict (RFC 9112 7.1): chunk sizes are hex digits only, whitespace is
//! allowed only before a `;`, extensions are tokens or quoted strings, every
//! line ends in CRLF, chunk data is followed by exactly CRLF, and trailers are
//! well-formed fields that do not try to change framing, routing or
//! authentication after the fact.
//!
//! The result never depends on how the input is split: a line is checked
//! byte for byte in order, and never beyond its length limit.

use super::head::is_token;
use super::HttpError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line (size, extensions, CRLF).
    SizeLine,
    /// Copying chunk data; `remaining` bytes left.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// Reading trailer field lines until an empty line.
    Trailer,
    Done,
}

/// Decodes a chunked body fed in arbitrary pieces.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    remaining: u64,
    /// Sum of the chunk sizes announced so far (checked against `limit`).
    announced: u64,
    /// Body bytes handed out so far.
    total: u64,
    limit: u64,
    line: Vec<u8>,
    trailer_bytes: usize,
    trailers: Vec<(String, Vec<u8>)>,
}

/// Longest chunk-size or trailer line accepted, CRLF included.
const MAX_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 8192;

/// Fields a trailer may not carry (RFC 9110 6.5.1): they decide framing,
/// routing, authentication or request handling, all settled by the header.
const FORBIDDEN_TRAILERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "trailer",
    "te",
    "host",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-connection",
    "expect",
    "authorization",
    "proxy-authorization",
    "cookie",
    "content-encoding",
    "content-range",
];

impl ChunkedDecoder {
    /// A decoder refusing bodies larger than `limit` bytes (413).
    pub fn new(limit: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::SizeLine,
            remaining: 0,
            announced: 0,
            total: 0,
            limit,
            line: Vec::new(),
            trailer_bytes: 0,
            trailers: Vec::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of body decoded so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The trailer fields received after the last chunk, names as sent,
    /// values trimmed. WSGI has no place for them; they are kept for logging.
    pub fn trailers(&self) -> &[(String, Vec<u8>)] {
        &self.trailers
    }

    /// Decodes from `input`, appending body bytes to `out` but never more than
    /// `max_out` of them. Returns how many input bytes were consumed; stops at
    /// the end of the body, leaving what follows (a pipelined request) unread.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Result<usize, HttpError> {
        let mut pos = 0;
        let mut room = max_out;
        while pos < input.len() {
            match self.state {
                State::Data => {
                    if room == 0 {
                        break;
                    }
                    let remaining = usize::try_from(self.remaining).unwrap_or(usize::MAX);
                    let n = (input.len() - pos).min(room).min(remaining);
                    out.extend_from_slice(&input[pos..pos + n]);
                    pos += n;
                    room -= n;
                    self.total += n as u64;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr | State::DataLf => {
                    let (want, next) = match self.state {
                        State::DataCr => (b'\r', State::DataLf),
                        _ => (b'\n', State::SizeLine),
                    };
                    if input[pos] != want {
                        return Err(HttpError::bad("chunk data not followed by CRLF"));
                    }
                    pos += 1;
                    self.state = next;
                }
                State::SizeLine | State::Trailer => {
                    if !self.take_line(input, &mut pos)? {
                        break;
                    }
                    let result = self.finish_line();
                    self.line.clear();
                    result?;
                }
                State::Done => break,
            }
        }
        Ok(pos)
    }

    /// Accumulates one line; true once its CRLF has arrived.
    fn take_line(&mut self, input: &[u8], pos: &mut usize) -> Result<bool, HttpError> {
        let rest = &input[*pos..];
        // Never look past the line limit, so that the verdict does not depend on the split.
        let room = (MAX_LINE + 1).saturating_sub(self.line.len());
        let rest = &rest[..rest.len().min(room)];
        let (segment, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..=i], true),
            None => (rest, false),
        };
        let checked_from = self.line.len().saturating_sub(1);
        self.line.extend_from_slice(segment);
        *pos += segment.len();
        // A CR must be followed by LF: check every CR whose next byte has arrived.
        let line = &self.line[checked_from..];
        if line.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n') {
            return Err(HttpError::bad("bare CR in chunked body"));
        }
        if complete && !self.line.ends_with(b"\r\n") {
            return Err(HttpError::bad("bare LF in chunked body"));
        }
        if self.line.len() > MAX_LINE {
            return Err(HttpError::bad("chunk line too long"));
        }
        Ok(complete)
    }

    /// Acts on the complete line in `self.line` (CRLF included).
    fn finish_line(&mut self) -> Result<(), HttpError> {
        let line = &self.line[..self.line.len() - 2];
        match self.state {
            State::SizeLine => {
                let size = parse_size_line(line)?;
                self.announced = self
                    .announced
                    .checked_add(size)
                    .filter(|&n| n <= self.limit)
                    .ok_or(HttpError::new(413, "request body larger than the limit"))?;
                if size == 0 {
                    self.state = State::Trailer;
                } else {
                    self.remaining = size;
                    self.state = State::Data;
                }
            }
            State::Trailer => {
                if line.is_empty() {
                    self.state = State::Done;
                    return Ok(());
                }
                self.trailer_bytes += line.len() + 2;
                if self.trailer_bytes > MAX_TRAILERS {
                    return Err(HttpError::new(431, "trailer section too large"));
                }
                let field = parse_trailer(line)?;
                self.trailers.push(field);
            }
            State::Data | State::DataCr | State::DataLf | State::Done => {}
        }
        Ok(())
    }
}

/// `chunk-size [ chunk-ext ]`: hex digits, then extensions, nothing else.
fn parse_size_line(line: &[u8]) -> Result<u64, HttpError> {
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 {
        return Err(HttpError::bad("invalid chunk size"));
    }
    let mut size: u64 = 0;
    for &d in &line[..digits] {
        let v = (d as char).to_digit(16).unwrap_or(0);
        size = size
            .checked_mul(16)
            .and_then(|n| n.checked_add(u64::from(v)))
            .ok_or(HttpError::bad("chunk size out of range"))?;
    }
    check_extensions(&line[digits..])?;
    Ok(size)
}

/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn check_extensions(ext: &[u8]) -> Result<(), HttpError> {
    let bad = |what| Err(HttpError::bad(what));
    let skip_ws = |mut i: usize| {
        while i < ext.len() && (ext[i] == b' ' || ext[i] == b'\t') {
            i += 1;
        }
        i
    };
    let token_end = |i: usize| {
        ext[i..]
            .iter()
            .position(|&b| !is_token(&[b]))
            .map_or(ext.len(), |n| i + n)
    };
    let mut i = 0;
    while i < ext.len() {
        let semi = skip_ws(i);
        if semi == ext.len() || ext[semi] != b';' {
            return bad(if i == 0 {
                "invalid chunk size"
            } else {
                "invalid chunk extension"
            });
        }
        let name = skip_ws(semi + 1);
        i = token_end(name);
        if i == name {
            return bad("invalid chunk extension");
        }
        let eq = skip_ws(i);
        if eq < ext.len() && ext[eq] == b'=' {
            let value = skip_ws(eq + 1);
            i = if ext.get(value) == Some(&b'"') {
                quoted_string_end(ext, value).ok_or(HttpError::bad("invalid chunk extension"))?
            } else {
                token_end(value)
            };
            if i == value {
                return bad("invalid chunk extension");
            }
        }
    }
    Ok(())
}

/// The index after the quoted-string starting at `start` (a `"`), if well-formed.
fn quoted_string_end(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                let next = *s.get(i + 1)?;
                if !is_field_vchar(next) {
                    return None;
                }
                i += 2;
            }
            b if is_field_vchar(b) => i += 1,
            _ => return None,
        }
    }
    None
}

/// HTAB, SP, visible ASCII and obs-text: what a field value may contain.
fn is_field_vchar(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

fn parse_trailer(line: &[u8]) -> Result<(String, Vec<u8>), HttpError> {
    if line[0] == b' ' || line[0] == b'\t' {
        return Err(HttpError::bad("obs-fold (folded trailer line)"));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::bad("trailer line without a colon"))?;
    let name = &line[..colon];
    if !is_token(name) {
        return Err(HttpError::bad("invalid trailer field name"));
    }
    let value = &line[colon + 1..];
    if !value.iter().all(|&b| is_field_vchar(b)) {
        return Err(HttpError::bad("control character in trailer"));
    }
    if FORBIDDEN_TRAILERS
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f.as_bytes()))
    {
        return Err(HttpError::bad("trailer field not allowed in a trailer"));
    }
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    // A token is ASCII.
    let name = String::from_utf8_lossy(name).into_owned();
    Ok((name, value[start..end].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), HttpError> {
        let mut d = ChunkedDecoder::new(1 << 20);
        let mut out = Vec::new();
        let used = d.decode(input, &mut out, usize::MAX)?;
        assert!(d.is_done(), "not done");
        assert_eq!(d.total(), out.len() as u64);
        Ok((out, used))
    }

    #[test]
    fn decodes_and_stops_at_the_end() {
        let (body, used) =
            decode_all(b"5\r\nhello\r\n6;x=\"y\"\r\n world\r\n0\r\nT: v\r\n\r\nGET").expect("ok");
        assert_eq!(body, b"hello world");
        assert_eq!(used, 38);
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let raw = b"3\r\nabc\r\na ; n = \"q\\\"s\" ; m\r\n0123456789\r\n0\r\nX: 1\r\n\r\n";
        let mut d = ChunkedDecoder::new(100);
        let mut out = Vec::new();
        for b in raw.chunks(1) {
            assert_eq!(d.decode(b, &mut out, usize::MAX).expect("ok"), 1);
        }
        assert!(d.is_done());
        assert_eq!(out, b"abc0123456789");
        assert_eq!(d.trailers(), &[("X".to_owned(), b"1".to_vec())]);
    }

    #[test]
    fn max_out_is_respected() {
        let mut d = ChunkedDecoder::new(100);
        let mut out = Vec::new();
        let raw = b"a\r\n0123456789\r\n0\r\n\r\n";
        let used = d.decode(raw, &mut out, 4).expect("ok");
        assert_eq!(out, b"0123");
        let rest = d.decode(&raw[used..], &mut out, 100).expect("ok");
        assert_eq!(used + rest, raw.len());
        assert!(d.is_done());
    }

    #[test]
    fn refuses_bad_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"5\nhello",
            b"5\r\nhelloX\r\n",
            b"-1\r\n",
            b"+1\r\n",
            b" 1\r\n",
            b"1 \r\n",
            b"1;\r\n",
            b"1;a=\r\n",
            b"1;a=\"x\r\n",
            b"1;a=b c\r\n",
            b"1;a\rb\r\n",
            b"11111111111111111\r\n",
            b"5;\x01\r\n",
            b"0\r\nbad trailer\r\n\r\n",
            b"0\r\n folded: x\r\n\r\n",
            b"0\r\nContent-Length: 5\r\n\r\n",
            b"0\r\nHost: evil\r\n\r\n",
        ] {
            let mut d = ChunkedDecoder::new(u64::MAX);
            assert!(
                d.decode(bad, &mut Vec::new(), usize::MAX).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut d = ChunkedDecoder::new(4);
        assert_eq!(
            d.decode(b"5\r\n", &mut Vec::new(), usize::MAX)
                .map_err(|e| e.status),
            Err(413)
        );
        // The limit is on the sum of the chunks.
        let mut d = ChunkedDecoder::new(10);
        let result = d.decode(b"6\r\nabcdef\r\n5\r\n", &mut Vec::new(), usize::MAX);
        assert_eq!(result.map_err(|e| e.status), Err(413));
    }
}
