//! `--reload-on-changes`: watch the files of every loaded module and, when
//! one changes, ask the master for a graceful reload (over the channel), the same as an
//! operator would. The new generation loads the changed code; the old workers
//! keep serving until it is ready, so a file saved with a syntax error costs
//! no request.
//!
//! The list of files is taken from `sys.modules` with the GIL (new imports
//! join it); the `stat` calls run without it.

use super::Application;
use pyo3::prelude::*;
use rwsgi_shared::channel::{Channel, Event, Message};
use rwsgi_shared::config::{AppType, ServerConfig};
use slog::{error, info, warn, Logger};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the files are checked (mod_wsgi-express checks every second).
const INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a version of a file.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Everything the monitor thread needs.
pub struct Watch {
    pub app: Arc<Application>,
    /// A second handle on the worker's channel, to ask for the reload.
    pub channel: Channel,
    pub log: Logger,
    /// When the application started loading: a file modified later may
    /// have been read before the change, so it counts as changed.
    pub load_started: SystemTime,
}

/// Starts the monitor thread when `--reload-on-changes` is on.
pub fn watch_for_changes(config: &ServerConfig, watch: Watch) {
    if !config.python.reload_on_changes {
        return;
    }
    let extra: Vec<String> = match config.app.kind {
        // An empty script path is the built-in default page: no file.
        AppType::Script | AppType::Paste if !config.app.entry_point.is_empty() => {
            vec![config.app.entry_point.clone()]
        }
        _ => Vec::new(),
    };
    let log = watch.log.clone();
    let spawned = std::thread::Builder::new()
        .name("rwsgi-reload".into())
        .spawn(move || run(watch, extra));
    if let Err(e) = spawned {
        error!(log, "cannot start the reload monitor: {}", e);
    }
}

fn run(watch: Watch, extra: Vec<String>) {
    info!(
        watch.log,
        "watching the application's files for changes (--reload-on-changes)"
    );
    let mut known: HashMap<PathBuf, Stamp> = HashMap::new();
    loop {
        let files = Python::attach(|py| {
            watch
                .app
                .bootstrap
                .bind(py)
                .call_method1("module_files", (extra.clone(),))
                .and_then(|f| f.extract::<Vec<String>>())
        });
        let files = match files {
            Ok(f) => f,
            Err(e) => {
                error!(
                    watch.log,
                    "the reload monitor cannot list the modules: {}", e
                );
                return;
            }
        };
        let mut changed = None;
        for file in files {
            let path = PathBuf::from(file);
            let now = stamp(&path);
            match known.get(&path) {
                // Saved after loading began: the loaded code may predate it.
                // (A timestamp in the future is clock skew, not a save: it
                // would otherwise make every generation reload again.)
                None if now.is_some_and(|(mtime, _)| {
                    mtime > watch.load_started && mtime <= SystemTime::now()
                }) =>
                {
                    changed = Some(path);
                    break;
                }
                // A module imported since the last round: its current version is the baseline.
                None => {
                    known.insert(path, now);
                }
                Some(before) if *before != now => {
                    changed = Some(path);
                    break;
                }
                Some(_) => {}
            }
        }
        if let Some(path) = changed {
            info!(watch.log, "a file of the application changed; reloading the workers";
                "file" => path.display().to_string());
            request_reload(&watch);
            return;
        }
        std::thread::sleep(INTERVAL);
    }
}

/// Asks the master for a reload over the channel. Every worker of the
/// generation may ask; the master acts on the first request and ignores
/// those of a generation it has already replaced.
fn request_reload(watch: &Watch) {
    let asked = watch
        .channel
        .send(&Message::Event(Event::ReloadRequested), None);
    if let Err(e) = asked {
        warn!(watch.log, "cannot ask the master for a reload: {}", e);
    }
}
