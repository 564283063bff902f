//! Configuration errors: each names the option at fault.

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// A usage error, `--help` or `--version`; clap formats it.
    #[error("{0}")]
    Clap(#[from] clap::Error),
    #[error("{0}")]
    Invalid(String),
}

impl ConfError {
    /// Prints the error (or the help text) the way a user expects to see it.
    pub fn print(&self) {
        match self {
            ConfError::Clap(e) => {
                let _ = e.print();
            }
            ConfError::Invalid(msg) => eprintln!("rwsgi: error: {msg}"),
        }
    }

    /// True for `--help` and `--version`, which are not failures.
    pub fn is_informational(&self) -> bool {
        matches!(self, ConfError::Clap(e) if matches!(
            e.kind(),
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
        ))
    }
}

pub(crate) fn invalid(option: &str, message: impl std::fmt::Display) -> ConfError {
    ConfError::Invalid(format!("invalid value for '--{option}': {message}"))
}
