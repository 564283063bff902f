//! Trusted proxy headers (`--trust-proxy-header`, `--trust-proxy`), with
//! mod_wsgi's semantics: headers come in groups by purpose (the client's
//! address, the scheme, the host, the port, the URL prefix). For a group in
//! which a header is trusted, a request from a trusted peer has that header
//! applied (REMOTE_ADDR, wsgi.url_scheme, HTTP_HOST, SERVER_PORT,
//! SCRIPT_NAME) and the group's other headers removed; a request from any
//! other peer has the whole group removed, so an application reading the
//! header itself cannot be fooled by a spoofed one. Groups nobody trusts
//! pass through untouched. Without `--trust-proxy` every peer is trusted,
//! as in mod_wsgi (the server warns at start).
//!
//! Pure functions over the head's fields: unit-tested here.

use std::net::IpAddr;

/// What a group of headers tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Client,
    Scheme,
    Host,
    Port,
    Prefix,
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
    ("x-forwarded-host", &[Purpose::Host]),
    ("x-host", &[Purpose::Host]),
    ("x-forwarded-port", &[Purpose::Port]),
    ("x-script-name", &[Purpose::Prefix]),
    ("x-forwarded-prefix", &[Purpose::Prefix]),
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adjusted {
    pub remote_addr: Option<IpAddr>,
    /// `http` or `https`.
    pub scheme: Option<&'static str>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub prefix: Option<String>,
    /// Header names (lowercase) to leave out of the environ.
    pub drop: Vec<String>,
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

    /// Applies the rules to a request from `peer` with these header fields.
    pub fn apply(&self, peer: IpAddr, headers: &[(String, Vec<u8>)]) -> Adjusted {
        let mut out = Adjusted::default();
        if self.headers.is_empty() {
            return out;
        }
        let peer_trusted = self.trusted(peer);
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
            // trusts and it is not the trusted one, or the peer is not.
            let guarded = group.iter().any(|p| self.trusts_purpose(*p));
            let chosen = peer_trusted && self.headers.iter().any(|h| h == name);
            if guarded && !chosen {
                out.drop.push((*name).to_owned());
            }
        }
        if !peer_trusted {
            return out;
        }
        for name in &self.headers {
            let Some(v) = value(name) else { continue };
            match name.as_str() {
                "x-forwarded-for" => {
                    out.remote_addr = out.remote_addr.or(self.client_of(v.split(',')))
                }
                "x-real-ip" | "x-client-ip" => {
                    out.remote_addr = out.remote_addr.or(parse_ip(&v));
                }
                "x-forwarded-proto" | "x-forwarded-scheme" | "x-scheme" => {
                    out.scheme = out.scheme.or(scheme(&v));
                }
                "x-forwarded-ssl" | "x-forwarded-https" => {
                    let on = v.trim().eq_ignore_ascii_case("on") || v.trim() == "1";
                    out.scheme = out.scheme.or(Some(if on { "https" } else { "http" }));
                }
                "x-forwarded-host" | "x-host" => {
                    let first = v.split(',').next().unwrap_or_default().trim();
                    if !first.is_empty() {
                        out.host = out.host.or(Some(first.to_owned()));
                    }
                }
                "x-forwarded-port" => {
                    let p = v.split(',').next().unwrap_or_default().trim();
                    if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) {
                        out.port = out.port.or(Some(p.to_owned()));
                    }
                }
                "x-script-name" | "x-forwarded-prefix" => {
                    let p = v.trim().trim_end_matches('/');
                    if p.is_empty() || p.starts_with('/') {
                        out.prefix = out.prefix.or(Some(p.to_owned()));
                    }
                }
                "forwarded" => self.apply_forwarded(&v, &mut out),
                _ => {}
            }
        }
        out
    }

    fn trusts_purpose(&self, p: Purpose) -> bool {
        self.headers.iter().any(|h| purposes(h).contains(&p))
    }

    /// The rightmost address that is not a trusted proxy (the client as
    /// the first trusted hop saw it); the leftmost when all are trusted.
    fn client_of<'a>(&self, hops: impl DoubleEndedIterator<Item = &'a str>) -> Option<IpAddr> {
        let hops: Vec<IpAddr> = hops.filter_map(parse_ip).collect();
        if self.proxies.is_empty() {
            return hops.first().copied();
        }
        hops.iter()
            .rev()
            .find(|ip| !self.trusted(**ip))
            .or(hops.first())
            .copied()
    }

    /// RFC 7239: `for=`, `proto=`, `host=` of the elements, hops as for
    /// X-Forwarded-For.
    fn apply_forwarded(&self, v: &str, out: &mut Adjusted) {
        let elements: Vec<Vec<(String, String)>> = v
            .split(',')
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| {
                        let (k, val) = pair.split_once('=')?;
                        Some((
                            k.trim().to_ascii_lowercase(),
                            val.trim().trim_matches('"').to_owned(),
                        ))
                    })
                    .collect()
            })
            .collect();
        let get = |el: &Vec<(String, String)>, key: &str| {
            el.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        let fors: Vec<String> = elements.iter().filter_map(|e| get(e, "for")).collect();
        out.remote_addr = out
            .remote_addr
            .or(self.client_of(fors.iter().map(String::as_str)));
        // The element the nearest proxy wrote describes the request it got.
        if let Some(last) = elements.last() {
            if let Some(p) = get(last, "proto") {
                out.scheme = out.scheme.or(scheme(&p));
            }
            if let Some(h) = get(last, "host").filter(|h| !h.is_empty()) {
                out.host.get_or_insert(h);
            }
        }
    }
}

fn scheme(v: &str) -> Option<&'static str> {
    match v.split(',').next().unwrap_or_default().trim() {
        s if s.eq_ignore_ascii_case("https") => Some("https"),
        s if s.eq_ignore_ascii_case("http") => Some("http"),
        _ => None,
    }
}

/// An address from a header: `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`.
fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok().map(canonical);
    }
    s.rsplit_once(':')
        .and_then(|(a, _)| a.parse().ok())
        .map(canonical)
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

    const PROXY: &str = "10.0.0.5";

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").expect("cidr");
        assert!(c.contains("10.1.2.3".parse().expect("ip")));
        assert!(!c.contains("11.0.0.1".parse().expect("ip")));
        assert!(c.contains("::ffff:10.0.0.1".parse().expect("ip")));
        assert!(Cidr::parse("fd00::/8")
            .expect("cidr")
            .contains("fd12::1".parse().expect("ip")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nonsense").is_err());
        assert!(Rules::new(&["X-Bogus".to_owned()], &[]).is_err());
    }

    #[test]
    fn a_trusted_proxy_sets_the_client_and_scheme_and_others_are_dropped() {
        let r = rules(&["X-Forwarded-For", "X-Forwarded-Proto"], &[PROXY]);
        let a = r.apply(
            PROXY.parse().expect("ip"),
            &h(&[
                ("X-Forwarded-For", "203.0.113.9, 10.0.0.7"),
                ("X-Real-IP", "6.6.6.6"),
                ("X-Forwarded-Proto", "https"),
            ]),
        );
        // 10.0.0.7 is not a trusted proxy: it is the client as far as we can tell.
        assert_eq!(a.remote_addr, Some("10.0.0.7".parse().expect("ip")));
        assert_eq!(a.scheme, Some("https"));
        assert!(a.drop.contains(&"x-real-ip".to_owned()));
        assert!(!a.drop.contains(&"x-forwarded-for".to_owned()));
        // The host group is trusted by nobody: untouched.
        assert!(!a.drop.contains(&"x-forwarded-host".to_owned()));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let r = rules(&["X-Forwarded-For"], &["10.0.0.0/8"]);
        let a = r.apply(
            "10.0.0.1".parse().expect("ip"),
            &h(&[("X-Forwarded-For", "1.1.1.1, 2.2.2.2, 10.0.0.9")]),
        );
        assert_eq!(a.remote_addr, Some("2.2.2.2".parse().expect("ip")));
    }

    #[test]
    fn an_untrusted_peer_gets_its_headers_removed_not_applied() {
        let r = rules(&["X-Forwarded-For", "X-Forwarded-Proto"], &[PROXY]);
        let a = r.apply(
            "198.51.100.1".parse().expect("ip"),
            &h(&[
                ("X-Forwarded-For", "1.2.3.4"),
                ("X-Forwarded-Proto", "https"),
            ]),
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
    fn forwarded_rfc7239() {
        let r = rules(&["Forwarded"], &[PROXY]);
        let a = r.apply(
            PROXY.parse().expect("ip"),
            &h(&[(
                "Forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\";proto=https;host=shop.example",
            )]),
        );
        assert_eq!(a.remote_addr, Some("2001:db8::1".parse().expect("ip")));
        assert_eq!(a.scheme, Some("https"));
        assert_eq!(a.host.as_deref(), Some("shop.example"));
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
        let a = r.apply(
            "127.0.0.1".parse().expect("ip"),
            &h(&[
                ("X-Forwarded-Port", "8443"),
                ("X-Script-Name", "/shop/"),
                ("X-Forwarded-Host", "a.example:8443, b"),
                ("X-Forwarded-Ssl", "on"),
            ]),
        );
        assert_eq!(a.port.as_deref(), Some("8443"));
        assert_eq!(a.prefix.as_deref(), Some("/shop"));
        assert_eq!(a.host.as_deref(), Some("a.example:8443"));
        assert_eq!(a.scheme, Some("https"));
    }
}
