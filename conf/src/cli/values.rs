//! The values options take: the enums clap parses and the parsers of the
//! forms mod_wsgi-express accepts (Apache's log levels, `--processes auto`).

use super::MAX_PROCESSES;
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApplicationType {
    /// A WSGI script file (wsgi.py).
    Script,
    /// A dotted Python module path (example.wsgi or example.wsgi:app).
    Module,
    /// A PasteDeploy .ini file.
    Paste,
    /// No application: serve the document root only.
    Static,
}

/// `--log-level`: Apache's levels in any case; `trace1`..`trace8` are
/// `debug`, and a per-module form (`warn wsgi:info`) takes the `wsgi:` level
/// when there is one (rwsgi's log is mod_wsgi's), else the first plain one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevelArg {
    Emerg,
    Alert,
    Crit,
    Error,
    Warn,
    Notice,
    Info,
    Debug,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreloadArg {
    /// Every worker starts Python and imports the application itself.
    None,
    /// Python starts once in a template process; workers fork from it and
    /// import the application themselves (safe for every application).
    Interpreter,
    /// The template imports the application too (gunicorn's --preload).
    Application,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

/// `--map-head-to-get` (mod_wsgi's WSGIMapHEADToGET).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum MapHeadToGetArg {
    Off,
    On,
    /// mod_wsgi maps when an Apache output filter is present; rwsgi has
    /// none, so Auto does not map.
    Auto,
}

/// `--processes`: a count, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processes {
    Count(u32),
    Auto,
}

/// `--log-level` as Apache's `LogLevel` takes it (see [`LogLevelArg`]).
pub fn parse_log_level(s: &str) -> Result<LogLevelArg, String> {
    let word = |w: &str| -> Result<LogLevelArg, String> {
        let w = w.to_ascii_lowercase();
        if w.starts_with("trace") && w[5..].parse::<u8>().is_ok_and(|n| (1..=8).contains(&n)) {
            return Ok(LogLevelArg::Debug);
        }
        LogLevelArg::from_str(&w, true).map_err(|_| {
            format!("{w:?} is not a level: emerg, alert, crit, error, warn, notice, info, debug, trace1..trace8")
        })
    };
    let words: Vec<&str> = s.split_whitespace().collect();
    let module = words.iter().find_map(|w| {
        w.split_once(':')
            .filter(|(m, _)| m.eq_ignore_ascii_case("wsgi"))
            .map(|(_, l)| l)
    });
    let plain = words.iter().copied().find(|w| !w.contains(':'));
    match (module, plain) {
        (Some(level), _) | (None, Some(level)) => word(level),
        (None, None) => Err("a level such as info or warn".to_owned()),
    }
}

pub(super) fn parse_processes(s: &str) -> Result<Processes, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(Processes::Auto);
    }
    match s.parse::<u32>() {
        Ok(n) if (1..=MAX_PROCESSES).contains(&n) => Ok(Processes::Count(n)),
        _ => Err(format!("a number from 1 to {MAX_PROCESSES}, or auto")),
    }
}
