//! A rolling update behind a real load balancer, as an orchestrator does
//! it: start the new instance, wait until it takes traffic, SIGTERM the
//! old one. With `--shutdown-delay` longer than HAProxy's health-check
//! interval, no request fails.

use nix::sys::signal::Signal;
use rwsgi_tests::haproxy::Haproxy;
use rwsgi_tests::{app, get, wait_until, Server};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn free_port() -> u16 {
    // The load balancer's configuration names its backends' ports.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a port")
}

struct Slot {
    port: u16,
    admin: u16,
}

fn start(slot: &Slot, delay: Option<&str>) -> Server {
    let mut b = Server::builder().raw_args().args([
        "--host".to_owned(),
        "127.0.0.1".to_owned(),
        "--port".to_owned(),
        slot.port.to_string(),
        "--admin-port".to_owned(),
        slot.admin.to_string(),
        "--admin-host".to_owned(),
        "127.0.0.1".to_owned(),
        "--threads".to_owned(),
        "4".to_owned(),
    ]);
    if let Some(d) = delay {
        b = b.args(["--shutdown-delay", d]);
    }
    b.arg(app("faults.py")).start()
}

/// Requests answered through the load balancer by this instance so far.
fn served(slot: &Slot) -> f64 {
    let text = get(slot.admin, "/metrics").text();
    text.lines()
        .filter(|l| l.starts_with("rwsgi_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Three replacements under load; (answered, failed).
fn rolling_update(delay: Option<&str>) -> Option<(u64, u64)> {
    let slots: Vec<Slot> = (0..3)
        .map(|_| Slot {
            port: free_port(),
            admin: free_port(),
        })
        .collect();
    let backends: String = slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "  server s{i} 127.0.0.1:{} check port {} inter 200 fall 1 rise 1\n",
                s.port, s.admin
            )
        })
        .collect();
    let (_lb, ports) = Haproxy::start(1, |ports| {
        format!(
            "frontend f\n  bind 127.0.0.1:{}\n  default_backend b\nbackend b\n  option httpchk GET /readyz\n  option http-server-close\n  retries 0\n{backends}",
            ports[0]
        )
    })?;
    let front = ports[0];
    let mut running: Vec<Option<Server>> = vec![
        Some(start(&slots[0], delay)),
        Some(start(&slots[1], delay)),
        None,
    ];
    wait_until(
        "the load balancer to use both",
        Duration::from_secs(20),
        || (0..10).all(|_| get(front, "/").status == 200),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                // Bounded: at most 60 s or until the update is done.
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                    let answer = rwsgi_tests::request(
                        front,
                        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                    );
                    match answer {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for round in 0..3 {
        let (old, new) = (round % 3, (round + 2) % 3);
        running[new] = Some(start(&slots[new], delay));
        // Ready, and the load balancer sends it traffic.
        wait_until(
            "the new instance to take traffic",
            Duration::from_secs(20),
            || served(&slots[new]) > 10.0,
        );
        if let Some(mut old_server) = running[old].take() {
            old_server.signal(Signal::SIGTERM);
            let status = old_server.wait_exit(Duration::from_secs(30));
            assert_eq!(
                status.and_then(|s| s.code()),
                Some(0),
                "{}",
                old_server.log.text()
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    Some((ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed)))
}

#[test]
fn a_rolling_update_behind_haproxy_fails_no_request_with_a_shutdown_delay() {
    let Some((ok, failed)) = rolling_update(Some("1")) else {
        return;
    };
    eprintln!("rolling update with --shutdown-delay 1: {ok} answered, {failed} failed");
    assert!(ok > 100, "too little load to tell: {ok}");
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    // The same without the delay, for the record: the old instance stops
    // accepting while the load balancer still sends to it.
    if let Some((ok, failed)) = rolling_update(None) {
        eprintln!("rolling update without a delay: {ok} answered, {failed} failed");
    }
}
