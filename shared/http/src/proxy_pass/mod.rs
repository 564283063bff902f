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

use crate::RequestHead;

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

mod request;
mod response;
#[cfg(test)]
mod tests;

pub use request::{request_head, Forwarded, RequestFraming};
pub use response::{
    client_framing, failure_status, forwarded_port, response_body, response_head, reverse_map,
    ClientFraming, Failure, ResponseBody,
};
