//! `--envvars-script`: a shell script mod_wsgi-express's apachectl sources
//! before starting the server, so the variables it sets reach the
//! application's `os.environ`. rwsgi sources it the same way (`/bin/sh`)
//! and hands back what changed, for the master to set before it starts
//! anything (workers inherit the master's environment).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

/// What the shell sets itself, not the script.
const SHELL_OWN: &[&[u8]] = &[b"PWD", b"OLDPWD", b"SHLVL", b"_"];

/// Sources `script` in `/bin/sh` and returns the variables it set or
/// changed; the error names the option and says why.
pub fn source(script: &Path) -> Result<Vec<(OsString, OsString)>, String> {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"set -a; . "$0" >&2 || exit 1; exec env -0"#)
        .arg(script)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("--envvars-script {}: /bin/sh: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "--envvars-script {}: the script failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(changed(&out.stdout, |k| std::env::var_os(k)))
}

/// The `KEY=VALUE` entries of `env -0` output that differ from `current`.
fn changed(
    env0: &[u8],
    current: impl Fn(&std::ffi::OsStr) -> Option<OsString>,
) -> Vec<(OsString, OsString)> {
    env0.split(|&b| b == 0)
        .filter_map(|entry| {
            let eq = entry.iter().position(|&b| b == b'=')?;
            let (key, value) = (&entry[..eq], &entry[eq + 1..]);
            if key.is_empty() || SHELL_OWN.contains(&key) {
                return None;
            }
            let key = std::ffi::OsStr::from_bytes(key);
            let value = std::ffi::OsStr::from_bytes(value);
            (current(key).as_deref() != Some(value)).then(|| (key.to_owned(), value.to_owned()))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_script_changed() {
        let got = changed(b"A=1\0B=same\0PWD=/x\0C=a=b\0\0", |k| {
            (k == "B").then(|| OsString::from("same"))
        });
        assert_eq!(
            got,
            [
                (OsString::from("A"), OsString::from("1")),
                (OsString::from("C"), OsString::from("a=b"))
            ]
        );
    }

    #[test]
    fn a_script_is_sourced() {
        let dir = std::env::temp_dir().join(format!("rwsgi-envvars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("envvars");
        std::fs::write(&script, "RWSGI_ENVVARS_TEST='a b'\nexport OTHER_TEST=2\n").unwrap();
        let got = source(&script).unwrap();
        assert!(
            got.contains(&("RWSGI_ENVVARS_TEST".into(), "a b".into())),
            "{got:?}"
        );
        assert!(got.contains(&("OTHER_TEST".into(), "2".into())), "{got:?}");
        std::fs::write(&script, "exit 3\n").unwrap();
        assert!(source(&script).unwrap_err().contains("--envvars-script"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
