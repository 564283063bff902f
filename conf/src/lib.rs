//! rwsgi's command line, compatible with mod_wsgi-express.
//!
//! `parse` turns the arguments (and `RWSGI_*` environment variables) into a
//! validated [`ServerConfig`]. Options mod_wsgi-express has but rwsgi does not
//! implement are accepted with a warning, so an existing CMD never fails.

mod cli;
mod compat;
mod error;
mod resolve;
mod summary;

pub use cli::{Cli, Command, StartServer};
pub use compat::UNIMPLEMENTED;
pub use error::ConfError;
pub use resolve::resolve;
pub use summary::summary;

use rwsgi_shared::config::ServerConfig;

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run the server; `warnings` lists accepted-but-ignored options.
    StartServer {
        config: Box<ServerConfig>,
        warnings: Vec<String>,
    },
    /// Print the scoreboard of a running server.
    Status { pid: Option<u32> },
}

/// Parses `args` (including the program name). Help, version and usage
/// errors come back as `ConfError::Clap`, which prints itself like clap does.
pub fn parse<I, T>(args: I) -> Result<Invocation, ConfError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = cli::command().try_get_matches_from(args)?;
    let (name, sub) = matches.subcommand().ok_or(ConfError::Invalid(
        "a command is required; try `rwsgi start-server --help`".into(),
    ))?;
    match name {
        "start-server" => {
            let warnings = compat::warnings(sub);
            let args = <StartServer as clap::FromArgMatches>::from_arg_matches(sub)?;
            let config = resolve(&args)?;
            Ok(Invocation::StartServer {
                config: Box::new(config),
                warnings,
            })
        }
        "status" => {
            let args = <cli::Status as clap::FromArgMatches>::from_arg_matches(sub)?;
            Ok(Invocation::Status { pid: args.pid })
        }
        other => Err(ConfError::Invalid(format!("unknown command {other}"))),
    }
}
