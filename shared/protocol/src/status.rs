//! A running server's state as people and tools read it: `rwsgi status`
//! (text or `--json`), the admin listener's `/server-status` and the main
//! port's `--server-status` page all render this one model, read from the
//! scoreboard.

use crate::metrics::MetricsSnapshot;
use crate::scoreboard::{Scoreboard, ThreadState, WorkerState, MAX_THREADS};
use std::fmt::Write as _;

/// One request running now.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub thread: usize,
    pub request: String,
    pub seconds: f64,
}

/// One worker, as the scoreboard shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerStatus {
    pub slot: usize,
    pub pid: u32,
    pub generation: u32,
    pub state: &'static str,
    pub busy: u32,
    pub threads: u32,
    pub queued: u32,
    pub connections: u32,
    pub idle_connections: u32,
    pub requests: u64,
    pub up_seconds: f64,
    /// Age of the older heartbeat, seconds.
    pub heartbeat_seconds: Option<f64>,
    pub running: Vec<Running>,
}

/// A running server's state, read from its scoreboard: what `rwsgi
/// status`, `/server-status` and its JSON show.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub master: u32,
    /// The template process workers are forked from, if there is one.
    pub template: Option<u32>,
    pub up_seconds: f64,
    pub generation: u32,
    pub wanted: u32,
    pub workers: Vec<WorkerStatus>,
    /// Every worker's metrics, with those of exited workers (as `/metrics`).
    pub metrics: MetricsSnapshot,
    /// The master's counters: worker starts and exits, request timeouts, utilization.
    pub master_counters: crate::scoreboard::MasterCounters,
    /// The running requests show their method only (`redact`).
    pub redacted: bool,
    /// `--service-script` processes (from the service board, see `with_services`).
    pub services: Vec<ServiceStatus>,
}

/// One `--service-script` process, as the service board shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatus {
    pub name: String,
    /// 0 when no process runs.
    pub pid: u32,
    pub state: &'static str,
    pub starts: u64,
    pub crashes: u64,
    pub up_seconds: f64,
    /// While waiting out a back-off: seconds until the next start.
    pub restart_in_seconds: Option<f64>,
}

fn seconds(now_ms: u64, then_ms: u64) -> f64 {
    if then_ms == 0 {
        0.0
    } else {
        now_ms.saturating_sub(then_ms) as f64 / 1000.0
    }
}

impl Status {
    pub fn read(sb: &Scoreboard, now: u64) -> Status {
        let h = sb.header();
        let workers = sb
            .workers()
            .filter(|(_, w)| w.pid() != 0)
            .map(|(slot, w)| {
                // Until the worker attaches, its fields are the previous
                // occupant's: it shows as starting, with nothing of theirs.
                if !w.attached() {
                    return WorkerStatus {
                        slot,
                        pid: w.pid(),
                        generation: w.generation(),
                        state: "starting",
                        busy: 0,
                        threads: w.threads(),
                        queued: 0,
                        connections: 0,
                        idle_connections: 0,
                        requests: 0,
                        up_seconds: seconds(now, w.spawned_at_ms()),
                        heartbeat_seconds: None,
                        running: Vec::new(),
                    };
                }
                let running = (0..(w.threads() as usize).min(MAX_THREADS))
                    .filter_map(|t| w.thread(t).map(|th| (t, th)))
                    .filter(|(_, th)| th.state() == ThreadState::Busy)
                    .map(|(t, th)| Running {
                        thread: t,
                        request: th.describe(),
                        seconds: seconds(now, th.request_started_ms()),
                    })
                    .collect();
                let beat = [w.heartbeat_ms(), w.python_heartbeat_ms()]
                    .into_iter()
                    .filter(|&b| b != 0)
                    .min();
                WorkerStatus {
                    slot,
                    pid: w.pid(),
                    generation: w.generation(),
                    state: match w.state() {
                        WorkerState::Starting => "starting",
                        WorkerState::Ready => "ready",
                        WorkerState::Draining => "draining",
                        WorkerState::Exited => "exited",
                        WorkerState::Empty => "empty",
                    },
                    busy: w.busy_threads(),
                    threads: w.threads(),
                    queued: w.queued(),
                    connections: w.connections(),
                    idle_connections: w.idle_connections(),
                    requests: w.requests(),
                    up_seconds: seconds(now, w.spawned_at_ms()),
                    heartbeat_seconds: beat.map(|b| seconds(now, b)),
                    running,
                }
            })
            .collect();
        let mut metrics = h.retired().snapshot();
        for (_, w) in sb.workers().filter(|(_, w)| w.pid() != 0 && w.attached()) {
            metrics.merge(&w.metrics().snapshot());
        }
        Status {
            master_counters: h.master_counters(),
            metrics,
            master: h.master_pid(),
            template: h.template_pid(),
            up_seconds: seconds(now, h.started_at_ms()),
            generation: h.generation(),
            wanted: h.wanted_workers(),
            workers,
            redacted: false,
            services: Vec::new(),
        }
    }

    /// Adds the services of the master's service board.
    pub fn with_services(self, board: &crate::service_board::ServiceBoard, now: u64) -> Status {
        self.with_service_readings(board.read(), now)
    }

    /// Adds the services as the master reads them.
    pub fn with_service_readings(
        mut self,
        readings: Vec<crate::service_board::ServiceReading>,
        now: u64,
    ) -> Status {
        use crate::service_board::ServiceState;
        self.services = readings
            .into_iter()
            .map(|r| ServiceStatus {
                pid: r.pid,
                state: r.state.as_str(),
                starts: r.starts,
                crashes: r.crashes,
                up_seconds: if r.state == ServiceState::Running {
                    seconds(now, r.started_at_ms)
                } else {
                    0.0
                },
                restart_in_seconds: (r.state == ServiceState::Waiting && r.next_start_ms > 0)
                    .then(|| r.next_start_ms.saturating_sub(now) as f64 / 1000.0),
                name: r.name,
            })
            .collect();
        self
    }

    /// Keeps to what a stranger may see: a running request's path and
    /// query can carry a secret (`/password-reset/TOKEN`), so each shows
    /// its method only; how long it has run, the counts and the PIDs stay
    /// (what Apache's mod_status shows without ExtendedStatus).
    pub fn redact(&mut self) {
        for r in self.workers.iter_mut().flat_map(|w| w.running.iter_mut()) {
            let method = r.request.split(' ').next().unwrap_or_default();
            r.request = method.to_owned();
        }
        self.redacted = true;
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "rwsgi master {}: up {}, generation {}, {} workers wanted{}",
            self.master,
            age(self.up_seconds),
            self.generation,
            self.wanted,
            self.template_text()
        );
        let _ = writeln!(
            out,
            "slot  pid      gen  state     busy/threads  queued  conns  requests  up       heartbeat"
        );
        for w in &self.workers {
            let _ = writeln!(
                out,
                "{:<5} {:<8} {:<4} {:<9} {:>4}/{:<8} {:>6} {:>6} {:>9}  {:<8} {}",
                w.slot,
                w.pid,
                w.generation,
                w.state,
                w.busy,
                w.threads,
                w.queued,
                w.connections,
                w.requests,
                age(w.up_seconds),
                w.heartbeat_seconds
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s ago")),
            );
        }
        let running: Vec<String> = self
            .workers
            .iter()
            .flat_map(|w| {
                w.running.iter().map(move |r| {
                    format!(
                        "  worker {} thread {}: {} for {:.1} s",
                        w.slot, r.thread, r.request, r.seconds
                    )
                })
            })
            .collect();
        if !running.is_empty() {
            let _ = writeln!(out, "running requests:{}", self.redaction_note());
            for r in running {
                let _ = writeln!(out, "{r}");
            }
        }
        if !self.services.is_empty() {
            let _ = writeln!(
                out,
                "service                           pid      state     starts  crashes  up"
            );
            for s in &self.services {
                let up = match s.restart_in_seconds {
                    Some(r) => format!("restart in {r:.1} s"),
                    None if s.state == "running" => age(s.up_seconds),
                    None => "-".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "{:<33} {:<8} {:<9} {:>6} {:>8}  {}",
                    s.name,
                    if s.pid == 0 {
                        "-".to_owned()
                    } else {
                        s.pid.to_string()
                    },
                    s.state,
                    s.starts,
                    s.crashes,
                    up
                );
            }
        }
        out
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "master": self.master,
            "template": self.template,
            "up_seconds": self.up_seconds,
            "generation": self.generation,
            "workers_wanted": self.wanted,
            "requests_redacted": self.redacted,
            "metrics": metrics_json(&self.metrics, &self.master_counters),
            "workers": self.workers.iter().map(|w| serde_json::json!({
                "slot": w.slot,
                "pid": w.pid,
                "generation": w.generation,
                "state": w.state,
                "threads_busy": w.busy,
                "threads": w.threads,
                "queued": w.queued,
                "connections": w.connections,
                "connections_idle": w.idle_connections,
                "requests": w.requests,
                "up_seconds": w.up_seconds,
                "heartbeat_age_seconds": w.heartbeat_seconds,
                "running": w.running.iter().map(|r| serde_json::json!({
                    "thread": r.thread,
                    "request": r.request,
                    "seconds": r.seconds,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "services": self.services.iter().map(|s| serde_json::json!({
                "name": s.name,
                "pid": if s.pid == 0 { None } else { Some(s.pid) },
                "state": s.state,
                "starts": s.starts,
                "crashes": s.crashes,
                "up_seconds": s.up_seconds,
                "restart_in_seconds": s.restart_in_seconds,
            })).collect::<Vec<_>>(),
        })
    }

    /// A page for a person: the same figures as `rwsgi status`.
    pub fn html(&self) -> String {
        let mut rows = String::new();
        for w in &self.workers {
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                w.slot, w.pid, w.generation, w.state, w.busy, w.threads, w.queued,
                w.connections, w.requests, age(w.up_seconds)
            );
        }
        let mut running = String::new();
        for w in &self.workers {
            for r in &w.running {
                let _ = write!(
                    running,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} s</td></tr>",
                    w.slot,
                    r.thread,
                    escape_html(&r.request),
                    r.seconds
                );
            }
        }
        let mut services = String::new();
        if !self.services.is_empty() {
            services.push_str("<h2>Services</h2><table border=\"1\"><tr><th>service</th><th>pid</th><th>state</th><th>starts</th><th>crashes</th></tr>");
            for s in &self.services {
                let _ = write!(
                    services,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape_html(&s.name),
                    s.pid,
                    s.state,
                    s.starts,
                    s.crashes
                );
            }
            services.push_str("</table>\n");
        }
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>rwsgi status</title></head><body>\n\
             <h1>rwsgi master {}</h1><p>up {}, generation {}, {} workers wanted{}</p>\n\
             <table border=\"1\"><tr><th>slot</th><th>pid</th><th>generation</th><th>state</th><th>busy/threads</th><th>queued</th><th>connections</th><th>requests</th><th>up</th></tr>{rows}</table>\n\
             <h2>Running requests</h2>{}<table border=\"1\"><tr><th>worker</th><th>thread</th><th>request</th><th>running for</th></tr>{running}</table>\n\
             {services}</body></html>\n",
            self.master,
            age(self.up_seconds),
            self.generation,
            self.wanted,
            self.template_text(),
            if self.redacted {
                format!("<p>{}</p>", self.redaction_note().trim())
            } else {
                String::new()
            }
        )
    }

    /// Why the running requests show no paths, or nothing.
    fn redaction_note(&self) -> &'static str {
        if self.redacted {
            " (paths hidden from a client not on this host: --admin-status-public shows them)"
        } else {
            ""
        }
    }

    /// ", template PID", or nothing without a template.
    fn template_text(&self) -> String {
        self.template
            .map(|pid| format!(", template {pid}"))
            .unwrap_or_default()
    }
}

/// The counters and histograms of `/metrics`, as JSON.
fn metrics_json(m: &MetricsSnapshot, c: &crate::scoreboard::MasterCounters) -> serde_json::Value {
    use crate::metrics::{CLASSES, METHODS};
    let mut requests = serde_json::Map::new();
    for (mi, method) in METHODS.iter().enumerate() {
        let by_class: serde_json::Map<String, serde_json::Value> = CLASSES
            .iter()
            .enumerate()
            .filter(|(ci, _)| m.requests[mi][*ci] > 0)
            .map(|(ci, class)| ((*class).to_owned(), m.requests[mi][ci].into()))
            .collect();
        if !by_class.is_empty() {
            requests.insert((*method).to_owned(), by_class.into());
        }
    }
    let refused: serde_json::Map<String, serde_json::Value> = m
        .refused
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| (MetricsSnapshot::refusal_label(i), (*n).into()))
        .collect();
    let histogram = |h: &crate::metrics::HistogramSnapshot| {
        serde_json::json!({
            "count": h.count(),
            "sum_seconds": h.sum_us as f64 / 1e6,
            "buckets": h.cumulative().iter().map(|(le, n)| {
                serde_json::json!([if le.is_finite() { le.to_string() } else { "+Inf".to_owned() }, n])
            }).collect::<Vec<_>>(),
        })
    };
    serde_json::json!({
        "requests": requests,
        "requests_total": m.requests_total(),
        "request_duration": histogram(&m.duration),
        "request_queue_wait": histogram(&m.queue_wait),
        "requests_refused": refused,
        "connections_accepted": m.accepted,
        "static_requests": m.static_requests,
        "static_sent_bytes": m.static_bytes,
        "request_timeouts": c.request_timeouts,
        "capacity_utilization_ratio": c.utilization_ppm as f64 / 1e6,
        "worker_starts": c.worker_starts,
        "worker_exits": crate::scoreboard::EXIT_REASONS
            .iter()
            .zip(c.worker_exits)
            .map(|(r, n)| ((*r).to_owned(), serde_json::Value::from(n)))
            .collect::<serde_json::Map<_, _>>(),
    })
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A duration for people: `42 s`, `3 min`, `2 h`.
fn age(seconds: f64) -> String {
    let s = seconds as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_show_in_every_rendering() {
        use crate::service_board::{ServiceReading, ServiceState};
        let sb = Scoreboard::create(1234).expect("create");
        let now = 100_000;
        let reading = |name: &str, pid, state, next_start_ms| ServiceReading {
            name: name.to_owned(),
            pid,
            state,
            starts: 4,
            crashes: 3,
            started_at_ms: now - 5_000,
            next_start_ms,
        };
        let status = Status::read(&sb, now).with_service_readings(
            vec![
                reading("consumer", 4321, ServiceState::Running, 0),
                reading("cron", 0, ServiceState::Waiting, now + 1_600),
            ],
            now,
        );
        let text = status.text();
        assert!(text.contains("consumer"), "{text}");
        let line = text
            .lines()
            .find(|l| l.starts_with("consumer "))
            .expect("line");
        assert!(
            line.contains("4321") && line.contains("running") && line.contains("5 s"),
            "{line}"
        );
        let line = text.lines().find(|l| l.starts_with("cron ")).expect("line");
        assert!(line.contains("restart in 1.6 s"), "{line}");
        let json = status.json();
        assert_eq!(json["services"][0]["pid"], 4321);
        assert_eq!(json["services"][0]["crashes"], 3);
        assert_eq!(json["services"][1]["pid"], serde_json::Value::Null);
        assert_eq!(json["services"][1]["state"], "waiting");
        assert!(status
            .html()
            .contains("<td>consumer</td><td>4321</td><td>running</td>"));
        assert_eq!(
            Status::read(&sb, now).json()["services"],
            serde_json::json!([])
        );
    }

    #[test]
    fn a_redacted_status_shows_what_runs_and_for_how_long_but_no_path() {
        let sb = Scoreboard::create(1234).expect("create");
        let w = sb.worker(0).expect("slot");
        let epoch = w.claim(1, 2);
        w.set_pid(999);
        assert!(w.attach(epoch));
        w.begin_request(
            1,
            "GET",
            "/password-reset/s3cret",
            "10.0.0.7:5000".parse().expect("addr"),
        );
        let mut status = Status::read(&sb, crate::time::now_ms());
        assert!(status.text().contains("GET /password-reset/s3cret"));
        status.redact();
        let running = &status.workers[0].running;
        assert_eq!(running.len(), 1);
        assert_eq!((running[0].thread, running[0].request.as_str()), (1, "GET"));
        for page in [status.text(), status.html(), status.json().to_string()] {
            assert!(
                !page.contains("s3cret") && !page.contains("10.0.0.7"),
                "{page}"
            );
            assert!(page.contains("999"), "the PIDs stay: {page}");
        }
        assert!(status.text().contains("paths hidden"));
        assert_eq!(status.json()["requests_redacted"], true);
        assert_eq!(status.json()["workers"][0]["running"][0]["request"], "GET");
    }
}
