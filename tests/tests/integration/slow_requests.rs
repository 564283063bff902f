//! `--slow-requests` (mod_wsgi 6's WSGISlowRequests): a request still
//! running past the threshold is logged once, with its request id, method,
//! path, time so far and Python stack, and goes on to its normal response.

use rwsgi_tests::{app, get, request, Server};
use std::time::Duration;

#[test]
fn a_slow_request_is_logged_with_its_stack_and_goes_on() {
    let server = Server::start(&[
        "--threads",
        "2",
        "--slow-requests",
        "1",
        &app("debugging.py"),
    ]);
    // Under the threshold: not logged.
    assert_eq!(get(server.port, "/quick").status, 200);
    let slow = request(
        server.port,
        b"GET /sleep?3 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: slow-one-42\r\nConnection: close\r\n\r\n",
    )
    .expect("GET /sleep");
    // Not stopped: it ends as it would have.
    assert_eq!(slow.status, 200, "{}", server.log.text());
    assert!(
        server
            .log
            .wait_for("slow request: running for", Duration::from_secs(10)),
        "{}",
        server.log.text()
    );
    let log = server.log.text();
    let record = log
        .lines()
        .skip_while(|l| !l.contains("slow request: running for"))
        .take(20)
        .collect::<Vec<_>>()
        .join("\n");
    for part in [
        "--slow-requests 1 s",
        "slow-one-42",
        "GET /sleep",
        "in application",
        "time.sleep",
    ] {
        assert!(record.contains(part), "{part}: {record}\n\nlog:\n{log}");
    }
    assert_eq!(log.matches("slow request: running for").count(), 1, "{log}");
    assert!(!record.contains("/quick"), "{record}");
}
