//! The embedded interpreter: start-up, application loading, exit handlers.

mod app;
mod init;

pub use app::{load_application, log_exception, run_exit_handlers, Application};
pub use init::{start, Interpreter};
