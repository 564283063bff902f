//! `--telemetry-service`, `--telemetry-interval`, `--telemetry-options`:
//! mod_wsgi 6's WSGITelemetryService and WSGITelemetryOptions, checked as
//! mod_wsgi checks them.

use crate::cli::StartServer;
use crate::error::{invalid, ConfError};
use rwsgi_shared::config::TelemetryConfig;
use std::path::{Path, PathBuf};

/// The telemetry configuration, or `None` without `--telemetry-service`.
pub fn resolve(args: &StartServer, cwd: &Path) -> Result<Option<TelemetryConfig>, ConfError> {
    // Checked with or without a service, as Apache checks the directive.
    let mut capture_user_agent = false;
    for arg in &args.telemetry_options {
        capture_user_agent =
            apply_options(capture_user_agent, arg).map_err(|e| invalid("telemetry-options", e))?;
    }
    let Some(target) = args.telemetry_service.as_deref() else {
        return Ok(None);
    };
    let socket = target_path(target).map_err(|e| invalid("telemetry-service", e))?;
    let interval = args.telemetry_interval.unwrap_or(1.0);
    // mod_wsgi: "WSGITelemetryService interval must be at least 0.5 seconds".
    if !interval.is_finite() || !(0.5..=86_400.0).contains(&interval) {
        return Err(invalid(
            "telemetry-interval",
            format_args!("{interval}: must be at least 0.5 seconds"),
        ));
    }
    Ok(Some(TelemetryConfig {
        socket: cwd.join(socket),
        interval_ms: (interval * 1000.0).round() as u64,
        capture_user_agent,
    }))
}

/// The socket path of `unix:PATH`; anything else is refused with
/// mod_wsgi-express's message.
fn target_path(target: &str) -> Result<PathBuf, String> {
    let Some(path) = target.strip_prefix("unix:") else {
        return Err(
            "--telemetry-service must be 'unix:/path' (remote 'udp:host:port' targets are no longer supported)"
                .to_owned(),
        );
    };
    // sockaddr_un's sun_path is 108 bytes, NUL included.
    match path.len() {
        0 => Err("unix: needs a socket path".to_owned()),
        n if n >= 108 => Err(format!("{path}: a unix socket path is at most 107 bytes")),
        _ => Ok(PathBuf::from(path)),
    }
}

/// One WSGITelemetryOptions directive applied to the current flags
/// (CaptureUserAgent is the only flag): `+Flag`/`-Flag` change it, an
/// absolute list replaces it, `None` and `All` reset it; the two forms do
/// not mix in one directive.
fn apply_options(current: bool, directive: &str) -> Result<bool, String> {
    let (mut incremental, mut absolute) = (false, false);
    let (mut changed, mut replaced) = (current, false);
    let tokens: Vec<&str> = directive.split_whitespace().collect();
    if tokens.is_empty() {
        return Err("at least one flag required".to_owned());
    }
    for token in tokens {
        let (sign, name) = match token.as_bytes()[0] {
            b'+' | b'-' => (Some(token.starts_with('+')), &token[1..]),
            _ => (None, token),
        };
        if sign.is_some() && name.is_empty() {
            return Err("bare '+' / '-' is not a flag".to_owned());
        }
        incremental |= sign.is_some();
        absolute |= sign.is_none();
        if incremental && absolute {
            return Err("cannot mix +/- form with absolute names in a single directive".to_owned());
        }
        match (name.to_ascii_lowercase().as_str(), sign) {
            ("none" | "all", Some(_)) => return Err(format!("'{name}' may not have a +/- prefix")),
            ("none", None) => replaced = false,
            ("all", None) | ("captureuseragent", None) => replaced = true,
            ("captureuseragent", Some(on)) => changed = on,
            _ => return Err(format!("unknown flag '{name}'")),
        }
    }
    Ok(if absolute { replaced } else { changed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_unix_target_is_taken() {
        assert_eq!(
            target_path("unix:/run/t.sock"),
            Ok(PathBuf::from("/run/t.sock"))
        );
        let udp = target_path("udp:127.0.0.1:9000").expect_err("refused");
        assert!(udp.contains("remote 'udp:host:port' targets are no longer supported"));
        assert!(target_path("unix:").is_err());
        assert!(target_path(&format!("unix:/{}", "x".repeat(120))).is_err());
    }

    #[test]
    fn options_compose_as_apache_options_do() {
        assert_eq!(apply_options(false, "+CaptureUserAgent"), Ok(true));
        assert_eq!(apply_options(true, "-captureuseragent"), Ok(false));
        assert_eq!(apply_options(false, "All"), Ok(true));
        assert_eq!(apply_options(true, "None"), Ok(false));
        assert_eq!(apply_options(true, "CaptureUserAgent"), Ok(true));
        assert!(apply_options(false, "+All").is_err());
        assert!(apply_options(false, "+CaptureUserAgent None").is_err());
        assert!(apply_options(false, "+Bogus").is_err());
        assert!(apply_options(false, "+").is_err());
        assert!(apply_options(false, " ").is_err());
    }
}
