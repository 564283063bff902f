//! Helpers for rwsgi's integration tests: start the real `rwsgi` binary in
//! its own process group on a port the kernel picks (the server logs it),
//! wait on conditions until it is ready, talk HTTP over loopback, and kill
//! the whole group when the test is over.

pub mod client;
pub mod haproxy;
pub mod load;
pub mod server;
pub mod wait;

pub use client::{get, request, Response};
pub use server::{Server, ServerBuilder};
pub use wait::{poll_until, wait_until};

use std::path::PathBuf;

/// The directory of the test applications.
pub fn apps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("apps")
}

/// A test application by file name.
pub fn app(name: &str) -> String {
    apps_dir().join(name).to_string_lossy().into_owned()
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}
