//! TLS material (`--ssl-certificate-file` and friends): read, checked and
//! made into a rustls server configuration, and what a finished handshake
//! tells the application (mod_ssl's variable names).
//!
//! The same function checks the files before the server starts (each
//! problem is one line naming its option) and builds the configuration in
//! the workers, so what was checked is what is served. rustls's defaults
//! stand: TLS 1.2 and 1.3, no legacy suites or renegotiation.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rwsgi_shared::config::TlsConfig;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Why TLS material cannot be served; the text names the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("--{option}: {path}: {why}")]
    File {
        option: &'static str,
        path: String,
        why: String,
    },
    #[error(
        "--ssl-certificate-key-file: {key} is not the key of the certificate in {certificate}"
    )]
    KeyMismatch { key: String, certificate: String },
    #[error("--ssl-certificate-file: {path}: the certificate expired on {not_after}")]
    Expired { path: String, not_after: String },
    #[error("--ssl-certificate-file: {path}: {why}")]
    Unusable { path: String, why: String },
}

fn file_error(option: &'static str, path: &Path, why: impl ToString) -> TlsError {
    TlsError::File {
        option,
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn certificates(
    option: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(option, path, e))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(option, path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(option, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error("ssl-certificate-key-file", path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        file_error(
            "ssl-certificate-key-file",
            path,
            format!("no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file: {e}"),
        )
    })
}

/// Refuses a leaf certificate outside its validity period.
fn check_validity(path: &Path, der: &CertificateDer<'_>, now: SystemTime) -> Result<(), TlsError> {
    let unusable = |why: String| TlsError::Unusable {
        path: path.display().to_string(),
        why,
    };
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| unusable(format!("not an X.509 certificate: {e}")))?;
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let validity = cert.validity();
    if validity.not_after.timestamp() < now {
        return Err(TlsError::Expired {
            path: path.display().to_string(),
            not_after: validity.not_after.to_string(),
        });
    }
    if validity.not_before.timestamp() > now {
        return Err(unusable(format!(
            "the certificate is valid only from {}",
            validity.not_before
        )));
    }
    Ok(())
}

/// The server configuration for `files`, announcing `alpn` (most preferred
/// first). Fails with the first problem a user must fix.
/// `files`: the paths the `--ssl-*` options name (the rest of the
/// configuration is not read here).
pub fn server_config(
    files: &TlsConfig,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut chain = certificates("ssl-certificate-file", &files.certificate)?;
    check_validity(&files.certificate, &chain[0], SystemTime::now())?;
    if let Some(path) = &files.chain {
        chain.extend(certificates("ssl-certificate-chain-file", path)?);
    }
    let key = private_key(&files.key)?;
    // ring builds with a C compiler alone (aws-lc needs cmake); its lack of
    // post-quantum key exchange is what the deprecation is about.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Unusable {
            path: files.certificate.display().to_string(),
            why: e.to_string(),
        })?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates("ssl-ca-certificate-file", path)? {
                roots
                    .add(ca)
                    .map_err(|e| file_error("ssl-ca-certificate-file", path, e))?;
            }
            // Asked of every client, required only where
            // `--ssl-verify-client` says (see `ClientVerified`): a client
            // without one still reaches the rest of the site.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| file_error("ssl-ca-certificate-file", path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            key: files.key.display().to_string(),
            certificate: files.certificate.display().to_string(),
        },
        other => TlsError::Unusable {
            path: files.certificate.display().to_string(),
            why: other.to_string(),
        },
    })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// What the handshake established, for the environ (mod_ssl's names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `SSL_PROTOCOL`: `TLSv1.2` or `TLSv1.3`.
    pub protocol: String,
    /// `SSL_CIPHER`, as OpenSSL names it.
    pub cipher: String,
    /// `SSL_TLS_SNI`: the name the client asked for.
    pub sni: Option<String>,
    /// The client's certificate, verified against `--ssl-ca-certificate-file`.
    pub client: Option<ClientCertificate>,
}

/// A verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// `SSL_CLIENT_S_DN`, RFC 2253 style.
    pub subject: String,
    /// `SSL_CLIENT_I_DN`.
    pub issuer: String,
    /// `SSL_CLIENT_M_SERIAL`, hexadecimal.
    pub serial: String,
    /// `SSL_CLIENT_V_START`, `SSL_CLIENT_V_END`.
    pub not_before: String,
    pub not_after: String,
    /// `SSL_CLIENT_CERT`: the certificate in PEM.
    pub pem: String,
}

/// OpenSSL's name of a rustls cipher suite (what mod_ssl puts in
/// `SSL_CIPHER`); rustls's own name for any other.
fn openssl_name(suite: rustls::CipherSuite) -> String {
    use rustls::CipherSuite as S;
    let name = match suite {
        S::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        S::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        S::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        other => return format!("{other:?}"),
    };
    name.to_owned()
}

fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

impl Facts {
    /// What a connection whose handshake finished established.
    pub fn of(conn: &rustls::ServerConnection) -> Facts {
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        };
        let client = conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|der| {
                let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
                Some(ClientCertificate {
                    subject: cert.subject().to_string(),
                    issuer: cert.issuer().to_string(),
                    serial: cert.raw_serial_as_string().replace(':', "").to_uppercase(),
                    not_before: cert.validity().not_before.to_string(),
                    not_after: cert.validity().not_after.to_string(),
                    pem: pem(der.as_ref()),
                })
            });
        Facts {
            protocol: protocol.to_owned(),
            cipher: conn
                .negotiated_cipher_suite()
                .map(|s| openssl_name(s.suite()))
                .unwrap_or_default(),
            sni: conn.server_name().map(str::to_owned),
            client,
        }
    }

    /// mod_ssl's standard variables (`SSLOptions +StdEnvVars`).
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("SSL_PROTOCOL", self.protocol.clone()),
            ("SSL_CIPHER", self.cipher.clone()),
            ("SSL_VERSION_LIBRARY", format!("rustls/{}", RUSTLS_VERSION)),
        ];
        if let Some(sni) = &self.sni {
            v.push(("SSL_TLS_SNI", sni.clone()));
        }
        match &self.client {
            Some(c) => {
                v.push(("SSL_CLIENT_VERIFY", "SUCCESS".to_owned()));
                v.push(("SSL_CLIENT_S_DN", c.subject.clone()));
                v.push(("SSL_CLIENT_I_DN", c.issuer.clone()));
                v.push(("SSL_CLIENT_M_SERIAL", c.serial.clone()));
                v.push(("SSL_CLIENT_V_START", c.not_before.clone()));
                v.push(("SSL_CLIENT_V_END", c.not_after.clone()));
                v.push(("SSL_CLIENT_CERT", c.pem.clone()));
            }
            None => v.push(("SSL_CLIENT_VERIFY", "NONE".to_owned())),
        }
        v
    }
}

/// The rustls version linked, for `SSL_VERSION_LIBRARY`.
const RUSTLS_VERSION: &str = "0.23";

/// Whether a request for `path` needs a verified client certificate:
/// under one of `--ssl-verify-client`'s paths (the whole site when
/// `--ssl-ca-certificate-file` is given without them), as Apache's
/// `<Location>` matches prefixes.
pub fn needs_client_certificate(verify_paths: &[String], path: &str) -> bool {
    verify_paths.iter().any(|p| {
        p == "/"
            || path == p
            || path
                .strip_prefix(p.as_str())
                .is_some_and(|rest| p.ends_with('/') || rest.starts_with('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_are_required_below_the_listed_paths_only() {
        let paths = vec!["/admin".to_owned(), "/api/private/".to_owned()];
        assert!(needs_client_certificate(&paths, "/admin"));
        assert!(needs_client_certificate(&paths, "/admin/users"));
        assert!(!needs_client_certificate(&paths, "/administrator"));
        assert!(needs_client_certificate(&paths, "/api/private/x"));
        assert!(!needs_client_certificate(&paths, "/api/public"));
        assert!(!needs_client_certificate(&[], "/admin"));
        assert!(needs_client_certificate(&["/".to_owned()], "/anything"));
    }

    #[test]
    fn suites_get_openssls_names() {
        assert_eq!(
            openssl_name(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            openssl_name(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            "ECDHE-RSA-AES128-GCM-SHA256"
        );
    }

    #[test]
    fn a_certificate_outside_its_validity_is_refused() {
        let dir = std::env::temp_dir().join(format!("rwsgi-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-nodes", "-days", "2", "-subj", "/CN=t", "-keyout", "t.key", "-out", "t.crt",
            ])
            .current_dir(&dir)
            .output()
            .expect("the openssl command")
            .status
            .success();
        assert!(ok);
        let path = dir.join("t.crt");
        let der = certificates("ssl-certificate-file", &path).expect("pem")[0].clone();
        let day = std::time::Duration::from_secs(86_400);
        let now = SystemTime::now();
        assert_eq!(check_validity(&path, &der, now), Ok(()));
        let e = check_validity(&path, &der, now + 3 * day).expect_err("expired");
        assert!(e.to_string().starts_with("--ssl-certificate-file: "), "{e}");
        assert!(e.to_string().contains("expired on"), "{e}");
        let e = check_validity(&path, &der, now - day).expect_err("not yet");
        assert!(e.to_string().contains("valid only from"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_file_names_its_option() {
        let files = TlsConfig {
            port: 443,
            certificate: "/nonexistent/site.crt".into(),
            key: "/nonexistent/site.key".into(),
            chain: None,
            client_ca: None,
            verify_paths: Vec::new(),
            environment: false,
            https_only: false,
            hsts: None,
        };
        let e = server_config(&files, &[]).expect_err("missing");
        assert!(
            e.to_string()
                .starts_with("--ssl-certificate-file: /nonexistent/site.crt: "),
            "{e}"
        );
    }
}
