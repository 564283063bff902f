//! Reading and routing: what a client sent becomes a request head (after a
//! PROXY preamble), routed once; `next` decides, as a pure function, what
//! becomes of the connection; its body is received here when it must be,
//! then the request is queued for a request thread.

use super::closing::Drained;
use super::{Entry, IoLoop};
use crate::conn::{Conn, READ_CHUNK};
use crate::handoff::{GuardedStatic, QueuedRequest};
use crate::host_gate::Gate;
use crate::http2::Preface;
use crate::receiving::{Pump, Receiving};
use crate::route::{route, Routed};
use crate::spool::Spooled;
use rwsgi_http::proxy_protocol::{self, Preamble};
use rwsgi_http::statics::Resolution;
use rwsgi_http::{body_plan, BodyPlan, HttpError, RequestHead};
use slog::{debug, info, warn};
use std::time::Instant;

impl IoLoop<'_> {
    /// Reads what the client sent; queues the request once its head is complete.
    pub(super) fn read_conn(&mut self, token: usize) {
        let limits = self.ctx.config.limits;
        let h2c = self.ctx.http2.is_some();
        let conn = match self.entries.get_mut(token) {
            Some(Some(Entry::Idle(conn))) => conn,
            Some(Some(Entry::Body(_))) => return self.receive(token),
            Some(Some(Entry::Closing(closing))) => {
                match closing.drain() {
                    Drained::Over => self.drop_conn(token),
                    Drained::Pending => closing.last_read = Instant::now(),
                }
                return;
            }
            _ => return,
        };
        let files = self.ctx.statics.files();
        let mut to_http2 = false;
        let outcome = loop {
            // --proxy-protocol: the load balancer names the client first,
            // and only a peer --trust-proxy trusts may (asked again of a
            // connection another worker read the preamble of).
            if let Err(e) = self.ctx.proxy.admits_preamble(&conn.origin) {
                info!(self.ctx.log, "connection refused (--proxy-protocol)"; "why" => %e, "peer" => %conn.origin.peer());
                break Err(None);
            }
            if !conn.origin.preamble_done() {
                match proxy_protocol::parse(&conn.buf) {
                    Preamble::Partial => {}
                    Preamble::Complete { len, client } => {
                        conn.buf.drain(..len);
                        match self.ctx.proxy.believe_preamble(&mut conn.origin, client) {
                            Ok(()) => continue,
                            Err(_) => break Err(None),
                        }
                    }
                    Preamble::Invalid(why) => {
                        info!(self.ctx.log, "connection refused (--proxy-protocol)"; "why" => why, "peer" => %conn.origin.peer());
                        break Err(None);
                    }
                }
            }
            // --http2: h2c with prior knowledge opens with the preface; a
            // beginning of it waits for the rest.
            let preface =
                match h2c && conn.served == 0 && conn.tls.is_none() && conn.http2.is_none() {
                    true if conn.origin.preamble_done() => crate::http2::preface(&conn.buf),
                    _ => Preface::No,
                };
            if preface == Preface::Yes {
                to_http2 = true;
                break Ok(None);
            }
            if conn.origin.preamble_done() && !conn.buf.is_empty() && preface == Preface::No {
                let gate = Gate {
                    vhost: self.ctx.config.virtual_host.as_ref(),
                    proxy: self.ctx.proxy,
                    origin: &conn.origin,
                    secure: self.ctx.config.tls.as_ref(),
                    tls: conn.tls.as_deref(),
                };
                match route(&conn.buf, &limits, files, &gate) {
                    Routed::Partial => {}
                    Routed::Refused(e) => break Err(Some(e)),
                    complete => break Ok(Some(complete)),
                }
            }
            let before = conn.buf.len();
            match conn.transport.try_read(&mut conn.buf, READ_CHUNK) {
                Ok(Some(0)) => break Err(None),
                Ok(Some(_)) => {
                    if before == 0 {
                        conn.since = Instant::now();
                    }
                }
                Ok(None) => break Ok(None),
                Err(_) => break Err(None),
            }
        };
        if to_http2 {
            return self.hand_to_http2(token);
        }
        match outcome {
            // Waits for more here.
            Ok(None) => {
                self.watch(token);
            }
            Ok(Some(routed)) => {
                if let Some(Entry::Idle(conn)) = self.entries[token].replace(Entry::Busy) {
                    self.dispatch(token, conn, routed);
                }
            }
            Err(None) => self.drop_conn(token),
            Err(Some(e)) => {
                if let Some(Entry::Idle(mut conn)) = self.entries[token].replace(Entry::Busy) {
                    conn.reject(&e, &limits, self.metrics(), self.ctx.log);
                    self.close(token, conn);
                }
            }
        }
    }

    /// An h2c connection: out of this loop (its entry freed, its socket
    /// not closed), to the h2 thread with the bytes read so far.
    fn hand_to_http2(&mut self, token: usize) {
        let Some(h2) = self.ctx.http2 else {
            return;
        };
        if let Some(Entry::Idle(conn)) = self.take(token) {
            h2.adopt(conn);
        }
    }

    /// Carries out where a request head goes, routed here or by the thread
    /// that gave the connection back (which then parsed it once for both).
    /// The connection's entry is `Busy`; `routed`'s head is still in `conn.buf`.
    pub(super) fn dispatch(&mut self, token: usize, mut conn: Conn, routed: Routed) {
        let c = self.ctx.config;
        let (next, used) = next(routed, conn.buf.len(), Rules::of(c));
        conn.buf.drain(..used);
        match next {
            Next::Wait => {
                self.entries[token] = Some(Entry::Idle(conn));
                self.watch(token);
            }
            Next::Refuse(e) => {
                conn.reject(&e, &c.limits, self.metrics(), self.ctx.log);
                self.close(token, conn);
            }
            Next::Redirect(to) => {
                crate::host_gate::send_redirect(&mut conn, &to, self.ctx.log);
                self.close(token, conn);
            }
            Next::StatusPage(head) => {
                self.server_status(&mut conn, &head);
                self.close(token, conn);
            }
            Next::Docs(head) => {
                conn.accepted_at = None;
                self.unwatch(token, &conn);
                self.entries[token] = Some(Entry::Lane);
                crate::docs::serve(self.ctx.handoff, token, conn, head);
            }
            Next::GuardedStatic(head, resolution) => {
                let guarded = GuardedStatic {
                    resolution,
                    proxy: None,
                };
                self.queue_job(token, conn, head, None, Some(guarded));
            }
            Next::GuardedProxy(head, target) => {
                let guarded = GuardedStatic {
                    resolution: None,
                    proxy: Some(target),
                };
                self.queue_job(token, conn, head, None, Some(guarded));
            }
            Next::Proxy(head, target) => {
                conn.accepted_at = None;
                self.unwatch(token, &conn);
                self.entries[token] = Some(Entry::Lane);
                crate::proxy_pass::serve(self.ctx.handoff, token, conn, head, target);
            }
            Next::Lane(head, resolution) => {
                conn.accepted_at = None;
                self.unwatch(token, &conn);
                self.entries[token] = Some(Entry::Lane);
                self.ctx.statics.serve(token, conn, head, resolution);
            }
            Next::Receive {
                head,
                send_continue,
            } => self.start_receiving(token, conn, head, send_continue),
            Next::Queue(head) => self.queue(token, conn, head, None),
        }
    }
    pub(super) fn queue(
        &mut self,
        token: usize,
        conn: Conn,
        head: RequestHead,
        body: Option<Spooled>,
    ) {
        self.queue_job(token, conn, head, body, None);
    }

    pub(super) fn queue_job(
        &mut self,
        token: usize,
        mut conn: Conn,
        head: RequestHead,
        body: Option<Spooled>,
        guarded_static: Option<GuardedStatic>,
    ) {
        let queued_at = conn.accepted_at.take().unwrap_or_else(Instant::now);
        let n = self.ctx.handoff.push(QueuedRequest {
            conn,
            head,
            token,
            queued_at,
            body,
            guarded_static,
        });
        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
            sb.set_queued(n);
        }
    }

    /// Holds the connection here until its request's body has arrived
    /// (see `receiving`); answers `100 Continue` first when it is owed,
    /// as nginx does when it buffers a body.
    pub(super) fn start_receiving(
        &mut self,
        token: usize,
        mut conn: Conn,
        head: RequestHead,
        send_continue: bool,
    ) {
        const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        // The wait for a thread starts when the body is complete.
        conn.accepted_at = None;
        let mut receiving = Receiving::new(conn, head, self.ctx.config.limits.request_body);
        // A fresh socket's send buffer takes 25 bytes whole, or is broken.
        let sent = !send_continue
            || matches!(receiving.conn.transport.try_write(&[std::io::IoSlice::new(CONTINUE)]), Ok(w) if w.accepted == CONTINUE.len());
        self.entries[token] = Some(Entry::Body(Box::new(receiving)));
        if !sent {
            self.drop_conn(token);
            return;
        }
        self.receive(token);
    }

    /// Takes what has arrived of a body; queues the request once it is whole.
    pub(super) fn receive(&mut self, token: usize) {
        let Some(Some(Entry::Body(r))) = self.entries.get_mut(token) else {
            return;
        };
        let pumped = r.pump();
        match pumped {
            Pump::Pending => {
                self.watch(token);
                return;
            }
            Pump::Yield => return self.again.push(token),
            _ => {}
        }
        let Some(Entry::Body(r)) = self.entries[token].replace(Entry::Busy) else {
            return;
        };
        let (mut conn, head, spooled) = r.finish();
        let error = match (pumped, spooled) {
            (Pump::Complete, Ok(body)) => return self.queue(token, conn, head, Some(body)),
            (Pump::Refused(e), _) => e,
            (Pump::Failed(e), _) | (Pump::Complete, Err(e)) => {
                warn!(self.ctx.log, "cannot store a request body"; "error" => %e);
                HttpError::new(500, "request body could not be stored")
            }
            // The client left mid-body (or its socket failed): nobody to answer.
            (Pump::Closed | Pump::Pending | Pump::Yield, _) => {
                debug!(self.ctx.log, "the client closed the connection before sending the whole request body"; "client" => %conn.origin);
                self.entries[token] = Some(Entry::Idle(conn));
                return self.drop_conn(token);
            }
        };
        let limits = self.ctx.config.limits;
        conn.reject(&error, &limits, self.metrics(), self.ctx.log);
        self.close(token, conn);
    }
}

/// The options that decide what becomes of a routed head.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rules {
    /// `--auth-user-script` or `--host-access-script`.
    guard: bool,
    server_status: bool,
    chunked_request: bool,
    /// `--enable-docs`.
    docs: bool,
}

impl Rules {
    pub(crate) fn of(c: &rwsgi_shared::config::ServerConfig) -> Rules {
        Rules {
            guard: c.guard.enabled(),
            server_status: c.server_status,
            chunked_request: c.chunked_request,
            docs: c.enable_docs,
        }
    }
}

/// What becomes of a connection whose bytes were routed.
#[derive(Debug)]
pub(crate) enum Next {
    /// Not a complete head yet: wait for more.
    Wait,
    /// Answered with this error, then closed.
    Refuse(HttpError),
    /// The parent domain of a `www.` server name: a 301 to this URL, then closed.
    Redirect(String),
    /// `--server-status`: answered here, then closed.
    StatusPage(RequestHead),
    /// `--enable-docs`: the documentation, written by a thread of its own.
    Docs(RequestHead),
    /// A static file: a lane serves it.
    Lane(RequestHead, Option<Resolution>),
    /// A static file behind the guard scripts: a request thread runs them,
    /// then hands the request to a lane.
    GuardedStatic(RequestHead, Option<Resolution>),
    /// The application's, once its body has been received here (with
    /// `100 Continue` first when it is owed, as nginx does).
    Receive {
        head: RequestHead,
        send_continue: bool,
    },
    /// The application's, for a request thread now.
    Queue(RequestHead),
    /// Another server's (`--proxy-mount-point`): the guard scripts run on a
    /// request thread first.
    GuardedProxy(RequestHead, rwsgi_http::proxy_pass::Target),
    /// Another server's, relayed by `proxy_pass` now.
    Proxy(RequestHead, rwsgi_http::proxy_pass::Target),
}

/// What becomes of a connection whose `buffered` bytes were routed as
/// `routed`, and how many of those bytes the head took.
pub(crate) fn next(routed: Routed, buffered: usize, rules: Rules) -> (Next, usize) {
    match routed {
        Routed::Partial => (Next::Wait, 0),
        Routed::Refused(e) => (Next::Refuse(e), 0),
        Routed::Redirect(to) => (Next::Redirect(to), 0),
        Routed::Static(head, used, resolution) if rules.guard => {
            (Next::GuardedStatic(head, resolution), used)
        }
        Routed::Static(head, used, resolution) => (Next::Lane(head, resolution), used),
        Routed::Proxy(head, used, target) if rules.guard => {
            (Next::GuardedProxy(head, target), used)
        }
        Routed::Proxy(head, used, target) => (Next::Proxy(head, target), used),
        Routed::App(head, used) if rules.server_status && head.path == "/server-status" => {
            (Next::StatusPage(head), used)
        }
        Routed::App(head, used) if rules.docs && crate::docs::is_docs(&head.path) => {
            (Next::Docs(head), used)
        }
        Routed::App(head, used) => match body_plan(&head, buffered - used, rules.chunked_request) {
            BodyPlan::Receive { send_continue } => (
                Next::Receive {
                    head,
                    send_continue,
                },
                used,
            ),
            BodyPlan::HandOff | BodyPlan::Stream => (Next::Queue(head), used),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rwsgi_http::{parse_request_head, Parsed};

    /// `raw` routed as the application's (`static_file`: as a static file's),
    /// with `body` bytes of it buffered after the head.
    fn routed(raw: &str, static_file: bool) -> (Routed, usize) {
        let Ok(Parsed::Complete(head, used)) =
            parse_request_head(raw.as_bytes(), &Default::default())
        else {
            panic!("a complete head: {raw}");
        };
        let routed = match static_file {
            true => Routed::Static(head, used, None),
            false => Routed::App(head, used),
        };
        (routed, raw.len())
    }

    fn next_of(raw: &str, static_file: bool, rules: Rules) -> Next {
        let (routed, buffered) = routed(raw, static_file);
        next(routed, buffered, rules).0
    }

    const GET: &str = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";

    #[test]
    fn a_static_file_goes_to_a_lane_unless_the_guard_runs_first() {
        let plain = Rules::default();
        assert!(matches!(next_of(GET, true, plain), Next::Lane(..)));
        let guarded = Rules {
            guard: true,
            ..plain
        };
        assert!(matches!(
            next_of(GET, true, guarded),
            Next::GuardedStatic(..)
        ));
        // The application's requests are the request threads' either way.
        assert!(matches!(next_of(GET, false, guarded), Next::Queue(_)));
    }

    #[test]
    fn the_status_page_is_answered_here_only_when_asked_for() {
        let status = "GET /server-status HTTP/1.1\r\nHost: h\r\n\r\n";
        let on = Rules {
            server_status: true,
            ..Rules::default()
        };
        assert!(matches!(next_of(status, false, on), Next::StatusPage(_)));
        assert!(matches!(next_of(GET, false, on), Next::Queue(_)));
        assert!(matches!(
            next_of(status, false, Rules::default()),
            Next::Queue(_)
        ));
    }

    #[test]
    fn a_body_not_all_here_is_received_before_a_thread_gets_the_request() {
        let rules = Rules::default();
        let post = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n";
        let (r, buffered) = routed(post, false);
        // Half the body here: received first, with no 100 (bytes came anyway).
        let (n, used) = next(r, buffered + 5, rules);
        assert_eq!(used, post.len());
        assert!(matches!(
            n,
            Next::Receive {
                send_continue: false,
                ..
            }
        ));
        let (r, buffered) = routed(post, false);
        assert!(matches!(next(r, buffered + 10, rules).0, Next::Queue(_)));
        // A client waiting for 100 Continue gets one.
        let expect =
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n";
        assert!(matches!(
            next_of(expect, false, rules),
            Next::Receive {
                send_continue: true,
                ..
            }
        ));
        // --chunked-request: the application reads a chunked body itself.
        let chunked = "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            next_of(chunked, false, rules),
            Next::Receive { .. }
        ));
        let streamed = Rules {
            chunked_request: true,
            ..rules
        };
        assert!(matches!(next_of(chunked, false, streamed), Next::Queue(_)));
    }

    #[test]
    fn what_is_not_a_request_takes_no_bytes() {
        let rules = Rules::default();
        assert!(matches!(next(Routed::Partial, 7, rules), (Next::Wait, 0)));
        let refused = HttpError::new(400, "bad");
        assert!(matches!(
            next(Routed::Refused(refused), 7, rules),
            (Next::Refuse(_), 0)
        ));
        assert!(matches!(
            next(Routed::Redirect("http://h/".into()), 7, rules),
            (Next::Redirect(_), 0)
        ));
    }
}
