//! The backend's response: its framing, the head the client gets
//! (redirects mapped back), and the status of a failure.

use super::request::{connection_options, field, is_hop_by_hop};
use super::Route;
use crate::{reason_phrase, Version};

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
