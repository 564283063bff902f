//! One access-log line per request, in Apache combined format.

use crate::conn::Conn;
use rwsgi_shared::http::RequestHead;
use slog::{info, Logger};
use std::time::Duration;

fn header(head: &RequestHead, name: &str) -> String {
    head.header(name)
        .map(|v| String::from_utf8_lossy(v).replace('"', "\\\""))
        .unwrap_or_else(|| "-".to_owned())
}

pub fn write(
    log: &Logger,
    conn: &Conn,
    head: &RequestHead,
    status: u16,
    bytes: u64,
    took: Duration,
) {
    let line = format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
        conn.peer.ip(),
        rwsgi_shared::time::apache_now(),
        head.method,
        head.target,
        head.version.as_str(),
        status,
        if bytes == 0 {
            "-".to_owned()
        } else {
            bytes.to_string()
        },
        header(head, "referer"),
        header(head, "user-agent"),
    );
    info!(log, "{}", line; "source" => "access", "us" => took.as_micros() as u64);
}
