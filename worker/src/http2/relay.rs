//! One h2 stream, relayed as one HTTP/1.1 request on an internal
//! connection: a socket pair, new or kept from an earlier stream of the
//! same h2 connection ([`Pool`]). The request, as HTTP/1.1, goes into the
//! buffer of the worker's end, which is queued for a request thread
//! (`direct`) or given to the I/O thread; the rest of a body comes through
//! the pair from the DATA frames, as they come and as the worker reads
//! them. The HTTP/1.1 response is read back and sent as the stream's response,
//! DATA only as fast as the client's flow-control window lets it, so a
//! slow stream holds only its own buffers and never blocks another.

use super::pool::{self, Ended, Internal, Pool};
use super::translate::{self, Body, Framing};
use super::Shared;
use crate::handoff::Returned;
use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use rwsgi_shared::origin::Origin;
use slog::debug;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{ReadHalf, WriteHalf};

/// Bytes read from the worker at a time: a response head and a small body
/// in one read; a large body in few (the h2 crate cuts DATA frames itself).
const CHUNK: usize = 16 * 1024;
const BODY_CHUNK: usize = 64 * 1024;
/// Request body bytes already received with the HEADERS that are written
/// with the head, in one write, at most.
const READY_BODY: usize = 64 * 1024;

/// What a stream shares with its connection.
pub struct StreamCtx {
    pub shared: Arc<Shared>,
    pub origin: Origin,
    pub tls: Option<Arc<rwsgi_http::tls::Facts>>,
    /// Streams of the connection still relaying (this one counted).
    pub open: Arc<AtomicUsize>,
    /// The connection's idle internal connections.
    pub pool: Arc<Pool>,
}

/// Counts a stream as open (in its connection and in the worker) while
/// it lives.
struct Counted(Arc<AtomicUsize>, Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        self.1.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a stream ended without its whole response.
enum Cut {
    /// Reset by the client, or its connection is gone: nothing to say.
    Client,
    /// The worker ended or garbled its response: reset with this reason.
    Worker(Reason),
    /// The internal connection closed before a byte of a response: the
    /// worker did not take the request (it drains, or closed an idle
    /// connection as the request came).
    Unanswered,
}

/// How a whole response ended, for the internal connection's reuse.
struct Answered {
    /// Nothing came after the response.
    clean: bool,
    /// `Connection: close`, or a body delimited by the close.
    closes: bool,
}

pub async fn relay(
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    ctx: StreamCtx,
) {
    ctx.shared.streams.fetch_add(1, Ordering::SeqCst);
    let _counted = Counted(Arc::clone(&ctx.open), Arc::clone(&ctx.shared.streams));
    let shared = &ctx.shared;
    let (parts, mut body) = request.into_parts();
    let framing = translate::framing(&parts.headers, body.is_end_stream());
    let head_request = parts.method == http::Method::HEAD;
    // Body bytes still to come, when their number is known.
    let mut left = match framing {
        Framing::Length => translate::declared_length(&parts.headers),
        Framing::None | Framing::Chunked => None,
    };
    let (mut internal, mut conn) = match ctx.pool.take() {
        Some(pair) => pair,
        None => match pool::pair(&ctx.pool, ctx.origin, ctx.tls.clone()) {
            Ok(pair) => pair,
            Err(e) => {
                debug!(shared.log, "cannot relay an h2 stream"; "error" => %e);
                respond.send_reset(Reason::INTERNAL_ERROR);
                return;
            }
        },
    };
    // The request goes into the worker's end's buffer, where the I/O
    // thread finds it as if it had read it: its head, and its body as far
    // as it is here already.
    translate::request_head(&parts, framing, &mut conn.buf);
    drop(parts);
    let whole = match ready_body(&mut body, &mut conn.buf, framing, &mut left).await {
        Ok(whole) => whole,
        Err(_) => {
            // The client's error: the pair carried nothing.
            conn.buf.clear();
            ctx.pool.put_ours(internal);
            pool::go_home(conn);
            return;
        }
    };
    conn.since = std::time::Instant::now();
    // The application's request goes to a request thread from here; any
    // other to the I/O thread, which routes it as it would a client's.
    match shared.router.queue(&shared.handoff, conn) {
        Ok(true) => shared.owe_wake(),
        Ok(false) => {}
        Err(mut conn) => {
            pool::leaving(&mut conn, &shared.internal);
            shared.handoff.give_back(Returned::Adopt(conn));
        }
    }
    let rest = (!whole).then_some(Rest {
        body: &mut body,
        framing,
        left,
    });
    let (answered, request_sent) =
        exchange(&mut internal, rest, &mut respond, head_request, shared).await;
    let reason = match answered {
        Ok(a) => {
            let ended = Ended {
                request_sent,
                response_read: a.clean,
                worker_closes: a.closes,
            };
            if pool::reusable(ended) {
                ctx.pool.put_ours(internal);
            }
            return;
        }
        // The worker did not take the request (it drains).
        Err(Cut::Unanswered) => Reason::REFUSED_STREAM,
        Err(Cut::Worker(reason)) => reason,
        Err(Cut::Client) => return,
    };
    respond.send_reset(reason);
}

/// The body's DATA frames already received, appended to the request
/// `head` (up to `READY_BODY`): true when that was the whole body (its
/// end, or all of a known length, `left` counting down). Its window is
/// given back at once, the bytes being held here.
async fn ready_body(
    body: &mut RecvStream,
    head: &mut Vec<u8>,
    framing: Framing,
    left: &mut Option<u64>,
) -> Result<bool, h2::Error> {
    if framing == Framing::None {
        return Ok(true);
    }
    poll_fn(|cx| loop {
        if *left == Some(0) {
            return Poll::Ready(Ok(true));
        }
        if body.is_end_stream() {
            if framing == Framing::Chunked {
                head.extend_from_slice(translate::LAST_CHUNK);
            }
            return Poll::Ready(Ok(true));
        }
        if head.len() > READY_BODY {
            return Poll::Ready(Ok(false));
        }
        match body.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                translate::body_bytes(head, &data, framing);
                count_down(left, data.len());
                let _ = body.flow_control().release_capacity(data.len());
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
            // Ended (trailers may follow the DATA frames): `is_end_stream`
            // says so on the next turn, or the rest is uploaded.
            Poll::Ready(None) if body.is_end_stream() => {}
            Poll::Ready(None) | Poll::Pending => return Poll::Ready(Ok(false)),
        }
    })
    .await
}

/// One request and its response on an internal connection whose worker's
/// end has the request in its buffer: the rest of the body from `rest`,
/// while the response is read back and sent. Returns how the response
/// ended and whether the whole request was written.
async fn exchange(
    internal: &mut Internal,
    rest: Option<Rest<'_>>,
    respond: &mut SendResponse<Bytes>,
    head_request: bool,
    shared: &Shared,
) -> (Result<Answered, Cut>, bool) {
    let Internal { stream, buf, .. } = internal;
    let (mut rd, mut wr) = stream.split();
    let upload = async {
        match rest {
            Some(rest) => upload(rest, &mut wr).await,
            None => Ok(()),
        }
    };
    let download = download(&mut rd, buf, respond, head_request, shared);
    tokio::pin!(upload);
    tokio::pin!(download);
    // An upload that failed leaves its half of the connection open: a
    // half-close would be taken for an abort of a request still being read.
    let mut sent = None;
    loop {
        tokio::select! {
            // First: a request written to its end is seen as such before
            // the response that follows it.
            biased;
            up = &mut upload, if sent.is_none() => sent = Some(up.is_ok()),
            answered = &mut download => return (answered, sent == Some(true)),
        }
    }
}

/// What of a request body is still to come from its DATA frames.
struct Rest<'a> {
    body: &'a mut RecvStream,
    framing: Framing,
    /// Bytes still to come, when their number is known.
    left: Option<u64>,
}

/// Counts `n` body bytes off what is `left` of a known length.
fn count_down(left: &mut Option<u64>, n: usize) {
    if let Some(l) = left {
        *l = l.saturating_sub(n as u64);
    }
}

/// The rest of the request body into the internal connection; each DATA
/// frame's window is given back to the client once the worker took it.
/// A body of known length is whole at its last byte: the worker may answer
/// before the client's END_STREAM comes, and the request counts as sent.
async fn upload(rest: Rest<'_>, wr: &mut WriteHalf<'_>) -> std::io::Result<()> {
    let Rest {
        body,
        framing,
        mut left,
    } = rest;
    let mut framed = Vec::new();
    while left != Some(0) {
        let Some(data) = body.data().await else {
            break;
        };
        let data = data.map_err(std::io::Error::other)?;
        let n = data.len();
        if framing == Framing::Chunked {
            framed.clear();
            translate::body_bytes(&mut framed, &data, framing);
            wr.write_all(&framed).await?;
        } else {
            wr.write_all(&data).await?;
        }
        count_down(&mut left, n);
        let _ = body.flow_control().release_capacity(n);
    }
    if framing == Framing::Chunked {
        wr.write_all(translate::LAST_CHUNK).await?;
    }
    Ok(())
}

/// Reads from the worker, or learns that the client reset the stream.
async fn read_or_reset<F>(
    rd: &mut ReadHalf<'_>,
    buf: &mut BytesMut,
    want: usize,
    mut reset: F,
) -> Result<usize, Cut>
where
    F: FnMut(&mut std::task::Context<'_>) -> Poll<Result<Reason, h2::Error>>,
{
    buf.reserve(want);
    tokio::select! {
        read = rd.read_buf(buf) => read.map_err(|_| Cut::Worker(Reason::INTERNAL_ERROR)),
        _ = poll_fn(&mut reset) => Err(Cut::Client),
    }
}

/// The worker's response, as the stream's.
async fn download(
    rd: &mut ReadHalf<'_>,
    buf: &mut BytesMut,
    respond: &mut SendResponse<Bytes>,
    head_request: bool,
    shared: &Shared,
) -> Result<Answered, Cut> {
    // The last response's bytes are sent (or dropped): its allocation is
    // reused unless a DATA frame still holds it.
    buf.clear();
    buf.reserve(CHUNK);
    let head = loop {
        match translate::response_head(buf, head_request) {
            Ok(Some(head)) => {
                if head.informational {
                    // `100 Continue`: the client may be waiting for it.
                    let _ = respond.send_informational(head.response);
                    continue;
                }
                break head;
            }
            Ok(None) if buf.len() > shared.settings.max_response_head => {
                return Err(Cut::Worker(Reason::INTERNAL_ERROR));
            }
            Ok(None) => {}
            Err(e) => {
                debug!(shared.log, "h2 stream reset"; "why" => %e);
                return Err(Cut::Worker(Reason::INTERNAL_ERROR));
            }
        }
        if read_or_reset(rd, buf, CHUNK, |cx| respond.poll_reset(cx)).await? == 0 {
            return Err(match buf.is_empty() {
                true => Cut::Unanswered,
                false => Cut::Worker(Reason::INTERNAL_ERROR),
            });
        }
    };
    let (body, closes) = (head.body, head.close);
    // END_STREAM on the HEADERS frame when there is no body, on the last
    // DATA frame otherwise: never an empty frame of its own.
    let empty = matches!(body, Body::Empty | Body::Length(0));
    let mut send = respond
        .send_response(head.response, empty)
        .map_err(|_| Cut::Client)?;
    let clean = match body {
        _ if empty => buf.is_empty(),
        Body::Empty => buf.is_empty(),
        Body::Length(n) => {
            let mut left = n;
            loop {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                left -= take as u64;
                let data = buf.split_to(take).freeze();
                send_all(&mut send, data, left == 0).await?;
                if left == 0 {
                    break buf.is_empty();
                }
                let want = usize::try_from(left).unwrap_or(usize::MAX).min(BODY_CHUNK);
                if read_or_reset(rd, buf, want, |cx| send.poll_reset(cx)).await? == 0 {
                    return Err(Cut::Worker(Reason::INTERNAL_ERROR));
                }
            }
        }
        Body::UntilClose => loop {
            let data = buf.split().freeze();
            send_all(&mut send, data, false).await?;
            if read_or_reset(rd, buf, BODY_CHUNK, |cx| send.poll_reset(cx)).await? == 0 {
                send_all(&mut send, Bytes::new(), true).await?;
                break false;
            }
        },
        Body::Chunked => {
            let mut decoder = rwsgi_http::ChunkedDecoder::new(u64::MAX);
            let mut out = Vec::with_capacity(CHUNK);
            loop {
                let used = decoder
                    .decode(buf, &mut out, usize::MAX)
                    .map_err(|_| Cut::Worker(Reason::INTERNAL_ERROR))?;
                let _ = buf.split_to(used);
                let done = decoder.is_done();
                if !out.is_empty() || done {
                    let data = Bytes::from(std::mem::replace(&mut out, Vec::with_capacity(CHUNK)));
                    send_all(&mut send, data, done).await?;
                }
                if done {
                    break buf.is_empty();
                }
                if read_or_reset(rd, buf, BODY_CHUNK, |cx| send.poll_reset(cx)).await? == 0 {
                    return Err(Cut::Worker(Reason::INTERNAL_ERROR));
                }
            }
        }
    };
    Ok(Answered {
        clean,
        closes: closes || body == Body::UntilClose,
    })
}

/// Sends `data` as the client's window allows, waiting for more window
/// without holding anything but this stream.
async fn send_all(send: &mut SendStream<Bytes>, mut data: Bytes, end: bool) -> Result<(), Cut> {
    if data.is_empty() {
        if end {
            send.send_data(Bytes::new(), true)
                .map_err(|_| Cut::Client)?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        while send.capacity() == 0 {
            match poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(Ok(_)) => {}
                _ => return Err(Cut::Client),
            }
        }
        let n = send.capacity().min(data.len());
        let chunk = data.split_to(n);
        let last = end && data.is_empty();
        send.send_data(chunk, last).map_err(|_| Cut::Client)?;
    }
    Ok(())
}
