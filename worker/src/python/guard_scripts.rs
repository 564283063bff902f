//! The functions of `--host-access-script`, `--auth-user-script` and
//! `--auth-group-script`, loaded with the application (what they decide
//! per request is `guard`'s).

use pyo3::prelude::*;
use pyo3::types::PyModule;
use rwsgi_shared::config::{AuthScheme, GuardConfig};

/// The scripts' functions, loaded with the application.
#[derive(Default)]
pub struct Scripts {
    pub allow_access: Option<Py<PyAny>>,
    /// `check_password` (Basic) or `get_realm_hash` (Digest).
    pub user: Option<Py<PyAny>>,
    pub groups_for_user: Option<Py<PyAny>>,
}

impl Scripts {
    /// Loads every configured script; an error names the option at fault.
    pub fn load(
        boot: &Bound<'_, PyModule>,
        config: &GuardConfig,
    ) -> Result<Scripts, (&'static str, PyErr)> {
        let hook = |option: &'static str, path: &std::path::Path, function: &str| {
            boot.call_method1(
                "load_hook",
                (
                    path.to_string_lossy().into_owned(),
                    format!("--{option}"),
                    function,
                ),
            )
            .map(Bound::unbind)
            .map_err(|e| (option, e))
        };
        let mut scripts = Scripts::default();
        if let Some(path) = &config.host_access_script {
            scripts.allow_access = Some(hook("host-access-script", path, "allow_access")?);
        }
        if let Some(auth) = &config.auth {
            let function = match auth.scheme {
                AuthScheme::Basic => "check_password",
                AuthScheme::Digest => "get_realm_hash",
            };
            scripts.user = Some(hook("auth-user-script", &auth.user_script, function)?);
            if let Some(path) = &auth.group_script {
                scripts.groups_for_user = Some(hook("auth-group-script", path, "groups_for_user")?);
            }
        }
        Ok(scripts)
    }
}
