//! mod_wsgi-express's debug mode and the debugging aids that imply it
//! (`--enable-debugger`, `--enable-coverage`, `--enable-profiler`,
//! `--enable-recorder`), as mod_wsgi-express 6.0.5's `server.py` resolves
//! them: any aid turns debug mode on, `--debugger-startup` needs
//! `--enable-debugger`, and debug mode overrides whatever concerns
//! processes, threads, reloading and the timeouts that would end a request
//! paused at the debugger's prompt.

use crate::error::ConfError;
use clap::Args;
use rwsgi_shared::config::{DebugConfig, Preload, Recycle, ServerConfig};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Args)]
pub struct DebugArgs {
    /// Development: one process with one request thread, in the
    /// foreground, with the terminal as its standard input and output (for
    /// an interactive debugger). Overrides --processes, --threads and
    /// --preload; reloading, recycling and the request, queue, startup and
    /// deadlock timeouts are off. Implied by the --enable-* aids below.
    #[arg(long, env = "RWSGI_DEBUG_MODE")]
    pub debug_mode: bool,

    /// pdb post-mortem, on the terminal, of an exception the application
    /// raises (from the call, its iterable or close()); the client gets
    /// its 500 once the debugger is left. Implies --debug-mode.
    #[arg(long, env = "RWSGI_ENABLE_DEBUGGER")]
    pub enable_debugger: bool,

    /// With --enable-debugger: pdb on the terminal once the application is
    /// loaded, before the first request, to set breakpoints (`c` serves).
    #[arg(long, env = "RWSGI_DEBUGGER_STARTUP")]
    pub debugger_startup: bool,

    /// coverage.py measures the application from before its import; the
    /// HTML report is written when the server stops (SIGTERM or Ctrl-C).
    /// Needs the coverage package in the application's Python. Implies
    /// --debug-mode.
    #[arg(long, env = "RWSGI_ENABLE_COVERAGE")]
    pub enable_coverage: bool,

    /// Directory of the coverage report (default: htmlcov in the
    /// working directory).
    #[arg(long, value_name = "DIRECTORY-PATH", env = "RWSGI_COVERAGE_DIRECTORY")]
    pub coverage_directory: Option<PathBuf>,

    /// A cProfile dump (TIME-PID.pstats, for pstats or snakeviz) for each
    /// request. Implies --debug-mode.
    #[arg(long, env = "RWSGI_ENABLE_PROFILER")]
    pub enable_profiler: bool,

    /// Directory of the profiler's dumps (default: pstats in the working
    /// directory).
    #[arg(long, value_name = "DIRECTORY-PATH", env = "RWSGI_PROFILER_DIRECTORY")]
    pub profiler_directory: Option<PathBuf>,

    /// Records each request and its response in files named
    /// TIME-PID-COUNT.EXT, as mod_wsgi-express does: .iheaders (the
    /// environ), .icontent (the body), .oheaders (status and headers),
    /// .ocontent (the body sent), and the tracebacks of what raised.
    /// Implies --debug-mode.
    #[arg(long, env = "RWSGI_ENABLE_RECORDER")]
    pub enable_recorder: bool,

    /// Directory of the recordings (default: archive in the working
    /// directory).
    #[arg(long, value_name = "DIRECTORY-PATH", env = "RWSGI_RECORDER_DIRECTORY")]
    pub recorder_directory: Option<PathBuf>,
}

impl DebugArgs {
    /// Debug mode, asked for or implied by an aid.
    pub fn wanted(&self) -> bool {
        self.debug_mode
            || self.enable_debugger
            || self.enable_coverage
            || self.enable_profiler
            || self.enable_recorder
    }
}

/// The debug configuration the options ask for; `None`: not in debug mode.
/// Relative directories are relative to the start directory `cwd`, the
/// defaults are in the `working_directory`.
pub fn resolve(
    args: &DebugArgs,
    cwd: &Path,
    working_directory: &Path,
) -> Result<Option<DebugConfig>, ConfError> {
    if args.debugger_startup && !args.enable_debugger {
        // mod_wsgi-express's own words.
        return Err(ConfError::Invalid(
            "--debugger-startup requires --enable-debugger".to_owned(),
        ));
    }
    if !args.wanted() {
        return Ok(None);
    }
    let directory = |on: bool, given: &Option<PathBuf>, default: &str| {
        on.then(|| match given {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => cwd.join(p),
            None => working_directory.join(default),
        })
    };
    Ok(Some(DebugConfig {
        debugger: args.enable_debugger,
        debugger_startup: args.debugger_startup,
        coverage_directory: directory(args.enable_coverage, &args.coverage_directory, "htmlcov"),
        profiler_directory: directory(args.enable_profiler, &args.profiler_directory, "pstats"),
        recorder_directory: directory(args.enable_recorder, &args.recorder_directory, "archive"),
    }))
}

/// Debug mode's overrides, as mod_wsgi-express's ONE_PROCESS: one process
/// (the caller forces that before counting connections), one thread, no
/// template, no reloading or recycling, and no deadline that would end a
/// request (or a start-up) waiting at the debugger's prompt.
pub fn apply(mut config: ServerConfig) -> ServerConfig {
    if config.debug.is_none() {
        return config;
    }
    let off = crate::resolve::NO_TIMEOUT_MS;
    config.processes = 1;
    config.threads = 1;
    config.multiprocess = false;
    // The worker is the master's own child, started with the terminal.
    config.preload = Preload::None;
    config.python.reload_on_changes = false;
    config.python.disable_reloading = true;
    config.recycle = Recycle::default();
    let t = &mut config.timeouts;
    t.request_ms = off;
    t.interrupt_ms = 0;
    t.queue_ms = off;
    t.startup_ms = off;
    t.deadlock_ms = off;
    config
}

/// The start-up summary's lines for debug mode (mod_wsgi-express prints
/// where each aid writes).
pub fn summary(debug: &DebugConfig) -> Vec<String> {
    let mut lines = vec![format!(
        "debug mode: one process, one thread, stdin and stdout on the terminal; no reloading, recycling, request, queue, startup or deadlock timeouts{}",
        match (debug.debugger, debug.debugger_startup) {
            (true, true) => "; pdb at start-up and post-mortem",
            (true, false) => "; pdb post-mortem",
            _ => "",
        }
    )];
    if let Some(d) = &debug.coverage_directory {
        lines.push(format!(
            "coverage output: {} (written at exit)",
            d.join("index.html").display()
        ));
    }
    if let Some(d) = &debug.profiler_directory {
        lines.push(format!("profiler output: {}", d.display()));
    }
    if let Some(d) = &debug.recorder_directory {
        lines.push(format!("recorder output: {}", d.display()));
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args() -> DebugArgs {
        DebugArgs::default()
    }

    #[test]
    fn without_any_option_there_is_no_debug_mode() {
        assert_eq!(
            resolve(&args(), Path::new("/a"), Path::new("/w")).unwrap(),
            None
        );
    }

    #[test]
    fn every_aid_implies_debug_mode_with_its_default_directory() {
        let a = DebugArgs {
            enable_coverage: true,
            enable_profiler: true,
            enable_recorder: true,
            ..args()
        };
        let d = resolve(&a, Path::new("/a"), Path::new("/w"))
            .unwrap()
            .unwrap();
        assert_eq!(d.coverage_directory, Some(PathBuf::from("/w/htmlcov")));
        assert_eq!(d.profiler_directory, Some(PathBuf::from("/w/pstats")));
        assert_eq!(d.recorder_directory, Some(PathBuf::from("/w/archive")));
        assert!(!d.debugger);
    }

    #[test]
    fn a_directory_is_relative_to_the_start_directory_and_ignored_without_its_aid() {
        let a = DebugArgs {
            enable_profiler: true,
            profiler_directory: Some("prof".into()),
            recorder_directory: Some("rec".into()),
            ..args()
        };
        let d = resolve(&a, Path::new("/a"), Path::new("/w"))
            .unwrap()
            .unwrap();
        assert_eq!(d.profiler_directory, Some(PathBuf::from("/a/prof")));
        assert_eq!(d.recorder_directory, None);
    }

    #[test]
    fn debug_mode_overrides_processes_threads_preload_reloading_and_paused_request_deadlines() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/wsgi.py");
        let argv = [
            "rwsgi",
            "start-server",
            "--enable-recorder",
            "--processes",
            "3",
            "--threads",
            "4",
            "--preload",
            "--maximum-requests",
            "5",
            "--reload-on-changes",
            script,
        ];
        let Ok(crate::Invocation::StartServer { config, .. }) = crate::parse(argv) else {
            panic!("not a start-server configuration");
        };
        assert_eq!((config.processes, config.threads), (1, 1));
        assert!(!config.multiprocess);
        assert_eq!(config.preload, Preload::None);
        assert!(!config.python.reload_on_changes && config.python.disable_reloading);
        assert_eq!(config.recycle.max_requests, 0);
        let off = crate::resolve::NO_TIMEOUT_MS;
        let t = config.timeouts;
        assert_eq!(
            (t.request_ms, t.queue_ms, t.startup_ms, t.deadlock_ms),
            (off, off, off, off)
        );
        assert_eq!(t.interrupt_ms, 0);
        assert!(config.debug.is_some_and(|d| d.recorder_directory.is_some()));
    }

    #[test]
    fn debugger_startup_needs_the_debugger() {
        let a = DebugArgs {
            debugger_startup: true,
            debug_mode: true,
            ..args()
        };
        let e = resolve(&a, Path::new("/a"), Path::new("/w")).unwrap_err();
        assert!(e.to_string().contains("--debugger-startup"), "{e}");
        assert!(e.to_string().contains("--enable-debugger"), "{e}");
    }
}
