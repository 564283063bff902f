//! Is a worker alive? Judged from its two heartbeats in the scoreboard, on
//! the monotonic clock: the I/O thread's (beaten without the GIL every
//! sweep) and the Python side's (beaten by a thread that must take the GIL).
//! A worker that misses either for [`UNRESPONSIVE_MS`] gets no new
//! connections; one that misses it for `--deadlock-timeout` is killed.
//!
//! Silence is measured from the later of the last beat (before the first,
//! the time the worker became ready) and the start of its occupancy of the
//! slot, never from 0: a beat not written yet is not one that stopped at boot.

use rwsgi_shared::scoreboard::WorkerSlot;

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

/// The heartbeats of one ready worker, in scoreboard ms; 0 means "not
/// written yet".
#[derive(Debug, Clone, Copy, Default)]
pub struct Beats {
    pub io_ms: u64,
    pub python_ms: u64,
    /// When the worker became ready.
    pub ready_at_ms: u64,
    /// When its occupancy of the slot began (the master claimed it, before
    /// the worker could run).
    pub since_ms: u64,
}

impl Beats {
    /// What the slot says of its current occupant; `None` until that
    /// worker has attached (the fields are still its predecessor's).
    pub fn read(slot: &WorkerSlot) -> Option<Beats> {
        slot.attached().then(|| Beats {
            io_ms: slot.heartbeat_ms(),
            python_ms: slot.python_heartbeat_ms(),
            ready_at_ms: slot.ready_at_ms(),
            since_ms: slot.spawned_at_ms(),
        })
    }

    /// How long `beat` has been silent at `now_ms`: from the later of the
    /// beat (readiness until the first) and the occupancy's start (0 if
    /// none is known).
    fn silent_for(&self, now_ms: u64, beat: u64) -> u64 {
        let beat = if beat == 0 { self.ready_at_ms } else { beat };
        match beat.max(self.since_ms) {
            0 => 0,
            latest => now_ms.saturating_sub(latest),
        }
    }
}

pub fn judge(now_ms: u64, beats: Beats, deadlock_ms: u64) -> Health {
    let age = |beat: u64| beats.silent_for(now_ms, beat);
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
        since_ms: 5_000,
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
            since_ms: 8_000,
        };
        assert_eq!(judge(10_000, beats, 60_000), Health::Alive);
        assert!(matches!(
            judge(12_000, beats, 60_000),
            Health::Unresponsive { .. }
        ));
    }

    /// Issue 20: a forked worker's fields were reset after it wrote them,
    /// and silence was measured from 0, the machine's uptime.
    #[test]
    fn silence_is_never_measured_from_zero() {
        let uptime = 5_375_600;
        let nothing_yet = Beats {
            since_ms: uptime - 100,
            ..Beats::default()
        };
        assert_eq!(judge(uptime, nothing_yet, 60_000), Health::Alive);
        // One beat written, the other not yet: the occupancy's start counts.
        let python_not_yet = Beats {
            io_ms: uptime - 10,
            ..nothing_yet
        };
        assert_eq!(judge(uptime, python_not_yet, 60_000), Health::Alive);
        // Nothing known at all: nothing to measure from.
        assert_eq!(judge(uptime, Beats::default(), 60_000), Health::Alive);
        // A worker silent since its occupancy began is still caught.
        assert!(matches!(
            judge(uptime + 70_000, nothing_yet, 60_000),
            Health::Deadlocked {
                ms: 70_100,
                which: "whole process"
            }
        ));
    }

    #[test]
    fn a_beat_older_than_the_occupancy_is_not_this_workers() {
        // A beat from before the slot was claimed (its predecessor's) does
        // not make the new worker silent for longer than it has existed.
        let beats = Beats {
            io_ms: 1_000,
            python_ms: 1_000,
            ready_at_ms: 0,
            since_ms: 50_000,
        };
        assert_eq!(judge(51_000, beats, 60_000), Health::Alive);
    }

    /// The two orders in which a new worker and the master write a slot,
    /// through two mappings of one scoreboard as across processes.
    mod interleavings {
        use super::*;
        use rwsgi_shared::scoreboard::{Scoreboard, WorkerState};
        use rwsgi_shared::time::now_ms;

        const DEADLOCK_MS: u64 = 60_000;

        fn pair() -> (Scoreboard, Scoreboard) {
            let master = Scoreboard::create(1).expect("create");
            let fd = master.fd().try_clone_to_owned().expect("dup");
            (master, Scoreboard::attach(fd).expect("attach"))
        }

        /// A slot whose previous worker beat long ago, then was reaped.
        fn used_slot(master: &WorkerSlot, worker: &WorkerSlot) {
            let epoch = master.claim(1, 1);
            master.set_pid(10);
            assert!(worker.attach(epoch));
            worker.set_state(WorkerState::Ready);
            worker.heartbeat();
            worker.python_heartbeat();
            master.release(&Default::default());
        }

        #[test]
        fn worker_first_its_beats_stand_and_it_is_alive() {
            let (m, w) = pair();
            let (master, worker) = (m.worker(1).expect("slot"), w.worker(1).expect("slot"));
            used_slot(master, worker);
            let epoch = master.claim(2, 1);
            // Forked: ready and beating (the I/O thread only, so far)
            // before the master learns its pid.
            assert!(worker.attach(epoch));
            worker.set_state(WorkerState::Ready);
            worker.heartbeat();
            master.set_pid(20);
            let beats = Beats::read(master).expect("attached");
            assert!(beats.ready_at_ms > 0 && beats.io_ms > 0, "{beats:?}");
            assert_eq!(judge(now_ms(), beats, DEADLOCK_MS), Health::Alive);
        }

        #[test]
        fn master_first_nothing_is_read_until_the_worker_attaches() {
            let (m, w) = pair();
            let (master, worker) = (m.worker(1).expect("slot"), w.worker(1).expect("slot"));
            used_slot(master, worker);
            let epoch = master.claim(2, 1);
            master.set_pid(20);
            // The predecessor's beats are not this worker's.
            assert!(Beats::read(master).is_none());
            assert!(worker.attach(epoch));
            let beats = Beats::read(master).expect("attached");
            assert_eq!((beats.io_ms, beats.python_ms, beats.ready_at_ms), (0, 0, 0));
            assert!(beats.since_ms > 0);
            let now = now_ms();
            assert_eq!(judge(now, beats, DEADLOCK_MS), Health::Alive);
            // A worker that never beats is still caught, counted from the
            // start of its occupancy.
            assert!(matches!(
                judge(beats.since_ms + DEADLOCK_MS, beats, DEADLOCK_MS),
                Health::Deadlocked {
                    ms: DEADLOCK_MS,
                    ..
                }
            ));
        }
    }
}
