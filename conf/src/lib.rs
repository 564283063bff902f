//! rwsgi's command line, compatible with mod_wsgi-express.
//!
//! `parse` turns the arguments (and `RWSGI_*` environment variables) into a
//! validated [`ServerConfig`]. Options mod_wsgi-express has but rwsgi does not
//! implement are accepted with a warning, so an existing CMD never fails.

#![forbid(unsafe_code)]

mod cli;
mod compat;
pub mod container;
mod debug;
pub mod envvars;
mod error;
mod guard;
mod identity;
mod resolve;
mod services;
pub mod setup_server;
mod summary;
mod telemetry;
pub mod tls;

pub use cli::{Cli, Command, StartServer};
pub use compat::UNIMPLEMENTED;
pub use error::ConfError;
pub use resolve::resolve;
pub use summary::{log_files_line, summary};

use rwsgi_shared::config::ServerConfig;

/// The README's table of mod_wsgi-express options and their status in rwsgi,
/// made from the tables the command line is built from.
pub fn compatibility_table() -> String {
    let cmd = cli::command();
    let start = cmd
        .find_subcommand("start-server")
        .expect("start-server is a command");
    compat::markdown_table(start)
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run the server; `warnings` lists accepted-but-ignored options.
    StartServer {
        config: Box<ServerConfig>,
        warnings: Vec<String>,
    },
    /// `--setup-only`: the options are valid; print what would run, serve nothing.
    SetupOnly {
        config: Box<ServerConfig>,
        warnings: Vec<String>,
    },
    /// `setup-server`: the options are valid; write the control script that
    /// runs `start-server` with `args` into `server_root`.
    SetupServer {
        config: Box<ServerConfig>,
        warnings: Vec<String>,
        server_root: std::path::PathBuf,
        args: Vec<String>,
    },
    /// Print the scoreboard of a running server.
    Status { pid: Option<u32>, json: bool },
}

/// mod_wsgi-express's commands for Apache's own httpd, which rwsgi has no
/// use for: named in the error rather than "unrecognized subcommand".
const APACHE_MODULE_COMMANDS: &[&str] = &["module-config", "module-location", "install-module"];

/// Parses `args` (including the program name). Help, version and usage
/// errors come back as `ConfError::Clap`, which prints itself like clap does.
pub fn parse<I, T>(args: I) -> Result<Invocation, ConfError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = split_two_value_equals(args.into_iter().map(Into::into));
    if let Some(cmd) = args.get(1).and_then(|a| a.to_str()) {
        if APACHE_MODULE_COMMANDS.contains(&cmd) {
            return Err(ConfError::Invalid(format!(
                "{cmd} is mod_wsgi-express's command for loading mod_wsgi into Apache; rwsgi is the server itself and has no module to {}: run `rwsgi start-server`",
                if cmd == "install-module" { "install" } else { "configure" }
            )));
        }
    }
    let matches = cli::command().try_get_matches_from(args.clone())?;
    let (name, sub) = matches.subcommand().ok_or(ConfError::Invalid(
        "a command is required; try `rwsgi start-server --help`".into(),
    ))?;
    match name {
        "start-server" => {
            if let Some(refusal) = compat::refused(sub) {
                return Err(ConfError::Invalid(refusal));
            }
            let mut warnings = compat::warnings(sub);
            let args = <StartServer as clap::FromArgMatches>::from_arg_matches(sub)?;
            let config = Box::new(resolve(&args)?);
            warnings.extend(resolve::access_log_warning(&args));
            warnings.extend(services::warnings(&args));
            if args.setup_only {
                return Ok(Invocation::SetupOnly { config, warnings });
            }
            Ok(Invocation::StartServer { config, warnings })
        }
        "setup-server" => {
            if let Some(refusal) = compat::refused(sub) {
                return Err(ConfError::Invalid(refusal));
            }
            // --server-root is where the script goes; the server ignores it.
            let mut warnings: Vec<String> = compat::warnings(sub)
                .into_iter()
                .filter(|w| !w.contains("--server-root "))
                .collect();
            let parsed = <StartServer as clap::FromArgMatches>::from_arg_matches(sub)?;
            let config = Box::new(resolve(&parsed)?);
            warnings.extend(resolve::access_log_warning(&parsed));
            warnings.extend(services::warnings(&parsed));
            let server_root = sub
                .get_many::<String>("server-root")
                .and_then(|mut v| v.next_back().cloned())
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| {
                    setup_server::default_server_root(
                        &std::env::temp_dir(),
                        &parsed.host,
                        parsed.port,
                        nix::unistd::getuid().as_raw(),
                    )
                });
            let mut given = Vec::new();
            for a in args.iter().skip(2) {
                match a.to_str() {
                    Some(s) => given.push(s.to_owned()),
                    None => {
                        return Err(ConfError::Invalid(format!(
                            "setup-server: the argument {a:?} is not UTF-8, and the control script could not hold it"
                        )))
                    }
                }
            }
            Ok(Invocation::SetupServer {
                config,
                warnings,
                server_root,
                args: setup_server::start_arguments(&given),
            })
        }
        "status" => {
            let args = <cli::Status as clap::FromArgMatches>::from_arg_matches(sub)?;
            Ok(Invocation::Status {
                pid: args.pid,
                json: args.json,
            })
        }
        other => Err(ConfError::Invalid(format!("unknown command {other}"))),
    }
}

/// optparse takes `--url-alias=/x dir` (the first of two values attached);
/// clap takes one value after `=`, so such an argument is split in two.
fn split_two_value_equals(
    args: impl Iterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    for arg in args {
        let split = arg.to_str().and_then(|s| {
            let (name, value) = s.strip_prefix("--")?.split_once('=')?;
            compat::mod_wsgi_express_options()
                .any(|(n, values)| n == name && values == 2)
                .then(|| (format!("--{name}"), value.to_owned()))
        });
        match split {
            Some((name, value)) => out.extend([name.into(), value.into()]),
            None => out.push(arg),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn start(args: &[&str]) -> Result<(ServerConfig, Vec<String>), ConfError> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/wsgi.py");
        let mut argv = vec!["rwsgi", "start-server"];
        argv.extend_from_slice(args);
        argv.push(script);
        match parse(argv)? {
            Invocation::StartServer { config, warnings }
            | Invocation::SetupOnly { config, warnings } => Ok((*config, warnings)),
            Invocation::Status { .. } | Invocation::SetupServer { .. } => {
                panic!("not start-server")
            }
        }
    }

    #[test]
    fn mod_wsgi_express_defaults() {
        let (c, warnings) = start(&[]).expect("valid");
        assert!(warnings.is_empty());
        assert_eq!(
            (c.host.as_str(), c.port, c.processes, c.threads),
            ("", 8000, 1, 5)
        );
        assert!(!c.multiprocess);
        assert_eq!(c.mount_point, "");
        assert_eq!(c.timeouts.request_ms, 60_000);
        assert_eq!(c.timeouts.graceful_ms, 15_000);
        assert_eq!(c.timeouts.shutdown_ms, 5_000);
        assert_eq!(c.timeouts.queue_ms, 45_000);
        assert_eq!(c.limits.request_body, 10_485_760);
        let per_worker =
            rwsgi_shared::rlimit::connections_per_worker(rwsgi_shared::rlimit::nofile().1);
        assert_eq!(c.max_clients, per_worker as usize);
        assert_eq!(c.app.callable, "application");
        assert!(c.app.entry_point.ends_with("examples/hello/wsgi.py"));
    }

    #[test]
    fn derived_values() {
        let (c, _) = start(&[
            "--processes",
            "4",
            "--threads",
            "8",
            "--mount-point",
            "/app/",
        ])
        .expect("valid");
        assert!(c.multiprocess);
        assert_eq!(c.capacity(), 32);
        let per_worker =
            rwsgi_shared::rlimit::connections_per_worker(rwsgi_shared::rlimit::nofile().1);
        assert_eq!(c.max_clients, 4 * per_worker as usize);
        assert_eq!(c.mount_point, "/app");
        let (c, _) =
            start(&["--restart-interval", "1.5", "--maximum-requests", "10"]).expect("valid");
        assert_eq!(c.recycle.restart_interval_ms, 1500);
        assert_eq!(c.recycle.max_requests, 10);
    }

    #[test]
    fn bad_values_name_their_option() {
        for (args, option) in [
            (&["--mount-point", "app"][..], "--mount-point"),
            (
                &["--callable-object", "not a name"][..],
                "--callable-object",
            ),
            (
                &["--working-directory", "/nonexistent/dir"][..],
                "--working-directory",
            ),
            (&["--slow-requests=-1"][..], "--slow-requests"),
            (&["--slow-requests", "NaN"][..], "--slow-requests"),
        ] {
            let err = start(args).expect_err("invalid").to_string();
            assert!(err.contains(option), "{args:?}: {err}");
        }
    }

    /// Every number that crosses from the command line is checked there:
    /// out of range, NaN, negative or infinite values name their option.
    #[test]
    fn values_out_of_range_name_their_option() {
        let huge = "x".repeat(rwsgi_shared::channel::MAX_MESSAGE);
        for (args, option) in [
            (
                &["--header-buffer-size", "65537"][..],
                "--header-buffer-size",
            ),
            (
                &["--header-buffer-size", "1048576"][..],
                "--header-buffer-size",
            ),
            (&["--limit-request-line", "0"][..], "--limit-request-line"),
            (
                &["--limit-request-line", "70000"][..],
                "--limit-request-line",
            ),
            (
                &["--limit-request-field-size", "70000"][..],
                "--limit-request-field-size",
            ),
            (
                &["--limit-request-fields", "32769"][..],
                "--limit-request-fields",
            ),
            (
                &["--limit-request-fields", "0"][..],
                "--limit-request-fields",
            ),
            (
                &["--maximum-requests", "4294967296"][..],
                "--maximum-requests",
            ),
            (
                &["--maximum-requests-jitter", "18446744073709551615"][..],
                "--maximum-requests-jitter",
            ),
            (&["--max-clients", "0"][..], "--max-clients"),
            (&["--listen-backlog=-1"][..], "--listen-backlog"),
            (&["--request-timeout", "NaN"][..], "--request-timeout"),
            (&["--request-timeout=-1"][..], "--request-timeout"),
            (&["--socket-timeout", "inf"][..], "--socket-timeout"),
            (&["--restart-interval", "NaN"][..], "--restart-interval"),
            (&["--restart-interval=-5"][..], "--restart-interval"),
            (&["--shutdown-delay", "NaN"][..], "--shutdown-delay"),
            (&["--body-max-timeout=-1"][..], "--body-max-timeout"),
            (&["--threads", "0"][..], "--threads"),
            (&["--processes", "65"][..], "--processes"),
            (&["--setenv", "BIG", &huge][..], "--setenv"),
            (
                &["--port", "9000", "--admin-port", "9000"][..],
                "--admin-port",
            ),
        ] {
            let err = start(args).expect_err("invalid").to_string();
            assert!(err.contains(option), "{args:?}: {err}");
        }
        let (c, _) = start(&["--header-buffer-size", "65536"]).expect("the largest is valid");
        assert_eq!(
            c.limits.header_buffer,
            rwsgi_shared::config::MAX_HEADER_BUFFER
        );
        let (c, _) = start(&[
            "--maximum-requests",
            "4294967295",
            "--maximum-requests-jitter",
            "4294967295",
        ])
        .expect("valid");
        assert_eq!(c.recycle.max_requests_jitter, u64::from(u32::MAX));
        let (c, _) = start(&[
            "--port",
            "9000",
            "--admin-port",
            "9000",
            "--admin-host",
            "127.0.0.1",
        ])
        .expect("another address");
        assert_eq!(c.admin.map(|a| a.port), Some(9000));
        // Less than a millisecond is one, not 0 (which means "never").
        let (c, _) = start(&[
            "--restart-interval",
            "0.0001",
            "--keep-alive-timeout",
            "1e-9",
        ])
        .expect("valid");
        assert_eq!(
            (c.recycle.restart_interval_ms, c.timeouts.keep_alive_ms),
            (1, 1)
        );
    }

    #[test]
    fn unimplemented_options_are_accepted_with_one_warning_each() {
        let (_, warnings) = start(&[
            "--server-mpm",
            "event",
            "--with-newrelic",
            "--server-root",
            "/tmp",
        ])
        .expect("valid");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings
            .iter()
            .all(|w| w.contains("accepted for mod_wsgi-express compatibility")));
    }

    #[test]
    fn proxy_mounts_and_aliases_add_up_and_the_timeout_defaults_to_the_socket_timeout() {
        let (c, _) = start(&[
            "--proxy-mount-point",
            "/a",
            "http://127.0.0.1:9000/",
            "--proxy-url-alias",
            "/b",
            "http://127.0.0.1:9001/v1",
            "--proxy-virtual-host",
            "side.example.com",
            "http://127.0.0.1:9002",
            "--socket-timeout",
            "7",
        ])
        .expect("valid");
        let p = &c.proxy_pass;
        assert_eq!(p.mounts.len(), 2);
        assert_eq!(p.mounts[1].0, "/b");
        assert_eq!(p.virtual_hosts[0].0, "side.example.com");
        assert_eq!(p.timeout_ms, 7_000);
        let (c, _) = start(&["--proxy-timeout", "2.5"]).expect("valid");
        assert_eq!(c.proxy_pass.timeout_ms, 2_500);
        assert!(start(&["--proxy-timeout", "-1"]).is_err());
    }

    #[test]
    fn every_unimplemented_option_parses() {
        for (name, takes, _) in UNIMPLEMENTED {
            let flag = format!("--{name}");
            let args: Vec<&str> = match takes {
                compat::Takes::Flag => vec![&flag],
                compat::Takes::One => vec![&flag, "x"],
                compat::Takes::Two => vec![&flag, "x", "y"],
            };
            let (_, warnings) = start(&args).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(warnings.len(), 1, "{name}");
        }
    }

    /// A plausible value for each option of options.py.
    fn sample(name: &str) -> String {
        match name {
            // Whoever runs the tests may always name themselves.
            "user" | "group" => {
                let uid = nix::unistd::getuid();
                return nix::unistd::User::from_uid(uid)
                    .ok()
                    .flatten()
                    .map(|u| {
                        if name == "user" {
                            u.name
                        } else {
                            format!("#{}", u.gid)
                        }
                    })
                    .unwrap_or_else(|| format!("#{uid}"));
            }
            _ => {}
        }
        match name {
            "host-access-script" | "auth-user-script" | "auth-group-script" => {
                concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/wsgi.py")
            }
            "auth-type" => "Basic",
            "map-head-to-get" => "On",
            "auth-group" => "wsgi",
            "server-alias" => "www.example.com",
            "application-type" => "script",
            "entry-point" => concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/wsgi.py"),
            "host" => "127.0.0.1",
            "port" => "8001",
            "processes" | "threads" | "max-clients" => "2",
            "mount-point" => "/",
            "document-root" | "working-directory" | "python-path" => {
                concat!(env!("CARGO_MANIFEST_DIR"), "/../examples")
            }
            "directory-index" => "index.html",
            "trust-proxy-header" => "X-Forwarded-For",
            "trust-proxy" => "127.0.0.1",
            "callable-object" => "application",
            "log-level" => "info",
            "access-log-format" => "%h %r",
            "locale" | "lang" => "C.UTF-8",
            "passenv" => "HOME",
            "header-buffer-size" => "16384",
            "limit-request-body" => "1000",
            "server-name" => "example.com",
            "python-warnings" => "ignore::DeprecationWarning",
            "envvars-script" | "mime-types" => {
                concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/wsgi.py")
            }
            "telemetry-service" => "unix:/tmp/rwsgi-telemetry.sock",
            "telemetry-options" => "+CaptureUserAgent",
            _ => "1",
        }
        .to_owned()
    }

    fn sample_args(name: &str, values: usize) -> Vec<String> {
        let mut args = vec![format!("--{name}")];
        match (name, values) {
            ("debugger-startup", _) => args.push("--enable-debugger".into()),
            (_, 0) => {}
            ("url-alias", _) => {
                args.push("/x".into());
                args.push(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples").into());
            }
            ("error-document", _) => args.extend(["404".to_owned(), "\"Not here\"".to_owned()]),
            ("proxy-mount-point" | "proxy-url-alias", _) => {
                args.extend(["/x".to_owned(), "http://127.0.0.1:9000/".to_owned()])
            }
            ("proxy-virtual-host", _) => args.extend([
                "side.example.com".to_owned(),
                "http://127.0.0.1:9000/".to_owned(),
            ]),
            ("service-script", _) => {
                args.push("A".into());
                args.push(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/wsgi.py").into());
            }
            (_, 2) => args.extend(["A".to_owned(), "1".to_owned()]),
            // Groups are checked for authenticated users only: refused alone.
            ("auth-group-script", _) => {
                args.push(sample(name));
                args.push("--auth-user-script".into());
                args.push(sample("auth-user-script"));
            }
            _ => args.push(sample(name)),
        }
        args
    }

    /// The 152 options of mod_wsgi-express 6.0.5 (options.py): each is
    /// accepted, except those refused by name (TLS, Apache configuration).
    #[test]
    fn every_mod_wsgi_express_option_parses() {
        let cmd = cli::command();
        let start_cmd = cmd.find_subcommand("start-server").unwrap();
        let options: Vec<_> = compat::mod_wsgi_express_options().collect();
        assert_eq!(options.len(), 152);
        for (name, values) in options {
            let status = compat::status(start_cmd, name);
            assert_ne!(status, compat::Status::Unknown, "--{name}");
            let args = sample_args(name, values);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match (status, start(&args)) {
                (compat::Status::Refused(_), Err(e)) => {
                    assert!(e.to_string().contains(&format!("--{name} ")), "{e}")
                }
                (compat::Status::Refused(_), Ok(_)) => panic!("--{name} is not refused"),
                (compat::Status::Ignored(_), Ok((_, warnings))) => {
                    assert_eq!(warnings.len(), 1, "--{name}: {warnings:?}")
                }
                (_, Ok(_)) => {}
                // HTTPS options work together: alone, each says what it needs.
                (_, Err(e))
                    if name.starts_with("ssl-")
                        || name.starts_with("http")
                        || name == "hsts-policy" =>
                {
                    assert!(e.to_string().contains("needs --"), "--{name}: {e}")
                }
                (_, Err(e)) => panic!("--{name}: {e}"),
            }
        }
    }

    /// optparse's rules: the last of a repeated option wins, `--opt=value`,
    /// unambiguous prefixes, and --entry-point wins over the positional.
    #[test]
    fn optparse_rules() {
        let (c, _) = start(&[
            "--log-to-terminal",
            "--startup-log",
            "--port",
            "80",
            "--port",
            "8080",
            "--log-to-terminal",
        ])
        .expect("valid");
        assert_eq!(c.port, 8080);
        let (c, _) =
            start(&["--threads=3", "--threads=7", "--access-log", "--access-log"]).expect("valid");
        assert_eq!(c.threads, 7);
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let alias = "--url-alias=/x".to_owned();
        let (c, _) =
            start(&[&alias, examples, "--setenv=A", "1", "--setenv", "B", "2"]).expect("valid");
        assert_eq!(c.statics.aliases.len(), 1);
        assert_eq!(c.python.environ.len(), 2);
        // Repeatable options still accumulate.
        let (c, _) = start(&[
            "--python-path",
            "/a",
            "--python-path=/b",
            "--trust-proxy-header",
            "X-Real-IP",
            "--trust-proxy-header",
            "X-Forwarded-Proto",
        ])
        .expect("valid");
        assert_eq!(c.python.python_paths.len(), 2);
        assert_eq!(c.trust_proxy_headers.len(), 2);
        let (c, _) =
            start(&["--log-to-term", "--thr", "3", "--limit-request-bo", "5"]).expect("prefixes");
        assert_eq!((c.threads, c.limits.request_body), (3, 5));
        let err = start(&["--proc", "2"]).expect_err("ambiguous, as in optparse");
        assert!(err.to_string().contains("--proc"), "{err}");
        let (c, _) =
            start(&["--entry-point", examples, "--application-type", "static"]).expect("valid");
        assert_eq!(
            c.statics.document_root.as_deref(),
            Some(
                std::path::Path::new(examples)
                    .canonicalize()
                    .unwrap()
                    .as_path()
            )
        );
    }

    /// Values of 0 that mod_wsgi-express gives a meaning.
    #[test]
    fn zero_means_what_it_means_in_mod_wsgi_express() {
        let (c, _) = start(&[
            "--limit-request-body",
            "0",
            "--keep-alive-timeout",
            "0",
            "--request-timeout",
            "0",
            "--queue-timeout",
            "0",
            "--deadlock-timeout",
            "0",
            "--startup-timeout",
            "0",
            "--header-timeout",
            "0",
            "--body-timeout",
            "0",
            "--socket-timeout",
            "0",
            "--graceful-timeout",
            "0",
            "--shutdown-timeout",
            "0",
            "--header-buffer-size",
            "0",
        ])
        .expect("valid");
        assert_eq!(c.limits.request_body, u64::MAX);
        assert!(!c.limits.keep_alive);
        let t = &c.timeouts;
        for ms in [
            t.request_ms,
            t.queue_ms,
            t.deadlock_ms,
            t.startup_ms,
            t.header_ms,
            t.body_ms,
        ] {
            assert_eq!(ms, resolve::NO_TIMEOUT_MS);
        }
        assert_eq!((t.socket_ms, t.graceful_ms, t.shutdown_ms), (60_000, 1, 1));
        assert_eq!(c.limits.header_buffer, 32768);
        let lines = summary(&c).join("\n");
        assert!(
            lines.contains("request off")
                && lines.contains("keep-alive off")
                && lines.contains("any size"),
            "{lines}"
        );
    }

    #[test]
    fn log_levels_as_apache_takes_them() {
        use cli::LogLevelArg::*;
        for (raw, level) in [
            ("WARN", Warn),
            ("Info", Info),
            ("trace1", Debug),
            ("trace8", Debug),
            ("warn wsgi:info", Info),
            ("wsgi:debug warn", Debug),
            ("error ssl:warn", Error),
        ] {
            assert_eq!(cli::parse_log_level(raw), Ok(level), "{raw}");
        }
        for raw in ["trace9", "loud", "", "ssl:warn"] {
            assert!(cli::parse_log_level(raw).is_err(), "{raw}");
        }
        assert!(start(&["--log-level", "TRACE3"]).is_ok());
    }

    #[test]
    fn unknown_access_log_directives_are_one_warning() {
        let (_, warnings) = start(&[
            "--access-log",
            "--access-log-format",
            "%v %p %h %{%d/%b}t %k %v",
        ])
        .expect("valid");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("%v %p %{%d/%b}t %k"), "{warnings:?}");
    }

    #[test]
    fn no_entry_point_serves_the_default_page() {
        match parse(["rwsgi", "start-server"]).expect("valid") {
            Invocation::StartServer { config, .. } => {
                assert_eq!(config.app.kind, rwsgi_shared::config::AppType::Script);
                assert!(config.app.entry_point.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(["rwsgi", "start-server", "--setup-only"]),
            Ok(Invocation::SetupOnly { .. })
        ));
    }

    /// The README's table is the one the code makes (regenerate with
    /// RWSGI_UPDATE_README=1 cargo test -p rwsgi-conf readme).
    #[test]
    fn readme_table_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let (begin, end) = (
            "<!-- mod_wsgi-express options: begin -->\n",
            "<!-- mod_wsgi-express options: end -->",
        );
        let (head, rest) = readme
            .split_once(begin)
            .expect("README has the table's begin marker");
        let (_, tail) = rest
            .split_once(end)
            .expect("README has the table's end marker");
        let wanted = format!("{head}{begin}{}{end}{tail}", compatibility_table());
        if std::env::var_os("RWSGI_UPDATE_README").is_some() {
            std::fs::write(path, &wanted).unwrap();
            return;
        }
        assert!(readme == wanted, "README.md's option table is stale: RWSGI_UPDATE_README=1 cargo test -p rwsgi-conf readme");
    }

    #[test]
    fn module_entry_points_are_checked() {
        let parsed = parse([
            "rwsgi",
            "start-server",
            "--application-type",
            "module",
            "example.wsgi:app",
        ]);
        assert!(parsed.is_ok());
        let err = parse([
            "rwsgi",
            "start-server",
            "--application-type",
            "module",
            "not/a/module",
        ])
        .expect_err("invalid");
        assert!(err.to_string().contains("--entry-point"), "{err}");
    }

    /// `--processes` and `--threads` end where the scoreboard has no room
    /// left, and their help says so.
    #[test]
    fn process_and_thread_limits_are_the_scoreboards() {
        let max_p = cli::MAX_PROCESSES.to_string();
        let max_t = cli::MAX_THREADS.to_string();
        let over_p = (cli::MAX_PROCESSES + 1).to_string();
        let over_t = (cli::MAX_THREADS + 1).to_string();
        let (c, _) = start(&["--processes", &max_p, "--threads", &max_t]).expect("valid");
        let want = (cli::MAX_PROCESSES as usize, cli::MAX_THREADS as usize);
        assert_eq!((c.processes, c.threads), want);
        for over in [["--processes", &over_p], ["--threads", &over_t]] {
            let err = start(&over).expect_err("too many");
            assert!(err.to_string().contains(over[0]), "{err}");
        }
        let mut cmd = cli::command();
        let server = cmd
            .find_subcommand_mut("start-server")
            .expect("start-server");
        let help = server
            .get_arguments()
            .find(|a| a.get_id() == "processes")
            .and_then(|a| a.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(help.contains(&format!("(1 to {max_p})")), "{help}");
    }

    #[test]
    fn error_documents_are_checked_at_start() {
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let err = start(&["--error-document", "200", "\"fine\""]).expect_err("invalid");
        assert!(err.to_string().contains("--error-document"), "{err}");
        assert!(err.to_string().contains("not a 4xx or 5xx"), "{err}");
        let err = start(&[
            "--url-alias",
            "/x",
            examples,
            "--error-document",
            "404",
            "/x/missing.html",
        ])
        .expect_err("invalid");
        assert!(err.to_string().contains("--error-document"), "{err}");
        assert!(err.to_string().contains("404 /x/missing.html"), "{err}");
        let err = start(&["--error-document", "500", "/oops"]).expect_err("invalid");
        assert!(
            err.to_string().contains("not from the application"),
            "{err}"
        );
        let (c, warnings) = start(&[
            "--url-alias",
            "/x",
            examples,
            "--error-document",
            "404",
            "/x/hello/wsgi.py",
            "--error-document",
            "503",
            "https://example.com/busy",
            "--error-document",
            "500",
            "\"Sorry\"",
            "--error-override",
            "--directory-listing",
        ])
        .expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.statics.error_documents.len(), 3);
        assert!(c.statics.error_override && c.statics.directory_listing);
    }

    /// mod_wsgi-express 6's options whose meaning rwsgi has in its own way.
    #[test]
    fn telemetry_and_application_group_map_onto_rwsgis_own() {
        let (c, warnings) = start(&["--enable-telemetry"]).expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        let admin = c.admin.expect("an admin listener");
        assert_eq!((admin.host.as_str(), admin.port), ("127.0.0.1", 8888));
        let (c, _) = start(&["--enable-telemetry", "--telemetry-ui-port", "9999"]).expect("valid");
        assert_eq!(c.admin.expect("admin").port, 9999);
        let (c, _) = start(&["--enable-telemetry", "--admin-port", "9100"]).expect("valid");
        assert_eq!(
            c.admin.expect("admin").port,
            9100,
            "--admin-port says where"
        );
        let (c, _) = start(&["--application-group", "%{GLOBAL}"]).expect("valid");
        assert_eq!(c.application_group, "");
        let (c, _) = start(&["--application-group", "site"]).expect("valid");
        assert_eq!(c.application_group, "site");
        assert!(summary::summary(&c)
            .iter()
            .any(|l| l.contains("no sub-interpreters")));
        for refused in [
            &["--add-handler", ".php", "/x.wsgi"][..],
            &["--with-cgi"][..],
        ] {
            let e = start(refused).expect_err("refused");
            assert!(e.to_string().contains("their source"), "{e}");
        }
    }
}
