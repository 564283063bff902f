//! rwsgi's own parser corpus: `shared/http/tests/corpus/` (see its README).
//!
//! Every case is read whole, and again fed in pieces (one byte at a time for
//! small cases): a connection must reach the same verdict however the bytes
//! arrive.

#![forbid(unsafe_code)]

mod common;

use common::{latin1, read_stream, read_stream_fed, End, Request};
use rwsgi_http::{BodyKind, Version};
use rwsgi_shared::config::Limits;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// What a case's file name (and its sidecar) says must happen.
enum Expect {
    Accept(Value),
    Reject(u16, String),
    Incomplete(String),
}

fn expectation(dir: &Path, name: &str) -> Result<Expect, String> {
    let sidecar = |ext: &str| {
        std::fs::read_to_string(dir.join(format!("{name}.{ext}")))
            .map_err(|e| format!("{name}.{ext}: {e}"))
    };
    if name.starts_with("accept-") {
        let json =
            serde_json::from_str(&sidecar("json")?).map_err(|e| format!("{name}.json: {e}"))?;
        Ok(Expect::Accept(json))
    } else if let Some(rest) = name.strip_prefix("reject-") {
        let status = rest
            .split('-')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or(format!("{name}: no status after reject-"))?;
        Ok(Expect::Reject(status, sidecar("reason")?.trim().to_owned()))
    } else if name.starts_with("incomplete-") {
        Ok(Expect::Incomplete(sidecar("reason")?.trim().to_owned()))
    } else {
        Err(format!("{name}: neither accept-, reject- nor incomplete-"))
    }
}

fn compare(got: &Request, want: &Value) -> Result<(), String> {
    let head = &got.head;
    let text = |key: &str| latin1(want[key].as_str().unwrap_or_default());
    let check = |what: &str, got: &[u8], want: &[u8]| {
        if got == want {
            Ok(())
        } else {
            let show = |b: &[u8]| {
                let s = String::from_utf8_lossy(b);
                if s.len() > 80 {
                    format!("{}… ({} bytes)", &s[..s.floor_char_boundary(80)], b.len())
                } else {
                    format!("{s:?}")
                }
            };
            Err(format!("{what}: got {}, want {}", show(got), show(want)))
        }
    };
    check("method", head.method.as_bytes(), &text("method"))?;
    check("target", head.target.as_bytes(), &text("target"))?;
    check("path", head.path.as_bytes(), &text("path"))?;
    check("query", head.query.as_bytes(), &text("query"))?;
    let version = match head.version {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
    };
    check("version", version.as_bytes(), &text("version"))?;
    let flag = |b: bool| if b { "true" } else { "false" };
    check(
        "keep_alive",
        flag(head.keep_alive).as_bytes(),
        want["keep_alive"].to_string().as_bytes(),
    )?;
    check(
        "expect_continue",
        flag(head.expect_continue).as_bytes(),
        want["expect_continue"].to_string().as_bytes(),
    )?;
    let kind = match head.body {
        BodyKind::Empty => "empty",
        BodyKind::Length(_) => "length",
        BodyKind::Chunked => "chunked",
    };
    check("body_kind", kind.as_bytes(), &text("body_kind"))?;
    check("body", &got.body, &text("body"))?;
    let fields = |v: &Value| -> Vec<(Vec<u8>, Vec<u8>)> {
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
    };
    let as_bytes = |list: &[(String, Vec<u8>)]| -> Vec<(Vec<u8>, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| (n.clone().into_bytes(), v.clone()))
            .collect()
    };
    // The absolute-form authority, else Host; `null` for neither.
    if let Some(host) = want.get("effective_host") {
        let want_host = host.as_str().map(latin1);
        if head.effective_host() != want_host.as_deref() {
            return Err(format!(
                "effective_host: got {:?}, want {host}",
                head.effective_host().map(String::from_utf8_lossy)
            ));
        }
    }
    if let Some(headers) = want.get("headers") {
        if as_bytes(&head.headers) != fields(headers) {
            return Err(format!("headers: got {:?}, want {headers}", head.headers));
        }
    }
    if let Some(trailers) = want.get("trailers") {
        if as_bytes(&got.trailers) != fields(trailers) {
            return Err(format!("trailers: got {:?}, want {trailers}", got.trailers));
        }
    }
    Ok(())
}

fn check_case(expect: &Expect, requests: &[Request], end: &End) -> Result<(), String> {
    match expect {
        Expect::Accept(want) => {
            let wanted = want["requests"].as_array().ok_or("no \"requests\" list")?;
            if requests.len() != wanted.len() {
                return Err(format!(
                    "{} requests read, {} expected; ended {end:?}",
                    requests.len(),
                    wanted.len()
                ));
            }
            for (i, (got, want)) in requests.iter().zip(wanted).enumerate() {
                compare(got, want).map_err(|e| format!("request {}: {e}", i + 1))?;
            }
            match (want["end"].as_str(), end) {
                (Some("clean"), End::Clean) | (Some("closed"), End::Closed(_)) => Ok(()),
                (wanted, got) => Err(format!("ended {got:?}, want {wanted:?}")),
            }
        }
        Expect::Reject(status, reason) => match end {
            End::Rejected(e) if e.status == *status && e.reason.contains(reason.as_str()) => Ok(()),
            other => Err(format!(
                "ended {other:?}, want {status} with a reason containing {reason:?}"
            )),
        },
        Expect::Incomplete(what) => match end {
            End::Incomplete(w) if w == what => Ok(()),
            other => Err(format!("ended {other:?}, want incomplete {what:?}")),
        },
    }
}

#[test]
fn own_corpus() {
    let dir = corpus_dir();
    let limits = Limits::default();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
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
    assert!(!names.is_empty(), "no cases in {}", dir.display());

    let mut failures = Vec::new();
    let (mut accepted, mut rejected, mut incomplete) = (0, 0, 0);
    for name in &names {
        let data = std::fs::read(dir.join(format!("{name}.http")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expect = match expectation(&dir, name) {
            Ok(expect) => expect,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let (requests, end) = read_stream(&data, &limits);
        if let Err(e) = check_case(&expect, &requests, &end) {
            failures.push(format!("{name}: {e}"));
            continue;
        }
        // Byte by byte re-parses the head after every byte: keep that for small cases.
        let steps: &[usize] = if data.len() <= 4096 {
            &[1, 2, 7, 64]
        } else {
            &[509, 4096]
        };
        for &step in steps {
            let (fed_requests, fed_end) = read_stream_fed(&data, &limits, step);
            if (&fed_requests, &fed_end) != (&requests, &end) {
                failures.push(format!(
                    "{name}: fed {step} bytes at a time ended {fed_end:?}, whole {end:?}"
                ));
            }
        }
        match expect {
            Expect::Accept(_) => accepted += 1,
            Expect::Reject(..) => rejected += 1,
            Expect::Incomplete(_) => incomplete += 1,
        }
    }
    // Past the harness's capture, so the counts show in every run.
    let _ = writeln!(
        std::io::stderr(),
        "own corpus: {} cases: {accepted} accepted, {rejected} rejected, {incomplete} incomplete, {} failed",
        names.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "own corpus failures:\n{}",
        failures.join("\n")
    );
}
