//! Process exit codes shared by master and workers.
//!
//! Before the server is first ready, a worker that exits ends the server,
//! and its code becomes the server's (`rwsgi` exits 3 when the application
//! cannot be imported, 4 when Python cannot start). Once the server has
//! been ready, a worker that dies is replaced with back-off whatever its
//! code: a later reload may bring a fixed application. The code is logged
//! with its meaning either way.

/// Exit codes of `rwsgi` and `rwsgi-worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    /// Clean stop.
    Ok = 0,
    /// Unexpected failure (the master's generic error).
    Failure = 1,
    /// The command line or environment is invalid; retrying cannot help.
    Config = 2,
    /// The WSGI application could not be imported.
    AppLoad = 3,
    /// The embedded Python interpreter could not start.
    PythonInit = 4,
    /// The server could not bind its listening socket.
    Bind = 5,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<ExitCode> {
        [
            ExitCode::Ok,
            ExitCode::Failure,
            ExitCode::Config,
            ExitCode::AppLoad,
            ExitCode::PythonInit,
            ExitCode::Bind,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }

    pub fn describe(self) -> &'static str {
        match self {
            ExitCode::Ok => "stopped cleanly",
            ExitCode::Failure => "failed",
            ExitCode::Config => "configuration error",
            ExitCode::AppLoad => "the application failed to load",
            ExitCode::PythonInit => "the Python interpreter failed to start",
            ExitCode::Bind => "could not bind the listening socket",
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        // Every variant fits in a u8 by construction.
        std::process::ExitCode::from(code.code() as u8)
    }
}
