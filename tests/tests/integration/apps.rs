//! Applications as users bring them: the Django, Flask and Paste examples,
//! virtualenvs, module:callable, environment options, and the behaviour
//! applications rely on (argv, subprocess, multiprocessing, signals,
//! threads, atexit, output, faulthandler, reload on changes).
//!
//! The real-application tests need the test virtualenv (`./tests/run`
//! creates it and exports `RWSGI_TEST_VENV`).

use nix::sys::signal::Signal;
use rwsgi_tests::server::binary;
use rwsgi_tests::{app, apps_dir, get, repo_root, Server};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// --- helpers ---

use rwsgi_tests::{json, test_venv};

/// How long a line the server has written may take to reach the test's log reader.
const LOG_WAIT: Duration = Duration::from_secs(5);

fn venv_python() -> PathBuf {
    test_venv().join("bin/python")
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "rwsgi-apps-{name}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        let dir = PathBuf::from(dir.to_string_lossy().replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '/' && c != '-',
            "",
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let name = entry.file_name();
        if name == "__pycache__" || name == "htdocs" || name == "db.sqlite3" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// Runs a client script from tests/apps/clients with the venv's Python
/// (and its `requests`); returns the JSON it prints.
fn python_client(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(venv_python())
        .arg(apps_dir().join("clients").join(script))
        .args(args)
        .output()
        .expect("run the client script");
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out.stdout)
}

/// Does the server's help list `option`? (Features other issues deliver.)
fn server_has_option(option: &str) -> bool {
    let out = Command::new(binary("rwsgi"))
        .args(["start-server", "--help"])
        .output()
        .expect("run rwsgi --help");
    String::from_utf8_lossy(&out.stdout).contains(option)
}

// --- real applications ---

#[test]
fn django_project_runs_with_the_seed_command() {
    let tmp = TempDir::new("django");
    copy_dir(&repo_root().join("examples/django"), tmp.path());
    let collect = Command::new(venv_python())
        .current_dir(tmp.path())
        .args(["example/manage.py", "collectstatic", "--noinput"])
        .output()
        .expect("run collectstatic");
    assert!(
        collect.status.success(),
        "collectstatic failed: {}",
        String::from_utf8_lossy(&collect.stderr)
    );
    assert!(tmp
        .path()
        .join("example/htdocs/admin/css/base.css")
        .is_file());
    let venv = s(&test_venv());
    // Exactly the seed's command line, from the directory that holds example/.
    let server = Server::builder()
        .current_dir(tmp.path())
        .args([
            "--working-directory",
            "example",
            "--url-alias",
            "/static",
            "example/htdocs",
            "--application-type",
            "module",
            "example.wsgi",
        ])
        .env("VIRTUAL_ENV", &venv)
        .start();
    let statics = server_has_option("--url-alias");
    let base = format!("http://127.0.0.1:{}", server.port);
    let mut args = vec![base.as_str()];
    if statics {
        args.push("--static");
    }
    let seen = python_client("django_client.py", &args);
    let log = server.log.text();
    assert_eq!(seen["index"]["status"], 200, "{seen}\n{log}");
    assert!(
        seen["index"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Hello from Django")),
        "{seen}"
    );
    assert_eq!(seen["admin_login"]["status"], 200, "{seen}\n{log}");
    assert_eq!(seen["admin_login"]["has_form"], true, "{seen}");
    let css = seen["admin_login"]["css"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        css.iter()
            .any(|c| c.as_str() == Some("/static/admin/css/base.css")),
        "the login page links the admin CSS: {seen}"
    );
    assert_eq!(seen["form_get"]["status"], 200, "{seen}");
    assert_eq!(seen["form_get"]["cookie"], true, "csrftoken cookie: {seen}");
    assert_eq!(
        seen["form_get"]["hidden"], true,
        "hidden CSRF input: {seen}"
    );
    assert_eq!(
        seen["form_post"]["status"], 200,
        "CSRF-protected POST: {seen}\n{log}"
    );
    assert_eq!(seen["form_post"]["greeted"], true, "{seen}");
    assert_eq!(
        seen["form_post_without_token"]["status"], 403,
        "CSRF protection is on: {seen}"
    );
    if statics {
        for (url, r) in seen["static"].as_object().cloned().unwrap_or_default() {
            assert_eq!(r["status"], 200, "{url}: {r}\n{log}");
            assert!(
                r["content_type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("text/css")),
                "{url} is served as CSS: {r}"
            );
        }
    } else {
        eprintln!(
            "NOTE django_project_runs_with_the_seed_command: /static/admin/css/base.css \
             NOT checked (SKIPPED): this rwsgi does not list --url-alias yet (static files, issue 5)"
        );
        assert!(log.contains("--url-alias is accepted"), "{log}");
    }
}

#[test]
fn flask_json_streaming_and_upload_with_requests() {
    let venv = s(&test_venv());
    let wd = s(&repo_root().join("examples/flask"));
    let server = Server::builder()
        .args([
            "--working-directory",
            &wd,
            "--application-type",
            "module",
            "app:app",
        ])
        .env("VIRTUAL_ENV", &venv)
        .start();
    let seen = python_client(
        "flask_client.py",
        &[&format!("http://127.0.0.1:{}", server.port)],
    );
    let log = server.log.text();
    assert_eq!(seen["json"]["status"], 200, "{seen}\n{log}");
    assert_eq!(seen["json"]["content_type"], "application/json", "{seen}");
    assert_eq!(seen["json"]["body"]["greeting"], "Hello, rwsgi!", "{seen}");

    let stream = &seen["stream"];
    assert_eq!(stream["status"], 200, "{seen}");
    assert_eq!(stream["transfer_encoding"], "chunked", "{seen}");
    let arrivals = stream["arrivals"].as_array().cloned().unwrap_or_default();
    assert_eq!(arrivals.len(), 4, "{seen}");
    assert!(
        arrivals[0][1]
            .as_str()
            .is_some_and(|l| l.starts_with("line 1 of 4")),
        "{seen}"
    );
    let first = arrivals[0][0].as_f64().unwrap_or(0.0);
    let last = arrivals[3][0].as_f64().unwrap_or(0.0);
    // Four lines 0.4 s apart: streamed, the first arrives well before the
    // last. PEP 3333: a server must not delay the transmission of a block.
    assert!(
        last - first > 0.9,
        "the blocks of a streamed response were held back until the end: {seen}"
    );

    let upload = &seen["upload"];
    assert_eq!(upload["status"], 200, "{seen}\n{log}");
    assert_eq!(upload["body"]["filename"], "blob.bin");
    assert_eq!(upload["body"]["size"], upload["sent_size"], "{seen}");
    assert_eq!(upload["body"]["sha256"], upload["sent_sha256"], "{seen}");
    assert_eq!(upload["body"]["description"], "random bytes");
}

#[test]
fn paste_ini_with_a_filter() {
    let venv = s(&test_venv());
    let ini = s(&repo_root().join("examples/paste/app.ini"));
    let server = Server::builder()
        .args(["--application-type", "paste", &ini])
        .env("VIRTUAL_ENV", &venv)
        .start();
    let r = get(server.port, "/");
    assert_eq!(r.status, 200, "{}", server.log.text());
    assert_eq!(r.text(), "Hello from PasteDeploy\n");
    assert_eq!(r.header("x-paste-filter"), Some("stamp"), "{}", r.head);
    // The ini's [loggers] configured logging; the record reaches the server log.
    assert!(
        server
            .log
            .wait_for("INFO [pasteexample.app] serving /", Duration::from_secs(5)),
        "{}",
        server.log.text()
    );
}

#[test]
fn a_venv_for_another_python_version_is_a_clear_error() {
    let tmp = TempDir::new("oldvenv");
    std::fs::create_dir_all(tmp.path().join("bin")).expect("mkdir");
    std::fs::write(
        tmp.path().join("pyvenv.cfg"),
        "home = /nonexistent/bin\ninclude-system-site-packages = false\nversion = 3.99.1\n",
    )
    .expect("write pyvenv.cfg");
    let mut server = Server::builder()
        .args(["--python-home", &s(tmp.path()), &app("hello.py")])
        .no_wait()
        .start();
    let status = server.wait_exit(Duration::from_secs(20)).expect("exits");
    server.log.wait_for("built for Python", LOG_WAIT);
    let log = server.log.text();
    assert_eq!(status.code(), Some(4), "{log}");
    assert!(
        log.contains("is for Python 3.99") && log.contains("built for Python 3."),
        "{log}"
    );
}

#[test]
fn paste_without_pastedeploy_is_a_clear_error() {
    let ini = s(&repo_root().join("examples/paste/app.ini"));
    // No virtualenv: the plain Python has no PasteDeploy.
    let mut server = Server::builder()
        .args(["--application-type", "paste", &ini])
        .no_wait()
        .start();
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("rwsgi exits");
    server.log.wait_for("pip install PasteDeploy", LOG_WAIT);
    let log = server.log.text();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(log.contains("PasteDeploy"), "{log}");
    assert!(log.contains("pip install PasteDeploy"), "{log}");
}

// --- virtualenvs ---

fn global_python_lacks(module: &str) -> bool {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .env_remove("VIRTUAL_ENV")
        .env_remove("PYTHONPATH")
        .stderr(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
}

fn check_venv_app(server: &Server, venv: &Path) {
    let r = get(server.port, "/");
    assert_eq!(r.status, 200, "{}", server.log.text());
    let seen = json(&r.body);
    let prefix = venv.canonicalize().expect("venv path");
    assert_eq!(seen["prefix"], s(&prefix), "{seen}");
    assert!(
        seen["file"]
            .as_str()
            .is_some_and(|f| f.starts_with(&s(&prefix))),
        "imported from the venv: {seen}"
    );
    let log = server.log.text();
    let line = log
        .lines()
        // A worker's or the template's, whichever started Python (--preload).
        .find(|l| l.contains("Python 3.") && (l.contains("worker") || l.contains("template")))
        .unwrap_or_else(|| panic!("no interpreter line in the log:\n{log}"));
    assert!(
        line.contains(&format!("prefix {}", s(&prefix))) && line.contains("virtualenv"),
        "{line}"
    );
}

#[test]
fn a_venv_from_python_home_provides_its_packages() {
    let venv = test_venv();
    if !global_python_lacks("django") {
        eprintln!("NOTE: the global Python has Django too; see a_fresh_venv_*");
    }
    let server = Server::builder()
        .args(["--python-home", &s(&venv), &app("venv_only.py")])
        .env("RWSGI_TEST_VENV_MODULE", "django")
        .start();
    check_venv_app(&server, &venv);
}

#[test]
fn a_venv_from_virtual_env_provides_its_packages() {
    let venv = test_venv();
    let server = Server::builder()
        .arg(app("venv_only.py"))
        .env("VIRTUAL_ENV", &s(&venv))
        .env("RWSGI_TEST_VENV_MODULE", "paste.deploy")
        .start();
    check_venv_app(&server, &venv);
}

/// A module that exists nowhere but in the venv this test makes.
const VENV_ONLY: &str = "rwsgi_test_only_in_this_venv";

/// A new virtualenv (no pip: fast) holding the module `VENV_ONLY`.
fn fresh_venv(tmp: &TempDir) -> PathBuf {
    let venv = tmp.path().join("venv");
    let made = Command::new(venv_python())
        .args(["-m", "venv", "--without-pip", &s(&venv)])
        .status()
        .expect("python -m venv");
    assert!(made.success());
    let version = std::fs::read_to_string(venv.join("pyvenv.cfg")).expect("pyvenv.cfg");
    let xy = version
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."))
        .expect("version in pyvenv.cfg");
    let site = venv.join(format!("lib/python{xy}/site-packages"));
    std::fs::write(site.join(format!("{VENV_ONLY}.py")), "WHERE = 'venv'\n").expect("module");
    venv
}

#[test]
fn a_fresh_venv_provides_a_module_nothing_else_has() {
    let tmp = TempDir::new("freshvenv");
    let venv = fresh_venv(&tmp);
    let server = Server::builder()
        .args(["--python-home", &s(&venv), &app("venv_only.py")])
        .env("RWSGI_TEST_VENV_MODULE", VENV_ONLY)
        .start();
    check_venv_app(&server, &venv);
    let server = Server::builder()
        .arg(app("venv_only.py"))
        .env("VIRTUAL_ENV", &s(&venv))
        .env("RWSGI_TEST_VENV_MODULE", VENV_ONLY)
        .start();
    check_venv_app(&server, &venv);
    // And without the venv, the import fails: the package really is only there.
    let mut server = Server::builder()
        .arg(app("venv_only.py"))
        .env("RWSGI_TEST_VENV_MODULE", VENV_ONLY)
        .no_wait()
        .start();
    let status = server.wait_exit(Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(3), "{}", server.log.text());
    assert!(
        server
            .log
            .wait_for(&format!("No module named '{VENV_ONLY}'"), LOG_WAIT),
        "{}",
        server.log.text()
    );
}

// --- naming the callable ---

#[test]
fn module_colon_callable_picks_the_callable() {
    let wd = s(&apps_dir());
    let server = Server::start(&[
        "--working-directory",
        &wd,
        "--application-type",
        "module",
        "callables:other",
    ]);
    assert_eq!(get(server.port, "/").text(), "callable other");
}

#[test]
fn callable_object_picks_the_callable() {
    let server = Server::start(&["--callable-object", "app", &app("callables.py")]);
    assert_eq!(get(server.port, "/").text(), "callable app");
    let wd = s(&apps_dir());
    let server = Server::start(&[
        "--working-directory",
        &wd,
        "--application-type",
        "module",
        "--callable-object",
        "other",
        "callables",
    ]);
    assert_eq!(get(server.port, "/").text(), "callable other");
}

#[test]
fn a_missing_callable_names_callable_object() {
    let mut server = Server::builder()
        .args(["--callable-object", "nothing_here", &app("callables.py")])
        .no_wait()
        .start();
    let status = server.wait_exit(Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(3));
    server.log.wait_for("--callable-object", LOG_WAIT);
    let log = server.log.text();
    assert!(
        log.contains("nothing_here") && log.contains("--callable-object"),
        "{log}"
    );
}

// --- environment options ---

#[test]
fn setenv_and_passenv_reach_environ() {
    let server = Server::builder()
        .args([
            "--setenv",
            "APP_MODE",
            "staging",
            "--setenv",
            "APP_EMPTY",
            "",
            "--passenv",
            "RWSGI_TEST_PASSED",
            "--passenv",
            "RWSGI_TEST_NOT_SET_ANYWHERE",
            &app("behaviour.py"),
        ])
        .env("RWSGI_TEST_PASSED", "from the server's environment")
        .start();
    let env = json(&get(server.port, "/environ").body);
    assert_eq!(env["APP_MODE"], "staging", "{env}");
    assert_eq!(env["APP_EMPTY"], "", "{env}");
    assert_eq!(env["RWSGI_TEST_PASSED"], "from the server's environment");
    assert!(env.get("RWSGI_TEST_NOT_SET_ANYWHERE").is_none());
    assert!(!server.log.text().contains("--setenv is accepted"));
}

#[test]
fn a_c_locale_becomes_utf8() {
    let server = Server::builder()
        .arg(app("behaviour.py"))
        .env("LANG", "C")
        .env("LC_ALL", "")
        .env("LC_CTYPE", "")
        .start();
    let seen = json(&get(server.port, "/locale").body);
    let lc_all = seen["LC_ALL"].as_str().unwrap_or_default().to_owned();
    assert!(
        lc_all
            .to_ascii_lowercase()
            .replace('-', "")
            .ends_with("utf8"),
        "{seen}"
    );
    assert_eq!(
        seen["preferred"].as_str().map(str::to_lowercase).as_deref(),
        Some("utf-8")
    );
    assert_eq!(seen["filesystem"], "utf-8");
    assert!(
        server.log.wait_for("the locale is C", LOG_WAIT),
        "{}",
        server.log.text()
    );
}

#[test]
fn locale_and_lang_options_set_the_worker_locale() {
    let server = Server::builder()
        .args([
            "--locale",
            "C.UTF-8",
            "--lang",
            "C.UTF-8",
            &app("behaviour.py"),
        ])
        .env("LANG", "C")
        .start();
    let seen = json(&get(server.port, "/locale").body);
    assert_eq!(seen["LC_ALL"], "C.UTF-8", "{seen}");
    assert_eq!(seen["LANG"], "C.UTF-8", "{seen}");
    assert!(!server.log.text().contains("--locale is accepted"));
}

#[test]
fn python_path_processes_pth_files_and_pythonpath_is_honoured() {
    let tmp = TempDir::new("pythonpath");
    let site = tmp.path().join("site");
    let deep = tmp.path().join("deep");
    let plain = tmp.path().join("plain");
    for d in [&site, &deep, &plain] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(site.join("extra.pth"), format!("{}\n", deep.display())).expect("pth");
    std::fs::write(deep.join("pthmod.py"), "WHERE = 'deep'\n").expect("module");
    std::fs::write(plain.join("ppmod.py"), "WHERE = 'plain'\n").expect("module");
    let server = Server::builder()
        .args(["--python-path", &s(&site), &app("behaviour.py")])
        .env("PYTHONPATH", &s(&plain))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .start();
    let r = json(&get(server.port, "/import?pthmod").body);
    assert_eq!(r["file"], s(&deep.join("pthmod.py")), "{r}");
    let r = json(&get(server.port, "/import?ppmod").body);
    assert_eq!(r["file"], s(&plain.join("ppmod.py")), "{r}");
    let sys = json(&get(server.port, "/sys").body);
    let path: Vec<String> = sys["path"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    let pos = |p: &Path| path.iter().position(|x| *x == s(p));
    assert!(pos(&site).is_some() && pos(&deep).is_some(), "{path:?}");
    assert!(pos(&site) < pos(&deep), "{path:?}");
    assert_eq!(
        sys["dont_write_bytecode"], true,
        "PYTHON* variables honoured"
    );
}

// --- behaviour applications rely on ---

#[test]
fn sys_argv_and_sys_executable_work_for_subprocess() {
    let server = Server::start(&[&app("behaviour.py")]);
    let argv = json(&get(server.port, "/argv").body);
    let argv = argv["argv"].as_array().cloned().unwrap_or_default();
    assert!(!argv.is_empty() && argv[0].as_str().is_some_and(|a| !a.is_empty()));
    let r = get(server.port, "/subprocess");
    assert_eq!(r.status, 200, "{}", server.log.text());
    let seen = json(&r.body);
    assert_eq!(seen["child_prefix"], seen["prefix"], "{seen}");
}

#[test]
fn subprocess_in_a_venv_runs_the_venv_python() {
    let venv = test_venv();
    let server = Server::builder()
        .arg(app("behaviour.py"))
        .env("VIRTUAL_ENV", &s(&venv))
        .start();
    let seen = json(&get(server.port, "/subprocess").body);
    let prefix = s(&venv.canonicalize().expect("venv"));
    assert_eq!(seen["prefix"], prefix, "{seen}");
    assert_eq!(seen["child_prefix"], prefix, "{seen}");
}

#[test]
fn multiprocessing_with_spawn_works() {
    let server = Server::start(&[&app("behaviour.py")]);
    let r = get(server.port, "/multiprocessing");
    assert_eq!(r.status, 200, "{}", server.log.text());
    let seen = json(&r.body);
    assert_eq!(seen["squares"], serde_json::json!([1, 4, 9, 16]), "{seen}");
    assert_eq!(seen["child_pid_differs"], true);
}

#[test]
fn app_threads_keep_running() {
    let server = Server::start(&[&app("behaviour.py")]);
    let seen = json(&get(server.port, "/ticks").body);
    let (first, second) = (
        seen["first"].as_u64().unwrap_or(0),
        seen["second"].as_u64().unwrap_or(0),
    );
    assert!(first > 0 && second > first, "{seen}");
    // And again later, with no request running in between. The idle
    // interval is what is tested here (the ticker must run while no
    // request does), not a wait for the server: no condition could
    // replace it without a request running.
    std::thread::sleep(Duration::from_millis(300));
    let again = json(&get(server.port, "/ticks").body);
    assert!(again["first"].as_u64().unwrap_or(0) > second, "{again}");
    // A thread a request started finishes after the request.
    let started = json(&get(server.port, "/thread").body);
    assert_eq!(started["already_done"], false);
    server.wait_until("the late thread", Duration::from_secs(5), || {
        json(&get(server.port, "/thread-done").body)["done"] == true
    });
}

#[test]
fn signal_signal_warns_and_sigterm_still_stops_gracefully_running_atexit() {
    let tmp = TempDir::new("atexit");
    let marker = tmp.path().join("atexit-ran");
    let mut server = Server::builder()
        .arg(app("behaviour.py"))
        .env("RWSGI_TEST_ATEXIT_FILE", &s(&marker))
        .start();
    // From a request thread too: a warning, not a ValueError.
    let r = get(server.port, "/signal");
    assert_eq!(r.status, 200, "{}", server.log.text());
    server.log.wait_for("signal.signal(SIGUSR2", LOG_WAIT);
    let log = server.log.text();
    assert!(
        log.contains("signal.signal(SIGTERM") && log.contains("ignored"),
        "{log}"
    );
    assert!(log.contains("signal.signal(SIGUSR2"), "{log}");
    server.signal(Signal::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("rwsgi stops on SIGTERM although the app set a handler");
    assert_eq!(status.code(), Some(0), "{}", server.log.text());
    let written = std::fs::read_to_string(&marker).unwrap_or_default();
    assert!(written.starts_with("atexit ran"), "{}", server.log.text());
    assert!(
        server.log.wait_for("atexit handler ran", LOG_WAIT),
        "{}",
        server.log.text()
    );
}

#[test]
fn print_and_logging_reach_the_log_with_the_worker_id() {
    let server = Server::start(&[&app("behaviour.py")]);
    let r = get(server.port, "/print?m41");
    assert_eq!(r.status, 200);
    for needle in [
        "print from a request m41",
        "partial line m41",
        "logging from a request m41",
        "stderr from a request m41",
    ] {
        assert!(
            server.log.wait_for(needle, Duration::from_secs(5)),
            "{needle} missing:\n{}",
            server.log.text()
        );
        let text = server.log.text();
        let line = text
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default();
        assert!(
            line.contains("worker: 0"),
            "not tagged with the worker: {line}"
        );
    }
}

#[test]
fn faulthandler_writes_to_the_server_log() {
    let server = Server::start(&[&app("behaviour.py")]);
    let r = get(server.port, "/faulthandler");
    assert_eq!(r.status, 200, "{}", server.log.text());
    assert_eq!(json(&r.body)["enabled"], true);
    // faulthandler writes the stack straight to the inherited descriptor 2.
    assert!(
        server.log.wait_for("in routes", Duration::from_secs(5)),
        "{}",
        server.log.text()
    );
    assert!(server.log.text().contains("most recent call first"));
}

#[test]
fn reload_on_changes_serves_the_changed_script() {
    let tmp = TempDir::new("reload");
    let script = tmp.path().join("reloadable.py");
    std::fs::copy(apps_dir().join("reloadable.py"), &script).expect("copy");
    let server = Server::start(&[
        "--reload-on-changes",
        "--python-path",
        &s(&apps_dir()),
        &s(&script),
    ]);
    assert_eq!(get(server.port, "/").text(), "one");
    assert!(server
        .log
        .wait_for("watching the application's files", Duration::from_secs(5)));
    let source = std::fs::read_to_string(&script).expect("read");
    std::fs::write(&script, source.replace("\"one\"", "\"second version\"")).expect("write");
    server.wait_until(
        "the changed script to be served",
        Duration::from_secs(20),
        || get(server.port, "/").text() == "second version",
    );
    server
        .log
        .wait_for("a file of the application changed", LOG_WAIT);
    let log = server.log.text();
    assert!(log.contains("a file of the application changed"), "{log}");
    assert!(!log.contains("--reload-on-changes is accepted"), "{log}");
    // The new generation must be watching (its baseline taken) before the
    // next save, or that save would be its baseline.
    server.wait_until(
        "the new generation to watch the files",
        Duration::from_secs(20),
        || server.log.count("watching the application's files") >= 2,
    );
    // A save with a syntax error: the new generation cannot load, the
    // running one keeps serving the last good code.
    std::fs::write(&script, "def application(environ, start_response)\n").expect("write");
    assert!(
        server.log.wait_for("SyntaxError", Duration::from_secs(20)),
        "{}",
        server.log.text()
    );
    assert_eq!(get(server.port, "/").text(), "second version");
}

#[test]
fn a_hanging_atexit_handler_is_cut_off_at_the_shutdown_timeout() {
    let mut server = Server::start(&["--shutdown-timeout", "1", &app("slow_atexit.py")]);
    assert_eq!(get(server.port, "/").text(), "ok");
    let asked = Instant::now();
    server.signal(Signal::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("rwsgi stops although an atexit handler hangs");
    assert_eq!(status.code(), Some(0), "{}", server.log.text());
    assert!(asked.elapsed() < Duration::from_secs(10));
    server
        .log
        .wait_for("did not finish within --shutdown-timeout", LOG_WAIT);
    let log = server.log.text();
    assert!(log.contains("slow atexit handler started"), "{log}");
    assert!(
        log.contains("did not finish within --shutdown-timeout"),
        "{log}"
    );
}
