use super::*;

fn parse(raw: &[u8]) -> Result<Parsed, HttpError> {
    parse_request_head(raw, &Limits::default())
}

fn complete(raw: &[u8]) -> RequestHead {
    match parse(raw) {
        Ok(Parsed::Complete(head, used)) => {
            assert_eq!(used, raw.len());
            head
        }
        other => panic!("expected a complete head, got {other:?}"),
    }
}

fn status(raw: &[u8]) -> u16 {
    match parse(raw) {
        Err(e) => e.status,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn a_simple_get() {
    let head = complete(b"GET /a%20b?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.method, "GET");
    assert_eq!(head.path, "/a%20b");
    assert_eq!(head.query, "x=1&y");
    assert!(head.keep_alive);
    assert_eq!(head.body, BodyKind::Empty);
}

#[test]
fn partial_until_the_blank_line() {
    let raw = b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    for end in 0..raw.len() {
        assert_eq!(parse(&raw[..end]), Ok(Parsed::Partial), "prefix {end}");
    }
    complete(raw);
}

#[test]
fn framing_rules() {
    assert_eq!(status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br, chunked\r\n\r\n"),
        501
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        400
    );
    let head = complete(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(head.body, BodyKind::Chunked);
    let head = complete(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(head.body, BodyKind::Chunked);
    assert!(!head.keep_alive);
}

#[test]
fn line_ending_rules() {
    assert_eq!(status(b"GET / HTTP/1.1\nHost: h\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\n\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\n\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400);
}

#[test]
fn limits_and_versions() {
    let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000));
    assert_eq!(status(long.as_bytes()), 414);
    assert_eq!(status(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
    assert_eq!(status(b"GET / http/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(
        complete(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n").version,
        Version::Http11
    );
    let head = complete(b"GET / HTTP/1.0\r\n\r\n");
    assert!(!head.keep_alive);
    let head = complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(head.keep_alive);
}

/// RFC 9112 3 recommends request lines of at least 8000 octets.
#[test]
fn request_lines_of_8000_octets_fit_by_default() {
    let limits = Limits::default();
    assert_eq!(limits.request_line, 8190);
    let line = format!("GET /{} HTTP/1.1", "a".repeat(8000 - 14));
    assert_eq!(line.len(), 8000);
    let raw = format!("{line}\r\nHost: h\r\n\r\n");
    assert!(raw.len() + limits.header_field_size <= limits.header_buffer);
    assert_eq!(complete(raw.as_bytes()).path.len(), 8000 - 13);
}

#[test]
fn request_line_limit_is_exact() {
    let limits = Limits::default();
    let fits = format!("GET /{} HTTP/1.1", "a".repeat(limits.request_line - 14));
    assert_eq!(fits.len(), limits.request_line);
    complete(format!("{fits}\r\nHost: h\r\n\r\n").as_bytes());
    assert_eq!(parse(fits.as_bytes()), Ok(Parsed::Partial));
    let over = format!("GET /{} HTTP/1.1\r\n", "a".repeat(limits.request_line - 13));
    assert_eq!(status(over.as_bytes()), 414);
}

#[test]
fn field_limits_are_exact() {
    let limits = Limits::default();
    // "X: " + value + CRLF is exactly the limit.
    let value = "v".repeat(limits.header_field_size - 5);
    complete(format!("GET / HTTP/1.1\r\nHost: h\r\nX: {value}\r\n\r\n").as_bytes());
    assert_eq!(
        status(format!("GET / HTTP/1.1\r\nHost: h\r\nX: {value}v\r\n\r\n").as_bytes()),
        431
    );
    // Refused before the head is complete, too.
    assert_eq!(
        status(format!("GET / HTTP/1.1\r\nHost: h\r\nX: {value}v\r\n").as_bytes()),
        431
    );
    assert_eq!(
        status(format!("GET / HTTP/1.1\r\nHost: h\r\nX: {value}vv").as_bytes()),
        431
    );
    let many: String = (0..limits.header_fields)
        .map(|i| format!("X-{i}: v\r\n"))
        .collect();
    complete(format!("GET / HTTP/1.0\r\n{many}\r\n").as_bytes());
    assert_eq!(
        status(format!("GET / HTTP/1.0\r\n{many}Y: v\r\n\r\n").as_bytes()),
        431
    );
}

/// Every prefix is partial or refused exactly like the whole (found by fuzzing).
#[test]
fn prefixes_agree_with_the_whole() {
    let limits = Limits {
        header_field_size: 20,
        ..Limits::default()
    };
    for raw in [
        &b"GET / HTTP/1.1\r\nHost!CONNECTle.com\r\xf6&"[..],
        b"GET / HTTP/1.1\r\nX: vvvvvvvvvvvvvvv\rX",
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
    ] {
        let whole = parse_request_head(raw, &limits);
        assert!(whole.is_err(), "{whole:?}");
        for end in 0..raw.len() {
            match parse_request_head(&raw[..end], &limits) {
                Ok(Parsed::Partial) => {}
                prefix => assert_eq!(prefix, whole, "prefix of {end} bytes"),
            }
        }
    }
}

#[test]
fn targets() {
    let head = complete(b"GET http://example.com:8080/p?q HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((head.path.as_str(), head.query.as_str()), ("/p", "q"));
    assert_eq!(head.target_authority(), Some("example.com:8080"));
    let head = complete(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.path, "*");
    assert_eq!(status(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(
        status(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"),
        501
    );
    assert_eq!(status(b"GET h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status(b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status(b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

fn reason(raw: &[u8]) -> &'static str {
    match parse(raw) {
        Err(e) => e.reason,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn http11_needs_a_host_http10_does_not() {
    assert_eq!(reason(b"GET / HTTP/1.1\r\n\r\n"), "missing Host header");
    // Served as HTTP/1.1, so held to its rules.
    assert_eq!(reason(b"GET / HTTP/1.2\r\n\r\n"), "missing Host header");
    assert_eq!(reason(b"OPTIONS * HTTP/1.1\r\n\r\n"), "missing Host header");
    // The target's authority does not stand in for the field (RFC 9112 3.2).
    assert_eq!(
        reason(b"GET http://example.com/ HTTP/1.1\r\n\r\n"),
        "missing Host header"
    );
    let head = complete(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(head.effective_host(), None);
    let head = complete(b"GET http://example.com/ HTTP/1.0\r\n\r\n");
    assert_eq!(head.effective_host(), Some(&b"example.com"[..]));
}

#[test]
fn host_values() {
    assert_eq!(
        reason(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"),
        "empty Host header"
    );
    assert_eq!(
        reason(b"GET / HTTP/1.1\r\nHost:  \r\n\r\n"),
        "empty Host header"
    );
    assert_eq!(
        reason(b"GET / HTTP/1.0\r\nHost:\r\n\r\n"),
        "empty Host header"
    );
    assert_eq!(
        reason(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
        "more than one Host header"
    );
    for bad in [
        &b"a b"[..],
        b"user@h",
        b"h:8x",
        b"[::1",
        b"h\tx",
        b":80",
        b"h/p",
    ] {
        let raw = [&b"GET / HTTP/1.1\r\nHost: "[..], bad, b"\r\n\r\n"].concat();
        assert_eq!(reason(&raw), "invalid Host header", "{bad:?}");
    }
    // Refused by the field rules first, like in any other field.
    assert_eq!(
        reason(b"GET / HTTP/1.1\r\nHost: h\x01\r\n\r\n"),
        "control character in header value"
    );
    let head = complete(b"GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n");
    assert_eq!(head.effective_host(), Some(&b"[::1]:8000"[..]));
    assert_eq!(head.target_authority(), None);
}

#[test]
fn authorities() {
    use AuthorityProblem::*;
    for good in [
        "example.com",
        "example.com:8080",
        "EXAMPLE.com.",
        "h:",
        "127.0.0.1:80",
        "999.1.1.1",
        "xn--bcher-kva.example",
        "a%2Db",
        "a_b~c-d!$&'()*+,;=",
        "[::1]",
        "[::1]:8000",
        "[2001:db8::ffff:192.0.2.1]",
        "[v1.fe80::a+en1]:80",
    ] {
        assert_eq!(check_authority(good.as_bytes()), Ok(()), "{good}");
    }
    for (bad, problem) in [
        ("", EmptyHost),
        (":80", EmptyHost),
        ("user@h", Userinfo),
        ("user:pw@h:80", Userinfo),
        ("@h", Userinfo),
        ("a b", Invalid),
        ("h\t", Invalid),
        ("h:8x", Invalid),
        ("h:-1", Invalid),
        ("h:80:80", Invalid),
        ("::1", EmptyHost),
        ("[::1", Invalid),
        ("::1]", EmptyHost),
        ("[::1]x", Invalid),
        ("[::1]:8x", Invalid),
        ("[]", Invalid),
        ("[::g]", Invalid),
        ("[fe80::1%25eth0]", Invalid),
        ("[127.0.0.1]", Invalid),
        ("[v1]", Invalid),
        ("[v.x]", Invalid),
        ("[vg.x]", Invalid),
        ("[v1.]", Invalid),
        ("a%2", Invalid),
        ("a%zz", Invalid),
        ("a/b", Invalid),
        ("a?b", Invalid),
        ("a[b]", Invalid),
        ("caf\u{e9}", Invalid),
    ] {
        assert_eq!(check_authority(bad.as_bytes()), Err(problem), "{bad:?}");
    }
}

#[test]
fn absolute_form_authority_wins_over_host() {
    let head = complete(b"GET http://a.example:8080/p HTTP/1.1\r\nHost: b.example\r\n\r\n");
    assert_eq!(head.target_authority(), Some("a.example:8080"));
    assert_eq!(head.effective_host(), Some(&b"a.example:8080"[..]));
    let head = complete(b"GET http://[::1]?q HTTP/1.1\r\nHost: b.example\r\n\r\n");
    assert_eq!(head.effective_host(), Some(&b"[::1]"[..]));
    assert_eq!((head.path.as_str(), head.query.as_str()), ("/", "q"));
    let head = complete(b"GET /p HTTP/1.1\r\nHost: b.example\r\n\r\n");
    assert_eq!(head.effective_host(), Some(&b"b.example"[..]));
    assert_eq!(
        reason(b"GET http://user@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        "userinfo in absolute-form target"
    );
    for bad in [
        "http://a.example:8x/",
        "http://[::1/",
        "http://:80/",
        "http:///",
    ] {
        let raw = format!("GET {bad} HTTP/1.1\r\nHost: a.example\r\n\r\n");
        assert_eq!(
            reason(raw.as_bytes()),
            "invalid authority in absolute-form target",
            "{bad}"
        );
    }
    // The Host field is still checked (RFC 9112 3.2).
    assert_eq!(
        reason(b"GET http://a.example/ HTTP/1.1\r\nHost: b example\r\n\r\n"),
        "invalid Host header"
    );
}

#[test]
fn fragments_and_non_ascii_targets_are_refused() {
    for raw in [
        &b"GET /a#f HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"GET /a?q#f HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /# HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http://h#f HTTP/1.1\r\nHost: h\r\n\r\n",
        // Refused as soon as the byte arrives.
        b"GET /a#",
    ] {
        assert_eq!(reason(raw), "fragment in request target", "{raw:?}");
    }
    for raw in [
        &b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"GET /?q=\xe9 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http://caf\xc3\xa9/ HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /\x80",
    ] {
        assert_eq!(reason(raw), "non-ASCII byte in request target", "{raw:?}");
    }
    // Percent-encoded, they are fine.
    let head = complete(b"GET /caf%C3%A9?q=%23 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(
        (head.path.as_str(), head.query.as_str()),
        ("/caf%C3%A9", "q=%23")
    );
}
