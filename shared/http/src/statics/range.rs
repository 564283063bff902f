//! The `Range` header (RFC 9110 14.2), for byte ranges of a file.

/// Most ranges answered as multipart/byteranges; more get the whole file.
pub const MAX_RANGES: usize = 16;

/// What a `Range` header asks of a file of a given length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// No usable range: send the whole file (also for syntax errors and
    /// requests RFC 9110 lets a server answer in full).
    Full,
    /// Nothing in the header overlaps the file: 416.
    Unsatisfiable,
    /// Inclusive `(first, last)` byte positions, in the order asked, at
    /// least one, ascending and not overlapping.
    Some(Vec<(u64, u64)>),
}

/// Parses `value` against a file of `len` bytes.
pub fn parse(value: &[u8], len: u64) -> Ranges {
    let Ok(value) = std::str::from_utf8(value) else {
        return Ranges::Full;
    };
    let Some((unit, set)) = value.split_once('=') else {
        return Ranges::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Full;
    }
    let mut ranges = Vec::new();
    let mut specs = 0;
    for spec in set.split(',') {
        let spec = spec.trim_matches([' ', '\t']);
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return Ranges::Full;
        }
        let Some((first, last)) = spec.split_once('-') else {
            return Ranges::Full;
        };
        let range = if first.is_empty() {
            // A suffix: the last N bytes.
            let Some(n) = number(last) else {
                return Ranges::Full;
            };
            if n == 0 || len == 0 {
                continue;
            }
            (len - n.min(len), len - 1)
        } else {
            let Some(first) = number(first) else {
                return Ranges::Full;
            };
            let last = if last.is_empty() {
                u64::MAX
            } else {
                match number(last) {
                    Some(l) if l >= first => l,
                    _ => return Ranges::Full,
                }
            };
            if first >= len {
                continue;
            }
            (first, last.min(len - 1))
        };
        ranges.push(range);
    }
    if specs == 0 {
        return Ranges::Full;
    }
    if ranges.is_empty() {
        return Ranges::Unsatisfiable;
    }
    // Overlapping or out-of-order ranges are a known denial-of-service
    // pattern; RFC 9110 lets the server send the whole file instead.
    if ranges.windows(2).any(|w| w[1].0 <= w[0].1) {
        return Ranges::Full;
    }
    Ranges::Some(ranges)
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str, len: u64) -> Ranges {
        parse(v.as_bytes(), len)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(p("bytes=0-9", 100), Ranges::Some(vec![(0, 9)]));
        assert_eq!(p("bytes=90-", 100), Ranges::Some(vec![(90, 99)]));
        assert_eq!(p("bytes=90-1000", 100), Ranges::Some(vec![(90, 99)]));
        assert_eq!(p("bytes=-10", 100), Ranges::Some(vec![(90, 99)]));
        assert_eq!(p("bytes=-1000", 100), Ranges::Some(vec![(0, 99)]));
        assert_eq!(p("Bytes = 5-5", 100), Ranges::Some(vec![(5, 5)]));
        assert_eq!(
            p("bytes=5000000000-5000000009", 6_000_000_000),
            Ranges::Some(vec![(5_000_000_000, 5_000_000_009)])
        );
    }

    #[test]
    fn multiple_ranges() {
        assert_eq!(
            p("bytes=0-0, 10-19,-5", 100),
            Ranges::Some(vec![(0, 0), (10, 19), (95, 99)])
        );
        // Overlapping or unordered: the whole file.
        assert_eq!(p("bytes=0-10,5-20", 100), Ranges::Full);
        assert_eq!(p("bytes=50-60,0-10", 100), Ranges::Full);
        let many = (0..20)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(p(&format!("bytes={many}"), 100), Ranges::Full);
        // Unsatisfiable parts are dropped.
        assert_eq!(p("bytes=0-1,200-300", 100), Ranges::Some(vec![(0, 1)]));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(p("bytes=100-", 100), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=100-200,300-", 100), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=-0", 100), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), Ranges::Unsatisfiable);
    }

    #[test]
    fn invalid_headers_are_ignored() {
        for v in [
            "bytes=",
            "bytes=a-b",
            "bytes=10-5",
            "bytes=--5",
            "bytes=5",
            "items=0-5",
            "bytes 0-5",
            "bytes=+1-5",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(p(v, 100), Ranges::Full, "{v}");
        }
    }
}
