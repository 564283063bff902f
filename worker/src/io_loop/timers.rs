//! Timeouts of connections without a running request: the sweep every
//! `SWEEP` closes idle keep-alive connections, answers late heads and
//! bodies with 408, ends lingering closes, and refreshes the heartbeat.

use super::closing::closing_over;
use super::{Entry, IoLoop};
use crate::conn::Conn;
use rwsgi_http::HttpError;
use slog::info;
use std::time::{Duration, Instant};

impl IoLoop<'_> {
    /// A body past `--body-timeout` (as extended, up to `--body-max-timeout`):
    /// answered 408, unless what has arrived meanwhile completes it.
    pub(super) fn body_expired(&mut self, token: usize) {
        self.receive(token);
        if !matches!(self.entries[token], Some(Entry::Body(_))) {
            return;
        }
        if let Some(Entry::Body(r)) = self.entries[token].replace(Entry::Busy) {
            let mut conn = r.into_conn();
            let e = HttpError::new(408, "request body not received in time");
            conn.reject(&e, &self.ctx.config.limits, self.metrics(), self.ctx.log);
            self.close(token, conn);
        }
    }

    /// Closes idle connections past their timeouts; refreshes the heartbeat.
    ///
    /// A head gets `--header-timeout`, one more second per `--header-min-rate`
    /// bytes received, and never more than `--header-max-timeout` (the
    /// mod_reqtimeout rule), so a slow-loris client is cut off while a slow
    /// but honest one is not.
    pub(super) fn sweep(&mut self) {
        let t = self.ctx.config.timeouts;
        let limits = self.ctx.config.limits;
        let mut idle = 0;
        for token in 0..self.entries.len() {
            let now = Instant::now();
            match &self.entries[token] {
                Some(Entry::Closing(c)) => {
                    if closing_over(c, now) {
                        self.drop_conn(token);
                    }
                    continue;
                }
                Some(Entry::Idle(conn)) if expiry(conn, now, &t).is_some() => {}
                Some(Entry::Idle(_)) => {
                    idle += 1;
                    continue;
                }
                Some(Entry::Body(r)) => {
                    if r.expired(now, &t) {
                        self.body_expired(token);
                    }
                    continue;
                }
                _ => continue,
            }
            // Bytes may have arrived since the connection was last read (the
            // loop was busy, or the process was stopped): a request that is
            // here is served, never answered with a close.
            self.read_conn(token);
            let verdict = match &self.entries[token] {
                Some(Entry::Idle(conn)) => expiry(conn, Instant::now(), &t),
                _ => continue,
            };
            match verdict {
                None => idle += 1,
                Some(Expiry::Head) => {
                    if let Some(Entry::Idle(mut conn)) = self.entries[token].replace(Entry::Busy) {
                        let e = HttpError::new(408, "request head not received in time");
                        conn.reject(&e, &limits, self.metrics(), self.ctx.log);
                        self.close(token, conn);
                    }
                }
                Some(Expiry::KeepAlive) => self.drop_conn(token),
            }
        }
        if self.shed > 0 {
            info!(self.ctx.log, "at --max-clients: closed the connections waiting longest for a request head";
                "closed" => self.shed, "per_worker" => self.budget());
            self.shed = 0;
        }
        // The h2 and TLS threads' connections change without this loop.
        self.publish_connections();
        if let Some(sb) = self.ctx.scoreboard.worker(self.ctx.slot) {
            sb.heartbeat();
            sb.set_idle_connections(idle);
        }
    }
}

/// Why an idle connection is due to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// Idle between requests past `--keep-alive-timeout`: closed quietly.
    KeepAlive,
    /// A head that did not arrive in time: answered 408.
    Head,
}

fn expiry(conn: &Conn, now: Instant, t: &rwsgi_shared::config::Timeouts) -> Option<Expiry> {
    idle_expiry(
        conn.buf.len(),
        conn.served,
        now.duration_since(conn.since),
        t,
    )
}

/// Whether a connection without a request running is due to close, having
/// `buffered` bytes of a head, `served` requests before, and `waited` since
/// it came or its head began.
fn idle_expiry(
    buffered: usize,
    served: u64,
    waited: Duration,
    t: &rwsgi_shared::config::Timeouts,
) -> Option<Expiry> {
    if buffered == 0 && served > 0 {
        (waited > Duration::from_millis(t.keep_alive_ms)).then_some(Expiry::KeepAlive)
    } else if buffered == 0 {
        // A new connection that has sent nothing yet: the head timeout,
        // closed without an answer (there is no request to answer).
        (waited > head_allowance(t, 0)).then_some(Expiry::KeepAlive)
    } else {
        (waited > head_allowance(t, buffered)).then_some(Expiry::Head)
    }
}

fn head_allowance(t: &rwsgi_shared::config::Timeouts, received: usize) -> Duration {
    let extra_ms = (received as u64 * 1000)
        .checked_div(t.header_min_rate)
        .unwrap_or(0);
    Duration::from_millis((t.header_ms + extra_ms).min(t.header_max_ms.max(t.header_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rwsgi_shared::config::Timeouts;

    fn timeouts() -> Timeouts {
        Timeouts {
            keep_alive_ms: 5_000,
            header_ms: 10_000,
            header_max_ms: 30_000,
            header_min_rate: 500,
            ..Timeouts::default()
        }
    }

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn an_idle_keep_alive_connection_closes_quietly_after_its_timeout() {
        let t = timeouts();
        assert_eq!(idle_expiry(0, 1, secs(5), &t), None);
        assert_eq!(idle_expiry(0, 1, secs(6), &t), Some(Expiry::KeepAlive));
    }

    #[test]
    fn a_new_silent_connection_gets_the_head_timeout_and_no_answer() {
        let t = timeouts();
        assert_eq!(idle_expiry(0, 0, secs(9), &t), None);
        assert_eq!(idle_expiry(0, 0, secs(11), &t), Some(Expiry::KeepAlive));
    }

    #[test]
    fn a_partial_head_gets_a_408_when_late_and_time_for_what_it_sent() {
        let t = timeouts();
        assert_eq!(idle_expiry(10, 0, secs(11), &t), Some(Expiry::Head));
        // After a request too: a partial next head is late, not idle.
        assert_eq!(idle_expiry(10, 3, secs(11), &t), Some(Expiry::Head));
        // 500 B/s: 2,500 bytes buy five more seconds ...
        assert_eq!(idle_expiry(2_500, 0, secs(14), &t), None);
        assert_eq!(idle_expiry(2_500, 0, secs(16), &t), Some(Expiry::Head));
        // ... up to --header-max-timeout.
        assert_eq!(head_allowance(&t, 1 << 30), secs(30));
        assert_eq!(idle_expiry(1 << 30, 0, secs(31), &t), Some(Expiry::Head));
    }

    #[test]
    fn a_max_below_the_head_timeout_does_not_shorten_it() {
        let t = Timeouts {
            header_max_ms: 1_000,
            ..timeouts()
        };
        assert_eq!(head_allowance(&t, 0), secs(10));
    }
}
