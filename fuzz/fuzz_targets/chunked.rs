//! `ChunkedDecoder` fed arbitrary bytes: it never panics, never hands out
//! more than `max_out` bytes per call nor other than `total()` bytes in all,
//! and reaches the same result fed in random pieces as fed whole.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use rwsgi_http::{ChunkedDecoder, HttpError};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    result: Result<usize, HttpError>,
    body: Vec<u8>,
    done: bool,
    trailers: Vec<(String, Vec<u8>)>,
}

/// Feeds `input` as it arrives in pieces ending at `cuts`, calling `decode`
/// until each piece is used up (or the body ends).
fn feed(input: &[u8], limit: u64, max_out: usize, cuts: &[usize]) -> Outcome {
    let mut decoder = ChunkedDecoder::new(limit);
    let mut body = Vec::new();
    let mut pos = 0;
    let mut result = Ok(0);
    'pieces: for &arrived in cuts {
        while pos < arrived && !decoder.is_done() {
            let before = body.len();
            match decoder.decode(&input[pos..arrived], &mut body, max_out) {
                Ok(used) => {
                    assert!(
                        body.len() - before <= max_out,
                        "more than max_out handed out"
                    );
                    assert!(used > 0 || body.len() > before, "no progress");
                    assert!(used <= arrived - pos);
                    pos += used;
                }
                Err(e) => {
                    result = Err(e);
                    break 'pieces;
                }
            }
            assert_eq!(
                decoder.total(),
                body.len() as u64,
                "total() is not what was handed out"
            );
        }
        result = Ok(pos);
    }
    assert!(body.len() as u64 <= limit, "more body than the limit");
    Outcome {
        result,
        body,
        done: decoder.is_done(),
        trailers: decoder.trailers().to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    let [sel, seed, input @ ..] = data else {
        return;
    };
    let limit = if sel & 0x80 != 0 {
        u64::from(sel & 0x7f) * 3
    } else {
        u64::MAX
    };
    let max_out = usize::from(sel % 16) + 1;
    // Cut points from a small xorshift seeded by the input's second byte.
    let mut state = (u64::from(*seed) << 32 | input.len() as u64) ^ 0x9E37_79B9_7F4A_7C15;
    let mut cuts = Vec::new();
    let mut at = 0;
    while at < input.len() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        at = (at + 1 + (state % 9) as usize).min(input.len());
        cuts.push(at);
    }
    let whole = feed(input, limit, usize::MAX, &[input.len()]);
    let pieces = feed(input, limit, max_out, &cuts);
    assert_eq!(pieces, whole, "split feeding differs from whole");
});
