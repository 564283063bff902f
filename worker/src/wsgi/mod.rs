//! The WSGI side of a request (PEP 3333): environ, `wsgi.input`,
//! `start_response`, the response body. (`wsgi.errors` is the
//! interpreter's `python::ErrorStream`.)

mod call;
mod compression;
mod ending;
mod environ;
mod headers;
mod input;
mod lease;
mod response;

use crate::conn::Conn;
use crate::python::Application;
use crate::spool::Spooled;
pub use environ::{for_guard as guard_environ, path_info, template as environ_template};
use input::Input;
use lease::Lease;
use pyo3::prelude::*;
use response::StartResponse;
use rwsgi_http::access_log::Record;
use rwsgi_http::RequestHead;
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::scoreboard::Scoreboard;
use slog::{info, Logger};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a request thread needs, borrowed for its lifetime.
pub struct RequestContext<'a> {
    pub app: &'a Application,
    pub config: &'a ServerConfig,
    pub scoreboard: &'a Scoreboard,
    pub slot: usize,
    pub thread: usize,
    /// For routing a pipelined request (see `route`).
    pub files: &'a rwsgi_http::statics::StaticFiles,
    /// The lanes (see `guard`).
    pub statics: &'a crate::static_lanes::StaticLanes,
    /// `None` without `--access-log`.
    pub access: Option<&'a crate::access_log::AccessLog>,
    pub proxy: &'a rwsgi_http::forwarded::Rules,
    /// `None` without `--interrupt-timeout`.
    pub interrupts: Option<&'a crate::python::Interrupts>,
    /// `None` without `--telemetry-service`.
    pub telemetry: Option<&'a crate::telemetry::Reporter>,
    pub log: &'a Logger,
}

/// An authenticated user: `REMOTE_USER` and `AUTH_TYPE` of the environ
/// (`guard` finds it when its scripts authenticate the request).
pub struct User {
    pub name: String,
    pub scheme: rwsgi_shared::config::AuthScheme,
}

/// A request whose application part is done.
pub struct Handled {
    pub conn: Conn,
    /// Response bytes still to be written (without the GIL).
    pub unsent: Vec<u8>,
    /// Whether the connection may serve another request afterwards.
    pub keep_alive: bool,
    /// Every byte of the request (head and body) was read, and nothing
    /// after it: a close cannot throw the response away with a reset.
    pub request_read: bool,
}

/// Creates the Python types requests use (`wsgi.input`, `start_response`),
/// which pyo3 otherwise makes on first use: made in the template, they are
/// shared by every worker forked from it instead of built in each.
pub fn create_types(py: Python<'_>) {
    py.get_type::<Input>();
    py.get_type::<StartResponse>();
}

/// Runs one request with the GIL held; the caller writes `unsent`.
pub fn handle(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    mut conn: Conn,
    head: RequestHead,
    body: Option<Spooled>,
    queued_at: Instant,
    user: Option<&User>,
) -> Handled {
    let sb = ctx.scoreboard.worker(ctx.slot);
    // The list is usually empty: then nothing is compared.
    let activity = ctx.config.ignore_activity.is_empty()
        || rwsgi_shared::config::counts_as_activity(&head.path, &ctx.config.ignore_activity);
    if let Some(sb) = sb {
        sb.begin_request(ctx.thread, &head.method, &head.path, conn.origin.client());
        if activity {
            sb.begin_activity();
        }
    }
    let started = Instant::now();
    // The start the scoreboard shows, which telemetry keys slow requests by.
    let started_ms = sb
        .and_then(|sb| sb.thread(ctx.thread))
        .map_or(0, |t| t.request_started_ms());
    let queued = started.saturating_duration_since(queued_at);
    let request_id = crate::request_id::of(head.header("x-request-id"));
    if let Some(i) = ctx.interrupts {
        i.begin(py, ctx.thread, request_id.as_str());
    }
    let result = run(py, ctx, &mut conn, &head, body, request_id.as_str(), user);
    if let Some(i) = ctx.interrupts {
        i.end(py, ctx.thread);
    }
    let took = started.elapsed();
    if let Some(sb) = sb {
        if activity {
            sb.end_activity();
        }
        sb.end_request(ctx.thread);
        let m = sb.metrics();
        if result.server_refusal {
            m.refused(result.status);
        } else {
            m.request(&head.method, result.status, micros(took), micros(queued));
        }
    }
    if let Some(t) = ctx.telemetry {
        t.request_ended(&crate::telemetry::Completed {
            thread: ctx.thread,
            started_ms,
            took,
            queued,
            status: result.status,
            head: &head,
            conn: &conn,
        });
    }
    conn.served += 1;
    if let Some(access) = ctx.access {
        access.write(
            ctx.log,
            &Record {
                client: conn.origin.client().ip(),
                http2: conn.http2.is_some(),
                head: &head,
                status: result.status,
                bytes: result.body_bytes,
                took,
                queue_wait: Some(queued),
                request_id: request_id.as_str(),
                response_headers: &result.response_headers,
            },
        );
    }
    Handled {
        conn,
        unsent: result.unsent,
        keep_alive: result.keep_alive,
        request_read: result.request_read,
    }
}

/// How a request ended, for the connection, the access log and the metrics.
struct Outcome {
    status: u16,
    body_bytes: u64,
    keep_alive: bool,
    unsent: Vec<u8>,
    /// The server refused the request (its body) without the application.
    server_refusal: bool,
    /// The request's body was read to its end (see `Handled`).
    request_read: bool,
    /// The response's headers, kept only when the access log shows some.
    response_headers: Vec<(String, String)>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One request through the application: what the server checks and
/// prepares first, the call (`call`), then its ending (`ending`).
fn run(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    conn: &mut Conn,
    head: &RequestHead,
    body: Option<Spooled>,
    request_id: &str,
    user: Option<&User>,
) -> Outcome {
    let prepared = match prepare(py, ctx, conn, head, body, request_id) {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let raised = call::call_app(py, ctx, head, &prepared, request_id, user);
    ending::respond(py, ctx, conn, head, prepared, raised)
}

/// What the server makes of a request before the application sees it.
struct Prepared {
    /// An HTTPS request: what its handshake established.
    tls: Option<Arc<rwsgi_http::tls::Facts>>,
    /// The request came over HTTP/2 (`Conn::http2`).
    http2: bool,
    path_info: String,
    /// The client and scheme after the trusted proxy headers.
    proxied: rwsgi_http::forwarded::Adjusted,
    /// The connection's socket, lent to `input` and `response` until the
    /// request ends.
    lease: Arc<Lease>,
    input: Py<Input>,
    response: Py<StartResponse>,
}

/// What the application (or its iterable, or `close()`) raised, with what
/// it was doing; usually empty, which allocates nothing.
type Raised = Vec<(PyErr, String)>;

/// Checks the path and the proxy headers, and makes `wsgi.input` and
/// `start_response` on a lease of the socket; a refusal is its outcome.
fn prepare(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    conn: &mut Conn,
    head: &RequestHead,
    body: Option<Spooled>,
    request_id: &str,
) -> Result<Prepared, Outcome> {
    let timeout = Duration::from_millis(ctx.config.timeouts.socket_ms);
    let limits = &ctx.config.limits;
    let path_info = match environ::path_info(&head.path, &ctx.config.mount_point) {
        Ok(p) => p,
        Err(e) => return Err(error_page(e.status, head)),
    };
    // Trusted proxy headers: an invalid value is the proxy's error, refused
    // before the body is read or the application called.
    let mut proxied = match ctx.proxy.apply(&conn.origin, &head.headers) {
        Ok(p) => p,
        Err(e) => {
            info!(ctx.log, "request refused"; "status" => 400, "reason" => %e, "client" => %conn.origin);
            return Err(Outcome {
                server_refusal: true,
                request_read: false,
                ..error_page(400, head)
            });
        }
    };
    if let (Some(_), Some(tls)) = (&conn.tls, &ctx.config.tls) {
        environ::over_tls(&mut proxied, head, tls.port);
    }
    let lease = Arc::new(Lease::new(&mut conn.transport));
    let input = match body {
        // Received by the I/O thread: nothing here waits on the client.
        Some(body) => Input::spooled(
            Arc::clone(&lease),
            body,
            std::mem::take(&mut conn.buf),
            limits,
            &ctx.config.timeouts,
        ),
        // No body, one that came whole with its head, or a chunked body the
        // application streams (--chunked-request).
        None => Input::new(
            Arc::clone(&lease),
            std::mem::take(&mut conn.buf),
            head,
            limits,
            &ctx.config.timeouts,
        ),
    };
    let mut echo: Vec<(String, String)> = ctx
        .config
        .request_id_header
        .as_ref()
        .map(|name| (name.clone(), request_id.to_owned()))
        .into_iter()
        .collect();
    if let (Some(_), Some(policy)) = (&conn.tls, crate::tls::hsts(ctx.config)) {
        echo.push(("Strict-Transport-Security".to_owned(), policy.to_owned()));
    }
    let response = StartResponse::new(
        Arc::clone(&lease),
        head,
        timeout,
        echo,
        ctx.config.compress_responses,
    );
    match (Py::new(py, input), Py::new(py, response)) {
        (Ok(input), Ok(response)) => Ok(Prepared {
            tls: conn.tls.clone(),
            http2: conn.http2.is_some(),
            path_info,
            proxied,
            lease,
            input,
            response,
        }),
        _ => {
            lease.revoke(py, &mut conn.transport);
            Err(error_page(500, head))
        }
    }
}

/// A response the server makes itself; the connection is closed after it.
fn error_page(status: u16, head: &RequestHead) -> Outcome {
    // The --error-document for the status, or the default page.
    let page = crate::error_pages::response(status, Some(head), false);
    Outcome {
        status: page.status,
        body_bytes: page.body_len,
        keep_alive: false,
        unsent: page.bytes,
        server_refusal: false,
        request_read: false,
        response_headers: Vec::new(),
    }
}

/// Logs an application exception with its traceback.
pub(super) fn log_error(py: Python<'_>, ctx: &RequestContext<'_>, e: &PyErr, what: &str) {
    crate::python::log_exception(py, ctx.app.bootstrap.bind(py), e, ctx.log, what);
}
