//! One HTTP/2 connection: the h2 crate's server side with rwsgi's bounds,
//! its streams accepted and each relayed by a task of its own, GOAWAY when
//! the worker drains or the connection has been idle too long.

use super::pool::Pool;
use super::relay::{self, StreamCtx};
use super::tls_io::TlsIo;
use super::{Client, Phase, Shared};
use bytes::Bytes;
use h2::Reason;
use rwsgi_http::tls::Facts;
use rwsgi_shared::origin::Origin;
use slog::{debug, info};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{timeout, Instant};

/// SETTINGS_MAX_CONCURRENT_STREAMS: as nginx and mod_http2 (100).
pub const MAX_STREAMS: u32 = 100;
/// Streams of one connection still being relayed: past this, new streams
/// are refused (REFUSED_STREAM). A stream the h2 crate has closed (reset,
/// or answered while its body was still coming) no longer counts in its
/// concurrency, but may keep a task here until the task notices: this
/// bounds those (rapid reset, CVE-2023-44487).
const MAX_RELAYING: usize = 2 * MAX_STREAMS as usize;
/// Streams reset by the client before they were accepted, at any one time,
/// before the connection is closed with ENHANCE_YOUR_CALM.
const PENDING_ACCEPT_RESETS: usize = 20;
/// Streams this side reset for the client's protocol errors before the
/// connection is closed.
const LOCAL_ERROR_RESETS: usize = 256;
/// Flow-control windows: a stream's, and the connection's (all streams).
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Response bytes buffered per connection before senders wait.
const SEND_BUFFER: usize = 256 * 1024;

/// The bytes read before the connection came here (by the I/O thread
/// before it recognised the preface; decrypted with the TLS handshake's
/// end), then the connection.
struct Prefixed<T> {
    prefix: Vec<u8>,
    at: usize,
    inner: T,
}

impl<T> Prefixed<T> {
    fn new(prefix: Vec<u8>, inner: T) -> Prefixed<T> {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.at);
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

pub async fn serve(client: Client, shared: Arc<Shared>) {
    let Client {
        tcp,
        session,
        prefix,
        origin,
        tls,
    } = client;
    let Ok(socket) = tokio::net::TcpStream::from_std(tcp) else {
        return;
    };
    match session {
        // `h2` over TLS: this thread encrypts and decrypts.
        Some(session) => {
            let io = Prefixed::new(prefix, TlsIo::new(socket, session));
            run(io, origin, tls, shared).await;
        }
        // h2c.
        None => run(Prefixed::new(prefix, socket), origin, tls, shared).await,
    }
}

async fn run<T: AsyncRead + AsyncWrite + Unpin>(
    io: Prefixed<T>,
    origin: Origin,
    tls: Option<Arc<Facts>>,
    shared: Arc<Shared>,
) {
    let settings = &shared.settings;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(settings.max_header_list)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_pending_accept_reset_streams(PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(LOCAL_ERROR_RESETS))
        .max_send_buffer_size(SEND_BUFFER);
    let mut h2 = match timeout(settings.handshake, builder.handshake::<_, Bytes>(io)).await {
        Ok(Ok(h2)) => h2,
        Ok(Err(e)) => {
            debug!(shared.log, "HTTP/2 handshake failed"; "error" => %e, "client" => %origin);
            return;
        }
        Err(_) => {
            debug!(shared.log, "HTTP/2 handshake timed out"; "client" => %origin);
            return;
        }
    };
    let open = Arc::new(AtomicUsize::new(0));
    let pool = Arc::new(Pool::default());
    let mut phase = shared.phase.clone();
    let mut watching_phase = true;
    let mut going_away = false;
    // Idle: no stream open and none accepted for a whole interval.
    let idle = settings.idle;
    let mut accepted: u64 = 0;
    let mut accepted_at_check = 0;
    // One timer for the connection's life, reset rather than made anew
    // on each turn of the loop (a turn per stream).
    let check = tokio::time::sleep_until(Instant::now() + idle);
    tokio::pin!(check);
    loop {
        if !going_away && *phase.borrow() != Phase::Serving {
            h2.graceful_shutdown();
            going_away = true;
        }
        tokio::select! {
            next = h2.accept() => match next {
                Some(Ok((request, mut respond))) => {
                    accepted += 1;
                    if open.load(Ordering::SeqCst) >= MAX_RELAYING {
                        respond.send_reset(Reason::REFUSED_STREAM);
                        continue;
                    }
                    open.fetch_add(1, Ordering::SeqCst);
                    let ctx = StreamCtx {
                        shared: Arc::clone(&shared),
                        origin,
                        tls: tls.clone(),
                        open: Arc::clone(&open),
                        pool: Arc::clone(&pool),
                    };
                    tokio::spawn(relay::relay(request, respond, ctx));
                }
                Some(Err(e)) => {
                    // GOAWAY for the client's error (rapid reset, a header
                    // list too large, a flood) or a broken connection.
                    match e.reason() {
                        Some(reason) if e.is_go_away() || e.is_reset() => {
                            info!(shared.log, "HTTP/2 connection closed"; "why" => %reason, "client" => %origin)
                        }
                        _ => debug!(shared.log, "HTTP/2 connection ended"; "error" => %e, "client" => %origin),
                    }
                    break;
                }
                None => break,
            },
            changed = phase.changed(), if watching_phase => {
                if changed.is_err() {
                    watching_phase = false;
                }
            }
            () = &mut check => {
                check.as_mut().reset(Instant::now() + idle);
                let quiet = open.load(Ordering::SeqCst) == 0 && accepted == accepted_at_check;
                accepted_at_check = accepted;
                if quiet {
                    if going_away {
                        // A client that does not answer the GOAWAY's PING
                        // keeps no connection open.
                        break;
                    }
                    h2.graceful_shutdown();
                    going_away = true;
                }
            }
        }
    }
}
