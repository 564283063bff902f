//! The PROXY protocol preamble (HAProxy's, versions 1 and 2), read before
//! the first request of a connection when `--proxy-protocol` is on: it
//! names the client the load balancer accepted, which becomes REMOTE_ADDR
//! and REMOTE_PORT. A connection without a valid preamble is refused. This
//! module only reads the bytes; whether they are believed is decided on the
//! connection's real peer (`forwarded::Rules::admits_preamble`), and what they
//! claim is kept apart from that peer (`origin::Origin`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (the specification's limit).
const V1_MAX: usize = 107;

/// What the first bytes of a connection are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preamble {
    /// More bytes are needed.
    Partial,
    /// A preamble of `len` bytes; the client it names, if any (`LOCAL` and
    /// `UNKNOWN` name none: the connection's own peer stands).
    Complete {
        len: usize,
        client: Option<SocketAddr>,
    },
    /// Not a valid preamble.
    Invalid(&'static str),
}

/// Parses the preamble at the start of `buf`.
pub fn parse(buf: &[u8]) -> Preamble {
    if buf.is_empty() {
        return Preamble::Partial;
    }
    let sig = &V2_SIGNATURE[..buf.len().min(12)];
    if buf.starts_with(sig) {
        return if buf.len() < 16 {
            Preamble::Partial
        } else {
            v2(buf)
        };
    }
    let v1 = b"PROXY ";
    if buf.len() < v1.len() {
        return if v1.starts_with(buf) {
            Preamble::Partial
        } else {
            Preamble::Invalid("no PROXY protocol preamble")
        };
    }
    if !buf.starts_with(v1) {
        return Preamble::Invalid("no PROXY protocol preamble");
    }
    v1_line(buf)
}

fn v1_line(buf: &[u8]) -> Preamble {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Preamble::Invalid("PROXY v1 line too long")
        } else {
            Preamble::Partial
        };
    };
    let Ok(line) = std::str::from_utf8(&window[..end]) else {
        return Preamble::Invalid("PROXY v1 line is not text");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    let len = end + 2;
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Preamble::Complete { len, client: None },
        ["PROXY", family @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: Option<IpAddr> = match *family {
                "TCP4" => src.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
                _ => src.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            };
            let port = sport
                .parse::<u16>()
                .ok()
                .filter(|_| !sport.starts_with('0') || *sport == "0");
            match (ip, port) {
                (Some(ip), Some(port)) => Preamble::Complete {
                    len,
                    client: Some(SocketAddr::new(ip, port)),
                },
                _ => Preamble::Invalid("PROXY v1 addresses are malformed"),
            }
        }
        _ => Preamble::Invalid("PROXY v1 line is malformed"),
    }
}

fn v2(buf: &[u8]) -> Preamble {
    let ver_cmd = buf[12];
    let fam = buf[13];
    let body_len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body_len;
    if ver_cmd >> 4 != 2 {
        return Preamble::Invalid("PROXY v2 version is not 2");
    }
    if buf.len() < len {
        return Preamble::Partial;
    }
    let body = &buf[16..len];
    match ver_cmd & 0x0f {
        // LOCAL: the proxy's own connection (health checks): no client.
        0 => return Preamble::Complete { len, client: None },
        1 => {}
        _ => return Preamble::Invalid("PROXY v2 command is unknown"),
    }
    let client = match fam {
        // TCP over IPv4: src, dst addresses, src, dst ports.
        0x11 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Some(SocketAddr::new(IpAddr::V4(ip), port))
        }
        0x21 if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        // UNSPEC, UDP, unix sockets: nothing rwsgi can use as a client address.
        0x00 | 0x12 | 0x22 | 0x31 | 0x32 => None,
        _ => return Preamble::Invalid("PROXY v2 addresses are malformed"),
    };
    Preamble::Complete { len, client }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let raw = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
        assert_eq!(
            parse(raw),
            Preamble::Complete {
                len: 45,
                client: Some("192.0.2.1:56324".parse().expect("addr"))
            }
        );
        let raw = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
        assert!(matches!(parse(raw), Preamble::Complete { client: Some(a), .. } if a.port() == 1));
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Preamble::Complete {
                len: 15,
                client: None
            }
        );
        for end in 0..raw.len() {
            assert_eq!(parse(&raw[..end]), Preamble::Partial, "prefix {end}");
        }
    }

    #[test]
    fn v1_refusals() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 1 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        ] {
            assert!(matches!(parse(bad), Preamble::Invalid(_)), "{bad:?}");
        }
        assert!(matches!(parse(&[b'P'; 200]), Preamble::Invalid(_)));
        let long = format!("PROXY TCP4 {}", "1".repeat(120));
        assert!(matches!(parse(long.as_bytes()), Preamble::Invalid(_)));
    }

    #[test]
    fn v2_proxy_and_local() {
        let mut raw = V2_SIGNATURE.to_vec();
        raw.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 9, 10, 0, 0, 1, 0x1f, 0x90, 0, 80,
        ]);
        raw.extend_from_slice(b"GET");
        assert_eq!(
            parse(&raw),
            Preamble::Complete {
                len: 28,
                client: Some("192.0.2.9:8080".parse().expect("addr"))
            }
        );
        for end in 0..28 {
            assert_eq!(parse(&raw[..end]), Preamble::Partial, "prefix {end}");
        }
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local),
            Preamble::Complete {
                len: 16,
                client: None
            }
        );
        let mut bad = V2_SIGNATURE.to_vec();
        bad.extend_from_slice(&[0x31, 0x11, 0, 0]);
        assert!(matches!(parse(&bad), Preamble::Invalid(_)));
    }
}
