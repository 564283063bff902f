//! Waiting on a condition, never on the clock: every wait in these tests
//! polls something a user could see (an HTTP answer, the log, /proc,
//! `rwsgi status`) until it holds or a deadline passes.

use std::time::{Duration, Instant};

/// How long to pause between two checks of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Checks `condition` until it holds (true) or `timeout` passes (false).
pub fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Checks `condition` until it holds; panics naming `what` if `timeout`
/// passes first. (`Server::wait_until` does the same and adds the
/// server's log to the panic.)
pub fn wait_until(what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    assert!(
        poll_until(timeout, condition),
        "timed out after {timeout:?} waiting for {what}"
    );
}
