//! `--auth-user-script`, `--auth-type`, `--auth-group-script`,
//! `--auth-group` and `--host-access-script`: options that guard a site are
//! enforced or the server refuses to start, so a script that cannot be read
//! is an error naming its option here, before any worker starts.

use crate::cli::StartServer;
use crate::error::{invalid, ConfError};
use rwsgi_shared::config::{AuthConfig, AuthScheme, GuardConfig};
use std::io::Read;
use std::path::{Path, PathBuf};

pub fn resolve(args: &StartServer, cwd: &Path) -> Result<GuardConfig, ConfError> {
    let host_access_script = args
        .host_access_script
        .as_deref()
        .map(|p| readable_script("host-access-script", cwd, p))
        .transpose()?;
    let auth = match &args.auth_user_script {
        None => {
            // mod_wsgi-express would silently not check groups at all: a
            // group requirement that is not enforced must not start.
            if args.auth_group_script.is_some() {
                return Err(invalid(
                    "auth-group-script",
                    "groups are checked for authenticated users: give --auth-user-script too",
                ));
            }
            None
        }
        // mod_wsgi-express reads --auth-type and --auth-group only with a
        // user script; without one they stay as unused as there.
        Some(user) => Some(AuthConfig {
            user_script: readable_script("auth-user-script", cwd, user)?,
            scheme: scheme(&args.auth_type)?,
            group_script: args
                .auth_group_script
                .as_deref()
                .map(|p| readable_script("auth-group-script", cwd, p))
                .transpose()?,
            group: args.auth_group.clone(),
            realm: realm(&args.host, args.port),
            nonce_key: match scheme(&args.auth_type)? {
                AuthScheme::Digest => nonce_key()?,
                AuthScheme::Basic => String::new(),
            },
        }),
    };
    Ok(GuardConfig {
        host_access_script,
        auth,
    })
}

/// `--auth-type`: Apache reads the scheme's name without regard to case.
fn scheme(raw: &str) -> Result<AuthScheme, ConfError> {
    if raw.eq_ignore_ascii_case("basic") {
        Ok(AuthScheme::Basic)
    } else if raw.eq_ignore_ascii_case("digest") {
        Ok(AuthScheme::Digest)
    } else {
        Err(invalid("auth-type", format!("{raw:?}: Basic or Digest")))
    }
}

/// mod_wsgi-express's `AuthName '%(host)s:%(port)s'`, its host being
/// `localhost` when `--host` is not given. Digest hashes include the realm,
/// so a `get_realm_hash` written for mod_wsgi-express gets the same one.
fn realm(host: &str, port: u16) -> String {
    let host = if host.is_empty() { "localhost" } else { host };
    format!("{host}:{port}")
}

fn readable_script(option: &str, cwd: &Path, p: &Path) -> Result<PathBuf, ConfError> {
    let path = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    match std::fs::File::open(&path).and_then(|f| f.metadata()) {
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err(invalid(option, format!("{} is not a file", path.display()))),
        Err(e) => Err(invalid(
            option,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// A fresh random key per server start: nonces of a previous run are stale.
fn nonce_key() -> Result<String, ConfError> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| invalid("auth-type", format!("cannot make a Digest nonce key: {e}")))?;
    Ok(key.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_realm_is_mod_wsgi_express_host_and_port() {
        assert_eq!(realm("", 8000), "localhost:8000");
        assert_eq!(realm("127.0.0.1", 8080), "127.0.0.1:8080");
    }

    #[test]
    fn the_scheme_is_basic_or_digest_in_any_case() {
        assert_eq!(scheme("Basic").ok(), Some(AuthScheme::Basic));
        assert_eq!(scheme("DIGEST").ok(), Some(AuthScheme::Digest));
        assert!(scheme("Bearer").is_err());
    }

    #[test]
    fn a_missing_script_names_its_option() {
        let err = readable_script("auth-user-script", Path::new("/"), Path::new("no/such.py"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--auth-user-script"), "{err}");
    }

    #[test]
    fn nonce_keys_differ() {
        let (a, b) = (nonce_key().ok(), nonce_key().ok());
        assert!(a.is_some() && a != b);
    }
}
