//! gunicorn's public request corpus (MIT), run through rwsgi's parser.
//!
//! The corpus is not in this repository: it lives beside it in
//! `../shared/corpora/gunicorn-requests/` (see its README). Without it the
//! test says so and passes.
//!
//! Every valid case must parse to exactly what gunicorn's expectation says;
//! every invalid case must be refused with the status its error class maps
//! to. The only exceptions are listed below with their reasons, and the test
//! fails on any case that deviates without being listed, or is listed
//! without deviating.

mod common;

use common::{latin1, read_stream, read_stream_fed, End, Request};
use rwsgi_shared::config::Limits;
use rwsgi_shared::http::Version;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Cases where rwsgi deliberately does the opposite of what gunicorn expects.
const DEVIATIONS: &[(&str, &str)] = &[
    (
        "valid/009",
        "Transfer-Encoding: identity together with Content-Length: rwsgi refuses Content-Length \
         and Transfer-Encoding together whatever the coding (RFC 9112 6.3: ought to be handled as an \
         error; it is the classic request-smuggling shape)",
    ),
    (
        "valid/028",
        "tests gunicorn's strip_header_spaces option: whitespace between a field name and its colon \
         is refused (RFC 9112 5.1 MUST; gunicorn's default refuses it too, invalid/020)",
    ),
    (
        "valid/031compat",
        "tests gunicorn's permit_unconventional_http_method option: lowercase methods are refused \
         (gunicorn's default refuses them too, invalid/003c)",
    ),
    (
        "valid/031compat2",
        "tests gunicorn's permit_unconventional_http_method option: lowercase methods are refused",
    ),
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
        "valid/rfc9112_target_authority_ipv6_01",
        "CONNECT asks for a tunnel, which a WSGI application cannot provide: 501 (RFC 9110 9.1)",
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

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/gunicorn-requests")
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
    // parser keeps them and the worker drops them from the environ.
    let headers: Vec<(Vec<u8>, Vec<u8>)> = head
        .headers
        .iter()
        .filter(|(n, _)| !(drop_underscores && n.contains('_')))
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
        report(&format!(
            "gunicorn corpus: skipped: corpus not found at {}",
            root.display()
        ));
        return;
    }
    let listed = |table: &[(&str, &str)], case: &str| table.iter().any(|(c, _)| *c == case);
    let mut failures = Vec::new();
    let mut deviated = Vec::new();
    let (mut valid, mut valid_ok, mut invalid, mut invalid_ok, mut other_status) = (0, 0, 0, 0, 0);

    for name in cases(&root.join("valid")) {
        let case = format!("valid/{name}");
        let (data, expectation) = load(&root.join("valid"), &name);
        valid += 1;
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
        let (data, expectation) = load(&root.join("invalid"), &name);
        invalid += 1;
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
         ({other_status} with another status than gunicorn's class), {} deliberate deviations",
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
