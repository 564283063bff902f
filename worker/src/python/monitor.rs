//! `--reload-on-changes`: watch the files of every loaded module and, when
//! one changes, ask the master for a graceful reload (SIGHUP), the same as an
//! operator would. The new generation loads the changed code; the old workers
//! keep serving until it is ready, so a file saved with a syntax error costs
//! no request.
//!
//! The list of files is taken from `sys.modules` with the GIL (new imports
//! join it); the `stat` calls run without it.

use super::Application;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getppid, Pid};
use pyo3::prelude::*;
use rwsgi_shared::config::{AppType, ServerConfig};
use rwsgi_shared::scoreboard::Scoreboard;
use slog::{error, info, warn, Logger};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the files are checked (mod_wsgi-express checks every second).
const INTERVAL: Duration = Duration::from_secs(1);

/// Workers of one generation signal one after the other, this far apart, so
/// the first one's reload is seen by the others and only one is asked for.
const STAGGER: Duration = Duration::from_millis(300);

/// What identifies a version of a file.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Everything the monitor thread needs.
pub struct Watch {
    pub app: Arc<Application>,
    pub scoreboard: Arc<Scoreboard>,
    pub slot: usize,
    pub generation: u32,
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
        AppType::Script | AppType::Paste => vec![config.app.entry_point.clone()],
        AppType::Module | AppType::Static => Vec::new(),
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

/// Sends SIGHUP to the master unless another worker already caused a reload.
fn request_reload(watch: &Watch) {
    // Rank among the live workers of this generation: the first one signals
    // at once, the others only if they still see no reload after a while.
    let rank = watch
        .scoreboard
        .workers()
        .filter(|(i, w)| *i < watch.slot && w.pid() != 0 && w.generation() == watch.generation)
        .count();
    std::thread::sleep(STAGGER * rank.min(16) as u32);
    let header = watch.scoreboard.header();
    if header.generation() != watch.generation {
        return;
    }
    let master = header.master_pid();
    if master == 0 || getppid().as_raw() as u32 != master {
        warn!(watch.log, "cannot ask for a reload: the master is gone"; "master" => master);
        return;
    }
    if let Err(e) = kill(Pid::from_raw(master as i32), Signal::SIGHUP) {
        error!(watch.log, "cannot signal the master for a reload: {}", e);
    }
}
