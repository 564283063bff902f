//! Building the PEP 3333 `environ` dict.
//!
//! Constant keys come from a per-worker template (one dict copy per
//! request); per-request keys use interned names.

use super::input::Input;
use super::RequestContext;
use percent_encoding::percent_decode_str;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use rwsgi_shared::http::{HttpError, RequestHead};
use std::net::SocketAddr;

/// Bytes as a native string, the way PEP 3333 wants: each byte one code point (latin-1).
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// `PATH_INFO`: the percent-decoded path below the mount point, as latin-1.
pub fn path_info(raw_path: &str, mount_point: &str) -> Result<String, HttpError> {
    let decoded: Vec<u8> = percent_decode_str(raw_path).collect();
    let path = latin1(&decoded);
    if mount_point.is_empty() {
        return Ok(path);
    }
    match path.strip_prefix(mount_point) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => Ok(rest.to_owned()),
        _ => Err(HttpError::new(404, "outside the mount point")),
    }
}

/// The CGI name of a header (`HTTP_USER_AGENT`), or `None` when it must be dropped.
fn cgi_name(name: &str) -> Option<String> {
    // A header with `_` could impersonate another once `-` becomes `_`
    // (`X_Forwarded_For` vs `X-Forwarded-For`): drop it, like nginx and Apache.
    if name.contains('_') {
        return None;
    }
    if name.eq_ignore_ascii_case("content-type") {
        return Some("CONTENT_TYPE".to_owned());
    }
    if name.eq_ignore_ascii_case("content-length") {
        return Some("CONTENT_LENGTH".to_owned());
    }
    let mut key = String::with_capacity(5 + name.len());
    key.push_str("HTTP_");
    key.extend(name.chars().map(|c| {
        if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
    Some(key)
}

thread_local! {
    /// Header name as sent → interned environ key (None: dropped). Clients
    /// send the same few names on every request.
    static KEYS: std::cell::RefCell<std::collections::HashMap<String, Option<Py<PyString>>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Most distinct header names remembered per thread.
const KEY_CACHE: usize = 256;

fn cgi_key<'py>(py: Python<'py>, name: &str) -> Option<Bound<'py, PyString>> {
    KEYS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(key) = cache.get(name) {
            return key.as_ref().map(|k| k.bind(py).clone());
        }
        let key = cgi_name(name).map(|k| PyString::intern(py, &k));
        if cache.len() < KEY_CACHE {
            cache.insert(name.to_owned(), key.as_ref().map(|k| k.clone().unbind()));
        }
        key
    })
}

pub fn build<'py>(
    py: Python<'py>,
    ctx: &RequestContext<'_>,
    head: &RequestHead,
    path_info: &str,
    peer: SocketAddr,
    input: &Py<Input>,
    request_id: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let env = ctx.app.environ_template.bind(py).copy()?;
    env.set_item(
        intern!(py, "REQUEST_METHOD"),
        PyString::new(py, &head.method),
    )?;
    env.set_item(intern!(py, "PATH_INFO"), PyString::new(py, path_info))?;
    env.set_item(intern!(py, "QUERY_STRING"), PyString::new(py, &head.query))?;
    env.set_item(intern!(py, "REQUEST_URI"), PyString::new(py, &head.target))?;
    env.set_item(intern!(py, "SERVER_PROTOCOL"), head.version.as_str())?;
    env.set_item(intern!(py, "REMOTE_ADDR"), peer.ip().to_string())?;
    env.set_item(intern!(py, "REMOTE_PORT"), peer.port().to_string())?;
    let spooled = input.try_borrow(py)?.spooled_length();
    env.set_item(intern!(py, "wsgi.input"), input.clone_ref(py))?;
    let id = PyString::new(py, request_id);
    env.set_item(intern!(py, "rwsgi.request_id"), &id)?;
    env.set_item(intern!(py, "mod_wsgi.request_id"), id)?;
    let proxied = ctx.proxy.apply(peer.ip(), &head.headers);
    for (name, value) in &head.headers {
        if !proxied.drop.is_empty() && proxied.drop.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            // A proxy header this request may not carry (see `proxy`).
            continue;
        }
        let value = if name.eq_ignore_ascii_case("transfer-encoding") {
            // The application reads the body decoded: present only the
            // codings it still has to undo (`gzip` of `gzip, chunked`).
            match without_chunked(value) {
                Some(v) => v,
                None => continue,
            }
        } else {
            latin1(value)
        };
        let Some(key) = cgi_key(py, name) else {
            continue;
        };
        match env.get_item(&key)? {
            Some(previous) => {
                // Repeated fields are one list (RFC 9110 5.3); cookies use "; ".
                let sep = if name.eq_ignore_ascii_case("cookie") {
                    "; "
                } else {
                    ","
                };
                let joined = format!("{}{sep}{value}", previous.extract::<String>()?);
                env.set_item(key, joined)?;
            }
            None => env.set_item(key, value)?,
        }
    }
    if let Some(n) = spooled {
        // A chunked body received whole: frameworks read the length.
        env.set_item(intern!(py, "CONTENT_LENGTH"), n.to_string())?;
    }
    let authority = head.target_authority();
    if let Some(host) = authority {
        // RFC 9112 3.2.2: the absolute-form target's authority wins over Host.
        env.set_item(intern!(py, "HTTP_HOST"), PyString::new(py, host))?;
    }
    let host = authority
        .map(str::as_bytes)
        .or_else(|| head.header("host"))
        .filter(|h| !h.is_empty());
    match host.and_then(server_name_port) {
        // The usual Host without a port: SERVER_NAME is HTTP_HOST's very
        // string, shared rather than built again.
        Some((_, None)) => {
            if let Some(same) = env.get_item(intern!(py, "HTTP_HOST"))? {
                env.set_item(intern!(py, "SERVER_NAME"), same)?;
            }
        }
        Some((name, Some(port))) => {
            env.set_item(intern!(py, "SERVER_NAME"), name)?;
            env.set_item(intern!(py, "SERVER_PORT"), port)?;
        }
        None => {}
    }
    apply_proxy(py, &env, &proxied, &ctx.config.mount_point)?;
    Ok(env)
}

/// What trusted proxy headers said: the client, the scheme, the host, the
/// port and the prefix the client used.
fn apply_proxy(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    p: &rwsgi_shared::proxy::Adjusted,
    mount_point: &str,
) -> PyResult<()> {
    if let Some(ip) = p.remote_addr {
        env.set_item(intern!(py, "REMOTE_ADDR"), ip.to_string())?;
    }
    if let Some(scheme) = p.scheme {
        env.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
        if scheme == "https" {
            env.set_item(intern!(py, "HTTPS"), "on")?;
        }
    }
    if let Some(host) = &p.host {
        env.set_item(intern!(py, "HTTP_HOST"), host.as_str())?;
        if let Some((name, port)) = server_name_port(host.as_bytes()) {
            env.set_item(intern!(py, "SERVER_NAME"), name)?;
            let port = port.unwrap_or_else(|| {
                let https = p.scheme == Some("https");
                (if https { "443" } else { "80" }).to_owned()
            });
            env.set_item(intern!(py, "SERVER_PORT"), port)?;
        }
    }
    if let Some(port) = &p.port {
        env.set_item(intern!(py, "SERVER_PORT"), port.as_str())?;
    }
    if let Some(prefix) = &p.prefix {
        env.set_item(intern!(py, "SCRIPT_NAME"), format!("{prefix}{mount_point}"))?;
    }
    Ok(())
}

/// A Transfer-Encoding value without its `chunked` coding (the server
/// decoded that); `None` when nothing is left.
fn without_chunked(value: &[u8]) -> Option<String> {
    let rest: Vec<String> = latin1(value)
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("chunked"))
        .map(str::to_owned)
        .collect();
    (!rest.is_empty()).then(|| rest.join(", "))
}

/// `SERVER_NAME` and, when the client named one, `SERVER_PORT` from a
/// validated `host[:port]`, as Apache derives them with mod_wsgi-express's
/// `UseCanonicalName Off`: without a port in the Host, the server's own
/// port stays. An IPv6 literal keeps its brackets.
fn server_name_port(host: &[u8]) -> Option<(String, Option<String>)> {
    let host = std::str::from_utf8(host).ok()?;
    let (name, port) = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => (&host[..i], &host[i + 1..]),
        _ => (host, ""),
    };
    Some((name.to_owned(), (!port.is_empty()).then(|| port.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_info_is_decoded_latin1_below_the_mount_point() {
        assert_eq!(
            path_info("/a%20b/%C3%A9", "").as_deref(),
            Ok("/a b/\u{c3}\u{a9}")
        );
        assert_eq!(path_info("/app/x", "/app").as_deref(), Ok("/x"));
        assert_eq!(path_info("/app", "/app").as_deref(), Ok(""));
        assert!(path_info("/application", "/app").is_err());
    }

    #[test]
    fn header_names() {
        assert_eq!(cgi_name("User-Agent").as_deref(), Some("HTTP_USER_AGENT"));
        assert_eq!(cgi_name("content-type").as_deref(), Some("CONTENT_TYPE"));
        assert_eq!(cgi_name("X_Forwarded_For"), None);
    }

    #[test]
    fn transfer_codings_left_to_the_application() {
        assert_eq!(without_chunked(b"chunked"), None);
        assert_eq!(without_chunked(b"gzip, chunked").as_deref(), Some("gzip"));
    }

    #[test]
    fn server_name_and_port_from_the_host() {
        let pair = server_name_port;
        assert_eq!(pair(b"example.com"), Some(("example.com".into(), None)));
        assert_eq!(
            pair(b"example.com:8080"),
            Some(("example.com".into(), Some("8080".into())))
        );
        assert_eq!(pair(b"[::1]:9"), Some(("[::1]".into(), Some("9".into()))));
        assert_eq!(pair(b"[::1]"), Some(("[::1]".into(), None)));
        assert_eq!(pair(b"h:"), Some(("h".into(), None)));
    }
}
