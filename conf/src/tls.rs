//! `--https-port` and the `--ssl-*` options: checked as mod_wsgi-express
//! checks them, and the files read now, so a missing file, a key that is
//! not the certificate's or an expired certificate stops the start with one
//! line naming the option (the workers build the same configuration).

use crate::cli::StartServer;
use crate::error::{invalid, ConfError};
use rwsgi_shared::config::TlsConfig;
use std::path::{Path, PathBuf};

/// The TLS configuration the options ask for; `None` without `--https-port`.
pub fn resolve(args: &StartServer, cwd: &Path) -> Result<Option<TlsConfig>, ConfError> {
    let abs = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            cwd.join(p)
        }
    };
    let (mut certificate, mut key) = (
        args.ssl_certificate_file.as_ref().map(abs),
        args.ssl_certificate_key_file.as_ref().map(abs),
    );
    if let Some(common) = &args.ssl_certificate {
        // mod_wsgi-express: PATH.crt and PATH.key, over the single options.
        let common = abs(common).display().to_string();
        certificate = Some(PathBuf::from(format!("{common}.crt")));
        key = Some(PathBuf::from(format!("{common}.key")));
    }
    let Some(port) = args.https_port else {
        let given = [
            ("ssl-certificate-file", args.ssl_certificate_file.is_some()),
            (
                "ssl-certificate-key-file",
                args.ssl_certificate_key_file.is_some(),
            ),
            ("ssl-certificate", args.ssl_certificate.is_some()),
            (
                "ssl-ca-certificate-file",
                args.ssl_ca_certificate_file.is_some(),
            ),
            (
                "ssl-certificate-chain-file",
                args.ssl_certificate_chain_file.is_some(),
            ),
            ("ssl-verify-client", !args.ssl_verify_client.is_empty()),
            ("https-only", args.https_only),
            ("hsts-policy", args.hsts_policy.is_some()),
            ("ssl-environment", args.ssl_environment),
        ];
        if let Some((option, _)) = given.iter().find(|(_, set)| *set) {
            return Err(invalid(option, "needs --https-port (as mod_wsgi-express)"));
        }
        return Ok(None);
    };
    if port != 0 && port == args.port {
        return Err(invalid(
            "https-port",
            format_args!("{port} is also --port: HTTPS needs a port of its own"),
        ));
    }
    let certificate = certificate.ok_or_else(|| {
        invalid(
            "https-port",
            "needs --ssl-certificate-file (or --ssl-certificate)",
        )
    })?;
    let key = key.ok_or_else(|| {
        invalid(
            "https-port",
            "needs --ssl-certificate-key-file (or --ssl-certificate)",
        )
    })?;
    if !args.ssl_verify_client.is_empty() && args.ssl_ca_certificate_file.is_none() {
        return Err(invalid(
            "ssl-verify-client",
            "needs --ssl-ca-certificate-file (the CAs client certificates are verified against)",
        ));
    }
    for path in &args.ssl_verify_client {
        if !path.starts_with('/') {
            return Err(invalid(
                "ssl-verify-client",
                format_args!("{path:?} is not a URL path"),
            ));
        }
    }
    if args.proxy_protocol {
        return Err(invalid(
            "https-port",
            "cannot be combined with --proxy-protocol yet: terminate TLS in the proxy, or pass it through without a PROXY preamble",
        ));
    }
    if let Some(policy) = &args.hsts_policy {
        if policy.is_empty() || policy.bytes().any(|b| b.is_ascii_control()) {
            return Err(invalid(
                "hsts-policy",
                "must be a header value such as max-age=31536000",
            ));
        }
    }
    let config = TlsConfig {
        port,
        certificate,
        key,
        chain: args.ssl_certificate_chain_file.as_ref().map(abs),
        client_ca: args.ssl_ca_certificate_file.as_ref().map(abs),
        verify_paths: match (
            &args.ssl_ca_certificate_file,
            args.ssl_verify_client.is_empty(),
        ) {
            (Some(_), true) => vec!["/".to_owned()],
            _ => args.ssl_verify_client.clone(),
        },
        environment: args.ssl_environment,
        https_only: args.https_only,
        hsts: args.hsts_policy.clone(),
    };
    // The workers build the same: what fails here would fail there.
    rwsgi_http::tls::server_config(&config, &[b"http/1.1"])
        .map_err(|e| ConfError::Invalid(e.to_string()))?;
    Ok(Some(config))
}
