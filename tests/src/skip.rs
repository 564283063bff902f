//! What a test does when a tool it needs is missing: in CI (`CI` set) it
//! fails, since CI installs every tool; on a developer's machine it says
//! loudly what did not run and carries on.

use std::io::Write;

/// Reports that `what` did not run because `missing` is not installed
/// (`install` says how to get it). Panics in CI.
pub fn missing(what: &str, missing: &str, install: &str) {
    // The test harness names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .map_or_else(String::new, |n| format!("{n}: "));
    let line = format!("{test}{what} did NOT run: {missing} is not installed ({install})");
    assert!(
        std::env::var_os("CI").is_none(),
        "{line}; .ci/run installs it"
    );
    // Written to stderr itself, past the test harness's capture, so it
    // shows in every run ...
    let _ = writeln!(std::io::stderr(), "WARNING: {line}");
    // ... and again at the end of tests/run, which names this file.
    if let Some(path) = std::env::var_os("RWSGI_TEST_SKIPPED") {
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }
}
