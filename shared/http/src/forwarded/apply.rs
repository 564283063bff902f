//! What the trusted headers of one request say: each applied as its
//! group's value, or dropped so the application never sees a spoofed one.

use super::grammar::{is_port, list, prefix, rightmost, scheme, ssl_flag, valid_host};
use super::headers::{display_name, purposes, Purpose, KNOWN};
use super::hops::{parse_node, Hop, Node, NotANode};
use super::rfc7239::forwarded_elements;
use super::Rules;
use rwsgi_shared::origin::Origin;
use std::net::{IpAddr, SocketAddr};

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

impl Rules {
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
