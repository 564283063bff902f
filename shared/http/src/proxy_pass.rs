//! The reverse proxy's decisions (`--proxy-mount-point`,
//! `--proxy-virtual-host`), as mod_wsgi-express configures Apache's
//! mod_proxy for them: which requests go to which backend and at which
//! path (`ProxyPass`), the request head the backend gets (hop-by-hop
//! fields dropped, `X-Forwarded-*` added as mod_proxy and
//! mod_wsgi-express's `RequestHeader set` lines do), how the backend's
//! response is framed, which redirect headers are mapped back
//! (`ProxyPassReverse`), and which status a failure gets.
//!
//! Plain data in, bytes out: the worker's `proxy_pass` module does the I/O.

use crate::{reason_phrase, RequestHead, Version};

/// A backend: `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Host as written (lower case), for connecting.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as in the URL: the `Host` the backend gets, and the
    /// authority its absolute redirects carry.
    pub authority: String,
    /// The URL's path without its trailing `/` ("" for the root).
    pub path: String,
}

impl Backend {
    /// Parses a backend URL; the error names what is wrong, for a
    /// one-line message naming the option.
    pub fn parse(url: &str) -> Result<Backend, String> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(format!(
                    "{url}: https:// backends are not supported (rwsgi proxies to http:// only)"
                ))
            }
            _ => return Err(format!("{url} is not an http://host[:port][/path] URL")),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
            Some(_) => return Err(format!("{url}: a backend URL takes no query or fragment")),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) || !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{url}: a backend URL takes a plain path, no query or fragment"
            ));
        }
        let authority = authority.to_ascii_lowercase();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(p) if p > 0 => (h.to_owned(), p),
                _ => return Err(format!("{url}: {p} is not a port")),
            },
            _ => (authority.clone(), 80),
        };
        let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        let bracketed = host.len() > 2
            && host.starts_with('[')
            && host.ends_with(']')
            && host[1..host.len() - 1]
                .parse::<std::net::Ipv6Addr>()
                .is_ok();
        if host.is_empty() || !(bracketed || host.bytes().all(plain)) || authority.contains('@') {
            return Err(format!("{url}: {host} is not a host name or address"));
        }
        Ok(Backend {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            authority,
            path: path.trim_end_matches('/').to_owned(),
        })
    }
}

/// One place requests are proxied from: a URL prefix of this site, or a
/// whole host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The URL prefix without its trailing `/`; "" for a virtual host (or a
    /// mount at `/`), which takes every path.
    pub prefix: String,
    /// `--proxy-virtual-host`: the Host name (lower case, no port).
    pub host: Option<String>,
    pub backend: Backend,
}

/// Every proxy route of the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Mount points, longest prefix first.
    mounts: Vec<Route>,
    hosts: Vec<Route>,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The mount point itself without its slash: a 302 to this path
    /// (mod_wsgi-express's `RewriteRule ... [R=302]`).
    Redirect(String),
    /// To the backend of this route, at this request target.
    Forward { route: Route, target: String },
}

impl Table {
    /// The routes of `--proxy-mount-point URL-PATH URL` and
    /// `--proxy-virtual-host HOSTNAME URL` pairs. The error names the option.
    pub fn new(
        mounts: &[(String, String)],
        hosts: &[(String, String)],
    ) -> Result<Table, (&'static str, String)> {
        const MOUNT: &str = "proxy-mount-point";
        const HOST: &str = "proxy-virtual-host";
        let mut table = Table::default();
        for (path, url) in mounts {
            if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
                return Err((MOUNT, format!("{path} is not a URL path starting with /")));
            }
            if path.contains('?') || path.split('/').any(|s| s == "." || s == "..") {
                return Err((MOUNT, format!("{path}: a plain URL path, please")));
            }
            let backend = Backend::parse(url).map_err(|e| (MOUNT, e))?;
            table.mounts.push(Route {
                prefix: path.trim_end_matches('/').to_owned(),
                host: None,
                backend,
            });
        }
        for (name, url) in hosts {
            let host = name.trim_end_matches('.').to_ascii_lowercase();
            let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
            if host.is_empty() || !host.bytes().all(ok) {
                return Err((HOST, format!("{name} is not a host name")));
            }
            let backend = Backend::parse(url).map_err(|e| (HOST, e))?;
            table.hosts.push(Route {
                prefix: String::new(),
                host: Some(host),
                backend,
            });
        }
        // As Apache tries ProxyPass lines in order, and mod_wsgi-express
        // writes one per mount: the longest prefix is the one meant.
        table
            .mounts
            .sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(table)
    }

    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty() && self.hosts.is_empty()
    }

    /// `--proxy-virtual-host`: a request whose Host names a proxied host
    /// goes there whole, whatever its path (checked before any other rule
    /// of the site, as Apache picks the virtual host first).
    pub fn by_host(&self, head: &RequestHead) -> Option<Target> {
        if self.hosts.is_empty() {
            return None;
        }
        let host = host_name(head.effective_host()?)?;
        let route = self
            .hosts
            .iter()
            .find(|r| r.host.as_deref() == Some(&host))?;
        forward(route, head)
    }

    /// `--proxy-mount-point`: a request under a mount point.
    pub fn by_path(&self, head: &RequestHead) -> Option<Target> {
        if self.mounts.is_empty() || !head.path.starts_with('/') {
            return None;
        }
        let path = remove_dot_segments(&head.path);
        for route in &self.mounts {
            if !route.prefix.is_empty() && path == route.prefix {
                let mut to = format!("{path}/");
                if head.target.contains('?') {
                    to.push('?');
                    to.push_str(&head.query);
                }
                return Some(Target::Redirect(to));
            }
            if path
                .strip_prefix(route.prefix.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
            {
                return forward(route, head);
            }
        }
        None
    }
}

/// The request target at the backend: the backend's path, then what
/// follows the prefix (`/api/x` under `/api` to `http://b/v1`: `/v1/x`).
fn forward(route: &Route, head: &RequestHead) -> Option<Target> {
    if !head.path.starts_with('/') {
        return None;
    }
    let path = remove_dot_segments(&head.path);
    let rest = path.strip_prefix(route.prefix.as_str())?;
    let mut target = format!("{}{rest}", route.backend.path);
    if head.target.contains('?') {
        target.push('?');
        target.push_str(&head.query);
    }
    Some(Target::Forward {
        route: route.clone(),
        target,
    })
}

/// A Host value's name: lower case, no port, no trailing dot.
fn host_name(value: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(value).ok()?;
    let name = if s.starts_with('[') {
        s.split_inclusive(']').next()?
    } else {
        s.rsplit_once(':').map_or(s, |(h, _)| h)
    };
    Some(name.trim_end_matches('.').to_ascii_lowercase())
}

/// RFC 3986 5.2.4 on a raw path, `%2e` counted as a dot (as Apache
/// normalizes before it maps a URL): `/api/../admin` is `/admin`, and never
/// reaches the backend of `/api`.
pub fn remove_dot_segments(path: &str) -> String {
    let dots = |s: &str| {
        let s = s.to_ascii_lowercase().replace("%2e", ".");
        match s.as_str() {
            "." => Some(1),
            ".." => Some(2),
            _ => None,
        }
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    if !segments.iter().any(|s| dots(s).is_some()) {
        return path.to_owned();
    }
    let mut out: Vec<&str> = Vec::new();
    let last = segments.len() - 1;
    for (i, s) in segments.iter().enumerate() {
        match dots(s) {
            Some(2) => {
                out.pop();
            }
            Some(_) => {}
            None => out.push(s),
        }
        // `/a/..` ends in a directory: `/`, not `/a`'s parent file.
        if i == last && dots(s).is_some() {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

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
fn connection_options<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<String> {
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

fn is_hop_by_hop(name: &str, options: &[String]) -> bool {
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

fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How a backend response's body is delimited (RFC 9112 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// HEAD, 1xx, 204, 304: no body whatever the fields say.
    None,
    Length(u64),
    Chunked,
    /// Until the backend closes.
    UntilClose,
}

/// The body framing of a backend response, or why it cannot be relayed
/// (a 502: conflicting lengths, as RFC 9112 6.3 says a proxy must refuse).
pub fn response_body(
    head_request: bool,
    status: u16,
    headers: &[(String, Vec<u8>)],
) -> Result<ResponseBody, &'static str> {
    if head_request || status < 200 || status == 204 || status == 304 {
        return Ok(ResponseBody::None);
    }
    let mut codings = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(|c| String::from_utf8_lossy(c).trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .peekable();
    if codings.peek().is_some() {
        return Ok(match codings.last().as_deref() {
            Some("chunked") => ResponseBody::Chunked,
            _ => ResponseBody::UntilClose,
        });
    }
    let mut length = None;
    for (_, v) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        for part in v.split(|&b| b == b',') {
            let s = std::str::from_utf8(part)
                .map_err(|_| "a bad Content-Length")?
                .trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err("a bad Content-Length");
            }
            let n: u64 = s.parse().map_err(|_| "a bad Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length values");
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(ResponseBody::UntilClose, ResponseBody::Length))
}

/// How the relayed body is framed for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    /// No body; the backend's Content-Length (of a HEAD or 304) stays.
    None,
    Length(u64),
    /// Re-chunked for an HTTP/1.1 client (a chunked or close-delimited
    /// backend body): the client can tell a complete body from a cut one.
    Chunked,
    /// An HTTP/1.0 client: the end of the body is the end of the connection.
    UntilClose,
}

/// How the response goes to a client speaking `version`.
pub fn client_framing(body: ResponseBody, version: Version) -> ClientFraming {
    match body {
        ResponseBody::None => ClientFraming::None,
        ResponseBody::Length(n) => ClientFraming::Length(n),
        ResponseBody::Chunked | ResponseBody::UntilClose if version == Version::Http11 => {
            ClientFraming::Chunked
        }
        ResponseBody::Chunked | ResponseBody::UntilClose => ClientFraming::UntilClose,
    }
}

/// `ProxyPassReverse`: a redirect (`Location`, `Content-Location`, `URI`)
/// to the backend's own URL, mapped back to the route's place on this
/// site, absolute with the Host the client used (Apache's
/// `ap_construct_url` under `UseCanonicalName Off`). Anything else stays.
pub fn reverse_map(value: &[u8], route: &Route, site: &str) -> Option<Vec<u8>> {
    let real = format!("http://{}{}/", route.backend.authority, route.backend.path);
    let v = std::str::from_utf8(value).ok()?;
    if v.len() < real.len() || !v[..real.len()].eq_ignore_ascii_case(&real) {
        return None;
    }
    Some(format!("http://{site}{}/{}", route.prefix, &v[real.len()..]).into_bytes())
}

/// The response head the client gets: the backend's status and fields
/// without the hop-by-hop ones, redirects mapped back, framed for the client.
pub fn response_head(
    status: u16,
    reason: &str,
    headers: &[(String, Vec<u8>)],
    route: &Route,
    site: &str,
    framing: ClientFraming,
    keep_alive: bool,
) -> Vec<u8> {
    let options = connection_options(headers.iter().map(|(n, v)| (n.as_str(), &v[..])));
    let reason = if reason.is_empty()
        || !reason
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        reason_phrase(status)
    } else {
        reason
    };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n").into_bytes();
    for (name, value) in headers {
        if is_hop_by_hop(name, &options) {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") && framing != ClientFraming::None {
            continue;
        }
        let redirect = ["location", "content-location", "uri"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h));
        match redirect.then(|| reverse_map(value, route, site)).flatten() {
            Some(mapped) => field(&mut out, name, &mapped),
            None => field(&mut out, name, value),
        }
    }
    match framing {
        ClientFraming::Length(n) => field(&mut out, "Content-Length", n.to_string().as_bytes()),
        ClientFraming::Chunked => field(&mut out, "Transfer-Encoding", b"chunked"),
        ClientFraming::None | ClientFraming::UntilClose => {}
    }
    let keep_alive = keep_alive && framing != ClientFraming::UntilClose;
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    out
}

/// `X-Forwarded-Port`: Apache's `SERVER_PORT` under `UseCanonicalName
/// Off`, the port of the Host the client used, else the port it reached.
pub fn forwarded_port(host: Option<&[u8]>, local: u16) -> u16 {
    host.and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| h.rsplit_once(':'))
        .filter(|(name, _)| !name.is_empty() && (!name.starts_with('[') || name.ends_with(']')))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(local)
}

/// Why a backend exchange failed before the response head was relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection (refused, unreachable, name not found, connect timeout).
    Connect,
    /// Connected, and no response head within `--proxy-timeout`.
    Timeout,
    /// Closed, failed, or answered something that is not an HTTP response.
    Broken,
}

/// The status the client gets, as mod_proxy_http answers: 503 when the
/// backend cannot be reached (`ap_proxy_connect_backend` fails), 504 when
/// it does not answer in time, 502 for anything else.
pub fn failure_status(f: Failure) -> u16 {
    match f {
        Failure::Connect => 503,
        Failure::Timeout => 504,
        Failure::Broken => 502,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_request_head, Parsed};

    fn head(raw: &str) -> RequestHead {
        let limits = rwsgi_shared::config::Limits::default();
        match parse_request_head(raw.as_bytes(), &limits) {
            Ok(Parsed::Complete(h, _)) => h,
            other => panic!("{other:?}"),
        }
    }

    fn get(target: &str, host: &str) -> RequestHead {
        head(&format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn table() -> Table {
        Table::new(
            &pairs(&[
                ("/api", "http://127.0.0.1:9000/v1"),
                ("/api/admin/", "http://10.0.0.2/"),
            ]),
            &pairs(&[("Side.Example.org", "http://127.0.0.1:9001")]),
        )
        .expect("valid")
    }

    fn forwarded(t: Option<Target>) -> (String, String) {
        match t {
            Some(Target::Forward { route, target }) => (route.backend.authority, target),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backend_urls_are_http_host_port_and_path() {
        let b = Backend::parse("http://Example.org:8080/v1/").expect("valid");
        assert_eq!(
            (b.host.as_str(), b.port, b.path.as_str()),
            ("example.org", 8080, "/v1")
        );
        assert_eq!(b.authority, "example.org:8080");
        let b = Backend::parse("http://[::1]:81").expect("valid");
        assert_eq!((b.host.as_str(), b.port, b.path.as_str()), ("::1", 81, ""));
        assert_eq!(Backend::parse("http://h").expect("valid").port, 80);
        assert!(Backend::parse("https://h/")
            .expect_err("refused")
            .contains("https"));
        for bad in [
            "h:80",
            "ftp://h/",
            "http://",
            "http://h:0/",
            "http://h:x/",
            "http://u@h/",
            "http://h/?q",
        ] {
            assert!(Backend::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts_must_be_paths_and_errors_name_the_option() {
        let bad = Table::new(&pairs(&[("api", "http://h/")]), &[]).expect_err("refused");
        assert_eq!(bad.0, "proxy-mount-point");
        let bad = Table::new(&[], &pairs(&[("h", "https://h/")])).expect_err("refused");
        assert_eq!(bad.0, "proxy-virtual-host");
        assert!(Table::new(&pairs(&[("/a/../b", "http://h/")]), &[]).is_err());
    }

    #[test]
    fn a_path_under_a_mount_maps_to_the_backend_path_as_proxy_pass() {
        let t = table();
        assert_eq!(
            forwarded(t.by_path(&get("/api/x?a=1", "s"))),
            ("127.0.0.1:9000".into(), "/v1/x?a=1".into())
        );
        assert_eq!(forwarded(t.by_path(&get("/api/", "s"))).1, "/v1/");
        // The longest mount wins, whatever the order given.
        assert_eq!(
            forwarded(t.by_path(&get("/api/admin/users", "s"))),
            ("10.0.0.2".into(), "/users".into())
        );
        assert_eq!(t.by_path(&get("/apix", "s")), None);
        assert_eq!(t.by_path(&get("/", "s")), None);
        // Dot segments are resolved first: this is not under /api.
        assert_eq!(t.by_path(&get("/api/../secret", "s")), None);
        assert_eq!(t.by_path(&get("/api/%2E%2e/secret", "s")), None);
        assert_eq!(forwarded(t.by_path(&get("/api/a/../b", "s"))).1, "/v1/b");
    }

    #[test]
    fn the_mount_itself_redirects_to_its_slash_form() {
        let t = table();
        assert_eq!(
            t.by_path(&get("/api", "s")),
            Some(Target::Redirect("/api/".into()))
        );
        assert_eq!(
            t.by_path(&get("/api?x=1", "s")),
            Some(Target::Redirect("/api/?x=1".into()))
        );
        assert_eq!(
            t.by_path(&get("/api/admin", "s")),
            Some(Target::Redirect("/api/admin/".into()))
        );
    }

    #[test]
    fn a_virtual_host_takes_every_path_of_its_host_name() {
        let t = table();
        assert_eq!(
            forwarded(t.by_host(&get("/x/y?z", "side.example.org:8000"))),
            ("127.0.0.1:9001".into(), "/x/y?z".into())
        );
        assert!(t.by_host(&get("/", "SIDE.example.org.")).is_some());
        assert_eq!(t.by_host(&get("/x", "other.example.org")), None);
        assert_eq!(t.by_host(&head("GET / HTTP/1.0\r\n\r\n")), None);
    }

    #[test]
    fn dot_segments_are_removed_as_rfc_3986_says() {
        assert_eq!(remove_dot_segments("/a/b/../c"), "/a/c");
        assert_eq!(remove_dot_segments("/a/./b/."), "/a/b/");
        assert_eq!(remove_dot_segments("/../../x"), "/x");
        assert_eq!(remove_dot_segments("/a/.."), "/");
        assert_eq!(remove_dot_segments("/a/..b/c"), "/a/..b/c");
    }

    fn lines(bytes: &[u8]) -> Vec<String> {
        String::from_utf8(bytes.to_vec())
            .expect("valid")
            .split("\r\n")
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_backend_gets_no_hop_by_hop_fields_and_x_forwarded_as_mod_proxy_adds_them() {
        let t = table();
        let h = head(concat!(
            "POST /api/x HTTP/1.1\r\nHost: site:8000\r\nConnection: keep-alive, X-Secret\r\n",
            "X-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\n",
            "Proxy-Authorization: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n",
            "X-Forwarded-For: 10.1.1.1\r\nX-Forwarded-Port: 1\r\nAccept: */*\r\n\r\n"
        ));
        let Some(Target::Forward { route, target }) = t.by_path(&h) else {
            panic!()
        };
        let fwd = Forwarded {
            client: "127.0.0.9".into(),
            server: "localhost",
            port: 8000,
            https: false,
        };
        let out = lines(&request_head(
            &h,
            &route,
            &target,
            &fwd,
            RequestFraming::Chunked,
        ));
        assert_eq!(
            out,
            [
                "POST /v1/x HTTP/1.1",
                "Host: 127.0.0.1:9000",
                "Accept: */*",
                "X-Forwarded-For: 10.1.1.1, 127.0.0.9",
                "X-Forwarded-Host: site:8000",
                "X-Forwarded-Server: localhost",
                "X-Forwarded-Port: 8000",
                "X-Forwarded-Prefix: /api",
                "Transfer-Encoding: chunked",
                "Connection: close",
                "",
                ""
            ]
        );
        // A virtual host has no prefix.
        let h = get("/", "side.example.org");
        let Some(Target::Forward { route, target }) = t.by_host(&h) else {
            panic!()
        };
        let out = lines(&request_head(
            &h,
            &route,
            &target,
            &fwd,
            RequestFraming::None,
        ));
        assert!(!out.iter().any(|l| l.starts_with("X-Forwarded-Prefix")));
        assert!(out.contains(&"Host: 127.0.0.1:9001".to_owned()));
    }

    fn hs(v: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        use ResponseBody::*;
        assert_eq!(
            response_body(false, 200, &hs(&[("Content-Length", "5")])),
            Ok(Length(5))
        );
        assert_eq!(
            response_body(true, 200, &hs(&[("Content-Length", "5")])),
            Ok(None)
        );
        assert_eq!(response_body(false, 304, &[]), Ok(None));
        assert_eq!(response_body(false, 204, &[]), Ok(None));
        assert_eq!(response_body(false, 200, &[]), Ok(UntilClose));
        let te = hs(&[
            ("Transfer-Encoding", "gzip, Chunked"),
            ("Content-Length", "3"),
        ]);
        assert_eq!(response_body(false, 200, &te), Ok(Chunked));
        assert_eq!(
            response_body(false, 200, &hs(&[("Transfer-Encoding", "gzip")])),
            Ok(UntilClose)
        );
        assert_eq!(
            response_body(false, 200, &hs(&[("Content-Length", "5, 5")])),
            Ok(Length(5))
        );
        assert!(response_body(
            false,
            200,
            &hs(&[("Content-Length", "5"), ("content-length", "6")])
        )
        .is_err());
        assert!(response_body(false, 200, &hs(&[("Content-Length", "-1")])).is_err());
        assert_eq!(
            client_framing(Chunked, Version::Http11),
            ClientFraming::Chunked
        );
        assert_eq!(
            client_framing(UntilClose, Version::Http11),
            ClientFraming::Chunked
        );
        assert_eq!(
            client_framing(Chunked, Version::Http10),
            ClientFraming::UntilClose
        );
        assert_eq!(
            client_framing(Length(3), Version::Http10),
            ClientFraming::Length(3)
        );
    }

    #[test]
    fn redirects_to_the_backend_map_back_as_proxy_pass_reverse() {
        let t = table();
        let Some(Target::Forward { route, .. }) = t.by_path(&get("/api/x", "s")) else {
            panic!()
        };
        let map = |v: &str| {
            reverse_map(v.as_bytes(), &route, "site:8000")
                .map(|b| String::from_utf8(b).expect("valid"))
        };
        assert_eq!(
            map("http://127.0.0.1:9000/v1/login?n=1"),
            Some("http://site:8000/api/login?n=1".into())
        );
        assert_eq!(
            map("HTTP://127.0.0.1:9000/v1/"),
            Some("http://site:8000/api/".into())
        );
        assert_eq!(map("http://127.0.0.1:9000/v2/x"), None);
        assert_eq!(map("/v1/relative"), None);
        assert_eq!(map("https://elsewhere/"), None);
    }

    #[test]
    fn the_client_gets_the_backend_fields_without_hop_by_hop_ones() {
        let t = table();
        let Some(Target::Forward { route, .. }) = t.by_path(&get("/api/x", "s")) else {
            panic!()
        };
        let headers = hs(&[
            ("Content-Type", "text/plain"),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Keep-Alive", "timeout=5"),
            ("Location", "http://127.0.0.1:9000/v1/next"),
            ("Server", "backend"),
        ]);
        let out = lines(&response_head(
            302,
            "Found",
            &headers,
            &route,
            "site",
            ClientFraming::Chunked,
            true,
        ));
        assert_eq!(
            out,
            [
                "HTTP/1.1 302 Found",
                "Content-Type: text/plain",
                "Location: http://site/api/next",
                "Server: backend",
                "Transfer-Encoding: chunked",
                "Connection: keep-alive",
                "",
                ""
            ]
        );
        let out = lines(&response_head(
            200,
            "",
            &hs(&[("Content-Length", "9")]),
            &route,
            "s",
            ClientFraming::UntilClose,
            true,
        ));
        assert_eq!(out, ["HTTP/1.1 200 OK", "Connection: close", "", ""]);
        let out = lines(&response_head(
            200,
            "OK",
            &hs(&[("Content-Length", "9")]),
            &route,
            "s",
            ClientFraming::None,
            true,
        ));
        assert!(out.contains(&"Content-Length: 9".to_owned()));
    }

    #[test]
    fn the_forwarded_port_is_the_hosts_else_the_one_reached() {
        assert_eq!(forwarded_port(Some(b"site:8000"), 80), 8000);
        assert_eq!(forwarded_port(Some(b"site"), 8080), 8080);
        assert_eq!(forwarded_port(Some(b"[::1]:81"), 8080), 81);
        assert_eq!(forwarded_port(Some(b"[::1]"), 8080), 8080);
        assert_eq!(forwarded_port(None, 8080), 8080);
    }

    #[test]
    fn failures_get_the_status_mod_proxy_gives() {
        assert_eq!(failure_status(Failure::Connect), 503);
        assert_eq!(failure_status(Failure::Timeout), 504);
        assert_eq!(failure_status(Failure::Broken), 502);
    }
}
