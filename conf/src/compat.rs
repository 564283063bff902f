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
    ("inactivity-timeout", Takes::One, "use --request-timeout"),
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
        "not applicable: no Apache configuration",
    ),
    (
        "include-file",
        Takes::One,
        "not applicable: no Apache configuration",
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
    ("daemon-backlog", Takes::One, "not applicable"),
    ("enable-sendfile", Takes::Flag, "sendfile is always used"),
    ("compress-responses", Takes::Flag, "not implemented"),
    (
        "directory-listing",
        Takes::Flag,
        "directory listings are never served",
    ),
    ("server-metrics", Takes::Flag, "not implemented yet"),
    (
        "https-port",
        Takes::One,
        "TLS is terminated in front of rwsgi",
    ),
    (
        "https-only",
        Takes::Flag,
        "TLS is terminated in front of rwsgi",
    ),
    (
        "ssl-port",
        Takes::One,
        "TLS is terminated in front of rwsgi",
    ),
    (
        "ssl-certificate-file",
        Takes::One,
        "TLS is terminated in front of rwsgi",
    ),
    (
        "ssl-certificate-key-file",
        Takes::One,
        "TLS is terminated in front of rwsgi",
    ),
    (
        "ssl-certificate",
        Takes::One,
        "TLS is terminated in front of rwsgi",
    ),
    ("error-log-format", Takes::One, "not applicable"),
    ("access-log-name", Takes::One, "logs go to the terminal"),
    ("error-log-name", Takes::One, "logs go to the terminal"),
    ("startup-log-name", Takes::One, "logs go to the terminal"),
    ("log-directory", Takes::One, "logs go to the terminal"),
    ("rotate-logs", Takes::Flag, "logs go to the terminal"),
    ("max-log-size", Takes::One, "logs go to the terminal"),
    ("max-log-files", Takes::One, "logs go to the terminal"),
    ("enable-debugger", Takes::Flag, "not implemented"),
    ("debug-mode", Takes::Flag, "not implemented"),
    ("enable-coverage", Takes::Flag, "not implemented"),
    ("enable-profiler", Takes::Flag, "not implemented"),
    ("enable-recorder", Takes::Flag, "not implemented"),
    ("enable-gdb", Takes::Flag, "not implemented"),
    ("python-eggs", Takes::One, "not applicable"),
    ("with-newrelic", Takes::Flag, "not implemented"),
    ("with-php5", Takes::Flag, "not applicable"),
    ("enable-docs", Takes::Flag, "not implemented"),
    ("setup-only", Takes::Flag, "not applicable"),
    ("response-buffer-size", Takes::One, "not applicable"),
    ("receive-buffer-size", Takes::One, "not applicable"),
    ("send-buffer-size", Takes::One, "not applicable"),
    ("proxy-mount-point", Takes::Two, "not implemented"),
    ("proxy-url-alias", Takes::Two, "not implemented"),
    ("proxy-virtual-host", Takes::Two, "not implemented"),
    ("service-script", Takes::Two, "not implemented"),
    ("error-document", Takes::Two, "not implemented"),
    ("isatty", Takes::Flag, "not applicable"),
];

/// Adds every option of the table to the `start-server` command, hidden.
pub fn add_unimplemented(mut cmd: clap::Command) -> clap::Command {
    for (name, takes, _) in UNIMPLEMENTED {
        let arg = Arg::new(*name).long(*name).hide(true);
        let arg = match takes {
            Takes::Flag => arg.action(ArgAction::SetTrue),
            Takes::One => arg.action(ArgAction::Append).num_args(1),
            Takes::Two => arg.action(ArgAction::Append).num_args(2),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// One warning line per unimplemented option present on the command line.
pub fn warnings(matches: &ArgMatches) -> Vec<String> {
    UNIMPLEMENTED
        .iter()
        .filter(|(name, takes, _)| match takes {
            Takes::Flag => matches.get_flag(name),
            _ => matches.contains_id(name) && matches.value_source(name).is_some(),
        })
        .map(|(name, _, why)| {
            format!(
                "option --{name} is accepted for mod_wsgi-express compatibility but ignored: {why}"
            )
        })
        .collect()
}
