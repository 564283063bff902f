//! Helpers for rwsgi's integration tests: start the real `rwsgi` binary in
//! its own process group on a port the kernel picks (the server logs it),
//! wait on conditions until it is ready, talk HTTP over loopback, and kill
//! the whole group when the test is over.

pub mod client;
pub mod haproxy;
pub mod load;
pub mod pki;
pub mod server;
pub mod skip;
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

/// A response body as JSON, or a panic showing the body.
pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// The test virtualenv (`RWSGI_TEST_VENV`, else `.venv-test`), with the
/// applications and clients of tests/requirements.txt.
pub fn test_venv() -> PathBuf {
    let venv = std::env::var_os("RWSGI_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv-test"));
    assert!(
        venv.join("bin/python").exists(),
        "no test virtualenv at {} (run ./tests/run, which creates it)",
        venv.display()
    );
    venv
}

/// Runs `script` with the test virtualenv's Python (`args` in `sys.argv`);
/// its standard output, or a panic showing both outputs when it fails.
pub fn venv_python(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(test_venv().join("bin/python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python from the test venv");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
