//! Serving requests: hello world, module apps, environ, bodies, keep-alive.

use rwsgi_tests::client::{connect, read_response};
use rwsgi_tests::json;
use rwsgi_tests::{app, apps_dir, get, request, Server};
use std::io::Write;

#[test]
fn hello_world_script() {
    let server = Server::start(&[&app("hello.py")]);
    let r = get(server.port, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello World!");
    assert_eq!(r.header("content-length"), Some("12"));
    assert!(r.header("date").is_some());
    assert!(r.header("server").is_some_and(|s| s.starts_with("rwsgi/")));
}

#[test]
fn hello_world_with_curl() {
    let server = Server::start(&[&app("hello.py")]);
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{}/", server.port),
        ])
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello World!");
}

#[test]
fn module_application() {
    let wd = apps_dir();
    let server = Server::start(&[
        "--working-directory",
        &wd.to_string_lossy(),
        "--application-type",
        "module",
        "modapp.wsgi",
    ]);
    assert_eq!(get(server.port, "/").text(), "module app");
}

#[test]
fn environ_has_the_pep3333_keys_with_the_right_types() {
    let server = Server::start(&["--threads", "3", &app("app.py")]);
    let r = get(server.port, "/environ?a=1&b=%20x");
    assert_eq!(r.status, 200, "{}", server.log.text());
    let env = json(&r.body);
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["QUERY_STRING"], "a=1&b=%20x");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["SERVER_PORT"], server.port.to_string());
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert!(env["REMOTE_PORT"]
        .as_str()
        .is_some_and(|p| p.parse::<u16>().is_ok()));
    assert_eq!(env["HTTP_HOST"], "127.0.0.1");
    assert_eq!(env["wsgi.version"], serde_json::json!([1, 0]));
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["wsgi.multithread"], true);
    assert_eq!(env["wsgi.multiprocess"], false);
    assert_eq!(env["wsgi.run_once"], false);
    assert_eq!(env["wsgi.input_terminated"], true);
    assert!(env.get("wsgi.input").is_some() && env.get("wsgi.errors").is_some());
    assert!(env.get("wsgi.file_wrapper").is_some());
}

#[test]
fn mount_point_sets_script_name() {
    let server = Server::start(&["--mount-point", "/app", &app("app.py")]);
    let env = json(&get(server.port, "/app/environ").body);
    assert_eq!(env["SCRIPT_NAME"], "/app");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(get(server.port, "/other").status, 404);
}

#[test]
fn headers_with_underscores_are_dropped_and_repeats_joined() {
    let server = Server::start(&[&app("app.py")]);
    let r = request(
        server.port,
        b"GET /environ HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\nX_B: smuggled\r\nCookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n",
    )
    .expect("response");
    let env = json(&r.body);
    assert_eq!(env["HTTP_X_A"], "1,2");
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
    assert!(env.get("HTTP_X_B").is_none());
}

#[test]
fn post_body_with_content_length_is_echoed() {
    let server = Server::start(&[&app("app.py")]);
    let body = "x".repeat(100_000);
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = request(server.port, raw.as_bytes()).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert_eq!(r.text(), body);
}

#[test]
fn chunked_post_body_is_echoed() {
    let server = Server::start(&[&app("app.py")]);
    let raw = b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
    let r = request(server.port, raw).expect("response");
    assert_eq!(r.status, 200, "{}", server.log.text());
    assert_eq!(r.text(), "hello, world");
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = Server::start(&[&app("app.py")]);
    let mut s = connect(server.port);
    let mut buf = Vec::new();
    let mut ports = Vec::new();
    for i in 0..5 {
        let body = format!("req{i}");
        write!(
            s,
            "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let r = read_response(&mut s, &mut buf, false).expect("response");
        assert_eq!(r.text(), body);
        ports.push(r.header("connection").map(str::to_owned));
    }
    write!(s, "GET /environ HTTP/1.1\r\nHost: h\r\n\r\n").expect("write");
    let env = json(
        &read_response(&mut s, &mut buf, false)
            .expect("response")
            .body,
    );
    assert_eq!(
        env["REMOTE_PORT"],
        s.local_addr().expect("addr").port().to_string()
    );
    assert!(ports.iter().all(|c| c.as_deref() != Some("close")));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[&app("app.py")]);
    let mut s = connect(server.port);
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nonePOST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\ntwoGET /pid HTTP/1.1\r\nHost: h\r\n\r\n").expect("write");
    let mut buf = Vec::new();
    assert_eq!(
        read_response(&mut s, &mut buf, false).expect("1").text(),
        "one"
    );
    assert_eq!(
        read_response(&mut s, &mut buf, false).expect("2").text(),
        "two"
    );
    assert!(read_response(&mut s, &mut buf, false)
        .expect("3")
        .text()
        .contains("pid"));
}

/// A request head found by the request thread after a response, whose
/// body is still on its way: the I/O thread receives the body and runs it.
#[test]
fn a_pipelined_request_whose_body_is_still_coming_is_answered() {
    let server = Server::start(&[&app("app.py")]);
    let mut s = connect(server.port);
    s.write_all(
        b"GET /pid HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello",
    )
    .expect("write");
    let mut buf = Vec::new();
    assert!(read_response(&mut s, &mut buf, false)
        .expect("1")
        .text()
        .contains("pid"));
    s.write_all(b"world").expect("the rest of the body");
    assert_eq!(
        read_response(&mut s, &mut buf, false).expect("2").text(),
        "helloworld"
    );
    // Still served on the same connection afterwards.
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nend")
        .expect("write");
    assert_eq!(
        read_response(&mut s, &mut buf, false).expect("3").text(),
        "end"
    );
}

#[test]
fn http10_without_keep_alive_is_closed_after_the_response() {
    let server = Server::start(&[&app("hello.py")]);
    let r = request(server.port, b"GET / HTTP/1.0\r\n\r\n").expect("response");
    assert_eq!(r.text(), "Hello World!");
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn response_without_length_is_chunked_and_head_has_no_body() {
    let server = Server::start(&[&app("app.py")]);
    let r = get(server.port, "/stream");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "part 0\npart 1\npart 2\n");
    let w = get(server.port, "/write");
    assert_eq!(w.text(), "written and returned");
    let mut s = connect(server.port);
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET /pid HTTP/1.1\r\nHost: h\r\n\r\n")
        .expect("write");
    let mut buf = Vec::new();
    let head = read_response(&mut s, &mut buf, true).expect("head");
    assert_eq!(head.status, 404);
    assert_eq!(head.header("content-length"), Some("9"));
    // If HEAD had sent a body, this would read "not found" as the next response.
    let next = read_response(&mut s, &mut buf, false).expect("next");
    assert!(next.text().contains("pid"), "{:?}", next);
}

#[test]
fn requests_are_spread_over_two_processes() {
    let server = Server::start(&["--processes", "2", "--threads", "1", &app("app.py")]);
    let mut pids = std::collections::HashSet::new();
    // Slow requests in parallel: a single worker with one thread could not
    // take them all at once, so the master must use both.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let port = server.port;
            std::thread::spawn(move || json(&get(port, "/sleep?0.3").body)["pid"].as_i64())
        })
        .collect();
    for h in handles {
        pids.insert(h.join().expect("thread"));
    }
    assert_eq!(pids.len(), 2, "pids seen: {pids:?}");
    assert_eq!(server.worker_pids().len(), 2);
}

#[test]
fn an_exception_in_the_app_is_a_500_with_the_traceback_logged() {
    let server = Server::start(&[&app("app.py")]);
    let r = get(server.port, "/error");
    assert_eq!(r.status, 500);
    assert!(
        server.log.wait_for(
            "RuntimeError: boom from the test app",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        server.log.text()
    );
    assert!(server.log.text().contains("Traceback"));
    // The worker keeps serving.
    assert_eq!(get(server.port, "/pid").status, 200);
}

#[test]
fn app_output_reaches_the_log_and_sys_executable_works() {
    let server = Server::start(&[&app("app.py")]);
    assert_eq!(get(server.port, "/stderr").status, 200);
    assert!(server
        .log
        .wait_for("hello from wsgi.errors", std::time::Duration::from_secs(5)));
    assert!(server
        .log
        .wait_for("hello from print", std::time::Duration::from_secs(5)));
    let r = json(&get(server.port, "/executable").body);
    assert!(
        r["child"].as_str().is_some_and(|s| s.starts_with("(3, ")),
        "{r}"
    );
}
