//! mod_wsgi's auth and host-access providers: `--host-access-script`,
//! `--auth-user-script` (Basic or Digest), `--auth-group-script`.
//!
//! The scripts run on a request thread, in the workers' interpreter, before
//! the application -- and before a static file, which the I/O thread then
//! sends here first (see `io_loop::reading::next`): they guard the whole site. Without
//! these options nothing here runs.

pub mod credentials;

use crate::conn::Conn;
use crate::wsgi::{self, Handled, RequestContext, User};
use credentials::NonceState;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyString};
use rwsgi_http::access_log::Record;
use rwsgi_http::{reason_phrase, BodyKind, DateCache, RequestHead, SERVER_HEADER};
use rwsgi_shared::config::{AuthConfig, AuthScheme};
use slog::{error, info};
use std::time::Instant;

/// What the scripts decided.
pub enum Verdict {
    Pass(Option<User>),
    Refuse(Refusal),
}

/// A response the guard sends instead of the site.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    /// `WWW-Authenticate` of a 401.
    pub challenge: Option<String>,
}

impl Refusal {
    fn status(status: u16) -> Refusal {
        Refusal {
            status,
            challenge: None,
        }
    }
}

/// Runs the scripts for one request (GIL held).
pub fn check(py: Python<'_>, ctx: &RequestContext<'_>, conn: &Conn, head: &RequestHead) -> Verdict {
    let scripts = &ctx.app.guard;
    let path_info = match wsgi::path_info(&head.path, &ctx.config.mount_point) {
        Ok(p) => p,
        Err(e) => return Verdict::Refuse(Refusal::status(e.status)),
    };
    let Ok(proxied) = ctx.proxy.apply(&conn.origin, &head.headers) else {
        return Verdict::Refuse(Refusal::status(400));
    };
    let environ = match wsgi::guard_environ(py, ctx, head, &path_info, &proxied) {
        Ok(env) => env,
        Err(e) => return failed(py, ctx, &e, "the environ for the auth scripts"),
    };
    if let Some(allow_access) = &scripts.allow_access {
        if let Err(refusal) = host_access(py, ctx, allow_access.bind(py), &environ, conn) {
            return Verdict::Refuse(refusal);
        }
    }
    let Some(auth) = &ctx.config.guard.auth else {
        return Verdict::Pass(None);
    };
    let Some(user_hook) = &scripts.user else {
        // Loaded with the application whenever the option is given.
        return Verdict::Refuse(Refusal::status(500));
    };
    let user = match authenticate(py, ctx, auth, user_hook.bind(py), &environ, conn, head) {
        Ok(user) => user,
        Err(refusal) => return Verdict::Refuse(refusal),
    };
    if let Some(groups) = &scripts.groups_for_user {
        if let Err(refusal) = in_group(py, ctx, auth, groups.bind(py), &environ, &user, conn) {
            return Verdict::Refuse(refusal);
        }
    }
    Verdict::Pass(Some(user))
}

/// `allow_access(environ, host)`: True or None lets the request through
/// (None: "no opinion", and no other rule follows here); False is a 403,
/// and so is anything else or an exception, as in mod_wsgi.
fn host_access(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    hook: &Bound<'_, PyAny>,
    environ: &Bound<'_, PyDict>,
    conn: &Conn,
) -> Result<(), Refusal> {
    let host = environ
        .get_item("REMOTE_ADDR")
        .ok()
        .flatten()
        .map(|h| h.to_string())
        .unwrap_or_else(|| conn.origin.client().ip().to_string());
    match hook.call1((environ, &host)) {
        Ok(r) if r.is_none() => Ok(()),
        Ok(r) => match r.cast::<PyBool>() {
            Ok(b) if b.is_true() => Ok(()),
            Ok(_) => {
                info!(ctx.log, "client denied by --host-access-script"; "host" => &host);
                Err(Refusal::status(403))
            }
            Err(_) => {
                error!(ctx.log, "--host-access-script: allow_access() must return True, False or None"; "returned" => r.to_string());
                Err(Refusal::status(403))
            }
        },
        Err(e) => Err(raised(
            py,
            ctx,
            &e,
            "--host-access-script: allow_access() raised:",
            403,
        )),
    }
}

fn challenge(auth: &AuthConfig, stale: bool) -> Refusal {
    let value = match auth.scheme {
        AuthScheme::Basic => credentials::basic_challenge(&auth.realm),
        AuthScheme::Digest => credentials::digest_challenge(
            &auth.realm,
            &credentials::make_nonce(&auth.nonce_key, &auth.realm, now_secs()),
            stale,
        ),
    };
    Refusal {
        status: 401,
        challenge: Some(value),
    }
}

/// Seconds of the system-wide monotonic clock: the same in every worker,
/// and never set back.
fn now_secs() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec().max(0) as u64)
        .unwrap_or(0)
}

fn authenticate(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    auth: &AuthConfig,
    hook: &Bound<'_, PyAny>,
    environ: &Bound<'_, PyDict>,
    conn: &Conn,
    head: &RequestHead,
) -> Result<User, Refusal> {
    let header = head.header("authorization").unwrap_or_default();
    match auth.scheme {
        AuthScheme::Basic => {
            let Some((user, password)) = credentials::basic(header) else {
                return Err(challenge(auth, false));
            };
            // check_password(environ, user, password): True, False, None
            // (unknown user) or a user name to use instead, as in mod_wsgi.
            let name = match hook.call1((environ, &user, password)) {
                Ok(r) if r.is_exact_instance_of::<PyBool>() => {
                    if r.cast::<PyBool>().is_ok_and(|b| b.is_true()) {
                        user
                    } else {
                        info!(ctx.log, "authentication failed: wrong password"; "user" => &user, "client" => %conn.origin);
                        return Err(challenge(auth, false));
                    }
                }
                Ok(r) if r.is_none() => {
                    info!(ctx.log, "authentication failed: unknown user"; "user" => &user, "client" => %conn.origin);
                    return Err(challenge(auth, false));
                }
                Ok(r) => match r.cast::<PyString>().ok().map(|s| s.to_string()) {
                    Some(name) if !name.is_empty() => name,
                    _ => {
                        error!(ctx.log, "--auth-user-script: check_password() must return True, False, None or a user name"; "returned" => r.to_string());
                        return Err(Refusal::status(500));
                    }
                },
                Err(e) => {
                    return Err(raised(
                        py,
                        ctx,
                        &e,
                        "--auth-user-script: check_password() raised:",
                        500,
                    ))
                }
            };
            Ok(User {
                name,
                scheme: AuthScheme::Basic,
            })
        }
        AuthScheme::Digest => digest(py, ctx, auth, hook, environ, conn, head, header),
    }
}

#[allow(clippy::too_many_arguments)]
fn digest(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    auth: &AuthConfig,
    hook: &Bound<'_, PyAny>,
    environ: &Bound<'_, PyDict>,
    conn: &Conn,
    head: &RequestHead,
    header: &[u8],
) -> Result<User, Refusal> {
    let Some(params) = credentials::digest(header) else {
        return Err(challenge(auth, false));
    };
    if let Err(why) = credentials::check_params(&params, &auth.realm, &head.target) {
        info!(ctx.log, "Digest authentication refused"; "why" => ?why, "user" => &params.username, "client" => %conn.origin);
        // Apache's mod_auth_digest: an answer for another URI is a bad request.
        return Err(match why {
            credentials::Malformed::Uri => Refusal::status(400),
            _ => challenge(auth, false),
        });
    }
    let nonce = credentials::check_nonce(&auth.nonce_key, &auth.realm, &params.nonce, now_secs());
    if nonce == NonceState::Forged {
        info!(ctx.log, "Digest authentication refused: not a nonce of this server"; "user" => &params.username, "client" => %conn.origin);
        return Err(challenge(auth, false));
    }
    // get_realm_hash(environ, user, realm): MD5("user:realm:password") in
    // hex, or None for an unknown user.
    let ha1 = match hook.call1((environ, &params.username, &auth.realm)) {
        Ok(r) if r.is_none() => {
            info!(ctx.log, "authentication failed: unknown user"; "user" => &params.username, "client" => %conn.origin);
            return Err(challenge(auth, false));
        }
        Ok(r) => {
            let text = if let Ok(b) = r.cast::<PyBytes>() {
                Some(String::from_utf8_lossy(b.as_bytes()).into_owned())
            } else {
                r.cast::<PyString>().ok().map(|s| s.to_string())
            };
            match text {
                Some(t) if !t.is_empty() => t.to_ascii_lowercase(),
                _ => {
                    error!(ctx.log, "--auth-user-script: get_realm_hash() must return a hex MD5 string or None"; "returned" => r.to_string());
                    return Err(Refusal::status(500));
                }
            }
        }
        Err(e) => {
            return Err(raised(
                py,
                ctx,
                &e,
                "--auth-user-script: get_realm_hash() raised:",
                500,
            ))
        }
    };
    let expected = credentials::expected_response(&ha1, &head.method, &params);
    if !credentials::same(
        expected.as_bytes(),
        params.response.to_ascii_lowercase().as_bytes(),
    ) {
        info!(ctx.log, "authentication failed: wrong password"; "user" => &params.username, "client" => %conn.origin);
        return Err(challenge(auth, false));
    }
    if nonce == NonceState::Stale {
        // The right password with an old nonce: the client retries at once.
        return Err(challenge(auth, true));
    }
    Ok(User {
        name: params.username,
        scheme: AuthScheme::Digest,
    })
}

/// `groups_for_user(environ, user)`: an iterable of group names (str or
/// bytes) that must hold `--auth-group`; otherwise a 401, as Apache answers
/// an authenticated user that authorization refuses.
fn in_group(
    py: Python<'_>,
    ctx: &RequestContext<'_>,
    auth: &AuthConfig,
    hook: &Bound<'_, PyAny>,
    environ: &Bound<'_, PyDict>,
    user: &User,
    conn: &Conn,
) -> Result<(), Refusal> {
    let groups = hook.call1((environ, &user.name)).and_then(|r| {
        let mut names = Vec::new();
        for item in r.try_iter()? {
            let item = item?;
            let name = match item.cast::<PyBytes>() {
                Ok(b) => String::from_utf8_lossy(b.as_bytes()).into_owned(),
                Err(_) => item.cast::<PyString>()?.to_string(),
            };
            names.push(name);
        }
        Ok(names)
    });
    match groups {
        Ok(names) if names.contains(&auth.group) => Ok(()),
        Ok(_) => {
            info!(ctx.log, "authorization failed: not in --auth-group"; "user" => &user.name, "group" => &auth.group, "client" => %conn.origin);
            Err(challenge(auth, false))
        }
        Err(e) => Err(raised(
            py,
            ctx,
            &e,
            "--auth-group-script: groups_for_user() must return an iterable of group names; it raised:",
            500,
        )),
    }
}

fn failed(py: Python<'_>, ctx: &RequestContext<'_>, e: &PyErr, what: &str) -> Verdict {
    Verdict::Refuse(raised(py, ctx, e, &format!("cannot build {what}:"), 500))
}

/// A script (or the server's own Python) raised: the traceback goes to the
/// log, the client gets `status` and nothing of the exception.
fn raised(py: Python<'_>, ctx: &RequestContext<'_>, e: &PyErr, what: &str, status: u16) -> Refusal {
    crate::python::log_exception(py, ctx.app.bootstrap.bind(py), e, ctx.log, what);
    Refusal::status(status)
}

/// The refusal as a response, logged like any request; the caller writes it
/// without the GIL. The connection stays open when no body is left unread
/// (a Digest client answers the challenge on it).
pub fn refuse(
    ctx: &RequestContext<'_>,
    mut conn: Conn,
    head: &RequestHead,
    refusal: &Refusal,
    queued_at: Instant,
) -> Handled {
    let keep_alive = head.keep_alive && matches!(head.body, BodyKind::Empty) && conn.buf.is_empty();
    let bytes = response(refusal, head, keep_alive);
    conn.served += 1;
    if let Some(sb) = ctx.scoreboard.worker(ctx.slot) {
        sb.metrics().refused(refusal.status);
    }
    if let Some(access) = ctx.access {
        let request_id = crate::request_id::of(head.header("x-request-id"));
        access.write(
            ctx.log,
            &Record {
                client: conn.origin.client().ip(),
                http2: conn.http2.is_some(),
                head,
                status: refusal.status,
                bytes: 0,
                took: queued_at.elapsed(),
                queue_wait: None,
                request_id: request_id.as_str(),
                response_headers: &[],
            },
        );
    }
    // A refused request's body (if any) was not read: its close lingers.
    let request_read = matches!(head.body, BodyKind::Empty);
    Handled {
        conn,
        unsent: bytes,
        keep_alive,
        request_read,
    }
}

fn response(refusal: &Refusal, head: &RequestHead, keep_alive: bool) -> Vec<u8> {
    let status = refusal.status;
    // --error-document: the configured page, the challenge kept (as Apache
    // keeps it for ErrorDocument 401).
    let challenge = refusal
        .challenge
        .as_ref()
        .map(|c| format!("WWW-Authenticate: {c}\r\n"));
    if let Some(page) = crate::error_pages::configured(
        status,
        head,
        keep_alive,
        challenge.as_deref().unwrap_or_default(),
    ) {
        return page;
    }
    let reason = reason_phrase(status);
    let body = format!("{status} {reason}\n");
    let mut dates = DateCache::default();
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: {SERVER_HEADER}\r\nDate: {}\r\n",
        dates.now()
    );
    if let Some(c) = &refusal.challenge {
        out.push_str(&format!("WWW-Authenticate: {c}\r\n"));
    }
    out.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    ));
    if head.method != "HEAD" {
        out.push_str(&body);
    }
    out.into_bytes()
}
