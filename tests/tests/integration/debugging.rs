//! mod_wsgi-express's debugging aids: `--debug-mode` (one process, one
//! thread, the terminal as stdin and stdout), `--enable-debugger` and
//! `--debugger-startup` (pdb driven here through the server's stdin, as a
//! user types at the terminal), `--enable-coverage`, `--enable-profiler`
//! and `--enable-recorder`.

use nix::sys::signal::Signal;
use rwsgi_tests::{app, apps_dir, get, request, test_venv, Server};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long a line may take to reach the test's log reader.
const LOG_WAIT: Duration = Duration::from_secs(10);

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "rwsgi-debugging-{name}-{}-{stamp}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn files_ending(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.to_string_lossy().ends_with(ext));
    files.sort();
    files
}

fn wait_log(server: &Server, line: &str) {
    assert!(
        server.log.wait_for(line, LOG_WAIT),
        "no {line:?} in the log:\n{}",
        server.log.text()
    );
}

/// Types a line at the "terminal" (the master's stdin, which the worker shares).
fn type_line(stdin: &mut std::process::ChildStdin, line: &str) {
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| stdin.flush())
        .expect("write to the server's stdin");
}

#[test]
fn the_debugger_stops_at_an_exception_on_the_terminal_and_the_client_gets_its_500() {
    let mut server = Server::builder()
        .stdin_piped()
        .args(["--enable-debugger", &app("debugging.py")])
        .start();
    let mut stdin = server.take_stdin().expect("stdin");
    let port = server.port;
    let client = std::thread::spawn(move || get(port, "/boom"));
    wait_log(
        &server,
        "rwsgi: post-mortem debugging of ValueError: boom 42",
    );
    wait_log(&server, "-> raise ValueError(\"boom %d\" % secret)");
    // The prompt is pdb's, in the frame that raised.
    type_line(&mut stdin, "p secret * 10");
    wait_log(&server, "420");
    type_line(&mut stdin, "c");
    let response = client.join().expect("client");
    assert_eq!(response.status, 500, "{}", server.log.text());
    // The server serves on.
    assert_eq!(get(port, "/").text(), "hello ");
}

#[test]
fn breakpoints_set_at_startup_stop_in_requests() {
    let script = apps_dir().join("debugging.py");
    let line = std::fs::read_to_string(&script)
        .expect("read the app")
        .lines()
        .position(|l| l.contains("# breakpoint here"))
        .expect("the marked line")
        + 1;
    let mut server = Server::builder()
        .stdin_piped()
        .no_wait()
        .args([
            "--enable-debugger",
            "--debugger-startup",
            &script.to_string_lossy(),
        ])
        .start();
    let mut stdin = server.take_stdin().expect("stdin");
    wait_log(&server, "set breakpoints, then 'c' to serve");
    type_line(&mut stdin, &format!("b {}:{line}", script.display()));
    wait_log(&server, "Breakpoint 1 at");
    type_line(&mut stdin, "c");
    server.wait_ready();
    let port = server.port;
    let client = std::thread::spawn(move || get(port, "/stopped"));
    wait_log(&server, "# breakpoint here");
    type_line(&mut stdin, "p path.upper()");
    wait_log(&server, "'/STOPPED'");
    type_line(&mut stdin, "c");
    let response = client.join().expect("client");
    assert_eq!(response.status, 200, "{}", server.log.text());
    assert_eq!(response.text(), "hello ");
}

#[test]
fn debugger_startup_without_the_debugger_is_refused() {
    let mut server = Server::builder()
        .no_wait()
        .args(["--debugger-startup", &app("debugging.py")])
        .start();
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "{}",
        server.log.text()
    );
    let log = server.log.text();
    assert!(
        log.contains("--debugger-startup requires --enable-debugger"),
        "{log}"
    );
}

#[test]
fn debug_mode_is_one_process_with_one_thread_and_no_request_timeout() {
    let server = Server::start(&[
        "--debug-mode",
        "--processes",
        "3",
        "--threads",
        "4",
        "--request-timeout",
        "1",
        &app("debugging.py"),
    ]);
    assert_eq!(server.worker_pids().len(), 1, "{}", server.log.text());
    let environ = get(server.port, "/environ").text();
    assert!(
        environ.starts_with("multithread=False multiprocess=False debug=true"),
        "{environ}"
    );
    // Paused (here: sleeping) past --request-timeout, as at a pdb prompt:
    // not ended, its worker not recycled.
    let slow = get(server.port, "/sleep?3");
    assert_eq!(slow.status, 200, "{}", server.log.text());
    assert_eq!(get(server.port, "/environ").text(), environ);
}

#[test]
fn the_profiler_writes_a_dump_per_request_that_pstats_loads() {
    let dir = TempDir::new("pstats");
    let server = Server::start(&[
        "--enable-profiler",
        "--profiler-directory",
        &dir.arg(),
        &app("debugging.py"),
    ]);
    assert_eq!(get(server.port, "/one").status, 200);
    assert_eq!(get(server.port, "/two").status, 200);
    server.wait_until("two dumps", LOG_WAIT, || {
        files_ending(dir.path(), ".pstats").len() == 2
    });
    let pid = server.worker_pids()[0];
    for dump in files_ending(dir.path(), ".pstats") {
        let name = dump.file_name().unwrap_or_default().to_string_lossy();
        // mod_wsgi-express's naming: MICROSECONDS-PID.pstats.
        assert!(name.ends_with(&format!("-{pid}.pstats")), "{name}");
        let out = Command::new(test_venv().join("bin/python"))
            .args([
                "-c",
                "import pstats, sys\n\
                 s = pstats.Stats(sys.argv[1])\n\
                 print(sorted(f[2] for f in s.stats))",
                &dump.to_string_lossy(),
            ])
            .output()
            .expect("run python");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("'application'"), "{text}");
    }
}

#[test]
fn the_recorder_records_each_request_and_its_response() {
    let dir = TempDir::new("archive");
    let server = Server::start(&[
        "--enable-recorder",
        "--recorder-directory",
        &dir.arg(),
        &app("debugging.py"),
    ]);
    let body = "ping-body";
    let response = request(
        server.port,
        format!(
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .expect("POST");
    // The application still reads the body the recorder took.
    assert_eq!(response.text(), "hello ping-body");
    let read = |ext: &str| {
        let files = files_ending(dir.path(), ext);
        assert_eq!(files.len(), 1, "{ext}: {files:?}");
        std::fs::read_to_string(&files[0]).expect("read")
    };
    let iheaders = read(".iheaders");
    assert!(iheaders.contains("'REQUEST_METHOD': 'POST'"), "{iheaders}");
    assert!(iheaders.contains("'PATH_INFO': '/echo'"), "{iheaders}");
    assert_eq!(read(".icontent"), body);
    let oheaders = read(".oheaders");
    assert!(oheaders.contains("'200 OK'"), "{oheaders}");
    assert!(oheaders.contains("('Content-Length', '15')"), "{oheaders}");
    assert_eq!(read(".ocontent"), "hello ping-body");
    assert_eq!(read(".oaexcept"), "");
    // The next request is a file set of its own; what raised is recorded.
    assert_eq!(get(server.port, "/boom").status, 500);
    server.wait_until("the second recording", LOG_WAIT, || {
        files_ending(dir.path(), ".orexcept").len() == 2
    });
    let tracebacks: String = files_ending(dir.path(), ".orexcept")
        .iter()
        .chain(&files_ending(dir.path(), ".oaexcept"))
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    assert!(tracebacks.contains("ValueError: boom 42"), "{tracebacks}");
}

/// The server with the coverage stand-in on its path, its report directory.
fn coverage_server(report: &TempDir) -> Server {
    let stubs = apps_dir().join("debug_stubs");
    let server = Server::start(&[
        "--enable-coverage",
        "--coverage-directory",
        &report.arg(),
        "--python-path",
        &stubs.to_string_lossy(),
        &app("debugging.py"),
    ]);
    // coverage was measuring before the application was imported.
    assert_eq!(get(server.port, "/coverage").text(), "True");
    server
}

fn assert_reported(server: &mut Server, report: &TempDir) {
    assert!(
        server.wait_exit(Duration::from_secs(30)).is_some(),
        "the server did not stop: {}",
        server.log.text()
    );
    let index = std::fs::read_to_string(report.path().join("index.html"))
        .unwrap_or_else(|e| panic!("no report ({e}); log:\n{}", server.log.text()));
    assert!(
        index.contains("application traced in a request thread: True"),
        "{index}"
    );
}

#[test]
fn coverage_measures_from_before_the_import_and_reports_at_a_graceful_stop() {
    let report = TempDir::new("htmlcov");
    let mut server = coverage_server(&report);
    server.signal(Signal::SIGTERM);
    assert_reported(&mut server, &report);
}

#[test]
fn coverage_reports_when_ctrl_c_stops_the_server() {
    let report = TempDir::new("htmlcov-int");
    let mut server = coverage_server(&report);
    // Ctrl-C: SIGINT to the whole foreground process group.
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(server.pid()), Signal::SIGINT)
        .expect("killpg");
    assert_reported(&mut server, &report);
}

#[test]
fn coverage_without_the_coverage_package_is_a_clear_error_at_start() {
    let venv = test_venv();
    let python = venv.join("bin/python");
    let has_coverage = Command::new(&python)
        .args(["-c", "import coverage"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_coverage {
        // Nothing to test: the package is there (the stand-in tests above
        // cover the rest).
        eprintln!("note: the test virtualenv has coverage; its absence is not tested");
        return;
    }
    let mut server = Server::builder()
        .no_wait()
        .args([
            "--enable-coverage",
            "--python-home",
            &venv.to_string_lossy(),
            &app("debugging.py"),
        ])
        .start();
    let status = server.wait_exit(Duration::from_secs(30)).expect("exits");
    assert!(!status.success());
    let log = server.log.text();
    assert!(
        log.contains("--enable-coverage needs the coverage package"),
        "{log}"
    );
    assert!(log.contains("pip install coverage"), "{log}");
}
