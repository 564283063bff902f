//! Receiving a request body before the application runs, without a thread
//! that waits for it: the worker's I/O thread feeds this whatever bytes have
//! arrived and is told, each time, whether the body is complete.
//!
//! Every byte on the wire counts against `--limit-request-body`: the decoded
//! body may not exceed the limit, and a chunked body's framing (chunk-size
//! lines, extensions, CRLFs, trailers) may add at most [`framing_allowance`]
//! to it. A client that frames one byte per chunk with a 4 KiB extension
//! is refused long before it has sent the limit a thousand times over.
//!
//! Plain data, no I/O: the verdict never depends on how the bytes are split.

use super::body::Framing;
use super::{BodyKind, HttpError, RequestHead};

/// What the I/O thread does with a request whose head is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// No body, or a Content-Length body already wholly received: a
    /// request thread can run it now and never waits on the network.
    HandOff,
    /// `--chunked-request`: the application reads the chunked body from
    /// the socket as it arrives (its choice, made by that option).
    Stream,
    /// Receive the body first; answer `100 Continue` before when the
    /// client waits for one.
    Receive { send_continue: bool },
}

/// The plan for `head`, given how many bytes after it have arrived already.
pub fn plan(head: &RequestHead, buffered: usize, stream_chunked: bool) -> BodyPlan {
    match head.body {
        BodyKind::Empty => BodyPlan::HandOff,
        BodyKind::Length(n) if buffered as u64 >= n => BodyPlan::HandOff,
        BodyKind::Chunked if stream_chunked => BodyPlan::Stream,
        // RFC 9110 10.1.1: a server may omit the 100 when body bytes came
        // anyway; sending it then would only be noise.
        BodyKind::Length(_) | BodyKind::Chunked => BodyPlan::Receive {
            send_continue: head.expect_continue && buffered == 0,
        },
    }
}

/// How many bytes of framing a chunked body may add to `--limit-request-body`:
/// an eighth of the limit, and at least 64 KiB (git sends 64 KiB chunks
/// or smaller, whose framing is a few bytes each; the trailer section is
/// 8 KiB at most).
pub fn framing_allowance(limit: u64) -> u64 {
    (limit / 8).max(64 * 1024)
}

/// A request body being received.
#[derive(Debug)]
pub struct Intake {
    framing: Framing,
    /// Bytes of the body as sent (framing included).
    wire: u64,
    wire_limit: u64,
    decoded: u64,
}

/// Progress after a [`Intake::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// The body is complete; `used` input bytes were its end, the rest
    /// belongs to the next request.
    Complete { used: usize },
    /// All the input was body; more is needed.
    More,
}

impl Intake {
    /// Receiving a body framed as `kind`, under `--limit-request-body` `limit`.
    pub fn new(kind: BodyKind, limit: u64) -> Intake {
        let wire_limit = match kind {
            BodyKind::Empty => 0,
            BodyKind::Length(n) => n,
            BodyKind::Chunked => limit.saturating_add(framing_allowance(limit)),
        };
        let framing = Framing::start(kind, limit);
        Intake {
            framing,
            wire: 0,
            wire_limit,
            decoded: 0,
        }
    }

    /// Bytes of the body received so far, as sent.
    pub fn wire(&self) -> u64 {
        self.wire
    }

    /// Bytes of the body decoded so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    /// Takes body bytes from the front of `input`, appending the decoded
    /// body to `out`. An error is the client's: 400 for broken framing,
    /// 413 over the limit, 431 for an oversized trailer section.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Fed, HttpError> {
        let before = out.len();
        let used = match &mut self.framing {
            Framing::Done => 0,
            Framing::Length(rem) => {
                let n = usize::try_from(*rem).unwrap_or(usize::MAX).min(input.len());
                out.extend_from_slice(&input[..n]);
                *rem -= n as u64;
                if *rem == 0 {
                    self.framing = Framing::Done;
                }
                n
            }
            Framing::Chunked(dec) => {
                // The decoder sees one byte past the allowance at most, so a
                // framing error inside the allowance wins over the 413
                // whatever the split, and the 413 comes the moment the
                // allowance is crossed.
                let room = self.wire_limit.saturating_sub(self.wire).saturating_add(1);
                let take = usize::try_from(room).unwrap_or(usize::MAX).min(input.len());
                let used = dec.decode(&input[..take], out, usize::MAX)?;
                if self.wire + used as u64 > self.wire_limit {
                    return Err(HttpError::new(413, "request body larger than the limit"));
                }
                if dec.is_done() {
                    self.framing = Framing::Done;
                }
                used
            }
        };
        self.wire += used as u64;
        self.decoded += (out.len() - before) as u64;
        Ok(if self.is_complete() {
            Fed::Complete { used }
        } else {
            Fed::More
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_request_head, Parsed};

    fn head(raw: &str) -> RequestHead {
        match parse_request_head(raw.as_bytes(), &Default::default()) {
            Ok(Parsed::Complete(h, _)) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_the_io_thread_does_with_a_head() {
        let get = head("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let post = head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n");
        let expect = head(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
        );
        let chunked = head("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        let chunked_expect = head(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        );
        let receive = |send_continue| BodyPlan::Receive { send_continue };
        for (head, buffered, stream, want) in [
            // The keep-alive fast path: nothing to wait for.
            (&get, 0, false, BodyPlan::HandOff),
            (&get, 100, false, BodyPlan::HandOff),
            // A small body that came with its head: run at once.
            (&post, 10, false, BodyPlan::HandOff),
            (&post, 25, false, BodyPlan::HandOff),
            // Part of it, or none: received here first.
            (&post, 9, false, receive(false)),
            (&post, 0, true, receive(false)),
            (&expect, 0, false, receive(true)),
            (&expect, 3, false, receive(false)),
            (&expect, 10, false, BodyPlan::HandOff),
            // Chunked: always received, even if all of it is here (the
            // end is only known by decoding), unless the app streams it.
            (&chunked, 0, false, receive(false)),
            (&chunked, 100, false, receive(false)),
            (&chunked_expect, 0, false, receive(true)),
            (&chunked, 0, true, BodyPlan::Stream),
            (&chunked_expect, 0, true, BodyPlan::Stream),
        ] {
            assert_eq!(
                plan(head, buffered, stream),
                want,
                "{head:?} {buffered} {stream}"
            );
        }
    }

    /// Feeds `raw` in pieces of `piece` bytes; the body, and how many bytes
    /// of `raw` were the body's, or the status.
    fn receive(
        kind: BodyKind,
        limit: u64,
        raw: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, usize), u16> {
        let mut intake = Intake::new(kind, limit);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < raw.len() {
            let end = (pos + piece).min(raw.len());
            match intake
                .feed(&raw[pos..end], &mut out)
                .map_err(|e| e.status)?
            {
                Fed::Complete { used } => {
                    assert_eq!(intake.wire(), (pos + used) as u64);
                    assert_eq!(intake.decoded(), out.len() as u64);
                    return Ok((out, pos + used));
                }
                Fed::More => pos = end,
            }
        }
        Err(0)
    }

    #[test]
    fn bodies_end_where_their_framing_says() {
        for piece in [1, 2, 5, 1000] {
            assert_eq!(
                receive(BodyKind::Length(5), 100, b"helloGET /", piece),
                Ok((b"hello".to_vec(), 5))
            );
            assert_eq!(
                receive(
                    BodyKind::Chunked,
                    100,
                    b"5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\nGET /",
                    piece
                ),
                Ok((b"hello".to_vec(), 25))
            );
            assert_eq!(receive(BodyKind::Chunked, 100, b"zz\r\n", piece), Err(400));
        }
    }

    #[test]
    fn framing_counts_toward_the_limit() {
        let limit = 1000;
        let allowance = framing_allowance(limit);
        assert_eq!(allowance, 64 * 1024);
        // The decoded body at the limit, in sane chunks: accepted.
        let mut ok = Vec::new();
        for _ in 0..10 {
            ok.extend_from_slice(b"64\r\n");
            ok.extend_from_slice(&[b'a'; 100]);
            ok.extend_from_slice(b"\r\n");
        }
        ok.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(
            receive(BodyKind::Chunked, limit, &ok, 7).map(|(b, _)| b.len()),
            Ok(1000)
        );
        // Announced beyond the limit: 413 at once.
        assert_eq!(receive(BodyKind::Chunked, limit, b"3e9\r\n", 1), Err(413));
        // A tiny body whose extensions outweigh the allowance: 413, for
        // every split, before the decoder has seen much past it.
        let mut ext = Vec::new();
        let line = format!("1;e=\"{}\"\r\nx\r\n", "v".repeat(3000));
        while (ext.len() as u64) < limit + allowance + 10_000 {
            ext.extend_from_slice(line.as_bytes());
        }
        for piece in [1, 999, 4096, 1 << 20] {
            assert_eq!(
                receive(BodyKind::Chunked, limit, &ext, piece),
                Err(413),
                "{piece}"
            );
        }
        // Within the allowance, broken framing is still a 400, whatever the split.
        let mut broken = ext[..line.len() * 3].to_vec();
        broken.extend_from_slice(b"zz\r\n");
        for piece in [1, 4096, 1 << 20] {
            assert_eq!(
                receive(BodyKind::Chunked, limit, &broken, piece),
                Err(400),
                "{piece}"
            );
        }
    }
}
