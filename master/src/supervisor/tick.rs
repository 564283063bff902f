//! What the supervisor checks on every tick: start-up and stop deadlines,
//! liveness, recycling, the worker count, stuck drains, surplus workers.

use super::*;
use crate::liveness::{self, Health};
use std::time::{Duration, Instant};

impl Supervisor {
    /// Start-up timeouts and stop deadlines.
    pub(super) fn enforce_deadlines(&mut self, now: Instant) {
        let startup = Duration::from_millis(self.config.timeouts.startup_ms);
        let mut kills = Vec::new();
        for (slot, w) in self.workers.iter_mut() {
            let why = match w.phase {
                Phase::Starting if now.duration_since(w.spawned_at) > startup => format!(
                    "did not become ready within --startup-timeout ({} s)",
                    startup.as_secs_f64()
                ),
                Phase::Stopping { deadline } if now > deadline => {
                    if w.killed.is_some() {
                        String::new()
                    } else {
                        w.overdue.to_owned()
                    }
                }
                _ => continue,
            };
            if !why.is_empty() {
                kills.push((slot, w.pid, why.clone()));
                w.killed = Some(why);
            }
            if w.phase == Phase::Starting {
                w.exit_reason = "startup-timeout";
            }
            self.out.push(Action::Kill { pid: w.pid });
            w.phase = Phase::Stopping {
                deadline: now + KILLED,
            };
        }
        for (slot, pid, why) in kills {
            self.log(
                Level::Warn,
                Some((slot, pid)),
                format!("killing worker: {why}"),
            );
        }
    }

    /// Workers whose heartbeat stopped get no new connections; past
    /// `--deadlock-timeout` their stacks are dumped and they are killed
    /// (and replaced, as they no longer count as serving).
    pub(super) fn watch_liveness(
        &mut self,
        now: Instant,
        now_ms: u64,
        readings: &[Option<Reading>],
    ) {
        let deadlock_ms = self.config.timeouts.deadlock_ms;
        let mut logs = Vec::new();
        for (slot, w) in self.workers.iter_mut() {
            if w.phase != Phase::Ready {
                continue;
            }
            let Some(Some(reading)) = readings.get(slot) else {
                continue;
            };
            match liveness::judge(now_ms, reading.beats, deadlock_ms) {
                Health::Alive if w.unresponsive => {
                    w.unresponsive = false;
                    logs.push((
                        Level::Info,
                        slot,
                        w.pid,
                        "worker responsive again".to_owned(),
                    ));
                }
                Health::Alive | Health::Unresponsive { .. } if w.unresponsive => {}
                Health::Alive => {}
                Health::Unresponsive { ms, which } => {
                    w.unresponsive = true;
                    logs.push((
                        Level::Warn,
                        slot,
                        w.pid,
                        format!(
                            "worker unresponsive: no heartbeat from its {which} for {:.1} s; no new connections go to it",
                            ms as f64 / 1000.0
                        ),
                    ));
                }
                Health::Deadlocked { ms, which } => {
                    let why = format!(
                        "no heartbeat from its {which} for {:.1} s (--deadlock-timeout {} s)",
                        ms as f64 / 1000.0,
                        deadlock_ms as f64 / 1000.0
                    );
                    logs.push((
                        Level::Error,
                        slot,
                        w.pid,
                        format!("worker deadlocked, {why}: dumping its stacks, then killing it"),
                    ));
                    self.out.push(Action::DumpStacks { pid: w.pid });
                    w.unresponsive = true;
                    w.exit_reason = "deadlock";
                    w.killed = Some(why);
                    w.phase = Phase::Stopping {
                        deadline: now + DUMP_GRACE,
                    };
                }
            }
        }
        for (level, slot, pid, msg) in logs {
            self.log(level, Some((slot, pid)), msg);
        }
    }

    /// Marks workers for replacement. One recycles at a time so capacity
    /// never dips; a request timeout is acted on at once.
    pub(super) fn recycle(&mut self, now: Instant, now_ms: u64, readings: &[Option<Reading>]) {
        if self.is_stopping() {
            return;
        }
        let mut retiring = self
            .workers
            .iter()
            .filter(|(_, w)| w.retiring.is_some() && !w.is_stopping())
            .count();
        let mut logs = Vec::new();
        for (slot, w) in self.workers.iter_mut() {
            if w.phase != Phase::Ready || w.retiring.is_some() {
                continue;
            }
            let Some(Some(reading)) = readings.get(slot) else {
                continue;
            };
            if reading.activity != w.active_requests || reading.active_running {
                w.active_requests = reading.activity;
                w.active_at = now;
            }
            let Some(verdict) = recycle_reason(&self.config, w, reading, now, now_ms) else {
                continue;
            };
            if !verdict.request_timeout && retiring > 0 {
                continue;
            }
            if verdict.request_timeout {
                self.out.push(Action::DumpStacks { pid: w.pid });
                w.stuck = true;
            }
            logs.push((slot, w.pid, format!("recycling worker: {}", verdict.reason)));
            w.exit_reason = verdict.kind;
            if verdict.request_timeout {
                self.stats.request_timeouts += 1;
            }
            w.retiring = Some(verdict.reason);
            retiring += 1;
        }
        for (slot, pid, msg) in logs {
            self.log(Level::Warn, Some((slot, pid)), msg);
        }
    }

    /// Spawns what is missing, retires what is surplus. An old worker is
    /// only retired once a replacement is ready, so capacity never dips.
    pub(super) fn reconcile(&mut self, now: Instant) {
        if self.is_stopping() {
            return;
        }
        if now >= self.next_spawn_at {
            let serving = self.workers.serving_count(self.generation);
            let free = self.max_workers - self.workers.iter().count();
            for _ in 0..self.wanted.saturating_sub(serving).min(free) {
                self.out.push(Action::Spawn);
            }
        }
        self.retire_surplus(now);
    }

    /// A worker recycled for a stuck request keeps `--graceful-timeout` only
    /// while other requests can still finish: once every request it runs is
    /// stuck, it is killed shortly after (mod_wsgi 6's drain ignores
    /// requests past `--request-timeout` + `--interrupt-timeout` the same
    /// way). It is stopped only once its replacement is ready, so this
    /// frees its memory and its client without costing capacity.
    pub(super) fn cut_stuck_drains(
        &mut self,
        now: Instant,
        now_ms: u64,
        readings: &[Option<Reading>],
    ) {
        let stuck_after = stuck_after_ms(&self.config);
        let mut logs = Vec::new();
        for (slot, w) in self.workers.iter_mut() {
            let Phase::Stopping { deadline } = w.phase else {
                continue;
            };
            let Some(Some(reading)) = readings.get(slot) else {
                continue;
            };
            let Some(cut) = stuck_drain_deadline(w, deadline, reading, now, now_ms, stuck_after)
            else {
                continue;
            };
            w.phase = Phase::Stopping { deadline: cut };
            w.overdue = "only stuck requests were left while it drained";
            logs.push((slot, w.pid));
        }
        for (slot, pid) in logs {
            let msg = format!(
                "only stuck requests left: killing the worker in {:.1} s instead of at the end of --graceful-timeout",
                STUCK_GRACE.as_secs_f64()
            );
            self.log(Level::Info, Some((slot, pid)), msg);
        }
    }

    pub(super) fn retire_surplus(&mut self, now: Instant) {
        let generation = self.generation;
        loop {
            let ready = self
                .workers
                .iter()
                .filter(|(_, w)| !w.is_replaceable(generation) && w.phase == Phase::Ready)
                .count();
            let replaceable: Vec<(usize, bool)> = self
                .workers
                .iter()
                .filter(|(_, w)| w.is_replaceable(generation) && !w.is_stopping())
                .map(|(s, w)| (s, w.phase == Phase::Starting))
                .collect();
            // A replaceable worker that never became ready serves nobody: stop it first.
            let Some(&(slot, starting)) =
                replaceable.iter().find(|(_, s)| *s).or(replaceable.first())
            else {
                break;
            };
            if !(starting || ready + replaceable.len() > self.wanted) {
                break;
            }
            let why = self
                .workers
                .get(slot)
                .and_then(|w| w.retiring.clone())
                .unwrap_or_else(|| "replaced by a new generation".to_owned());
            self.stop_worker(slot, &why, "reload", now);
        }
        if let Some(started) = self.reload_started {
            let old_left = self
                .workers
                .iter()
                .any(|(_, w)| w.generation != generation && !w.is_stopping());
            if !old_left && self.workers.serving_count(generation) >= self.wanted {
                let msg = format!(
                    "reload complete: the new generation is serving (generation {generation}, {} ms)",
                    now.duration_since(started).as_millis()
                );
                self.log(Level::Info, None, msg);
                self.reload_started = None;
            }
        }
        while self.workers.serving_count(generation) > self.wanted {
            let newest = self
                .workers
                .iter()
                .filter(|(_, w)| !w.is_replaceable(generation) && !w.is_stopping())
                .max_by_key(|(_, w)| w.spawned_at)
                .map(|(s, _)| s);
            match newest {
                Some(slot) => self.stop_worker(slot, "fewer workers wanted", "scale-down", now),
                None => break,
            }
        }
    }
}
