//! What the corpus tests share: feeding a raw byte stream through the head
//! parser and the body decoders the way a connection would.

use rwsgi_shared::config::Limits;
use rwsgi_shared::http::{
    parse_request_head, BodyKind, ChunkedDecoder, HttpError, Parsed, RequestHead,
};

/// One request read off the stream.
#[derive(Debug)]
pub struct Request {
    pub head: RequestHead,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, Vec<u8>)>,
}

/// How reading the stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Every byte was used by complete requests.
    Clean,
    /// A request said the connection closes after it; `usize` bytes were left unread.
    Closed(usize),
    /// The parser or a body decoder refused the input.
    Rejected(HttpError),
    /// The input stopped inside a head or a body (what: which).
    Incomplete(&'static str),
}

/// Reads requests from `data` until it is used up, refused, or a request
/// closes the connection.
pub fn read_stream(data: &[u8], limits: &Limits) -> (Vec<Request>, End) {
    let mut requests = Vec::new();
    let mut rest = data;
    loop {
        if rest.chunks(2).all(|c| c == b"\r\n") {
            // Nothing, or only the empty lines a server ignores before a request.
            return (requests, End::Clean);
        }
        let (head, used) = match parse_request_head(rest, limits) {
            Ok(Parsed::Complete(head, used)) => (head, used),
            Ok(Parsed::Partial) => return (requests, End::Incomplete("request head")),
            Err(e) => return (requests, End::Rejected(e)),
        };
        assert!(used <= rest.len(), "head used more bytes than it was given");
        rest = &rest[used..];
        let mut request = Request {
            head,
            body: Vec::new(),
            trailers: Vec::new(),
        };
        let mut incomplete = None;
        match request.head.body {
            BodyKind::Empty => {}
            BodyKind::Length(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                let take = n.min(rest.len());
                request.body = rest[..take].to_vec();
                rest = &rest[take..];
                if take < n {
                    incomplete = Some("body shorter than Content-Length");
                }
            }
            BodyKind::Chunked => {
                let mut decoder = ChunkedDecoder::new(limits.request_body);
                match decoder.decode(rest, &mut request.body, usize::MAX) {
                    Ok(used) => rest = &rest[used..],
                    Err(e) => {
                        requests.push(request);
                        return (requests, End::Rejected(e));
                    }
                }
                assert_eq!(decoder.total(), request.body.len() as u64);
                request.trailers = decoder.trailers().to_vec();
                if !decoder.is_done() {
                    incomplete = Some("chunked body");
                }
            }
        }
        let keep_alive = request.head.keep_alive;
        requests.push(request);
        if let Some(what) = incomplete {
            return (requests, End::Incomplete(what));
        }
        if !keep_alive {
            return (requests, End::Closed(rest.len()));
        }
    }
}

/// Bytes for text that stands for bytes one char each (latin-1), as both
/// corpora's expectation files write them.
pub fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or_else(|_| panic!("{c:?} is not latin-1")))
        .collect()
}
