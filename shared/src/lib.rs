//! Code shared by the `rwsgi` master and the `rwsgi-worker` processes.
//!
//! Everything here is plain data or a protocol both sides must agree on:
//! the validated server configuration, the master/worker channel, the
//! shared-memory scoreboard, the HTTP head parser, the static-file
//! responder, exit codes and logging.

pub mod access_log;
pub mod channel;
pub mod config;
pub mod exit;
pub mod http;
pub mod log;
pub mod metrics;
pub mod origin;
pub mod proctitle;
pub mod proxy;
pub mod proxy_protocol;
pub mod rlimit;
pub mod scoreboard;
pub mod statics;
pub mod status;
pub mod time;
