//! `--interrupt-timeout`: a request past `--request-timeout` gets
//! `mod_wsgi.RequestTimeout` raised in its thread; the client gets a 504 and
//! the worker serves on, or, if the request does not unwind, the worker is
//! replaced and goes as soon as its replacement is ready.

use rwsgi_tests::{app, get, Server};
use std::time::Duration;

#[test]
fn an_interrupted_request_gets_a_504_and_the_same_worker_serves_on() {
    let server = Server::start(&[
        "--processes",
        "1",
        "--request-timeout",
        "2",
        "--interrupt-timeout",
        "2",
        &app("interrupt.py"),
    ]);
    let before = server.worker_pids();
    let pid = get(server.port, "/").text();
    let pid = pid.trim();
    let stuck = get(server.port, "/loop?60");
    assert_eq!(stuck.status, 504, "{}", server.log.text());
    // The application saw the exception, under both names as one class.
    let next = get(server.port, "/");
    assert_eq!(next.status, 200);
    assert_eq!(
        next.text(),
        format!("{pid} RequestTimeout True"),
        "{}",
        server.log.text()
    );
    assert_eq!(server.worker_pids(), before);
    // Logged with the stack of the interrupted thread, then its outcome
    // (the log arrives through a pipe: waited for, not read at once).
    for line in [
        "raising RequestTimeout in thread",
        "in loop",
        "request interrupted by RequestTimeout",
    ] {
        assert!(
            server.log.wait_for(line, Duration::from_secs(10)),
            "{line}: {}",
            server.log.text()
        );
    }
    let log = server.log.text();
    assert!(!log.contains("recycling worker"), "{log}");
}

#[test]
fn a_request_that_ignores_the_interrupt_costs_its_worker_which_goes_once_replaced() {
    let log = stuck_worker_goes_once_replaced("/ignore?120", true);
    assert!(log.contains("raising RequestTimeout"), "{log}");
    assert!(
        log.contains("did not unwind within --interrupt-timeout"),
        "{log}"
    );
}

#[test]
fn a_request_stuck_in_c_takes_the_same_path() {
    let log = stuck_worker_goes_once_replaced("/stuck?120", true);
    assert!(log.contains("raising RequestTimeout"), "{log}");
}

/// The watchdog cannot even take the GIL to interrupt it.
#[test]
fn a_request_holding_the_gil_in_c_takes_the_same_path() {
    let log = stuck_worker_goes_once_replaced("/gil?120", true);
    assert!(!log.contains("raising RequestTimeout"), "{log}");
}

#[test]
fn without_the_interrupt_a_stuck_worker_goes_once_replaced_not_after_the_graceful_timeout() {
    let log = stuck_worker_goes_once_replaced("/loop?120", false);
    assert!(!log.contains("RequestTimeout"), "{log}");
}

/// A stuck request (with `interrupt`, one RequestTimeout does not end):
/// its worker is replaced, and with no other request running it is gone
/// soon after its replacement is ready, well before `--graceful-timeout`
/// (60 s here). Returns the log.
fn stuck_worker_goes_once_replaced(path: &str, interrupt: bool) -> String {
    let mut args = vec!["--processes", "1", "--request-timeout", "1"];
    if interrupt {
        args.extend(["--interrupt-timeout", "1"]);
    }
    let script = app("interrupt.py");
    args.extend(["--graceful-timeout", "60", &script]);
    let server = Server::start(&args);
    let before = server.worker_pids();
    let port = server.port;
    let request = format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n");
    let stuck = std::thread::spawn(move || rwsgi_tests::request(port, request.as_bytes()));
    let recycled = "recycling worker: request timeout";
    server.wait_until(recycled, Duration::from_secs(15), || {
        server.log.text().contains(recycled)
    });
    server.wait_until(
        "the stuck worker to be replaced and gone",
        Duration::from_secs(25),
        || {
            let now = server.worker_pids();
            now.len() == 1 && now != before
        },
    );
    assert!(
        server
            .log
            .wait_for("only stuck requests left", Duration::from_secs(10)),
        "{}",
        server.log.text()
    );
    let log = server.log.text();
    assert_eq!(
        log.contains("RequestTimeout did not end it"),
        interrupt,
        "{log}"
    );
    // Its client is not held: the connection closes without a response.
    let answer = stuck.join().expect("client thread");
    assert!(answer.is_err(), "{answer:?}");
    let served = get(server.port, "/");
    assert_eq!(served.status, 200);
    assert!(!before
        .iter()
        .any(|p| served.text().starts_with(&p.to_string())));
    log
}

#[test]
fn an_installed_mod_wsgi_package_keeps_its_subpackages_beside_request_timeout() {
    let server = Server::start(&[
        "--python-path",
        &app("installed_mod_wsgi"),
        &app("interrupt.py"),
    ]);
    let r = get(server.port, "/modules");
    assert_eq!(r.status, 200, "{}", server.log.text());
    assert_eq!(r.text(), "mod_wsgi.server from the installed package; True");
}
