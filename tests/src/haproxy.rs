//! A real HAProxy (Debian's package; CI installs it) for the tests of
//! proxies and rolling updates, killed on drop.

use crate::wait::wait_until;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Haproxy {
    child: Child,
    dir: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where HAProxy is; `None` (with a warning) on a developer's machine
/// without it, a failure in CI.
pub fn binary() -> Option<&'static str> {
    let found = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is missing: .ci/run installs Debian's haproxy package"
        );
        eprintln!("WARNING: haproxy not installed; its test is skipped (apt-get install haproxy)");
    }
    found
}

impl Haproxy {
    /// Starts HAProxy with `listeners` frontend ports and the sections
    /// `sections(ports)` writes after the global and default ones; waits
    /// until every frontend port accepts.
    pub fn start(
        listeners: usize,
        sections: impl FnOnce(&[u16]) -> String,
    ) -> Option<(Haproxy, Vec<u16>)> {
        let binary = binary()?;
        let dir = std::env::temp_dir().join(format!(
            "rwsgi-haproxy-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // HAProxy needs its ports in its configuration: taken from the
        // kernel, released, and bound by HAProxy straight away.
        let ports: Vec<u16> = (0..listeners)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
                    .expect("a port")
            })
            .collect();
        let cfg = format!(
            "global\n  maxconn 200\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n{}",
            sections(&ports)
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("config");
        let child = Command::new(binary)
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let h = Haproxy { child, dir };
        for port in &ports {
            wait_until("haproxy to listen", Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok()
            });
        }
        Some((h, ports))
    }
}
