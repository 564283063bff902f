//! One access-log record per request, for application and static
//! responses alike: an Apache-format line (`--access-log-format`) with the
//! text log, a record of typed fields with `--log-format json`.

use rwsgi_http::access_log::{Format, Record};
use rwsgi_shared::config::LogFormat;
use slog::{info, Logger};

/// Where access records go, and in which form.
pub struct AccessLog {
    pub format: Format,
    pub json: bool,
}

impl AccessLog {
    pub fn new(spec: &str, log_format: LogFormat) -> Result<AccessLog, String> {
        Ok(AccessLog {
            format: Format::parse(spec)?,
            json: log_format == LogFormat::Json,
        })
    }

    pub fn write(&self, log: &Logger, r: &Record<'_>) {
        if !self.json {
            let line = self.format.render(r);
            info!(log, "{}", line; "source" => "access", "us" => r.took.as_micros() as u64);
            return;
        }
        // Fields, escaped by the JSON encoder; header values as latin-1 text.
        let text = |v: Option<&[u8]>| v.map(|v| v.iter().map(|&b| b as char).collect::<String>());
        info!(log, "access";
            "source" => "access",
            "remote_addr" => %r.client,
            "method" => &r.head.method,
            "path" => &r.head.path,
            "query" => &r.head.query,
            "protocol" => r.protocol(),
            "status" => r.status,
            "bytes" => r.bytes,
            "duration_us" => r.took.as_micros() as u64,
            "queue_wait_us" => r.queue_wait.map(|q| q.as_micros() as u64),
            "user_agent" => text(r.head.header("user-agent")),
            "referer" => text(r.head.header("referer")),
            "request_id" => r.request_id,
        );
    }
}
