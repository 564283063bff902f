//! The validated server configuration.
//!
//! `rwsgi-conf` builds it from the command line and environment; the master
//! sends it to every worker as the first message on the channel, so both
//! sides act on exactly the same values.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How the entry point names the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppType {
    /// A WSGI script file, run as a uniquely named module (like mod_wsgi).
    Script,
    /// A dotted module path, optionally `module:callable`.
    Module,
    /// A PasteDeploy `.ini` file.
    Paste,
    /// No application: only the document root is served.
    Static,
}

impl AppType {
    pub fn as_str(self) -> &'static str {
        match self {
            AppType::Script => "script",
            AppType::Module => "module",
            AppType::Paste => "paste",
            AppType::Static => "static",
        }
    }
}

/// Output format of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// How much of a worker is made before the fork (`--preload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preload {
    /// Each worker is a fresh program that starts Python and imports the
    /// application itself.
    None,
    /// A template process starts Python once; workers are forked from it
    /// and import the application themselves. Safe for every application.
    #[default]
    Interpreter,
    /// The template imports the application too; workers are forked with
    /// it loaded (gunicorn's `--preload`, uWSGI's default). What the import
    /// opened (a database connection, a thread) is shared or lost.
    Application,
}

/// Minimum level of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// The application to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSpec {
    pub kind: AppType,
    /// Absolute path (script, paste) or dotted name (module); empty for static.
    pub entry_point: String,
    pub callable: String,
}

/// Paths the worker's interpreter needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonSpec {
    /// Directory the worker changes into; first on `sys.path`.
    pub working_directory: PathBuf,
    /// Extra `sys.path` entries (`--python-path`), in order.
    pub python_paths: Vec<PathBuf>,
    /// A virtual environment or Python installation (`--python-home`, `VIRTUAL_ENV`).
    pub python_home: Option<PathBuf>,
    /// Extra `environ` keys for every request: `--passenv` values read from
    /// the server's environment at start, then `--setenv` pairs, in order.
    #[serde(default)]
    pub environ: Vec<(String, String)>,
    /// `LC_ALL` for the worker (`--locale`); `None` keeps the inherited one,
    /// except that a C/POSIX locale is replaced by a UTF-8 one.
    #[serde(default)]
    pub locale: Option<String>,
    /// `LANG` for the worker (`--lang`); defaults like `locale`.
    #[serde(default)]
    pub lang: Option<String>,
    /// Replace the workers when a loaded module's file changes (`--reload-on-changes`).
    #[serde(default)]
    pub reload_on_changes: bool,
    /// `--disable-reloading`: a changed WSGI script file does not reload the
    /// workers either (mod_wsgi's `WSGIScriptReloading Off`).
    #[serde(default)]
    pub disable_reloading: bool,
    /// Warning filters (`--python-warnings`), as `python -W` takes them.
    #[serde(default)]
    pub warnoptions: Vec<String>,
    /// `sys.setswitchinterval` in microseconds (`--switch-interval`);
    /// `None` keeps Python's.
    #[serde(default)]
    pub switch_interval_us: Option<u64>,
}

/// The largest `--header-buffer-size`: a worker that drains hands an idle
/// connection back to the master with the head it has read so far, in one
/// channel message, so the channel's message size is derived from this
/// (`channel::MAX_MESSAGE`). 64 KiB, as uWSGI's largest buffer-size.
pub const MAX_HEADER_BUFFER: usize = 64 * 1024;

/// Request and head size limits enforced before the application sees anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest request body in bytes (`--limit-request-body`); 413 beyond.
    pub request_body: u64,
    /// Longest request line in bytes, CRLF excluded (`--limit-request-line`);
    /// 414 beyond. The default, 8190, is Apache's; RFC 9112 3 recommends
    /// accepting at least 8000.
    pub request_line: usize,
    /// Most header fields; 431 beyond.
    pub header_fields: usize,
    /// Largest single header field line, CRLF included (as gunicorn counts); 431 beyond.
    pub header_field_size: usize,
    /// Largest whole request head (`--header-buffer-size`); 431 beyond.
    pub header_buffer: usize,
    /// False with `--keep-alive-timeout 0`: every response closes its connection.
    #[serde(default = "keep_alive_default")]
    pub keep_alive: bool,
}

fn keep_alive_default() -> bool {
    true
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_body: 10 * 1024 * 1024,
            request_line: 8190,
            header_fields: 100,
            header_field_size: 8190,
            header_buffer: 32768,
            keep_alive: true,
        }
    }
}

/// Every timeout, in milliseconds. Each has exactly one owner (see the field docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Master: a worker must report ready within this.
    pub startup_ms: u64,
    /// Master: a stopping worker is killed after this.
    pub shutdown_ms: u64,
    /// Worker: in-flight requests may finish within this when draining.
    pub graceful_ms: u64,
    /// Master: a request running longer makes its worker dump stacks and recycle.
    pub request_ms: u64,
    /// Master: after SIGTERM, accept and serve this long before draining.
    #[serde(default)]
    pub shutdown_delay_ms: u64,
    /// Master: a worker without a heartbeat for this long is killed and
    /// replaced (`--deadlock-timeout`, mod_wsgi-express's name and default).
    #[serde(default = "default_deadlock_ms")]
    pub deadlock_ms: u64,
    /// Worker: a request waiting longer than this for a thread gets a 503.
    pub queue_ms: u64,
    /// Worker I/O thread: idle keep-alive connections are closed after this.
    pub keep_alive_ms: u64,
    /// Worker I/O thread: a request head must arrive within this.
    pub header_ms: u64,
    /// Worker request threads: one socket read or write may block this long.
    pub socket_ms: u64,
    /// Worker I/O thread: a trickling head is cut off after this.
    pub header_max_ms: u64,
    /// Bytes per second that extend the head deadline by a second each.
    pub header_min_rate: u64,
    /// Worker I/O thread (and a streamed body's reads): the body must
    /// arrive within this (extended by the rate).
    pub body_ms: u64,
    /// Cap on the body deadline; 0: none.
    pub body_max_ms: u64,
    pub body_min_rate: u64,
    /// Worker: when a request overruns `request_ms`, `mod_wsgi.RequestTimeout`
    /// is raised in its thread, which has this long to unwind (the client
    /// gets a 504) before the master recycles the worker; 0: no interrupt
    /// (`--interrupt-timeout`, mod_wsgi-express 6's name and default).
    #[serde(default)]
    pub interrupt_ms: u64,
    /// Worker and master: in-flight requests of a worker replaced by a
    /// reload (SIGUSR1, SIGHUP, --reload-on-changes) may finish within
    /// this (`--eviction-timeout`); 0: `graceful_ms`, as in mod_wsgi.
    #[serde(default)]
    pub eviction_ms: u64,
}

fn default_access_log_format() -> String {
    "combined".to_owned()
}

fn default_deadlock_ms() -> u64 {
    60_000
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            startup_ms: 15_000,
            shutdown_ms: 5_000,
            graceful_ms: 15_000,
            request_ms: 60_000,
            deadlock_ms: default_deadlock_ms(),
            shutdown_delay_ms: 0,
            queue_ms: 45_000,
            keep_alive_ms: 2_000,
            header_ms: 15_000,
            socket_ms: 60_000,
            header_max_ms: 30_000,
            header_min_rate: 500,
            body_ms: 15_000,
            body_max_ms: 120_000,
            body_min_rate: 500,
            interrupt_ms: 0,
            eviction_ms: 0,
        }
    }
}

impl Timeouts {
    /// How long a worker stopped by a reload has to finish its requests.
    pub fn eviction(&self) -> u64 {
        match self.eviction_ms {
            0 => self.graceful_ms,
            ms => ms,
        }
    }
}

/// When a worker is replaced by a fresh one (0 disables a trigger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Recycle {
    pub max_requests: u64,
    pub max_requests_jitter: u64,
    pub restart_interval_ms: u64,
    pub memory_limit_mb: u64,
    pub cpu_time_limit_s: u64,
    /// `--inactivity-timeout`: a worker that has served requests and then
    /// none for this long is replaced (its memory returned).
    #[serde(default)]
    pub inactivity_ms: u64,
}

/// `--url-alias URL-PATH PATH`: a file or a directory served at a URL prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlAlias {
    /// URL prefix without a trailing slash; "" for the whole site.
    pub url: String,
    /// Absolute path of the directory or single file.
    pub path: PathBuf,
}

/// Static files, answered by Rust code in the worker, never by Python.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticConfig {
    /// `--url-alias`, longest URL first.
    pub aliases: Vec<UrlAlias>,
    /// `--document-root`: an existing file is served, anything else goes to the app.
    pub document_root: Option<PathBuf>,
    /// `--directory-index`: the file a request for a directory gets.
    pub directory_index: Option<String>,
    /// `--application-type static`: no application, 404 for what is not a file.
    pub only_static: bool,
    /// `--static-max-age`: `Cache-Control: public, max-age=N`.
    pub max_age: Option<u64>,
    /// `--static-follow-symlinks`: serve symlinks that point outside their root.
    pub follow_symlinks: bool,
    /// `--static-allow-dotfiles`: serve names starting with '.'.
    pub allow_dotfiles: bool,
    /// `--compress-responses`: textual files without a precompressed
    /// sibling are compressed (once, then kept in memory).
    #[serde(default)]
    pub compress: bool,
    /// `--directory-listing`: a directory without an index file, where
    /// directories are the static files' (see `statics::listing`), gets an
    /// HTML listing (mod_autoindex's `Options +Indexes`).
    #[serde(default)]
    pub directory_listing: bool,
    /// `--error-document CODE DOCUMENT`: the page the server's own error
    /// responses with that status get (the last one given for a code wins).
    #[serde(default)]
    pub error_documents: Vec<ErrorDocument>,
    /// `--error-override`: the application's 4xx and 5xx responses are
    /// replaced by the server's error page for their status (mod_wsgi's
    /// `WSGIErrorOverride On`).
    #[serde(default)]
    pub error_override: bool,
    /// `--mime-types FILE`: extension (lower case, no dot) and type read
    /// from an Apache-style mime.types file; they come before the built-in
    /// table.
    #[serde(default)]
    pub mime_types: Vec<(String, String)>,
}

/// `--error-document CODE DOCUMENT`, classified as Apache's `ErrorDocument`
/// does (see `statics::error_documents::classify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDocument {
    /// A 4xx or 5xx status.
    pub status: u16,
    pub document: Document,
}

/// What an error response is replaced by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Document {
    /// A URL path served by the static files (checked at start): its
    /// contents, with the original status.
    Local(String),
    /// A full URL: a 302 to it.
    Redirect(String),
    /// Literal text (HTML), with the original status.
    Text(String),
}

/// Where the master serves its admin endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    /// Empty means all interfaces.
    pub host: String,
    pub port: u16,
    /// `--admin-status-public`: `/server-status` shows running requests'
    /// paths to clients not on this host too.
    #[serde(default)]
    pub status_public: bool,
}

/// The complete, validated configuration of one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerConfig {
    /// Address to bind; empty means all interfaces.
    pub host: String,
    pub port: u16,
    /// The admin listener (`--admin-port`, `--admin-host`), when enabled.
    #[serde(default)]
    pub admin: Option<Admin>,
    /// Name reported as `SERVER_NAME` when the request has no Host header.
    pub server_name: String,
    pub processes: usize,
    pub threads: usize,
    /// True when `--processes` was given (mod_wsgi reports `wsgi.multiprocess` then).
    pub multiprocess: bool,
    pub app: AppSpec,
    pub python: PythonSpec,
    /// URL prefix the application is mounted at (`SCRIPT_NAME`); "" for the root.
    pub mount_point: String,
    pub limits: Limits,
    /// `--chunked-request`: stream chunked bodies instead of spooling them.
    #[serde(default)]
    pub chunked_request: bool,
    /// `--preload`: what a template process prepares before workers fork.
    #[serde(default)]
    pub preload: Preload,
    pub timeouts: Timeouts,
    pub listen_backlog: i32,
    /// Connections held at once before the master stops accepting.
    pub max_clients: usize,
    pub recycle: Recycle,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub access_log: bool,
    /// `--server-status`: /server-status on the main port, loopback clients only.
    #[serde(default)]
    pub server_status: bool,
    /// `--trust-proxy-header` (see `rwsgi_http::forwarded`).
    #[serde(default)]
    pub trust_proxy_headers: Vec<String>,
    /// `--proxy-protocol`: every connection starts with a PROXY preamble.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// `--trust-proxy`: trusted peers; empty: every peer.
    #[serde(default)]
    pub trust_proxies: Vec<String>,
    /// `--access-log-format`: Apache directives, or `common` / `combined`.
    #[serde(default = "default_access_log_format")]
    pub access_log_format: String,
    /// `--request-id-header`: echo the request id in this response header.
    #[serde(default)]
    pub request_id_header: Option<String>,
    /// Static files (`--url-alias`, `--document-root`).
    #[serde(default)]
    pub statics: StaticConfig,
    /// mod_wsgi's auth and host-access scripts (`--auth-user-script`,
    /// `--host-access-script`); checked for every request, static files too.
    #[serde(default)]
    pub guard: GuardConfig,
    /// `--user`, `--group`: the identity the master takes after binding its
    /// listeners, before it starts any process that runs Python.
    #[serde(default)]
    pub run_as: Option<RunAs>,
    /// `--server-name` (with `--server-alias`, `--allow-localhost`): the
    /// Host names served; `None` when no server name was given (every Host).
    #[serde(default)]
    pub virtual_host: Option<VirtualHost>,
    /// Where the master writes its pid (`--pid-file`), removed at exit.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// Sourced by the master before it starts (`--envvars-script`).
    #[serde(default)]
    pub envvars_script: Option<PathBuf>,
    /// `--map-head-to-get On`: HEAD reaches the application as GET.
    #[serde(default)]
    pub map_head_to_get: bool,
    /// `--process-name`: the master's program name in `ps`.
    #[serde(default)]
    pub process_name: Option<String>,
    /// `--process-group`: workers show `(wsgi:NAME)` in `ps`.
    #[serde(default)]
    pub process_group: Option<String>,
    /// `--ignore-activity`: URL paths whose requests are no activity for
    /// `--inactivity-timeout` (see `ignores_activity`).
    #[serde(default)]
    pub ignore_activity: Vec<String>,
    /// `--https-port` and the `--ssl-*` options; `None`: plain HTTP only.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `--application-group`: the environ's `mod_wsgi.application_group`
    /// ("" for `%{GLOBAL}`, the main interpreter, where rwsgi always runs).
    #[serde(default)]
    pub application_group: String,
    /// `--compress-responses`: the application's textual responses are
    /// compressed when the client accepts it (see `http::coding`).
    #[serde(default)]
    pub compress_responses: bool,
    /// `--debug-mode` and the debugging aids that imply it
    /// (`--enable-debugger`, `--enable-coverage`, `--enable-profiler`,
    /// `--enable-recorder`); `None`: not in debug mode.
    #[serde(default)]
    pub debug: Option<DebugConfig>,
    /// `--slow-requests` (mod_wsgi 6's WSGISlowRequests): a request still
    /// running after this long is logged once with its Python stack, and
    /// goes on; 0: off. Owned by the worker's request watchdog.
    #[serde(default)]
    pub slow_request_ms: u64,
    /// `--proxy-mount-point`, `--proxy-virtual-host`, `--proxy-timeout`:
    /// the reverse proxy (validated by `rwsgi_http::proxy_pass::Table`).
    #[serde(default)]
    pub proxy_pass: ProxyPassConfig,
    /// `--service-script NAME SCRIPT-PATH` (with `--service-user`,
    /// `--service-group`, `--service-log-file`): supervised processes that
    /// run a Python script beside the workers (see `Service`).
    #[serde(default)]
    pub services: Vec<Service>,
    /// `--http2`: h2 by ALPN on the HTTPS port, h2c with prior knowledge
    /// on the plain port (see the worker's `h2` module).
    #[serde(default)]
    pub http2: bool,
    /// `--server-metrics`: `mod_wsgi.server_metrics()` returns the
    /// scoreboard as a dict (None without it, as in mod_wsgi).
    #[serde(default)]
    pub server_metrics: bool,
    /// `--telemetry-service unix:PATH` (mod_wsgi 6's WSGITelemetryService):
    /// each worker pushes mod_wsgi's telemetry datagrams there.
    #[serde(default)]
    pub telemetry: Option<TelemetryConfig>,
    /// `--enable-docs`: rwsgi's documentation at /__wsgi__/docs/, served
    /// without the application.
    #[serde(default)]
    pub enable_docs: bool,
    /// `--log-directory`, `--error-log-name`, `--access-log-name`,
    /// `--startup-log-name`, `--rotate-logs`: log files the master writes;
    /// `None`: everything goes to the terminal (standard error).
    #[serde(default)]
    pub log_files: Option<LogFiles>,
    /// `--python-eggs`: `PYTHON_EGG_CACHE` of every process started.
    #[serde(default)]
    pub python_eggs: Option<PathBuf>,
    /// `--receive-buffer-size`, `--send-buffer-size` (Apache's
    /// ReceiveBufferSize, SendBufferSize): SO_RCVBUF and SO_SNDBUF of the
    /// listening sockets, which accepted connections inherit; 0: the
    /// system's default.
    #[serde(default)]
    pub receive_buffer_size: u32,
    #[serde(default)]
    pub send_buffer_size: u32,
}

/// `--telemetry-service`, `--telemetry-interval`, `--telemetry-options`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelemetryConfig {
    /// The ingester's unix datagram socket (the PATH of `unix:PATH`).
    pub socket: PathBuf,
    /// Between two samples (at least 500 ms, as mod_wsgi requires).
    pub interval_ms: u64,
    /// `+CaptureUserAgent`: slow-request records carry the User-Agent.
    pub capture_user_agent: bool,
}

/// Log files (see the master's `log_files`): each path absolute; `None`:
/// that log goes to standard error as without log files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFiles {
    /// The master's, the workers' and the application's lines.
    pub error: Option<PathBuf>,
    /// The access records (`--access-log`); `Some` only with it.
    pub access: Option<PathBuf>,
    /// `--startup-log`: the master's lines until it serves.
    pub startup: Option<PathBuf>,
    /// `--rotate-logs`: each file is renamed NAME.1 (NAME.1 to NAME.2 …)
    /// when it would grow past `max_bytes`; `keep` renamed files are kept.
    pub rotate: Option<LogRotation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRotation {
    pub max_bytes: u64,
    pub keep: u32,
}

/// HTTPS (`--https-port` and the `--ssl-*` options of mod_wsgi-express).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsConfig {
    /// `--https-port`: where TLS connections are accepted.
    pub port: u16,
    /// `--ssl-certificate-file` (or `--ssl-certificate` + `.crt`).
    pub certificate: PathBuf,
    /// `--ssl-certificate-key-file` (or `--ssl-certificate` + `.key`).
    pub key: PathBuf,
    /// `--ssl-certificate-chain-file`.
    pub chain: Option<PathBuf>,
    /// `--ssl-ca-certificate-file`: client certificates are asked for and
    /// verified against these CAs.
    pub client_ca: Option<PathBuf>,
    /// Where a verified client certificate is required: `--ssl-verify-client`
    /// paths, or the whole site (`/`) with a CA file and no paths.
    pub verify_paths: Vec<String>,
    /// `--ssl-environment`: mod_ssl's `SSL_*` variables in the environ.
    pub environment: bool,
    /// `--https-only`: plain HTTP requests are redirected to HTTPS.
    pub https_only: bool,
    /// `--hsts-policy`: `Strict-Transport-Security` on HTTPS responses
    /// (with `--https-only`, as mod_wsgi-express).
    pub hsts: Option<String>,
}

/// mod_wsgi-express's debug mode: one process with one request thread, in
/// the foreground, with the terminal as its standard input and output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugConfig {
    /// `--enable-debugger`: pdb post-mortem on an exception the application raises.
    pub debugger: bool,
    /// `--debugger-startup`: pdb once the application is loaded, to set breakpoints.
    pub debugger_startup: bool,
    /// `--enable-coverage`: the coverage HTML report's directory, written at exit.
    pub coverage_directory: Option<PathBuf>,
    /// `--enable-profiler`: a cProfile dump per request in this directory.
    pub profiler_directory: Option<PathBuf>,
    /// `--enable-recorder`: each request and response recorded in this directory.
    pub recorder_directory: Option<PathBuf>,
}

/// The reverse proxy's routes, as given (checked at start).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyPassConfig {
    /// `--proxy-mount-point` (and `--proxy-url-alias`): (URL path, URL).
    pub mounts: Vec<(String, String)>,
    /// `--proxy-virtual-host`: (host name, URL).
    pub virtual_hosts: Vec<(String, String)>,
    /// `--proxy-timeout` (default `--socket-timeout`): connecting to a
    /// backend, and each wait on its socket.
    pub timeout_ms: u64,
}

/// One `--service-script`: mod_wsgi-express's managed service, a daemon
/// process group `service:NAME` of one process that imports the script
/// at start and lives until the server stops or reloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The service's name (letters, digits, `.`, `_`, `-`; at most
    /// [`SERVICE_NAME_MAX`] bytes).
    pub name: String,
    /// The script, absolute.
    pub script: PathBuf,
    /// `--service-user`/`--service-group`: who the process runs as;
    /// `None`: as the master (after `--user`).
    pub run_as: Option<RunAs>,
    /// `--service-log-file`: the process's stdout and stderr are appended
    /// to this file, absolute; `None`: the server's log.
    pub log_file: Option<PathBuf>,
}

/// The longest service name (it is kept in the service board).
pub const SERVICE_NAME_MAX: usize = 32;

/// Who the server runs as after start (`--user`, `--group`), looked up once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAs {
    /// How the user was named, for the log.
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// The passwd name whose supplementary groups are taken
    /// (`initgroups`); `None` (a `#UID` user): the group alone.
    pub login: Option<String>,
    /// The user's home directory, for `HOME` (as mod_wsgi sets it).
    pub home: Option<PathBuf>,
}

/// mod_wsgi-express's name-based virtual host (`--server-name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualHost {
    /// `--server-name`, lower case.
    pub name: String,
    /// `--server-alias` patterns (`*` and `?` wildcards), lower case.
    pub aliases: Vec<String>,
    /// `--allow-localhost`: clients on this host may use any Host.
    pub allow_localhost: bool,
}

impl ServerConfig {
    /// Encodes the configuration for the channel.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<ServerConfig, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Total number of requests that can run at once.
    pub fn capacity(&self) -> usize {
        self.processes * self.threads
    }
}

/// mod_wsgi-express's scripts that guard the whole site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardConfig {
    /// `--host-access-script`: `allow_access(environ, host)`.
    pub host_access_script: Option<PathBuf>,
    /// `--auth-user-script` and what goes with it.
    pub auth: Option<AuthConfig>,
}

impl GuardConfig {
    /// Whether every request (a static one too) must pass a script first.
    pub fn enabled(&self) -> bool {
        self.host_access_script.is_some() || self.auth.is_some()
    }
}

/// HTTP authentication by mod_wsgi's auth provider protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    /// `--auth-user-script`: `check_password` (Basic) or `get_realm_hash` (Digest).
    pub user_script: PathBuf,
    pub scheme: AuthScheme,
    /// `--auth-group-script`: `groups_for_user(environ, user)`.
    pub group_script: Option<PathBuf>,
    /// `--auth-group`: the group a user must be in (with a group script).
    pub group: String,
    /// The realm of the challenge: `host:port`, as mod_wsgi-express names it.
    pub realm: String,
    /// Digest: the key of this server's nonces, shared by its workers so a
    /// nonce one worker issued is good at another (hex; never logged).
    pub nonce_key: String,
}

/// `--auth-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    Basic,
    Digest,
}

impl AuthScheme {
    /// The scheme's name as in `AUTH_TYPE` and the challenge.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthScheme::Basic => "Basic",
            AuthScheme::Digest => "Digest",
        }
    }
}

/// `--ignore-activity`: whether a request for `path` is outside every
/// listed URL path. A URL path matches itself and what is below it, as
/// Apache's `<Location>` (mod_wsgi-express's WSGIIgnoreActivity) does:
/// `/health` matches `/health` and `/health/db`, not `/healthz`.
pub fn counts_as_activity(path: &str, ignored: &[String]) -> bool {
    !ignored.iter().any(|p| {
        path.strip_prefix(p.as_str())
            .is_some_and(|rest| rest.is_empty() || p.ends_with('/') || rest.starts_with('/'))
    })
}

#[cfg(test)]
mod activity_tests {
    use super::counts_as_activity;

    #[test]
    fn ignored_paths_match_themselves_and_below_as_apache_locations() {
        let ignored = ["/health".to_owned(), "/status/".to_owned()];
        assert!(!counts_as_activity("/health", &ignored));
        assert!(!counts_as_activity("/health/db", &ignored));
        assert!(counts_as_activity("/healthz", &ignored));
        assert!(!counts_as_activity("/status/x", &ignored));
        assert!(counts_as_activity("/status", &ignored));
        assert!(counts_as_activity("/", &ignored));
        assert!(counts_as_activity("/health", &[]));
    }
}
