//! What the corpus tests share: feeding a raw byte stream through the head
//! parser and the body decoders the way a connection does.

use rwsgi_http::{parse_request_head, BodyKind, ChunkedDecoder, HttpError, Parsed, RequestHead};
use rwsgi_shared::config::Limits;

/// One request read off the stream.
#[derive(Debug, PartialEq, Eq)]
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
    read_stream_fed(data, limits, usize::MAX)
}

/// The bytes a connection has received, arriving `step` bytes at a time.
struct Wire<'d> {
    data: &'d [u8],
    fed: usize,
    step: usize,
    buf: Vec<u8>,
}

impl Wire<'_> {
    /// Receives the next piece; false once everything has arrived.
    fn receive(&mut self) -> bool {
        let n = self.step.min(self.data.len() - self.fed);
        self.buf
            .extend_from_slice(&self.data[self.fed..self.fed + n]);
        self.fed += n;
        n > 0
    }

    fn unread(&self) -> usize {
        self.buf.len() + self.data.len() - self.fed
    }
}

/// Like [`read_stream`], with the bytes arriving `step` at a time: the head
/// is parsed again after every piece, bodies are decoded piece by piece.
pub fn read_stream_fed(data: &[u8], limits: &Limits, step: usize) -> (Vec<Request>, End) {
    let mut wire = Wire {
        data,
        fed: 0,
        step: step.max(1),
        buf: Vec::new(),
    };
    let mut requests = Vec::new();
    wire.receive();
    loop {
        let (head, used) = loop {
            match parse_request_head(&wire.buf, limits) {
                Ok(Parsed::Complete(head, used)) => break (head, used),
                Ok(Parsed::Partial) if wire.receive() => {}
                // Nothing, or only the empty lines a server ignores before a request.
                Ok(Parsed::Partial) if wire.buf.chunks(2).all(|c| c == b"\r\n") => {
                    return (requests, End::Clean)
                }
                Ok(Parsed::Partial) => return (requests, End::Incomplete("request head")),
                Err(e) => return (requests, End::Rejected(e)),
            }
        };
        assert!(
            used <= wire.buf.len(),
            "head used more bytes than it was given"
        );
        wire.buf.drain(..used);
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
                while wire.buf.len() < n && wire.receive() {}
                let take = n.min(wire.buf.len());
                request.body = wire.buf.drain(..take).collect();
                if take < n {
                    incomplete = Some("body shorter than Content-Length");
                }
            }
            BodyKind::Chunked => {
                let mut decoder = ChunkedDecoder::new(limits.request_body);
                loop {
                    match decoder.decode(&wire.buf, &mut request.body, usize::MAX) {
                        Ok(used) => drop(wire.buf.drain(..used)),
                        Err(e) => {
                            requests.push(request);
                            return (requests, End::Rejected(e));
                        }
                    }
                    if decoder.is_done() {
                        break;
                    }
                    if !wire.receive() {
                        incomplete = Some("chunked body");
                        break;
                    }
                }
                assert_eq!(decoder.total(), request.body.len() as u64);
                request.trailers = decoder.trailers().to_vec();
            }
        }
        let keep_alive = request.head.keep_alive;
        requests.push(request);
        if let Some(what) = incomplete {
            return (requests, End::Incomplete(what));
        }
        if !keep_alive {
            return (requests, End::Closed(wire.unread()));
        }
        if wire.buf.is_empty() && !wire.receive() {
            return (requests, End::Clean);
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
