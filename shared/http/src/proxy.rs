//! Trusted proxies: the PROXY preamble (`--proxy-protocol`) and the
//! forwarded headers (`--trust-proxy-header`), both believed only from a
//! peer `--trust-proxy` trusts.
//!
//! Headers come in groups by purpose, with mod_wsgi's semantics (the
//! client's address, the scheme, the host, the port, the URL prefix). For a
//! group in which a header is trusted, a request that comes through trusted
//! hops has that header applied (REMOTE_ADDR, wsgi.url_scheme, HTTP_HOST,
//! SERVER_PORT, SCRIPT_NAME) and the group's other headers removed; any
//! other request has the whole group removed, so an application reading
//! the header itself cannot be fooled by a spoofed one. Groups nobody
//! trusts pass through untouched. Without `--trust-proxy` every peer is
//! trusted, as in mod_wsgi (the server warns at start).
//!
//! Who is believed, as nginx's real_ip module with `real_ip_recursive on`
//! decides it: the chain of hops is read from the nearest end, and each
//! address is believed only if the hop before it (nearer to us) is a
//! trusted proxy.
//! - The nearest hop is the TCP peer ([`Origin::peer`]), never anything a
//!   byte on the connection says. A PROXY preamble is a statement by that
//!   peer: it is honoured only from a trusted peer, and the connection of
//!   any other is refused ([`Rules::admits_preamble`]).
//! - The client a preamble names is the next hop. It is the one who wrote
//!   the request's headers (HAProxy in TCP mode passes them through), so
//!   forwarded headers are believed only when it is a trusted proxy too
//!   (a CDN in front of HAProxy, say); a client's own `X-Forwarded-For`
//!   behind HAProxy is removed like any spoofed header.
//! - `X-Forwarded-For` and `Forwarded`'s `for=` continue the chain: the
//!   client is the rightmost address that is not a trusted proxy (the
//!   leftmost when all are). `Forwarded` is the one header whose elements
//!   line up with its hops, so its `proto=` and `host=` are taken from the
//!   element of that client (written by the first trusted proxy), or the
//!   nearest trusted element after it that has them.
//! - Any other header that arrives as a list (several values, or several
//!   fields) counts only its rightmost value: the one the nearest hop, a
//!   trusted proxy, added. A proxy that appends (nginx's
//!   `$proxy_add_x_forwarded_for` style) cannot let the client choose.
//!
//! Every value used obeys the grammar of the field it stands for: a host
//! is a valid Host (RFC 9110 7.2, the parser's check), a port is 1 to
//! 65535, a scheme `http` or `https`, an address an IP address, a prefix
//! an absolute path without dot segments. A value that does not is the
//! proxy's error, and the request is refused (400) with the header named
//! ([`Invalid`]); values to the left of the one used are not examined.
//!
//! Pure functions over the origin and the head's fields: unit-tested here.

use crate::{is_pchar, is_valid_host};
use rwsgi_shared::origin::{Claim, Origin};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What a group of headers tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Client,
    Scheme,
    Host,
    Port,
    Prefix,
    Server,
}

/// The headers rwsgi knows, lowercase, with their purpose. `Forwarded`
/// (RFC 7239) speaks to three purposes at once.
const KNOWN: &[(&str, &[Purpose])] = &[
    ("x-forwarded-for", &[Purpose::Client]),
    ("x-real-ip", &[Purpose::Client]),
    ("x-client-ip", &[Purpose::Client]),
    ("x-forwarded-proto", &[Purpose::Scheme]),
    ("x-forwarded-scheme", &[Purpose::Scheme]),
    ("x-scheme", &[Purpose::Scheme]),
    ("x-forwarded-ssl", &[Purpose::Scheme]),
    ("x-forwarded-https", &[Purpose::Scheme]),
    ("x-https", &[Purpose::Scheme]),
    ("x-forwarded-host", &[Purpose::Host]),
    ("x-host", &[Purpose::Host]),
    ("x-forwarded-port", &[Purpose::Port]),
    ("x-script-name", &[Purpose::Prefix]),
    ("x-forwarded-prefix", &[Purpose::Prefix]),
    ("x-forwarded-script-name", &[Purpose::Prefix]),
    // mod_wsgi 6's: SERVER_NAME.
    ("x-forwarded-server", &[Purpose::Server]),
    (
        "forwarded",
        &[Purpose::Client, Purpose::Scheme, Purpose::Host],
    ),
];

fn purposes(name: &str) -> &'static [Purpose] {
    KNOWN
        .iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n))
        .map_or(&[], |(_, p)| p)
}

/// An address range, `10.0.0.0/8` or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim_matches(['[', ']'])
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address is its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0
}

/// The proxy rules of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Trusted header names, lowercase.
    headers: Vec<String>,
    /// Trusted peers; empty: every peer.
    proxies: Vec<Cidr>,
}

/// What the trusted headers of one request say, and which headers the
/// application must not see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjusted {
    /// The client as the connection knows it (a preamble's, else the
    /// peer): REMOTE_ADDR and REMOTE_PORT unless a header says otherwise.
    pub connection_client: SocketAddr,
    /// The client's address a trusted header gave.
    pub remote_addr: Option<IpAddr>,
    /// `http` or `https`.
    pub scheme: Option<&'static str>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub prefix: Option<String>,
    /// `SERVER_NAME` (X-Forwarded-Server).
    pub server: Option<String>,
    /// Header names (lowercase) to leave out of the environ.
    pub drop: Vec<String>,
}

/// A forwarded value that does not obey its field's grammar: the request
/// is refused (400), and the log names the header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header} from a trusted proxy is not {expected}")]
pub struct Invalid {
    /// The header's name, as usually written (`X-Forwarded-Host`).
    pub header: String,
    pub expected: &'static str,
}

/// A PROXY preamble from a peer `--trust-proxy` does not trust: the
/// connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the peer is not a --trust-proxy address, so its PROXY preamble is not believed")]
pub struct UntrustedPeer {
    pub peer: SocketAddr,
}

impl Rules {
    /// Rules from the option values; errors name the bad value.
    pub fn new(headers: &[String], proxies: &[String]) -> Result<Rules, String> {
        let mut names = Vec::new();
        for h in headers {
            if purposes(h).is_empty() {
                let known: Vec<&str> = KNOWN.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "{h:?} is not a proxy header rwsgi knows ({})",
                    known.join(", ")
                ));
            }
            names.push(h.to_ascii_lowercase());
        }
        let proxies = proxies
            .iter()
            .map(|p| Cidr::parse(p))
            .collect::<Result<_, _>>()?;
        Ok(Rules {
            headers: names,
            proxies,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Trusted peers were not named: every peer is trusted.
    pub fn trusts_everyone(&self) -> bool {
        self.proxies.is_empty()
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.proxies.is_empty() || self.proxies.iter().any(|c| c.contains(ip))
    }

    /// Whether this connection may carry a PROXY preamble, or keep the
    /// client one claimed (a connection handed on between workers is asked
    /// again, under the configuration of the worker that gets it). One
    /// whose preamble is neither expected nor read has nothing to admit.
    pub fn admits_preamble(&self, origin: &Origin) -> Result<(), UntrustedPeer> {
        let peer = origin.peer();
        match origin.claim() {
            Claim::NoClient => Ok(()),
            Claim::Unread | Claim::Client(_) if self.trusted(peer.ip()) => Ok(()),
            Claim::Unread | Claim::Client(_) => Err(UntrustedPeer { peer }),
        }
    }

    /// Records what a preamble said, once the peer is admitted.
    pub fn believe_preamble(
        &self,
        origin: &mut Origin,
        named: Option<SocketAddr>,
    ) -> Result<(), UntrustedPeer> {
        self.admits_preamble(origin)?;
        origin.set_claim(named.map_or(Claim::NoClient, Claim::Client));
        Ok(())
    }

    /// The request's headers were written by a trusted proxy: the peer is
    /// one, and so is the client a preamble named, if any. (A request is
    /// not read before its connection's preamble; should one be, nothing
    /// is believed.)
    fn believes_headers(&self, origin: &Origin) -> bool {
        self.trusted(origin.peer().ip())
            && match origin.claim() {
                Claim::Client(c) => self.trusted(c.ip()),
                Claim::NoClient => true,
                Claim::Unread => false,
            }
    }

    /// The main port's `/server-status` is for clients on this machine:
    /// the peer, the client a preamble named and the client the trusted
    /// headers name must all be loopback addresses. Behind a proxy on the
    /// same host every peer is loopback, and then the forwarded client
    /// decides; an invalid forwarded value decides nothing and is refused.
    pub fn allows_status_page(&self, origin: &Origin, headers: &[(String, Vec<u8>)]) -> bool {
        let local = |ip: IpAddr| canonical(ip).is_loopback();
        local(origin.peer().ip())
            && local(origin.client().ip())
            && self
                .apply(origin, headers)
                .is_ok_and(|a| a.remote_addr.is_none_or(local))
    }

    /// Applies the rules to a request that came by `origin` with these
    /// header fields.
    pub fn apply(
        &self,
        origin: &Origin,
        headers: &[(String, Vec<u8>)],
    ) -> Result<Adjusted, Invalid> {
        let mut out = Adjusted {
            connection_client: origin.client(),
            remote_addr: None,
            scheme: None,
            host: None,
            port: None,
            prefix: None,
            server: None,
            drop: Vec::new(),
        };
        if self.headers.is_empty() {
            return Ok(out);
        }
        let believed = self.believes_headers(origin);
        let value = |name: &str| -> Option<String> {
            let parts: Vec<String> = headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .collect();
            (!parts.is_empty()).then(|| parts.join(","))
        };
        for (name, group) in KNOWN {
            // A header is dropped when it speaks for a purpose someone
            // trusts and it is not the trusted one, or it is not believed.
            let guarded = group.iter().any(|p| self.trusts_purpose(*p));
            let chosen = believed && self.headers.iter().any(|h| h == name);
            if guarded && !chosen {
                out.drop.push((*name).to_owned());
            }
        }
        if !believed {
            return Ok(out);
        }
        for name in &self.headers {
            let Some(v) = value(name) else { continue };
            let bad = |expected| Invalid {
                header: display_name(name),
                expected,
            };
            let nearest = || rightmost(&v);
            match name.as_str() {
                "x-forwarded-for" => {
                    let hops = list(&v);
                    let client = self
                        .client_among(&hops)
                        .map_err(|_| bad("a list of IP addresses"))?;
                    if let Some(hop) = client {
                        out.remote_addr = out.remote_addr.or(hop.ip);
                    }
                }
                "x-real-ip" | "x-client-ip" => {
                    let node = nearest()
                        .and_then(parse_node)
                        .ok_or_else(|| bad("an IP address"))?;
                    if let Node::Ip(ip) = node {
                        out.remote_addr = out.remote_addr.or(Some(ip));
                    }
                }
                "x-forwarded-proto" | "x-forwarded-scheme" | "x-scheme" => {
                    let s = nearest()
                        .and_then(scheme)
                        .ok_or_else(|| bad("http or https"))?;
                    out.scheme = out.scheme.or(Some(s));
                }
                "x-forwarded-ssl" | "x-forwarded-https" | "x-https" => {
                    let s = nearest()
                        .and_then(ssl_flag)
                        .ok_or_else(|| bad("on or off"))?;
                    out.scheme = out.scheme.or(Some(s));
                }
                "x-forwarded-host" | "x-host" => {
                    let h = nearest()
                        .filter(|h| valid_host(h))
                        .ok_or_else(|| bad("a valid host[:port]"))?;
                    out.host = out.host.or(Some(h.to_owned()));
                }
                "x-forwarded-port" => {
                    let p = nearest()
                        .filter(|p| is_port(p))
                        .ok_or_else(|| bad("a port number (1 to 65535)"))?;
                    out.port = out.port.or(Some(p.to_owned()));
                }
                "x-script-name" | "x-forwarded-prefix" | "x-forwarded-script-name" => {
                    let p = nearest()
                        .and_then(prefix)
                        .ok_or_else(|| bad("an absolute path"))?;
                    out.prefix = out.prefix.or(Some(p));
                }
                "x-forwarded-server" => {
                    let h = nearest()
                        .filter(|h| valid_host(h) && !h.contains(':'))
                        .ok_or_else(|| bad("a host name"))?;
                    out.server = out.server.or(Some(h.to_owned()));
                }
                "forwarded" => self.apply_forwarded(&v, &mut out).map_err(bad)?,
                _ => {}
            }
        }
        Ok(out)
    }

    fn trusts_purpose(&self, p: Purpose) -> bool {
        self.headers.iter().any(|h| purposes(h).contains(&p))
    }

    /// The client among `hops` (nearest last): the rightmost that is not a
    /// trusted proxy, the leftmost when all are. `Ok(None)` without hops;
    /// `Err` when a hop that had to be read is not a node at all. Hops
    /// left of the client are the client's own words and are not read.
    fn client_among(&self, hops: &[&str]) -> Result<Option<Hop>, NotANode> {
        for (index, hop) in hops.iter().enumerate().rev() {
            match parse_node(hop).ok_or(NotANode)? {
                Node::Ip(ip) if index > 0 && self.trusted(ip) => continue,
                Node::Ip(ip) => {
                    return Ok(Some(Hop {
                        index,
                        ip: Some(ip),
                    }))
                }
                Node::Unknown => return Ok(Some(Hop { index, ip: None })),
            }
        }
        Ok(None)
    }

    /// RFC 7239: `for=` continues the chain as X-Forwarded-For does; the
    /// client's element (and the trusted ones after it) say `proto=` and
    /// `host=`.
    fn apply_forwarded(&self, v: &str, out: &mut Adjusted) -> Result<(), &'static str> {
        const LIST: &str = "an RFC 7239 list of for=, proto=, host= elements";
        let elements = forwarded_elements(v).ok_or(LIST)?;
        fn get<'a>(el: &'a [(String, String)], key: &str) -> Option<&'a str> {
            el.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
        }
        // An element without `for=` names nobody the chain could go past.
        let fors: Vec<&str> = elements
            .iter()
            .map(|e| get(e, "for").unwrap_or("unknown"))
            .collect();
        let Some(client) = self.client_among(&fors).map_err(|_| LIST)? else {
            return Ok(());
        };
        out.remote_addr = out.remote_addr.or(client.ip);
        let trusted = &elements[client.index..];
        if let Some(p) = trusted.iter().find_map(|e| get(e, "proto")) {
            let s = scheme(p).ok_or("an RFC 7239 list whose proto= is http or https")?;
            out.scheme = out.scheme.or(Some(s));
        }
        if let Some(h) = trusted.iter().find_map(|e| get(e, "host")) {
            if !valid_host(h) {
                return Err("an RFC 7239 list whose host= is a valid host[:port]");
            }
            out.host.get_or_insert_with(|| h.to_owned());
        }
        Ok(())
    }
}

/// `x-forwarded-host` as usually written: `X-Forwarded-Host`, `X-Real-IP`.
fn display_name(lower: &str) -> String {
    lower
        .split('-')
        .map(|word| match word {
            "ip" => "IP".to_owned(),
            w => {
                let mut c = w.chars();
                c.next().map_or_else(String::new, |f| {
                    f.to_ascii_uppercase().to_string() + c.as_str()
                })
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A list's elements, trimmed; empty ones are not elements (RFC 9110 5.6.1).
fn list(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect()
}

/// The value the nearest hop added.
fn rightmost(v: &str) -> Option<&str> {
    list(v).pop()
}

fn scheme(v: &str) -> Option<&'static str> {
    match v {
        s if s.eq_ignore_ascii_case("https") => Some("https"),
        s if s.eq_ignore_ascii_case("http") => Some("http"),
        _ => None,
    }
}

fn ssl_flag(v: &str) -> Option<&'static str> {
    match v {
        s if s.eq_ignore_ascii_case("on") || s == "1" => Some("https"),
        s if s.eq_ignore_ascii_case("off") || s == "0" => Some("http"),
        _ => None,
    }
}

/// Digits, 1 to 65535.
fn is_port(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u16>().is_ok_and(|n| n > 0)
}

/// What the parser accepts in Host, with a port (if any) in range.
fn valid_host(h: &str) -> bool {
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
fn prefix(p: &str) -> Option<String> {
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

/// The hop found to be the client: its place in the list, and its
/// address (none when it is `unknown` or obfuscated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hop {
    index: usize,
    ip: Option<IpAddr>,
}

/// A hop that had to be read is not an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NotANode;

/// A hop of X-Forwarded-For or of `for=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Ip(IpAddr),
    /// `unknown`, or an obfuscated identifier (`_hidden`, RFC 7239 6.3).
    Unknown,
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `[::1]`, `::1`, `unknown`, `_x`.
fn parse_node(s: &str) -> Option<Node> {
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

/// RFC 7239 4: `#forwarded-element`, each `pair *( ";" pair )`, a pair
/// `token "=" ( token / quoted-string )`. Names lowercase, values unquoted.
/// `None` when the field is not that.
fn forwarded_elements(v: &str) -> Option<Vec<Vec<(String, String)>>> {
    let b = v.as_bytes();
    let mut elements = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    let skip_ows = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ows(&mut i);
        match b.get(i) {
            None => break,
            Some(b',') => {
                if !pairs.is_empty() {
                    elements.push(std::mem::take(&mut pairs));
                }
                i += 1;
                continue;
            }
            Some(b';') => {
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if i == start || b.get(i) != Some(&b'=') {
            return None;
        }
        let name = v[start..i].to_ascii_lowercase();
        i += 1;
        let value = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut value = Vec::new();
            loop {
                match *b.get(i)? {
                    b'"' => break,
                    b'\\' => {
                        value.push(*b.get(i + 1)?);
                        i += 2;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            i += 1;
            String::from_utf8(value).ok()?
        } else {
            let start = i;
            while i < b.len() && is_tchar(b[i]) {
                i += 1;
            }
            v[start..i].to_owned()
        };
        pairs.push((name, value));
        skip_ows(&mut i);
        if !matches!(b.get(i), None | Some(b';' | b',')) {
            return None;
        }
    }
    if !pairs.is_empty() {
        elements.push(pairs);
    }
    Some(elements)
}

/// RFC 9110 5.6.2 tchar.
const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn rules(headers: &[&str], proxies: &[&str]) -> Rules {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        Rules::new(&s(headers), &s(proxies)).expect("rules")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// A connection straight from `peer` (no preamble).
    fn from(peer: &str) -> Origin {
        Origin::new(
            SocketAddr::new(ip(peer), 40000),
            rwsgi_shared::origin::Claim::NoClient,
        )
    }

    /// A connection from `peer` whose preamble named `client`.
    fn via(peer: &str, client: &str) -> Origin {
        Origin::new(
            SocketAddr::new(ip(peer), 40000),
            Claim::Client(SocketAddr::new(ip(client), 5555)),
        )
    }

    fn apply(r: &Rules, o: &Origin, pairs: &[(&str, &str)]) -> Adjusted {
        r.apply(o, &h(pairs)).expect("valid")
    }

    fn refused(r: &Rules, pairs: &[(&str, &str)]) -> String {
        r.apply(&from(PROXY), &h(pairs))
            .expect_err("invalid")
            .to_string()
    }

    const PROXY: &str = "10.0.0.5";

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").expect("cidr");
        assert!(c.contains(ip("10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(Cidr::parse("fd00::/8")
            .expect("cidr")
            .contains(ip("fd12::1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nonsense").is_err());
        assert!(Rules::new(&["X-Bogus".to_owned()], &[]).is_err());
    }

    #[test]
    fn a_trusted_proxy_sets_the_client_and_scheme_and_others_are_dropped() {
        let r = rules(&["X-Forwarded-For", "X-Forwarded-Proto"], &[PROXY]);
        let a = apply(
            &r,
            &from(PROXY),
            &[
                ("X-Forwarded-For", "203.0.113.9, 10.0.0.7"),
                ("X-Real-IP", "6.6.6.6"),
                ("X-Forwarded-Proto", "https"),
            ],
        );
        // 10.0.0.7 is not a trusted proxy: it is the client as far as we can tell.
        assert_eq!(a.remote_addr, Some(ip("10.0.0.7")));
        assert_eq!(a.scheme, Some("https"));
        assert!(a.drop.contains(&"x-real-ip".to_owned()));
        assert!(!a.drop.contains(&"x-forwarded-for".to_owned()));
        // The host group is trusted by nobody: untouched.
        assert!(!a.drop.contains(&"x-forwarded-host".to_owned()));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let r = rules(&["X-Forwarded-For"], &["10.0.0.0/8"]);
        let a = apply(
            &r,
            &from("10.0.0.1"),
            &[("X-Forwarded-For", "1.1.1.1, 2.2.2.2, 10.0.0.9")],
        );
        assert_eq!(a.remote_addr, Some(ip("2.2.2.2")));
        // Only the hops up to the client are read: garbage the client
        // wrote before its own address is its business.
        let a = apply(
            &r,
            &from("10.0.0.1"),
            &[("X-Forwarded-For", "<script>, 2.2.2.2:1234")],
        );
        assert_eq!(a.remote_addr, Some(ip("2.2.2.2")));
        // Every hop trusted: the leftmost.
        let a = apply(
            &r,
            &from("10.0.0.1"),
            &[("X-Forwarded-For", "10.9.9.9,, 10.0.0.9")],
        );
        assert_eq!(a.remote_addr, Some(ip("10.9.9.9")));
        // An unknown client: the peer stands.
        let a = apply(
            &r,
            &from("10.0.0.1"),
            &[("X-Forwarded-For", "1.1.1.1, unknown, 10.0.0.9")],
        );
        assert_eq!(a.remote_addr, None);
    }

    #[test]
    fn an_untrusted_peer_gets_its_headers_removed_not_applied() {
        let r = rules(&["X-Forwarded-For", "X-Forwarded-Proto"], &[PROXY]);
        let a = apply(
            &r,
            &from("198.51.100.1"),
            &[
                ("X-Forwarded-For", "1.2.3.4"),
                ("X-Forwarded-Proto", "https"),
            ],
        );
        assert_eq!(a.remote_addr, None);
        assert_eq!(a.scheme, None);
        for name in [
            "x-forwarded-for",
            "x-real-ip",
            "x-forwarded-proto",
            "forwarded",
        ] {
            assert!(a.drop.contains(&name.to_owned()), "{name}");
        }
    }

    #[test]
    fn a_preamble_is_admitted_only_from_a_trusted_peer() {
        let r = rules(&[], &["10.0.0.0/8"]);
        let mut o = Origin::accepted(SocketAddr::new(ip("127.0.0.1"), 1));
        assert_eq!(
            r.believe_preamble(&mut o, Some("10.1.2.3:4".parse().expect("addr"))),
            Err(UntrustedPeer { peer: o.peer() })
        );
        assert_eq!(o.claim(), Claim::Unread);
        let mut o = Origin::accepted(SocketAddr::new(ip("10.0.0.5"), 1));
        r.believe_preamble(&mut o, Some("198.51.100.7:4".parse().expect("addr")))
            .expect("trusted");
        assert_eq!(o.client().ip(), ip("198.51.100.7"));
        assert_eq!(o.peer().ip(), ip("10.0.0.5"));
        // A claim handed on is asked about again.
        let stale = via("192.0.2.1", "198.51.100.7");
        assert!(r.admits_preamble(&stale).is_err());
        assert!(r.admits_preamble(&from("192.0.2.1")).is_ok());
        // Without --trust-proxy, every peer is (as for headers).
        let mut o = Origin::accepted(SocketAddr::new(ip("192.0.2.1"), 1));
        assert!(rules(&[], &[]).believe_preamble(&mut o, None).is_ok());
        assert_eq!(o.claim(), Claim::NoClient);
    }

    #[test]
    fn headers_behind_a_preamble_are_believed_only_from_a_trusted_client() {
        let r = rules(&["X-Forwarded-For", "X-Forwarded-Host"], &["10.0.0.0/8"]);
        let spoof = [
            ("X-Forwarded-For", "127.0.0.1"),
            ("X-Forwarded-Host", "evil.example"),
        ];
        // HAProxy (trusted) passes on what a client wrote: not believed,
        // and removed.
        let a = apply(&r, &via("10.0.0.5", "198.51.100.7"), &spoof);
        assert_eq!((a.remote_addr, a.host.as_deref()), (None, None));
        assert!(a.drop.contains(&"x-forwarded-for".to_owned()));
        assert!(a.drop.contains(&"x-forwarded-host".to_owned()));
        // The preamble names a trusted proxy (a CDN in front): believed.
        let a = apply(
            &r,
            &via("10.0.0.5", "10.9.0.1"),
            &[("X-Forwarded-For", "203.0.113.4")],
        );
        assert_eq!(a.remote_addr, Some(ip("203.0.113.4")));
    }

    #[test]
    fn the_status_page_wants_loopback_all_the_way() {
        let r = rules(&["X-Forwarded-For"], &["127.0.0.1"]);
        let local = from("127.0.0.1");
        assert!(r.allows_status_page(&local, &[]));
        assert!(!r.allows_status_page(&local, &h(&[("X-Forwarded-For", "198.51.100.7")])));
        assert!(!r.allows_status_page(&local, &h(&[("X-Forwarded-For", "nonsense")])));
        assert!(!r.allows_status_page(&from("198.51.100.7"), &[]));
        // A preamble from a trusted local proxy naming a remote client.
        assert!(!r.allows_status_page(&via("127.0.0.1", "198.51.100.7"), &[]));
        // A remote peer's claim of a loopback client is not this machine's.
        let open = rules(&[], &[]);
        assert!(!open.allows_status_page(&via("198.51.100.7", "127.0.0.1"), &[]));
        // A remote client's spoofed header cannot make it local.
        assert!(!open.allows_status_page(
            &from("198.51.100.7"),
            &h(&[("X-Forwarded-For", "127.0.0.1")])
        ));
    }

    #[test]
    fn forwarded_rfc7239() {
        let r = rules(&["Forwarded"], &[PROXY]);
        let a = apply(
            &r,
            &from(PROXY),
            &[(
                "Forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\";proto=https;host=shop.example",
            )],
        );
        assert_eq!(a.remote_addr, Some(ip("2001:db8::1")));
        assert_eq!(a.scheme, Some("https"));
        assert_eq!(a.host.as_deref(), Some("shop.example"));
    }

    #[test]
    fn forwarded_takes_proto_and_host_from_the_clients_element() {
        // client -> 10.0.0.7 (TLS) -> 10.0.0.5 -> us: the client's element
        // (written by 10.0.0.7) says what the client asked for; the one the
        // inner proxy wrote describes the hop between the proxies.
        let r = rules(&["Forwarded"], &["10.0.0.0/8"]);
        let a = apply(
            &r,
            &from(PROXY),
            &[(
                "Forwarded",
                "for=6.6.6.6;proto=http;host=evil.example, for=203.0.113.9;proto=https;host=shop.example, for=10.0.0.7;proto=http;host=internal",
            )],
        );
        assert_eq!(a.remote_addr, Some(ip("203.0.113.9")));
        assert_eq!(a.scheme, Some("https"));
        assert_eq!(a.host.as_deref(), Some("shop.example"));
        let bad = |v: &str| {
            r.apply(&from(PROXY), &h(&[("Forwarded", v)]))
                .expect_err(v)
                .header
        };
        assert_eq!(bad("for=1.2.3.4;host=\"a b\""), "Forwarded");
        assert_eq!(bad("for=1.2.3.4;proto=gopher"), "Forwarded");
        assert_eq!(bad("for=\"1.2.3.4"), "Forwarded");
        assert_eq!(bad("for=<x>"), "Forwarded");
        assert_eq!(bad("for=\"1.2.3.4:99999\""), "Forwarded");
        // Obfuscated and unknown nodes are nodes.
        let a = apply(
            &r,
            &from(PROXY),
            &[("Forwarded", "for=_hidden;proto=https, for=\"10.0.0.7:_p\"")],
        );
        assert_eq!((a.remote_addr, a.scheme), (None, Some("https")));
    }

    #[test]
    fn port_prefix_host_and_ssl() {
        let r = rules(
            &[
                "X-Forwarded-Port",
                "X-Script-Name",
                "X-Forwarded-Host",
                "X-Forwarded-Ssl",
            ],
            &[],
        );
        let a = apply(
            &r,
            &from("127.0.0.1"),
            &[
                ("X-Forwarded-Port", "8443"),
                ("X-Script-Name", "/shop/"),
                ("X-Forwarded-Host", "b, a.example:8443"),
                ("X-Forwarded-Ssl", "on"),
            ],
        );
        assert_eq!(a.port.as_deref(), Some("8443"));
        assert_eq!(a.prefix.as_deref(), Some("/shop"));
        assert_eq!(a.host.as_deref(), Some("a.example:8443"));
        assert_eq!(a.scheme, Some("https"));
    }

    /// Every name mod_wsgi 6's WSGITrustedProxyHeaders acts on.
    #[test]
    fn mod_wsgi_6_names() {
        let r = rules(
            &["X-Forwarded-Server", "X-Forwarded-Script-Name", "X-HTTPS"],
            &[PROXY],
        );
        let a = apply(
            &r,
            &from(PROXY),
            &[
                ("X-Forwarded-Server", "www.example"),
                ("X-Forwarded-Script-Name", "/app"),
                ("X-HTTPS", "on"),
            ],
        );
        assert_eq!(a.server.as_deref(), Some("www.example"));
        assert_eq!(a.prefix.as_deref(), Some("/app"));
        assert_eq!(a.scheme, Some("https"));
        let a = apply(&r, &from("192.0.2.1"), &[("X-Forwarded-Server", "evil")]);
        assert_eq!(a.server, None);
        assert!(a.drop.contains(&"x-forwarded-server".to_owned()), "{a:?}");
        assert!(refused(&r, &[("X-Forwarded-Server", "a b")]).contains("X-Forwarded-Server"));
    }

    #[test]
    fn of_a_list_the_value_the_nearest_hop_added_wins() {
        let r = rules(
            &[
                "X-Forwarded-Host",
                "X-Forwarded-Proto",
                "X-Forwarded-Port",
                "X-Forwarded-Prefix",
            ],
            &[PROXY],
        );
        // What a client sent first, then what the proxy appended (as
        // separate fields too).
        let a = apply(
            &r,
            &from(PROXY),
            &[
                ("X-Forwarded-Host", "evil.example"),
                ("X-Forwarded-Host", "shop.example"),
                ("X-Forwarded-Proto", "https, http"),
                ("X-Forwarded-Port", "1, 8080"),
                ("X-Forwarded-Prefix", "/evil, /shop"),
            ],
        );
        assert_eq!(a.host.as_deref(), Some("shop.example"));
        assert_eq!(a.scheme, Some("http"));
        assert_eq!(a.port.as_deref(), Some("8080"));
        assert_eq!(a.prefix.as_deref(), Some("/shop"));
    }

    #[test]
    fn forwarded_values_obey_their_grammar() {
        let host = rules(&["X-Forwarded-Host"], &[PROXY]);
        for good in [
            "shop.example",
            "shop.example:8443",
            "[::1]:80",
            "10.0.0.1",
            "h:",
        ] {
            let a = apply(&host, &from(PROXY), &[("X-Forwarded-Host", good)]);
            assert_eq!(a.host.as_deref(), Some(good));
        }
        for bad in [
            "evil.example/<script>?a b",
            "a@b:c:d",
            "h:99999",
            "h:0",
            "h:x",
            "",
            " , ",
            "a b",
            "[::1",
        ] {
            assert_eq!(
                refused(&host, &[("X-Forwarded-Host", bad)]),
                "X-Forwarded-Host from a trusted proxy is not a valid host[:port]",
                "{bad:?}"
            );
        }
        let port = rules(&["X-Forwarded-Port"], &[PROXY]);
        for bad in ["0", "65536", "+80", "80a", "123456"] {
            assert!(refused(&port, &[("X-Forwarded-Port", bad)]).starts_with("X-Forwarded-Port "));
        }
        let proto = rules(&["X-Forwarded-Proto", "X-Forwarded-Ssl"], &[PROXY]);
        assert!(refused(&proto, &[("X-Forwarded-Proto", "javascript")])
            .starts_with("X-Forwarded-Proto "));
        assert!(
            refused(&proto, &[("X-Forwarded-Ssl", "yes please")]).starts_with("X-Forwarded-Ssl ")
        );
        let ip = rules(&["X-Real-IP", "X-Forwarded-For"], &[PROXY]);
        assert!(refused(&ip, &[("X-Real-IP", "localhost")]).starts_with("X-Real-IP "));
        assert!(
            refused(&ip, &[("X-Forwarded-For", "1.2.3.4, evil")]).starts_with("X-Forwarded-For ")
        );
        let prefix = rules(&["X-Forwarded-Prefix"], &[PROXY]);
        for good in [
            ("/", ""),
            ("/a/b/", "/a/b"),
            ("/a%20b", "/a%20b"),
            ("/a:b@c", "/a:b@c"),
        ] {
            let a = apply(&prefix, &from(PROXY), &[("X-Forwarded-Prefix", good.0)]);
            assert_eq!(a.prefix.as_deref(), Some(good.1));
        }
        for bad in [
            "shop",
            "//evil.example",
            "/a/../b",
            "/.",
            "/a?b",
            "/a#b",
            "/a b",
            "/%zz",
            "/<x>",
        ] {
            assert_eq!(
                refused(&prefix, &[("X-Forwarded-Prefix", bad)]),
                "X-Forwarded-Prefix from a trusted proxy is not an absolute path",
                "{bad:?}"
            );
        }
        // From a peer that is not trusted nothing is read, so nothing is invalid.
        let a = host
            .apply(&from("192.0.2.1"), &h(&[("X-Forwarded-Host", "a b")]))
            .expect("not read");
        assert!(a.drop.contains(&"x-forwarded-host".to_owned()));
    }

    #[test]
    fn header_names_as_written() {
        assert_eq!(display_name("x-forwarded-host"), "X-Forwarded-Host");
        assert_eq!(display_name("x-real-ip"), "X-Real-IP");
        assert_eq!(display_name("forwarded"), "Forwarded");
    }
}
