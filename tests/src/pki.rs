//! Certificates for the HTTPS and HTTP/2 tests, made with the `openssl`
//! command: a CA, a server certificate for localhost and 127.0.0.1, a
//! client certificate (both signed by the CA) and an unrelated key.

use crate::server::Server;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A CA, a server certificate for localhost and 127.0.0.1 signed by it, a
/// client certificate signed by it, and an unrelated key.
pub struct Pki {
    pub dir: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rwsgi-pki-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let d = &dir.clone();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=rwsgi test CA"];
        ca.extend_from_slice(&ec);
        ca.extend_from_slice(&["-keyout", "ca.key", "-out", "ca.crt"]);
        openssl(d, &ca);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext");
        // webpki takes X.509 v3 certificates only: an extension makes one.
        std::fs::write(
            d.join("client.ext"),
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        )
        .expect("ext");
        let pki = Pki { dir };
        pki.issue("server", "/CN=localhost", Some("server.ext"));
        pki.issue("client", "/CN=client one/O=rwsgi tests", Some("client.ext"));
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-out",
                "other.key",
            ],
        );
        pki
    }

    /// NAME.key and NAME.crt, signed by the CA.
    pub fn issue(&self, name: &str, subject: &str, ext: Option<&str>) {
        let d = &self.dir;
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        let mut sign = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &crt,
        ];
        if let Some(ext) = ext {
            sign.extend_from_slice(&["-extfile", ext]);
        }
        openssl(d, &sign);
    }

    pub fn p(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

/// The HTTPS port from the server's log.
pub fn https_port(server: &Server) -> u16 {
    assert!(server
        .log
        .wait_for("listening on https://", Duration::from_secs(30)));
    let text = server.log.text();
    let line = text
        .lines()
        .find(|l| l.contains("listening on https://"))
        .expect("the https line");
    let rest = &line[line.find("https://").expect("url") + "https://".len()..];
    let addr = rest.split('/').next().expect("address");
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

impl Pki {
    /// The options that serve HTTPS on a port of the kernel's choosing
    /// with this PKI's server certificate.
    pub fn https_args(&self) -> Vec<String> {
        vec![
            "--https-port".to_owned(),
            "0".to_owned(),
            "--ssl-certificate-file".to_owned(),
            self.p("server.crt"),
            "--ssl-certificate-key-file".to_owned(),
            self.p("server.key"),
        ]
    }

    /// Runs a Python client `script` from the test venv with the
    /// arguments `PORT CA-FILE MODE ARGS...` (the CA that signed the
    /// server's certificate); its stdout.
    pub fn client(&self, script: &str, port: u16, mode: &str, args: &[&str]) -> String {
        let port = port.to_string();
        let ca = self.p("ca.crt");
        let mut all = vec![port.as_str(), ca.as_str(), mode];
        all.extend_from_slice(args);
        crate::venv_python(script, &all)
    }
}

/// A server for `app` (in tests/apps) with HTTPS (see `Pki::https_args`)
/// and `extra` options: the server, and its HTTPS port.
pub fn serve_https(pki: &Pki, app: &str, extra: &[&str]) -> (Server, u16) {
    let mut args = pki.https_args();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push(crate::app(app));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&refs);
    let port = https_port(&server);
    (server, port)
}
