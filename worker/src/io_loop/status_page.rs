//! `--server-status`, answered by the I/O thread without Python.

use super::IoLoop;
use crate::conn::Conn;

impl IoLoop<'_> {
    /// `--server-status`: the status page, for loopback clients only (as
    /// mod_wsgi-express allows it) after the trust rules, answered here
    /// without Python.
    pub(super) fn server_status(&self, conn: &mut Conn, head: &rwsgi_http::RequestHead) {
        let (status, kind, body) = if !self
            .ctx
            .proxy
            .allows_status_page(&conn.origin, &head.headers)
        {
            (
                403,
                "text/plain; charset=utf-8",
                "403 Forbidden\n".to_owned(),
            )
        } else {
            let s = rwsgi_shared::status::Status::read(
                self.ctx.scoreboard,
                rwsgi_shared::time::now_ms(),
            );
            if head.query.split('&').any(|p| p == "json") {
                (200, "application/json", format!("{}\n", s.json()))
            } else {
                (200, "text/html; charset=utf-8", s.html())
            }
        };
        let mut dates = rwsgi_http::DateCache::default();
        let out = rwsgi_http::closing_response(
            status,
            dates.now(),
            "Cache-Control: no-store\r\n",
            kind,
            body.as_bytes(),
            head.method != "HEAD",
        );
        // Best effort on the non-blocking socket: a status page is a few KiB.
        let _ = conn.transport.try_write(&[std::io::IoSlice::new(&out)]);
    }
}
