//! How a request ends once the application is done with it: a decision
//! table (`ending`, pure, unit-tested) from what happened to what the
//! client gets and who the log blames, and carrying that decision out.

use super::{error_page, log_error, Outcome, Prepared, Raised, RequestContext};
use crate::conn::Conn;
use pyo3::prelude::*;
use rwsgi_http::{BodyError, HttpError, RequestHead};
use slog::{debug, error, info, warn};

/// What is known when the application is done with a request.
#[derive(Debug, Clone, Copy)]
struct Facts<'a> {
    /// The application (or its iterable, or `close()`) raised.
    app_raised: bool,
    /// What it raised was the RequestTimeout of `--interrupt-timeout`.
    timed_out: bool,
    /// Response bytes already reached the socket.
    on_wire: bool,
    /// The client went away while the response was being sent.
    client_gone: bool,
    /// The body was malformed or too large (decided by the server).
    refused: Option<&'a HttpError>,
    /// Reading the body failed otherwise (timeout, disconnect).
    body_failed: Option<&'a BodyError>,
}

/// How the server ends the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Send what the application produced, completed.
    Complete,
    /// Nothing is on the wire yet: send this error page, then close.
    ErrorPage(u16),
    /// Part of the response is on the wire and it cannot be completed:
    /// close without completing its framing, so the client sees it cut short.
    CutShort,
}

/// Who the log blames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blame {
    Nobody,
    /// The application's exception, with its traceback (ERROR).
    Application,
    /// The client's request body (INFO, no traceback).
    ClientBody,
    /// The client left (DEBUG).
    ClientGone,
    /// `--interrupt-timeout` interrupted it (WARN, no traceback: the
    /// stack was logged when it was interrupted).
    Interrupted,
}

/// The decision table for the end of a request. A refused body is the
/// client's error whatever the application did with the exception; a body
/// that failed otherwise is the client's only when it made the application
/// fail; an exception is the application's. What is on the wire decides
/// between an error page and a response cut short.
fn ending(f: Facts<'_>) -> (Ending, Blame) {
    let cut_or = |status| {
        if f.on_wire {
            Ending::CutShort
        } else {
            Ending::ErrorPage(status)
        }
    };
    if let Some(refused) = f.refused {
        return (cut_or(refused.status), Blame::ClientBody);
    }
    if !f.app_raised {
        return (Ending::Complete, Blame::Nobody);
    }
    if f.client_gone {
        return (Ending::CutShort, Blame::ClientGone);
    }
    // mod_wsgi 6: 504 Gateway Timeout, or cut short if the response began.
    if f.timed_out {
        return (cut_or(504), Blame::Interrupted);
    }
    match f.body_failed {
        Some(e) => (cut_or(e.status()), Blame::ClientBody),
        None => (cut_or(500), Blame::Application),
    }
}

/// Ends the request the way `ending` decides: logs whom it blames,
/// completes the response or replaces it, and takes the connection's
/// socket back from whatever the application kept (the lease).
pub(super) fn respond(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    conn: &mut Conn,
    head: &RequestHead,
    prepared: Prepared,
    raised: Raised,
) -> Outcome {
    let Prepared {
        lease,
        input,
        response,
        ..
    } = prepared;
    // A thread the application started may hold either object right now
    // (it kept `write` or `wsgi.input`): then the connection cannot be
    // trusted to carry anything more, and closes.
    let (Ok(mut r), Ok(mut i)) = (response.try_borrow_mut(py), input.try_borrow_mut(py)) else {
        lease.revoke(py, &mut conn.transport);
        for (e, what) in &raised {
            log_error(py, ctx, e, what);
        }
        warn!(ctx.log, "another thread was using this request's start_response or wsgi.input when it ended; closing the connection");
        return Outcome {
            status: 500,
            body_bytes: 0,
            keep_alive: false,
            unsent: Vec::new(),
            server_refusal: false,
            request_read: false,
            response_headers: Vec::new(),
        };
    };
    let refused = lease.refusal().cloned();
    let body_failed = i.body_error().cloned();
    let timed_out = ctx
        .interrupts
        .is_some_and(|t| raised.iter().any(|(e, _)| t.is_request_timeout(py, e)));
    let (end, blame) = ending(Facts {
        app_raised: !raised.is_empty(),
        timed_out,
        on_wire: r.on_wire(),
        client_gone: r.client_gone(),
        refused: refused.as_ref(),
        body_failed: body_failed.as_ref(),
    });
    match blame {
        Blame::Nobody => {}
        Blame::Application => {
            for (e, what) in &raised {
                log_error(py, ctx, e, what);
            }
        }
        Blame::ClientBody => match (&refused, &body_failed) {
            (Some(http), _) => {
                log_body_failure(ctx, conn, &BodyError::Refused(http.clone()));
            }
            (None, Some(e)) => log_body_failure(ctx, conn, e),
            (None, None) => {}
        },
        Blame::ClientGone => debug!(ctx.log, "client went away during the response"),
        Blame::Interrupted => {
            warn!(ctx.log, "request interrupted by RequestTimeout (--interrupt-timeout); the thread serves on";
                "request" => format!("{} {}", head.method, head.target),
                "response" => if r.on_wire() { "cut short" } else { "504" })
        }
    }
    let outcome = match end {
        Ending::ErrorPage(status) => {
            r.discard();
            Outcome {
                server_refusal: blame == Blame::ClientBody,
                ..error_page(status, head)
            }
        }
        Ending::CutShort => {
            r.discard();
            if blame == Blame::Application {
                error!(ctx.log, "response cut short: the application failed after it began; the connection is closed so the client sees an incomplete response";
                    "status" => r.status_code(), "sent" => r.body_bytes(), "client" => %conn.origin);
            }
            Outcome {
                status: r.status_code(),
                body_bytes: r.body_bytes(),
                keep_alive: false,
                unsent: Vec::new(),
                server_refusal: false,
                request_read: false,
                response_headers: Vec::new(),
            }
        }
        Ending::Complete if r.replaced() => {
            // --error-override: the application's error body is dropped and
            // the server's page for the status sent instead.
            let keep_alive = r.keep_alive() && head.keep_alive && i.discard_rest(py);
            let page = crate::error_pages::response(r.status_code(), Some(head), keep_alive);
            Outcome {
                status: page.status,
                body_bytes: page.body_len,
                keep_alive,
                unsent: page.bytes,
                server_refusal: false,
                request_read: false,
                response_headers: Vec::new(),
            }
        }
        Ending::Complete => {
            let finished = r.finish();
            let unsent = match finished {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    debug!(ctx.log, "response not completed"; "error" => %e, "client" => %conn.origin);
                    None
                }
            };
            let keep_alive = unsent.is_some() && r.keep_alive() && head.keep_alive;
            // An unread body is read and dropped (if small) so the
            // connection can carry the next request.
            let body_clean = keep_alive && i.discard_rest(py);
            Outcome {
                status: r.status_code(),
                body_bytes: r.body_bytes(),
                keep_alive: keep_alive && body_clean,
                unsent: unsent.unwrap_or_default(),
                server_refusal: false,
                request_read: false,
                response_headers: match ctx.access {
                    Some(a) if a.format.needs_response_headers() => r.headers().to_vec(),
                    _ => Vec::new(),
                },
            }
        }
    };
    let request_read = i.body_received() && i.body_error().is_none();
    drop(r);
    // From here on, whatever the application kept raises instead of
    // touching the socket, which may soon belong to another client.
    lease.revoke(py, &mut conn.transport);
    conn.buf = i.detach();
    Outcome {
        request_read,
        ..outcome
    }
}

/// A body the client framed wrongly, made too large, or did not send in
/// time: logged as the client's, with the option to change when a limit
/// refused it.
fn log_body_failure(ctx: &RequestContext<'_>, conn: &Conn, e: &BodyError) {
    match e {
        BodyError::Refused(http) => info!(ctx.log, "request refused";
            "status" => http.status, "reason" => http.explain(&ctx.config.limits), "client" => %conn.origin),
        other => info!(ctx.log, "request body not received";
            "status" => other.status(), "reason" => %other, "client" => %conn.origin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts<'static> {
        Facts {
            app_raised: false,
            timed_out: false,
            on_wire: false,
            client_gone: false,
            refused: None,
            body_failed: None,
        }
    }

    #[test]
    fn an_interrupted_request_gets_a_504_before_its_response_began() {
        let f = Facts {
            app_raised: true,
            timed_out: true,
            ..facts()
        };
        assert_eq!(ending(f), (Ending::ErrorPage(504), Blame::Interrupted));
    }

    #[test]
    fn an_interrupted_response_that_began_is_cut_short() {
        let f = Facts {
            app_raised: true,
            timed_out: true,
            on_wire: true,
            ..facts()
        };
        assert_eq!(ending(f), (Ending::CutShort, Blame::Interrupted));
    }

    #[test]
    fn other_exceptions_are_still_the_applications_500() {
        let f = Facts {
            app_raised: true,
            ..facts()
        };
        assert_eq!(ending(f), (Ending::ErrorPage(500), Blame::Application));
    }

    #[test]
    fn a_request_that_caught_the_interrupt_and_answered_completes() {
        assert_eq!(ending(facts()), (Ending::Complete, Blame::Nobody));
    }
}
