//! gunicorn's public request corpus (MIT), run through rwsgi's parser.
//!
//! The corpus is not in this repository: it lives beside it in
//! `../shared/corpora/gunicorn-requests/` (see its README), or wherever
//! `RWSGI_GUNICORN_CORPUS` says. Without it the test fails in CI (`CI` set);
//! elsewhere it prints a warning that the corpus was NOT RUN (past the
//! harness's output capture) and passes; `tests/run` repeats the warning at
//! the end.
//!
//! Every valid case must parse to exactly what gunicorn's expectation says;
//! every invalid case must be refused with the status its error class maps
//! to. The only exceptions are listed below with their reasons, and the test
//! fails on any case that deviates without being listed, or is listed
//! without deviating.
//!
//! Many cases send HTTP/1.1 without Host, which rwsgi refuses (RFC 9112
//! 3.2). Such a valid case is a listed deviation, and must parse as gunicorn
//! expects once a Host field is added; such an invalid case is judged with
//! Host added, so that it is refused for what it is about.

#![forbid(unsafe_code)]

mod common;

use common::{latin1, read_stream, read_stream_fed, End, Request};
use rwsgi_http::Version;
use rwsgi_shared::config::Limits;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why most of gunicorn's valid cases that rwsgi refuses are refused.
const NO_HOST: &str =
    "HTTP/1.1 without Host: RFC 9112 3.2 requires 400 (with Host added, parses as expected)";

/// Cases where rwsgi deliberately does the opposite of what gunicorn expects.
const DEVIATIONS: &[(&str, &str)] = &[
    ("valid/004", NO_HOST),
    (
        "valid/005",
        "fragment in the target (#posts-17408): not part of a request-target (RFC 9112 3.2), 400; \
         the request also lacks Host",
    ),
    ("valid/006", NO_HOST),
    ("valid/007", NO_HOST),
    (
        "valid/009",
        "fragment in the target (#hey): not part of a request-target (RFC 9112 3.2), 400; and \
         Transfer-Encoding: identity together with Content-Length: rwsgi refuses Content-Length \
         and Transfer-Encoding together whatever the coding (RFC 9112 6.3: ought to be handled as an \
         error; it is the classic request-smuggling shape)",
    ),
    ("valid/010", NO_HOST),
    ("valid/011", NO_HOST),
    ("valid/012", NO_HOST),
    ("valid/013", NO_HOST),
    ("valid/014", NO_HOST),
    ("valid/018", NO_HOST),
    ("valid/021", NO_HOST),
    (
        "valid/022",
        "the second request is HTTP/1.1 without Host: RFC 9112 3.2 requires 400 (with Host added, \
         parses as expected)",
    ),
    ("valid/023", NO_HOST),
    ("valid/025", NO_HOST),
    ("valid/025_line", NO_HOST),
    (
        "valid/027",
        "raw non-ASCII byte in the target ('à'): a URI is ASCII, anything else percent-encoded \
         (RFC 3986 2; RFC 9112 3), 400",
    ),
    (
        "valid/028",
        "tests gunicorn's strip_header_spaces option: whitespace between a field name and its colon \
         is refused (RFC 9112 5.1 MUST; gunicorn's default refuses it too, invalid/020)",
    ),
    ("valid/029", NO_HOST),
    ("valid/030", NO_HOST),
    ("valid/031", NO_HOST),
    (
        "valid/031compat",
        "tests gunicorn's permit_unconventional_http_method option: lowercase methods are refused \
         (gunicorn's default refuses them too, invalid/003c)",
    ),
    (
        "valid/031compat2",
        "tests gunicorn's permit_unconventional_http_method option: lowercase methods are refused",
    ),
    ("valid/100", NO_HOST),
    (
        "valid/compat_obs_fold",
        "tests gunicorn's permit_obsolete_folding option: obs-fold is refused (RFC 9112 5.2; \
         gunicorn's default refuses it too, invalid/obs_fold_01)",
    ),
    (
        "valid/compat_obs_fold_huge",
        "tests gunicorn's permit_obsolete_folding option: obs-fold is refused (RFC 9112 5.2)",
    ),
    ("valid/pp_01", "tests gunicorn's proxy_protocol option: rwsgi does not speak the PROXY protocol"),
    ("valid/pp_02", "tests gunicorn's proxy_protocol option: rwsgi does not speak the PROXY protocol"),
    ("valid/pp_04", "tests gunicorn's proxy_protocol option (v2, binary): rwsgi does not speak the PROXY protocol"),
    ("valid/pp_05", "tests gunicorn's proxy_protocol option (v2, binary): rwsgi does not speak the PROXY protocol"),
    (
        "valid/rfc9112_target_authority_connect_01",
        "CONNECT asks for a tunnel, which a WSGI application cannot provide: 501 (RFC 9110 9.1); \
         gunicorn's expected path '443' is an artefact of urlsplit",
    ),
    (
        "valid/rfc9112_target_absolute_userinfo_01",
        "userinfo in an absolute-form target (user:pass@): an http URI with userinfo is invalid \
         (RFC 9110 4.2.4), 400",
    ),
    (
        "valid/rfc9112_target_authority_ipv6_01",
        "CONNECT asks for a tunnel, which a WSGI application cannot provide: 501 (RFC 9110 9.1)",
    ),
    (
        "invalid/006",
        "a request line of 4112 bytes: over gunicorn's default limit_request_line (4094), within \
         rwsgi's default --limit-request-line (8190, Apache's; RFC 9112 3 recommends at least 8000)",
    ),
    (
        "invalid/019",
        "tests gunicorn's forwarded_allow_ips option (conflicting X-Forwarded-* scheme headers): \
         the parser does not interpret X-Forwarded-* headers",
    ),
    (
        "invalid/040",
        "tests gunicorn's header_map=refuse option: rwsgi keeps the head and drops fields with '_' \
         when building the environ (gunicorn's default, header_map=drop)",
    ),
    (
        "invalid/chunked_07",
        "tests gunicorn's header_map=refuse option: 'Transfer_Encoding' is not Transfer-Encoding; \
         rwsgi drops it when building the environ (gunicorn's default)",
    ),
];

/// Invalid cases rwsgi refuses, but not with the status of gunicorn's error class.
const OTHER_REJECTIONS: &[(&str, &str)] = &[
    (
        "invalid/013",
        "obs-fold is refused (400) before the field-size limit gunicorn applies with \
         permit_obsolete_folding on",
    ),
    (
        "invalid/pp_01",
        "not a request line; rwsgi does not speak the PROXY protocol",
    ),
    (
        "invalid/pp_02",
        "not a request line; rwsgi does not speak the PROXY protocol",
    ),
    (
        "invalid/pp_03",
        "not a request line; rwsgi does not speak the PROXY protocol",
    ),
];

/// Valid cases with a known flaw in the data itself.
const QUIRKS: &[(&str, &str)] = &[(
    "valid/099",
    "declares Content-Length: 17914 but carries 8599 body bytes (corpus README): the bytes present are compared",
)];

/// What rwsgi says of an HTTP/1.1 request without Host.
const MISSING_HOST: &str = "missing Host header";

/// The Host value added to the requests of a case refused only for lacking one.
const ADDED_HOST: &str = "corpus.test";

/// gunicorn's corpus leaves Host out of many requests, which rwsgi refuses
/// (RFC 9112 3.2) before looking at what the case is about: its body, its
/// pipelining, its broken chunks. True if that refusal is how the case ends;
/// it is then judged again with [`add_host`], so that what it tests is
/// still tested.
fn refused_for_missing_host(data: &[u8], limits: &Limits) -> bool {
    matches!(read_stream(data, limits).1, End::Rejected(e) if e.reason == MISSING_HOST)
}

/// The stream with a Host field ([`ADDED_HOST`]) after every HTTP/1.1 request line whose
/// field section has no Host. A request line is recognised by its shape at
/// the start of a line; the corpus has no body that looks like one.
fn add_host(data: &[u8]) -> Vec<u8> {
    let field = format!("Host: {ADDED_HOST}\r\n");
    let mut out = Vec::with_capacity(data.len() + field.len());
    let mut rest = data;
    while !rest.is_empty() {
        let line_len = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(rest.len(), |p| p + 2);
        let (line, after) = rest.split_at(line_len);
        out.extend_from_slice(line);
        if is_http11_request_line(line) && !fields_have_host(after) {
            out.extend_from_slice(field.as_bytes());
        }
        rest = after;
    }
    out
}

fn is_http11_request_line(line: &[u8]) -> bool {
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return false;
    };
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    matches!(parts.as_slice(), [method, target, version]
        if !method.is_empty()
            && method.iter().all(|b| b.is_ascii_graphic())
            && !target.is_empty()
            && version.starts_with(b"HTTP/1.")
            && *version != b"HTTP/1.0")
}

/// Whether the field section that follows a request line has a Host line.
fn fields_have_host(after_line: &[u8]) -> bool {
    after_line
        .split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty() && *line != b"\r")
        .any(|line| line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"host:"))
}

fn corpus_dir() -> PathBuf {
    std::env::var_os("RWSGI_GUNICORN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/gunicorn-requests")
        })
}

/// `RWSGI_CORPUS_VERBOSE=1` lists how every invalid case ended.
fn verbose() -> bool {
    std::env::var_os("RWSGI_CORPUS_VERBOSE").is_some_and(|v| v != "0")
}

/// Writes past the test harness's capture, so the counts show in every run.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Turns a corpus `.http` file into wire bytes (the corpus README's rules).
fn decode_http(text: &[u8]) -> Result<Vec<u8>, String> {
    let text: Vec<u8> = text.iter().copied().filter(|&b| b != b'\n').collect();
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            out.push(text[i]);
            i += 1;
            continue;
        }
        match text.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'0') => out.push(0),
            Some(b't') => out.push(b'\t'),
            Some(b'x') => {
                let hex = text.get(i + 2..i + 4).ok_or("truncated \\x escape")?;
                let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
                i += 2;
            }
            other => return Err(format!("unknown escape \\{:?}", other.map(|&b| b as char))),
        }
        i += 2;
    }
    Ok(out)
}

/// gunicorn settings that are rwsgi limits; any other setting is an option
/// rwsgi does not have, and the case runs with rwsgi's behaviour.
fn limits_for(cfg: &Value) -> Limits {
    let mut limits = Limits::default();
    for setting in cfg.as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (setting[0].as_str(), setting[1].as_u64()) else {
            continue;
        };
        // 0 means "the default" in gunicorn's corpus (limit_header_default_01).
        let value = usize::try_from(value).unwrap_or(usize::MAX);
        match name {
            "limit_request_line" if value > 0 => limits.request_line = value,
            "limit_request_field_size" if value > 0 => limits.header_field_size = value,
            "limit_request_fields" if value > 0 => limits.header_fields = value,
            _ => {}
        }
    }
    limits
}

fn setting<'v>(cfg: &'v Value, name: &str) -> Option<&'v Value> {
    cfg.as_array()?.iter().find(|s| s[0] == name).map(|s| &s[1])
}

fn text_or_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => latin1(s),
        Value::Object(o) => latin1(
            o.get("__bytes__")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        ),
        _ => Vec::new(),
    }
}

fn fields(v: &Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                latin1(f[0].as_str().unwrap_or_default()),
                latin1(f[1].as_str().unwrap_or_default()),
            )
        })
        .collect()
}

/// Compares one request with gunicorn's expectation; the first difference, if any.
fn compare(
    got: &Request,
    want: &Value,
    drop_underscores: bool,
    short_body_ok: bool,
) -> Result<(), String> {
    let head = &got.head;
    let check = |what: &str, got: &[u8], want: &[u8]| {
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{what}: got {:?}, want {:?}",
                String::from_utf8_lossy(got),
                String::from_utf8_lossy(want)
            ))
        }
    };
    check(
        "method",
        head.method.as_bytes(),
        &latin1(want["method"].as_str().unwrap_or_default()),
    )?;
    let uri = &want["uri"];
    check(
        "target",
        head.target.as_bytes(),
        &latin1(uri["raw"].as_str().unwrap_or_default()),
    )?;
    check(
        "path",
        head.path.as_bytes(),
        &latin1(uri["path"].as_str().unwrap_or_default()),
    )?;
    check(
        "query",
        head.query.as_bytes(),
        &latin1(uri["query"].as_str().unwrap_or_default()),
    )?;
    let version = match head.version {
        Version::Http10 => "[1,0]",
        Version::Http11 => "[1,1]",
    };
    check(
        "version",
        version.as_bytes(),
        want["version"].to_string().as_bytes(),
    )?;
    // gunicorn's default header_map=drop removes fields with '_'; rwsgi's
    // parser keeps them and the worker drops them from the environ. A Host
    // field this test added is not the case's.
    let added_host =
        |n: &str, v: &[u8]| n.eq_ignore_ascii_case("host") && v == ADDED_HOST.as_bytes();
    let headers: Vec<(Vec<u8>, Vec<u8>)> = head
        .headers
        .iter()
        .filter(|(n, v)| !(drop_underscores && n.contains('_') || added_host(n, v)))
        .map(|(n, v)| (n.to_ascii_uppercase().into_bytes(), v.clone()))
        .collect();
    if headers != fields(&want["headers"]) {
        return Err(format!(
            "headers: got {:?}, want {:?}",
            headers, want["headers"]
        ));
    }
    let want_body = text_or_bytes(&want["body"]);
    if short_body_ok && want_body.starts_with(&got.body) && !got.body.is_empty() {
        // The corpus quirk: compare what the file carries.
    } else {
        check("body", &got.body, &want_body)?;
    }
    if let Some(trailers) = want.get("trailers") {
        let got: Vec<(Vec<u8>, Vec<u8>)> = got
            .trailers
            .iter()
            .map(|(n, v)| (n.to_ascii_uppercase().into_bytes(), v.clone()))
            .collect();
        if got != fields(trailers) {
            return Err(format!("trailers: got {:?}, want {:?}", got, trailers));
        }
    }
    Ok(())
}

fn run_valid(name: &str, data: &[u8], expectation: &Value) -> Result<(), String> {
    let cfg = &expectation["cfg"];
    let wanted: Vec<&Value> = match &expectation["request"] {
        Value::Array(list) => list.iter().collect(),
        one => vec![one],
    };
    let drop_underscores = setting(cfg, "header_map").and_then(Value::as_str) != Some("dangerous");
    let quirk = QUIRKS.iter().any(|(q, _)| *q == name);
    let (got, end) = read_stream(data, &limits_for(cfg));
    for (i, want) in wanted.iter().enumerate() {
        let Some(request) = got.get(i) else {
            return Err(format!("request {} not read: {end:?}", i + 1));
        };
        compare(request, want, drop_underscores, quirk)
            .map_err(|e| format!("request {}: {e}", i + 1))?;
    }
    match end {
        _ if got.len() > wanted.len() => Err(format!(
            "{} requests read, {} expected",
            got.len(),
            wanted.len()
        )),
        End::Clean | End::Closed(_) => Ok(()),
        End::Incomplete(_) if quirk => Ok(()),
        other => Err(format!("after the expected requests: {other:?}")),
    }
}

/// The statuses a gunicorn error class maps to; `None` for an incomplete request.
fn statuses_for(class: &str) -> Option<&'static [u16]> {
    Some(match class {
        "InvalidRequestLine"
        | "InvalidRequestMethod"
        | "InvalidHeader"
        | "InvalidHeaderName"
        | "ObsoleteFolding"
        | "InvalidChunkSize"
        | "InvalidChunkExtension" => &[400],
        "InvalidHTTPVersion" => &[400, 505],
        "LimitRequestLine" => &[414],
        "LimitRequestHeaders" => &[431],
        "UnsupportedTransferCoding" => &[501],
        // The peer stopped sending: the server waits, then closes (header/body timeout).
        "NoMoreData" | "ChunkMissingTerminator" => return None,
        _ => &[],
    })
}

enum Verdict {
    Rejected,
    RejectedOtherwise(String),
    Accepted(String),
}

fn run_invalid(case: &str, data: &[u8], expectation: &Value) -> Verdict {
    let class = expectation["request"]["__error__"]
        .as_str()
        .unwrap_or_default();
    let (_, end) = read_stream(data, &limits_for(&expectation["cfg"]));
    if verbose() {
        report(&format!("  {case}: {class}: {end:?}"));
    }
    match (end, statuses_for(class)) {
        (End::Rejected(e), Some(statuses)) if statuses.contains(&e.status) => Verdict::Rejected,
        (End::Incomplete(_), None) => Verdict::Rejected,
        (End::Rejected(e), _) => Verdict::RejectedOtherwise(format!("{class} refused as {e}")),
        (End::Incomplete(what), _) => {
            Verdict::RejectedOtherwise(format!("{class} left incomplete: {what}"))
        }
        (end, _) => Verdict::Accepted(format!("{class} accepted: {end:?}")),
    }
}

fn cases(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".http")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

fn load(dir: &Path, case: &str) -> (Vec<u8>, Value) {
    let http = std::fs::read(dir.join(format!("{case}.http")))
        .unwrap_or_else(|e| panic!("{case}.http: {e}"));
    let data = decode_http(&http).unwrap_or_else(|e| panic!("{case}.http: {e}"));
    let json = std::fs::read(dir.join(format!("{case}.json")))
        .unwrap_or_else(|e| panic!("{case}.json: {e}"));
    let expectation = serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{case}.json: {e}"));
    (data, expectation)
}

#[test]
fn gunicorn_request_corpus() {
    let root = corpus_dir();
    if !root.is_dir() {
        let msg = format!(
            "gunicorn corpus NOT RUN: no corpus at {} (it lives beside the repository, in ../shared/corpora, or RWSGI_GUNICORN_CORPUS names it)",
            root.display()
        );
        // CI must run every test it claims to: a missing corpus fails there.
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        // Written past the test harness's capture, so it shows in every run
        // (and tests/run says so again at the end).
        report(&format!("WARNING: {msg}"));
        return;
    }
    let listed = |table: &[(&str, &str)], case: &str| table.iter().any(|(c, _)| *c == case);
    let mut failures = Vec::new();
    let mut deviated = Vec::new();
    let (mut valid, mut valid_ok, mut invalid, mut invalid_ok, mut other_status) = (0, 0, 0, 0, 0);
    let mut hostless = 0;

    for name in cases(&root.join("valid")) {
        let case = format!("valid/{name}");
        let (data, expectation) = load(&root.join("valid"), &name);
        valid += 1;
        if refused_for_missing_host(&data, &limits_for(&expectation["cfg"])) {
            // A deviation to be listed; with Host, it must parse as gunicorn expects.
            hostless += 1;
            match run_valid(&case, &add_host(&data), &expectation) {
                Ok(()) if listed(DEVIATIONS, &case) => {
                    deviated.push(format!("{case}: {MISSING_HOST}"))
                }
                Ok(()) => failures.push(format!("{case}: {MISSING_HOST}")),
                Err(e) => failures.push(format!("{case}: with Host added: {e}")),
            }
            continue;
        }
        match run_valid(&case, &data, &expectation) {
            Ok(()) if listed(DEVIATIONS, &case) => failures.push(format!(
                "{case}: listed as a deviation but parses as gunicorn expects"
            )),
            Ok(()) => valid_ok += 1,
            Err(e) if listed(DEVIATIONS, &case) => deviated.push(format!("{case}: {e}")),
            Err(e) => failures.push(format!("{case}: {e}")),
        }
    }
    for name in cases(&root.join("invalid")) {
        let case = format!("invalid/{name}");
        let (mut data, expectation) = load(&root.join("invalid"), &name);
        invalid += 1;
        if refused_for_missing_host(&data, &limits_for(&expectation["cfg"])) {
            // Refused, but maybe not for what the case is about: judge it with Host.
            hostless += 1;
            data = add_host(&data);
        }
        match run_invalid(&case, &data, &expectation) {
            Verdict::Rejected if listed(DEVIATIONS, &case) || listed(OTHER_REJECTIONS, &case) => {
                failures.push(format!(
                    "{case}: listed as an exception but refused as gunicorn expects"
                ))
            }
            Verdict::Rejected => invalid_ok += 1,
            Verdict::RejectedOtherwise(_) if listed(OTHER_REJECTIONS, &case) => {
                invalid_ok += 1;
                other_status += 1;
            }
            Verdict::Accepted(e) if listed(DEVIATIONS, &case) => {
                deviated.push(format!("{case}: {e}"))
            }
            Verdict::RejectedOtherwise(e) | Verdict::Accepted(e) => {
                failures.push(format!("{case}: {e}"))
            }
        }
    }
    // However the bytes arrive, a connection reaches the same verdict.
    for dir in ["valid", "invalid"] {
        for name in cases(&root.join(dir)) {
            let (data, expectation) = load(&root.join(dir), &name);
            let limits = limits_for(&expectation["cfg"]);
            let whole = read_stream(&data, &limits);
            // Byte by byte re-parses the head after every byte: only for small cases.
            let steps: &[usize] = if data.len() <= 4096 {
                &[1, 7, 512]
            } else {
                &[509, 4096]
            };
            for &step in steps {
                let fed = read_stream_fed(&data, &limits, step);
                if fed != whole {
                    failures.push(format!(
                        "{dir}/{name}: fed {step} bytes at a time: {:?}, whole: {:?}",
                        fed.1, whole.1
                    ));
                }
            }
        }
    }
    for (case, _) in DEVIATIONS.iter().chain(OTHER_REJECTIONS).chain(QUIRKS) {
        let (dir, name) = case.split_once('/').unwrap_or_default();
        if !root.join(dir).join(format!("{name}.http")).is_file() {
            failures.push(format!("{case}: listed but not in the corpus"));
        }
    }

    report(&format!(
        "gunicorn corpus: valid {valid_ok}/{valid} parsed as expected, invalid {invalid_ok}/{invalid} rejected \
         ({other_status} with another status than gunicorn's class), {} deliberate deviations; \
         {hostless} cases without Host judged with one added",
        deviated.len()
    ));
    for (case, why) in DEVIATIONS {
        report(&format!("  deviation {case}: {why}"));
    }
    assert!(
        failures.is_empty(),
        "gunicorn corpus failures:\n{}",
        failures.join("\n")
    );
    assert_eq!(valid_ok + invalid_ok + deviated.len(), valid + invalid);
}
