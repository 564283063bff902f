//! What operators observe: the admin endpoints' answers (`admin` speaks
//! their HTTP), the metrics totals and scrape, thread utilisation, what
//! `rwsgi status` and the workers read in the scoreboard's header, and a
//! warning when the workers' memory nears the container's limit. All of it
//! is read from the scoreboard, the supervisor and /proc; nothing here
//! changes a worker or asks one anything.

use crate::admin::{self, Admin, Reply};
use crate::listener::BindError;
use crate::liveness::{self, Beats, Health};
use crate::metrics;
use crate::procfs;
use crate::supervisor::{Phase, Supervisor};
use mio::{Registry, Token};
use rwsgi_shared::config::ServerConfig;
use rwsgi_shared::metrics::MetricsSnapshot;
use rwsgi_shared::scoreboard::{MasterCounters, Scoreboard, ThreadState};
use rwsgi_shared::service_board::ServiceReading;
use slog::{info, warn, Logger};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub struct Observer {
    /// The admin listener and its connections (`--admin-port`).
    admin: Option<Admin>,
    /// The listener's port, for its accept queue in /proc.
    port: u16,
    /// `--status-public`: running requests are shown to every peer.
    status_public: bool,
    /// (when, busy thread time so far in µs, threads): the last 10 s.
    busy_samples: VecDeque<(Instant, u64, u64)>,
    /// The memory check against the cgroup limit was done.
    memory_checked: bool,
    /// `--service-script` processes as of the last turn, for /metrics.
    services: Vec<ServiceReading>,
    log: Logger,
}

impl Observer {
    /// Binds the admin listener, if one is configured, under `token`.
    pub fn new(
        config: &ServerConfig,
        registry: &Registry,
        token: Token,
        log: Logger,
    ) -> Result<Observer, BindError> {
        let admin = match &config.admin {
            Some(a) => {
                let (admin, addr) = Admin::bind(&a.host, a.port, registry, token)?;
                info!(log, "admin endpoints on http://{}/ (/healthz, /readyz, /metrics, /server-status)", addr;
                    "admin_address" => addr.to_string(),
                    "running_requests_shown_to" => if a.status_public { "all" } else { "loopback" });
                Some(admin)
            }
            None => None,
        };
        Ok(Observer {
            admin,
            port: config.port,
            status_public: config.admin.as_ref().is_some_and(|a| a.status_public),
            busy_samples: VecDeque::new(),
            memory_checked: false,
            services: Vec::new(),
            log,
        })
    }

    /// The services as the master's last turn left them.
    pub fn set_services(&mut self, services: Vec<ServiceReading>) {
        self.services = services;
    }

    /// Whether an event's token is the admin listener's or one of its connections'.
    pub fn owns(&self, token: Token) -> bool {
        self.admin.as_ref().is_some_and(|a| a.owns(token))
    }

    /// Answers the admin connections that are ready.
    pub fn serve_admin(
        &mut self,
        tokens: &[Token],
        registry: &Registry,
        supervisor: &Supervisor,
        scoreboard: &Scoreboard,
    ) {
        let Some(mut admin) = self.admin.take() else {
            return;
        };
        for &token in tokens {
            admin.ready(token, registry, &mut |req| {
                self.answer(req, supervisor, scoreboard)
            });
        }
        admin.sweep(registry);
        self.admin = Some(admin);
    }

    fn answer(&self, req: &admin::Request, supervisor: &Supervisor, sb: &Scoreboard) -> Reply {
        let now_ms = rwsgi_shared::time::now_ms();
        match req.path.as_str() {
            "/healthz" => {
                let fresh = supervisor.workers().iter().any(|(slot, w)| {
                    w.phase == Phase::Ready
                        && sb.worker(slot).and_then(Beats::read).is_some_and(|beats| {
                            liveness::judge(now_ms, beats, u64::MAX) == Health::Alive
                        })
                });
                if fresh {
                    Reply::text(200, "ok\n")
                } else {
                    Reply::text(503, "no worker has a fresh heartbeat\n")
                }
            }
            "/readyz" => {
                if supervisor.shutting_down() {
                    Reply::text(503, "stopping\n")
                } else if supervisor.workers().any_ready() {
                    Reply::text(200, "ready\n")
                } else {
                    Reply::text(503, "no worker is ready\n")
                }
            }
            "/metrics" => {
                let scrape = self.scrape(supervisor, sb);
                let (content_type, body) = metrics::negotiate(scrape, &req.accept);
                Reply {
                    status: 200,
                    content_type,
                    body,
                }
            }
            "/server-status" => {
                let mut status = rwsgi_shared::status::Status::read(sb, now_ms)
                    .with_service_readings(self.services.clone(), now_ms);
                if !admin::may_see_requests(req.peer.ip(), self.status_public) {
                    status.redact();
                }
                if req.query.split('&').any(|p| p == "json") {
                    Reply {
                        status: 200,
                        content_type: "application/json",
                        body: format!("{}\n", status.json()),
                    }
                } else {
                    Reply {
                        status: 200,
                        content_type: "text/html; charset=utf-8",
                        body: status.html(),
                    }
                }
            }
            _ => Reply::text(
                404,
                "not found: /healthz, /readyz, /metrics, /server-status\n",
            ),
        }
    }

    /// Keeps one sample a second of busy thread time, for utilization.
    pub fn sample_busy_time(&mut self, supervisor: &Supervisor, scoreboard: &Scoreboard) {
        let now = Instant::now();
        if self
            .busy_samples
            .back()
            .is_some_and(|(at, _, _)| now.duration_since(*at) < Duration::from_secs(1))
        {
            return;
        }
        let (_, busy, threads) = totals(supervisor, scoreboard, rwsgi_shared::time::now_ms());
        self.busy_samples.push_back((now, busy, threads));
        while self.busy_samples.len() > 11 {
            self.busy_samples.pop_front();
        }
    }

    /// Busy thread time ÷ available thread time over the samples kept.
    fn utilization(&self) -> f64 {
        let (Some(first), Some(last)) = (self.busy_samples.front(), self.busy_samples.back())
        else {
            return 0.0;
        };
        let span_us = last.0.duration_since(first.0).as_micros() as f64;
        let threads = last.2.max(1) as f64;
        if span_us <= 0.0 {
            return 0.0;
        }
        (last.1.saturating_sub(first.1) as f64 / (span_us * threads)).clamp(0.0, 1.0)
    }

    fn scrape(&self, supervisor: &Supervisor, scoreboard: &Scoreboard) -> metrics::Scrape {
        let (totals, _, _) = totals(supervisor, scoreboard, rwsgi_shared::time::now_ms());
        let workers = supervisor
            .workers()
            .iter()
            .filter_map(|(slot, w)| {
                let sb = scoreboard.worker(slot)?;
                let cpu = procfs::usage(w.pid).map(|(_, cpu)| cpu);
                Some(metrics::WorkerGauges {
                    slot,
                    pid: w.pid,
                    threads_busy: sb.busy_threads(),
                    threads: sb.threads(),
                    connections: sb.connections(),
                    connections_idle: sb.idle_connections(),
                    usage: procfs::resident_bytes(w.pid).zip(cpu),
                })
            })
            .collect();
        metrics::Scrape {
            totals,
            stats: supervisor.stats().clone(),
            workers,
            workers_ready: supervisor
                .workers()
                .iter()
                .filter(|(_, w)| w.accepts_work())
                .count(),
            utilization: self.utilization(),
            backlog: procfs::backlog(self.port),
            services: self.services.clone(),
        }
    }

    /// Writes what `rwsgi status` and the workers read of the master's
    /// state into the scoreboard's header.
    pub fn publish(&self, supervisor: &Supervisor, scoreboard: &Scoreboard, template: Option<u32>) {
        let header = scoreboard.header();
        header.set_generation(supervisor.generation());
        header.set_wanted_workers(supervisor.wanted() as u32);
        header.set_template_pid(template);
        let stats = supervisor.stats();
        header.set_master_counters(&MasterCounters {
            worker_starts: stats.starts,
            worker_exits: stats.exits,
            request_timeouts: stats.request_timeouts,
            utilization_ppm: (self.utilization() * 1e6) as u64,
        });
    }

    /// Once every worker is ready: warns when the workers' memory,
    /// multiplied out to the wanted number, nears the container's limit
    /// (the kernel's OOM killer would take workers mid-request).
    pub fn check_memory_limit(&mut self, supervisor: &Supervisor) {
        if self.memory_checked || !supervisor.all_wanted_ready() {
            return;
        }
        self.memory_checked = true;
        let Some(limit) = rwsgi_conf::container::limits().memory else {
            return;
        };
        let per_worker = supervisor
            .workers()
            .iter()
            .filter_map(|(_, w)| procfs::resident_bytes(w.pid))
            .max()
            .unwrap_or(0);
        let wanted = supervisor.wanted();
        if memory_nears_limit(per_worker, wanted, limit) {
            warn!(self.log, "the workers' memory nears the container's limit: fewer --processes, or a higher limit";
                "per_worker_mib" => per_worker / (1024 * 1024),
                "workers" => wanted,
                "limit_mib" => limit / (1024 * 1024));
        }
    }
}

/// `workers` of `per_worker` bytes each would fill more than 80 % of `limit`.
fn memory_nears_limit(per_worker: u64, workers: usize, limit: u64) -> bool {
    per_worker * workers as u64 * 10 > limit * 8
}

/// Live workers' metrics plus the retired ones', and busy thread time
/// including the requests running now (µs), and the threads counted.
fn totals(
    supervisor: &Supervisor,
    scoreboard: &Scoreboard,
    now_ms: u64,
) -> (MetricsSnapshot, u64, u64) {
    let mut totals = scoreboard.header().retired().snapshot();
    let (mut running_us, mut threads) = (0u64, 0u64);
    for (slot, _) in supervisor.workers().iter() {
        // Not attached yet: the metrics there were already retired.
        let Some(sb) = scoreboard.worker(slot).filter(|sb| sb.attached()) else {
            continue;
        };
        totals.merge(&sb.metrics().snapshot());
        threads += u64::from(sb.threads());
        for t in 0..sb.threads() as usize {
            if let Some(th) = sb.thread(t) {
                if th.state() == ThreadState::Busy {
                    running_us += now_ms.saturating_sub(th.request_started_ms()) * 1000;
                }
            }
        }
    }
    let busy = totals.busy_us + running_us;
    (totals, busy, threads)
}

#[cfg(test)]
mod tests {
    use super::memory_nears_limit;

    #[test]
    fn the_memory_warning_comes_past_four_fifths_of_the_limit() {
        const MIB: u64 = 1024 * 1024;
        // 4 × 200 MiB = 800 MiB of 1000 MiB: exactly four fifths, no warning.
        assert!(!memory_nears_limit(200 * MIB, 4, 1000 * MIB));
        assert!(memory_nears_limit(200 * MIB + 1, 4, 1000 * MIB));
        assert!(!memory_nears_limit(0, 4, 1000 * MIB));
        assert!(memory_nears_limit(900 * MIB, 1, 1000 * MIB));
    }
}
