//! One h2 stream: a socket pair whose other end the I/O thread adopts as a
//! connection of its own, the request written into it as HTTP/1.1 (its
//! body from the DATA frames, as they come and as the worker reads them),
//! and the HTTP/1.1 response read back and sent as the stream's response,
//! DATA only as fast as the client's flow-control window lets it, so a
//! slow stream holds only its own buffers and never blocks another.

use super::translate::{self, Body, Framing};
use super::Shared;
use crate::conn::Conn;
use crate::handoff::Returned;
use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use rwsgi_shared::origin::Origin;
use slog::debug;
use std::future::poll_fn;
use std::io::Write;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// Bytes read from the worker per DATA frame at most.
const CHUNK: usize = 16 * 1024;

/// What a stream shares with its connection.
pub struct StreamCtx {
    pub shared: Arc<Shared>,
    pub origin: Origin,
    pub tls: Option<Arc<rwsgi_http::tls::Facts>>,
    /// Streams of the connection still relaying (this one counted).
    pub open: Arc<AtomicUsize>,
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
}

pub async fn relay(
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    ctx: StreamCtx,
) {
    ctx.shared.streams.fetch_add(1, Ordering::SeqCst);
    let _counted = Counted(Arc::clone(&ctx.open), Arc::clone(&ctx.shared.streams));
    let (parts, body) = request.into_parts();
    let framing = translate::framing(&parts.headers, body.is_end_stream());
    let head = translate::request_head(&parts, framing);
    let head_request = parts.method == http::Method::HEAD;
    let (rd, wr, rest) = match pair(&ctx, head) {
        Ok(p) => p,
        Err(e) => {
            debug!(ctx.shared.log, "cannot relay an h2 stream"; "error" => %e);
            respond.send_reset(Reason::INTERNAL_ERROR);
            return;
        }
    };
    let upload = upload(body, wr, rest, framing);
    let shared = &ctx.shared;
    let download = async move {
        if let Err(Cut::Worker(reason)) = download(rd, &mut respond, head_request, shared).await {
            respond.send_reset(reason);
        }
    };
    tokio::pin!(upload);
    tokio::pin!(download);
    let mut uploading = true;
    // The write half outlives the upload: dropping it would half-close the
    // pair, which a connection still being read would take for an abort.
    let mut _kept = None;
    loop {
        tokio::select! {
            up = &mut upload, if uploading => {
                uploading = false;
                _kept = up.ok();
            }
            () = &mut download => return,
        }
    }
}

/// The socket pair: the worker's end adopted by the I/O thread with the
/// head already in it (so it finds a complete request head, as it would
/// from a client), ours split for both directions. Returns what of the
/// head did not fit in the pair's buffer.
fn pair(
    ctx: &StreamCtx,
    head: Vec<u8>,
) -> std::io::Result<(OwnedReadHalf, OwnedWriteHalf, Vec<u8>)> {
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    theirs.set_nonblocking(true)?;
    let mut written = 0;
    while written < head.len() {
        match ours.write(&head[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let ours = tokio::net::UnixStream::from_std(ours)?;
    // As the TLS thread does: the worker reads and writes the pair as it
    // would a TCP socket.
    let mut conn = Conn::new(
        TcpStream::from(OwnedFd::from(theirs)),
        ctx.origin,
        Vec::new(),
    );
    conn.tls = ctx.tls.clone();
    conn.http2 = true;
    ctx.shared
        .handoff
        .give_back(Returned::Adopt(Box::new(conn)));
    let (rd, wr) = ours.into_split();
    Ok((rd, wr, head[written..].to_vec()))
}

/// The rest of the head, then the request body into the pair; each DATA
/// frame's window is given back to the client once the worker took it.
async fn upload(
    mut body: RecvStream,
    mut wr: OwnedWriteHalf,
    rest: Vec<u8>,
    framing: Framing,
) -> std::io::Result<OwnedWriteHalf> {
    wr.write_all(&rest).await?;
    while let Some(data) = body.data().await {
        let data = data.map_err(std::io::Error::other)?;
        let n = data.len();
        if framing == Framing::Chunked {
            if n > 0 {
                wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                wr.write_all(&data).await?;
                wr.write_all(b"\r\n").await?;
            }
        } else {
            wr.write_all(&data).await?;
        }
        let _ = body.flow_control().release_capacity(n);
    }
    if framing == Framing::Chunked {
        wr.write_all(b"0\r\n\r\n").await?;
    }
    Ok(wr)
}

/// Reads from the worker, or learns that the client reset the stream.
async fn read_or_reset<F>(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    mut reset: F,
) -> Result<usize, Cut>
where
    F: FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Result<Reason, h2::Error>>,
{
    buf.reserve(CHUNK);
    tokio::select! {
        read = rd.read_buf(buf) => read.map_err(|_| Cut::Worker(Reason::INTERNAL_ERROR)),
        _ = poll_fn(&mut reset) => Err(Cut::Client),
    }
}

/// The worker's response, as the stream's.
async fn download(
    mut rd: OwnedReadHalf,
    respond: &mut SendResponse<Bytes>,
    head_request: bool,
    shared: &Shared,
) -> Result<(), Cut> {
    let mut buf = BytesMut::with_capacity(CHUNK);
    let head = loop {
        match translate::response_head(&buf, head_request) {
            Ok(Some((head, used))) => {
                let _ = buf.split_to(used);
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
        if read_or_reset(&mut rd, &mut buf, |cx| respond.poll_reset(cx)).await? == 0 {
            // Closed unanswered: the worker is draining (or was refused
            // the connection); the request was not processed.
            return Err(Cut::Worker(match buf.is_empty() {
                true => Reason::REFUSED_STREAM,
                false => Reason::INTERNAL_ERROR,
            }));
        }
    };
    let body = head.body;
    let mut send = respond
        .send_response(head.response, body == Body::Empty)
        .map_err(|_| Cut::Client)?;
    match body {
        Body::Empty => Ok(()),
        Body::Length(n) => {
            let mut left = n;
            loop {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                left -= take as u64;
                let data = buf.split_to(take).freeze();
                send_all(&mut send, data, left == 0).await?;
                if left == 0 {
                    return Ok(());
                }
                if read_or_reset(&mut rd, &mut buf, |cx| send.poll_reset(cx)).await? == 0 {
                    return Err(Cut::Worker(Reason::INTERNAL_ERROR));
                }
            }
        }
        Body::UntilClose => loop {
            let data = buf.split().freeze();
            send_all(&mut send, data, false).await?;
            if read_or_reset(&mut rd, &mut buf, |cx| send.poll_reset(cx)).await? == 0 {
                return send_all(&mut send, Bytes::new(), true).await;
            }
        },
        Body::Chunked => {
            let mut decoder = rwsgi_http::ChunkedDecoder::new(u64::MAX);
            let mut out = Vec::with_capacity(CHUNK);
            loop {
                let used = decoder
                    .decode(&buf, &mut out, usize::MAX)
                    .map_err(|_| Cut::Worker(Reason::INTERNAL_ERROR))?;
                let _ = buf.split_to(used);
                let done = decoder.is_done();
                if !out.is_empty() || done {
                    let data = Bytes::from(std::mem::replace(&mut out, Vec::with_capacity(CHUNK)));
                    send_all(&mut send, data, done).await?;
                }
                if done {
                    return Ok(());
                }
                if read_or_reset(&mut rd, &mut buf, |cx| send.poll_reset(cx)).await? == 0 {
                    return Err(Cut::Worker(Reason::INTERNAL_ERROR));
                }
            }
        }
    }
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
