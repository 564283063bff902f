//! The rules as a request meets them: who is believed, and what the
//! believed headers say.

use super::{Adjusted, Rules, UntrustedPeer};
use rwsgi_shared::origin::{Claim, Origin};
use std::net::{IpAddr, SocketAddr};

fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn rules(headers: &[&str], proxies: &[&str]) -> Rules {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    Rules::new(&s(headers), &s(proxies)).expect("rules")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A connection straight from `peer` (no preamble).
fn from(peer: &str) -> Origin {
    Origin::new(SocketAddr::new(ip(peer), 40000), Claim::NoClient)
}

/// A connection from `peer` whose preamble named `client`.
fn via(peer: &str, client: &str) -> Origin {
    Origin::new(
        SocketAddr::new(ip(peer), 40000),
        Claim::Client(SocketAddr::new(ip(client), 5555)),
    )
}

fn apply(r: &Rules, o: &Origin, pairs: &[(&str, &str)]) -> Adjusted {
    r.apply(o, &h(pairs)).expect("valid")
}

fn refused(r: &Rules, pairs: &[(&str, &str)]) -> String {
    r.apply(&from(PROXY), &h(pairs))
        .expect_err("invalid")
        .to_string()
}

const PROXY: &str = "10.0.0.5";

#[test]
fn a_trusted_proxy_sets_the_client_and_scheme_and_others_are_dropped() {
    let r = rules(&["X-Forwarded-For", "X-Forwarded-Proto"], &[PROXY]);
    let a = apply(
        &r,
        &from(PROXY),
        &[
            ("X-Forwarded-For", "203.0.113.9, 10.0.0.7"),
            ("X-Real-IP", "6.6.6.6"),
            ("X-Forwarded-Proto", "https"),
        ],
    );
    // 10.0.0.7 is not a trusted proxy: it is the client as far as we can tell.
    assert_eq!(a.remote_addr, Some(ip("10.0.0.7")));
    assert_eq!(a.scheme, Some("https"));
    assert!(a.drop.contains(&"x-real-ip".to_owned()));
    assert!(!a.drop.contains(&"x-forwarded-for".to_owned()));
    // The host group is trusted by nobody: untouched.
    assert!(!a.drop.contains(&"x-forwarded-host".to_owned()));
}

#[test]
fn the_rightmost_untrusted_hop_is_the_client() {
    let r = rules(&["X-Forwarded-For"], &["10.0.0.0/8"]);
    let a = apply(
        &r,
        &from("10.0.0.1"),
        &[("X-Forwarded-For", "1.1.1.1, 2.2.2.2, 10.0.0.9")],
    );
    assert_eq!(a.remote_addr, Some(ip("2.2.2.2")));
    // Only the hops up to the client are read: garbage the client
    // wrote before its own address is its business.
    let a = apply(
        &r,
        &from("10.0.0.1"),
        &[("X-Forwarded-For", "<script>, 2.2.2.2:1234")],
    );
    assert_eq!(a.remote_addr, Some(ip("2.2.2.2")));
    // Every hop trusted: the leftmost.
    let a = apply(
        &r,
        &from("10.0.0.1"),
        &[("X-Forwarded-For", "10.9.9.9,, 10.0.0.9")],
    );
    assert_eq!(a.remote_addr, Some(ip("10.9.9.9")));
    // An unknown client: the peer stands.
    let a = apply(
        &r,
        &from("10.0.0.1"),
        &[("X-Forwarded-For", "1.1.1.1, unknown, 10.0.0.9")],
    );
    assert_eq!(a.remote_addr, None);
}

#[test]
fn an_untrusted_peer_gets_its_headers_removed_not_applied() {
    let r = rules(&["X-Forwarded-For", "X-Forwarded-Proto"], &[PROXY]);
    let a = apply(
        &r,
        &from("198.51.100.1"),
        &[
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Proto", "https"),
        ],
    );
    assert_eq!(a.remote_addr, None);
    assert_eq!(a.scheme, None);
    for name in [
        "x-forwarded-for",
        "x-real-ip",
        "x-forwarded-proto",
        "forwarded",
    ] {
        assert!(a.drop.contains(&name.to_owned()), "{name}");
    }
}

#[test]
fn a_preamble_is_admitted_only_from_a_trusted_peer() {
    let r = rules(&[], &["10.0.0.0/8"]);
    let mut o = Origin::accepted(SocketAddr::new(ip("127.0.0.1"), 1));
    assert_eq!(
        r.believe_preamble(&mut o, Some("10.1.2.3:4".parse().expect("addr"))),
        Err(UntrustedPeer { peer: o.peer() })
    );
    assert_eq!(o.claim(), Claim::Unread);
    let mut o = Origin::accepted(SocketAddr::new(ip("10.0.0.5"), 1));
    r.believe_preamble(&mut o, Some("198.51.100.7:4".parse().expect("addr")))
        .expect("trusted");
    assert_eq!(o.client().ip(), ip("198.51.100.7"));
    assert_eq!(o.peer().ip(), ip("10.0.0.5"));
    // A claim handed on is asked about again.
    let stale = via("192.0.2.1", "198.51.100.7");
    assert!(r.admits_preamble(&stale).is_err());
    assert!(r.admits_preamble(&from("192.0.2.1")).is_ok());
    // Without --trust-proxy, every peer is (as for headers).
    let mut o = Origin::accepted(SocketAddr::new(ip("192.0.2.1"), 1));
    assert!(rules(&[], &[]).believe_preamble(&mut o, None).is_ok());
    assert_eq!(o.claim(), Claim::NoClient);
}

#[test]
fn headers_behind_a_preamble_are_believed_only_from_a_trusted_client() {
    let r = rules(&["X-Forwarded-For", "X-Forwarded-Host"], &["10.0.0.0/8"]);
    let spoof = [
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Forwarded-Host", "evil.example"),
    ];
    // HAProxy (trusted) passes on what a client wrote: not believed,
    // and removed.
    let a = apply(&r, &via("10.0.0.5", "198.51.100.7"), &spoof);
    assert_eq!((a.remote_addr, a.host.as_deref()), (None, None));
    assert!(a.drop.contains(&"x-forwarded-for".to_owned()));
    assert!(a.drop.contains(&"x-forwarded-host".to_owned()));
    // The preamble names a trusted proxy (a CDN in front): believed.
    let a = apply(
        &r,
        &via("10.0.0.5", "10.9.0.1"),
        &[("X-Forwarded-For", "203.0.113.4")],
    );
    assert_eq!(a.remote_addr, Some(ip("203.0.113.4")));
}

#[test]
fn the_status_page_wants_loopback_all_the_way() {
    let r = rules(&["X-Forwarded-For"], &["127.0.0.1"]);
    let local = from("127.0.0.1");
    assert!(r.allows_status_page(&local, &[]));
    assert!(!r.allows_status_page(&local, &h(&[("X-Forwarded-For", "198.51.100.7")])));
    assert!(!r.allows_status_page(&local, &h(&[("X-Forwarded-For", "nonsense")])));
    assert!(!r.allows_status_page(&from("198.51.100.7"), &[]));
    // A preamble from a trusted local proxy naming a remote client.
    assert!(!r.allows_status_page(&via("127.0.0.1", "198.51.100.7"), &[]));
    // A remote peer's claim of a loopback client is not this machine's.
    let open = rules(&[], &[]);
    assert!(!open.allows_status_page(&via("198.51.100.7", "127.0.0.1"), &[]));
    // A remote client's spoofed header cannot make it local.
    assert!(!open.allows_status_page(
        &from("198.51.100.7"),
        &h(&[("X-Forwarded-For", "127.0.0.1")])
    ));
}

#[test]
fn forwarded_rfc7239() {
    let r = rules(&["Forwarded"], &[PROXY]);
    let a = apply(
        &r,
        &from(PROXY),
        &[(
            "Forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\";proto=https;host=shop.example",
        )],
    );
    assert_eq!(a.remote_addr, Some(ip("2001:db8::1")));
    assert_eq!(a.scheme, Some("https"));
    assert_eq!(a.host.as_deref(), Some("shop.example"));
}

#[test]
fn forwarded_takes_proto_and_host_from_the_clients_element() {
    // client -> 10.0.0.7 (TLS) -> 10.0.0.5 -> us: the client's element
    // (written by 10.0.0.7) says what the client asked for; the one the
    // inner proxy wrote describes the hop between the proxies.
    let r = rules(&["Forwarded"], &["10.0.0.0/8"]);
    let a = apply(
        &r,
        &from(PROXY),
        &[(
            "Forwarded",
            "for=6.6.6.6;proto=http;host=evil.example, for=203.0.113.9;proto=https;host=shop.example, for=10.0.0.7;proto=http;host=internal",
        )],
    );
    assert_eq!(a.remote_addr, Some(ip("203.0.113.9")));
    assert_eq!(a.scheme, Some("https"));
    assert_eq!(a.host.as_deref(), Some("shop.example"));
    let bad = |v: &str| {
        r.apply(&from(PROXY), &h(&[("Forwarded", v)]))
            .expect_err(v)
            .header
    };
    assert_eq!(bad("for=1.2.3.4;host=\"a b\""), "Forwarded");
    assert_eq!(bad("for=1.2.3.4;proto=gopher"), "Forwarded");
    assert_eq!(bad("for=\"1.2.3.4"), "Forwarded");
    assert_eq!(bad("for=<x>"), "Forwarded");
    assert_eq!(bad("for=\"1.2.3.4:99999\""), "Forwarded");
    // Obfuscated and unknown nodes are nodes.
    let a = apply(
        &r,
        &from(PROXY),
        &[("Forwarded", "for=_hidden;proto=https, for=\"10.0.0.7:_p\"")],
    );
    assert_eq!((a.remote_addr, a.scheme), (None, Some("https")));
}

#[test]
fn port_prefix_host_and_ssl() {
    let r = rules(
        &[
            "X-Forwarded-Port",
            "X-Script-Name",
            "X-Forwarded-Host",
            "X-Forwarded-Ssl",
        ],
        &[],
    );
    let a = apply(
        &r,
        &from("127.0.0.1"),
        &[
            ("X-Forwarded-Port", "8443"),
            ("X-Script-Name", "/shop/"),
            ("X-Forwarded-Host", "b, a.example:8443"),
            ("X-Forwarded-Ssl", "on"),
        ],
    );
    assert_eq!(a.port.as_deref(), Some("8443"));
    assert_eq!(a.prefix.as_deref(), Some("/shop"));
    assert_eq!(a.host.as_deref(), Some("a.example:8443"));
    assert_eq!(a.scheme, Some("https"));
}

/// Every name mod_wsgi 6's WSGITrustedProxyHeaders acts on.
#[test]
fn mod_wsgi_6_names() {
    let r = rules(
        &["X-Forwarded-Server", "X-Forwarded-Script-Name", "X-HTTPS"],
        &[PROXY],
    );
    let a = apply(
        &r,
        &from(PROXY),
        &[
            ("X-Forwarded-Server", "www.example"),
            ("X-Forwarded-Script-Name", "/app"),
            ("X-HTTPS", "on"),
        ],
    );
    assert_eq!(a.server.as_deref(), Some("www.example"));
    assert_eq!(a.prefix.as_deref(), Some("/app"));
    assert_eq!(a.scheme, Some("https"));
    let a = apply(&r, &from("192.0.2.1"), &[("X-Forwarded-Server", "evil")]);
    assert_eq!(a.server, None);
    assert!(a.drop.contains(&"x-forwarded-server".to_owned()), "{a:?}");
    assert!(refused(&r, &[("X-Forwarded-Server", "a b")]).contains("X-Forwarded-Server"));
}

#[test]
fn of_a_list_the_value_the_nearest_hop_added_wins() {
    let r = rules(
        &[
            "X-Forwarded-Host",
            "X-Forwarded-Proto",
            "X-Forwarded-Port",
            "X-Forwarded-Prefix",
        ],
        &[PROXY],
    );
    // What a client sent first, then what the proxy appended (as
    // separate fields too).
    let a = apply(
        &r,
        &from(PROXY),
        &[
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Host", "shop.example"),
            ("X-Forwarded-Proto", "https, http"),
            ("X-Forwarded-Port", "1, 8080"),
            ("X-Forwarded-Prefix", "/evil, /shop"),
        ],
    );
    assert_eq!(a.host.as_deref(), Some("shop.example"));
    assert_eq!(a.scheme, Some("http"));
    assert_eq!(a.port.as_deref(), Some("8080"));
    assert_eq!(a.prefix.as_deref(), Some("/shop"));
}

#[test]
fn forwarded_values_obey_their_grammar() {
    let host = rules(&["X-Forwarded-Host"], &[PROXY]);
    for good in [
        "shop.example",
        "shop.example:8443",
        "[::1]:80",
        "10.0.0.1",
        "h:",
    ] {
        let a = apply(&host, &from(PROXY), &[("X-Forwarded-Host", good)]);
        assert_eq!(a.host.as_deref(), Some(good));
    }
    for bad in [
        "evil.example/<script>?a b",
        "a@b:c:d",
        "h:99999",
        "h:0",
        "h:x",
        "",
        " , ",
        "a b",
        "[::1",
    ] {
        assert_eq!(
            refused(&host, &[("X-Forwarded-Host", bad)]),
            "X-Forwarded-Host from a trusted proxy is not a valid host[:port]",
            "{bad:?}"
        );
    }
    let port = rules(&["X-Forwarded-Port"], &[PROXY]);
    for bad in ["0", "65536", "+80", "80a", "123456"] {
        assert!(refused(&port, &[("X-Forwarded-Port", bad)]).starts_with("X-Forwarded-Port "));
    }
    let proto = rules(&["X-Forwarded-Proto", "X-Forwarded-Ssl"], &[PROXY]);
    assert!(
        refused(&proto, &[("X-Forwarded-Proto", "javascript")]).starts_with("X-Forwarded-Proto ")
    );
    assert!(refused(&proto, &[("X-Forwarded-Ssl", "yes please")]).starts_with("X-Forwarded-Ssl "));
    let ip = rules(&["X-Real-IP", "X-Forwarded-For"], &[PROXY]);
    assert!(refused(&ip, &[("X-Real-IP", "localhost")]).starts_with("X-Real-IP "));
    assert!(refused(&ip, &[("X-Forwarded-For", "1.2.3.4, evil")]).starts_with("X-Forwarded-For "));
    let prefix = rules(&["X-Forwarded-Prefix"], &[PROXY]);
    for good in [
        ("/", ""),
        ("/a/b/", "/a/b"),
        ("/a%20b", "/a%20b"),
        ("/a:b@c", "/a:b@c"),
    ] {
        let a = apply(&prefix, &from(PROXY), &[("X-Forwarded-Prefix", good.0)]);
        assert_eq!(a.prefix.as_deref(), Some(good.1));
    }
    for bad in [
        "shop",
        "//evil.example",
        "/a/../b",
        "/.",
        "/a?b",
        "/a#b",
        "/a b",
        "/%zz",
        "/<x>",
    ] {
        assert_eq!(
            refused(&prefix, &[("X-Forwarded-Prefix", bad)]),
            "X-Forwarded-Prefix from a trusted proxy is not an absolute path",
            "{bad:?}"
        );
    }
    // From a peer that is not trusted nothing is read, so nothing is invalid.
    let a = host
        .apply(&from("192.0.2.1"), &h(&[("X-Forwarded-Host", "a b")]))
        .expect("not read");
    assert!(a.drop.contains(&"x-forwarded-host".to_owned()));
}

#[test]
fn unknown_header_names_are_refused() {
    assert!(Rules::new(&["X-Bogus".to_owned()], &[]).is_err());
}
