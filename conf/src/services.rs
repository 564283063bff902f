//! `--service-script NAME SCRIPT-PATH` and the options that go with it
//! (`--service-user`, `--service-group`, `--service-log-file`, each
//! `SERVICE VALUE`), as mod_wsgi-express 6 takes them: the script path is
//! made absolute against the start directory, as mod_wsgi-express does; a
//! user or group is looked up once, here, so a typo stops the start with
//! the option's name; an option naming no declared service is ignored by
//! mod_wsgi-express, and warned about here.

use crate::cli::StartServer;
use crate::error::{invalid, ConfError};
use rwsgi_shared::config::{RunAs, Service, SERVICE_NAME_MAX};
use rwsgi_shared::service_board::MAX_SERVICES;
use std::path::Path;

/// `SERVICE VALUE` pairs of a two-valued option.
fn pairs(values: &[String]) -> impl Iterator<Item = (&str, &str)> {
    values.chunks(2).filter_map(|p| match p {
        [a, b] => Some((a.as_str(), b.as_str())),
        _ => None,
    })
}

/// The value given for `service` (the last one wins, as with optparse's
/// `dict(...)` in mod_wsgi-express).
fn value_for<'a>(values: &'a [String], service: &str) -> Option<&'a str> {
    pairs(values)
        .filter(|(s, _)| *s == service)
        .map(|(_, v)| v)
        .last()
}

/// A service name: it becomes the process group `service:NAME`, a label
/// in the metrics and a field of the service board.
fn check_name(name: &str) -> Result<(), ConfError> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if name.is_empty() || name.len() > SERVICE_NAME_MAX || !name.bytes().all(ok) {
        return Err(invalid(
            "service-script",
            format_args!(
                "{name:?} is not a service name (1 to {SERVICE_NAME_MAX} letters, digits, '.', '_', '-')"
            ),
        ));
    }
    Ok(())
}

/// The services, validated; `cwd` is the start directory.
pub fn resolve(args: &StartServer, cwd: &Path) -> Result<Vec<Service>, ConfError> {
    let mut services: Vec<Service> = Vec::new();
    if args.service_scripts.is_empty() {
        return Ok(services);
    }
    // The identity the master will run as: services start from it.
    let master: Option<RunAs> =
        crate::identity::resolve(args.user.as_deref(), args.group.as_deref())?;
    for (name, script) in pairs(&args.service_scripts) {
        check_name(name)?;
        if services.iter().any(|s| s.name == name) {
            return Err(invalid(
                "service-script",
                format_args!("service {name} is named twice"),
            ));
        }
        if services.len() == MAX_SERVICES {
            return Err(invalid(
                "service-script",
                format_args!("at most {MAX_SERVICES} services"),
            ));
        }
        let script = cwd.join(script);
        if !script.is_file() {
            return Err(invalid(
                "service-script",
                format_args!("{name}: {} is not a file", script.display()),
            ));
        }
        let run_as = crate::identity::resolve_service(
            name,
            value_for(&args.service_users, name),
            value_for(&args.service_groups, name),
            master.as_ref(),
        )?;
        // As mod_wsgi-express: a relative name is in --log-directory.
        let log_base = args
            .log_directory
            .as_ref()
            .map_or(cwd.to_owned(), |d| cwd.join(d));
        let log_file = value_for(&args.service_log_files, name).map(|f| log_base.join(f));
        if let Some(file) = &log_file {
            if file.is_dir() || !file.parent().is_some_and(Path::is_dir) {
                return Err(invalid(
                    "service-log-file",
                    format_args!(
                        "{name}: {} is not a file in an existing directory",
                        file.display()
                    ),
                ));
            }
        }
        services.push(Service {
            name: name.to_owned(),
            script,
            run_as,
            log_file,
        });
    }
    Ok(services)
}

/// One warning per `--service-user`, `--service-group` or
/// `--service-log-file` that names no `--service-script`.
pub fn warnings(args: &StartServer) -> Vec<String> {
    let declared: Vec<&str> = pairs(&args.service_scripts).map(|(n, _)| n).collect();
    [
        ("service-user", &args.service_users),
        ("service-group", &args.service_groups),
        ("service-log-file", &args.service_log_files),
    ]
    .into_iter()
    .flat_map(|(option, values)| {
        pairs(values)
            .filter(|(s, _)| !declared.contains(s))
            .map(move |(s, _)| {
                format!("--{option} {s}: no --service-script {s}; the option is ignored")
            })
    })
    .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::{parse, ConfError, Invocation};
    use rwsgi_shared::config::ServerConfig;

    const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/wsgi.py");

    fn start(args: &[&str]) -> Result<(ServerConfig, Vec<String>), ConfError> {
        let mut argv = vec!["rwsgi", "start-server"];
        argv.extend_from_slice(args);
        argv.push(SCRIPT);
        match parse(argv)? {
            Invocation::StartServer { config, warnings } => Ok((*config, warnings)),
            _ => panic!("not start-server"),
        }
    }

    fn error(args: &[&str]) -> String {
        start(args).unwrap_err().to_string()
    }

    #[test]
    fn services_are_resolved_with_their_options() {
        let (c, warnings) = start(&[
            "--service-script",
            "consumer",
            SCRIPT,
            "--service-script",
            "cron",
            SCRIPT,
            "--service-log-file",
            "cron",
            "cron.log",
        ])
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.services.len(), 2);
        assert_eq!(c.services[0].name, "consumer");
        assert!(c.services[0].script.is_absolute());
        assert_eq!(c.services[0].log_file, None);
        assert_eq!(c.services[0].run_as, None);
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.services[1].log_file, Some(cwd.join("cron.log")));
        assert!(start(&[]).unwrap().0.services.is_empty());
    }

    #[test]
    fn bad_services_stop_the_start_naming_the_option() {
        let e = error(&[
            "--service-script",
            "a",
            SCRIPT,
            "--service-script",
            "a",
            SCRIPT,
        ]);
        assert!(
            e.contains("'--service-script'") && e.contains("named twice"),
            "{e}"
        );
        let e = error(&["--service-script", "a b", SCRIPT]);
        assert!(e.contains("not a service name"), "{e}");
        let long = "x".repeat(33);
        assert!(error(&["--service-script", &long, SCRIPT]).contains("not a service name"));
        let e = error(&["--service-script", "a", "/no/such/script.py"]);
        assert!(
            e.contains("'--service-script'") && e.contains("not a file"),
            "{e}"
        );
        let e = error(&[
            "--service-script",
            "a",
            SCRIPT,
            "--service-log-file",
            "a",
            "/no/such/dir/a.log",
        ]);
        assert!(e.contains("'--service-log-file'"), "{e}");
        let e = error(&[
            "--service-script",
            "a",
            SCRIPT,
            "--service-user",
            "a",
            "no-such-user-here",
        ]);
        assert!(e.contains("'--service-user a'"), "{e}");
    }

    #[test]
    fn options_for_an_undeclared_service_are_warned_about() {
        let (c, warnings) = start(&["--service-group", "ghost", "0"]).unwrap();
        assert!(c.services.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("--service-group ghost"),
            "{warnings:?}"
        );
    }
}
