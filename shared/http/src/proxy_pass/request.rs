//! The request head the backend gets: hop-by-hop fields dropped,
//! `X-Forwarded-*` added.

use super::Route;
use crate::RequestHead;

/// Fields that describe one connection, not the message (RFC 9110 7.6.1),
/// never forwarded either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The field names a `Connection` header lists (lower case): hop-by-hop too.
pub(super) fn connection_options<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Vec<String> {
    headers
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(super) fn is_hop_by_hop(name: &str, options: &[String]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || options.iter().any(|o| name.eq_ignore_ascii_case(o))
}

/// How the request body goes to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    None,
    Length(u64),
    Chunked,
}

/// What mod_proxy and mod_wsgi-express's `RequestHeader` lines tell the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded<'a> {
    /// The client's address (`X-Forwarded-For`).
    pub client: String,
    /// This server's name (`X-Forwarded-Server`: Apache's ServerName).
    pub server: &'a str,
    /// `X-Forwarded-Port`: the port the client asked for.
    pub port: u16,
    /// The client came over HTTPS: `X-Forwarded-Scheme: https`, as
    /// mod_wsgi-express sets it from `URL_SCHEME`.
    pub https: bool,
}

/// The request head the backend gets: HTTP/1.1, `Host` of the backend URL
/// (mod_wsgi-express does not set ProxyPreserveHost), the client's fields
/// without the hop-by-hop ones, `X-Forwarded-For`/`-Host`/`-Server` appended
/// to what the client sent (mod_proxy's `apr_table_mergen`), and
/// `X-Forwarded-Port`/`-Prefix` set (mod_wsgi-express's `RequestHeader set`).
/// One request per backend connection: `Connection: close`.
pub fn request_head(
    head: &RequestHead,
    route: &Route,
    target: &str,
    fwd: &Forwarded<'_>,
    framing: RequestFraming,
) -> Vec<u8> {
    let options = connection_options(head.headers.iter().map(|(n, v)| (n.as_str(), &v[..])));
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(route.backend.authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    // Set here, or framing this proxy decides.
    const REPLACED: &[&str] = &[
        "host",
        "content-length",
        "expect",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-server",
        "x-forwarded-scheme",
    ];
    for (name, value) in &head.headers {
        if is_hop_by_hop(name, &options) || REPLACED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            continue;
        }
        field(&mut out, name, value);
    }
    let merged = |name: &str, ours: &[u8]| {
        let mut v: Vec<u8> = Vec::new();
        for (n, value) in &head.headers {
            if n.eq_ignore_ascii_case(name) {
                v.extend_from_slice(value);
                v.extend_from_slice(b", ");
            }
        }
        v.extend_from_slice(ours);
        v
    };
    field(
        &mut out,
        "X-Forwarded-For",
        &merged("x-forwarded-for", fwd.client.as_bytes()),
    );
    if let Some(host) = head.header("host") {
        field(
            &mut out,
            "X-Forwarded-Host",
            &merged("x-forwarded-host", host),
        );
    }
    field(
        &mut out,
        "X-Forwarded-Server",
        &merged("x-forwarded-server", fwd.server.as_bytes()),
    );
    field(
        &mut out,
        "X-Forwarded-Port",
        fwd.port.to_string().as_bytes(),
    );
    if fwd.https {
        field(&mut out, "X-Forwarded-Scheme", b"https");
    }
    if route.host.is_none() {
        // mod_wsgi-express: the mount point, no trailing slash.
        let prefix = if route.prefix.is_empty() {
            "/"
        } else {
            &route.prefix
        };
        field(&mut out, "X-Forwarded-Prefix", prefix.as_bytes());
    }
    match framing {
        RequestFraming::None => {}
        RequestFraming::Length(n) => field(&mut out, "Content-Length", n.to_string().as_bytes()),
        RequestFraming::Chunked => field(&mut out, "Transfer-Encoding", b"chunked"),
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

pub(super) fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
