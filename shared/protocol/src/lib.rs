//! What the `rwsgi` master and the `rwsgi-worker` processes agree on.
//!
//! Everything here is plain data or a protocol both sides must share: the
//! validated server configuration, the master/worker channel and the
//! connection origin it carries, the shared-memory scoreboard and its
//! metrics layout, the status model read from it, time, logging, exit
//! codes, descriptor limits and process titles. The HTTP machinery (the
//! workers' and the admin port's parser) is the `rwsgi-http` crate beside it.

pub mod channel;
pub mod config;
pub mod exit;
pub mod log;
pub mod metrics;
pub mod origin;
pub mod proctitle;
pub mod rlimit;
pub mod scoreboard;
pub mod server_metrics;
pub mod service_board;
pub mod status;
pub mod time;
