//! `rwsgi setup-server`: writes the server root's control script and
//! `envvars` file (the text is made by `rwsgi_conf::setup_server`).

use rwsgi_conf::setup_server::ControlScript;
use rwsgi_shared::config::ServerConfig;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `server_root/apachectl` (and an empty `envvars` when there is
/// none, as mod_wsgi-express does); returns the script's path.
pub fn write(
    config: &ServerConfig,
    server_root: &Path,
    args: &[String],
) -> std::io::Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    let root = cwd.join(server_root);
    std::fs::create_dir_all(&root)?;
    let rwsgi = std::env::current_exe()?;
    let pid_file = config
        .pid_file
        .as_ref()
        .map(|p| cwd.join(p))
        .unwrap_or_else(|| root.join("httpd.pid"));
    let text = ControlScript {
        rwsgi: &rwsgi,
        start_dir: &cwd,
        server_root: &root,
        pid_file: &pid_file,
        args,
        stop_wait_secs: config.timeouts.shutdown_ms.div_ceil(1000) + 10,
    }
    .render();
    // Written beside and renamed: a running `apachectl` is never read half
    // rewritten.
    let script = root.join("apachectl");
    let tmp = root.join(".apachectl.new");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::rename(&tmp, &script)?;
    let envvars = root.join("envvars");
    if !envvars.exists() {
        std::fs::write(&envvars, "")?;
    }
    Ok(script)
}
