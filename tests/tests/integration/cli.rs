//! The command line: help, errors that name the option, compatibility.

use rwsgi_tests::server::binary;
use rwsgi_tests::{app, get, Server};
use std::process::Command;

/// Runs `rwsgi ARGS` to its end, within 60 s: one that goes on serving
/// (an option that should have stopped it did not) is killed with its
/// process group and reported as exit code -1.
fn rwsgi(args: &[&str]) -> (i32, String, String) {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(binary("rwsgi"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run rwsgi");
    let pipe = |mut p: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = p.read_to_string(&mut text);
            text
        })
    };
    let out = pipe(Box::new(child.stdout.take().expect("stdout")));
    let err = pipe(Box::new(child.stderr.take().expect("stderr")));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (
        code,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

#[test]
fn help_is_useful() {
    let (code, out, _) = rwsgi(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("start-server"));
    let (code, out, _) = rwsgi(&["start-server", "--help"]);
    assert_eq!(code, 0);
    for opt in [
        "--processes",
        "--threads",
        "--port",
        "--application-type",
        "--working-directory",
        "RWSGI_PROCESSES",
    ] {
        assert!(out.contains(opt), "{opt} missing from help:\n{out}");
    }
    // Options accepted only for compatibility are not among the options
    // (they are listed with their status after them).
    assert!(!out.contains("--server-mpm <"));
}

#[test]
fn an_unknown_option_is_named() {
    let (code, _, err) = rwsgi(&["start-server", "--procesess", "2", "x.py"]);
    assert_eq!(code, 2);
    assert!(err.contains("--procesess"), "{err}");
}

#[test]
fn a_bad_value_is_named() {
    let (code, _, err) = rwsgi(&["start-server", "--threads", "many", "x.py"]);
    assert_eq!(code, 2);
    assert!(err.contains("--threads"), "{err}");
    let (code, _, err) = rwsgi(&["start-server", "--processes", "0", "x.py"]);
    assert_eq!(code, 2);
    assert!(err.contains("--processes"), "{err}");
}

#[test]
fn a_missing_script_is_a_clear_error() {
    let (code, _, err) = rwsgi(&["start-server", "/nonexistent/wsgi.py"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/wsgi.py") && err.contains("no such file"),
        "{err}"
    );
}

#[test]
fn mod_wsgi_express_options_not_implemented_are_accepted_with_a_warning() {
    let server = Server::start(&[
        "--server-mpm",
        "event",
        "--socket-prefix",
        "/tmp/x",
        "--enable-gdb",
        &app("hello.py"),
    ]);
    assert_eq!(get(server.port, "/").text(), "Hello World!");
    let log = server.log.text();
    assert!(log.contains("--server-mpm is accepted"), "{log}");
    assert!(log.contains("--socket-prefix is accepted"), "{log}");
    assert!(log.contains("--enable-gdb is accepted"), "{log}");
}

/// The 152 options of mod_wsgi-express 6.0.5's options.py (hidden ones
/// included), each with a plausible value: every one starts the server
/// (checked with --setup-only, which checks everything serving would),
/// except those refused by name: the TLS family, Apache configuration and
/// --free-threading (no Python here is a free-threaded build).
#[test]
fn every_mod_wsgi_express_option_starts_the_server() {
    let list =
        std::fs::read_to_string(rwsgi_tests::repo_root().join("conf/mod_wsgi_express_options.txt"))
            .expect("the option list");
    let refused = [
        "include-file",
        "rewrite-rules",
        "allow-override",
        "free-threading",
        "add-handler",
        "with-cgi",
    ];
    // The HTTPS options work together: each is given with a certificate.
    let pki = rwsgi_tests::pki::Pki::new();
    let crt = pki.p("server.crt");
    let key = pki.p("server.key");
    let common = pki.p("server");
    let examples = rwsgi_tests::repo_root().join("examples");
    let examples = examples.to_str().expect("utf-8 path");
    let hello = app("hello.py");
    // Whoever runs the tests may always name themselves as --user/--group.
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .expect("the test user's passwd entry");
    let my_group = format!("#{}", me.gid);
    let mut seen = 0;
    for line in list
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (option, values) = line.split_once(' ').expect("--name values");
        let name = option.trim_start_matches("--");
        let mut args = vec!["start-server", "--setup-only", option];
        match (name, values) {
            ("debugger-startup", _) => args.push("--enable-debugger"),
            ("https-port" | "ssl-port", _) => args.extend([
                "0",
                "--ssl-certificate-file",
                &crt,
                "--ssl-certificate-key-file",
                &key,
            ]),
            ("ssl-certificate-file", _) => args.extend([
                &crt,
                "--https-port",
                "0",
                "--ssl-certificate-key-file",
                &key,
            ]),
            ("ssl-certificate-chain-file", _) => {
                args.extend([&crt, "--https-port", "0", "--ssl-certificate", &common])
            }
            ("ssl-certificate-key-file", _) => {
                args.extend([&key, "--https-port", "0", "--ssl-certificate-file", &crt])
            }
            ("ssl-certificate", _) => args.extend([&common, "--https-port", "0"]),
            ("ssl-ca-certificate-file", _) => {
                args.extend([&crt, "--https-port", "0", "--ssl-certificate", &common])
            }
            ("ssl-verify-client", _) => args.extend([
                "/admin",
                "--ssl-ca-certificate-file",
                &crt,
                "--https-port",
                "0",
                "--ssl-certificate",
                &common,
            ]),
            ("ssl-environment" | "https-only", _) => {
                args.extend(["--https-port", "0", "--ssl-certificate", &common])
            }
            ("hsts-policy", _) => args.extend([
                "max-age=60",
                "--https-only",
                "--https-port",
                "0",
                "--ssl-certificate",
                &common,
            ]),
            (_, "0") => {}
            ("url-alias", _) => args.extend(["/x", examples]),
            ("error-document", _) => args.extend(["404", "\"Not here\""]),
            ("proxy-mount-point" | "proxy-url-alias", _) => {
                args.extend(["/x", "http://127.0.0.1:9000/"])
            }
            ("proxy-virtual-host", _) => {
                args.extend(["side.example.com", "http://127.0.0.1:9000/"])
            }
            ("service-script", _) => args.extend(["A", hello.as_str()]),
            (_, "2") => args.extend(["A", "1"]),
            ("application-type", _) => args.push("script"),
            ("entry-point", _) => args.push(&hello),
            ("host", _) => args.push("127.0.0.1"),
            ("document-root" | "working-directory" | "python-path", _) => args.push(examples),
            ("directory-index", _) => args.push("index.html"),
            ("trust-proxy-header", _) => args.push("X-Forwarded-For"),
            ("trust-proxy", _) => args.push("127.0.0.1"),
            ("callable-object", _) => args.push("application"),
            ("log-level", _) => args.push("info"),
            ("access-log-format", _) => args.push("%h %r"),
            ("locale" | "lang", _) => args.push("C.UTF-8"),
            ("mount-point", _) => args.push("/"),
            ("server-name", _) => args.push("example.com"),
            ("passenv", _) => args.push("HOME"),
            ("python-warnings", _) => args.push("ignore::DeprecationWarning"),
            // Only checked to exist: --setup-only does not source it.
            ("envvars-script", _) => args.push(&hello),
            // Read at start: any readable file (lines without a / are no types).
            ("mime-types", _) => args.push(&hello),
            ("host-access-script" | "auth-user-script", _) => args.push(&hello),
            // Groups are checked for authenticated users only: refused alone.
            ("auth-group-script", _) => args.extend([hello.as_str(), "--auth-user-script", &hello]),
            ("auth-type", _) => args.push("Basic"),
            ("auth-group", _) => args.push("wsgi"),
            ("map-head-to-get", _) => args.push("On"),
            ("server-alias", _) => args.push("www.example.com"),
            ("telemetry-service", _) => args.push("unix:/tmp/rwsgi-telemetry.sock"),
            ("telemetry-options", _) => args.push("+CaptureUserAgent"),
            ("user", _) => args.push(&me.name),
            ("group", _) => args.push(&my_group),
            _ => args.push("2"),
        }
        args.push(&hello);
        let (code, out, err) = rwsgi(&args);
        if refused.contains(&name) {
            assert_eq!(code, 2, "{args:?} is refused:\n{out}{err}");
            assert!(err.contains(option), "{args:?}: {err}");
        } else {
            assert_eq!(code, 0, "{args:?}:\n{out}{err}");
            assert!(
                format!("{out}{err}").contains("--setup-only: the options are valid"),
                "{args:?}:\n{out}{err}"
            );
        }
        seen += 1;
    }
    assert_eq!(seen, 152);
}

/// mod_wsgi-docker's start script puts `--log-to-terminal --startup-log
/// --port 80` before the image's CMD, which names its own port: the last
/// one wins, as with optparse.
#[test]
fn a_repeated_option_takes_the_last_value() {
    let server = Server::builder()
        .raw_args()
        .args([
            "--host",
            "127.0.0.1",
            "--log-to-terminal",
            "--startup-log",
            "--port",
            "80",
        ])
        .args([
            "--port=0",
            "--log-to-term",
            "--thread",
            "2",
            &app("hello.py"),
        ])
        .start();
    assert_eq!(get(server.port, "/").text(), "Hello World!");
    assert!(
        server.log.text().contains("x 2 threads"),
        "{}",
        server.log.text()
    );
}

#[test]
fn limit_request_body_0_is_unlimited_and_keep_alive_timeout_0_closes() {
    let server = Server::start(&[
        "--limit-request-body",
        "0",
        "--keep-alive-timeout",
        "0",
        &app("app.py"),
    ]);
    let body = "x".repeat(20_000_000);
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = rwsgi_tests::client::request(server.port, raw.as_bytes()).expect("response");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body.len(), body.len());
    assert_eq!(r.header("Connection"), Some("close"), "{}", r.head);
}

#[test]
fn without_an_entry_point_the_default_page_is_served() {
    let server = Server::start(&[]);
    let r = get(server.port, "/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("rwsgi is running"), "{}", r.text());
}

#[test]
fn apache_configuration_and_source_serving_options_are_refused_by_name() {
    for option in ["--include-file", "--rewrite-rules"] {
        let (code, _, err) = rwsgi(&["start-server", option, "x", &app("hello.py")]);
        assert_eq!(code, 2, "{option}");
        assert!(
            err.contains(option) && err.contains("not supported"),
            "{err}"
        );
    }
}

#[test]
fn apache_access_log_directives_never_stop_the_server() {
    let server = Server::start(&[
        "--access-log",
        "--access-log-format",
        "%h %v %p %P %I %O %X %e %k %R %{%d/%b/%Y}t \"%r\" %>s",
        &app("hello.py"),
    ]);
    assert_eq!(get(server.port, "/").status, 200);
    let log = server.log.text();
    assert_eq!(
        log.matches("not available in rwsgi, logged as -").count(),
        1,
        "{log}"
    );
    assert!(
        server
            .log
            .wait_for("\"GET / HTTP/1.1\" 200", std::time::Duration::from_secs(10)),
        "{log}"
    );
}

#[test]
fn help_lists_every_mod_wsgi_express_option_with_its_status() {
    let (code, out, _) = rwsgi(&["start-server", "--help"]);
    assert_eq!(code, 0);
    for line in [
        "--server-mpm: accepted with a warning",
        "--https-port: implemented",
        "--with-cgi: refused",
        "--max-clients: implemented, differently",
        "--processes: implemented",
    ] {
        assert!(out.contains(line), "{line} missing from help:\n{out}");
    }
}

#[test]
fn options_come_from_rwsgi_environment_variables() {
    let server = Server::builder()
        .env("RWSGI_THREADS", "2")
        .env("RWSGI_PROCESSES", "2")
        .arg(app("hello.py"))
        .start();
    assert!(
        server.log.text().contains("2 processes x 2 threads"),
        "{}",
        server.log.text()
    );
}

/// --pid-file, --switch-interval, --python-warnings and --envvars-script,
/// as mod_wsgi-express gives them.
#[test]
fn pid_file_switch_interval_and_python_warnings() {
    let pid_file = std::env::temp_dir().join(format!("rwsgi-test-{}.pid", std::process::id()));
    let pid_path = pid_file.to_str().expect("utf-8 path").to_owned();
    let envvars = std::env::temp_dir().join(format!("rwsgi-test-{}.envvars", std::process::id()));
    std::fs::write(&envvars, "RWSGI_TEST_FROM_ENVVARS='from the script'\n").expect("write");
    let mut server = Server::start(&[
        "--pid-file",
        &pid_path,
        "--switch-interval",
        "0.02",
        "--python-warnings",
        "error::DeprecationWarning",
        "--envvars-script",
        envvars.to_str().expect("utf-8 path"),
        &app("python_options.py"),
    ]);
    let written = std::fs::read_to_string(&pid_file).expect("the pid file");
    assert_eq!(written.trim(), server.pid().to_string());
    let seen = rwsgi_tests::json(&get(server.port, "/").body);
    assert_eq!(seen["switch_interval"], 0.02);
    assert_eq!(seen["warnoptions"][0], "error::DeprecationWarning");
    assert_eq!(seen["deprecation"][0], "error");
    assert_eq!(seen["from_envvars"], "from the script");
    let _ = std::fs::remove_file(&envvars);
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(server
        .wait_exit(std::time::Duration::from_secs(20))
        .is_some());
    assert!(!pid_file.exists(), "the pid file is removed at exit");
}

/// `--inactivity-timeout`: a worker that served a request and then none
/// for that long is replaced, and its replacement serves.
#[test]
fn an_inactive_worker_is_replaced() {
    let server = Server::start(&["--inactivity-timeout", "1", &app("hello.py")]);
    assert_eq!(get(server.port, "/").text(), "Hello World!");
    assert!(
        server
            .log
            .wait_for("(--inactivity-timeout)", std::time::Duration::from_secs(30)),
        "{}",
        server.log.text()
    );
    assert_eq!(get(server.port, "/").text(), "Hello World!");
}

/// `--map-head-to-get On` (mod_wsgi's WSGIMapHEADToGET): the application
/// sees a HEAD as GET, and the client still gets the headers alone.
#[test]
fn map_head_to_get_on_shows_head_as_get_without_a_body() {
    use rwsgi_tests::client::{connect, read_response};
    use std::io::Write;
    let server = Server::start(&["--map-head-to-get", "on", &app("app.py")]);
    let mut s = connect(server.port);
    s.write_all(b"HEAD /method HTTP/1.1\r\nHost: h\r\n\r\nGET /pid HTTP/1.1\r\nHost: h\r\n\r\n")
        .expect("write");
    let mut buf = Vec::new();
    let head = read_response(&mut s, &mut buf, true).expect("head");
    assert_eq!(head.status, 200, "{}", server.log.text());
    assert_eq!(
        head.header("x-method"),
        Some("GET"),
        "{}",
        server.log.text()
    );
    assert_eq!(head.header("content-length"), Some("8"));
    // Had the body been sent, it would be read as the next response.
    let next = read_response(&mut s, &mut buf, false).expect("next");
    assert!(next.text().contains("pid"), "{:?}", next);
    let get = get(server.port, "/method");
    assert_eq!(get.header("x-method"), Some("GET"));
}

/// `--process-name` names the master in `ps` (its program, the arguments
/// kept, as mod_wsgi-express execs Apache); `--process-group` shows each
/// worker as mod_wsgi's daemon, `(wsgi:NAME)`, and is the environ's
/// mod_wsgi.process_group. `rwsgi status` still reads the master.
#[test]
fn process_name_and_process_group_are_what_ps_shows() {
    let server = Server::start(&[
        "--processes",
        "2",
        "--process-name",
        "my-site",
        "--process-group",
        "site-group",
        &app("app.py"),
    ]);
    let cmdline = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline")).expect("read the command line")
    };
    let master = cmdline(server.pid());
    assert!(master.starts_with("my-site\0start-server\0"), "{master:?}");
    let workers = server.worker_pids();
    assert_eq!(workers.len(), 2, "{}", server.log.text());
    for pid in workers {
        let title = cmdline(pid);
        assert_eq!(title.trim_end_matches('\0'), "(wsgi:site-group)");
    }
    let env = rwsgi_tests::json(&get(server.port, "/environ").body);
    assert_eq!(env["mod_wsgi.process_group"], "site-group");
    let status = server.status_json();
    assert_eq!(
        status["workers"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
}

/// `--ignore-activity` (mod_wsgi-express's WSGIIgnoreActivity): health
/// checks do not keep a worker alive past `--inactivity-timeout`.
#[test]
fn ignored_requests_do_not_keep_an_inactive_worker() {
    let server = Server::start(&[
        "--inactivity-timeout",
        "1",
        "--ignore-activity",
        "/health",
        "--ignore-activity",
        "/ping",
        &app("hello.py"),
    ]);
    assert_eq!(get(server.port, "/").text(), "Hello World!");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut recycled = false;
    while std::time::Instant::now() < deadline {
        // Both listed paths, and one below a listed path.
        for path in ["/health", "/ping", "/health/db"] {
            assert_eq!(get(server.port, path).status, 200);
        }
        if server.log.text().contains("(--inactivity-timeout)") {
            recycled = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(recycled, "{}", server.log.text());
    assert_eq!(get(server.port, "/").text(), "Hello World!");
}
