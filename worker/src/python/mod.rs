//! The embedded interpreter: start-up, application loading, application
//! output, the reload-on-changes file watcher, exit handlers. It depends on no
//! other module of the worker: `wsgi` and `guard` build on it.

mod app;
mod debug;
mod guard_scripts;
mod init;
mod interrupt;
mod output;
mod reload_watcher;
pub mod server_metrics;
pub use output::{ErrorStream, LogSink};
mod stacks;

pub use app::{
    bootstrap, load_application, log_exception, prepare_interpreter, prepare_template,
    run_exit_handlers, Application,
};
pub use init::{start, Interpreter};
pub use interrupt::Interrupts;
pub use reload_watcher::{watch_for_changes, watched, Watch, Watched};
pub use stacks::{beat_python, install_dump};
