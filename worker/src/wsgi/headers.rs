//! What an application's `start_response` may say, decided on plain
//! strings without Python.
//!
//! The server owns the framing of the response and the connection: the
//! application's Content-Length is the only say it has, so it must be one
//! unambiguous number, sent as the server parsed it (two lengths, or one a
//! proxy in front would read differently, desynchronise the connection).
//! Transfer-Encoding is refused: an application that sets it has encoded
//! its body itself (which the server would frame again) or copied it from
//! elsewhere; PEP 3333 leaves transfer-codings to the server. The other
//! hop-by-hop headers describe the connection and are dropped, as gunicorn
//! does (`Connection: close` is honoured: the connection closes after the
//! response).

/// Why `start_response` refuses a status or a header list: the text of the
/// exception the application sees, naming the header at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "invalid status {0:?}: expected a three-digit code, a space and a reason, like \"200 OK\""
    )]
    Status(String),
    #[error("invalid status {0:?}: a 1xx status cannot be the response to a request")]
    Interim(String),
    #[error("invalid status {0:?}: a status code is from 200 to 599")]
    OutOfRange(String),
    #[error("invalid response header name {0:?}")]
    Name(String),
    #[error(
        "invalid value for response header {0}: control characters (CR, LF …) or non-latin-1 text"
    )]
    Value(String),
    #[error(
        "invalid response header Content-Length: {0:?} is not a length in bytes (digits only)"
    )]
    Length(String),
    #[error("invalid response header Content-Length: given twice ({0:?} and {1:?}); a response has one length")]
    LengthTwice(String, String),
    #[error("invalid response header Transfer-Encoding: {0:?}: the server frames the response (PEP 3333: no transfer-codings from the application); remove it and send the body as it is")]
    TransferEncoding(String),
}

/// A header list fit to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reviewed {
    /// The headers to send, in the application's order; a Content-Length
    /// has the value the server parsed (`007` goes out as `7`).
    pub headers: Vec<(String, String)>,
    /// The application's Content-Length.
    pub length: Option<u64>,
    /// The application asked for `Connection: close`.
    pub close: bool,
    pub has_date: bool,
    pub has_server: bool,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value must be latin-1 text without control characters (so no CR/LF).
fn valid_value(s: &str) -> bool {
    s.chars()
        .all(|c| (c as u32) <= 0xff && (c == '\t' || (c >= ' ' && c != '\u{7f}')))
}

/// Connection-level headers (RFC 9110 7.6.1), which the server sets itself.
/// Transfer-Encoding is not among them: it is refused, not dropped.
fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// RFC 9110 8.6: `Content-Length = 1*DIGIT`, around which a field value
/// may have spaces or tabs. No sign, no second value, no overflow.
fn content_length(value: &str) -> Option<u64> {
    let digits = value.trim_matches([' ', '\t']);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The code of a status line such as `200 OK`.
pub fn status(status: &str) -> Result<u16, Refused> {
    let bytes = status.as_bytes();
    let ok = bytes.len() >= 4
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && bytes[3] == b' '
        && valid_value(status);
    let code: u16 = match status.get(..3).map(str::parse) {
        Some(Ok(code)) if ok => code,
        _ => return Err(Refused::Status(status.to_owned())),
    };
    match code {
        // An interim response cannot end a request; the server sends
        // 100 Continue itself when the application reads the body.
        100..=199 => Err(Refused::Interim(status.to_owned())),
        200..=599 => Ok(code),
        _ => Err(Refused::OutOfRange(status.to_owned())),
    }
}

/// Reviews the headers of a response with status `code` (already checked
/// by [`status`]): the first header at fault refuses the whole list.
pub fn review(code: u16, headers: Vec<(String, String)>) -> Result<Reviewed, Refused> {
    let mut out = Reviewed {
        headers: Vec::with_capacity(headers.len()),
        ..Reviewed::default()
    };
    let mut length_given: Option<String> = None;
    for (name, value) in headers {
        if !is_token(&name) {
            return Err(Refused::Name(name));
        }
        if !valid_value(&value) {
            return Err(Refused::Value(name));
        }
        if name.eq_ignore_ascii_case("content-length") {
            if let Some(first) = length_given {
                return Err(Refused::LengthTwice(first, value));
            }
            let n = content_length(&value).ok_or_else(|| Refused::Length(value.clone()))?;
            length_given = Some(value);
            if code == 204 {
                // RFC 9110 8.6: a server must not send Content-Length in a 204.
                continue;
            }
            out.length = Some(n);
            out.headers
                .push((name, itoa::Buffer::new().format(n).to_owned()));
            continue;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Refused::TransferEncoding(value));
        }
        if name.eq_ignore_ascii_case("connection") {
            if value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                out.close = true;
            }
            continue;
        }
        if is_hop_by_hop(&name) {
            continue;
        }
        if name.eq_ignore_ascii_case("date") {
            out.has_date = true;
        } else if name.eq_ignore_ascii_case("server") {
            out.has_server = true;
        }
        out.headers.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn reviewed(code: u16, pairs: &[(&str, &str)]) -> Result<Reviewed, Refused> {
        review(code, list(pairs))
    }

    #[test]
    fn status_lines() {
        assert_eq!(status("200 OK"), Ok(200));
        assert_eq!(status("599 Custom"), Ok(599));
        assert_eq!(status("404 "), Ok(404));
        for bad in [
            "200",
            "20 OK",
            "2000 OK",
            "200OK",
            "+20 OK",
            "200\tOK",
            "200 OK\r\nX: y",
            "",
        ] {
            assert_eq!(status(bad), Err(Refused::Status(bad.to_owned())), "{bad:?}");
        }
        assert_eq!(
            status("103 Early Hints"),
            Err(Refused::Interim("103 Early Hints".into()))
        );
        assert_eq!(
            status("600 Nope"),
            Err(Refused::OutOfRange("600 Nope".into()))
        );
        assert_eq!(
            status("099 Nope"),
            Err(Refused::OutOfRange("099 Nope".into()))
        );
        // Not ASCII digits, though `char::is_numeric` says they are.
        assert!(status("２００ OK").is_err());
    }

    #[test]
    fn one_content_length_of_digits_only() {
        let r = reviewed(200, &[("Content-Length", "5")]).expect("valid");
        assert_eq!(r.length, Some(5));
        assert_eq!(r.headers, list(&[("Content-Length", "5")]));
        // Spaces around a field value are not part of it; the value sent is the one parsed.
        let r = reviewed(200, &[("content-length", " \t007 ")]).expect("valid");
        assert_eq!(
            (r.length, r.headers),
            (Some(7), list(&[("content-length", "7")]))
        );
        let max = u64::MAX.to_string();
        assert_eq!(
            reviewed(200, &[("Content-Length", &max)])
                .expect("valid")
                .length,
            Some(u64::MAX)
        );

        for bad in [
            "+5",
            "-5",
            "5 5",
            "5,5",
            "",
            " ",
            "0x10",
            "5.0",
            "1_000",
            "²",
            "18446744073709551616",
        ] {
            assert_eq!(
                reviewed(200, &[("Content-Length", bad)]),
                Err(Refused::Length(bad.to_owned())),
                "{bad:?}"
            );
        }
        // Two, whatever their values: a proxy in front may read the first.
        assert_eq!(
            reviewed(
                200,
                &[
                    ("Content-Length", "100"),
                    ("X", "y"),
                    ("content-length", "5")
                ]
            ),
            Err(Refused::LengthTwice("100".into(), "5".into()))
        );
        assert_eq!(
            reviewed(200, &[("Content-Length", "5"), ("Content-Length", "5")]),
            Err(Refused::LengthTwice("5".into(), "5".into()))
        );
    }

    #[test]
    fn a_204_sends_no_length_but_a_bad_one_is_still_refused() {
        let r = reviewed(204, &[("Content-Length", "0"), ("X", "y")]).expect("valid");
        assert_eq!((r.length, r.headers), (None, list(&[("X", "y")])));
        assert!(reviewed(204, &[("Content-Length", "+0")]).is_err());
        // A 304 keeps it: it describes the representation, not this message.
        assert_eq!(
            reviewed(304, &[("Content-Length", "9")])
                .expect("valid")
                .length,
            Some(9)
        );
    }

    #[test]
    fn the_server_owns_framing_and_the_connection() {
        assert_eq!(
            reviewed(200, &[("Transfer-Encoding", "chunked")]),
            Err(Refused::TransferEncoding("chunked".into()))
        );
        assert!(reviewed(200, &[("transfer-encoding", "identity")]).is_err());
        let r = reviewed(
            200,
            &[
                ("Connection", "keep-alive, Close"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Connection", "keep-alive"),
                ("TE", "trailers"),
                ("Trailer", "Expires"),
                ("Upgrade", "websocket"),
                ("Content-Type", "text/plain"),
            ],
        )
        .expect("valid");
        assert!(r.close);
        assert_eq!(r.headers, list(&[("Content-Type", "text/plain")]));
        assert!(
            !reviewed(200, &[("Connection", "keep-alive")])
                .expect("valid")
                .close
        );
    }

    #[test]
    fn names_and_values_that_could_split_the_response() {
        assert_eq!(
            reviewed(200, &[("X Y", "v")]),
            Err(Refused::Name("X Y".into()))
        );
        assert_eq!(
            reviewed(200, &[("", "v")]),
            Err(Refused::Name(String::new()))
        );
        assert_eq!(
            reviewed(200, &[("X:", "v")]),
            Err(Refused::Name("X:".into()))
        );
        for bad in ["a\r\nSet-Cookie: x=1", "a\nb", "a\0", "\u{7f}", "€"] {
            assert_eq!(
                reviewed(200, &[("X", bad)]),
                Err(Refused::Value("X".into())),
                "{bad:?}"
            );
        }
        let r = reviewed(
            200,
            &[("X", "tab\tand latin-1 é"), ("Date", "d"), ("server", "s")],
        )
        .expect("valid");
        assert!(r.has_date && r.has_server);
    }

    #[test]
    fn the_error_names_the_header() {
        let e = reviewed(200, &[("Content-Length", "100"), ("Content-Length", "5")])
            .expect_err("refused");
        assert!(e.to_string().contains("Content-Length"), "{e}");
        let e = reviewed(200, &[("Transfer-Encoding", "chunked")]).expect_err("refused");
        assert!(e.to_string().contains("Transfer-Encoding"), "{e}");
    }
}
