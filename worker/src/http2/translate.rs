//! The pure half of the h2 bridge: an h2 stream's request written as an
//! HTTP/1.1 request for the worker's own connection code, and the worker's
//! HTTP/1.1 response head read back as an h2 response. No I/O here.

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

/// The HTTP/2 connection preface (RFC 9113 3.4): what a client with prior
/// knowledge sends first.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a plain connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preface {
    /// The whole preface: an h2c connection.
    Yes,
    /// A beginning of it: wait for more before deciding.
    Partial,
    /// Not HTTP/2 (HTTP/1.x, or garbage the HTTP/1 parser will refuse).
    No,
}

pub fn preface(buf: &[u8]) -> Preface {
    if buf.starts_with(PREFACE) {
        Preface::Yes
    } else if PREFACE.starts_with(buf) {
        Preface::Partial
    } else {
        Preface::No
    }
}

/// How the request body travels on the internal HTTP/1.1 connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The HEADERS frame ended the stream: no body.
    None,
    /// The client announced a `content-length` (the h2 crate holds the
    /// DATA frames to it): passed on as is.
    Length,
    /// A body of unknown length: chunked.
    Chunked,
}

pub fn framing(headers: &HeaderMap, end_of_stream: bool) -> Framing {
    if headers.contains_key(http::header::CONTENT_LENGTH) {
        Framing::Length
    } else if end_of_stream {
        Framing::None
    } else {
        Framing::Chunked
    }
}

/// The `content-length` a request announced (the h2 crate holds its DATA
/// frames to it).
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(http::header::CONTENT_LENGTH)?;
    value.to_str().ok()?.trim().parse().ok()
}

/// Request fields not passed on: `host` (`:authority` is written as the
/// Host when present), those h2 forbids anyway (RFC 9113 8.2.2), and
/// `expect`/`transfer-encoding`, which the bridge decides itself.
fn dropped_request_field(name: &HeaderName, has_authority: bool) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "http2-settings"
    ) || (has_authority && name == http::header::HOST)
}

/// The request as HTTP/1.1 bytes, head only, keep-alive (the internal
/// connection carries the h2 connection's next stream after it), appended
/// to `out`.
pub fn request_head(parts: &http::request::Parts, framing: Framing, out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = match (&parts.method, parts.uri.path_and_query()) {
        (m, _) if m == Method::CONNECT => parts
            .uri
            .authority()
            .map_or("/", http::uri::Authority::as_str),
        (_, Some(pq)) if !pq.as_str().is_empty() => pq.as_str(),
        _ => "/",
    };
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = parts.uri.authority();
    if let Some(a) = authority {
        field(out, b"host", a.as_str().as_bytes());
    }
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (name, value) in &parts.headers {
        if dropped_request_field(name, authority.is_some()) {
            continue;
        }
        if name == http::header::COOKIE {
            // h2 may split cookies in fields of their own (RFC 9113 8.2.3);
            // HTTP/1.1 has one field.
            cookies.push(value.as_bytes());
            continue;
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !cookies.is_empty() {
        field(out, b"cookie", &cookies.join(&b"; "[..]));
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A DATA frame's bytes as the internal connection carries them.
pub fn body_bytes(out: &mut Vec<u8>, data: &[u8], framing: Framing) {
    match framing {
        Framing::Chunked if data.is_empty() => {}
        Framing::Chunked => {
            out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Length | Framing::None => out.extend_from_slice(data),
    }
}

/// The end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How the response body is delimited on the internal connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// None (a HEAD, 1xx, 204 or 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the worker closes its end.
    UntilClose,
}

/// A response head read from the worker.
#[derive(Debug)]
pub struct Head {
    pub response: http::Response<()>,
    pub body: Body,
    /// A 1xx before the final response (a `100 Continue`).
    pub informational: bool,
    /// `Connection: close`: the worker closes the connection after it.
    pub close: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the worker's response head is malformed: {0}")]
pub struct BadHead(String);

/// Most fields accepted in a response head from the worker.
const MAX_RESPONSE_FIELDS: usize = 256;

/// Fields of HTTP/1.1's connection management, not of the response
/// (RFC 9113 8.2.2 forbids them in h2).
fn hop_by_hop(name: &[u8]) -> bool {
    [
        &b"connection"[..],
        b"keep-alive",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Parses the response head at the start of `buf`, and takes it off
/// `buf`; `None` while it is incomplete. `head_request`: the request was a
/// HEAD (no body follows). The header values are slices of the head's own
/// bytes, not copies.
pub fn response_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, BadHead> {
    // Uninitialised: 256 fields are 8 KiB to clear per response otherwise.
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_FIELDS];
    let mut parsed = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let used = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(BadHead(e.to_string())),
    };
    let code = parsed.code.unwrap_or(500);
    let status = StatusCode::from_u16(code).map_err(|e| BadHead(e.to_string()))?;
    let mut chunked = false;
    let mut length = None;
    let mut close = false;
    // The fields kept: their names, and where their values are in `buf`.
    let start = buf.as_ptr() as usize;
    let mut kept = Vec::with_capacity(parsed.headers.len());
    for f in parsed.headers.iter() {
        if f.name.eq_ignore_ascii_case("connection") {
            close |= f
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        if f.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = f
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
        if f.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(f.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
        }
        if hop_by_hop(f.name.as_bytes()) {
            continue;
        }
        let name = HeaderName::from_bytes(f.name.as_bytes()).map_err(|e| BadHead(e.to_string()))?;
        let at = f.value.as_ptr() as usize - start;
        kept.push((name, at..at + f.value.len()));
    }
    let head = buf.split_to(used).freeze();
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.reserve(kept.len());
    for (name, at) in kept {
        let value =
            HeaderValue::from_maybe_shared(head.slice(at)).map_err(|e| BadHead(e.to_string()))?;
        headers.append(name, value);
    }
    let informational = status.is_informational();
    let body = if head_request
        || informational
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Body::Empty
    } else if chunked {
        Body::Chunked
    } else if let Some(n) = length {
        Body::Length(n)
    } else {
        Body::UntilClose
    };
    Ok(Some(Head {
        response,
        body,
        informational,
        close,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_is_recognised_whole_or_waited_for() {
        assert_eq!(preface(PREFACE), Preface::Yes);
        let mut more = PREFACE.to_vec();
        more.extend_from_slice(b"\0\0\x12\x04");
        assert_eq!(preface(&more), Preface::Yes);
        assert_eq!(preface(b"PRI * HT"), Preface::Partial);
        assert_eq!(preface(b"P"), Preface::Partial);
        assert_eq!(preface(b"POST / HTTP/1.1\r\n"), Preface::No);
        assert_eq!(preface(b"GET / HTTP/1.1\r\n"), Preface::No);
    }

    fn parts(req: http::Request<()>) -> http::request::Parts {
        req.into_parts().0
    }

    fn head_of(p: &http::request::Parts, framing: Framing) -> Vec<u8> {
        let mut out = Vec::new();
        request_head(p, framing, &mut out);
        out
    }

    #[test]
    fn a_request_becomes_http11_with_its_authority_as_host() {
        let req = http::Request::builder()
            .method("POST")
            .uri("https://example.com:8443/a/b?x=1")
            .header("host", "ignored")
            .header("content-type", "text/plain")
            .header("content-length", "5")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let p = parts(req);
        assert_eq!(framing(&p.headers, false), Framing::Length);
        assert_eq!(declared_length(&p.headers), Some(5));
        let head = String::from_utf8(head_of(&p, Framing::Length)).unwrap();
        assert!(head.starts_with("POST /a/b?x=1 HTTP/1.1\r\nhost: example.com:8443\r\n"));
        assert!(head.contains("content-type: text/plain\r\n"));
        assert!(head.contains("content-length: 5\r\n"));
        assert!(head.contains("cookie: a=1; b=2\r\n"));
        assert!(!head.contains("ignored"));
        assert!(!head.contains("te:"));
        assert!(head.ends_with("cookie: a=1; b=2\r\n\r\n"));
        assert!(!head.contains("connection"));
    }

    #[test]
    fn a_body_of_unknown_length_is_chunked_and_none_is_none() {
        let req = http::Request::builder()
            .method("PUT")
            .uri("/u")
            .body(())
            .unwrap();
        let p = parts(req);
        assert_eq!(framing(&p.headers, false), Framing::Chunked);
        assert_eq!(framing(&p.headers, true), Framing::None);
        let head = String::from_utf8(head_of(&p, Framing::Chunked)).unwrap();
        assert!(head.starts_with("PUT /u HTTP/1.1\r\n"));
        assert!(head.contains("transfer-encoding: chunked\r\n"));
        let head = String::from_utf8(head_of(&p, Framing::None)).unwrap();
        assert!(!head.contains("transfer-encoding"));
    }

    #[test]
    fn a_response_head_loses_its_hop_by_hop_fields() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nKeep-Alive: x\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\nbody";
        let mut buf = BytesMut::from(&raw[..]);
        let head = response_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(&buf[..], b"body");
        assert_eq!(head.body, Body::Chunked);
        assert!(head.close);
        let h = head.response.headers();
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
        assert!(h.get("connection").is_none());
        assert!(h.get("transfer-encoding").is_none());
        assert!(h.get("keep-alive").is_none());
    }

    #[test]
    fn the_response_body_is_delimited_as_http11_says() {
        let parse =
            |raw: &[u8], head_request| response_head(&mut BytesMut::from(raw), head_request);
        let body_of = |raw: &[u8], head_request| parse(raw, head_request).unwrap().unwrap().body;
        let len = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(body_of(len, false), Body::Length(12));
        assert_eq!(body_of(len, true), Body::Empty);
        assert_eq!(
            body_of(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            Body::Empty
        );
        assert_eq!(
            body_of(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            ),
            Body::Empty
        );
        assert_eq!(body_of(b"HTTP/1.1 200 OK\r\n\r\n", false), Body::UntilClose);
        let kept = parse(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n", false);
        assert!(!kept.unwrap().unwrap().close);
        let cont = parse(b"HTTP/1.1 100 Continue\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(cont.informational);
        assert!(parse(b"HTTP/1.1 200 OK\r\nA: b\r\n", false)
            .unwrap()
            .is_none());
        assert!(parse(b"garbage\r\n\r\n", false).is_err());
    }
}
