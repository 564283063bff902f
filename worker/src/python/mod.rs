//! The embedded interpreter: start-up, application loading, application
//! output, the reload-on-changes monitor, exit handlers.

mod app;
mod init;
mod interrupt;
mod monitor;
mod output;
pub use output::{LogSink, Source};
mod stacks;

pub use app::{
    bootstrap, load_application, log_exception, prepare_template, run_exit_handlers, Application,
};
pub use init::{start, Interpreter};
pub use interrupt::Interrupts;
pub use monitor::{watch_for_changes, watched, Watch, Watched};
pub use stacks::{beat_python, install_dump};
