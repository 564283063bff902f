//! The command line: help, errors that name the option, compatibility.

use rwsgi_tests::server::binary;
use rwsgi_tests::{app, get, Server};
use std::process::Command;

fn rwsgi(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("rwsgi"))
        .args(args)
        .output()
        .expect("run rwsgi");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
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
    // Options accepted only for compatibility stay out of the help.
    assert!(!out.contains("--server-mpm"));
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
        "--include-file",
        "x.conf",
        "--enable-debugger",
        &app("hello.py"),
    ]);
    assert_eq!(get(server.port, "/").text(), "Hello World!");
    let log = server.log.text();
    assert!(log.contains("--server-mpm is accepted"), "{log}");
    assert!(log.contains("--include-file is accepted"), "{log}");
    assert!(log.contains("--enable-debugger is accepted"), "{log}");
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
