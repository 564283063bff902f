//! mod_wsgi-express options that rwsgi accepts but does not implement.
//!
//! An existing CMD written for mod_wsgi-express must never fail on them:
//! each is accepted, hidden from `--help`, and warned about once at start.

use clap::{Arg, ArgAction, ArgMatches};

/// How many values an option takes.
#[derive(Debug, Clone, Copy)]
pub enum Takes {
    Flag,
    One,
    Two,
}

/// The single table of accepted-but-ignored options, with why.
pub const UNIMPLEMENTED: &[(&str, Takes, &str)] = &[
    (
        "connect-timeout",
        Takes::One,
        "not applicable: no Apache proxy stage",
    ),
    (
        "response-socket-timeout",
        Takes::One,
        "use --socket-timeout",
    ),
    (
        "server-root",
        Takes::One,
        "start-server writes no configuration; setup-server writes its control script there",
    ),
    ("server-mpm", Takes::One, "not applicable: no Apache MPM"),
    (
        "initial-workers",
        Takes::One,
        "not applicable: no Apache MPM",
    ),
    (
        "minimum-spare-workers",
        Takes::One,
        "not applicable: no Apache MPM",
    ),
    (
        "maximum-spare-workers",
        Takes::One,
        "not applicable: no Apache MPM",
    ),
    ("daemon-backlog", Takes::One, "not applicable: mod_wsgi's daemon sockets; the listening socket's backlog is --listen-backlog"),
    ("enable-sendfile", Takes::Flag, "sendfile is always used"),
    ("error-log-format", Takes::One, "not applicable: Apache's ErrorLogFormat; rwsgi's records are --log-format text or json"),
    (
        "enable-gdb",
        Takes::Flag,
        "not applicable: it runs Apache under gdb; attach gdb to a worker instead (gdb -p PID)",
    ),
    ("with-newrelic", Takes::Flag, "not a mod_wsgi-express 6 option (older versions had it): start the agent from the application (newrelic.agent.initialize) or with newrelic-admin"),
    ("with-php5", Takes::Flag, "not applicable: Apache's PHP module"),
    ("response-buffer-size", Takes::One, "not applicable: mod_wsgi's buffer between daemon process and Apache; rwsgi writes responses to the client as they come"),
    ("isatty", Takes::Flag, "not applicable: mod_wsgi-express's wrapper that forwards signals to Apache; rwsgi takes them itself"),
    // Added with the whole of options.py (mod_wsgi-express 6.0.5).
    (
        "response-flush-delay",
        Takes::One,
        "not applicable: responses are written as they come",
    ),
    (
        "shell-executable",
        Takes::One,
        "setup-server's apachectl is a /bin/sh script",
    ),
    ("httpd-executable", Takes::One, "not applicable: no Apache"),
    ("modules-directory", Takes::One, "not applicable: no Apache"),
    (
        "socket-prefix",
        Takes::One,
        "not applicable: no Apache daemon sockets",
    ),
    (
        "embedded-mode",
        Takes::Flag,
        "not applicable: workers are always separate processes",
    ),
    (
        "gdb-executable",
        Takes::One,
        "not applicable: goes with --enable-gdb",
    ),
    // Helper B's (authentication): accepted until implemented there.
];

/// mod_wsgi-express options rwsgi refuses until it implements them: serving
/// without them would be less safe than not serving (plain HTTP where HTTPS
/// was asked for, Apache access rules not applied).
pub const REFUSED: &[(&str, Takes, &str)] = &[
    ("include-file", Takes::One, "rwsgi cannot apply Apache configuration, which may hold access rules; move them to a proxy or the application and drop the option"),
    ("rewrite-rules", Takes::One, "rwsgi cannot apply Apache rewrite rules, which may forbid or redirect; move them to a proxy or the application and drop the option"),
    ("free-threading", Takes::Flag, "needs a free-threaded (PEP 703) Python build, and rwsgi's workers run on a Python with the GIL (as mod_wsgi-express, rwsgi exits rather than run with the GIL)"),
    ("add-handler", Takes::Two, "rwsgi cannot run a handler script for files of an extension, and would serve those files as they are (their source) instead; serve them through the application and drop the option"),
    ("with-cgi", Takes::Flag, "rwsgi does not run CGI scripts, and would serve .cgi files as they are (their source) instead; drop the option"),
    ("allow-override", Takes::One, "rwsgi cannot apply .htaccess files, which may hold access rules; move them to a proxy or the application and drop the option"),
];

/// mod_wsgi-express options rwsgi implements with a difference worth
/// knowing (the others it implements as mod_wsgi-express does).
pub const DIFFERENCES: &[(&str, &str)] = &[
    ("max-clients", "caps connections held (idle keep-alive ones too, held without a thread), not Apache workers; default from the open-files limit"),
    ("header-buffer-size", "limits the request head (431 beyond), not the response headers from a daemon process; 0 is the default, 32768"),
    ("processes", "also takes `auto` (one per CPU the cgroup quota allows)"),
    ("log-level", "default info, not warn; trace1..trace8 are debug; `warn wsgi:info` takes the wsgi: level"),
    ("access-log", "to the terminal (to a file with --log-directory or --access-log-name), in Apache combined format"),
    ("access-log-format", "Apache directives; %v %p %P %I %O %X %e %k %R and other unknown ones are rendered as `-` (one warning)"),
    ("log-to-terminal", "the default: logs go to the terminal unless --log-directory or --error-log-name / --access-log-name names files (files win, as in mod_wsgi-express)"),
    ("startup-log", "start-up lines always go to the error log; with --log-directory this also writes them to the startup_log file"),
    ("server-backlog", "alias of --listen-backlog"),
    ("server-status", "loopback clients only; also on the admin listener (--admin-port)"),
    ("reload-on-changes", "replaces the workers when a loaded module's file changes"),
    ("setup-only", "checks the options, prints the summary and exits 0"),
    ("inactivity-timeout", "replaces a worker that served requests and then none for this long (a never-used one is kept); counted as restart-interval in the metrics; a request making no progress is --request-timeout's"),
    ("map-head-to-get", "Auto (the default) does not map: mod_wsgi maps only when an Apache output filter is present"),
    ("eviction-timeout", "the time a reload (SIGUSR1, SIGHUP, --reload-on-changes) gives the replaced workers to finish their requests, while the new ones take the new requests; then --shutdown-timeout before they are killed"),
    ("process-name", "the master's program name in `ps` (its command line; the kernel's 15-byte name stays rwsgi)"),
    ("process-group", "names the workers in `ps` `(wsgi:NAME)` and is the environ's mod_wsgi.process_group; without it that is empty (rwsgi has no daemon process groups, so no default group localhost:PORT)"),
    ("https-port", "served without --server-name too; TLS 1.2 and 1.3 only (rustls), certificates read again when their files change"),
    ("ssl-verify-client", "a client certificate is asked for in the handshake and required below these paths (no renegotiation); a request there without one, or on the plain port, gets 403"),
    ("https-only", "the redirect is a 301 to the host the client used (mod_wsgi-express: a 302 to --server-name)"),
    ("application-group", "the application runs in the worker's main interpreter whatever the name (pyo3 has no sub-interpreters); each worker process holds this one application, so it is kept apart from others as a named group would be; the name is the environ's mod_wsgi.application_group"),
    ("orphan-interpreter", "always so: a worker runs the atexit handlers and ends without destroying its interpreter"),
    ("enable-telemetry", "rwsgi's own telemetry: the admin listener (/metrics for Prometheus, /server-status, /healthz) on 127.0.0.1:--telemetry-ui-port unless --admin-port says where; the mod_wsgi-telemetry package is not needed"),
    ("ignore-activity", "matches the raw (not percent-decoded) request path, and the path below it, as <Location> does"),
    ("trust-proxy", "addresses and CIDR ranges; without it every peer is trusted, as in mod_wsgi"),
    ("directory-listing", "also under --url-alias directories (Apache lists the document root only); dotfiles and symlinks out are left out as the static rules refuse them"),
    ("error-document", "a local URL-PATH must name a static file (checked at start): a document the application would make is refused, since a refused request never reaches it"),
    ("debug-mode", "the one worker process is the master's child with the terminal as stdin and stdout; Ctrl-C stops gracefully (exit handlers run), a second Ctrl-C at once"),
    ("enable-profiler", "one cProfile dump per request (TIME-PID.pstats), not one per process at exit"),
    ("coverage-directory", "default htmlcov in the working directory (rwsgi has no server root)"),
    ("profiler-directory", "default pstats in the working directory (rwsgi has no server root)"),
    ("recorder-directory", "default archive in the working directory (rwsgi has no server root)"),
    ("slow-requests", "logged as a warning with the request's id, method, path, time so far and Python stack; no telemetry service needed (with --telemetry-service, also sent there as slow_request records)"),
    ("proxy-mount-point", "http:// backends only, one backend connection per request, no WebSocket upgrade"),
    ("proxy-virtual-host", "http:// backends only, one backend connection per request, no WebSocket upgrade"),
    ("server-metrics", "mod_wsgi.server_metrics() (and rwsgi.server_metrics()) lists the worker slots in use, each with its threads (Apache lists every scoreboard slot); a thread's bytes_served, stop_time, last_used and vhost are not recorded and left out, its start_time is given while a request runs"),
    ("telemetry-service", "each worker sends mod_wsgi 6's datagrams itself; what rwsgi does not measure is left out (Apache and mod_wsgi versions, server time, GIL wait, I/O totals, per-phase histograms and min/max, the shutdown reason, GC records); queue_time is from accept to the application's start"),
    ("enable-docs", "rwsgi's documentation (its README and the docker and bench guides), not mod_wsgi's"),
    ("service-log-file", "a relative FILE-NAME is relative to --log-directory, or to the start directory without it (rwsgi has no server root); the file gets the service's stdout, stderr and log lines"),
    ("log-directory", "without it (and without --error-log-name) the logs go to the terminal, not to files in a server root; with it they go to files there whatever --log-to-terminal says; created if missing"),
    ("error-log-name", "without --log-directory, a path relative to the start directory (rwsgi has no server root) the error log goes to; without either, the terminal"),
    ("access-log-name", "without --log-directory, a path relative to the start directory (rwsgi has no server root) the access log goes to; the file holds the bare access lines (JSON records with --log-format json)"),
    ("startup-log-name", "with --startup-log, the file gets the master's start-up lines (options summary, warnings, a failure to start), which also go to the error log"),
    ("rotate-logs", "rwsgi rotates the files itself: NAME becomes NAME.1 (NAME.1 becomes NAME.2 …, --max-log-files of them are kept, default 10), not NAME.TIMESTAMP by rotatelogs"),
    ("max-log-size", "fractions of a MB are allowed"),
    ("rotatelogs-executable", "accepted and not used: rwsgi rotates the log files itself (--rotate-logs)"),
    ("verbose-debugging", "sets the log level to debug unless --log-level is given"),
    ("mime-types", "its mappings add to and override rwsgi's built-in table; without it there is no default file (the built-in table is used)"),
    ("receive-buffer-size", "SO_RCVBUF of the listening sockets (accepted connections inherit it), as Apache's ReceiveBufferSize; no daemon sockets"),
    ("send-buffer-size", "SO_SNDBUF of the listening sockets (accepted connections inherit it), as Apache's SendBufferSize; no daemon sockets"),
];

/// The options of mod_wsgi-express 6.0.5's options.py, hidden ones
/// included: `--name values` lines (facts copied from options.py).
pub const MOD_WSGI_EXPRESS_OPTIONS: &str = include_str!("../mod_wsgi_express_options.txt");

/// Each option of options.py with the number of values it takes.
pub fn mod_wsgi_express_options() -> impl Iterator<Item = (&'static str, usize)> {
    MOD_WSGI_EXPRESS_OPTIONS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, n) = l.split_once(' ')?;
            Some((name.trim_start_matches("--"), n.trim().parse().ok()?))
        })
}

/// What rwsgi does with a mod_wsgi-express option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Implemented,
    Differs(&'static str),
    Ignored(&'static str),
    Refused(&'static str),
    /// Not in any table and not an option of `start-server` (a test fails).
    Unknown,
}

impl Status {
    pub fn describe(&self) -> String {
        match self {
            Status::Implemented => "implemented".to_owned(),
            Status::Differs(how) => format!("implemented, differently: {how}"),
            Status::Ignored(why) => format!("accepted with a warning, ignored: {why}"),
            Status::Refused(why) => format!("refused (exits): {why}"),
            Status::Unknown => "unknown".to_owned(),
        }
    }
}

/// The status of option `name` (without `--`) in `cmd` (`start-server`).
pub fn status(cmd: &clap::Command, name: &str) -> Status {
    let find = |table: &[(&str, Takes, &'static str)]| {
        table
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, why)| *why)
    };
    if let Some(why) = find(REFUSED) {
        return Status::Refused(why);
    }
    if let Some(why) = find(UNIMPLEMENTED) {
        return Status::Ignored(why);
    }
    let known = cmd.get_arguments().any(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().into_iter().flatten().any(|x| x == name)
    });
    match DIFFERENCES.iter().find(|(n, _)| *n == name) {
        _ if !known => Status::Unknown,
        Some((_, how)) => Status::Differs(how),
        None => Status::Implemented,
    }
}

/// One `--name: status` line per option of options.py, for `--help`.
pub fn help_text(cmd: &clap::Command) -> String {
    let mut out = String::from(
        "mod_wsgi-express 6.0.5's options (all accepted; the last of a repeated option wins, a unique prefix names one):\n",
    );
    for (name, _) in mod_wsgi_express_options() {
        out.push_str(&format!("  --{name}: {}\n", status(cmd, name).describe()));
    }
    out
}

/// The README's compatibility table (see the test that keeps it in step).
pub fn markdown_table(cmd: &clap::Command) -> String {
    let mut out = String::from("| mod_wsgi-express option | in rwsgi |\n|---|---|\n");
    for (name, _) in mod_wsgi_express_options() {
        let text = status(cmd, name).describe().replace('|', "\\|");
        out.push_str(&format!("| `--{name}` | {text} |\n"));
    }
    out
}

/// Adds every option of the tables to the `start-server` command, hidden.
pub fn add_unimplemented(mut cmd: clap::Command) -> clap::Command {
    for (name, takes, _) in UNIMPLEMENTED.iter().chain(REFUSED) {
        let arg = Arg::new(*name).long(*name).hide(true);
        let arg = match takes {
            Takes::Flag => arg.action(ArgAction::SetTrue),
            Takes::One => arg.action(ArgAction::Append).num_args(1),
            Takes::Two => arg.action(ArgAction::Append).num_args(2),
        };
        cmd = cmd.arg(arg);
    }
    let help = format!("{}\n\n{}", crate::cli::EXAMPLES, help_text(&cmd));
    cmd.after_long_help(help)
}

fn given(matches: &ArgMatches, name: &str, takes: Takes) -> bool {
    match takes {
        Takes::Flag => matches.get_flag(name),
        _ => matches.contains_id(name) && matches.value_source(name).is_some(),
    }
}

/// The first refused option present on the command line, as an error naming it.
pub fn refused(matches: &ArgMatches) -> Option<String> {
    REFUSED
        .iter()
        .find(|(name, takes, _)| given(matches, name, *takes))
        .map(|(name, _, why)| format!("option --{name} is not supported: {why}"))
}

/// One warning line per unimplemented option present on the command line.
pub fn warnings(matches: &ArgMatches) -> Vec<String> {
    UNIMPLEMENTED
        .iter()
        .filter(|(name, takes, _)| given(matches, name, *takes))
        .map(|(name, _, why)| {
            format!(
                "option --{name} is accepted for mod_wsgi-express compatibility but ignored: {why}"
            )
        })
        .collect()
}
