//! Request threads: each attaches to Python once and runs requests, with the
//! GIL released while it waits for work or does socket I/O.

use crate::conn::{Conn, READ_CHUNK};
use crate::handoff::{GuardedStatic, Handoff, QueuedRequest, Returned};
use crate::python::Application;
use crate::route::{route, Routed};
use crate::wsgi::{self, RequestContext};
use pyo3::Python;
use rwsgi_http::statics::StaticFiles;
use rwsgi_http::{body_plan, BodyPlan, HttpError, RequestHead};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::scoreboard::Scoreboard;
use slog::{o, Logger};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What every request thread of the worker shares.
#[derive(Clone)]
pub struct Shared {
    pub handoff: Arc<Handoff>,
    pub app: Arc<Application>,
    pub config: Arc<ServerConfig>,
    pub scoreboard: Arc<Scoreboard>,
    pub files: Arc<StaticFiles>,
    /// The lanes, for static requests the guard scripts let through.
    pub statics: Arc<crate::static_lanes::StaticLanes>,
    /// `None` without `--access-log`.
    pub access: Option<Arc<crate::access_log::AccessLog>>,
    /// `--trust-proxy-header`, `--trust-proxy`.
    pub proxy: Arc<rwsgi_http::forwarded::Rules>,
    /// `None` without `--interrupt-timeout`.
    pub interrupts: Option<Arc<crate::python::Interrupts>>,
    /// `None` without `--telemetry-service`.
    pub telemetry: Option<Arc<crate::telemetry::Reporter>>,
}

pub fn start(n: usize, shared: &Shared, slot: usize, log: &Logger) -> Vec<JoinHandle<()>> {
    (0..n)
        .filter_map(|index| {
            let shared = shared.clone();
            let log = log.new(o!("thread" => index));
            std::thread::Builder::new()
                .name(format!("rwsgi-request-{index}"))
                .spawn(move || {
                    let ctx = RequestContext {
                        app: &shared.app,
                        config: &shared.config,
                        scoreboard: &shared.scoreboard,
                        slot,
                        thread: index,
                        files: &shared.files,
                        statics: &shared.statics,
                        access: shared.access.as_deref(),
                        proxy: &shared.proxy,
                        interrupts: shared.interrupts.as_deref(),
                        telemetry: shared.telemetry.as_deref(),
                        log: &log,
                    };
                    serve(&shared.handoff, &ctx);
                })
                .ok()
        })
        .collect()
}

/// What to do with a connection after its request.
enum Next {
    /// Another complete request is already here (pipelined or quick client).
    Run(Conn, RequestHead),
    /// Wait in the I/O thread.
    Idle(Conn),
    /// A complete head that is not run here: the I/O thread carries out
    /// its routing (see `Returned::Routed`).
    Route(Conn, Box<Routed>),
    /// The I/O thread closes it gracefully.
    Close(Conn),
    /// Closed here and now (see `closing`).
    Closed,
}

/// How a connection that will carry no more requests is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// `close(2)` at once: the queued response goes out with a FIN.
    Now,
    /// The I/O thread half-closes, then reads and drops what the client
    /// still sends until it closes too (RFC 9112 9.6).
    Linger,
}

/// A close while the client may still be sending (an unread body,
/// pipelined bytes) would make the kernel answer those bytes with a reset,
/// and the reset can throw away the response the client has not read yet:
/// that close lingers. Once every byte of the request was read and nothing
/// came after it, there is nothing to wait for (nginx's `lingering_close
/// on` decides the same way); lingering then cost each `Connection: close`
/// request a hand-off to the I/O thread, a read, an `epoll_ctl` and a wake-up
/// for the client's FIN, a third of its throughput.
fn closing(request_read: bool, buffered: usize) -> Closing {
    if request_read && buffered == 0 {
        Closing::Now
    } else {
        Closing::Linger
    }
}

fn serve(handoff: &Handoff, ctx: &RequestContext<'_>) {
    Python::attach(|py| {
        let Some(mut job) = py.detach(|| next_request(handoff, ctx)) else {
            return;
        };
        loop {
            let token = job.token;
            let queue_limit = Duration::from_millis(ctx.config.timeouts.queue_ms);
            let waited_too_long = job.queued_at.elapsed() > queue_limit;
            let handled = if waited_too_long {
                Err(job.conn)
            } else {
                Ok(run(py, ctx, job))
            };
            // One GIL-free stretch per request: send the response, look for
            // the next request on this connection, else wait for other work.
            let next = py.detach(|| {
                let handled = match handled {
                    Ok(Ran::Handled(h)) => h,
                    Ok(Ran::Static(job)) => {
                        let (conn, head, guarded) = *job;
                        if let Some(target) = guarded.proxy {
                            crate::proxy_pass::serve(handoff, token, conn, head, target);
                        } else if ctx.statics.enabled() {
                            ctx.statics.serve(token, conn, head, guarded.resolution);
                        } else {
                            // Not routed here without lanes; close rather than hang.
                            handoff.give_back(Returned::Close(token, conn));
                        }
                        return next_request(handoff, ctx);
                    }
                    Err(mut conn) => {
                        // Waited too long for a thread: the client has likely given up.
                        conn.reject(
                            &HttpError::new(503, "request waited longer than --queue-timeout"),
                            &ctx.config.limits,
                            ctx.scoreboard.worker(ctx.slot).map(|sb| sb.metrics()),
                            ctx.log,
                        );
                        handoff.give_back(Returned::Close(token, conn));
                        return next_request(handoff, ctx);
                    }
                };
                match after_response(handled, ctx, handoff) {
                    Next::Run(conn, head) => {
                        return Some(QueuedRequest {
                            conn,
                            head,
                            token,
                            queued_at: Instant::now(),
                            body: None,
                            guarded_static: None,
                        })
                    }
                    Next::Idle(conn) => handoff.give_back(Returned::Idle(token, conn)),
                    Next::Route(conn, routed) => {
                        handoff.give_back(Returned::Routed(token, conn, routed))
                    }
                    Next::Close(conn) => handoff.give_back(Returned::Close(token, conn)),
                    Next::Closed => handoff.give_back(Returned::Closed(token)),
                }
                next_request(handoff, ctx)
            });
            match next {
                Some(j) => job = j,
                None => return,
            }
        }
    });
}

/// What a request thread did with a job.
enum Ran {
    /// Answered here (by the application, or refused by the guard).
    Handled(wsgi::Handled),
    /// A static request the guard let through, for a lane.
    Static(Box<(Conn, RequestHead, GuardedStatic)>),
}

/// Runs a job with the GIL held: the guard scripts first when configured.
fn run(py: Python<'_>, ctx: &RequestContext<'_>, job: QueuedRequest) -> Ran {
    let mut user = None;
    if ctx.config.guard.enabled() {
        match crate::guard::check(py, ctx, &job.conn, &job.head) {
            crate::guard::Verdict::Pass(u) => user = u,
            crate::guard::Verdict::Refuse(r) => {
                return Ran::Handled(crate::guard::refuse(
                    ctx,
                    job.conn,
                    &job.head,
                    &r,
                    job.queued_at,
                ))
            }
        }
    }
    if let Some(guarded) = job.guarded_static {
        return Ran::Static(Box::new((job.conn, job.head, guarded)));
    }
    Ran::Handled(wsgi::handle(
        py,
        ctx,
        job.conn,
        job.head,
        job.body,
        job.queued_at,
        user.as_ref(),
    ))
}

fn next_request(handoff: &Handoff, ctx: &RequestContext<'_>) -> Option<QueuedRequest> {
    let (job, left) = handoff.next_request()?;
    if let Some(sb) = ctx.scoreboard.worker(ctx.slot) {
        sb.set_queued(left);
    }
    Some(job)
}

/// Writes what is left of the response, then decides the connection's fate.
fn after_response(mut handled: wsgi::Handled, ctx: &RequestContext<'_>, handoff: &Handoff) -> Next {
    let timeout = Duration::from_millis(ctx.config.timeouts.socket_ms);
    let closing = match handled.keep_alive {
        true => None,
        false => Some(closing(handled.request_read, handled.conn.buf.len())),
    };
    if !handled.unsent.is_empty() {
        let transport = &mut handled.conn.transport;
        let written = match closing {
            Some(Closing::Now) => transport.write_all_then_close(&[&handled.unsent], timeout),
            _ => transport.write_all(&[&handled.unsent], timeout),
        };
        if written.is_err() {
            return Next::Close(handled.conn);
        }
    }
    match closing {
        None => follow_up(handled.conn, ctx, handoff.queued() == 0),
        Some(Closing::Now) => {
            // Closing the socket also takes it out of the I/O thread's poll.
            drop(handled.conn);
            Next::Closed
        }
        Some(Closing::Linger) => Next::Close(handled.conn),
    }
}

/// After a keep-alive response: if the next request head is already complete
/// (or arrives without waiting), run it on this thread and skip a hand-off.
fn follow_up(mut conn: Conn, ctx: &RequestContext<'_>, read_more: bool) -> Next {
    if conn.http2.is_some() {
        // An h2 stream's: one request, and its next one comes with the
        // connection from its pool. Anything more on it is not a request.
        return match conn.buf.is_empty() {
            true => Next::Idle(conn),
            false => Next::Close(conn),
        };
    }
    let limits = ctx.config.limits;
    for attempt in 0..2 {
        if !conn.buf.is_empty() {
            let gate = crate::host_gate::Gate {
                vhost: ctx.config.virtual_host.as_ref(),
                proxy: ctx.proxy,
                origin: &conn.origin,
                secure: ctx.config.tls.as_ref(),
                tls: conn.tls.as_deref(),
            };
            match route(&conn.buf, &limits, ctx.files, &gate) {
                // Run here only what needs nothing more from the network: a
                // body still to come is received by the I/O thread.
                Routed::App(head, used) => {
                    let rest = conn.buf.len() - used;
                    match body_plan(&head, rest, ctx.config.chunked_request) {
                        BodyPlan::HandOff | BodyPlan::Stream => {
                            conn.buf.drain(..used);
                            return Next::Run(conn, head);
                        }
                        BodyPlan::Receive { .. } => {
                            return Next::Route(conn, Box::new(Routed::App(head, used)))
                        }
                    }
                }
                // Static files are never served on a Python thread: the I/O
                // thread hands it to a lane.
                routed @ (Routed::Static(..) | Routed::Proxy(..)) => {
                    return Next::Route(conn, Box::new(routed))
                }
                Routed::Partial => {}
                Routed::Redirect(to) => {
                    crate::host_gate::send_redirect(&mut conn, &to, ctx.log);
                    return Next::Close(conn);
                }
                Routed::Refused(e) => {
                    conn.reject(
                        &e,
                        &limits,
                        ctx.scoreboard.worker(ctx.slot).map(|sb| sb.metrics()),
                        ctx.log,
                    );
                    return Next::Close(conn);
                }
            }
        }
        // With requests queued, serving them beats a read that usually finds
        // nothing (the I/O thread reads the connection when it gets it back).
        if attempt == 1 || !read_more {
            break;
        }
        match conn.transport.try_read(&mut conn.buf, READ_CHUNK) {
            Ok(Some(0)) | Err(_) => return Next::Close(conn),
            Ok(Some(_)) => {}
            Ok(None) => break,
        }
    }
    Next::Idle(conn)
}

#[cfg(test)]
mod tests {
    use super::{closing, Closing};

    #[test]
    fn only_a_request_read_to_its_end_with_nothing_after_it_closes_at_once() {
        assert_eq!(closing(true, 0), Closing::Now);
        // A pipelined request (or its start) after the one answered.
        assert_eq!(closing(true, 1), Closing::Linger);
        // A body the application did not read: the client may still send it.
        assert_eq!(closing(false, 0), Closing::Linger);
        assert_eq!(closing(false, 5), Closing::Linger);
    }
}
