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

/// Frontends on ports the kernel picks, each sending the PROXY preamble
/// (`send`) to the backend port; returns the frontend ports in order.
fn haproxy(backend: u16, sends: &[&str]) -> Option<(Haproxy, Vec<u16>)> {
    Haproxy::start(sends.len(), |binds| {
        let mut cfg = String::new();
        for (i, (send, bind)) in sends.iter().zip(binds).enumerate() {
            cfg.push_str(&format!(
                "frontend f{i}\n  bind {bind}\n  default_backend b{i}\nbackend b{i}\n  server s 127.0.0.1:{backend} {send}\n"
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

/// The log lines that contain `needle`.
fn lines_with(server: &Server, needle: &str) -> Vec<String> {
    server
        .log
        .text()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_preamble_is_believed_only_from_a_trusted_peer() {
    let spoof = b"PROXY TCP4 10.1.2.3 127.0.0.1 5555 80\r\nGET /environ HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 198.51.100.77\r\nConnection: close\r\n\r\n";
    // The tests' client (127.0.0.1) is not in 10.0.0.0/8: its preamble
    // would otherwise make it 10.1.2.3, a trusted proxy vouching for
    // 198.51.100.77.
    let server = Server::start(&[
        "--proxy-protocol",
        "--trust-proxy-header",
        "X-Forwarded-For",
        "--trust-proxy",
        "10.0.0.0/8",
        &app("app.py"),
    ]);
    let refused = request(server.port, spoof);
    assert!(refused.is_err(), "{refused:?}");
    assert!(server.log.wait_for(
        "connection refused (--proxy-protocol)",
        std::time::Duration::from_secs(5)
    ));
    let lines = lines_with(&server, "connection refused (--proxy-protocol)");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("127.0.0.1") && l.contains("--trust-proxy")),
        "the refusal names the peer: {lines:?}"
    );

    // From a trusted peer the preamble is honoured; the client it names
    // (10.1.2.3, not a trusted proxy here) wrote that X-Forwarded-For, so
    // it is removed rather than believed.
    let server = Server::start(&[
        "--proxy-protocol",
        "--trust-proxy-header",
        "X-Forwarded-For",
        "--trust-proxy",
        "127.0.0.1",
        &app("app.py"),
    ]);
    let r = request(server.port, spoof).expect("response");
    assert_eq!(r.status, 200, "{}", server.log.text());
    let env: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(env["REMOTE_ADDR"], "10.1.2.3");
    assert_eq!(env["REMOTE_PORT"], "5555");
    assert!(env.get("HTTP_X_FORWARDED_FOR").is_none(), "{env}");
}

#[test]
fn the_main_port_status_page_is_for_clients_the_trust_rules_find_local() {
    let server = Server::start(&[
        "--server-status",
        "--trust-proxy-header",
        "X-Forwarded-For",
        "--trust-proxy",
        "127.0.0.1",
        &app("app.py"),
    ]);
    let page = |extra: &str| {
        let raw =
            format!("GET /server-status HTTP/1.1\r\nHost: h\r\n{extra}Connection: close\r\n\r\n");
        request(server.port, raw.as_bytes())
            .expect("response")
            .status
    };
    assert_eq!(page(""), 200);
    // A proxy on this machine forwarding a remote client.
    assert_eq!(page("X-Forwarded-For: 198.51.100.7\r\n"), 403);
    assert_eq!(page("X-Forwarded-For: 127.0.0.1\r\n"), 200);
}

#[test]
fn an_invalid_forwarded_host_is_refused_naming_the_header() {
    let server = trusting(&["127.0.0.1"]);
    for (header, bad) in [
        ("X-Forwarded-Host", "evil.example/<script>?a b"),
        ("X-Forwarded-Host", "a@b:c:d"),
        ("X-Script-Name", "//evil.example"),
        ("X-Forwarded-Port", "99999"),
    ] {
        let raw = format!(
            "GET /environ HTTP/1.1\r\nHost: internal\r\n{header}: {bad}\r\nConnection: close\r\n\r\n"
        );
        let r = request(server.port, raw.as_bytes()).expect("response");
        assert_eq!(r.status, 400, "{header}: {bad}");
        let needle = format!("{header} from a trusted proxy is not");
        assert!(
            server
                .log
                .wait_for(&needle, std::time::Duration::from_secs(5)),
            "{}",
            server.log.text()
        );
    }
}

#[test]
fn of_a_forwarded_list_the_value_the_proxy_added_wins() {
    // nginx's $proxy_add_x_forwarded_for style: the proxy appends to what
    // the client sent.
    let server = trusting(&["127.0.0.1"]);
    let env = environ(
        &server,
        "X-Forwarded-Host: evil.example\r\nX-Forwarded-Host: shop.example\r\nX-Forwarded-Proto: https, http\r\nX-Forwarded-Port: 1, 8080\r\nX-Script-Name: /evil, /shop\r\n",
    );
    assert_eq!(env["HTTP_HOST"], "shop.example");
    assert_eq!(env["SERVER_NAME"], "shop.example");
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["SERVER_PORT"], "8080");
    assert_eq!(env["SCRIPT_NAME"], "/shop");
}

#[test]
fn behind_haproxy_trust_is_decided_on_haproxy_not_on_its_preamble() {
    // HAProxy connects from 127.0.0.2; the tests' client is 127.0.0.1.
    let raw = b"GET /environ HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 198.51.100.77\r\nConnection: close\r\n\r\n";
    let through = |trusted: &str| {
        let server = Server::start(&[
            "--proxy-protocol",
            "--trust-proxy-header",
            "X-Forwarded-For",
            "--trust-proxy",
            trusted,
            &app("app.py"),
        ]);
        let lb = haproxy(server.port, &["send-proxy source 127.0.0.2"]);
        lb.map(|(lb, ports)| {
            let r = request(ports[0], raw).expect("a response from haproxy");
            (server, lb, r)
        })
    };
    // HAProxy trusted: the client it names (127.0.0.1, no proxy) wrote
    // that X-Forwarded-For itself, so it is removed.
    let Some((server, _lb, r)) = through("127.0.0.2") else {
        return;
    };
    assert_eq!(r.status, 200, "{}", server.log.text());
    let env: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert!(env.get("HTTP_X_FORWARDED_FOR").is_none(), "{env}");
    // Only the client's address trusted: HAProxy's preamble naming it
    // proves nothing, and the connection is refused.
    let Some((server, _lb, r)) = through("127.0.0.1") else {
        return;
    };
    assert_ne!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(server.log.wait_for(
        "connection refused (--proxy-protocol)",
        std::time::Duration::from_secs(5)
    ));
    let lines = lines_with(&server, "connection refused (--proxy-protocol)");
    assert!(
        lines.iter().any(|l| l.contains("127.0.0.2")),
        "the refusal names HAProxy's address: {lines:?}"
    );
}
