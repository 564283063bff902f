//! `--service-script`: every decision about service processes, as a pure
//! state machine beside the worker supervisor (services take no
//! connections and have no scoreboard slot, so they are not workers).
//!
//! A service is started with the server, alongside (never before or
//! instead of) the workers: nothing here waits for a service, so a crash
//! loop cannot delay or stop the web workers. A process that ends without
//! being asked to is restarted after the workers' back-off
//! ([`crate::supervisor::backoff`]: at once, then 200 ms doubling up to
//! 25.6 s; a process that ran [`STABLE`] counts as a fresh start). A
//! reload (a new generation of workers: SIGUSR1, SIGHUP,
//! `--reload-on-changes`) restarts every service, as a graceful restart
//! of Apache restarts mod_wsgi's daemon processes. A stop sends SIGTERM,
//! and SIGKILL after `--shutdown-timeout`; the master exits only once
//! every service process is reaped.
//!
//! `server` feeds it the time, the generation and whether the server
//! stops; `service_procs` carries out its actions and reports starts and
//! deaths back.

use crate::supervisor::{backoff, Level};
use rwsgi_shared::service_board::{ServiceReading, ServiceState};
use std::time::{Duration, Instant};

/// A service that ran this long before dying was working: its back-off
/// starts over.
pub const STABLE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAction {
    /// Start service `index`, then report it with [`Services::started`]
    /// (or [`Services::start_failed`]).
    Start {
        index: usize,
    },
    Terminate {
        pid: u32,
    },
    Kill {
        pid: u32,
    },
    Log {
        level: Level,
        /// (service, pid)
        service: Option<(String, u32)>,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Due to start at `at`.
    Waiting {
        at: Instant,
    },
    Running {
        pid: u32,
        since: Instant,
    },
    /// Asked to stop; killed at `deadline`; started again when reaped if `restart`.
    Stopping {
        pid: u32,
        deadline: Instant,
        killed: bool,
        restart: bool,
    },
    Stopped,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    phase: Phase,
    /// Deaths in a row, for the back-off.
    failures: u32,
    starts: u64,
    crashes: u64,
}

pub struct Services {
    entries: Vec<Entry>,
    /// The workers' generation the services run for.
    generation: u32,
    stopping: bool,
    shutdown: Duration,
    out: Vec<ServiceAction>,
}

impl Services {
    /// Services `names`, due to start at once; `shutdown` is
    /// `--shutdown-timeout`.
    pub fn new(names: &[String], generation: u32, shutdown: Duration, now: Instant) -> Services {
        Services {
            entries: names
                .iter()
                .map(|name| Entry {
                    name: name.clone(),
                    phase: Phase::Waiting { at: now },
                    failures: 0,
                    starts: 0,
                    crashes: 0,
                })
                .collect(),
            generation,
            stopping: false,
            shutdown,
            out: Vec::new(),
        }
    }

    /// A service process is alive (running or still stopping): the
    /// master does not exit yet.
    pub fn any_alive(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.phase, Phase::Running { .. } | Phase::Stopping { .. }))
    }

    /// The pids of the live service processes.
    pub fn pids(&self) -> Vec<u32> {
        self.entries
            .iter()
            .filter_map(|e| match e.phase {
                Phase::Running { pid, .. } | Phase::Stopping { pid, .. } => Some(pid),
                _ => None,
            })
            .collect()
    }

    /// Every process was killed and reaped (the master is giving up):
    /// none is signalled again.
    pub fn forget_all(&mut self) {
        self.stopping = true;
        for e in &mut self.entries {
            e.phase = Phase::Stopped;
        }
    }

    fn log(&mut self, level: Level, service: Option<(String, u32)>, message: String) {
        self.out.push(ServiceAction::Log {
            level,
            service,
            message,
        });
    }

    fn actions(&mut self) -> Vec<ServiceAction> {
        std::mem::take(&mut self.out)
    }

    /// One turn: a stop or a reload of the server, deadlines, due starts.
    pub fn tick(&mut self, now: Instant, generation: u32, stopping: bool) -> Vec<ServiceAction> {
        if stopping && !self.stopping {
            self.stopping = true;
            for i in 0..self.entries.len() {
                self.stop(i, now, false, "server stopping");
            }
        } else if !stopping && generation != self.generation {
            self.generation = generation;
            for i in 0..self.entries.len() {
                // An operator's reload does not wait out earlier failures.
                self.entries[i].failures = 0;
                match self.entries[i].phase {
                    Phase::Waiting { .. } => self.entries[i].phase = Phase::Waiting { at: now },
                    _ => self.stop(i, now, true, "reload: restarting it"),
                }
            }
        }
        for i in 0..self.entries.len() {
            match self.entries[i].phase {
                Phase::Waiting { at } if !self.stopping && now >= at => {
                    self.out.push(ServiceAction::Start { index: i });
                }
                Phase::Stopping {
                    pid,
                    deadline,
                    killed: false,
                    restart,
                } if now >= deadline => {
                    self.entries[i].phase = Phase::Stopping {
                        pid,
                        deadline,
                        killed: true,
                        restart,
                    };
                    self.out.push(ServiceAction::Kill { pid });
                    let who = Some((self.entries[i].name.clone(), pid));
                    self.log(
                        Level::Warn,
                        who,
                        "killing service: did not stop within --shutdown-timeout".to_owned(),
                    );
                }
                _ => {}
            }
        }
        self.actions()
    }

    fn stop(&mut self, i: usize, now: Instant, restart: bool, why: &str) {
        let e = &mut self.entries[i];
        match e.phase {
            Phase::Running { pid, .. } => {
                e.phase = Phase::Stopping {
                    pid,
                    deadline: now + self.shutdown,
                    killed: false,
                    restart,
                };
                let who = Some((e.name.clone(), pid));
                self.out.push(ServiceAction::Terminate { pid });
                self.log(Level::Info, who, format!("stopping service: {why}"));
            }
            Phase::Stopping {
                pid,
                deadline,
                killed,
                ..
            } => {
                e.phase = Phase::Stopping {
                    pid,
                    deadline,
                    killed,
                    restart,
                }
            }
            Phase::Waiting { .. } if !restart => e.phase = Phase::Stopped,
            Phase::Waiting { .. } | Phase::Stopped => {}
        }
    }

    /// Service `index` was started as `pid`.
    pub fn started(&mut self, index: usize, pid: u32, now: Instant) -> Vec<ServiceAction> {
        if let Some(e) = self.entries.get_mut(index) {
            e.phase = Phase::Running { pid, since: now };
            e.starts += 1;
            let msg = format!(
                "started service {} (process group service:{})",
                e.name, e.name
            );
            let who = Some((e.name.clone(), pid));
            self.log(Level::Info, who, msg);
        }
        self.actions()
    }

    /// Service `index` could not be started at all: retried with back-off.
    pub fn start_failed(&mut self, index: usize, why: &str, now: Instant) -> Vec<ServiceAction> {
        if index < self.entries.len() {
            self.entries[index].phase = Phase::Running { pid: 0, since: now };
            self.crashed(index, &format!("cannot start it: {why}"), now);
        }
        self.actions()
    }

    /// A child was reaped: `Some(actions)` if it was a service process.
    pub fn died(&mut self, pid: u32, death: &str, now: Instant) -> Option<Vec<ServiceAction>> {
        let index = self.entries.iter().position(|e| match e.phase {
            Phase::Running { pid: p, .. } | Phase::Stopping { pid: p, .. } => p == pid,
            _ => false,
        })?;
        let e = &mut self.entries[index];
        match e.phase {
            Phase::Stopping { restart, .. } => {
                let who = Some((e.name.clone(), pid));
                if restart && !self.stopping {
                    e.phase = Phase::Waiting { at: now };
                } else {
                    e.phase = Phase::Stopped;
                }
                self.log(Level::Info, who, format!("service stopped: {death}"));
            }
            _ => self.crashed(index, death, now),
        }
        Some(self.actions())
    }

    /// A service ended without being asked to: back off, then start it again.
    fn crashed(&mut self, index: usize, why: &str, now: Instant) {
        let e = &mut self.entries[index];
        let Phase::Running { pid, since } = e.phase else {
            return;
        };
        e.crashes += 1;
        e.failures = if now.duration_since(since) >= STABLE {
            1
        } else {
            e.failures + 1
        };
        let delay = backoff(e.failures);
        e.phase = if self.stopping {
            Phase::Stopped
        } else {
            Phase::Waiting { at: now + delay }
        };
        let who = Some((e.name.clone(), pid));
        let msg = if self.stopping {
            format!("service died: {why}")
        } else {
            format!(
                "service died: {why}; restarting it in {:.1} s ({} failures in a row)",
                delay.as_secs_f64(),
                e.failures
            )
        };
        self.log(Level::Error, who, msg);
    }

    /// What the service board and the metrics show; `now_ms` is
    /// `time::now_ms()` at `now`.
    pub fn readings(&self, now: Instant, now_ms: u64) -> Vec<ServiceReading> {
        let ms_at = |t: Instant| {
            if t >= now {
                now_ms + t.duration_since(now).as_millis() as u64
            } else {
                now_ms.saturating_sub(now.duration_since(t).as_millis() as u64)
            }
        };
        self.entries
            .iter()
            .map(|e| {
                let (pid, state, started_at_ms, next_start_ms) = match e.phase {
                    Phase::Waiting { at } => (0, ServiceState::Waiting, 0, ms_at(at).max(1)),
                    Phase::Running { pid, since } => (pid, ServiceState::Running, ms_at(since), 0),
                    Phase::Stopping { pid, .. } => (pid, ServiceState::Stopping, 0, 0),
                    Phase::Stopped => (0, ServiceState::Stopped, 0, 0),
                };
                ServiceReading {
                    name: e.name.clone(),
                    pid,
                    state,
                    starts: e.starts,
                    crashes: e.crashes,
                    started_at_ms,
                    next_start_ms,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHUTDOWN: Duration = Duration::from_secs(5);

    fn one(now: Instant) -> Services {
        Services::new(&["consumer".to_owned()], 1, SHUTDOWN, now)
    }

    fn starts(actions: &[ServiceAction]) -> usize {
        actions
            .iter()
            .filter(|a| matches!(a, ServiceAction::Start { .. }))
            .count()
    }

    #[test]
    fn a_service_starts_with_the_server_and_is_alive_until_reaped() {
        let t0 = Instant::now();
        let mut s = one(t0);
        assert!(!s.any_alive());
        assert_eq!(
            s.tick(t0, 1, false),
            vec![ServiceAction::Start { index: 0 }]
        );
        s.started(0, 100, t0);
        assert!(s.any_alive());
        assert_eq!(s.pids(), vec![100]);
        assert_eq!(starts(&s.tick(t0 + Duration::from_secs(1), 1, false)), 0);
        assert_eq!(s.readings(t0, 1000)[0].state, ServiceState::Running);
        assert_eq!(s.died(999, "exited", t0), None, "not a service's pid");
    }

    #[test]
    fn a_crash_loop_backs_off_exponentially_up_to_the_cap() {
        let t0 = Instant::now();
        let mut s = one(t0);
        s.tick(t0, 1, false);
        let mut now = t0;
        let mut delays = Vec::new();
        for pid in 1..=12 {
            s.started(0, pid, now);
            s.died(pid, "exited with code 4", now).expect("a service");
            // Find when the next start is due.
            let mut waited = Duration::ZERO;
            while starts(&s.tick(now + waited, 1, false)) == 0 {
                waited += Duration::from_millis(100);
                assert!(waited < Duration::from_secs(60), "never restarted");
            }
            delays.push(waited.as_millis() as u64);
            now += waited;
        }
        assert_eq!(
            &delays[..9],
            &[0, 200, 400, 800, 1600, 3200, 6400, 12800, 25600]
        );
        assert!(delays[9..].iter().all(|d| *d == 25600), "{delays:?}");
        assert_eq!(s.readings(now, 1)[0].crashes, 12);
    }

    #[test]
    fn a_service_that_ran_long_enough_restarts_at_once() {
        let t0 = Instant::now();
        let mut s = one(t0);
        s.tick(t0, 1, false);
        s.started(0, 1, t0);
        s.died(1, "killed by SIGKILL", t0).expect("a service");
        s.tick(t0, 1, false);
        s.started(0, 2, t0);
        s.died(2, "killed by SIGKILL", t0).expect("a service");
        assert_eq!(starts(&s.tick(t0, 1, false)), 0, "backing off");
        let later = t0 + Duration::from_millis(200);
        assert_eq!(starts(&s.tick(later, 1, false)), 1);
        s.started(0, 3, later);
        let much_later = later + STABLE;
        s.died(3, "killed by SIGKILL", much_later)
            .expect("a service");
        assert_eq!(starts(&s.tick(much_later, 1, false)), 1, "no back-off");
    }

    #[test]
    fn a_stop_terminates_then_kills_after_the_shutdown_timeout_and_never_restarts() {
        let t0 = Instant::now();
        let mut s = one(t0);
        s.tick(t0, 1, false);
        s.started(0, 7, t0);
        let actions = s.tick(t0, 1, true);
        assert!(actions.contains(&ServiceAction::Terminate { pid: 7 }));
        assert!(s.any_alive(), "alive until reaped");
        assert!(!s
            .tick(t0 + SHUTDOWN - Duration::from_millis(1), 1, true)
            .contains(&ServiceAction::Kill { pid: 7 }));
        assert!(s
            .tick(t0 + SHUTDOWN, 1, true)
            .contains(&ServiceAction::Kill { pid: 7 }));
        assert!(
            !s.tick(t0 + SHUTDOWN * 2, 1, true)
                .contains(&ServiceAction::Kill { pid: 7 }),
            "killed once"
        );
        s.died(7, "killed by SIGKILL", t0 + SHUTDOWN)
            .expect("a service");
        assert!(!s.any_alive());
        assert_eq!(starts(&s.tick(t0 + SHUTDOWN * 3, 1, true)), 0);
        assert_eq!(s.readings(t0, 1)[0].state, ServiceState::Stopped);
    }

    #[test]
    fn a_service_waiting_out_its_back_off_is_not_started_by_a_stop() {
        let t0 = Instant::now();
        let mut s = one(t0);
        s.tick(t0, 1, false);
        s.started(0, 1, t0);
        s.died(1, "exit 1", t0).expect("a service");
        s.tick(t0, 1, false);
        s.started(0, 2, t0);
        s.died(2, "exit 1", t0).expect("a service");
        assert_eq!(starts(&s.tick(t0 + Duration::from_secs(60), 1, true)), 0);
        assert!(!s.any_alive());
    }

    #[test]
    fn a_reload_restarts_every_service_once_it_has_stopped_without_back_off() {
        let t0 = Instant::now();
        let mut s = Services::new(&["a".to_owned(), "b".to_owned()], 1, SHUTDOWN, t0);
        s.tick(t0, 1, false);
        s.started(0, 10, t0);
        s.started(1, 11, t0);
        let actions = s.tick(t0, 2, false);
        assert!(actions.contains(&ServiceAction::Terminate { pid: 10 }));
        assert!(actions.contains(&ServiceAction::Terminate { pid: 11 }));
        assert_eq!(starts(&actions), 0, "the old process is still alive");
        s.died(10, "exited with code 0", t0).expect("a service");
        let actions = s.tick(t0, 2, false);
        assert_eq!(actions, vec![ServiceAction::Start { index: 0 }]);
        s.started(0, 12, t0);
        assert_eq!(s.readings(t0, 1)[0].crashes, 0, "a reload is no crash");
        assert_eq!(s.tick(t0, 2, false), vec![], "one reload per generation");
    }

    #[test]
    fn a_service_that_cannot_be_started_is_retried_with_back_off() {
        let t0 = Instant::now();
        let mut s = one(t0);
        s.tick(t0, 1, false);
        s.start_failed(0, "no such file", t0);
        assert!(!s.any_alive());
        assert_eq!(
            starts(&s.tick(t0, 1, false)),
            1,
            "the first retry is at once"
        );
        s.start_failed(0, "no such file", t0);
        assert_eq!(starts(&s.tick(t0, 1, false)), 0);
        assert_eq!(
            starts(&s.tick(t0 + Duration::from_millis(200), 1, false)),
            1
        );
    }
}
