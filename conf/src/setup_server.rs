//! `rwsgi setup-server`: mod_wsgi-express's way of preparing a server once
//! and running it later through `SERVER-ROOT/apachectl`.
//!
//! mod_wsgi-express writes an Apache configuration and a control script into
//! the server root; deployments (init scripts, Dockerfiles, systemd units)
//! then call `apachectl start|stop|restart|graceful|graceful-stop|configtest`.
//! rwsgi has no configuration to write: its control script holds the
//! checked `start-server` command line and maps each verb onto rwsgi's own
//! signals, so those deployments run unchanged. Everything here is text
//! made from values; the master writes the files.

use std::path::{Path, PathBuf};

/// mod_wsgi-express's default server root: `/tmp/mod_wsgi-HOST:PORT:UID`,
/// with `localhost` when no host was given.
pub fn default_server_root(tmpdir: &Path, host: &str, port: u16, uid: u32) -> PathBuf {
    let host = if host.is_empty() { "localhost" } else { host };
    tmpdir.join(format!("mod_wsgi-{host}:{port}:{uid}"))
}

/// The `start-server` arguments the control script runs: the setup-server
/// arguments without `--server-root` (it names where the script lives, not
/// how the server runs) and `--pid-file` (the script passes the one it
/// reads back).
pub fn start_arguments(args: &[String]) -> Vec<String> {
    const TAKEN: [&str; 2] = ["--server-root", "--pid-file"];
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if TAKEN.contains(&a.as_str()) {
            it.next();
        } else if !TAKEN
            .iter()
            .any(|t| a.strip_prefix(t).is_some_and(|v| v.starts_with('=')))
        {
            out.push(a.clone());
        }
    }
    out
}

/// A word for `sh`, quoted so that nothing in it is expanded.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// What the control script needs to know.
pub struct ControlScript<'a> {
    /// The rwsgi binary that wrote the script (absolute).
    pub rwsgi: &'a Path,
    /// The directory setup-server ran in: relative paths in the arguments
    /// are relative to it.
    pub start_dir: &'a Path,
    pub server_root: &'a Path,
    pub pid_file: &'a Path,
    /// The `start-server` arguments, `--pid-file` not among them.
    pub args: &'a [String],
    /// How long `stop` waits for the server to be gone (its own
    /// `--shutdown-timeout` plus a margin).
    pub stop_wait_secs: u64,
}

impl ControlScript<'_> {
    /// The `apachectl` script.
    pub fn render(&self) -> String {
        let q = |p: &Path| shell_quote(&p.to_string_lossy());
        let args: Vec<String> = self.args.iter().map(|a| shell_quote(a)).collect();
        let mut s = String::new();
        s.push_str("#!/bin/sh\n");
        s.push_str("# Written by `rwsgi setup-server`: runs rwsgi with the options given then,\n");
        s.push_str("# as mod_wsgi-express's apachectl runs Apache. Verbs: start [-DFOREGROUND],\n");
        s.push_str("# stop, graceful-stop, restart, graceful, configtest, status.\n\n");
        s.push_str(&format!("RWSGI={}\n", q(self.rwsgi)));
        s.push_str(&format!("SERVER_ROOT={}\n", q(self.server_root)));
        s.push_str(&format!("PID_FILE={}\n", q(self.pid_file)));
        s.push_str(&format!("STOP_WAIT={}\n", self.stop_wait_secs));
        s.push_str(&format!("set -- \"$@\" -- {}\n\n", args.join(" ")));
        s.push_str(
            CONTROL_BODY
                .replace("@START_DIR@", &q(self.start_dir))
                .as_str(),
        );
        s
    }
}

/// The verbs. The arguments for rwsgi follow a `--` at the end of "$@"
/// (appended above), so they survive any quoting.
const CONTROL_BODY: &str = r#"# Variables for the server, as mod_wsgi-express's envvars file.
if [ -f "$SERVER_ROOT/envvars" ]; then
    . "$SERVER_ROOT/envvars"
fi
cd @START_DIR@ || exit 1

verb=$1
shift
foreground=no
while [ "$1" != "--" ]; do
    case $1 in
        -DFOREGROUND) foreground=yes ;;
        -D*|-k) ;;
        *) echo "apachectl: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
shift

running() {
    [ -f "$PID_FILE" ] && pid=$(cat "$PID_FILE" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

start() {
    if running; then
        echo "rwsgi (pid $pid) already running"
        return 0
    fi
    if [ $foreground = yes ]; then
        exec "$RWSGI" start-server --pid-file "$PID_FILE" "$@"
    fi
    # Detached, as Apache's -k start: the log goes to the server root.
    nohup "$RWSGI" start-server --pid-file "$PID_FILE" "$@" </dev/null >>"$SERVER_ROOT/error_log" 2>&1 &
    child=$!
    tries=0
    while [ $tries -lt 600 ]; do
        if running; then return 0; fi
        if ! kill -0 "$child" 2>/dev/null; then
            echo "rwsgi did not start; the end of $SERVER_ROOT/error_log:" >&2
            tail -n 20 "$SERVER_ROOT/error_log" >&2
            return 1
        fi
        sleep 0.1
        tries=$((tries + 1))
    done
    echo "rwsgi did not write $PID_FILE within 60 s" >&2
    return 1
}

stop() {
    if ! running; then
        echo "rwsgi is not running ($PID_FILE)"
        return 0
    fi
    # SIGTERM: rwsgi lets running requests finish (--shutdown-timeout).
    kill -TERM "$pid"
    tries=0
    while kill -0 "$pid" 2>/dev/null && [ $tries -lt $((STOP_WAIT * 10)) ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "rwsgi (pid $pid) still running after $STOP_WAIT s" >&2
        return 1
    fi
}

case $verb in
    start) start "$@" ;;
    stop|graceful-stop) stop ;;
    # Both replace the workers with new ones started from the same options
    # while the old ones finish their requests (rwsgi's zero-downtime
    # reload); a server that is not running is started.
    restart) if running; then kill -HUP "$pid"; else start "$@"; fi ;;
    graceful) if running; then kill -USR1 "$pid"; else start "$@"; fi ;;
    configtest) exec "$RWSGI" start-server --setup-only "$@" ;;
    status)
        if running; then exec "$RWSGI" status --pid "$pid"; fi
        echo "rwsgi is not running ($PID_FILE)"; exit 3 ;;
    *) echo "usage: $0 start [-DFOREGROUND]|stop|graceful-stop|restart|graceful|configtest|status" >&2
       exit 2 ;;
esac
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_root_is_mod_wsgi_express_s() {
        assert_eq!(
            default_server_root(Path::new("/tmp"), "", 8000, 1000),
            PathBuf::from("/tmp/mod_wsgi-localhost:8000:1000")
        );
        assert_eq!(
            default_server_root(Path::new("/tmp"), "0.0.0.0", 80, 0),
            PathBuf::from("/tmp/mod_wsgi-0.0.0.0:80:0")
        );
    }

    #[test]
    fn server_root_and_pid_file_are_not_passed_on_in_either_spelling() {
        let args: Vec<String> = [
            "--port",
            "80",
            "--server-root",
            "/srv/x",
            "--server-root=/y",
            "--pid-file",
            "/p",
            "--pid-file=/q",
            "wsgi.py",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(start_arguments(&args), ["--port", "80", "wsgi.py"]);
    }

    #[test]
    fn quoting_leaves_nothing_to_expand() {
        assert_eq!(shell_quote("wsgi.py"), "wsgi.py");
        assert_eq!(shell_quote("/a b"), "'/a b'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a;rm -rf /"), "'a;rm -rf /'");
    }

    #[test]
    fn the_script_names_its_paths_and_arguments_quoted() {
        let args = vec!["--port".to_string(), "80".into(), "my app.py".into()];
        let s = ControlScript {
            rwsgi: Path::new("/usr/local/bin/rwsgi"),
            start_dir: Path::new("/srv/app"),
            server_root: Path::new("/etc/mod_wsgi-express-80"),
            pid_file: Path::new("/etc/mod_wsgi-express-80/httpd.pid"),
            args: &args,
            stop_wait_secs: 10,
        }
        .render();
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("RWSGI=/usr/local/bin/rwsgi\n"));
        assert!(s.contains("set -- \"$@\" -- --port 80 'my app.py'\n"));
        assert!(s.contains("cd /srv/app || exit 1"));
        assert!(s.contains("STOP_WAIT=10\n"));
    }
}
