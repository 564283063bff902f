//! A small raw-socket HTTP/1.1 client: it shows exactly what went over the
//! wire, which is what these tests are about.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The raw head as received.
    pub head: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    s.set_nodelay(true).ok();
    s
}

/// Reads one response from `stream`. `head_request`: no body follows.
pub fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    head_request: bool,
) -> std::io::Result<Response> {
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        fill(stream, buf)?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    let no_body = head_request || status == 204 || status == 304 || (100..200).contains(&status);
    if no_body {
    } else if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while buf.len() < len {
            fill(stream, buf)?;
        }
        body = buf.drain(..len).collect();
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let line_end = loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                fill(stream, buf)?;
            };
            let size = usize::from_str_radix(String::from_utf8_lossy(&buf[..line_end]).trim(), 16)
                .unwrap_or(0);
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                fill(stream, buf)?;
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
    } else {
        // Until close.
        while fill(stream, buf).is_ok() {}
        body = std::mem::take(buf);
    }
    Ok(Response {
        status,
        headers,
        body,
        head,
    })
}

fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 16384];
    let n = stream.read(&mut chunk)?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Sends raw bytes on a new connection and reads one response.
pub fn request(port: u16, raw: &[u8]) -> std::io::Result<Response> {
    let mut s = connect(port);
    s.write_all(raw)?;
    let head = raw.starts_with(b"HEAD ");
    read_response(&mut s, &mut Vec::new(), head)
}

/// `GET path` with `Connection: close`.
pub fn get(port: u16, path: &str) -> Response {
    request(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}
