//! rwsgi's command line, compatible with mod_wsgi-express.
//!
//! `parse` turns the arguments (and `RWSGI_*` environment variables) into a
//! validated [`ServerConfig`]. Options mod_wsgi-express has but rwsgi does not
//! implement are accepted with a warning, so an existing CMD never fails.

#![forbid(unsafe_code)]

mod cli;
mod compat;
pub mod container;
mod error;
mod guard;
mod identity;
mod resolve;
mod summary;

pub use cli::{Cli, Command, StartServer};
pub use compat::UNIMPLEMENTED;
pub use error::ConfError;
pub use resolve::resolve;
pub use summary::summary;

use rwsgi_shared::config::ServerConfig;

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run the server; `warnings` lists accepted-but-ignored options.
    StartServer {
        config: Box<ServerConfig>,
        warnings: Vec<String>,
    },
    /// Print the scoreboard of a running server.
    Status { pid: Option<u32>, json: bool },
}

/// Parses `args` (including the program name). Help, version and usage
/// errors come back as `ConfError::Clap`, which prints itself like clap does.
pub fn parse<I, T>(args: I) -> Result<Invocation, ConfError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = cli::command().try_get_matches_from(args)?;
    let (name, sub) = matches.subcommand().ok_or(ConfError::Invalid(
        "a command is required; try `rwsgi start-server --help`".into(),
    ))?;
    match name {
        "start-server" => {
            let warnings = compat::warnings(sub);
            let args = <StartServer as clap::FromArgMatches>::from_arg_matches(sub)?;
            let config = resolve(&args)?;
            Ok(Invocation::StartServer {
                config: Box::new(config),
                warnings,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn start(args: &[&str]) -> Result<(ServerConfig, Vec<String>), ConfError> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/wsgi.py");
        let mut argv = vec!["rwsgi", "start-server"];
        argv.extend_from_slice(args);
        argv.push(script);
        match parse(argv)? {
            Invocation::StartServer { config, warnings } => Ok((*config, warnings)),
            Invocation::Status { .. } => panic!("not start-server"),
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
            (&["--request-timeout", "0"][..], "--request-timeout"),
            (
                &["--callable-object", "not a name"][..],
                "--callable-object",
            ),
            (
                &["--working-directory", "/nonexistent/dir"][..],
                "--working-directory",
            ),
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
            (&["--header-buffer-size", "0"][..], "--header-buffer-size"),
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
            "--proxy-mount-point",
            "/a",
            "http://b",
        ])
        .expect("valid");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings
            .iter()
            .all(|w| w.contains("accepted for mod_wsgi-express compatibility")));
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
}
