//! `parse_request_head` on arbitrary bytes: it never panics, a complete head
//! parses the same on its own, and the verdict on a prefix never contradicts
//! the verdict on the whole (a head arriving in pieces meets the same fate).
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use rwsgi_http::{parse_request_head, BodyKind, HttpError, Parsed};
use rwsgi_shared::config::Limits;

/// An odd first byte selects tiny limits, so that short inputs reach every limit.
fn limits_and_input(data: &[u8]) -> (Limits, &[u8]) {
    match data {
        [sel, a, b, rest @ ..] if sel & 1 == 1 => (
            Limits {
                request_body: u64::from(*a) * 7,
                request_line: usize::from(a % 64),
                header_fields: usize::from(sel >> 4),
                header_field_size: usize::from(b % 64),
                header_buffer: usize::from(*b),
                keep_alive: true,
            },
            rest,
        ),
        _ => (Limits::default(), data),
    }
}

fn prefix_lengths(len: usize) -> impl Iterator<Item = usize> {
    // Every length for short inputs; otherwise a spread, and every length near the end.
    let stride = (len / 64).max(1);
    (0..len).filter(move |&n| n % stride == 0 || len - n <= 16)
}

const STATUSES: [u16; 7] = [400, 413, 414, 417, 431, 501, 505];

fuzz_target!(|data: &[u8]| {
    let (limits, buf) = limits_and_input(data);
    let whole = parse_request_head(buf, &limits);
    match &whole {
        Ok(Parsed::Complete(head, used)) => {
            assert!(*used <= buf.len(), "used {used} of {}", buf.len());
            assert_eq!(
                parse_request_head(&buf[..*used], &limits),
                whole,
                "the head alone parses differently"
            );
            assert!(
                *used <= limits.header_buffer,
                "head of {used} bytes over the header buffer"
            );
            assert!(!head.method.is_empty());
            assert!(
                head.path.starts_with('/') || head.path == "*",
                "path {:?}",
                head.path
            );
            if let BodyKind::Length(n) = head.body {
                assert!(n > 0 && n <= limits.request_body);
            }
        }
        Ok(Parsed::Partial) => assert!(
            buf.len() <= limits.header_buffer,
            "partial beyond the header buffer"
        ),
        Err(HttpError { status, reason }) => {
            assert!(STATUSES.contains(status), "status {status}");
            assert!(!reason.is_empty());
            // The parser's fallback when it cannot say what is wrong: never expected.
            assert_ne!(*reason, "invalid header field", "undiagnosed rejection");
        }
    }
    let complete_at = match &whole {
        Ok(Parsed::Complete(_, used)) => *used,
        _ => usize::MAX,
    };
    for n in prefix_lengths(buf.len().min(complete_at)) {
        let prefix = parse_request_head(&buf[..n], &limits);
        match (&prefix, &whole) {
            (Ok(Parsed::Partial), _) => {}
            (Err(e), Err(w)) => assert_eq!(e, w, "prefix of {n} bytes refused differently"),
            (p, w) => panic!("prefix of {n} bytes: {p:?}, whole: {w:?}"),
        }
    }
});
