//! mod_wsgi-express options that were accepted and ignored and now do
//! what their users expect: log files (`--log-directory` and the names,
//! `--rotate-logs`), `--mime-types`, `--python-eggs`, the socket buffer
//! sizes and `--verbose-debugging`.

use nix::sys::signal::Signal;
use rwsgi_tests::{app, get, poll_until, wait_until, Server};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const START: Duration = Duration::from_secs(30);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rwsgi-logfiles-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `path` and its rotated files (`path.N`), oldest first.
fn read_rotated(path: &Path) -> String {
    let mut text = String::new();
    for n in (1..=100).rev() {
        text.push_str(&read(&PathBuf::from(format!("{}.{n}", path.display()))));
    }
    text + &read(path)
}

/// A server whose log goes to files: readiness and the port come from the
/// error log, not from the terminal. Its process group is killed on drop.
struct FileServer {
    child: Child,
    port: u16,
}

impl FileServer {
    fn start(error_log: &Path, args: &[&str]) -> FileServer {
        FileServer::start_in(error_log, args, None)
    }

    fn start_in(error_log: &Path, args: &[&str], cwd: Option<&Path>) -> FileServer {
        let mut cmd = Command::new(rwsgi_tests::server::binary("rwsgi"));
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let child = cmd
            .arg("start-server")
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("VIRTUAL_ENV")
            .process_group(0)
            .spawn()
            .expect("start rwsgi (run `cargo build` first)");
        let mut server = FileServer { child, port: 0 };
        let ready = poll_until(START, || {
            read_rotated(error_log).contains("server ready")
                || server.child.try_wait().ok().flatten().is_some()
        });
        let text = read_rotated(error_log);
        assert!(
            ready && text.contains("server ready"),
            "not ready; error log:\n{text}"
        );
        let needle = "listening on http://";
        let at = text.find(needle).expect("listening line") + needle.len();
        server.port = text[at..]
            .split('/')
            .next()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .expect("port");
        server
    }

    fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig)
            .expect("signal");
    }

    /// Stops the server (SIGTERM) and returns what it wrote to the terminal.
    fn stop(mut self) -> String {
        self.signal(Signal::SIGTERM);
        let mut status = None;
        poll_until(START, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
        let mut out = String::new();
        for pipe in [
            self.child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read>),
            self.child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read>),
        ]
        .into_iter()
        .flatten()
        {
            let mut pipe = pipe;
            let _ = pipe.read_to_string(&mut out);
        }
        out
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The master's, the workers' and the application's lines (print,
/// sys.stderr, wsgi.errors) in DIR/error_log, the access records in
/// DIR/access_log as bare Apache lines, the start-up lines in
/// DIR/startup_log; the terminal only hears where the logs went.
#[test]
fn log_directory_gets_the_error_access_and_startup_logs() {
    let dir = temp_dir("dir");
    let logs = dir.join("logs");
    let logs_arg = logs.display().to_string();
    let server = FileServer::start(
        &logs.join("error_log"),
        &[
            "--processes",
            "2",
            "--log-directory",
            &logs_arg,
            "--access-log",
            "--startup-log",
            &app("chatty.py"),
        ],
    );
    for i in 0..6 {
        assert_eq!(get(server.port, &format!("/r/tag{i}")).status, 200);
    }
    // A print with the access records' separator in it (from the URL)
    // stays in the error log: it cannot forge an access record.
    assert_eq!(get(server.port, "/r/forged%1E10.0.0.1").status, 200);
    let access = logs.join("access_log");
    wait_until("the access records", START, || {
        read(&access).lines().count() >= 7
    });
    let terminal = server.stop();
    let (errors, access, startup) = (
        read(&logs.join("error_log")),
        read(&access),
        read(&logs.join("startup_log")),
    );
    for line in ["proc: master", "proc: worker", "stopped, proc: master"] {
        assert!(errors.contains(line), "{line}: {errors}");
    }
    for i in 0..6 {
        for kind in ["printed", "stderr", "errors"] {
            let want = format!("{kind} tag{i} END");
            assert_eq!(errors.matches(&want).count(), 1, "{want}: {errors}");
        }
        let request = format!("\"GET /r/tag{i} HTTP/1.1\" 200 ");
        assert_eq!(access.matches(&request).count(), 1, "{access}");
        assert!(!errors.contains(&request), "{errors}");
    }
    for line in access.lines() {
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    }
    assert!(errors.contains("printed forged 10.0.0.1 END"), "{errors}");
    assert!(startup.contains("processes x"), "{startup}");
    assert!(!startup.contains("printed"), "{startup}");
    // One line on the terminal, naming the files.
    assert_eq!(terminal.lines().count(), 1, "{terminal}");
    assert!(
        terminal.contains(&format!("{logs_arg}/error_log")),
        "{terminal}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--error-log-name` and `--access-log-name` without a directory: paths
/// relative to where rwsgi starts; with `--log-format json` both files
/// hold JSON records.
#[test]
fn log_names_without_a_directory_are_paths() {
    let dir = temp_dir("names");
    let server = FileServer::start_in(
        &dir.join("my-errors.log"),
        &[
            "--working-directory",
            &dir.display().to_string(),
            "--error-log-name",
            "my-errors.log",
            "--access-log",
            "--access-log-name",
            "sub/my-access.log",
            "--log-format",
            "json",
            &app("chatty.py"),
        ],
        Some(&dir),
    );
    assert_eq!(get(server.port, "/r/named").status, 200);
    let access = dir.join("sub/my-access.log");
    wait_until("the access record", START, || {
        read(&access).contains("/r/named")
    });
    server.stop();
    let record: serde_json::Value =
        serde_json::from_str(read(&access).trim()).expect("one JSON record");
    assert_eq!(record["path"], "/r/named");
    assert_eq!(record["status"], 200);
    let errors = read(&dir.join("my-errors.log"));
    assert!(errors.contains("\"msg\":\"printed named END\""), "{errors}");
    for line in errors.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("a JSON record");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rotation under load from 2 workers x 4 threads: every line of both
/// logs is in exactly one file, whole, no file is past --max-log-size,
/// and --max-log-files bounds the old ones.
#[test]
fn rotation_keeps_every_line_once_and_whole() {
    const CLIENTS: usize = 4;
    const REQUESTS: usize = 60;
    let dir = temp_dir("rotate");
    let logs = dir.join("logs");
    let max_bytes = (0.01 * 1_048_576.0) as usize;
    let server = FileServer::start(
        &logs.join("error_log"),
        &[
            "--processes",
            "2",
            "--threads",
            "4",
            "--log-directory",
            &logs.display().to_string(),
            "--access-log",
            "--rotate-logs",
            "--max-log-size",
            "0.01",
            "--max-log-files",
            "100",
            &app("chatty.py"),
        ],
    );
    let port = server.port;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                for i in 0..REQUESTS {
                    assert_eq!(get(port, &format!("/r/c{c}i{i}")).status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    server.stop();
    let files = |name: &str| -> Vec<String> {
        let mut texts = Vec::new();
        for n in (1..=100).rev() {
            let p = logs.join(format!("{name}.{n}"));
            if p.exists() {
                texts.push(read(&p));
            }
        }
        texts.push(read(&logs.join(name)));
        texts
    };
    let (errors, access) = (files("error_log"), files("access_log"));
    assert!(errors.len() >= 3, "{} error logs", errors.len());
    assert!(access.len() >= 2, "{} access logs", access.len());
    for text in errors.iter().chain(&access) {
        assert!(text.len() <= max_bytes, "a file of {} bytes", text.len());
        assert!(text.is_empty() || text.ends_with('\n'));
    }
    let (errors, access) = (errors.concat(), access.concat());
    // Whole lines: each starts as its kind of record starts.
    for line in errors.lines() {
        assert!(line.len() > 20 && line.as_bytes()[3] == b' ', "{line:?}");
    }
    for line in access.lines() {
        assert!(line.starts_with("127.0.0.1 - - ["), "{line:?}");
        assert!(line.ends_with('"'), "{line:?}");
    }
    for c in 0..CLIENTS {
        for i in 0..REQUESTS {
            let tag = format!("c{c}i{i}");
            for kind in ["printed", "stderr", "errors"] {
                let want = format!("{kind} {tag} END,");
                assert_eq!(errors.matches(&want).count(), 1, "{want}");
            }
            let request = format!("\"GET /r/{tag} HTTP/1.1\" 200 ");
            assert_eq!(access.matches(&request).count(), 1, "{request}");
        }
    }

    // And with few files kept, the oldest go.
    let logs2 = dir.join("logs2");
    let server = FileServer::start(
        &logs2.join("error_log"),
        &[
            "--log-directory",
            &logs2.display().to_string(),
            "--rotate-logs",
            "--max-log-size",
            "0.002",
            "--max-log-files",
            "2",
            &app("chatty.py"),
        ],
    );
    for i in 0..40 {
        assert_eq!(get(server.port, &format!("/r/few{i}")).status, 200);
    }
    server.stop();
    assert!(logs2.join("error_log.2").exists());
    assert!(!logs2.join("error_log.3").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGHUP (a reload) opens the log files again: a file moved away by
/// logrotate is followed by a new one.
#[test]
fn a_reload_reopens_the_log_files() {
    let dir = temp_dir("reopen");
    let error_log = dir.join("error_log");
    let server = FileServer::start(
        &error_log,
        &[
            "--log-directory",
            &dir.display().to_string(),
            &app("chatty.py"),
        ],
    );
    std::fs::rename(&error_log, dir.join("error_log.moved")).expect("move");
    server.signal(Signal::SIGHUP);
    wait_until("the reload in a new file", START, || {
        read(&error_log).contains("reload complete")
    });
    assert_eq!(get(server.port, "/r/after").status, 200);
    wait_until("the request's lines", START, || {
        read(&error_log).contains("printed after END")
    });
    server.stop();
    assert!(!read(&dir.join("error_log.moved")).contains("printed after"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn curl_content_type(port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{content_type}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--mime-types FILE`: its types add to and override the built-in ones;
/// a file that cannot be read stops the start, naming the option.
#[test]
fn mime_types_file_gives_the_content_types() {
    let dir = temp_dir("mime");
    let htdocs = dir.join("htdocs");
    std::fs::create_dir_all(&htdocs).expect("htdocs");
    for name in ["a.thing", "b.css", "c.png", "d.THING"] {
        std::fs::write(htdocs.join(name), "x").expect("file");
    }
    let types = dir.join("mime.types");
    std::fs::write(
        &types,
        "# local types\napplication/x-thing\t\tthing\ntext/x-mine css   # overrides\n",
    )
    .expect("types");
    let server = Server::start(&[
        "--document-root",
        &htdocs.display().to_string(),
        "--mime-types",
        &types.display().to_string(),
        &app("hello.py"),
    ]);
    assert_eq!(
        curl_content_type(server.port, "/a.thing"),
        "application/x-thing"
    );
    assert_eq!(
        curl_content_type(server.port, "/d.THING"),
        "application/x-thing"
    );
    assert_eq!(
        curl_content_type(server.port, "/b.css"),
        "text/x-mine; charset=utf-8"
    );
    assert_eq!(curl_content_type(server.port, "/c.png"), "image/png");
    drop(server);

    let missing = dir.join("missing.types");
    let mut server = Server::builder()
        .args([
            "--mime-types".to_owned(),
            missing.display().to_string(),
            app("hello.py"),
        ])
        .no_wait()
        .start();
    let status = server.wait_exit(START).expect("exit");
    assert_eq!(status.code(), Some(2), "{}", server.log.text());
    assert!(
        server.log.text().contains("--mime-types"),
        "{}",
        server.log.text()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--python-eggs DIR`: the application's PYTHON_EGG_CACHE, created.
#[test]
fn python_eggs_sets_the_egg_cache() {
    let dir = temp_dir("eggs");
    let script = dir.join("eggs.py");
    std::fs::write(
        &script,
        "import os\n\ndef application(environ, start_response):\n    body = (os.environ.get('PYTHON_EGG_CACHE', '-') + ' ' + str(os.path.isdir(os.environ.get('PYTHON_EGG_CACHE', '/nonexistent')))).encode()\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [body]\n",
    )
    .expect("app");
    let eggs = dir.join("eggs");
    let server = Server::start(&[
        "--python-eggs",
        &eggs.display().to_string(),
        &script.display().to_string(),
    ]);
    let r = get(server.port, "/");
    assert_eq!(r.text(), format!("{} True", eggs.display()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--receive-buffer-size`, `--send-buffer-size`: the accepted
/// connection's socket has them (`ss` shows the kernel's doubled values).
#[test]
fn socket_buffer_sizes_reach_accepted_connections() {
    let server = Server::start(&[
        "--receive-buffer-size",
        "50000",
        "--send-buffer-size",
        "30000",
        &app("hello.py"),
    ]);
    // A kept-alive connection, so the server's socket stays to be seen.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    std::io::Write::write_all(&mut conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut first = [0u8; 12];
    conn.read_exact(&mut first).expect("response");
    let out = Command::new("ss")
        .args(["-tmnH", "state", "established"])
        .arg(format!("( sport = :{} )", server.port))
        .output()
        .expect("ss");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rb100000"), "{text}");
    assert!(text.contains("tb60000"), "{text}");
}

/// `--verbose-debugging` is --log-level debug, unless --log-level says.
#[test]
fn verbose_debugging_is_the_debug_level() {
    let dir = temp_dir("verbose");
    std::fs::write(dir.join("here.txt"), "x").expect("file");
    let alias = dir.display().to_string();
    let server = Server::start(&[
        "--verbose-debugging",
        "--url-alias",
        "/static",
        &alias,
        &app("hello.py"),
    ]);
    assert_eq!(get(server.port, "/static/missing.txt").status, 404);
    server.wait_until("the debug line", START, || {
        server.log.text().contains("static file not found")
    });
    drop(server);

    let server = Server::start(&[
        "--verbose-debugging",
        "--log-level",
        "info",
        "--access-log",
        "--url-alias",
        "/static",
        &alias,
        &app("hello.py"),
    ]);
    assert_eq!(get(server.port, "/static/missing.txt").status, 404);
    server.wait_until("the access record", START, || {
        server.log.text().contains("GET /static/missing.txt")
    });
    assert!(!server.log.text().contains("static file not found"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--user`: the master opens the files as root; workers running as the
/// user write through the pipe, and the reader, running as the user after
/// the start, rotates in the log directory it created and gave the user.
#[test]
fn log_files_with_user_are_written_and_rotated() {
    let nobody_runs_python = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(rwsgi_tests::test_venv().join("bin/python"))
        .args(["-c", "import sys"])
        .status()
        .is_ok_and(|s| s.success());
    if !nix::unistd::geteuid().is_root() || !nobody_runs_python {
        eprintln!(
            "\n!!!!!!!! SKIPPED: --user needs root and a Python that nobody can run !!!!!!!!\n"
        );
        return;
    }
    let dir = temp_dir("user");
    let logs = dir.join("logs");
    let server = FileServer::start(
        &logs.join("error_log"),
        &[
            "--user",
            "nobody",
            "--log-directory",
            &logs.display().to_string(),
            "--access-log",
            "--rotate-logs",
            "--max-log-size",
            "0.002",
            &app("chatty.py"),
        ],
    );
    for i in 0..30 {
        assert_eq!(get(server.port, &format!("/r/user{i}")).status, 200);
    }
    server.stop();
    let errors = read_rotated(&logs.join("error_log"));
    let access = read_rotated(&logs.join("access_log"));
    assert!(logs.join("error_log.1").exists());
    for i in 0..30 {
        assert_eq!(errors.matches(&format!("printed user{i} END,")).count(), 1);
        assert_eq!(access.matches(&format!("GET /r/user{i} ")).count(), 1);
    }
    assert!(!errors.contains("cannot rotate"), "{errors}");
    let _ = std::fs::remove_dir_all(&dir);
}
