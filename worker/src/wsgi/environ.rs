//! Building the PEP 3333 `environ` dict.
//!
//! Constant keys come from a per-worker template (one dict copy per
//! request); per-request keys use interned names.

use super::input::Input;
use super::RequestContext;
use crate::python::ErrorStream;
use percent_encoding::percent_decode_str;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyString, PyTuple};
use rwsgi_http::{HttpError, RequestHead};
use rwsgi_shared::config::ServerConfig;

/// Bytes as a native string, the way PEP 3333 wants: each byte one code point (latin-1).
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// The same, made by Python straight from the bytes (no Rust string on the way).
fn latin1_str<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = isize::try_from(bytes.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("header too long"))?;
    // SAFETY: the pointer and length describe `bytes`, which outlives the
    // call; the "strict" error handler is never used (latin-1 decodes every
    // byte); the result is a new reference or NULL with an exception set.
    unsafe {
        let s = pyo3::ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null());
        Bound::from_owned_ptr_or_err(py, s).map(|b| b.cast_into_unchecked())
    }
}

/// `REQUEST_METHOD`: the usual methods are interned strings, made once.
fn method_str<'py>(py: Python<'py>, method: &str) -> Bound<'py, PyString> {
    match method {
        "GET" => intern!(py, "GET").clone(),
        "POST" => intern!(py, "POST").clone(),
        "HEAD" => intern!(py, "HEAD").clone(),
        "PUT" => intern!(py, "PUT").clone(),
        "DELETE" => intern!(py, "DELETE").clone(),
        "OPTIONS" => intern!(py, "OPTIONS").clone(),
        "PATCH" => intern!(py, "PATCH").clone(),
        other => PyString::new(py, other),
    }
}

/// The `REQUEST_METHOD` the application sees: `--map-head-to-get On`
/// shows it a HEAD as GET (the server still sends no body, as for HEAD).
fn environ_method(method: &str, map_head_to_get: bool) -> &str {
    if map_head_to_get && method == "HEAD" {
        "GET"
    } else {
        method
    }
}

/// An address or port as text without the formatting machinery (this runs
/// for every request): IPv4 octets and ports by `itoa`, IPv6 the long way.
fn addr_str<'py>(py: Python<'py>, ip: std::net::IpAddr) -> Bound<'py, PyString> {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut out = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out[len] = b'.';
                    len += 1;
                }
                let mut digits = itoa::Buffer::new();
                let d = digits.format(octet).as_bytes();
                out[len..len + d.len()].copy_from_slice(d);
                len += d.len();
            }
            // Digits and dots only.
            PyString::new(py, std::str::from_utf8(&out[..len]).unwrap_or_default())
        }
        std::net::IpAddr::V6(v6) => PyString::new(py, &v6.to_string()),
    }
}

thread_local! {
    /// The last Host value this thread saw, with the strings made from it
    /// (`HTTP_HOST`, `SERVER_NAME` and `SERVER_PORT`, `None` without a
    /// port): a site's clients send the same Host on every request.
    static LAST_HOST: std::cell::RefCell<Option<(Vec<u8>, HostStrings)>> =
        const { std::cell::RefCell::new(None) };
}

/// Strings made from one Host value.
struct HostStrings {
    host: Py<PyString>,
    name: Py<PyString>,
    port: Option<Py<PyString>>,
}

/// The strings for a validated `host[:port]`, from the cache when it is the
/// same Host as last time.
fn host_strings(py: Python<'_>, host: &[u8]) -> Option<HostStrings> {
    LAST_HOST.with(|last| {
        let mut last = last.try_borrow_mut().ok()?;
        let hit = matches!(&*last, Some((bytes, _)) if bytes == host);
        if !hit {
            let (name, port) = server_name_port(host)?;
            let strings = HostStrings {
                host: latin1_str(py, host).ok()?.unbind(),
                name: PyString::new(py, &name).unbind(),
                port: port.map(|p| PyString::new(py, &p).unbind()),
            };
            *last = Some((host.to_vec(), strings));
        }
        let (_, s) = last.as_ref()?;
        Some(HostStrings {
            host: s.host.clone_ref(py),
            name: s.name.clone_ref(py),
            port: s.port.as_ref().map(|p| p.clone_ref(py)),
        })
    })
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

/// Keys every request sets. The template carries them (as `None`, always
/// replaced before the application sees the dict) so that a request's copy
/// is born with room for them: filling them in replaces values instead of
/// growing the dict and rehashing it on every request.
const PER_REQUEST: [&str; 10] = [
    "REQUEST_METHOD",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_URI",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "wsgi.input",
    "rwsgi.request_id",
    "mod_wsgi.request_id",
];

/// The environ keys that are the same for every request of this worker
/// (what `python::load_application` is given to build them), with the per-request keys reserved.
pub fn template<'py>(
    boot: &Bound<'py, PyModule>,
    config: &ServerConfig,
    errors: &Py<ErrorStream>,
) -> PyResult<Bound<'py, PyDict>> {
    let py = boot.py();
    let d = PyDict::new(py);
    d.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
    d.set_item("wsgi.url_scheme", "http")?;
    d.set_item("wsgi.errors", errors.clone_ref(py))?;
    d.set_item("wsgi.multithread", config.threads > 1)?;
    d.set_item("wsgi.multiprocess", config.multiprocess)?;
    d.set_item("wsgi.run_once", false)?;
    d.set_item("wsgi.input_terminated", true)?;
    d.set_item("wsgi.file_wrapper", boot.getattr("FileWrapper")?)?;
    d.set_item("SERVER_NAME", &config.server_name)?;
    d.set_item("SERVER_PORT", config.port.to_string())?;
    d.set_item("SCRIPT_NAME", &config.mount_point)?;
    d.set_item("SERVER_SOFTWARE", rwsgi_http::SERVER_HEADER)?;
    d.set_item("GATEWAY_INTERFACE", "CGI/1.1")?;
    // mod_wsgi's daemon group name; "" (embedded mode) unless one is named.
    let group = config.process_group.as_deref().unwrap_or("");
    d.set_item("mod_wsgi.process_group", group)?;
    d.set_item("mod_wsgi.application_group", &config.application_group)?;
    for (name, value) in &config.python.environ {
        d.set_item(name, value)?;
    }
    reserve_request_keys(&d)?;
    Ok(d)
}

/// Reserves the per-request keys in the environ template (see `PER_REQUEST`).
fn reserve_request_keys(template: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = template.py();
    for key in PER_REQUEST {
        template.set_item(PyString::intern(py, key), py.None())?;
    }
    Ok(())
}

pub fn build<'py>(
    py: Python<'py>,
    ctx: &RequestContext<'_>,
    head: &RequestHead,
    path_info: &str,
    proxied: &rwsgi_http::forwarded::Adjusted,
    input: &Py<Input>,
    request_id: &str,
) -> PyResult<Bound<'py, PyDict>> {
    // Every key of PER_REQUEST is set below; on any error no dict is returned.
    let env = cgi(py, ctx, head, path_info, proxied)?;
    let spooled = input.try_borrow(py)?.spooled_length();
    env.set_item(intern!(py, "wsgi.input"), input.clone_ref(py))?;
    let id = PyString::new(py, request_id);
    env.set_item(intern!(py, "rwsgi.request_id"), &id)?;
    env.set_item(intern!(py, "mod_wsgi.request_id"), id)?;
    if let Some(n) = spooled {
        // A chunked body received whole: frameworks read the length.
        env.set_item(intern!(py, "CONTENT_LENGTH"), n.to_string())?;
    }
    Ok(env)
}

/// The environ mod_wsgi gives auth and host-access scripts: the request's
/// CGI variables without its body, its id or its credentials.
pub fn for_guard<'py>(
    py: Python<'py>,
    ctx: &RequestContext<'_>,
    head: &RequestHead,
    path_info: &str,
    proxied: &rwsgi_http::forwarded::Adjusted,
) -> PyResult<Bound<'py, PyDict>> {
    let env = cgi(py, ctx, head, path_info, proxied)?;
    for key in [
        "wsgi.input",
        "rwsgi.request_id",
        "mod_wsgi.request_id",
        "HTTP_AUTHORIZATION",
        "HTTP_PROXY_AUTHORIZATION",
    ] {
        if env.contains(key)? {
            env.del_item(key)?;
        }
    }
    Ok(env)
}

/// The request line, client, headers and host of the environ.
fn cgi<'py>(
    py: Python<'py>,
    ctx: &RequestContext<'_>,
    head: &RequestHead,
    path_info: &str,
    proxied: &rwsgi_http::forwarded::Adjusted,
) -> PyResult<Bound<'py, PyDict>> {
    let env = ctx.app.environ_template.bind(py).copy()?;
    let method = environ_method(&head.method, ctx.config.map_head_to_get);
    env.set_item(intern!(py, "REQUEST_METHOD"), method_str(py, method))?;
    env.set_item(intern!(py, "PATH_INFO"), PyString::new(py, path_info))?;
    env.set_item(intern!(py, "QUERY_STRING"), PyString::new(py, &head.query))?;
    env.set_item(intern!(py, "REQUEST_URI"), PyString::new(py, &head.target))?;
    let protocol = match head.version {
        rwsgi_http::Version::Http11 => intern!(py, "HTTP/1.1"),
        rwsgi_http::Version::Http10 => intern!(py, "HTTP/1.0"),
    };
    env.set_item(intern!(py, "SERVER_PROTOCOL"), protocol)?;
    let client = proxied.connection_client;
    env.set_item(intern!(py, "REMOTE_ADDR"), addr_str(py, client.ip()))?;
    let mut port = itoa::Buffer::new();
    env.set_item(
        intern!(py, "REMOTE_PORT"),
        PyString::new(py, port.format(client.port())),
    )?;
    for (name, value) in &head.headers {
        if !proxied.drop.is_empty() && proxied.drop.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            // A proxy header this request may not carry (see `rwsgi_http::forwarded`).
            continue;
        }
        if name.eq_ignore_ascii_case("host") {
            // Set below with SERVER_NAME, from the effective host.
            continue;
        }
        let value = if name.eq_ignore_ascii_case("transfer-encoding") {
            // The application reads the body decoded: present only the
            // codings it still has to undo (`gzip` of `gzip, chunked`).
            match without_chunked(value) {
                Some(v) => PyString::new(py, &v),
                None => continue,
            }
        } else {
            latin1_str(py, value)?
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
                let joined = format!("{}{sep}{}", previous.extract::<String>()?, value.to_cow()?);
                env.set_item(key, joined)?;
            }
            None => env.set_item(key, value)?,
        }
    }
    // RFC 9112 3.2.2: the absolute-form target's authority wins over Host.
    // The parser let through one Host at most, validated.
    let host = head.effective_host().filter(|h| !h.is_empty());
    if let Some(strings) = host.and_then(|h| host_strings(py, h)) {
        env.set_item(intern!(py, "HTTP_HOST"), strings.host)?;
        env.set_item(intern!(py, "SERVER_NAME"), strings.name)?;
        if let Some(port) = strings.port {
            env.set_item(intern!(py, "SERVER_PORT"), port)?;
        }
    } else if let Some(host) = head.header("host") {
        // An empty Host (HTTP/1.0 may send one): present as sent.
        env.set_item(intern!(py, "HTTP_HOST"), latin1_str(py, host)?)?;
    }
    apply_proxy(py, &env, proxied, &ctx.config.mount_point)?;
    Ok(env)
}

/// What trusted proxy headers said: the client, the scheme, the host, the
/// port and the prefix the client used.
/// A request that came over HTTPS: its scheme is `https` unless a trusted
/// proxy says otherwise, and without a port in its Host its SERVER_PORT is
/// the HTTPS port (as Apache's `UseCanonicalName Off`).
pub fn over_tls(p: &mut rwsgi_http::forwarded::Adjusted, head: &RequestHead, port: u16) {
    if p.scheme.is_none() {
        p.scheme = Some("https");
    }
    let host_port = head
        .effective_host()
        .and_then(server_name_port)
        .and_then(|(_, port)| port);
    if p.port.is_none() && p.host.is_none() && host_port.is_none() {
        p.port = Some(port.to_string());
    }
}

fn apply_proxy(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    p: &rwsgi_http::forwarded::Adjusted,
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
    if let Some(server) = &p.server {
        env.set_item(intern!(py, "SERVER_NAME"), server.as_str())?;
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
    fn only_head_is_mapped_and_only_when_asked() {
        assert_eq!(environ_method("HEAD", true), "GET");
        assert_eq!(environ_method("HEAD", false), "HEAD");
        assert_eq!(environ_method("POST", true), "POST");
        assert_eq!(environ_method("GET", false), "GET");
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
