//! The files the options name for rwsgi to write or read at start: the
//! log files (`--log-directory` and the names) and `--mime-types`.

use super::absolute;
use crate::cli::StartServer;
use crate::error::{invalid, ConfError};
use std::path::{Path, PathBuf};

/// `--log-directory` and the file names (see `LogFiles`): files only when
/// a directory or an error/access log name is given, as the terminal is
/// rwsgi's default; a relative name is in the directory, or without one
/// in the start directory.
pub(super) fn log_files(
    args: &StartServer,
    cwd: &Path,
) -> Result<Option<rwsgi_shared::config::LogFiles>, ConfError> {
    let dir = args.log_directory.as_ref().map(|d| absolute(cwd, d));
    let named = |name: &Option<PathBuf>, default: &str, wanted: bool| -> Option<PathBuf> {
        match (&dir, name) {
            _ if !wanted => None,
            (Some(dir), name) => Some(dir.join(name.as_deref().unwrap_or(Path::new(default)))),
            // mod_wsgi-express: --log-to-terminal wins over a bare name.
            (None, Some(name)) if !args.log_to_terminal => Some(absolute(cwd, name)),
            (None, _) => None,
        }
    };
    let error = named(&args.error_log_name, "error_log", true);
    let access = named(&args.access_log_name, "access_log", args.access_log);
    let startup = match &dir {
        Some(_) => named(&args.startup_log_name, "startup_log", args.startup_log),
        None => None,
    };
    if error.is_none() && access.is_none() {
        return Ok(None);
    }
    for path in [&error, &access, &startup].into_iter().flatten() {
        if path.is_dir() {
            return Err(invalid(
                "log-directory",
                format_args!("{} is a directory, not a log file", path.display()),
            ));
        }
    }
    let rotate = match args.rotate_logs {
        false => None,
        true => {
            let mb = args.max_log_size;
            if !(mb.is_finite() && mb > 0.0 && mb <= 1_048_576.0) {
                return Err(invalid(
                    "max-log-size",
                    format_args!("{mb} is not a positive number of MB"),
                ));
            }
            if args.max_log_files == 0 {
                return Err(invalid("max-log-files", "keep at least one rotated file"));
            }
            Some(rwsgi_shared::config::LogRotation {
                max_bytes: ((mb * 1_048_576.0) as u64).max(1),
                keep: args.max_log_files,
            })
        }
    };
    Ok(Some(rwsgi_shared::config::LogFiles {
        error,
        access,
        startup,
        rotate,
    }))
}

/// `--mime-types FILE`: the (extension, type) pairs of an Apache or nginx
/// style mime.types file.
pub(super) fn mime_types(file: &Path) -> Result<Vec<(String, String)>, ConfError> {
    let text = std::fs::read(file).map_err(|e| {
        invalid(
            "mime-types",
            format_args!("cannot read {}: {e}", file.display()),
        )
    })?;
    Ok(parse_mime_types(&String::from_utf8_lossy(&text)))
}

/// `type/subtype ext1 ext2` lines, `#` comments; nginx's `types { … }`
/// block form (`type ext1 ext2;`) is read too. Later lines win.
pub fn parse_mime_types(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let line = line.trim().trim_end_matches(';');
        let mut words = line.split_whitespace();
        let Some(mime) = words.next() else { continue };
        if !mime.contains('/') {
            continue;
        }
        for ext in words {
            let ext = ext.trim_start_matches('.').to_ascii_lowercase();
            if !ext.is_empty() {
                pairs.push((ext, mime.to_owned()));
            }
        }
    }
    pairs
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod log_and_mime_tests {
    use super::*;
    use rwsgi_shared::config::{LogFiles, LogLevel, ServerConfig};

    fn config(args: &[&str]) -> Result<ServerConfig, ConfError> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/wsgi.py");
        let mut argv = vec!["rwsgi", "start-server"];
        argv.extend_from_slice(args);
        argv.push(script);
        match crate::parse(argv)? {
            crate::Invocation::StartServer { config, .. } => Ok(*config),
            _ => panic!("not start-server"),
        }
    }

    fn files(args: &[&str]) -> Option<LogFiles> {
        config(args).unwrap().log_files
    }

    #[test]
    fn log_files_are_named_as_mod_wsgi_express_names_them() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(files(&[]), None);
        assert_eq!(files(&["--access-log", "--rotate-logs"]), None);
        let f = files(&["--log-directory", "/l", "--access-log-name", "a.log"]).unwrap();
        assert_eq!(f.error, Some("/l/error_log".into()));
        // No access log without --access-log, no start-up log without --startup-log.
        assert_eq!((f.access, f.startup, f.rotate), (None, None, None));
        let f = files(&[
            "--log-directory",
            "logs",
            "--access-log",
            "--startup-log",
            "--error-log-name",
            "/abs/err",
            "--log-to-terminal",
        ])
        .unwrap();
        assert_eq!(f.error, Some("/abs/err".into()));
        assert_eq!(f.access, Some(cwd.join("logs/access_log")));
        assert_eq!(f.startup, Some(cwd.join("logs/startup_log")));
        // A bare name is a path from the start directory, unless the
        // terminal was asked for.
        let f = files(&["--access-log", "--access-log-name", "acc"]).unwrap();
        assert_eq!((f.error, f.access), (None, Some(cwd.join("acc"))));
        assert_eq!(files(&["--error-log-name", "e", "--log-to-terminal"]), None);
        let f = files(&[
            "--log-directory",
            "/l",
            "--rotate-logs",
            "--max-log-size",
            "0.5",
        ]);
        let rotate = f.unwrap().rotate.unwrap();
        assert_eq!((rotate.max_bytes, rotate.keep), (524_288, 10));
        for bad in [
            &[
                "--log-directory",
                "/l",
                "--rotate-logs",
                "--max-log-size",
                "0",
            ][..],
            &[
                "--log-directory",
                "/l",
                "--rotate-logs",
                "--max-log-files",
                "0",
            ][..],
        ] {
            assert!(config(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn verbose_debugging_is_debug_unless_the_level_is_given() {
        assert_eq!(config(&[]).unwrap().log_level, LogLevel::Info);
        let c = config(&["--verbose-debugging"]).unwrap();
        assert_eq!(c.log_level, LogLevel::Debug);
        let c = config(&["--verbose-debugging", "--log-level", "warn"]).unwrap();
        assert_eq!(c.log_level, LogLevel::Warn);
    }

    #[test]
    fn an_unreadable_mime_types_file_names_the_option() {
        let e = config(&["--mime-types", "/nonexistent/mime.types"]).unwrap_err();
        assert!(e.to_string().contains("--mime-types"), "{e}");
    }

    #[test]
    fn mime_types_lines_comments_and_nginx_blocks() {
        let pairs = parse_mime_types(
            "# comment\napplication/x-thing\tthing  THG\n\ntext/x-lone\n\ntypes {\n    text/x-ng  ng;\n}\nimage/x-a a # trailing\n",
        );
        let want: Vec<(String, String)> = [
            ("thing", "application/x-thing"),
            ("thg", "application/x-thing"),
            ("ng", "text/x-ng"),
            ("a", "image/x-a"),
        ]
        .iter()
        .map(|(e, t)| (e.to_string(), t.to_string()))
        .collect();
        assert_eq!(pairs, want);
    }
}
