//! Where the next request on a connection goes: the one place request
//! heads are parsed and routed, used alike by the I/O thread, the request
//! threads (a pipelined request found after a response) and the static
//! lanes (the next request on a kept-alive connection). A thread that
//! routes a head it does not serve hands it back routed
//! (`handoff::Returned::Routed`): each head is parsed once.

use crate::host_gate::{Gate, Verdict, FORBIDDEN, NO_CERTIFICATE};
use rwsgi_http::proxy_pass::Target;
use rwsgi_http::statics::{Resolution, StaticFiles};
use rwsgi_http::{parse_request_head, HttpError, Parsed, RequestHead};
use rwsgi_shared::config::Limits;

/// What the bytes received so far on a connection are.
#[derive(Debug)]
pub enum Routed {
    /// Not a complete head yet.
    Partial,
    /// A head the parser refuses, or a Host the site does not serve
    /// (`--server-name`): answered with this error, then closed.
    Refused(HttpError),
    /// The parent domain of a `www.` server name: a 301 to this URL, then
    /// the connection is closed.
    Redirect(String),
    /// A request for the application; `used` bytes of the buffer are its head.
    App(RequestHead, usize),
    /// A request for the static files (with what was found on disk, when
    /// routing needed to look: `--document-root` serves existing files only).
    Static(RequestHead, usize, Option<Resolution>),
    /// A request for another HTTP server (`--proxy-mount-point`,
    /// `--proxy-virtual-host`): relayed by `proxy_pass`, never by Python.
    Proxy(RequestHead, usize, Target),
}

pub fn route(buf: &[u8], limits: &Limits, files: &StaticFiles, gate: &Gate<'_>) -> Routed {
    let (mut head, used) = match parse_request_head(buf, limits) {
        Ok(Parsed::Complete(head, used)) => (head, used),
        Ok(Parsed::Partial) => return Routed::Partial,
        Err(e) => return Routed::Refused(e),
    };
    // `--keep-alive-timeout 0`: answered with Connection: close.
    head.keep_alive &= limits.keep_alive;
    // A proxied host name is a virtual host of its own, picked before
    // this site's rules (as Apache picks the virtual host first).
    let proxies = crate::proxy_pass::table();
    if let Some(target) = proxies.and_then(|t| t.by_host(&head)) {
        return Routed::Proxy(head, used, target);
    }
    // Before anything else looks at the request: a Host the site does not
    // serve reaches neither the static files nor the application.
    match gate.check(&head) {
        Verdict::Serve => {}
        Verdict::Forbidden => return Routed::Refused(FORBIDDEN),
        Verdict::NoCertificate => return Routed::Refused(NO_CERTIFICATE),
        Verdict::Redirect(to) => return Routed::Redirect(to),
    }
    // mod_proxy maps URLs before aliases and the application do.
    if let Some(target) = proxies.and_then(|t| t.by_path(&head)) {
        return Routed::Proxy(head, used, target);
    }
    if !files.enabled() {
        return Routed::App(head, used);
    }
    if files.claims(&head) {
        return Routed::Static(head, used, None);
    }
    match files.resolve(&head) {
        Resolution::NotStatic => Routed::App(head, used),
        found => Routed::Static(head, used, Some(found)),
    }
}
