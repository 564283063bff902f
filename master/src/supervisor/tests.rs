use super::*;
use rwsgi_conf::Invocation;

fn config(args: &[&str]) -> ServerConfig {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/wsgi.py");
    let mut argv = vec!["rwsgi", "start-server"];
    argv.extend_from_slice(args);
    argv.push(script);
    match rwsgi_conf::parse(argv) {
        Ok(Invocation::StartServer { config, .. }) => *config,
        _ => panic!("not a start-server configuration"),
    }
}

/// The scoreboard clock when a harness starts.
const START_MS: u64 = 1_000_000;

/// A supervisor driven the way the event loop drives it, with pids
/// handed out in order and every `Spawn` carried out at once.
struct Harness {
    sup: Supervisor,
    now: Instant,
    now_ms: u64,
    next_pid: u32,
    log: Vec<String>,
}

impl Harness {
    fn new(args: &[&str]) -> Harness {
        let now = Instant::now();
        Harness {
            sup: Supervisor::new(&config(args), 16, now),
            now,
            now_ms: START_MS,
            next_pid: 100,
            log: Vec::new(),
        }
    }

    fn control(&mut self, control: Control) -> Vec<Action> {
        let actions = self.sup.control(control, self.now);
        self.run(actions)
    }

    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.now_ms += ms;
    }

    /// Carries out spawns; returns the other actions, logs kept aside.
    fn run(&mut self, actions: Vec<Action>) -> Vec<Action> {
        let mut rest = Vec::new();
        for a in actions {
            match a {
                Action::Spawn => {
                    let slot = self.sup.workers.free_slot().expect("a free slot");
                    self.next_pid += 1;
                    self.sup
                        .spawned(slot, self.next_pid, self.now, Jitter::default());
                }
                Action::Log { message, .. } => self.log.push(message),
                other => rest.push(other),
            }
        }
        // `spawned` logs too.
        for a in self.sup.actions() {
            if let Action::Log { message, .. } = a {
                self.log.push(message);
            }
        }
        rest
    }

    /// Healthy readings for every worker, `requests` served each.
    fn readings(&self, requests: u64) -> Vec<Option<Reading>> {
        let beats = Beats {
            io_ms: self.now_ms,
            python_ms: self.now_ms,
            ready_at_ms: self.now_ms,
            // Every worker's occupancy began when the harness did.
            since_ms: START_MS,
        };
        (0..16)
            .map(|slot| {
                self.sup.workers.get(slot).map(|_| Reading {
                    requests,
                    activity: requests,
                    beats,
                    ..Reading::default()
                })
            })
            .collect()
    }

    fn tick(&mut self) -> Vec<Action> {
        let readings = self.readings(0);
        self.tick_with(&readings)
    }

    fn tick_with(&mut self, readings: &[Option<Reading>]) -> Vec<Action> {
        let actions = self.sup.tick(self.now, self.now_ms, readings);
        self.run(actions)
    }

    fn ready_all(&mut self) {
        let starting: Vec<usize> = self
            .sup
            .workers
            .iter()
            .filter(|(_, w)| w.phase == Phase::Starting)
            .map(|(s, _)| s)
            .collect();
        for slot in starting {
            let actions = self.sup.event(slot, &Event::Ready, self.now);
            self.run(actions);
        }
    }

    fn slots(&self, pred: impl Fn(&Worker) -> bool) -> Vec<usize> {
        self.sup
            .workers
            .iter()
            .filter(|(_, w)| pred(w))
            .map(|(s, _)| s)
            .collect()
    }

    fn logged(&self, text: &str) -> bool {
        self.log.iter().any(|l| l.contains(text))
    }

    /// Starts `n` workers and makes them ready.
    fn started(args: &[&str]) -> Harness {
        let mut h = Harness::new(args);
        assert!(h.tick().is_empty());
        h.ready_all();
        assert!(h.logged("server ready"));
        h
    }
}

fn stops(actions: &[Action]) -> Vec<usize> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Stop { slot, .. } => Some(*slot),
            _ => None,
        })
        .collect()
}

#[test]
fn start_spawns_the_wanted_number_and_reports_ready_once_all_are() {
    let mut h = Harness::new(&["--processes", "3"]);
    h.tick();
    assert_eq!(h.sup.workers.iter().count(), 3);
    assert!(!h.logged("server ready"));
    // No more spawns while they start.
    assert!(h.tick().is_empty());
    assert_eq!(h.sup.workers.iter().count(), 3);
    h.ready_all();
    assert!(h.logged("server ready (3 workers"));
}

#[test]
fn a_reload_stops_each_old_worker_only_once_its_replacement_is_ready() {
    let mut h = Harness::started(&["--processes", "2"]);
    let old = h.slots(|_| true);
    let actions = h.sup.control(Control::Reload, h.now);
    h.run(actions);
    // The new generation starts; the old one keeps serving.
    let actions = h.tick();
    assert!(stops(&actions).is_empty(), "{actions:?}");
    assert_eq!(h.slots(|w| w.generation == 2).len(), 2);
    assert!(h.tick().is_empty());
    // One replacement ready: exactly one old worker is stopped.
    let first_new = h.slots(|w| w.generation == 2)[0];
    let actions = h.sup.event(first_new, &Event::Ready, h.now);
    h.run(actions);
    let stopped = stops(&h.tick());
    assert_eq!(stopped.len(), 1);
    assert!(old.contains(&stopped[0]));
    // The second: the other old worker goes, and the reload is complete.
    h.ready_all();
    let stopped = stops(&h.tick());
    assert_eq!(stopped.len(), 1);
    assert!(h.logged("reload complete"));
}

#[test]
fn a_reload_requested_by_a_replaced_generation_is_ignored() {
    let mut h = Harness::started(&["--processes", "2"]);
    let old = h.slots(|_| true);
    let actions = h.sup.event(old[0], &Event::ReloadRequested, h.now);
    h.run(actions);
    assert_eq!(h.sup.generation, 2);
    // The second worker of the same (now old) generation asks too.
    let actions = h.sup.event(old[1], &Event::ReloadRequested, h.now);
    h.run(actions);
    assert_eq!(h.sup.generation, 2);
}

#[test]
fn deaths_back_off_exponentially_and_a_ready_worker_resets_it() {
    let mut h = Harness::started(&["--processes", "1"]);
    // The first death is replaced at once.
    let slot = h.slots(|_| true)[0];
    let actions = h.sup.died(slot, Death::Exited(1), h.now);
    h.run(actions);
    h.tick();
    assert_eq!(h.slots(|_| true).len(), 1, "not replaced at once");
    for failures in 2..=4u32 {
        let slot = h.slots(|_| true)[0];
        let actions = h.sup.died(slot, Death::Exited(1), h.now);
        h.run(actions);
        assert!(h.logged("worker died"));
        let wait = backoff(failures).as_millis() as u64;
        h.advance(wait - 1);
        assert!(h.slots(|_| true).is_empty());
        h.tick();
        assert!(
            h.slots(|_| true).is_empty(),
            "respawned before the back-off"
        );
        h.advance(1);
        h.tick();
        assert_eq!(
            h.slots(|_| true).len(),
            1,
            "not respawned after the back-off"
        );
    }
    assert_eq!(backoff(1), Duration::ZERO);
    assert_eq!(backoff(2), Duration::from_millis(200));
    // Doubling stops at 25.6 s.
    assert_eq!(backoff(9), Duration::from_millis(25_600));
    assert_eq!(backoff(20), backoff(9));
    h.ready_all();
    assert_eq!(h.sup.failures, 0);
}

#[test]
fn the_first_generation_failing_stops_the_server_with_its_exit_code() {
    let mut h = Harness::new(&[]);
    h.tick();
    let slot = h.slots(|_| true)[0];
    let actions = h
        .sup
        .died(slot, Death::Exited(ExitCode::AppLoad as i32), h.now);
    let fail = h.run(actions);
    assert!(matches!(
        fail.as_slice(),
        [Action::Fail {
            code: ExitCode::AppLoad,
            ..
        }]
    ));
    assert!(h.logged("could not be loaded"));
}

#[test]
fn recycling_goes_one_worker_at_a_time_with_each_workers_jitter() {
    let mut h = Harness::new(&[
        "--processes",
        "2",
        "--maximum-requests",
        "100",
        "--maximum-requests-jitter",
        "50",
    ]);
    h.tick();
    // Each worker drew its own jitter: one recycles at 110, the other at 140.
    let slots = h.slots(|_| true);
    h.sup.workers.get_mut(slots[0]).expect("w").request_limit = 110;
    h.sup.workers.get_mut(slots[1]).expect("w").request_limit = 140;
    h.ready_all();
    let readings = h.readings(120);
    h.tick_with(&readings);
    assert!(h.logged("served 120 requests (--maximum-requests 100)"));
    assert_eq!(h.slots(|w| w.retiring.is_some()), vec![slots[0]]);
    // Both past their limit: still one at a time.
    let readings = h.readings(200);
    h.tick_with(&readings);
    assert_eq!(h.slots(|w| w.retiring.is_some()), vec![slots[0]]);
    // A replacement was spawned, and the retiring one is stopped once it is ready.
    assert_eq!(h.slots(|w| w.phase == Phase::Starting).len(), 1);
    h.ready_all();
    let actions = h.tick_with(&readings);
    assert_eq!(stops(&actions), vec![slots[0]]);
}

#[test]
fn a_request_timeout_dumps_stacks_at_once_and_stops_taking_work() {
    let mut h = Harness::started(&["--processes", "2", "--request-timeout", "3"]);
    let slot = h.slots(|_| true)[0];
    let mut readings = h.readings(0);
    if let Some(Some(r)) = readings.get_mut(slot) {
        r.oldest_request = Some((1, h.now_ms - 3_500, "GET /stuck".to_owned()));
    }
    let actions = h.tick_with(&readings);
    let pid = h.sup.workers.get(slot).expect("w").pid;
    assert!(actions.contains(&Action::DumpStacks { pid }), "{actions:?}");
    let w = h.sup.workers.get(slot).expect("w");
    assert!(w.stuck && !w.accepts_work());
    assert!(h.logged("request timeout: thread 1 has been running GET /stuck"));
}

#[test]
fn a_silent_worker_gets_no_work_then_is_dumped_and_killed_and_replaced() {
    let mut h = Harness::started(&["--processes", "2", "--deadlock-timeout", "10"]);
    let slot = h.slots(|_| true)[0];
    let pid = h.sup.workers.get(slot).expect("w").pid;
    let silent_since = h.now_ms;
    let silent = |h: &mut Harness| {
        let mut readings = h.readings(0);
        if let Some(Some(r)) = readings.get_mut(slot) {
            r.beats.python_ms = silent_since;
        }
        h.tick_with(&readings)
    };
    h.advance(1_000);
    silent(&mut h);
    assert!(h.sup.workers.get(slot).expect("w").accepts_work());
    h.advance(1_500);
    silent(&mut h);
    assert!(!h.sup.workers.get(slot).expect("w").accepts_work());
    assert!(h.logged("no heartbeat from its Python interpreter (GIL)"));
    h.advance(8_000);
    let actions = silent(&mut h);
    assert!(actions.contains(&Action::DumpStacks { pid }), "{actions:?}");
    // No longer serving: a replacement starts at once.
    assert_eq!(h.slots(|w| w.phase == Phase::Starting).len(), 1);
    h.advance(DUMP_GRACE.as_millis() as u64 + 1);
    let actions = silent(&mut h);
    assert!(actions.contains(&Action::Kill { pid }), "{actions:?}");
    let actions = h.sup.died(
        slot,
        Death::Signaled(nix::sys::signal::Signal::SIGKILL),
        h.now,
    );
    h.run(actions);
    assert!(h.logged("worker killed by the master: no heartbeat"));
    assert!(!h.logged("out of memory"));
}

/// Issue 20: a worker just forked, ready, whose Python heartbeat is not
/// written yet (its fields as the master once reset them): it is not
/// judged silent since the machine booted.
#[test]
fn a_new_worker_whose_beats_are_not_written_yet_is_not_killed() {
    let mut h = Harness::started(&["--processes", "2", "--deadlock-timeout", "10"]);
    let slot = h.slots(|_| true)[0];
    let actions = h.sup.died(
        slot,
        Death::Signaled(nix::sys::signal::Signal::SIGKILL),
        h.now,
    );
    h.run(actions);
    h.advance(50);
    h.tick();
    let new = h.slots(|w| w.phase == Phase::Starting);
    assert_eq!(new.len(), 1);
    let spawned_ms = h.now_ms;
    // Master first: the worker has not attached yet, nothing is read.
    let mut readings = h.readings(0);
    readings[new[0]] = None;
    assert!(h.tick_with(&readings).is_empty());
    // Worker first: ready (its event read) with only the I/O beat written.
    let actions = h.sup.event(new[0], &Event::Ready, h.now);
    h.run(actions);
    for _ in 0..5 {
        h.advance(100);
        let mut readings = h.readings(0);
        if let Some(r) = readings[new[0]].as_mut() {
            r.beats = Beats {
                io_ms: h.now_ms,
                python_ms: 0,
                ready_at_ms: 0,
                since_ms: spawned_ms,
            };
        }
        let actions = h.tick_with(&readings);
        assert!(actions.is_empty(), "{actions:?}");
    }
    assert!(!h.logged("deadlocked") && !h.logged("unresponsive"));
    assert!(h.sup.workers.get(new[0]).expect("w").accepts_work());
}

#[test]
fn a_worker_that_beats_again_takes_work_again() {
    let mut h = Harness::started(&["--processes", "1"]);
    let slot = h.slots(|_| true)[0];
    let mut readings = h.readings(0);
    h.advance(3_000);
    h.tick_with(&readings);
    assert!(!h.sup.workers.get(slot).expect("w").accepts_work());
    readings = h.readings(0);
    h.tick_with(&readings);
    assert!(h.sup.workers.get(slot).expect("w").accepts_work());
    assert!(h.logged("responsive again"));
}

#[test]
fn the_stop_sequence_drains_then_kills_at_the_deadline_then_exits() {
    let mut h = Harness::started(&[
        "--processes",
        "2",
        "--graceful-timeout",
        "2",
        "--shutdown-timeout",
        "1",
    ]);
    let actions = h.sup.control(Control::GracefulStop, h.now);
    let rest = h.run(actions);
    assert_eq!(rest[0], Action::CloseListener { drain: true });
    assert_eq!(stops(&rest).len(), 2);
    // A second SIGTERM changes nothing.
    assert!(h.control(Control::GracefulStop).is_empty());
    // No respawn while stopping, no kill before the deadline.
    h.advance(2_999);
    assert!(h.tick().is_empty());
    let (a, b) = (h.slots(|_| true)[0], h.slots(|_| true)[1]);
    let actions = h.sup.died(a, Death::Exited(0), h.now);
    h.run(actions);
    assert!(h.logged("worker stopped: exited with code 0"));
    h.advance(2);
    let pid = h.sup.workers.get(b).expect("w").pid;
    assert_eq!(h.tick(), vec![Action::Kill { pid }]);
    let actions = h
        .sup
        .died(b, Death::Signaled(nix::sys::signal::Signal::SIGKILL), h.now);
    h.run(actions);
    assert!(h.logged("did not stop within --graceful-timeout + --shutdown-timeout"));
    assert_eq!(h.tick(), vec![Action::Exit(ExitCode::Ok)]);
}

#[test]
fn a_shutdown_delay_keeps_serving_then_drains_and_a_second_sigterm_skips_it() {
    let mut h = Harness::started(&["--processes", "1", "--shutdown-delay", "5"]);
    let rest = h.control(Control::GracefulStop);
    assert!(rest.is_empty(), "nothing stops yet: {rest:?}");
    assert!(h.sup.shutting_down() && !h.sup.is_stopping());
    h.advance(4_999);
    assert!(stops(&h.tick()).is_empty());
    h.advance(1);
    let actions = h.tick();
    assert_eq!(actions[0], Action::CloseListener { drain: true });
    assert_eq!(stops(&actions).len(), 1);
    // Again, with a second SIGTERM during the delay.
    let mut h = Harness::started(&["--processes", "1", "--shutdown-delay", "30"]);
    h.control(Control::GracefulStop);
    let actions = h.control(Control::GracefulStop);
    assert_eq!(stops(&actions).len(), 1);
    assert!(h.sup.is_stopping());
}

#[test]
fn a_fast_stop_terminates_at_once_and_kills_a_second_later() {
    let mut h = Harness::started(&["--processes", "1"]);
    let pid = h.sup.workers.iter().next().expect("w").1.pid;
    let rest = h.control(Control::FastStop);
    assert!(rest.contains(&Action::Terminate { pid }));
    assert!(rest.contains(&Action::DropPending));
    h.advance(1_001);
    assert_eq!(h.tick(), vec![Action::Kill { pid }]);
}

#[test]
fn in_debug_mode_a_first_ctrl_c_stops_gracefully_and_a_second_at_once() {
    let mut h = Harness::started(&["--debug-mode"]);
    let pid = h.sup.workers.iter().next().expect("w").1.pid;
    let first = h.control(Control::FastStop);
    assert!(!first.contains(&Action::Terminate { pid }), "{first:?}");
    assert_eq!(stops(&first).len(), 1);
    let second = h.control(Control::FastStop);
    assert!(second.contains(&Action::Terminate { pid }), "{second:?}");
}

#[test]
fn a_worker_that_never_gets_ready_is_killed_at_the_startup_timeout() {
    let mut h = Harness::new(&["--startup-timeout", "5"]);
    h.tick();
    let pid = h.sup.workers.iter().next().expect("w").1.pid;
    h.advance(5_001);
    assert_eq!(h.tick(), vec![Action::Kill { pid }]);
    assert!(h.logged("--startup-timeout"));
}

#[test]
fn sigttin_and_sigttou_change_the_count() {
    let mut h = Harness::started(&["--processes", "2"]);
    h.control(Control::AddWorker);
    h.tick();
    assert_eq!(h.slots(|_| true).len(), 3);
    h.ready_all();
    h.control(Control::RemoveWorker);
    assert_eq!(stops(&h.tick()).len(), 1);
}

/// Readings where `slot` runs requests started `ages` ms ago, the oldest
/// one as `GET /stuck` on thread 0.
fn with_requests(h: &Harness, slot: usize, ages: &[u64]) -> Vec<Option<Reading>> {
    let mut readings = h.readings(0);
    if let Some(Some(r)) = readings.get_mut(slot) {
        r.running = ages.iter().map(|age| h.now_ms - age).collect();
        r.oldest_request = ages
            .iter()
            .max()
            .map(|age| (0, h.now_ms - age, "GET /stuck".to_owned()));
    }
    readings
}

/// One worker (of `args`) whose request gets stuck: returns its slot and
/// pid once its replacement is ready and it has been told to stop.
fn stuck_and_replaced(h: &mut Harness, ages: &[u64], running_then: &[u64]) -> (usize, u32) {
    let slot = h.slots(|_| true)[0];
    let pid = h.sup.workers.get(slot).expect("w").pid;
    let readings = with_requests(h, slot, ages);
    h.tick_with(&readings);
    assert!(h.logged("recycling worker: request timeout"), "{:?}", h.log);
    // The replacement starts, then becomes ready: the stuck worker is stopped.
    assert_eq!(h.slots(|w| w.phase == Phase::Starting).len(), 1);
    h.ready_all();
    let readings = with_requests(h, slot, running_then);
    let actions = h.tick_with(&readings);
    assert_eq!(stops(&actions), vec![slot], "{actions:?}");
    (slot, pid)
}

#[test]
fn a_stuck_worker_with_no_other_request_goes_soon_after_its_replacement_is_ready() {
    let mut h = Harness::started(&[
        "--processes",
        "1",
        "--request-timeout",
        "3",
        "--graceful-timeout",
        "15",
    ]);
    let (slot, pid) = stuck_and_replaced(&mut h, &[3_500], &[3_600]);
    assert!(h.logged("only stuck requests left"), "{:?}", h.log);
    h.advance(STUCK_GRACE.as_millis() as u64 - 1);
    let readings = with_requests(&h, slot, &[4_700]);
    assert!(h.tick_with(&readings).is_empty());
    h.advance(2);
    let readings = with_requests(&h, slot, &[4_700]);
    assert_eq!(h.tick_with(&readings), vec![Action::Kill { pid }]);
}

#[test]
fn a_stuck_worker_keeps_the_graceful_period_while_other_requests_run() {
    let mut h = Harness::started(&[
        "--processes",
        "1",
        "--request-timeout",
        "3",
        "--graceful-timeout",
        "15",
    ]);
    let (slot, pid) = stuck_and_replaced(&mut h, &[3_500, 100], &[3_600, 200]);
    assert!(!h.logged("only stuck requests left"));
    // The other request runs on: no kill before --graceful-timeout.
    h.advance(5_000);
    let readings = with_requests(&h, slot, &[8_600, 5_200]);
    assert!(h.tick_with(&readings).is_empty());
    // It finishes: only the stuck one is left, the worker goes soon after.
    h.advance(100);
    let readings = with_requests(&h, slot, &[8_700]);
    assert!(h.tick_with(&readings).is_empty());
    assert!(h.logged("only stuck requests left"));
    h.advance(STUCK_GRACE.as_millis() as u64 + 1);
    let readings = with_requests(&h, slot, &[9_800]);
    assert_eq!(h.tick_with(&readings), vec![Action::Kill { pid }]);
}

#[test]
fn a_stuck_worker_whose_other_request_never_ends_is_killed_at_the_graceful_timeout() {
    let mut h = Harness::started(&[
        "--processes",
        "1",
        "--request-timeout",
        "3",
        "--graceful-timeout",
        "15",
    ]);
    let (slot, pid) = stuck_and_replaced(&mut h, &[3_500, 100], &[3_600, 200]);
    h.advance(15_000);
    let readings = with_requests(&h, slot, &[18_600, 15_200]);
    assert!(h.tick_with(&readings).is_empty());
    h.advance(1);
    assert_eq!(h.tick_with(&readings), vec![Action::Kill { pid }]);
}

#[test]
fn with_an_interrupt_timeout_the_master_waits_for_the_interrupt_first() {
    let mut h = Harness::started(&[
        "--processes",
        "2",
        "--request-timeout",
        "2",
        "--interrupt-timeout",
        "2",
    ]);
    let slot = h.slots(|_| true)[0];
    // Past --request-timeout: the worker's own interrupt has its chance.
    let readings = with_requests(&h, slot, &[3_900]);
    assert!(h.tick_with(&readings).is_empty());
    assert!(!h.logged("recycling worker"));
    // Still running past both: the graceful path.
    let readings = with_requests(&h, slot, &[4_100]);
    let pid = h.sup.workers.get(slot).expect("w").pid;
    assert!(h.tick_with(&readings).contains(&Action::DumpStacks { pid }));
    assert!(
        h.logged(
            "(--request-timeout 2 s + --interrupt-timeout 2 s: RequestTimeout did not end it)"
        ),
        "{:?}",
        h.log
    );
    // A request still within both is not stuck: the drain is not cut.
    let w = h.sup.workers.get(slot).expect("w");
    let reading = Reading {
        running: vec![h.now_ms - 3_900],
        ..Reading::default()
    };
    let far = h.now + Duration::from_secs(10);
    let stuck_after = stuck_after_ms(&h.sup.config);
    assert_eq!(stuck_after, 4_000);
    assert_eq!(
        stuck_drain_deadline(w, far, &reading, h.now, h.now_ms, stuck_after),
        None
    );
}

#[test]
fn a_stuck_worker_whose_requests_all_ended_is_left_to_exit_by_itself() {
    let mut h = Harness::started(&[
        "--processes",
        "1",
        "--request-timeout",
        "3",
        "--graceful-timeout",
        "15",
    ]);
    // The stuck request ends just as the replacement is ready.
    let (slot, _) = stuck_and_replaced(&mut h, &[3_500], &[]);
    assert!(!h.logged("only stuck requests left"));
    h.advance(STUCK_GRACE.as_millis() as u64 + 1);
    let readings = with_requests(&h, slot, &[]);
    assert!(h.tick_with(&readings).is_empty());
}

/// `--inactivity-timeout`: a worker that served requests and then none
/// for that long is replaced; a never-used one, or a busy one, is kept.
#[test]
fn an_inactive_worker_is_replaced() {
    let mut h = Harness::started(&["--processes", "1", "--inactivity-timeout", "5"]);
    // Never used: kept however long it waits.
    h.advance(10_000);
    assert!(h.tick_with(&h.readings(0)).is_empty());
    assert!(!h.logged("recycling worker"));
    // Served 3, then idle for less than the timeout: kept.
    h.advance(1_000);
    h.tick_with(&h.readings(3));
    h.advance(4_000);
    h.tick_with(&h.readings(3));
    assert!(!h.logged("recycling worker"));
    // One more request restarts the clock.
    h.advance(2_000);
    h.tick_with(&h.readings(4));
    h.advance(4_900);
    h.tick_with(&h.readings(4));
    assert!(!h.logged("recycling worker"), "{:?}", h.log);
    h.advance(200);
    h.tick_with(&h.readings(4));
    assert!(h.logged("(--inactivity-timeout)"), "{:?}", h.log);
}

/// `--eviction-timeout`: a reload's drain, defaulting to `--graceful-timeout`;
/// other stops keep `--graceful-timeout`.
#[test]
fn a_reload_drains_within_the_eviction_timeout() {
    let t = config(&["--graceful-timeout", "2", "--shutdown-timeout", "1"]).timeouts;
    assert_eq!(stop_grace(&t, false, true).0, 3_000);
    assert_eq!(stop_grace(&t, false, false).0, 3_000);
    let t = config(&[
        "--graceful-timeout",
        "2",
        "--shutdown-timeout",
        "1",
        "--eviction-timeout",
        "30",
    ])
    .timeouts;
    let (grace, why) = stop_grace(&t, false, true);
    assert_eq!(grace, 31_000);
    assert!(why.contains("--eviction-timeout"), "{why}");
    assert_eq!(stop_grace(&t, true, true).0, 30_000);
    assert_eq!(stop_grace(&t, false, false).0, 3_000);
    assert_eq!(stop_grace(&t, true, false).0, 2_000);
}

/// A reload tells the replaced workers to drain as evicted ones; a
/// server stop tells them to drain within `--graceful-timeout`.
#[test]
fn a_reload_stops_workers_as_evicted() {
    let mut h = Harness::started(&["--processes", "1", "--eviction-timeout", "30"]);
    h.control(Control::Reload);
    assert!(stops(&h.tick()).is_empty());
    h.ready_all();
    let actions = h.tick();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Stop { evict: true, .. })),
        "{actions:?}"
    );
    let actions = h.control(Control::GracefulStop);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Stop { evict: false, .. })),
        "{actions:?}"
    );
}

#[test]
fn all_wanted_are_ready_only_once_none_starts_and_the_count_is_reached() {
    let mut h = Harness::new(&["--processes", "2"]);
    assert!(!h.sup.all_wanted_ready(), "nothing started yet");
    h.tick();
    assert!(!h.sup.all_wanted_ready(), "both still starting");
    h.ready_all();
    assert!(h.sup.all_wanted_ready());
    // SIGTTIN: one more wanted, not there yet.
    h.control(Control::AddWorker);
    assert!(!h.sup.all_wanted_ready());
    h.tick();
    assert!(!h.sup.all_wanted_ready(), "the third is starting");
    h.ready_all();
    assert!(h.sup.all_wanted_ready());
    // A reload: the new generation starts beside the old one.
    h.control(Control::Reload);
    h.tick();
    assert!(!h.sup.all_wanted_ready());
}

#[test]
fn a_worker_reaped_after_a_failed_start_is_forgotten_without_a_decision() {
    let mut h = Harness::new(&["--processes", "2"]);
    h.tick();
    let pid = h.sup.workers.iter().next().expect("w").1.pid;
    h.sup.forget_reaped(pid);
    h.sup.forget_reaped(1); // not a worker: nothing happens
    assert_eq!(h.sup.workers.iter().count(), 1);
    assert_eq!(h.sup.workers.slot_of_pid(pid), None);
    assert!(h.sup.actions().is_empty());
    assert_eq!(h.sup.stats.exits.iter().sum::<u64>(), 0);
}

#[test]
fn the_dispatcher_can_only_count_hand_offs_and_close_a_channel() {
    let mut h = Harness::started(&["--processes", "1"]);
    let slot = h.slots(|_| true)[0];
    let table = h.sup.workers_for_dispatch();
    table.handed_off(slot);
    table.handed_off(slot);
    assert_eq!(table.get(slot).expect("w").sent, 2);
    table.channel_closed(slot);
    // No connection goes to it, and the server no longer counts as ready.
    assert!(!h.sup.workers.any_ready());
}
