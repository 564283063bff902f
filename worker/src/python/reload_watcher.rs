//! Reloading on changes, by asking the master for a graceful reload (over
//! the channel), the same as an operator would. The new generation loads
//! the changed code; the old workers keep serving until it is ready, so a
//! file saved with a syntax error costs no request.
//!
//! Two scopes, as mod_wsgi-express has them:
//! - the entry point's file (the WSGI script, the Paste `.ini`, the module's
//!   source): mod_wsgi's script reloading, the `touch wsgi.py` deploy habit.
//!   On unless `--disable-reloading`; one `stat` a second.
//! - `--reload-on-changes`: the files of every loaded module. The list is
//!   taken from `sys.modules` with the GIL (new imports join it); the `stat`
//!   calls run without it.

use super::Application;
use pyo3::prelude::*;
use rwsgi_shared::channel::{Channel, Event, Message};
use rwsgi_shared::config::{AppSpec, AppType, ServerConfig};
use slog::{debug, error, info, warn, Logger};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How far a file's modification time may lag the clock that
/// `load_started` was read from: the kernel stamps files with its coarse
/// clock (one tick, 4 to 10 ms, behind), so a save a few milliseconds after
/// loading began could look older than the load and be missed.
const MTIME_COARSENESS: Duration = Duration::from_millis(20);

/// How often the files are checked (mod_wsgi-express checks every second).
const INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a version of a file.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Everything the watcher thread needs.
pub struct Watch {
    pub app: Arc<Application>,
    /// A second handle on the worker's channel, to ask for the reload.
    pub channel: Channel,
    pub log: Logger,
    /// When the application started loading: a file modified later may
    /// have been read before the change, so it counts as changed.
    pub load_started: SystemTime,
}

/// What a worker watches for changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// `--disable-reloading`, or no application.
    Nothing,
    /// The entry point's file: `path` for a script or Paste file, else the
    /// source of the named module (known once it is imported).
    EntryPoint {
        path: Option<PathBuf>,
        module: Option<String>,
    },
    /// `--reload-on-changes`: every loaded module, and the entry point file.
    AllModules { extra: Vec<String> },
}

/// What the configuration has a worker watch.
pub fn watched(config: &ServerConfig) -> Watched {
    decide(
        &config.app,
        config.python.reload_on_changes,
        config.python.disable_reloading,
    )
}

/// The decision, on plain values.
fn decide(app: &AppSpec, reload_on_changes: bool, disable_reloading: bool) -> Watched {
    let entry_file = match app.kind {
        // An empty script path is the built-in default page: no file.
        AppType::Script | AppType::Paste if !app.entry_point.is_empty() => {
            Some(app.entry_point.clone())
        }
        _ => None,
    };
    // "Disables all reloading" (mod_wsgi-express's help), --reload-on-changes too.
    if disable_reloading {
        return Watched::Nothing;
    }
    if reload_on_changes {
        return Watched::AllModules {
            extra: entry_file.into_iter().collect(),
        };
    }
    match app.kind {
        AppType::Static => Watched::Nothing,
        AppType::Script | AppType::Paste => Watched::EntryPoint {
            path: entry_file.map(PathBuf::from),
            module: None,
        },
        // `module:callable`: the module's file.
        AppType::Module => Watched::EntryPoint {
            path: None,
            module: app.entry_point.split(':').next().map(str::to_owned),
        },
    }
}

/// Starts the watcher thread, unless nothing is to be watched.
pub fn watch_for_changes(config: &ServerConfig, watch: Watch) {
    let what = watched(config);
    if what == Watched::Nothing {
        return;
    }
    let log = watch.log.clone();
    let spawned = std::thread::Builder::new()
        .name("rwsgi-reload".into())
        .spawn(move || run(watch, what));
    if let Err(e) = spawned {
        error!(log, "cannot start the reload monitor: {}", e);
    }
}

/// The source file of an imported module, as `module_files` names it.
fn module_file(name: &str) -> Option<String> {
    Python::attach(|py| {
        let module = py
            .import("sys")
            .ok()?
            .getattr("modules")
            .ok()?
            .get_item(name)
            .ok()?;
        let path: String = module.getattr("__file__").ok()?.extract().ok()?;
        Some(
            match path.strip_suffix(".pyc").or(path.strip_suffix(".pyo")) {
                Some(stem) => format!("{stem}.py"),
                None => path,
            },
        )
    })
}

fn run(watch: Watch, what: Watched) {
    let fixed: Option<Vec<String>> = match &what {
        Watched::AllModules { .. } => {
            info!(
                watch.log,
                "watching the application's files for changes (--reload-on-changes)"
            );
            None
        }
        Watched::EntryPoint { path, module } => {
            let file = path
                .as_ref()
                .map(|p| p.display().to_string())
                .or_else(|| module.as_deref().and_then(module_file));
            let Some(file) = file else {
                return;
            };
            debug!(watch.log, "reloading when the entry point changes (--disable-reloading turns it off)"; "file" => &file);
            Some(vec![file])
        }
        Watched::Nothing => return,
    };
    let mut known: HashMap<PathBuf, Stamp> = HashMap::new();
    loop {
        let files = match (&fixed, &what) {
            (Some(files), _) => Ok(files.clone()),
            (None, Watched::AllModules { extra }) => Python::attach(|py| {
                watch
                    .app
                    .bootstrap
                    .bind(py)
                    .call_method1("module_files", (extra.clone(),))
                    .and_then(|f| f.extract::<Vec<String>>())
            }),
            (None, _) => return,
        };
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
                    mtime + MTIME_COARSENESS > watch.load_started && mtime <= SystemTime::now()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn app(kind: AppType, entry_point: &str) -> AppSpec {
        AppSpec {
            kind,
            entry_point: entry_point.into(),
            callable: "application".into(),
        }
    }

    #[test]
    fn the_entry_point_file_is_watched_by_default() {
        assert_eq!(
            decide(&app(AppType::Script, "/srv/wsgi.py"), false, false),
            Watched::EntryPoint {
                path: Some("/srv/wsgi.py".into()),
                module: None
            }
        );
        assert_eq!(
            decide(&app(AppType::Paste, "/srv/site.ini"), false, false),
            Watched::EntryPoint {
                path: Some("/srv/site.ini".into()),
                module: None
            }
        );
        assert_eq!(
            decide(&app(AppType::Module, "example.wsgi:app"), false, false),
            Watched::EntryPoint {
                path: None,
                module: Some("example.wsgi".into())
            }
        );
    }

    #[test]
    fn disable_reloading_watches_nothing() {
        for kind in [AppType::Script, AppType::Paste, AppType::Module] {
            assert_eq!(decide(&app(kind, "x"), false, true), Watched::Nothing);
            assert_eq!(decide(&app(kind, "x"), true, true), Watched::Nothing);
        }
        assert_eq!(
            decide(&app(AppType::Static, ""), false, false),
            Watched::Nothing
        );
    }

    #[test]
    fn reload_on_changes_watches_every_module() {
        assert_eq!(
            decide(&app(AppType::Script, "/srv/wsgi.py"), true, false),
            Watched::AllModules {
                extra: vec!["/srv/wsgi.py".into()]
            }
        );
        assert_eq!(
            decide(&app(AppType::Module, "example.wsgi"), true, false),
            Watched::AllModules { extra: vec![] }
        );
    }
}
