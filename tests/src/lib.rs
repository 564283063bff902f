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
/// Python functions for client scripts that look at a worker through
/// /proc: `unix_sockets(pid)`, how many Unix sockets it holds, and
/// `switches(pid, thread_name)`, how often that thread has been switched
/// out (woken). Put it before a script given to `venv_python`.
pub const PROCFS_PY: &str = r#"
import os

def unix_sockets(pid):
    inodes = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            if len(fields) >= 7:
                inodes.add(fields[6])
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            n += 1
    return n

def switches(pid, name):
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            if f.read().strip() != name:
                continue
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            return sum(int(l.split()[1]) for l in f if "ctxt_switches" in l)
    raise AssertionError("no thread " + name)

"#;

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
