//! The reverse proxy's decisions, case by case.

use super::request::*;
use super::response::*;
use super::*;
use crate::{parse_request_head, Parsed, Version};

fn head(raw: &str) -> RequestHead {
    let limits = rwsgi_shared::config::Limits::default();
    match parse_request_head(raw.as_bytes(), &limits) {
        Ok(Parsed::Complete(h, _)) => h,
        other => panic!("{other:?}"),
    }
}

fn get(target: &str, host: &str) -> RequestHead {
    head(&format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn table() -> Table {
    Table::new(
        &pairs(&[
            ("/api", "http://127.0.0.1:9000/v1"),
            ("/api/admin/", "http://10.0.0.2/"),
        ]),
        &pairs(&[("Side.Example.org", "http://127.0.0.1:9001")]),
    )
    .expect("valid")
}

fn forwarded(t: Option<Target>) -> (String, String) {
    match t {
        Some(Target::Forward { route, target }) => (route.backend.authority, target),
        other => panic!("{other:?}"),
    }
}

#[test]
fn backend_urls_are_http_host_port_and_path() {
    let b = Backend::parse("http://Example.org:8080/v1/").expect("valid");
    assert_eq!(
        (b.host.as_str(), b.port, b.path.as_str()),
        ("example.org", 8080, "/v1")
    );
    assert_eq!(b.authority, "example.org:8080");
    let b = Backend::parse("http://[::1]:81").expect("valid");
    assert_eq!((b.host.as_str(), b.port, b.path.as_str()), ("::1", 81, ""));
    assert_eq!(Backend::parse("http://h").expect("valid").port, 80);
    assert!(Backend::parse("https://h/")
        .expect_err("refused")
        .contains("https"));
    for bad in [
        "h:80",
        "ftp://h/",
        "http://",
        "http://h:0/",
        "http://h:x/",
        "http://u@h/",
        "http://h/?q",
    ] {
        assert!(Backend::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn mounts_must_be_paths_and_errors_name_the_option() {
    let bad = Table::new(&pairs(&[("api", "http://h/")]), &[]).expect_err("refused");
    assert_eq!(bad.0, "proxy-mount-point");
    let bad = Table::new(&[], &pairs(&[("h", "https://h/")])).expect_err("refused");
    assert_eq!(bad.0, "proxy-virtual-host");
    assert!(Table::new(&pairs(&[("/a/../b", "http://h/")]), &[]).is_err());
}

#[test]
fn a_path_under_a_mount_maps_to_the_backend_path_as_proxy_pass() {
    let t = table();
    assert_eq!(
        forwarded(t.by_path(&get("/api/x?a=1", "s"))),
        ("127.0.0.1:9000".into(), "/v1/x?a=1".into())
    );
    assert_eq!(forwarded(t.by_path(&get("/api/", "s"))).1, "/v1/");
    // The longest mount wins, whatever the order given.
    assert_eq!(
        forwarded(t.by_path(&get("/api/admin/users", "s"))),
        ("10.0.0.2".into(), "/users".into())
    );
    assert_eq!(t.by_path(&get("/apix", "s")), None);
    assert_eq!(t.by_path(&get("/", "s")), None);
    // Dot segments are resolved first: this is not under /api.
    assert_eq!(t.by_path(&get("/api/../secret", "s")), None);
    assert_eq!(t.by_path(&get("/api/%2E%2e/secret", "s")), None);
    assert_eq!(forwarded(t.by_path(&get("/api/a/../b", "s"))).1, "/v1/b");
}

#[test]
fn the_mount_itself_redirects_to_its_slash_form() {
    let t = table();
    assert_eq!(
        t.by_path(&get("/api", "s")),
        Some(Target::Redirect("/api/".into()))
    );
    assert_eq!(
        t.by_path(&get("/api?x=1", "s")),
        Some(Target::Redirect("/api/?x=1".into()))
    );
    assert_eq!(
        t.by_path(&get("/api/admin", "s")),
        Some(Target::Redirect("/api/admin/".into()))
    );
}

#[test]
fn a_virtual_host_takes_every_path_of_its_host_name() {
    let t = table();
    assert_eq!(
        forwarded(t.by_host(&get("/x/y?z", "side.example.org:8000"))),
        ("127.0.0.1:9001".into(), "/x/y?z".into())
    );
    assert!(t.by_host(&get("/", "SIDE.example.org.")).is_some());
    assert_eq!(t.by_host(&get("/x", "other.example.org")), None);
    assert_eq!(t.by_host(&head("GET / HTTP/1.0\r\n\r\n")), None);
}

#[test]
fn dot_segments_are_removed_as_rfc_3986_says() {
    assert_eq!(remove_dot_segments("/a/b/../c"), "/a/c");
    assert_eq!(remove_dot_segments("/a/./b/."), "/a/b/");
    assert_eq!(remove_dot_segments("/../../x"), "/x");
    assert_eq!(remove_dot_segments("/a/.."), "/");
    assert_eq!(remove_dot_segments("/a/..b/c"), "/a/..b/c");
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .expect("valid")
        .split("\r\n")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_backend_gets_no_hop_by_hop_fields_and_x_forwarded_as_mod_proxy_adds_them() {
    let t = table();
    let h = head(concat!(
        "POST /api/x HTTP/1.1\r\nHost: site:8000\r\nConnection: keep-alive, X-Secret\r\n",
        "X-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\n",
        "Proxy-Authorization: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n",
        "X-Forwarded-For: 10.1.1.1\r\nX-Forwarded-Port: 1\r\nAccept: */*\r\n\r\n"
    ));
    let Some(Target::Forward { route, target }) = t.by_path(&h) else {
        panic!()
    };
    let fwd = Forwarded {
        client: "127.0.0.9".into(),
        server: "localhost",
        port: 8000,
        https: false,
    };
    let out = lines(&request_head(
        &h,
        &route,
        &target,
        &fwd,
        RequestFraming::Chunked,
    ));
    assert_eq!(
        out,
        [
            "POST /v1/x HTTP/1.1",
            "Host: 127.0.0.1:9000",
            "Accept: */*",
            "X-Forwarded-For: 10.1.1.1, 127.0.0.9",
            "X-Forwarded-Host: site:8000",
            "X-Forwarded-Server: localhost",
            "X-Forwarded-Port: 8000",
            "X-Forwarded-Prefix: /api",
            "Transfer-Encoding: chunked",
            "Connection: close",
            "",
            ""
        ]
    );
    // A virtual host has no prefix.
    let h = get("/", "side.example.org");
    let Some(Target::Forward { route, target }) = t.by_host(&h) else {
        panic!()
    };
    let out = lines(&request_head(
        &h,
        &route,
        &target,
        &fwd,
        RequestFraming::None,
    ));
    assert!(!out.iter().any(|l| l.starts_with("X-Forwarded-Prefix")));
    assert!(out.contains(&"Host: 127.0.0.1:9001".to_owned()));
}

fn hs(v: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.as_bytes().to_vec()))
        .collect()
}

#[test]
fn response_framing_follows_rfc_9112() {
    use ResponseBody::*;
    assert_eq!(
        response_body(false, 200, &hs(&[("Content-Length", "5")])),
        Ok(Length(5))
    );
    assert_eq!(
        response_body(true, 200, &hs(&[("Content-Length", "5")])),
        Ok(None)
    );
    assert_eq!(response_body(false, 304, &[]), Ok(None));
    assert_eq!(response_body(false, 204, &[]), Ok(None));
    assert_eq!(response_body(false, 200, &[]), Ok(UntilClose));
    let te = hs(&[
        ("Transfer-Encoding", "gzip, Chunked"),
        ("Content-Length", "3"),
    ]);
    assert_eq!(response_body(false, 200, &te), Ok(Chunked));
    assert_eq!(
        response_body(false, 200, &hs(&[("Transfer-Encoding", "gzip")])),
        Ok(UntilClose)
    );
    assert_eq!(
        response_body(false, 200, &hs(&[("Content-Length", "5, 5")])),
        Ok(Length(5))
    );
    assert!(response_body(
        false,
        200,
        &hs(&[("Content-Length", "5"), ("content-length", "6")])
    )
    .is_err());
    assert!(response_body(false, 200, &hs(&[("Content-Length", "-1")])).is_err());
    assert_eq!(
        client_framing(Chunked, Version::Http11),
        ClientFraming::Chunked
    );
    assert_eq!(
        client_framing(UntilClose, Version::Http11),
        ClientFraming::Chunked
    );
    assert_eq!(
        client_framing(Chunked, Version::Http10),
        ClientFraming::UntilClose
    );
    assert_eq!(
        client_framing(Length(3), Version::Http10),
        ClientFraming::Length(3)
    );
}

#[test]
fn redirects_to_the_backend_map_back_as_proxy_pass_reverse() {
    let t = table();
    let Some(Target::Forward { route, .. }) = t.by_path(&get("/api/x", "s")) else {
        panic!()
    };
    let map = |v: &str| {
        reverse_map(v.as_bytes(), &route, "site:8000").map(|b| String::from_utf8(b).expect("valid"))
    };
    assert_eq!(
        map("http://127.0.0.1:9000/v1/login?n=1"),
        Some("http://site:8000/api/login?n=1".into())
    );
    assert_eq!(
        map("HTTP://127.0.0.1:9000/v1/"),
        Some("http://site:8000/api/".into())
    );
    assert_eq!(map("http://127.0.0.1:9000/v2/x"), None);
    assert_eq!(map("/v1/relative"), None);
    assert_eq!(map("https://elsewhere/"), None);
}

#[test]
fn the_client_gets_the_backend_fields_without_hop_by_hop_ones() {
    let t = table();
    let Some(Target::Forward { route, .. }) = t.by_path(&get("/api/x", "s")) else {
        panic!()
    };
    let headers = hs(&[
        ("Content-Type", "text/plain"),
        ("Connection", "close, X-Hop"),
        ("X-Hop", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Keep-Alive", "timeout=5"),
        ("Location", "http://127.0.0.1:9000/v1/next"),
        ("Server", "backend"),
    ]);
    let out = lines(&response_head(
        302,
        "Found",
        &headers,
        &route,
        "site",
        ClientFraming::Chunked,
        true,
    ));
    assert_eq!(
        out,
        [
            "HTTP/1.1 302 Found",
            "Content-Type: text/plain",
            "Location: http://site/api/next",
            "Server: backend",
            "Transfer-Encoding: chunked",
            "Connection: keep-alive",
            "",
            ""
        ]
    );
    let out = lines(&response_head(
        200,
        "",
        &hs(&[("Content-Length", "9")]),
        &route,
        "s",
        ClientFraming::UntilClose,
        true,
    ));
    assert_eq!(out, ["HTTP/1.1 200 OK", "Connection: close", "", ""]);
    let out = lines(&response_head(
        200,
        "OK",
        &hs(&[("Content-Length", "9")]),
        &route,
        "s",
        ClientFraming::None,
        true,
    ));
    assert!(out.contains(&"Content-Length: 9".to_owned()));
}

#[test]
fn the_forwarded_port_is_the_hosts_else_the_one_reached() {
    assert_eq!(forwarded_port(Some(b"site:8000"), 80), 8000);
    assert_eq!(forwarded_port(Some(b"site"), 8080), 8080);
    assert_eq!(forwarded_port(Some(b"[::1]:81"), 8080), 81);
    assert_eq!(forwarded_port(Some(b"[::1]"), 8080), 8080);
    assert_eq!(forwarded_port(None, 8080), 8080);
}

#[test]
fn failures_get_the_status_mod_proxy_gives() {
    assert_eq!(failure_status(Failure::Connect), 503);
    assert_eq!(failure_status(Failure::Timeout), 504);
    assert_eq!(failure_status(Failure::Broken), 502);
}
