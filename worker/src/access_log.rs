//! One access-log line per request, in Apache combined format, for
//! application and static responses alike.

use rwsgi_shared::http::RequestHead;
use slog::{info, Logger};
use std::net::IpAddr;
use std::time::Duration;

fn header(head: &RequestHead, name: &str) -> String {
    head.header(name)
        .map(|v| String::from_utf8_lossy(v).replace('"', "\\\""))
        .unwrap_or_else(|| "-".to_owned())
}

/// The line, without the time it took (a field of the record).
pub fn line(client: IpAddr, head: &RequestHead, status: u16, bytes: u64) -> String {
    format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
        client,
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
    )
}

pub fn write(
    log: &Logger,
    client: IpAddr,
    head: &RequestHead,
    status: u16,
    bytes: u64,
    took: Duration,
) {
    let line = line(client, head, status, bytes);
    info!(log, "{}", line; "source" => "access", "us" => took.as_micros() as u64);
}
