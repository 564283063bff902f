//! The reverse proxy (`--proxy-mount-point`, `--proxy-virtual-host`):
//! requests for another HTTP server behind the same port, relayed without
//! Python.
//!
//! `route` asks [`table`] where a request goes; the I/O thread hands a
//! proxied request's connection to [`serve`], which runs the exchange on
//! a thread of its own (see `exchange`) and gives the connection back
//! through the pool, as a static lane does. A proxied request waits on
//! two sockets at once in the worst case and may last as long as the
//! backend streams, so it gets a plain blocking thread, never a request
//! thread (those are the application's) nor the I/O thread. Their number
//! is capped: past [`MAX_IN_FLIGHT`] a request gets 503 at once.
//!
//! The decisions (routes, heads, framing, statuses) are
//! `rwsgi_http::proxy_pass`; this module does the I/O.

mod exchange;

use crate::access_log::AccessLog;
use crate::conn::Conn;
use crate::handoff::{Handoff as Pool, Returned};
use rwsgi_http::proxy_pass::{Table, Target};
use rwsgi_http::RequestHead;
use rwsgi_shared::config::ServerConfig;
use slog::{error, info, warn, Logger};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Proxied requests in flight per worker; a thread each.
const MAX_IN_FLIGHT: usize = 256;

/// The proxy of this worker process, set once at start: `route` is called
/// from the I/O thread, the request threads and the static lanes alike,
/// and this keeps its signature (and theirs) free of the proxy.
static PROXY: OnceLock<Arc<ProxyPass>> = OnceLock::new();

pub struct ProxyPass {
    table: Table,
    config: Arc<ServerConfig>,
    pool: Arc<Pool>,
    access: Option<Arc<AccessLog>>,
    log: Logger,
    in_flight: AtomicUsize,
}

/// Sets the proxy up when the configuration has routes.
pub fn start(
    config: &Arc<ServerConfig>,
    pool: &Arc<Pool>,
    access: Option<Arc<AccessLog>>,
    log: &Logger,
) {
    let p = &config.proxy_pass;
    let table = match Table::new(&p.mounts, &p.virtual_hosts) {
        Ok(t) => t,
        // Checked by the master's configuration already.
        Err((option, why)) => return error!(log, "--{}: {}; not proxying", option, why),
    };
    if table.is_empty() {
        return;
    }
    info!(log, "proxying"; "mount_points" => p.mounts.len(),
        "virtual_hosts" => p.virtual_hosts.len(), "proxy_timeout_ms" => p.timeout_ms);
    let _ = PROXY.set(Arc::new(ProxyPass {
        table,
        config: Arc::clone(config),
        pool: Arc::clone(pool),
        access,
        log: log.new(slog::o!("proxy" => true)),
        in_flight: AtomicUsize::new(0),
    }));
}

/// The proxy routes, for `route`; `None` without proxy options.
pub fn table() -> Option<&'static Table> {
    PROXY.get().map(|p| &p.table)
}

/// Relays a proxied request (the connection is out of the I/O thread's
/// poller); the connection comes back through the pool.
pub fn serve(pool: &Pool, token: usize, conn: Conn, head: RequestHead, target: Target) {
    let Some(p) = PROXY.get().map(Arc::clone) else {
        // `route` found no table: it never routes here then.
        return pool.give_back(Returned::Close(token, conn));
    };
    if p.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
        p.in_flight.fetch_sub(1, Ordering::SeqCst);
        warn!(p.log, "too many proxied requests in flight; 503"; "limit" => MAX_IN_FLIGHT);
        let returned = exchange::refuse(&p, token, conn, 503);
        return p.pool.give_back(returned);
    }
    let runner = Arc::clone(&p);
    let spawned = std::thread::Builder::new()
        .name("rwsgi-proxy".into())
        .spawn(move || {
            let returned = exchange::run(&runner, token, conn, head, target);
            runner.in_flight.fetch_sub(1, Ordering::SeqCst);
            runner.pool.give_back(returned);
        });
    if let Err(e) = spawned {
        // The closure, and the connection with it, is gone: its socket is closed.
        p.in_flight.fetch_sub(1, Ordering::SeqCst);
        warn!(p.log, "cannot start a proxy thread; connection closed"; "error" => %e);
        p.pool.give_back(Returned::Closed(token));
    }
}
