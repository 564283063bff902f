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
    /// The access log has a file of its own (`--log-directory`,
    /// `--access-log-name`): records are marked for the master's log-file
    /// reader, text ones as bare lines (what log analysers read), JSON
    /// ones through `json_to_file`.
    pub own_file: bool,
    pub json_to_file: Option<Logger>,
}

impl AccessLog {
    /// `slot`: the worker's, for the JSON records' `worker` field.
    pub fn new(
        spec: &str,
        log_format: LogFormat,
        own_file: bool,
        slot: usize,
    ) -> Result<AccessLog, String> {
        let json = log_format == LogFormat::Json;
        Ok(AccessLog {
            format: Format::parse(spec)?,
            json,
            own_file,
            json_to_file: (own_file && json).then(|| {
                rwsgi_shared::log::access_logger()
                    .new(slog::o!("worker" => slot, "pid" => std::process::id()))
            }),
        })
    }

    pub fn write(&self, log: &Logger, r: &Record<'_>) {
        if !self.json {
            let line = self.format.render(r);
            if self.own_file {
                let mut record = line.into_bytes();
                record.push(b'\n');
                // Nowhere better to say that a log write failed.
                let _ = rwsgi_shared::log::write_access_record(&record, LogFormat::Text);
                return;
            }
            info!(log, "{}", line; "source" => "access", "us" => r.took.as_micros() as u64);
            return;
        }
        let log = self.json_to_file.as_ref().unwrap_or(log);
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
