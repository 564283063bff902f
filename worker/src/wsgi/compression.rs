//! `--compress-responses` for the application's responses.
//!
//! Which response is compressed is decided on its status and headers
//! ([`Compression::review`], when `start_response` is called) and its
//! length ([`Compression::start`], at its first body bytes): a textual
//! `Content-Type`, no `Content-Encoding` of the application's, no
//! `Cache-Control: no-transform`, not a 204, 206 or 304, not a HEAD, and
//! not known to be tiny. `Vary: Accept-Encoding` goes on every response of
//! a compressible type, compressed or not, so a cache keeps the variants
//! apart. A compressed response loses its `Content-Length` (the server
//! frames it: with the compressed length when the whole body was given at
//! once, else chunked), gains `Content-Encoding`, and its `ETag` is
//! suffixed as Apache's mod_deflate does.

use rwsgi_http::coding::{self, Coding, Encoder};
use rwsgi_http::RequestHead;
use std::io;

/// The compression state of one response.
pub struct Compression {
    /// What the client accepts best (`None`: a HEAD, or nothing accepted).
    offered: Option<Coding>,
    /// The coding for the current status and headers, until the body
    /// starts: then either `encoder` is made, or it is dropped.
    candidate: Option<Coding>,
    encoder: Option<Encoder>,
    /// The application's Content-Length, which its body may not exceed.
    limit: Option<u64>,
    /// Body bytes the application gave.
    raw: u64,
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What [`Compression::review`] decides for a status and header list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Review {
    /// Add `Accept-Encoding` to `Vary`.
    vary: bool,
    /// The response may be compressed (if the client accepts a coding).
    may_compress: bool,
}

fn review(code: u16, headers: &[(String, String)]) -> Review {
    let none = Review {
        vary: false,
        may_compress: false,
    };
    if !header(headers, "content-type").is_some_and(coding::compressible) {
        return none;
    }
    // Encoded by the application already, or forbidden to transform (RFC
    // 9111 5.2.2.6): left exactly as it is.
    let encoded = header(headers, "content-encoding")
        .is_some_and(|v| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("identity"));
    let no_transform = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("cache-control")
            && v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
    });
    if encoded || no_transform {
        return none;
    }
    Review {
        vary: true,
        may_compress: !matches!(code, 204 | 206 | 304) && (200..=599).contains(&code),
    }
}

impl Compression {
    /// The state for a request; `None` when compression is off.
    pub fn for_request(enabled: bool, head: &RequestHead) -> Option<Box<Compression>> {
        if !enabled {
            return None;
        }
        let offered = if head.method == "HEAD" {
            None
        } else {
            head.header("accept-encoding").and_then(coding::negotiate)
        };
        Some(Box::new(Compression {
            offered,
            candidate: None,
            encoder: None,
            limit: None,
            raw: 0,
        }))
    }

    /// At `start_response`: decides on the (reviewed) headers, and adds
    /// `Accept-Encoding` to `Vary` where the response's type is compressed.
    pub fn review(&mut self, code: u16, headers: &mut Vec<(String, String)>) {
        let r = review(code, headers);
        self.candidate = self.offered.filter(|_| r.may_compress);
        if !r.vary {
            return;
        }
        let existing = headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case("vary"));
        match existing {
            Some(i) => {
                if let Some(v) = coding::vary_with_accept_encoding(Some(&headers[i].1)) {
                    headers[i].1 = v;
                }
            }
            None => headers.push(("Vary".to_owned(), "Accept-Encoding".to_owned())),
        }
    }

    /// Whether the body goes through the encoder.
    pub fn active(&self) -> bool {
        self.encoder.is_some()
    }

    /// At the first body bytes, before the head is written: starts the
    /// encoder unless the body is known to be tiny, and rewrites the
    /// headers for the compressed variant. `app_length` is the
    /// application's Content-Length, `known` the length the server knows.
    pub fn start(
        &mut self,
        headers: &mut Vec<(String, String)>,
        app_length: Option<u64>,
        known: Option<u64>,
    ) -> bool {
        let Some(coding) = self.candidate.take() else {
            return false;
        };
        if app_length.or(known).is_some_and(|n| n < coding::MIN_LENGTH) {
            return false;
        }
        let Ok(encoder) = Encoder::new(coding) else {
            return false;
        };
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
        for (name, value) in headers.iter_mut() {
            if name.eq_ignore_ascii_case("etag") {
                *value = coding::variant_etag(value, coding);
            }
        }
        headers.push(("Content-Encoding".to_owned(), coding.token().to_owned()));
        self.limit = app_length;
        self.encoder = Some(encoder);
        true
    }

    /// Compresses a block of the application's body. Returns whether the
    /// block went beyond the application's Content-Length (the excess is
    /// dropped, as it is without compression).
    pub fn feed(&mut self, data: &[u8]) -> io::Result<bool> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(false);
        };
        let room = self
            .limit
            .map_or(data.len() as u64, |n| n.saturating_sub(self.raw));
        let take = (data.len() as u64).min(room) as usize;
        encoder.write(&data[..take])?;
        self.raw += take as u64;
        Ok(take < data.len())
    }

    /// Compressed bytes waiting to be sent, once there are at least
    /// `enough` of them (until then the whole body may still come before
    /// the head goes out, and be framed by its compressed length).
    pub fn waiting(&mut self, enough: usize) -> Vec<u8> {
        match self.encoder.as_mut() {
            Some(e) if e.produced() >= enough => e.take(),
            _ => Vec::new(),
        }
    }

    /// Everything given so far, made decodable (a streamed block).
    pub fn flush(&mut self) -> io::Result<Vec<u8>> {
        match self.encoder.as_mut() {
            Some(e) => {
                e.flush()?;
                Ok(e.take())
            }
            None => Ok(Vec::new()),
        }
    }

    /// The application gave less than its Content-Length: the response
    /// must not be framed as complete.
    pub fn short(&self) -> bool {
        self.limit.is_some_and(|n| self.raw < n)
    }

    /// Ends the compressed stream: the rest of its bytes. A short body is
    /// only flushed, so its stream stays unterminated for the client too.
    pub fn finish(&mut self) -> io::Result<Vec<u8>> {
        if self.short() {
            return self.flush();
        }
        match self.encoder.take() {
            Some(e) => e.finish(),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn state(offered: Option<Coding>) -> Compression {
        Compression {
            offered,
            candidate: None,
            encoder: None,
            limit: None,
            raw: 0,
        }
    }

    #[test]
    fn textual_responses_may_be_compressed_and_always_vary() {
        let html = h(&[("Content-Type", "text/html; charset=utf-8")]);
        assert_eq!(
            review(200, &html),
            Review {
                vary: true,
                may_compress: true
            }
        );
        assert!(review(404, &html).may_compress);
        for code in [204, 206, 304] {
            let r = review(code, &html);
            assert!(r.vary && !r.may_compress, "{code}");
        }
    }

    #[test]
    fn other_types_and_encoded_or_untransformable_bodies_are_left_alone() {
        let none = Review {
            vary: false,
            may_compress: false,
        };
        assert_eq!(review(200, &h(&[("Content-Type", "image/png")])), none);
        assert_eq!(review(200, &h(&[])), none);
        assert_eq!(
            review(
                200,
                &h(&[("Content-Type", "text/css"), ("Content-Encoding", "gzip")])
            ),
            none
        );
        assert_eq!(
            review(
                200,
                &h(&[
                    ("Content-Type", "application/json"),
                    ("Cache-Control", "private, no-transform")
                ])
            ),
            none
        );
        assert!(
            review(
                200,
                &h(&[
                    ("Content-Type", "text/css"),
                    ("Content-Encoding", "identity")
                ])
            )
            .may_compress
        );
    }

    #[test]
    fn vary_is_added_or_extended_once() {
        let mut c = state(Some(Coding::Gzip));
        let mut headers = h(&[("Content-Type", "text/plain"), ("Vary", "Cookie")]);
        c.review(200, &mut headers);
        assert_eq!(headers[1].1, "Cookie, Accept-Encoding");
        c.review(200, &mut headers);
        assert_eq!(headers[1].1, "Cookie, Accept-Encoding");
        let mut headers = h(&[("Content-Type", "text/plain")]);
        state(None).review(200, &mut headers);
        assert_eq!(
            headers[1],
            ("Vary".to_owned(), "Accept-Encoding".to_owned())
        );
    }

    #[test]
    fn the_compressed_variant_loses_its_length_and_gets_its_own_tag() {
        let mut c = state(Some(Coding::Br));
        let mut headers = h(&[
            ("Content-Type", "text/plain"),
            ("Content-Length", "1000"),
            ("ETag", "\"v1\""),
        ]);
        c.review(200, &mut headers);
        assert!(c.start(&mut headers, Some(1000), None));
        assert!(c.active());
        assert_eq!(
            headers,
            h(&[
                ("Content-Type", "text/plain"),
                ("ETag", "\"v1-br\""),
                ("Vary", "Accept-Encoding"),
                ("Content-Encoding", "br"),
            ])
        );
    }

    #[test]
    fn tiny_bodies_and_clients_that_accept_nothing_get_the_body_as_it_is() {
        let mut c = state(Some(Coding::Gzip));
        let mut headers = h(&[("Content-Type", "text/plain")]);
        c.review(200, &mut headers);
        assert!(!c.start(&mut headers, None, Some(12)));
        assert!(!c.active());
        let mut c = state(None);
        c.review(200, &mut headers);
        assert!(!c.start(&mut headers, None, None));
        // Decided once: a second try after declining does not start it.
        let mut c = state(Some(Coding::Gzip));
        c.review(200, &mut headers);
        assert!(!c.start(&mut headers, Some(10), None));
        assert!(!c.start(&mut headers, Some(10_000), None));
    }

    #[test]
    fn no_more_than_the_applications_length_and_a_short_body_stays_unterminated() {
        let mut c = state(Some(Coding::Gzip));
        let mut headers = h(&[("Content-Type", "text/plain"), ("Content-Length", "300")]);
        c.review(200, &mut headers);
        assert!(c.start(&mut headers, Some(300), None));
        assert!(!c.feed(&[b'a'; 200]).expect("feed"));
        assert!(c.short());
        assert!(c.feed(&[b'a'; 200]).expect("feed"), "100 bytes too many");
        assert!(!c.short());
        let mut wire = c.waiting(0);
        wire.extend(c.finish().expect("finish"));
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&wire[..]), &mut out)
            .expect("a complete stream");
        assert_eq!(out, vec![b'a'; 300]);

        let mut c = state(Some(Coding::Gzip));
        let mut headers = h(&[("Content-Type", "text/plain"), ("Content-Length", "300")]);
        c.review(200, &mut headers);
        assert!(c.start(&mut headers, Some(300), None));
        c.feed(&[b'a'; 100]).expect("feed");
        let wire = c.finish().expect("finish");
        // A gzip member is complete only with its trailer: CRC-32 and size.
        let mut crc = flate2::Crc::new();
        crc.update(&[b'a'; 100]);
        let mut trailer = crc.sum().to_le_bytes().to_vec();
        trailer.extend(100u32.to_le_bytes());
        assert!(
            !wire.ends_with(&trailer),
            "a short body never decodes as whole"
        );
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&wire[..]), &mut out);
        assert_eq!(out, vec![b'a'; 100], "what was given is still readable");
    }
}
