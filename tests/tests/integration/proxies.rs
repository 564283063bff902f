//! Behind a proxy: trusted proxy headers set what the application sees,
//! and the same headers from an untrusted peer never reach it.

use rwsgi_tests::haproxy::Haproxy;
use rwsgi_tests::{app, request, Server};
use std::process::Command;

fn environ(server: &Server, headers: &str) -> serde_json::Value {
    let raw = format!(
        "GET /environ HTTP/1.1\r\nHost: internal:8000\r\n{headers}Connection: close\r\n\r\n"
    );
    let r = request(server.port, raw.as_bytes()).expect("response");
    assert_eq!(r.status, 200, "{}", server.log.text());
    serde_json::from_slice(&r.body).expect("JSON")
}

const FORWARDED: &str = "X-Forwarded-For: 203.0.113.7, 10.1.2.3\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\nX-Forwarded-Port: 443\r\nX-Script-Name: /shop\r\n";

fn trusting(proxies: &[&str]) -> Server {
    let mut b = Server::builder();
    for h in [
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "X-Forwarded-Port",
        "X-Script-Name",
    ] {
        b = b.args(["--trust-proxy-header", h]);
    }
    for p in proxies {
        b = b.args(["--trust-proxy", p]);
    }
    b.arg(app("app.py")).start()
}

#[test]
fn a_trusted_proxy_sets_client_scheme_host_port_and_prefix() {
    let server = trusting(&["127.0.0.0/8"]);
    let env = environ(&server, FORWARDED);
    // 10.1.2.3 is not a trusted proxy: it is the client the proxy saw.
    assert_eq!(env["REMOTE_ADDR"], "10.1.2.3");
    assert_eq!(env["wsgi.url_scheme"], "https");
    assert_eq!(env["HTTPS"], "on");
    assert_eq!(env["HTTP_HOST"], "shop.example");
    assert_eq!(env["SERVER_NAME"], "shop.example");
    assert_eq!(env["SERVER_PORT"], "443");
    assert_eq!(env["SCRIPT_NAME"], "/shop");
    // The trusted header stays; its untrusted sibling is gone.
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "203.0.113.7, 10.1.2.3");
    assert!(env.get("HTTP_X_REAL_IP").is_none(), "{env}");
    // With 10.0.0.0/8 trusted too, the client is the next hop out.
    let server = trusting(&["127.0.0.0/8", "10.0.0.0/8"]);
    assert_eq!(environ(&server, FORWARDED)["REMOTE_ADDR"], "203.0.113.7");
}

#[test]
fn the_same_headers_from_an_untrusted_peer_are_removed() {
    let server = trusting(&["192.0.2.0/24"]);
    let env = environ(&server, FORWARDED);
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert!(env.get("HTTPS").is_none());
    assert_eq!(env["HTTP_HOST"], "internal:8000");
    assert_eq!(env["SCRIPT_NAME"], "");
    for spoofed in [
        "HTTP_X_FORWARDED_FOR",
        "HTTP_X_REAL_IP",
        "HTTP_X_FORWARDED_PROTO",
        "HTTP_X_FORWARDED_HOST",
        "HTTP_X_FORWARDED_PORT",
        "HTTP_X_SCRIPT_NAME",
        "HTTP_FORWARDED",
    ] {
        assert!(
            env.get(spoofed).is_none(),
            "{spoofed} reached the app: {env}"
        );
    }
}

#[test]
fn untrusted_groups_pass_through_untouched() {
    // Only the client address is trusted: scheme headers are not rwsgi's business.
    let server = Server::start(&[
        "--trust-proxy-header",
        "X-Real-IP",
        "--trust-proxy",
        "127.0.0.1",
        &app("app.py"),
    ]);
    let env = environ(
        &server,
        "X-Real-IP: 198.51.100.4\r\nX-Forwarded-Proto: https\r\n",
    );
    assert_eq!(env["REMOTE_ADDR"], "198.51.100.4");
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["HTTP_X_FORWARDED_PROTO"], "https");
}

#[test]
fn forwarded_rfc7239() {
    let server = Server::start(&[
        "--trust-proxy-header",
        "Forwarded",
        "--trust-proxy",
        "127.0.0.1",
        &app("app.py"),
    ]);
    let env = environ(
        &server,
        "Forwarded: for=192.0.2.60;proto=http, for=\"[2001:db8::7]:4711\";proto=https;host=\"a.example\"\r\n",
    );
    assert_eq!(env["REMOTE_ADDR"], "2001:db8::7");
    assert_eq!(env["wsgi.url_scheme"], "https");
    assert_eq!(env["HTTP_HOST"], "a.example");
    assert_eq!(env["SERVER_PORT"], "443");
}

#[test]
fn a_wrong_header_or_proxy_is_named() {
    for (args, option) in [
        (["--trust-proxy-header", "X-Bogus"], "--trust-proxy-header"),
        (["--trust-proxy", "10.0.0.0/99"], "--trust-proxy"),
    ] {
        let out = Command::new(rwsgi_tests::server::binary("rwsgi"))
            .arg("start-server")
            .args(args)
            .arg(app("app.py"))
            .output()
            .expect("run rwsgi");
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(option),
            "{out:?}"
        );
    }
}

/// Frontends on free ports, each sending the PROXY preamble (`send`) to
/// the backend port; returns the frontend ports in order.
fn haproxy(backend: u16, sends: &[&str]) -> Option<(Haproxy, Vec<u16>)> {
    Haproxy::start(sends.len(), |ports| {
        let mut cfg = String::new();
        for (i, (send, port)) in sends.iter().zip(ports).enumerate() {
            cfg.push_str(&format!(
                "frontend f{i}\n  bind 127.0.0.1:{port}\n  default_backend b{i}\nbackend b{i}\n  server s 127.0.0.1:{backend} {send}\n"
            ));
        }
        cfg
    })
}

#[test]
fn proxy_protocol_v1_and_v2_through_haproxy() {
    let server = Server::start(&["--proxy-protocol", &app("app.py")]);
    let Some((_haproxy, ports)) = haproxy(server.port, &["send-proxy", "send-proxy-v2"]) else {
        return;
    };
    for port in ports {
        // The client's own address and port, as HAProxy accepted it.
        let mut s = rwsgi_tests::client::connect(port);
        let me = s.local_addr().expect("local addr");
        std::io::Write::write_all(
            &mut s,
            b"GET /environ HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
        .expect("write");
        let r =
            rwsgi_tests::client::read_response(&mut s, &mut Vec::new(), false).expect("response");
        assert_eq!(r.status, 200, "{}", server.log.text());
        let env: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(env["REMOTE_ADDR"], me.ip().to_string());
        assert_eq!(env["REMOTE_PORT"], me.port().to_string(), "via port {port}");
    }
    // Straight to rwsgi, without a preamble: refused.
    let direct = request(
        server.port,
        b"GET /environ HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert!(direct.is_err(), "{direct:?}");
    assert!(server.log.wait_for(
        "connection refused (--proxy-protocol)",
        std::time::Duration::from_secs(5)
    ));
}
