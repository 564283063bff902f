//! The option model, with mod_wsgi-express's names and defaults.
//!
//! Every option can also be set with an `RWSGI_<NAME>` environment variable,
//! the container convention (`RWSGI_PROCESSES=4`).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

mod values;

use values::parse_processes;
pub use values::*;

#[derive(Debug, Parser)]
#[command(
    name = "rwsgi",
    version,
    about = "A production server for Python WSGI applications, made for containers.",
    long_about = "A production server for Python WSGI applications, made for containers.\n\n\
        Its command line speaks mod_wsgi-express's language:\n\n    \
        rwsgi start-server wsgi.py\n    \
        rwsgi start-server --processes 2 --threads 4 --port 8000 wsgi.py\n    \
        rwsgi start-server --application-type module example.wsgi\n\n\
        Every option can also come from an RWSGI_<NAME> environment variable\n\
        (for example RWSGI_PROCESSES=4)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server on a WSGI application.
    StartServer(Box<StartServer>),
    /// Check the options and write SERVER-ROOT/apachectl, a control script
    /// that runs the server with them later (`apachectl start`, `stop`,
    /// `graceful`, ...), as mod_wsgi-express's setup-server does.
    SetupServer(Box<StartServer>),
    /// Show the workers and running requests of a running server (from its scoreboard).
    Status(Status),
}

#[derive(Debug, Clone, Args)]
pub struct Status {
    /// Process id of the rwsgi master (default: the only one running).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Print JSON (workers, threads, running requests, and the metrics).
    #[arg(long)]
    pub json: bool,
}

/// The examples under `start-server --help`.
pub const EXAMPLES: &str = "Examples:\n  rwsgi start-server wsgi.py\n  \
    rwsgi start-server --processes 2 --threads 4 wsgi.py\n  \
    rwsgi start-server --working-directory example --application-type module example.wsgi";

#[derive(Debug, Clone, Args)]
#[command(
    about = "Start the server on a WSGI application",
    after_help = EXAMPLES,
    // optparse's rules, which mod_wsgi-express command lines rely on: the
    // last of a repeated option wins, and an unambiguous prefix names one.
    args_override_self = true,
    infer_long_args = true
)]
pub struct StartServer {
    /// The application: a WSGI script file, a module path or a Paste .ini
    /// file. Without one, a default page is served (as mod_wsgi-express does).
    #[arg(value_name = "ENTRY_POINT", env = "RWSGI_ENTRY_POINT")]
    pub entry_point_positional: Option<String>,

    /// The application (same as the positional ENTRY_POINT; wins over it).
    #[arg(long, value_name = "FILE-PATH|MODULE")]
    pub entry_point: Option<String>,

    /// How ENTRY_POINT names the application.
    #[arg(
        long,
        value_enum,
        default_value = "script",
        env = "RWSGI_APPLICATION_TYPE"
    )]
    pub application_type: ApplicationType,

    /// Name of the WSGI callable in the application.
    #[arg(long, default_value = "application", env = "RWSGI_CALLABLE_OBJECT")]
    pub callable_object: String,

    /// Interface to listen on (default: all interfaces).
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        env = "RWSGI_HOST"
    )]
    pub host: String,

    /// Port to listen on.
    #[arg(long, default_value_t = 8000, env = "RWSGI_PORT")]
    pub port: u16,

    /// Trust this proxy header (repeatable): X-Forwarded-For, X-Real-IP,
    /// X-Client-IP, X-Forwarded-Proto, X-Forwarded-Scheme, X-Scheme,
    /// X-Forwarded-Ssl, X-Forwarded-HTTPS, X-HTTPS, X-Forwarded-Host,
    /// X-Host, X-Forwarded-Server, X-Forwarded-Port, X-Script-Name,
    /// X-Forwarded-Script-Name, X-Forwarded-Prefix, Forwarded. From a
    /// trusted peer it sets REMOTE_ADDR, wsgi.url_scheme, HTTP_HOST,
    /// SERVER_NAME, SERVER_PORT or SCRIPT_NAME; from any other peer its
    /// group of headers is removed.
    #[arg(
        long = "trust-proxy-header",
        value_name = "HEADER",
        env = "RWSGI_TRUST_PROXY_HEADER",
        value_delimiter = ','
    )]
    pub trust_proxy_headers: Vec<String>,

    /// Every connection starts with HAProxy's PROXY protocol preamble (v1
    /// or v2), which names the client (REMOTE_ADDR, REMOTE_PORT); one
    /// without it is refused, and so is one from a peer --trust-proxy does
    /// not name. For a load balancer using send-proxy.
    #[arg(long, env = "RWSGI_PROXY_PROTOCOL")]
    pub proxy_protocol: bool,

    /// A proxy (address or CIDR range, repeatable) whose proxy headers and
    /// PROXY preamble are trusted. Without it, every peer is (as in mod_wsgi).
    #[arg(
        long = "trust-proxy",
        value_name = "ADDRESS",
        env = "RWSGI_TRUST_PROXY",
        value_delimiter = ','
    )]
    pub trust_proxies: Vec<String>,

    /// Serve /server-status on the main port too (mod_wsgi-express's
    /// option), to clients on the loopback address only; answered without
    /// Python, like the admin listener's.
    #[arg(long, env = "RWSGI_SERVER_STATUS")]
    pub server_status: bool,

    /// Port of the admin listener, served by the master without Python:
    /// /healthz, /readyz, /metrics (Prometheus), /server-status (?json).
    /// Off unless given; 0 lets the kernel choose (logged).
    #[arg(long, env = "RWSGI_ADMIN_PORT")]
    pub admin_port: Option<u16>,

    /// Address of the admin listener (default: the same as --host, so
    /// probes and scrapers reach it in a container). Whoever reaches it
    /// sees health, counts and PIDs; the paths of running requests only
    /// from this host (see --admin-status-public).
    #[arg(long, env = "RWSGI_ADMIN_HOST")]
    pub admin_host: Option<String>,

    /// Show the paths of running requests on the admin /server-status to
    /// clients not on this host too (by default only loopback clients see
    /// them: a path can carry a secret). Restrict who reaches the admin
    /// port first (a Kubernetes NetworkPolicy).
    #[arg(long, env = "RWSGI_ADMIN_STATUS_PUBLIC")]
    pub admin_status_public: bool,

    /// The site's host name: requests for other Hosts get 403 (see
    /// --server-alias, --allow-localhost); a www. name also gets its parent
    /// domain redirected to it. Reported as SERVER_NAME without a Host header.
    #[arg(long, value_name = "HOSTNAME", env = "RWSGI_SERVER_NAME")]
    pub server_name: Option<String>,

    /// Number of worker processes (1 to 64), or `auto`: one per CPU the
    /// container's cgroup quota and the CPU affinity allow.
    #[arg(long, env = "RWSGI_PROCESSES", value_parser = parse_processes)]
    pub processes: Option<Processes>,

    /// Number of request threads in each worker process.
    #[arg(long, default_value_t = 5, env = "RWSGI_THREADS", value_parser = clap::value_parser!(u32).range(1..=MAX_THREADS as i64))]
    pub threads: u32,

    /// Directory the application runs in; also put first on sys.path.
    #[arg(long, env = "RWSGI_WORKING_DIRECTORY")]
    pub working_directory: Option<PathBuf>,

    /// Extra directory for sys.path (repeatable).
    #[arg(long = "python-path", value_name = "DIRECTORY-PATH")]
    pub python_paths: Vec<PathBuf>,

    /// Python installation or virtual environment to use (default: $VIRTUAL_ENV).
    #[arg(long, env = "RWSGI_PYTHON_HOME")]
    pub python_home: Option<PathBuf>,

    /// URL prefix the application is mounted at (SCRIPT_NAME).
    #[arg(long, default_value = "/", env = "RWSGI_MOUNT_POINT")]
    pub mount_point: String,

    /// Seconds a request may run before its worker is recycled (with
    /// --interrupt-timeout, before the request is interrupted first).
    #[arg(long, default_value_t = 60.0, env = "RWSGI_REQUEST_TIMEOUT")]
    pub request_timeout: f64,

    /// When a request overruns --request-timeout, raise
    /// mod_wsgi.RequestTimeout (also rwsgi.RequestTimeout, a BaseException)
    /// in its thread. If it unwinds within this many seconds the client
    /// gets a 504 and the worker serves on; otherwise (the thread caught
    /// it, or is stuck in C code) the worker is recycled as without it.
    /// 0 (the default, as in mod_wsgi-express 6): no interrupt.
    #[arg(long, default_value_t = 0.0, env = "RWSGI_INTERRUPT_TIMEOUT")]
    pub interrupt_timeout: f64,

    /// Seconds a worker has to start and load the application.
    #[arg(long, default_value_t = 15.0, env = "RWSGI_STARTUP_TIMEOUT")]
    pub startup_timeout: f64,

    /// Seconds a worker may go without a heartbeat (its I/O thread stuck,
    /// C code holding the GIL, the process stopped) before its stacks are
    /// dumped and it is killed and replaced. After 2 s without one it
    /// already gets no new connections.
    #[arg(long, default_value_t = 60.0, env = "RWSGI_DEADLOCK_TIMEOUT")]
    pub deadlock_timeout: f64,

    /// On SIGTERM, seconds to go on accepting and serving (with /readyz
    /// already 503) before draining: the time a load balancer or Kubernetes
    /// needs to stop sending new requests. A second SIGTERM, or SIGINT,
    /// skips it.
    #[arg(long, default_value_t = 0.0, env = "RWSGI_SHUTDOWN_DELAY")]
    pub shutdown_delay: f64,

    /// Seconds a stopping worker may take to finish its requests.
    #[arg(long, default_value_t = 15.0, env = "RWSGI_GRACEFUL_TIMEOUT")]
    pub graceful_timeout: f64,

    /// Seconds after which a stopping worker is killed.
    #[arg(long, default_value_t = 5.0, env = "RWSGI_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: f64,

    /// Seconds a request may wait for a free thread before a 503.
    #[arg(long, default_value_t = 45.0, env = "RWSGI_QUEUE_TIMEOUT")]
    pub queue_timeout: f64,

    /// Seconds an idle keep-alive connection is kept open; 0: no keep-alive
    /// (every response closes its connection).
    #[arg(long, default_value_t = 2.0, env = "RWSGI_KEEP_ALIVE_TIMEOUT")]
    pub keep_alive_timeout: f64,

    /// Seconds a client has to send a complete request head.
    #[arg(long, default_value_t = 15.0, env = "RWSGI_HEADER_TIMEOUT")]
    pub header_timeout: f64,

    /// Seconds one socket read or write may block.
    #[arg(long, default_value_t = 60.0, env = "RWSGI_SOCKET_TIMEOUT")]
    pub socket_timeout: f64,

    /// Longest time for a request head, however fast it trickles in (slow-client protection).
    #[arg(long, default_value_t = 30.0, env = "RWSGI_HEADER_MAX_TIMEOUT")]
    pub header_max_timeout: f64,

    /// Bytes per second that extend --header-timeout by one second each (up to --header-max-timeout).
    #[arg(long, default_value_t = 500, env = "RWSGI_HEADER_MIN_RATE")]
    pub header_min_rate: u64,

    /// Seconds to receive the request body, extended by --body-min-rate.
    #[arg(long, default_value_t = 15.0, env = "RWSGI_BODY_TIMEOUT")]
    pub body_timeout: f64,

    /// Longest time for a request body, however fast it trickles in
    /// (0: no cap beyond --body-timeout and --body-min-rate). rwsgi
    /// receives a body before the application runs, without a Python thread.
    #[arg(long, default_value_t = 120.0, env = "RWSGI_BODY_MAX_TIMEOUT")]
    pub body_max_timeout: f64,

    /// Bytes per second that extend --body-timeout by one second each.
    #[arg(long, default_value_t = 500, env = "RWSGI_BODY_MIN_RATE")]
    pub body_min_rate: u64,

    /// Largest request body in bytes (413 beyond); 0: no limit.
    #[arg(long, default_value_t = 10_485_760, env = "RWSGI_LIMIT_REQUEST_BODY")]
    pub limit_request_body: u64,

    /// Stream chunked request bodies to the application as they arrive,
    /// without CONTENT_LENGTH (it reads `wsgi.input` to its end). Without
    /// it, a chunked body is received whole first and presented with its
    /// CONTENT_LENGTH, which is what Django, Flask and most frameworks read.
    /// With it, the application's thread waits for the client as the body
    /// arrives, so a slow client can hold it.
    #[arg(long, env = "RWSGI_CHUNKED_REQUEST")]
    pub chunked_request: bool,

    /// What is made once, before worker processes are forked from it:
    /// `interpreter` (default) starts Python in a template process, so
    /// workers share its memory and a replacement is ready in
    /// milliseconds; `application` also imports the application there
    /// (alone: `--preload`), sharing more, but whatever the import opened
    /// (database connections, threads, random state) is shared or lost;
    /// `none` starts every worker from scratch.
    #[arg(long, value_enum, default_value = "interpreter", num_args = 0..=1,
          default_missing_value = "application", env = "RWSGI_PRELOAD")]
    pub preload: PreloadArg,

    /// Longest request line in bytes, CRLF excluded (414 beyond).
    #[arg(long, default_value_t = 8190, env = "RWSGI_LIMIT_REQUEST_LINE")]
    pub limit_request_line: usize,

    /// Most header fields in a request (431 beyond).
    #[arg(long, default_value_t = 100, env = "RWSGI_LIMIT_REQUEST_FIELDS")]
    pub limit_request_fields: usize,

    /// Largest single header field in bytes (431 beyond).
    #[arg(long, default_value_t = 8190, env = "RWSGI_LIMIT_REQUEST_FIELD_SIZE")]
    pub limit_request_field_size: usize,

    /// Largest whole request head in bytes (431 beyond); at most 65536; 0:
    /// the default, 32768. Differs from mod_wsgi-express, where it sizes the
    /// buffer for the response headers coming back from a daemon process
    /// (rwsgi has no such hop; response headers are not limited).
    #[arg(long, default_value_t = 32768, env = "RWSGI_HEADER_BUFFER_SIZE")]
    pub header_buffer_size: usize,

    /// Depth of the kernel's queue of connections not yet accepted.
    #[arg(
        long,
        visible_alias = "server-backlog",
        default_value_t = 500,
        env = "RWSGI_LISTEN_BACKLOG"
    )]
    pub listen_backlog: i32,

    /// Connections held at once (idle keep-alive ones included). At the
    /// limit, the connections idle or without a complete request head the
    /// longest are closed to make room; only when none is, the kernel
    /// backlog holds new clients. Default: what the open-files limit allows,
    /// processes x (hard RLIMIT_NOFILE - 256), at most 65536 per process.
    /// Differs from mod_wsgi-express, where it caps Apache's front-end
    /// workers (and so concurrent connections, idle ones included): rwsgi
    /// holds idle connections without a thread, so the cap is on connections
    /// and is never below processes x threads.
    #[arg(long, env = "RWSGI_MAX_CLIENTS")]
    pub max_clients: Option<usize>,

    /// Recycle a worker after this many requests (0: never).
    #[arg(long, default_value_t = 0, env = "RWSGI_MAXIMUM_REQUESTS")]
    pub maximum_requests: u64,

    /// Up to this many extra requests, random per worker, so workers do not recycle together.
    #[arg(long, default_value_t = 0, env = "RWSGI_MAXIMUM_REQUESTS_JITTER")]
    pub maximum_requests_jitter: u64,

    /// Recycle a worker after it has run this many seconds (0: never).
    #[arg(long, default_value_t = 0.0, env = "RWSGI_RESTART_INTERVAL")]
    pub restart_interval: f64,

    /// Recycle a worker whose resident memory exceeds this many MB (0: never).
    #[arg(long, default_value_t = 0, env = "RWSGI_MEMORY_LIMIT")]
    pub memory_limit: u64,

    /// Replace a worker that has served requests and then none for this
    /// many seconds, returning its memory (0: never). A never-used worker
    /// is kept; a request that makes no progress is --request-timeout's.
    #[arg(long, default_value_t = 0.0, env = "RWSGI_INACTIVITY_TIMEOUT")]
    pub inactivity_timeout: f64,

    /// Recycle a worker that has used this many seconds of CPU time (0: never).
    #[arg(long, default_value_t = 0, env = "RWSGI_CPU_TIME_LIMIT")]
    pub cpu_time_limit: u64,

    /// Minimum level of the log: emerg, alert, crit, error, warn, notice,
    /// info, debug (any case); Apache's trace1..trace8 are debug, and
    /// `warn wsgi:info` takes the wsgi: level.
    /// (Default info; debug with --verbose-debugging.)
    #[arg(long, env = "RWSGI_LOG_LEVEL", value_parser = parse_log_level)]
    pub log_level: Option<LogLevelArg>,

    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, value_enum, default_value = "text", env = "RWSGI_LOG_FORMAT")]
    pub log_format: LogFormatArg,

    /// Log every request in Apache combined format.
    #[arg(long, env = "RWSGI_ACCESS_LOG")]
    pub access_log: bool,

    /// Access-log line in Apache's directives (%h %t "%r" %>s %b %D %T
    /// %{ms}T %L %{Header}i %{Header}o …), or `common` / `combined`. With
    /// --log-format json each record is a JSON object instead.
    #[arg(long, default_value = "combined", env = "RWSGI_ACCESS_LOG_FORMAT")]
    pub access_log_format: String,

    /// Echo each request's id (its X-Request-Id, or one made up) in this
    /// response header, e.g. X-Request-Id.
    #[arg(long, env = "RWSGI_REQUEST_ID_HEADER")]
    pub request_id_header: Option<String>,

    /// Log to the terminal (the default: accepted for mod_wsgi-express CMDs).
    #[arg(long, env = "RWSGI_LOG_TO_TERMINAL")]
    pub log_to_terminal: bool,

    /// Log start-up details (accepted for mod_wsgi-express CMDs; always on).
    #[arg(long, env = "RWSGI_STARTUP_LOG")]
    pub startup_log: bool,

    /// Add NAME=VALUE to every request's WSGI environ (repeatable).
    #[arg(long, num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub setenv: Vec<String>,

    /// Copy the server's environment variable NAME into every request's WSGI environ (repeatable).
    #[arg(long, value_name = "NAME")]
    pub passenv: Vec<String>,

    /// Locale (LC_ALL) for the application. Default: the inherited one, or a
    /// UTF-8 locale when that is C/POSIX.
    #[arg(long, env = "RWSGI_LOCALE")]
    pub locale: Option<String>,

    /// LANG for the application (default: as --locale).
    #[arg(long, env = "RWSGI_LANG")]
    pub lang: Option<String>,

    /// Development: replace the workers when the file of a loaded module changes.
    #[arg(long, env = "RWSGI_RELOAD_ON_CHANGES")]
    pub reload_on_changes: bool,

    /// Serve a file or a directory of static files at a URL prefix
    /// (repeatable; the longest prefix wins; a relative PATH is relative to
    /// the directory rwsgi starts in). Served without Python.
    #[arg(
        long = "url-alias",
        num_args = 2,
        value_names = ["URL-PATH", "FILE-PATH|DIRECTORY-PATH"],
        action = clap::ArgAction::Append
    )]
    pub url_aliases: Vec<String>,

    /// Directory of static files at the site root: an existing file is
    /// served, any other request goes to the application.
    #[arg(long, value_name = "DIRECTORY-PATH", env = "RWSGI_DOCUMENT_ROOT")]
    pub document_root: Option<PathBuf>,

    /// File a request for a directory gets (default for --url-alias
    /// directories and --application-type static: index.html).
    #[arg(long, value_name = "FILE-NAME", env = "RWSGI_DIRECTORY_INDEX")]
    pub directory_index: Option<String>,

    /// Send `Cache-Control: public, max-age=SECONDS` with static files.
    #[arg(long, value_name = "SECONDS", env = "RWSGI_STATIC_MAX_AGE")]
    pub static_max_age: Option<u64>,

    /// Serve static files through symlinks that point outside their directory.
    #[arg(long, env = "RWSGI_STATIC_FOLLOW_SYMLINKS")]
    pub static_follow_symlinks: bool,

    /// Serve static files whose name starts with '.' (refused by default).
    #[arg(long, env = "RWSGI_STATIC_ALLOW_DOTFILES")]
    pub static_allow_dotfiles: bool,

    /// mod_wsgi's application group: %{GLOBAL} (the default) is the main
    /// interpreter, and so is any name here (see the README).
    #[arg(long, value_name = "NAME", env = "RWSGI_APPLICATION_GROUP")]
    pub application_group: Option<String>,

    /// mod_wsgi's: do not destroy the interpreter at exit. rwsgi never
    /// does (atexit handlers run, then the worker ends).
    #[arg(long, env = "RWSGI_ORPHAN_INTERPRETER")]
    pub orphan_interpreter: bool,

    /// The admin listener (/metrics, /server-status, /healthz) on
    /// 127.0.0.1:--telemetry-ui-port unless --admin-port is given.
    #[arg(long, env = "RWSGI_ENABLE_TELEMETRY")]
    pub enable_telemetry: bool,

    /// The port of --enable-telemetry's listener (on 127.0.0.1).
    #[arg(
        long,
        value_name = "NUMBER",
        default_value_t = 8888,
        env = "RWSGI_TELEMETRY_UI_PORT"
    )]
    pub telemetry_ui_port: u16,

    /// Accept HTTPS on this port too (TLS 1.2 and 1.3), with the certificate
    /// of --ssl-certificate-file and --ssl-certificate-key-file.
    #[arg(
        long,
        value_name = "NUMBER",
        visible_alias = "ssl-port",
        env = "RWSGI_HTTPS_PORT"
    )]
    pub https_port: Option<u16>,

    /// The server's certificate (PEM), for --https-port.
    #[arg(long, value_name = "FILE-PATH", env = "RWSGI_SSL_CERTIFICATE_FILE")]
    pub ssl_certificate_file: Option<PathBuf>,

    /// The private key (PEM) of --ssl-certificate-file.
    #[arg(long, value_name = "FILE-PATH", env = "RWSGI_SSL_CERTIFICATE_KEY_FILE")]
    pub ssl_certificate_key_file: Option<PathBuf>,

    /// The common path of the certificate and its key: PATH.crt and PATH.key.
    #[arg(long, value_name = "FILE-PATH", env = "RWSGI_SSL_CERTIFICATE")]
    pub ssl_certificate: Option<PathBuf>,

    /// Intermediate CA certificates (PEM) sent after the server's own.
    #[arg(
        long,
        value_name = "FILE-PATH",
        env = "RWSGI_SSL_CERTIFICATE_CHAIN_FILE"
    )]
    pub ssl_certificate_chain_file: Option<PathBuf>,

    /// CA certificates (PEM) client certificates must chain to: the whole
    /// site then requires one, unless --ssl-verify-client names where.
    #[arg(long, value_name = "FILE-PATH", env = "RWSGI_SSL_CA_CERTIFICATE_FILE")]
    pub ssl_ca_certificate_file: Option<PathBuf>,

    /// A URL path below which a verified client certificate is required
    /// (repeatable; needs --ssl-ca-certificate-file).
    #[arg(long = "ssl-verify-client", value_name = "URL-PATH")]
    pub ssl_verify_client: Vec<String>,

    /// Pass mod_ssl's SSL_* variables (protocol, cipher, client
    /// certificate) in the environ of HTTPS requests.
    #[arg(long, env = "RWSGI_SSL_ENVIRONMENT")]
    pub ssl_environment: bool,

    /// Redirect plain HTTP requests to HTTPS (--https-port).
    #[arg(long, env = "RWSGI_HTTPS_ONLY")]
    pub https_only: bool,

    /// Strict-Transport-Security value sent on HTTPS responses with
    /// --https-only, e.g. "max-age=31536000".
    #[arg(long, value_name = "PARAMS", env = "RWSGI_HSTS_POLICY")]
    pub hsts_policy: Option<String>,

    /// Serve HTTP/2: h2 by ALPN on --https-port, and h2c with prior
    /// knowledge (no Upgrade) on the plain port.
    #[arg(long, env = "RWSGI_HTTP2")]
    pub http2: bool,

    /// Compress textual responses (HTML, CSS, JavaScript, JSON, XML, plain
    /// text, SVG) with zstd, Brotli or gzip, as the client's Accept-Encoding
    /// prefers: the application's and static files without a precompressed
    /// .zst/.br/.gz sibling (siblings are always served when accepted).
    #[arg(long, env = "RWSGI_COMPRESS_RESPONSES")]
    pub compress_responses: bool,

    /// Python script whose `allow_access(environ, host)` decides, for every
    /// request (static files too), whether the client may be served: False
    /// is a 403. Runs in the workers' interpreter (mod_wsgi's WSGIAccessScript).
    #[arg(long, value_name = "SCRIPT-PATH", env = "RWSGI_HOST_ACCESS_SCRIPT")]
    pub host_access_script: Option<PathBuf>,

    /// Python script that authenticates users for the whole site (static
    /// files too): `check_password(environ, user, password)` for Basic,
    /// `get_realm_hash(environ, user, realm)` for Digest. True, False, or
    /// None for an unknown user (mod_wsgi's WSGIAuthUserScript).
    #[arg(long, value_name = "SCRIPT-PATH", env = "RWSGI_AUTH_USER_SCRIPT")]
    pub auth_user_script: Option<PathBuf>,

    /// Authentication scheme of --auth-user-script: Basic or Digest.
    #[arg(
        long,
        value_name = "TYPE",
        default_value = "Basic",
        env = "RWSGI_AUTH_TYPE"
    )]
    pub auth_type: String,

    /// Python script whose `groups_for_user(environ, user)` lists the
    /// groups of an authenticated user; one must be --auth-group.
    #[arg(long, value_name = "SCRIPT-PATH", env = "RWSGI_AUTH_GROUP_SCRIPT")]
    pub auth_group_script: Option<PathBuf>,

    /// Group users must be in, with --auth-group-script.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "wsgi",
        env = "RWSGI_AUTH_GROUP"
    )]
    pub auth_group: String,

    /// When started as root: the user the server runs as once its ports
    /// are bound (a name, a uid, or #UID for a uid without a passwd entry).
    /// No process that runs Python keeps root.
    #[arg(long, value_name = "USERNAME", env = "RWSGI_USER")]
    pub user: Option<String>,

    /// When started as root: the group the server runs as (default: the
    /// --user's primary group; a name, a gid, or #GID).
    #[arg(long, value_name = "GROUP", env = "RWSGI_GROUP")]
    pub group: Option<String>,

    /// A further Host name served besides --server-name (repeatable;
    /// * and ? wildcards). Other Hosts get 403.
    #[arg(long = "server-alias", value_name = "HOSTNAME", action = clap::ArgAction::Append)]
    pub server_aliases: Vec<String>,

    /// With --server-name: clients on this host (loopback) may use any Host.
    #[arg(long, env = "RWSGI_ALLOW_LOCALHOST")]
    pub allow_localhost: bool,

    /// Do not reload the workers when the WSGI script file changes
    /// (by default a changed script file is reloaded, as mod_wsgi does).
    #[arg(long, env = "RWSGI_DISABLE_RELOADING")]
    pub disable_reloading: bool,

    /// Check the options, print what would run, and exit 0 without serving
    /// (for image build steps).
    #[arg(long, env = "RWSGI_SETUP_ONLY")]
    pub setup_only: bool,

    /// A Python warning filter, as `python -W` takes it (repeatable), e.g.
    /// `ignore::DeprecationWarning`.
    #[arg(
        long = "python-warnings",
        value_name = "ACTION:MESSAGE:CATEGORY:MODULE:LINE"
    )]
    pub python_warnings: Vec<String>,

    /// Python's thread switch interval in seconds (sys.setswitchinterval);
    /// default: Python's, 0.005.
    #[arg(long, value_name = "SECONDS", env = "RWSGI_SWITCH_INTERVAL")]
    pub switch_interval: Option<f64>,

    /// A shell script sourced (by /bin/sh) before the server starts; the
    /// variables it sets reach the application's os.environ.
    #[arg(long, value_name = "FILE-PATH", env = "RWSGI_ENVVARS_SCRIPT")]
    pub envvars_script: Option<PathBuf>,

    /// Write the master's process id to this file at start (removed at exit).
    #[arg(long, value_name = "FILE-PATH", env = "RWSGI_PID_FILE")]
    pub pid_file: Option<PathBuf>,

    /// On: a HEAD request reaches the application as GET (the body it
    /// returns is not sent). Auto, the default, does not map: mod_wsgi maps
    /// only for Apache output filters, which rwsgi has not.
    #[arg(
        long,
        value_name = "OFF|ON|AUTO",
        default_value = "Auto",
        ignore_case = true,
        env = "RWSGI_MAP_HEAD_TO_GET"
    )]
    pub map_head_to_get: MapHeadToGetArg,

    /// Seconds a worker replaced by a reload (SIGUSR1, SIGHUP,
    /// --reload-on-changes) may take to finish its requests (0: the
    /// --graceful-timeout).
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "SECONDS",
        env = "RWSGI_EVICTION_TIMEOUT"
    )]
    pub eviction_timeout: f64,

    /// The program name `ps` shows for the master, followed by its
    /// arguments (mod_wsgi-express names the Apache parent process so).
    #[arg(long, value_name = "NAME", env = "RWSGI_PROCESS_NAME")]
    pub process_name: Option<String>,

    /// What `ps` shows for each worker: `(wsgi:NAME)`, mod_wsgi's daemon
    /// process name (for `pkill -f wsgi:NAME`, say).
    #[arg(long, value_name = "NAME", env = "RWSGI_PROCESS_GROUP")]
    pub process_group: Option<String>,

    /// A URL path whose requests do not count as activity for
    /// --inactivity-timeout (repeatable; health checks, say). It matches
    /// the path and what is below it, as Apache's <Location> does.
    #[arg(long, value_name = "URL-PATH")]
    pub ignore_activity: Vec<String>,

    /// A directory without an index file gets an HTML listing of what may
    /// be served in it, where directories are static: under --url-alias,
    /// with --application-type static, and under --document-root with
    /// --directory-index (Apache's Options +Indexes).
    #[arg(long, env = "RWSGI_DIRECTORY_LISTING")]
    pub directory_listing: bool,

    /// The page an error response of the server with STATUS (4xx, 5xx) gets
    /// (repeatable): a URL path of a static file (sent with the status), a
    /// full URL (a 302 to it), or "text" (Apache's ErrorDocument).
    #[arg(
        long = "error-document",
        num_args = 2,
        value_names = ["STATUS", "URL-PATH"],
        action = clap::ArgAction::Append
    )]
    pub error_documents: Vec<String>,

    /// The application's 4xx and 5xx responses are replaced by the server's
    /// error page for their status, the --error-document when there is one
    /// (mod_wsgi's WSGIErrorOverride).
    #[arg(long, env = "RWSGI_ERROR_OVERRIDE")]
    pub error_override: bool,

    /// `--debug-mode` and the debugging aids (see `debug`).
    #[command(flatten)]
    pub debug: crate::debug::DebugArgs,

    /// Log a request still running after this many seconds, once, as a
    /// warning with its request id, method and path, the time so far and
    /// its thread's Python stack; the request goes on (mod_wsgi 6's
    /// WSGISlowRequests). Off unless given (0: off).
    #[arg(long, value_name = "SECONDS", env = "RWSGI_SLOW_REQUESTS")]
    pub slow_requests: Option<f64>,

    /// Proxy requests under URL-PATH to another HTTP server (repeatable;
    /// the longest prefix wins): /api/x with URL-PATH /api and URL
    /// http://127.0.0.1:9000/v1 goes to /v1/x. Streamed both ways, without
    /// Python; X-Forwarded-For, -Host, -Server, -Port and -Prefix are added
    /// and the backend's redirects mapped back. http:// backends only.
    #[arg(
        long = "proxy-mount-point",
        num_args = 2,
        value_names = ["URL-PATH", "URL"],
        action = clap::ArgAction::Append
    )]
    pub proxy_mount_points: Vec<String>,

    /// mod_wsgi-express's hidden alias of --proxy-mount-point.
    #[arg(
        long = "proxy-url-alias",
        num_args = 2,
        value_names = ["URL-PATH", "URL"],
        action = clap::ArgAction::Append,
        hide = true
    )]
    pub proxy_url_aliases: Vec<String>,

    /// Proxy every request whose Host is HOSTNAME to another HTTP server
    /// (repeatable), whatever its path.
    #[arg(
        long = "proxy-virtual-host",
        num_args = 2,
        value_names = ["HOSTNAME", "URL"],
        action = clap::ArgAction::Append
    )]
    pub proxy_virtual_hosts: Vec<String>,

    /// Seconds to connect to a proxied backend and to wait on each read
    /// from or write to it (default: --socket-timeout). No connection: 503;
    /// no answer in time: 504.
    #[arg(long, value_name = "SECONDS", env = "RWSGI_PROXY_TIMEOUT")]
    pub proxy_timeout: Option<f64>,

    /// Run a Python script in a supervised process of its own, named NAME
    /// (repeatable): imported at start in the workers' environment, kept
    /// running, restarted with back-off if it dies, restarted on reload,
    /// stopped with the server. For a queue consumer or a scheduler.
    #[arg(
        long = "service-script",
        num_args = 2,
        value_names = ["SERVICE", "SCRIPT-PATH"],
        action = clap::ArgAction::Append
    )]
    pub service_scripts: Vec<String>,

    /// When started as root: the user service SERVICE runs as (repeatable).
    #[arg(
        long = "service-user",
        num_args = 2,
        value_names = ["SERVICE", "USERNAME"],
        action = clap::ArgAction::Append
    )]
    pub service_users: Vec<String>,

    /// When started as root: the group service SERVICE runs as (repeatable).
    #[arg(
        long = "service-group",
        num_args = 2,
        value_names = ["SERVICE", "GROUP"],
        action = clap::ArgAction::Append
    )]
    pub service_groups: Vec<String>,

    /// Append service SERVICE's output (stdout, stderr and its log lines)
    /// to FILE-NAME instead of the server's log (repeatable; a relative
    /// path is relative to --log-directory, or to the start directory).
    #[arg(
        long = "service-log-file",
        num_args = 2,
        value_names = ["SERVICE", "FILE-NAME"],
        action = clap::ArgAction::Append
    )]
    pub service_log_files: Vec<String>,

    /// mod_wsgi.server_metrics() returns the server's scoreboard (its
    /// processes and their threads) to the application as a dict; without
    /// this option it returns None (mod_wsgi's WSGIServerMetrics).
    #[arg(long, env = "RWSGI_SERVER_METRICS")]
    pub server_metrics: bool,

    /// Push each worker's metrics to a mod_wsgi-telemetry ingester at
    /// unix:/path/to/socket (a unix datagram socket), in mod_wsgi 6's wire
    /// format: started and stopped events, a sample each
    /// --telemetry-interval, and slow requests with --slow-requests.
    #[arg(long, value_name = "TARGET", env = "RWSGI_TELEMETRY_SERVICE")]
    pub telemetry_service: Option<String>,

    /// Seconds between two telemetry samples (at least 0.5; default 1).
    #[arg(long, value_name = "SECONDS", env = "RWSGI_TELEMETRY_INTERVAL")]
    pub telemetry_interval: Option<f64>,

    /// A WSGITelemetryOptions toggle (repeatable): "+CaptureUserAgent"
    /// adds the User-Agent to slow-request records; also "-Flag", an
    /// absolute list, "None", "All".
    #[arg(long, value_name = "ARGS", action = clap::ArgAction::Append)]
    pub telemetry_options: Vec<String>,

    /// Serve rwsgi's documentation (README and the docker and bench
    /// guides) at /__wsgi__/docs/, without the application.
    #[arg(long, env = "RWSGI_ENABLE_DOCS")]
    pub enable_docs: bool,

    /// Write the logs to files in this directory instead of the terminal:
    /// the error log (the server's and the application's lines) and, with
    /// --access-log, the access log (created if missing).
    #[arg(long, value_name = "DIRECTORY-PATH", env = "RWSGI_LOG_DIRECTORY")]
    pub log_directory: Option<PathBuf>,

    /// The error log's file name in --log-directory (default error_log);
    /// given without --log-directory, a path (relative to the start
    /// directory) the error log is written to.
    #[arg(long, value_name = "FILE-NAME", env = "RWSGI_ERROR_LOG_NAME")]
    pub error_log_name: Option<PathBuf>,

    /// The access log's file name in --log-directory (default access_log);
    /// given without --log-directory, a path the access log is written to.
    #[arg(long, value_name = "FILE-NAME", env = "RWSGI_ACCESS_LOG_NAME")]
    pub access_log_name: Option<PathBuf>,

    /// With --startup-log, the file in --log-directory that also gets the
    /// master's lines until it serves (default startup_log).
    #[arg(long, value_name = "FILE-NAME", env = "RWSGI_STARTUP_LOG_NAME")]
    pub startup_log_name: Option<PathBuf>,

    /// Rotate the log files: a file about to grow past --max-log-size
    /// becomes NAME.1 (NAME.1 becomes NAME.2 …; --max-log-files are kept).
    #[arg(long, env = "RWSGI_ROTATE_LOGS")]
    pub rotate_logs: bool,

    /// With --rotate-logs: the size in MB (fractions allowed) a log file
    /// reaches before it is rotated.
    #[arg(
        long,
        value_name = "MB",
        default_value_t = 5.0,
        env = "RWSGI_MAX_LOG_SIZE"
    )]
    pub max_log_size: f64,

    /// With --rotate-logs: how many rotated files of each log are kept.
    #[arg(
        long,
        value_name = "NUMBER",
        default_value_t = 10,
        env = "RWSGI_MAX_LOG_FILES"
    )]
    pub max_log_files: u32,

    /// Accepted for mod_wsgi-express CMDs: rwsgi rotates the logs itself.
    #[arg(long, value_name = "FILE-PATH", hide = true)]
    pub rotatelogs_executable: Option<PathBuf>,

    /// The directory Python eggs are unpacked to (PYTHON_EGG_CACHE of the
    /// workers; created if missing).
    #[arg(long, value_name = "DIRECTORY-PATH", env = "RWSGI_PYTHON_EGGS")]
    pub python_eggs: Option<PathBuf>,

    /// A mime.types file (`type/subtype ext1 ext2` lines, # comments)
    /// whose mappings add to and override the built-in static-file types.
    #[arg(long, value_name = "FILE-PATH", env = "RWSGI_MIME_TYPES")]
    pub mime_types: Option<PathBuf>,

    /// SO_RCVBUF of the listening sockets, in bytes (0: the system's default).
    #[arg(
        long,
        value_name = "NUMBER",
        default_value_t = 0,
        env = "RWSGI_RECEIVE_BUFFER_SIZE"
    )]
    pub receive_buffer_size: u32,

    /// SO_SNDBUF of the listening sockets, in bytes (0: the system's default).
    #[arg(
        long,
        value_name = "NUMBER",
        default_value_t = 0,
        env = "RWSGI_SEND_BUFFER_SIZE"
    )]
    pub send_buffer_size: u32,

    /// Log at debug level (unless --log-level says otherwise).
    #[arg(long, hide = true, env = "RWSGI_VERBOSE_DEBUGGING")]
    pub verbose_debugging: bool,
}

/// The clap command with the mod_wsgi-express options rwsgi only accepts.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    cmd.mut_subcommand("start-server", crate::compat::add_unimplemented)
        .mut_subcommand("setup-server", crate::compat::add_unimplemented)
}

/// The most request threads a worker can have: one scoreboard block each.
pub const MAX_THREADS: u32 = rwsgi_shared::scoreboard::MAX_THREADS as u32;

/// The most worker processes: the scoreboard has room for twice as many,
/// so that a reload can start a full second generation beside the first.
pub const MAX_PROCESSES: u32 = (rwsgi_shared::scoreboard::MAX_WORKERS / 2) as u32;
