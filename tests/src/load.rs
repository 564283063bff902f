//! A bounded load generator: keep-alive clients in threads, counting every
//! failed request and every connection the server reset or closed early.

use crate::client::{connect, read_response};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Responses that announced `Connection: close` (the client reconnects).
    pub closed_by_server: AtomicU64,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    pub counters: Arc<Counters>,
    threads: Vec<JoinHandle<Vec<String>>>,
}

impl Load {
    /// `clients` keep-alive connections sending `GET path` until stopped
    /// (or `max` passes: every load loop is bounded).
    pub fn start(port: u16, clients: usize, path: &str, max: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let threads = (0..clients)
            .map(|_| {
                let stop = Arc::clone(&stop);
                let c = Arc::clone(&counters);
                let request = format!("GET {path} HTTP/1.1\r\nHost: load\r\n\r\n");
                std::thread::spawn(move || {
                    let deadline = Instant::now() + max;
                    let mut errors = Vec::new();
                    let mut conn = None;
                    let mut buf = Vec::new();
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let s = conn.get_or_insert_with(|| {
                            buf.clear();
                            connect(port)
                        });
                        let result = s
                            .write_all(request.as_bytes())
                            .and_then(|()| read_response(s, &mut buf, false));
                        match result {
                            Ok(r) if r.status == 200 => {
                                c.ok.fetch_add(1, Ordering::Relaxed);
                                if r.header("connection")
                                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                                {
                                    c.closed_by_server.fetch_add(1, Ordering::Relaxed);
                                    conn = None;
                                }
                            }
                            Ok(r) => {
                                c.failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(format!("status {}", r.status));
                                conn = None;
                            }
                            Err(e) => {
                                c.failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(e.to_string());
                                conn = None;
                            }
                        }
                    }
                    errors
                })
            })
            .collect();
        Load {
            stop,
            counters,
            threads,
        }
    }

    pub fn ok(&self) -> u64 {
        self.counters.ok.load(Ordering::Relaxed)
    }

    /// Stops the clients; returns (ok, failed, errors seen).
    pub fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for t in self.threads {
            errors.extend(t.join().unwrap_or_default());
        }
        (
            self.counters.ok.load(Ordering::Relaxed),
            self.counters.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}
