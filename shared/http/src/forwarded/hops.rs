//! A hop of a chain (X-Forwarded-For, `for=`): an address, `unknown`, or
//! an obfuscated identifier.

use super::cidr::canonical;
use super::grammar::is_port;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The hop found to be the client: its place in the list, and its
/// address (none when it is `unknown` or obfuscated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hop {
    pub(super) index: usize,
    pub(super) ip: Option<IpAddr>,
}

/// A hop that had to be read is not an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NotANode;

/// A hop of X-Forwarded-For or of `for=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Node {
    Ip(IpAddr),
    /// `unknown`, or an obfuscated identifier (`_hidden`, RFC 7239 6.3).
    Unknown,
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `[::1]`, `::1`, `unknown`, `_x`.
pub(super) fn parse_node(s: &str) -> Option<Node> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("unknown") || is_obfuscated(s) {
        return Some(Node::Unknown);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(Node::Ip(canonical(ip)));
    }
    let (ip, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (ip, after) = rest.split_once(']')?;
            (
                IpAddr::V6(ip.parse::<Ipv6Addr>().ok()?),
                after.strip_prefix(':'),
            )
        }
        None => {
            let (ip, port) = s.split_once(':')?;
            (IpAddr::V4(ip.parse::<Ipv4Addr>().ok()?), Some(port))
        }
    };
    match port {
        Some(p) if is_port(p) || is_obfuscated(p) => Some(Node::Ip(canonical(ip))),
        None if s.ends_with(']') => Some(Node::Ip(canonical(ip))),
        _ => None,
    }
}

/// RFC 7239 6.3: `_` and letters, digits, `.`, `_`, `-`.
fn is_obfuscated(s: &str) -> bool {
    s.len() > 1
        && s.starts_with('_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
