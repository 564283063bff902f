//! `/metrics`: the OpenMetrics text exposition, encoded by the
//! `prometheus-client` crate from one scrape's worth of figures read from
//! the scoreboard (and the supervisor's counters). No worker is asked.

use crate::supervisor::{Stats, EXIT_REASONS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rwsgi_shared::metrics::{HistogramSnapshot, MetricsSnapshot, CLASSES, METHODS};

/// The content type of the OpenMetrics exposition.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition in the format the scraper asked for (its `Accept`):
/// OpenMetrics when it says so (Prometheus does), else the classic text
/// format that every other tool (promtool, curl, older scrapers) reads.
pub fn negotiate(scrape: Scrape, accept: &str) -> (&'static str, String) {
    let open = exposition(scrape);
    if accept.contains("application/openmetrics-text") {
        (OPENMETRICS, open)
    } else {
        (PROMETHEUS_TEXT, classic(&open))
    }
}

/// OpenMetrics text to the classic format: a counter's family takes its
/// samples' `_total` name, and the `# EOF` and `# UNIT` lines go.
fn classic(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// One worker's gauges.
#[derive(Debug, Clone, Default)]
pub struct WorkerGauges {
    pub slot: usize,
    pub pid: u32,
    pub threads_busy: u32,
    pub threads: u32,
    pub connections: u32,
    pub connections_idle: u32,
    /// Resident memory in bytes and CPU seconds, from /proc.
    pub usage: Option<(u64, u64)>,
}

/// Everything one scrape reports.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Live workers' metrics plus those folded in from exited ones.
    pub totals: MetricsSnapshot,
    pub stats: Stats,
    pub workers: Vec<WorkerGauges>,
    pub workers_ready: usize,
    /// Busy thread time ÷ available thread time over the last window.
    pub utilization: f64,
    /// Connections waiting in the kernel's accept queue.
    pub backlog: Option<u64>,
    /// `--service-script` processes.
    pub services: Vec<rwsgi_shared::service_board::ServiceReading>,
}

/// Encodes the scrape.
pub fn exposition(scrape: Scrape) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: V,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    h: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(
            h.sum_us as f64 / 1e6,
            h.count(),
            // The encoder accumulates: it takes each bucket's own count.
            &h.per_bucket(),
            None,
        )
}

/// `--service-script`: whether each service's process runs, its restarts
/// (starts after the first) and its crashes (ends nobody asked for).
fn encode_services(
    e: &mut DescriptorEncoder<'_>,
    services: &[rwsgi_shared::service_board::ServiceReading],
) -> Result<(), std::fmt::Error> {
    use rwsgi_shared::service_board::ServiceState;
    {
        let mut family = e.encode_descriptor(
            "rwsgi_service_up",
            "1 while the service's process runs (--service-script).",
            None,
            MetricType::Gauge,
        )?;
        for s in services {
            let up = u64::from(s.state == ServiceState::Running);
            family
                .encode_family(&[("service", s.name.as_str())])?
                .encode_gauge(&up)?;
        }
    }
    {
        let mut family = e.encode_descriptor(
            "rwsgi_service_restarts",
            "Times the service's process was started again (after a crash or a reload).",
            None,
            MetricType::Counter,
        )?;
        for s in services {
            family
                .encode_family(&[("service", s.name.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&s.starts.saturating_sub(1), None)?;
        }
    }
    let mut family = e.encode_descriptor(
        "rwsgi_service_crashes",
        "Times the service's process ended without being asked to.",
        None,
        MetricType::Counter,
    )?;
    for s in services {
        family
            .encode_family(&[("service", s.name.as_str())])?
            .encode_counter::<NoLabelSet, _, u64>(&s.crashes, None)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = &self.totals;
        {
            let mut family = e.encode_descriptor(
                "rwsgi_requests",
                "Requests answered by the application, by method and status class.",
                None,
                MetricType::Counter,
            )?;
            for (m, method) in METHODS.iter().enumerate() {
                for (c, class) in CLASSES.iter().enumerate() {
                    let labels = [("method", *method), ("status", *class)];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(&t.requests[m][c], None)?;
                }
            }
        }
        histogram(
            &mut e,
            "rwsgi_request_duration_seconds",
            "Time from the application's start to the end of its response.",
            &t.duration,
        )?;
        histogram(
            &mut e,
            "rwsgi_request_queue_wait_seconds",
            "Time from accept (or a kept-alive connection's complete head) to the application's start.",
            &t.queue_wait,
        )?;
        {
            let mut family = e.encode_descriptor(
                "rwsgi_requests_refused",
                "Requests the server answered itself (parser, limits, timeouts), by status.",
                None,
                MetricType::Counter,
            )?;
            for (i, n) in t.refused.iter().enumerate() {
                let status = MetricsSnapshot::refusal_label(i);
                let labels = [("status", status.as_str())];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        counter(
            &mut e,
            "rwsgi_request_timeouts",
            "Requests that ran past --request-timeout (+ --interrupt-timeout) and cost their worker.",
            self.stats.request_timeouts,
        )?;
        let busy: u64 = self.workers.iter().map(|w| u64::from(w.threads_busy)).sum();
        let threads: u64 = self.workers.iter().map(|w| u64::from(w.threads)).sum();
        gauge(
            &mut e,
            "rwsgi_requests_in_flight",
            "Requests running now.",
            busy,
        )?;
        gauge(
            &mut e,
            "rwsgi_threads_busy",
            "Request threads running a request.",
            busy,
        )?;
        gauge(
            &mut e,
            "rwsgi_threads_idle",
            "Request threads waiting for work.",
            threads.saturating_sub(busy),
        )?;
        gauge(
            &mut e,
            "rwsgi_capacity_utilization_ratio",
            "Busy thread time over available thread time, last 10 s: the figure to autoscale on.",
            self.utilization,
        )?;
        counter(
            &mut e,
            "rwsgi_connections_accepted",
            "Connections accepted.",
            t.accepted,
        )?;
        gauge(
            &mut e,
            "rwsgi_connections_active",
            "Connections held by the workers.",
            self.workers
                .iter()
                .map(|w| u64::from(w.connections))
                .sum::<u64>(),
        )?;
        gauge(
            &mut e,
            "rwsgi_connections_idle",
            "Connections waiting for a request (kept alive, or head not complete).",
            self.workers
                .iter()
                .map(|w| u64::from(w.connections_idle))
                .sum::<u64>(),
        )?;
        if let Some(backlog) = self.backlog {
            gauge(
                &mut e,
                "rwsgi_listen_backlog",
                "Connections waiting in the kernel's accept queue.",
                backlog,
            )?;
        }
        counter(
            &mut e,
            "rwsgi_static_requests",
            "Static-file responses.",
            t.static_requests,
        )?;
        counter(
            &mut e,
            "rwsgi_static_sent_bytes",
            "Static-file body bytes sent.",
            t.static_bytes,
        )?;
        gauge(
            &mut e,
            "rwsgi_workers_ready",
            "Workers taking connections.",
            self.workers_ready as u64,
        )?;
        counter(
            &mut e,
            "rwsgi_worker_starts",
            "Workers started.",
            self.stats.starts,
        )?;
        {
            let mut family = e.encode_descriptor(
                "rwsgi_worker_exits",
                "Workers that exited, by reason.",
                None,
                MetricType::Counter,
            )?;
            for (reason, n) in EXIT_REASONS.iter().zip(self.stats.exits) {
                family
                    .encode_family(&[("reason", *reason)])?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        let with_usage: Vec<&WorkerGauges> =
            self.workers.iter().filter(|w| w.usage.is_some()).collect();
        if !with_usage.is_empty() {
            {
                let mut family = e.encode_descriptor(
                    "rwsgi_worker_resident_memory_bytes",
                    "Resident memory of each worker.",
                    None,
                    MetricType::Gauge,
                )?;
                for w in &with_usage {
                    let (slot, pid) = (w.slot.to_string(), w.pid.to_string());
                    let labels = [("slot", slot.as_str()), ("pid", pid.as_str())];
                    let rss = w.usage.map_or(0, |u| u.0);
                    family.encode_family(&labels)?.encode_gauge(&rss)?;
                }
            }
            let mut family = e.encode_descriptor(
                "rwsgi_worker_cpu_seconds",
                "CPU time used by each worker process.",
                None,
                MetricType::Counter,
            )?;
            for w in &with_usage {
                let (slot, pid) = (w.slot.to_string(), w.pid.to_string());
                let labels = [("slot", slot.as_str()), ("pid", pid.as_str())];
                let cpu = w.usage.map_or(0, |u| u.1);
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&cpu, None)?;
            }
        }
        if !self.services.is_empty() {
            encode_services(&mut e, &self.services)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_with_units_in_names() {
        let mut scrape = Scrape::default();
        scrape.totals.requests[0][1] = 7;
        scrape.totals.duration.buckets[0] = 7;
        scrape.totals.duration.sum_us = 7_000;
        scrape.stats.exits[1] = 2;
        let text = exposition(scrape);
        assert!(
            text.contains("rwsgi_requests_total{method=\"GET\",status=\"2xx\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("rwsgi_request_duration_seconds_bucket{le=\"0.005\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("rwsgi_request_duration_seconds_sum 0.007\n"),
            "{text}"
        );
        assert!(
            text.contains("rwsgi_request_duration_seconds_count 7\n"),
            "{text}"
        );
        assert!(
            text.contains("rwsgi_worker_exits_total{reason=\"max-requests\"} 2\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        let classic = classic(&text);
        assert!(
            classic.contains("# TYPE rwsgi_requests_total counter\n"),
            "{classic}"
        );
        assert!(classic.contains("# TYPE rwsgi_request_duration_seconds histogram\n"));
        assert!(!classic.contains("# EOF"));
    }

    #[test]
    fn services_are_labelled_by_name() {
        use rwsgi_shared::service_board::{ServiceReading, ServiceState};
        let scrape = Scrape {
            services: vec![ServiceReading {
                name: "consumer".into(),
                pid: 42,
                state: ServiceState::Running,
                starts: 3,
                crashes: 2,
                started_at_ms: 1,
                next_start_ms: 0,
            }],
            ..Scrape::default()
        };
        let text = exposition(scrape);
        assert!(
            text.contains("rwsgi_service_up{service=\"consumer\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("rwsgi_service_restarts_total{service=\"consumer\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("rwsgi_service_crashes_total{service=\"consumer\"} 2\n"),
            "{text}"
        );
        assert!(!exposition(Scrape::default()).contains("rwsgi_service_"));
    }
}
