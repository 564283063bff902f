//! Is a worker alive? Judged from its two heartbeats in the scoreboard, on
//! the monotonic clock: the I/O thread's (beaten without the GIL every
//! sweep) and the Python side's (beaten by a thread that must take the GIL).
//! A worker that misses either for [`UNRESPONSIVE_MS`] gets no new
//! connections; one that misses it for `--deadlock-timeout` is killed.

/// A worker silent this long gets no new connections.
pub const UNRESPONSIVE_MS: u64 = 2_000;

/// What the heartbeats say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Alive,
    /// Silent for `ms`; `which` stopped beating (the I/O thread, the
    /// Python interpreter, or the whole process).
    Unresponsive {
        ms: u64,
        which: &'static str,
    },
    /// Silent past `--deadlock-timeout`.
    Deadlocked {
        ms: u64,
        which: &'static str,
    },
}

/// The heartbeats of one ready worker; 0 means "not beaten yet", and then
/// the time it became ready stands in for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Beats {
    pub io_ms: u64,
    pub python_ms: u64,
    pub ready_at_ms: u64,
}

pub fn judge(now_ms: u64, beats: Beats, deadlock_ms: u64) -> Health {
    let age = |beat: u64| now_ms.saturating_sub(if beat == 0 { beats.ready_at_ms } else { beat });
    let (io, python) = (age(beats.io_ms), age(beats.python_ms));
    let which = if io >= UNRESPONSIVE_MS && python >= UNRESPONSIVE_MS {
        // Nothing beats: the process is stopped, or starved of CPU.
        "whole process"
    } else if python > io {
        "Python interpreter (GIL)"
    } else {
        "I/O thread"
    };
    let ms = io.max(python);
    if ms >= deadlock_ms.max(UNRESPONSIVE_MS) {
        Health::Deadlocked { ms, which }
    } else if ms >= UNRESPONSIVE_MS {
        Health::Unresponsive { ms, which }
    } else {
        Health::Alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Beats = Beats {
        io_ms: 10_000,
        python_ms: 10_000,
        ready_at_ms: 9_000,
    };

    #[test]
    fn fresh_beats_are_alive() {
        assert_eq!(judge(11_000, B, 60_000), Health::Alive);
    }

    #[test]
    fn a_stale_python_beat_is_named() {
        let beats = Beats {
            python_ms: 7_000,
            ..B
        };
        assert_eq!(
            judge(10_500, beats, 60_000),
            Health::Unresponsive {
                ms: 3_500,
                which: "Python interpreter (GIL)"
            }
        );
    }

    #[test]
    fn past_the_deadlock_timeout_it_is_deadlocked() {
        assert_eq!(
            judge(14_000, B, 3_000),
            Health::Deadlocked {
                ms: 4_000,
                which: "whole process"
            }
        );
    }

    #[test]
    fn before_the_first_beat_ready_time_counts() {
        let beats = Beats {
            io_ms: 0,
            python_ms: 0,
            ready_at_ms: 9_000,
        };
        assert_eq!(judge(10_000, beats, 60_000), Health::Alive);
        assert!(matches!(
            judge(12_000, beats, 60_000),
            Health::Unresponsive { .. }
        ));
    }
}
