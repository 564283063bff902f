//! The grammar each forwarded value must obey: a value that does not is
//! the proxy's error.

use crate::{is_pchar, is_valid_host};

/// A list's elements, trimmed; empty ones are not elements (RFC 9110 5.6.1).
pub(super) fn list(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect()
}

/// The value the nearest hop added.
pub(super) fn rightmost(v: &str) -> Option<&str> {
    list(v).pop()
}

pub(super) fn scheme(v: &str) -> Option<&'static str> {
    match v {
        s if s.eq_ignore_ascii_case("https") => Some("https"),
        s if s.eq_ignore_ascii_case("http") => Some("http"),
        _ => None,
    }
}

pub(super) fn ssl_flag(v: &str) -> Option<&'static str> {
    match v {
        s if s.eq_ignore_ascii_case("on") || s == "1" => Some("https"),
        s if s.eq_ignore_ascii_case("off") || s == "0" => Some("http"),
        _ => None,
    }
}

/// Digits, 1 to 65535.
pub(super) fn is_port(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u16>().is_ok_and(|n| n > 0)
}

/// What the parser accepts in Host, with a port (if any) in range.
pub(super) fn valid_host(h: &str) -> bool {
    if !is_valid_host(h.as_bytes()) {
        return false;
    }
    // The parser checked the shape: a port follows the last colon that is
    // not inside an IP literal.
    match h.rfind(':') {
        Some(i) if !h[i..].contains(']') => {
            let port = &h[i + 1..];
            port.is_empty() || is_port(port)
        }
        _ => true,
    }
}

/// An absolute path without dot segments, its trailing slashes taken off
/// (`/` is no prefix: ""). `//host` is refused: as a URL it names a host.
pub(super) fn prefix(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.starts_with("//") {
        return None;
    }
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                i += 3;
            }
            c if c == b'/' || is_pchar(c) => i += 1,
            _ => return None,
        }
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return None;
    }
    Some(p.trim_end_matches('/').to_owned())
}
