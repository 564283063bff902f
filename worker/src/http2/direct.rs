//! A stream's request queued for the request threads by the h2 thread
//! itself, when nothing but a request thread has anything to do with it:
//! the application's, its body all here, no guard script, status page or
//! documentation to answer first. Its connection never enters the I/O
//! thread's table (`handoff::DIRECT`); the thread that answers it gives it
//! back to its pair's pool. Any other request goes to the I/O thread,
//! which routes it as any connection's.

use crate::conn::Conn;
use crate::handoff::{Handoff, QueuedRequest, DIRECT};
use crate::host_gate::Gate;
use crate::io_loop::{next, Next, Rules};
use crate::route::{route, Routed};
use rwsgi_http::forwarded;
use rwsgi_http::statics::StaticFiles;
use rwsgi_shared::config::ServerConfig;
use std::sync::Arc;
use std::time::Instant;

/// What routing a request needs.
pub struct Router {
    pub config: Arc<ServerConfig>,
    pub files: Arc<StaticFiles>,
    pub proxy: Arc<forwarded::Rules>,
}

impl Router {
    /// Queues the request in `conn.buf` when it is a request thread's
    /// business and nothing else's, true when a request thread is owed a
    /// wake for it (see `Handoff::push_unwoken`); otherwise gives the
    /// connection back, its buffer untouched.
    pub fn queue(&self, handoff: &Handoff, mut conn: Conn) -> Result<bool, Box<Conn>> {
        let c = &*self.config;
        let gate = Gate {
            vhost: c.virtual_host.as_ref(),
            proxy: &self.proxy,
            origin: &conn.origin,
            secure: c.tls.as_ref(),
            tls: conn.tls.as_deref(),
        };
        let routed = match route(&conn.buf, &c.limits, &self.files, &gate) {
            app @ Routed::App(..) => app,
            _ => return Err(Box::new(conn)),
        };
        let (Next::Queue(head), used) = next(routed, conn.buf.len(), Rules::of(c)) else {
            return Err(Box::new(conn));
        };
        conn.buf.drain(..used);
        Ok(handoff.push_unwoken(QueuedRequest {
            conn,
            head,
            token: DIRECT,
            queued_at: Instant::now(),
            body: None,
            guarded_static: None,
        }))
    }
}
