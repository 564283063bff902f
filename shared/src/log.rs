//! Log set-up shared by master and workers: slog to standard error.
//!
//! The drain is synchronous (a mutex around the formatter) on purpose: an
//! asynchronous drain drops lines when it overflows or when a process exits,
//! and a server's last words are the ones an operator needs most.

use crate::config::{LogFormat, LogLevel};
use slog::{o, Drain, Level, Logger};
use std::sync::Mutex;

pub use slog::{debug, error, info, warn};

fn slog_level(level: LogLevel) -> Level {
    match level {
        LogLevel::Debug => Level::Debug,
        LogLevel::Info => Level::Info,
        LogLevel::Warn => Level::Warning,
        LogLevel::Error => Level::Error,
    }
}

/// A logger writing to standard error in the chosen format.
pub fn logger(format: LogFormat, level: LogLevel, component: &'static str) -> Logger {
    let level = slog_level(level);
    match format {
        LogFormat::Text => {
            let decorator = slog_term::PlainSyncDecorator::new(std::io::stderr());
            let drain = slog_term::FullFormat::new(decorator)
                .use_original_order()
                .build()
                .filter_level(level)
                .fuse();
            Logger::root(Mutex::new(drain).fuse(), o!("proc" => component))
        }
        LogFormat::Json => {
            let drain = slog_json::Json::new(std::io::stderr())
                .add_default_keys()
                .build()
                .filter_level(level)
                .fuse();
            Logger::root(Mutex::new(drain).fuse(), o!("proc" => component))
        }
    }
}
