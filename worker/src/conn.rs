//! A client connection owned by this worker.

use crate::transport::Transport;
use rwsgi_http::HttpError;
use rwsgi_shared::config::Limits;
use rwsgi_shared::metrics::Metrics;
use rwsgi_shared::origin::Origin;
use slog::{info, Logger};
use std::io::IoSlice;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

/// Read granularity for request heads and bodies.
pub const READ_CHUNK: usize = 16 * 1024;
// What is read past a complete head goes back to the master with the
// connection when the worker drains: the channel has room for that much.
const _: () = assert!(READ_CHUNK <= rwsgi_shared::channel::MAX_READ_AHEAD);

pub struct Conn {
    /// The socket, and the TLS session of an HTTPS connection: every read
    /// and write goes through it.
    pub transport: Transport,
    /// The TCP peer, and the client its PROXY preamble claimed: two
    /// addresses, so trust is never decided on the claim.
    pub origin: Origin,
    /// Bytes received and not yet consumed (a partial or pipelined request).
    pub buf: Vec<u8>,
    /// Requests answered on this connection.
    pub served: u64,
    /// When the connection last became idle or started a head.
    pub since: Instant,
    /// When the master accepted it, until its first request starts: that
    /// request's queue wait counts from there.
    pub accepted_at: Option<Instant>,
    /// An HTTPS connection: what the handshake established (the session
    /// is in `transport`; for an h2 stream's connection, the h2 thread
    /// holds it). It never goes back to the master.
    pub tls: Option<Arc<rwsgi_http::tls::Facts>>,
    /// The connection of one h2 stream (the worker's end of the h2
    /// thread's pair, tied to it): its request came over HTTP/2
    /// (SERVER_PROTOCOL). It carries one request at a time, and goes back
    /// to its pair's pool after each (see `http2::pool`); like `tls`, it
    /// never goes back to the master.
    pub http2: Option<crate::http2::WorkerEnd>,
}

impl Conn {
    pub fn new(stream: TcpStream, origin: Origin, buffered: Vec<u8>) -> Conn {
        Conn::with(Transport::new_plain(stream), origin, buffered)
    }

    pub fn with(transport: Transport, origin: Origin, buffered: Vec<u8>) -> Conn {
        Conn {
            transport,
            origin,
            buf: buffered,
            served: 0,
            since: Instant::now(),
            accepted_at: None,
            tls: None,
            http2: None,
        }
    }

    /// Answers a refused request with its status (`Connection: close`);
    /// the caller then closes the connection gracefully. Best effort: the
    /// socket is non-blocking and an error page is small.
    pub fn reject(
        &mut self,
        err: &HttpError,
        limits: &Limits,
        metrics: Option<&Metrics>,
        log: &Logger,
    ) {
        if let Some(m) = metrics {
            m.refused(err.status);
        }
        info!(log, "request refused"; "status" => err.status, "reason" => err.explain(limits), "client" => %self.origin);
        let response = crate::error_pages::response(err.status, None, false).bytes;
        let _ = self.transport.try_write(&[IoSlice::new(&response)]);
    }
}
