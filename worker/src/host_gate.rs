//! `--server-name`, `--server-alias`, `--allow-localhost`: which Host
//! names the site answers, as mod_wsgi-express's name-based virtual hosts.
//!
//! mod_wsgi-express, given a server name, writes a `_default_` virtual
//! host that refuses everything (`Require all denied`, or `Require host
//! localhost` with `--allow-localhost`), a virtual host for the server
//! name and its aliases, and, for a `www.` name, one for the parent domain
//! that redirects (`Redirect permanent / http://www.name:port/`). Here the
//! same decision is made on the request head, before routing: a refused
//! Host reaches neither the application nor the static files. With trusted
//! proxy headers the forwarded host (and client) decide, as the
//! application would see them.
//!
//! One difference: the redirect keeps the scheme and port the client used
//! (forwarded ones when trusted), where mod_wsgi-express writes its own
//! listening port, which is wrong behind a proxy or a port mapping.

use rwsgi_http::forwarded::Rules;
use rwsgi_http::tls::Facts;
use rwsgi_http::{HttpError, RequestHead};
use rwsgi_shared::config::{TlsConfig, VirtualHost};
use rwsgi_shared::origin::Origin;
use std::net::IpAddr;

/// What the site does with a request for a Host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    /// 403, as Apache's `Require all denied`.
    Forbidden,
    /// 301 to this URL (the parent domain of a `www.` server name, or the
    /// HTTPS site with `--https-only`).
    Redirect(String),
    /// 403: below `--ssl-verify-client` without a verified certificate.
    NoCertificate,
}

/// The refusal a request below `--ssl-verify-client` gets without a
/// verified client certificate (or on the plain HTTP port).
pub const NO_CERTIFICATE: HttpError = HttpError::new(
    403,
    "a verified client certificate is required here (--ssl-verify-client)",
);

/// The refusal a Host that is not served gets.
pub const FORBIDDEN: HttpError = HttpError::new(403, "Host not served (--server-name)");

/// What a request needs to be judged by its Host.
pub struct Gate<'a> {
    pub vhost: Option<&'a VirtualHost>,
    pub proxy: &'a Rules,
    pub origin: &'a Origin,
    /// `--https-port` and its options.
    pub secure: Option<&'a TlsConfig>,
    /// What the connection's TLS handshake established (`None`: plain HTTP).
    pub tls: Option<&'a Facts>,
}

/// The request as the site sees it: host, client, scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen<'a> {
    /// `host[:port]` (absolute-form authority, else Host; a trusted
    /// forwarded host wins); `None` without one.
    pub host: Option<&'a str>,
    /// The client (a trusted forwarded address wins over the peer).
    pub client: IpAddr,
    /// `https` when a trusted proxy says so.
    pub scheme: &'a str,
    /// A trusted `X-Forwarded-Port`.
    pub forwarded_port: Option<&'a str>,
    /// Path and query, for the redirect.
    pub path: &'a str,
    pub query: &'a str,
}

impl Gate<'_> {
    /// Judges a parsed request head. Without `--server-name` every Host is
    /// served and nothing is computed.
    pub fn check(&self, head: &RequestHead) -> Verdict {
        if let Some(secure) = self.secure {
            let host = head
                .effective_host()
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| !h.is_empty())
                .or(self.vhost.map(|v| v.name.as_str()));
            let judged = transport(
                secure,
                self.tls.map(|t| t.client.is_some()),
                host,
                &head.path,
                &head.query,
            );
            if judged != Verdict::Serve {
                return judged;
            }
        }
        let Some(vhost) = self.vhost else {
            return Verdict::Serve;
        };
        // An invalid forwarded value is refused later (400); until then
        // the request's own Host is judged.
        let adjusted = self.proxy.apply(self.origin, &head.headers).ok();
        let own = head
            .effective_host()
            .and_then(|h| std::str::from_utf8(h).ok());
        let forwarded = adjusted.as_ref().and_then(|a| a.host.as_deref());
        let client = adjusted
            .as_ref()
            .and_then(|a| a.remote_addr)
            .unwrap_or_else(|| self.origin.client().ip());
        decide(
            vhost,
            &Seen {
                host: forwarded.or(own),
                client,
                scheme: adjusted.as_ref().and_then(|a| a.scheme).unwrap_or("http"),
                forwarded_port: adjusted.as_ref().and_then(|a| a.port.as_deref()),
                path: &head.path,
                query: &head.query,
            },
        )
    }
}

/// What HTTPS decides before the Host is judged: `client_verified` is
/// `None` on plain HTTP, else whether the handshake verified a client
/// certificate. With `--https-only` plain HTTP goes to the HTTPS site (the
/// host the client used, on the HTTPS port); below `--ssl-verify-client`
/// only a verified client gets in, on plain HTTP never (mod_wsgi-express
/// would serve those paths there without a certificate).
fn transport(
    secure: &TlsConfig,
    client_verified: Option<bool>,
    host: Option<&str>,
    path: &str,
    query: &str,
) -> Verdict {
    if client_verified.is_none() && secure.https_only {
        let Some(host) = host else {
            return Verdict::Forbidden;
        };
        let (name, _) = split_host(host);
        let port = if secure.port == 443 {
            String::new()
        } else {
            format!(":{}", secure.port)
        };
        let path = if path.starts_with('/') { path } else { "/" };
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        return Verdict::Redirect(format!("https://{name}{port}{path}{query}"));
    }
    if rwsgi_http::tls::needs_client_certificate(&secure.verify_paths, path)
        && client_verified != Some(true)
    {
        return Verdict::NoCertificate;
    }
    Verdict::Serve
}

/// The decision, on plain values.
pub fn decide(vhost: &VirtualHost, seen: &Seen<'_>) -> Verdict {
    let (name, port) = seen.host.map_or(("".to_owned(), None), split_host);
    if !name.is_empty() && (name == vhost.name || vhost.aliases.iter().any(|a| wildcard(a, &name)))
    {
        return Verdict::Serve;
    }
    if let Some(parent) = vhost.name.strip_prefix("www.") {
        if !name.is_empty() && name == parent {
            return Verdict::Redirect(location(vhost, seen, port.or(seen.forwarded_port)));
        }
    }
    if vhost.allow_localhost && is_loopback(seen.client) {
        return Verdict::Serve;
    }
    Verdict::Forbidden
}

/// `Redirect permanent / SCHEME://NAME[:PORT]/`: the path and query follow.
fn location(vhost: &VirtualHost, seen: &Seen<'_>, port: Option<&str>) -> String {
    let default = if seen.scheme == "https" { "443" } else { "80" };
    let port = match port {
        Some(p) if p != default => format!(":{p}"),
        _ => String::new(),
    };
    let path = if seen.path.starts_with('/') {
        seen.path
    } else {
        "/"
    };
    let query = if seen.query.is_empty() {
        String::new()
    } else {
        format!("?{}", seen.query)
    };
    format!("{}://{}{port}{path}{query}", seen.scheme, vhost.name)
}

/// Host and port of `host[:port]`, the host lower case and without a
/// trailing dot (as Apache compares names). An IPv6 literal keeps its brackets.
fn split_host(host: &str) -> (String, Option<&str>) {
    let (name, port) = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => (
                &host[..=end],
                host[end + 1..].strip_prefix(':').filter(|p| !p.is_empty()),
            ),
            None => (host, None),
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p).filter(|p| !p.is_empty())),
            None => (host, None),
        }
    };
    (name.trim_end_matches('.').to_ascii_lowercase(), port)
}

/// Apache's `ServerAlias` wildcards: `*` any run of characters, `?` one.
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and the name position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == b'?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// Apache's `Require host localhost`: the client resolves to localhost,
/// that is, it is a loopback address.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        IpAddr::V4(v4) => v4.is_loopback(),
    }
}

/// Answers a request for the parent domain; the caller closes the connection.
pub fn send_redirect(conn: &mut crate::conn::Conn, to: &str, log: &slog::Logger) {
    slog::info!(log, "redirected to the www. server name (--server-name)"; "location" => to, "client" => %conn.origin);
    let mut dates = rwsgi_http::DateCache::default();
    let response = redirect_response(to, dates.now());
    let _ = conn
        .transport
        .try_write(&[std::io::IoSlice::new(&response)]);
}

/// The 301 response; the connection is closed after it.
pub fn redirect_response(location: &str, date: &str) -> Vec<u8> {
    let body = format!("301 Moved Permanently: {location}\n");
    rwsgi_http::closing_response(
        301,
        date,
        &format!("Location: {location}\r\n"),
        "text/plain; charset=utf-8",
        body.as_bytes(),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, aliases: &[&str], allow_localhost: bool) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
            allow_localhost,
        }
    }

    fn seen(host: Option<&str>, client: &str) -> Seen<'static> {
        Seen {
            host: host.map(|h| Box::leak(h.to_owned().into_boxed_str()) as &str),
            client: client.parse().expect("a valid test value"),
            scheme: "http",
            forwarded_port: None,
            path: "/a/b",
            query: "x=1",
        }
    }

    const FAR: &str = "203.0.113.9";

    #[test]
    fn the_server_name_is_served_whatever_its_case_port_or_final_dot() {
        let v = site("example.com", &[], false);
        for host in [
            "example.com",
            "EXAMPLE.com:8000",
            "example.com.",
            "example.com:",
        ] {
            assert_eq!(decide(&v, &seen(Some(host), FAR)), Verdict::Serve, "{host}");
        }
    }

    #[test]
    fn other_hosts_and_no_host_are_forbidden() {
        let v = site("example.com", &[], false);
        for host in [
            Some("evil.com"),
            Some("example.com.evil.com"),
            Some("127.0.0.1"),
            None,
        ] {
            assert_eq!(decide(&v, &seen(host, FAR)), Verdict::Forbidden, "{host:?}");
        }
    }

    #[test]
    fn aliases_with_wildcards() {
        let v = site(
            "example.com",
            &["*.example.com", "api?.example.org", "[::1]"],
            false,
        );
        for host in [
            "a.example.com",
            "a.b.example.com",
            "api1.example.org",
            "[::1]:80",
        ] {
            assert_eq!(decide(&v, &seen(Some(host), FAR)), Verdict::Serve, "{host}");
        }
        for host in ["example.org", "api12.example.org", "xexample.com"] {
            assert_eq!(
                decide(&v, &seen(Some(host), FAR)),
                Verdict::Forbidden,
                "{host}"
            );
        }
    }

    #[test]
    fn wildcard_matching() {
        assert!(wildcard("*", ""));
        assert!(wildcard("*.a", "x.y.a"));
        assert!(wildcard("a*b*c", "aXbYbZc"));
        assert!(!wildcard("a*b*c", "aXbYbZ"));
        assert!(wildcard("??", "ab"));
        assert!(!wildcard("??", "abc"));
    }

    #[test]
    fn allow_localhost_serves_loopback_clients_any_host() {
        let v = site("example.com", &[], true);
        for client in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(
                decide(&v, &seen(Some("localhost:8000"), client)),
                Verdict::Serve
            );
            assert_eq!(decide(&v, &seen(None, client)), Verdict::Serve);
        }
        assert_eq!(
            decide(&v, &seen(Some("localhost"), FAR)),
            Verdict::Forbidden
        );
        let strict = site("example.com", &[], false);
        assert_eq!(
            decide(&strict, &seen(Some("localhost"), "127.0.0.1")),
            Verdict::Forbidden
        );
    }

    #[test]
    fn the_parent_domain_of_a_www_name_is_redirected_with_path_and_query() {
        let v = site("www.example.com", &[], false);
        assert_eq!(
            decide(&v, &seen(Some("Example.com:8000"), FAR)),
            Verdict::Redirect("http://www.example.com:8000/a/b?x=1".into())
        );
        assert_eq!(
            decide(&v, &seen(Some("example.com"), FAR)),
            Verdict::Redirect("http://www.example.com/a/b?x=1".into())
        );
        assert_eq!(
            decide(&v, &seen(Some("www.example.com"), FAR)),
            Verdict::Serve
        );
        assert_eq!(
            decide(&v, &seen(Some("other.example.com"), FAR)),
            Verdict::Forbidden
        );
        // Not a www. name: no redirect.
        let plain = site("example.com", &[], false);
        assert_eq!(decide(&plain, &seen(Some("com"), FAR)), Verdict::Forbidden);
    }

    #[test]
    fn the_redirect_keeps_a_forwarded_scheme_and_port() {
        let v = site("www.example.com", &[], false);
        let mut s = seen(Some("example.com"), FAR);
        s.scheme = "https";
        assert_eq!(
            decide(&v, &s),
            Verdict::Redirect("https://www.example.com/a/b?x=1".into())
        );
        s.forwarded_port = Some("8443");
        s.query = "";
        assert_eq!(
            decide(&v, &s),
            Verdict::Redirect("https://www.example.com:8443/a/b".into())
        );
        s.forwarded_port = Some("443");
        assert_eq!(
            decide(&v, &s),
            Verdict::Redirect("https://www.example.com/a/b".into())
        );
    }

    #[test]
    fn an_alias_that_is_the_parent_domain_is_served() {
        let v = site("www.example.com", &["example.com"], false);
        assert_eq!(decide(&v, &seen(Some("example.com"), FAR)), Verdict::Serve);
    }

    #[test]
    fn host_and_port_are_split() {
        assert_eq!(split_host("A.b:80"), ("a.b".into(), Some("80")));
        assert_eq!(split_host("[::1]:80"), ("[::1]".into(), Some("80")));
        assert_eq!(split_host("[::1]"), ("[::1]".into(), None));
        assert_eq!(split_host("a.b."), ("a.b".into(), None));
    }

    #[test]
    fn without_a_server_name_everything_is_served() {
        let rules = Rules::default();
        let origin = Origin::accepted("203.0.113.9:5000".parse().expect("a valid test value"));
        let gate = Gate {
            vhost: None,
            proxy: &rules,
            origin: &origin,
            secure: None,
            tls: None,
        };
        let head = match rwsgi_http::parse_request_head(
            b"GET / HTTP/1.1\r\nHost: evil.com\r\n\r\n",
            &Default::default(),
        ) {
            Ok(rwsgi_http::Parsed::Complete(h, _)) => h,
            other => panic!("{other:?}"),
        };
        assert_eq!(gate.check(&head), Verdict::Serve);
        let v = site("example.com", &[], false);
        let gate = Gate {
            vhost: Some(&v),
            ..gate
        };
        assert_eq!(gate.check(&head), Verdict::Forbidden);
    }

    #[test]
    fn a_trusted_forwarded_host_decides() {
        let rules = Rules::new(&["X-Forwarded-Host".into()], &["127.0.0.1".into()])
            .expect("a valid test value");
        let v = site("example.com", &[], false);
        let parse = |raw: &[u8]| match rwsgi_http::parse_request_head(raw, &Default::default()) {
            Ok(rwsgi_http::Parsed::Complete(h, _)) => h,
            other => panic!("{other:?}"),
        };
        let head =
            parse(b"GET / HTTP/1.1\r\nHost: backend:8000\r\nX-Forwarded-Host: example.com\r\n\r\n");
        let proxy = Origin::new(
            "127.0.0.1:5000".parse().expect("a valid test value"),
            rwsgi_shared::origin::Claim::NoClient,
        );
        let gate = Gate {
            vhost: Some(&v),
            proxy: &rules,
            origin: &proxy,
            secure: None,
            tls: None,
        };
        assert_eq!(gate.check(&head), Verdict::Serve);
        // From a peer that is not a trusted proxy the header is not believed.
        let stranger = Origin::new(
            "203.0.113.9:5000".parse().expect("a valid test value"),
            rwsgi_shared::origin::Claim::NoClient,
        );
        let gate = Gate {
            vhost: Some(&v),
            proxy: &rules,
            origin: &stranger,
            secure: None,
            tls: None,
        };
        assert_eq!(gate.check(&head), Verdict::Forbidden);
        let head =
            parse(b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-Host: evil.com\r\n\r\n");
        let gate = Gate {
            vhost: Some(&v),
            proxy: &rules,
            origin: &proxy,
            secure: None,
            tls: None,
        };
        assert_eq!(gate.check(&head), Verdict::Forbidden);
    }

    fn secure(https_only: bool, verify: &[&str]) -> TlsConfig {
        TlsConfig {
            port: 8443,
            certificate: "c".into(),
            key: "k".into(),
            chain: None,
            client_ca: None,
            verify_paths: verify.iter().map(|p| (*p).to_owned()).collect(),
            environment: false,
            https_only,
            hsts: None,
        }
    }

    #[test]
    fn https_only_sends_plain_requests_to_the_https_port_of_the_same_host() {
        let s = secure(true, &[]);
        assert_eq!(
            super::transport(&s, None, Some("example.com:8000"), "/a b", "x=1"),
            Verdict::Redirect("https://example.com:8443/a b?x=1".into())
        );
        let s443 = TlsConfig {
            port: 443,
            ..s.clone()
        };
        assert_eq!(
            super::transport(&s443, None, Some("[::1]:80"), "/", ""),
            Verdict::Redirect("https://[::1]/".into())
        );
        assert_eq!(
            super::transport(&s, Some(false), Some("example.com"), "/", ""),
            Verdict::Serve
        );
        assert_eq!(
            super::transport(&s, None, None, "/", ""),
            Verdict::Forbidden
        );
        assert_eq!(
            super::transport(&secure(false, &[]), None, Some("h"), "/", ""),
            Verdict::Serve
        );
    }

    #[test]
    fn below_verify_client_paths_only_a_verified_client_is_served() {
        let s = secure(false, &["/admin"]);
        assert_eq!(
            super::transport(&s, Some(true), Some("h"), "/admin/x", ""),
            Verdict::Serve
        );
        assert_eq!(
            super::transport(&s, Some(false), Some("h"), "/admin/x", ""),
            Verdict::NoCertificate
        );
        // Plain HTTP never reaches a guarded path.
        assert_eq!(
            super::transport(&s, None, Some("h"), "/admin", ""),
            Verdict::NoCertificate
        );
        assert_eq!(
            super::transport(&s, Some(false), Some("h"), "/public", ""),
            Verdict::Serve
        );
    }
}
