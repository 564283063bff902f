//! Clocks. Every time in the scoreboard, and every deadline, is on the
//! monotonic clock, which every process of the machine shares: an NTP step
//! or a changed wall clock must neither recycle healthy workers nor hide a
//! stuck one. Only what a person reads (access-log dates) uses the wall clock.

use nix::time::{clock_gettime, ClockId};
use std::time::{SystemTime, UNIX_EPOCH};

fn monotonic() -> std::time::Duration {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(std::time::Duration::from)
        .unwrap_or_default()
}

/// Milliseconds on the monotonic clock: the unit of every time in the scoreboard.
pub fn now_ms() -> u64 {
    monotonic().as_millis() as u64
}

/// Microseconds on the monotonic clock, to time a connection from accept.
pub fn now_us() -> u64 {
    monotonic().as_micros() as u64
}

/// Milliseconds since the Unix epoch (wall clock), for dates people read.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The current time as Apache's access logs write it: `24/Nov/2026:01:38:07 +0000` (UTC).
pub fn apache_now() -> String {
    let secs = wall_ms() / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_416), (2025, 11, 24));
    }
}
