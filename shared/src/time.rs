//! Wall-clock helpers for values stored in shared memory.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; the unit of every time in the scoreboard.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch, used to time a connection from accept.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
