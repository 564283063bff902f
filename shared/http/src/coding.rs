//! Content codings (RFC 9110 8.4.1): which one a client accepts, which
//! responses are worth compressing, and the encoders.
//!
//! What is compressed follows mod_wsgi-express's `--compress-responses`,
//! which sets Apache's mod_deflate on the textual types of [`COMPRESSIBLE`];
//! rwsgi adds Brotli and zstd beside gzip and picks one by the client's
//! q-values. Levels are chosen for throughput (a response is compressed
//! while the client waits): gzip 5, Brotli 4, zstd 3, each within a few
//! per cent of its format's default ratio on text at a fraction of the CPU.

use std::io::{self, Write as _};

/// A content coding rwsgi can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Zstd,
    Br,
    Gzip,
}

/// Server preference when the client's q-values tie: the densest and the
/// cheapest first (browsers accept all three).
pub const PREFERENCE: [Coding; 3] = [Coding::Zstd, Coding::Br, Coding::Gzip];

/// Responses smaller than this are sent as they are: the coding's framing
/// and the lost `Content-Length` would cost more than it saves.
pub const MIN_LENGTH: u64 = 256;

/// The media types compressed (mod_wsgi-express's `AddOutputFilterByType
/// DEFLATE` list, with XML and SVG).
pub const COMPRESSIBLE: [&str; 10] = [
    "text/plain",
    "text/html",
    "text/xml",
    "text/css",
    "text/javascript",
    "application/xhtml+xml",
    "application/javascript",
    "application/json",
    "application/xml",
    "image/svg+xml",
];

const GZIP_LEVEL: u32 = 5;
const BROTLI_QUALITY: u32 = 4;
const BROTLI_WINDOW: u32 = 22;
const ZSTD_LEVEL: i32 = 3;

impl Coding {
    /// The token of `Content-Encoding` and `Accept-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The extension of a precompressed sibling file (`app.js.br`).
    pub fn extension(self) -> &'static str {
        match self {
            Coding::Zstd => ".zst",
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
        }
    }

    fn is(self, token: &str) -> bool {
        token.eq_ignore_ascii_case(self.token())
            || (self == Coding::Gzip && token.eq_ignore_ascii_case("x-gzip"))
    }
}

/// A `qvalue` (RFC 9110 12.4.2) in thousandths; `None` if malformed.
fn qvalue(s: &str) -> Option<u16> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The weight `accept` gives `coding`: its own entry, else `*`, else 0.
/// A malformed weight counts as 0 (the coding is not sent on a guess).
fn weight(accept: &str, coding: Coding) -> u16 {
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            if key.trim().eq_ignore_ascii_case("q") {
                q = qvalue(value);
            }
        }
        let q = q.unwrap_or(0);
        if coding.is(name) {
            return q;
        }
        if name == "*" {
            star = Some(q);
        }
    }
    star.unwrap_or(0)
}

/// The codings `accept` (an `Accept-Encoding` value) allows, best first:
/// by weight, ties in [`PREFERENCE`] order. Empty when none is acceptable
/// (no header at all means identity: RFC 9110 12.5.3 lets a server assume
/// any coding, but clients that send nothing rarely decode one).
pub fn acceptable(accept: &[u8]) -> Vec<Coding> {
    let Ok(accept) = std::str::from_utf8(accept) else {
        return Vec::new();
    };
    let mut weighted: Vec<(u16, Coding)> = PREFERENCE
        .iter()
        .map(|&c| (weight(accept, c), c))
        .filter(|&(q, _)| q > 0)
        .collect();
    // Stable: equal weights keep the preference order.
    weighted.sort_by_key(|w| std::cmp::Reverse(w.0));
    weighted.into_iter().map(|(_, c)| c).collect()
}

/// The best coding `accept` allows, if any.
pub fn negotiate(accept: &[u8]) -> Option<Coding> {
    acceptable(accept).first().copied()
}

/// Whether a `Content-Type` value is one of the compressed types.
pub fn compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    COMPRESSIBLE.iter().any(|t| essence.eq_ignore_ascii_case(t))
}

/// The entity tag of the `coding` variant of a representation tagged
/// `etag`: suffixed inside the quotes, as Apache's mod_deflate does
/// (`"abc"` becomes `"abc-gzip"`), so a validator never names two bodies.
pub fn variant_etag(etag: &str, coding: Coding) -> String {
    let etag = etag.trim();
    match etag.strip_suffix('"') {
        Some(open) if open.len() > 1 || etag.starts_with("W/\"") => {
            format!("{open}-{}\"", coding.token())
        }
        // Not a quoted tag: leave it as the application wrote it.
        _ => etag.to_owned(),
    }
}

/// `Vary` after adding `Accept-Encoding` to `existing` (if any).
pub fn vary_with_accept_encoding(existing: Option<&str>) -> Option<String> {
    match existing {
        None => Some("Accept-Encoding".to_owned()),
        Some(v)
            if v.split(',')
                .any(|f| f.trim() == "*" || f.trim().eq_ignore_ascii_case("accept-encoding")) =>
        {
            None
        }
        Some(v) if v.trim().is_empty() => Some("Accept-Encoding".to_owned()),
        Some(v) => Some(format!("{v}, Accept-Encoding")),
    }
}

/// A streaming compressor whose output accumulates until taken.
///
/// Making a compressor's state costs more than compressing a small
/// response (gzip's and zstd's tables are hundreds of KiB, zeroed): each
/// thread keeps the ones it finished and reuses them.
pub struct Encoder(Inner);

enum Inner {
    Gzip(Gzip),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(Zstd),
}

thread_local! {
    static DEFLATE: std::cell::RefCell<Option<flate2::write::DeflateEncoder<Vec<u8>>>> =
        const { std::cell::RefCell::new(None) };
    static ZSTD: std::cell::RefCell<Option<zstd::zstd_safe::CCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// gzip (RFC 1952): deflate between a fixed header and a CRC-32 trailer,
/// written here so that the deflate state can be reused.
struct Gzip {
    deflate: flate2::write::DeflateEncoder<Vec<u8>>,
    crc: flate2::Crc,
}

/// The gzip header flate2 writes too: no name, no time, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl Gzip {
    fn new() -> Gzip {
        let mut deflate = DEFLATE.with(|d| d.borrow_mut().take()).unwrap_or_else(|| {
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL))
        });
        deflate.get_mut().extend_from_slice(&GZIP_HEADER);
        Gzip {
            deflate,
            crc: flate2::Crc::new(),
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        self.deflate.write_all(data)
    }

    fn finish(mut self) -> io::Result<Vec<u8>> {
        self.deflate.try_finish()?;
        let mut out = self.deflate.reset(Vec::new())?;
        out.extend_from_slice(&self.crc.sum().to_le_bytes());
        out.extend_from_slice(&self.crc.amount().to_le_bytes());
        DEFLATE.with(|d| *d.borrow_mut() = Some(self.deflate));
        Ok(out)
    }
}

/// zstd through a reused compression context.
struct Zstd {
    cctx: Option<zstd::zstd_safe::CCtx<'static>>,
    out: Vec<u8>,
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(zstd::zstd_safe::get_error_name(code))
}

impl Zstd {
    fn new() -> io::Result<Zstd> {
        let cctx = match ZSTD.with(|z| z.borrow_mut().take()) {
            Some(c) => c,
            None => {
                let mut c = zstd::zstd_safe::CCtx::try_create()
                    .ok_or_else(|| io::Error::other("cannot make a zstd context"))?;
                c.set_parameter(zstd::zstd_safe::CParameter::CompressionLevel(ZSTD_LEVEL))
                    .map_err(zstd_error)?;
                c
            }
        };
        Ok(Zstd {
            cctx: Some(cctx),
            out: Vec::new(),
        })
    }

    /// Feeds `input` (all of it), then flushes or ends the frame as asked.
    fn run(
        &mut self,
        input: &[u8],
        end: zstd::zstd_safe::zstd_sys::ZSTD_EndDirective,
    ) -> io::Result<()> {
        use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
        let Some(cctx) = self.cctx.as_mut() else {
            return Err(io::Error::other("zstd stream already ended"));
        };
        let mut inbuf = zstd::zstd_safe::InBuffer::around(input);
        loop {
            let pos = self.out.len();
            self.out.reserve(zstd::zstd_safe::CCtx::out_size());
            let mut outbuf = zstd::zstd_safe::OutBuffer::around_pos(&mut self.out, pos);
            let left = cctx
                .compress_stream2(&mut outbuf, &mut inbuf, end)
                .map_err(zstd_error)?;
            let done = match end {
                ZSTD_EndDirective::ZSTD_e_continue => inbuf.pos() == input.len(),
                _ => left == 0,
            };
            if done {
                return Ok(());
            }
        }
    }

    fn finish(mut self) -> io::Result<Vec<u8>> {
        self.run(
            &[],
            zstd::zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_end,
        )?;
        if let Some(mut cctx) = self.cctx.take() {
            if cctx
                .reset(zstd::zstd_safe::ResetDirective::SessionOnly)
                .is_ok()
            {
                ZSTD.with(|z| *z.borrow_mut() = Some(cctx));
            }
        }
        Ok(std::mem::take(&mut self.out))
    }
}

impl Encoder {
    pub fn new(coding: Coding) -> io::Result<Encoder> {
        Ok(Encoder(match coding {
            Coding::Gzip => Inner::Gzip(Gzip::new()),
            Coding::Br => Inner::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                BROTLI_QUALITY,
                BROTLI_WINDOW,
            ))),
            Coding::Zstd => Inner::Zstd(Zstd::new()?),
        }))
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
        match &mut self.0 {
            Inner::Gzip(e) => e.write(data),
            Inner::Br(e) => e.write_all(data),
            Inner::Zstd(e) => e.run(data, ZSTD_EndDirective::ZSTD_e_continue),
        }
    }

    /// Makes everything written so far decodable by the client (a sync
    /// flush): a streamed block reaches the reader without waiting for the
    /// next one, at some cost in ratio.
    pub fn flush(&mut self) -> io::Result<()> {
        use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
        match &mut self.0 {
            Inner::Gzip(e) => e.deflate.flush(),
            Inner::Br(e) => e.flush(),
            Inner::Zstd(e) => e.run(&[], ZSTD_EndDirective::ZSTD_e_flush),
        }
    }

    /// How many compressed bytes wait to be taken.
    pub fn produced(&self) -> usize {
        match &self.0 {
            Inner::Gzip(e) => e.deflate.get_ref().len(),
            Inner::Br(e) => e.get_ref().len(),
            Inner::Zstd(e) => e.out.len(),
        }
    }

    /// The compressed bytes produced so far.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(match &mut self.0 {
            Inner::Gzip(e) => e.deflate.get_mut(),
            Inner::Br(e) => e.get_mut(),
            Inner::Zstd(e) => &mut e.out,
        })
    }

    /// Ends the stream; returns what was not taken yet.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self.0 {
            Inner::Gzip(e) => e.finish(),
            Inner::Br(e) => Ok(e.into_inner()),
            Inner::Zstd(e) => e.finish(),
        }
    }
}

/// `data` compressed whole.
pub fn compress(coding: Coding, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut e = Encoder::new(coding)?;
    e.write(data)?;
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn the_heaviest_weight_wins_and_ties_follow_the_preference() {
        assert_eq!(negotiate(b"gzip, deflate, br, zstd"), Some(Coding::Zstd));
        assert_eq!(negotiate(b"gzip, deflate, br"), Some(Coding::Br));
        assert_eq!(negotiate(b"gzip;q=1.0, br;q=0.5"), Some(Coding::Gzip));
        assert_eq!(
            negotiate(b"br;q=0.8, gzip;q=0.9, zstd;q=0.1"),
            Some(Coding::Gzip)
        );
        assert_eq!(negotiate(b"x-gzip"), Some(Coding::Gzip));
        assert_eq!(negotiate(b"GZIP"), Some(Coding::Gzip));
        assert_eq!(
            acceptable(b"gzip;q=0.5, *;q=0.7"),
            vec![Coding::Zstd, Coding::Br, Coding::Gzip]
        );
    }

    #[test]
    fn a_refused_or_unknown_coding_is_never_chosen() {
        assert_eq!(negotiate(b""), None);
        assert_eq!(negotiate(b"identity"), None);
        assert_eq!(negotiate(b"deflate, compress"), None);
        assert_eq!(negotiate(b"gzip;q=0"), None);
        assert_eq!(negotiate(b"gzip;q=0.000, br;Q=0"), None);
        assert_eq!(negotiate(b"*;q=0"), None);
        assert_eq!(negotiate(b"*, br;q=0, zstd;q=0"), Some(Coding::Gzip));
        // A malformed weight is not taken as a yes.
        assert_eq!(negotiate(b"gzip;q=2"), None);
        assert_eq!(negotiate(b"gzip;q=0.5.1"), None);
        assert_eq!(negotiate(b"gzip;q=abc"), None);
        assert_eq!(negotiate(&[0xff, b'g']), None);
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("1.001"), None);
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue(" 0.25 "), Some(250));
        assert_eq!(qvalue("0."), Some(0));
        assert_eq!(qvalue("0.1234"), None);
        assert_eq!(qvalue("-1"), None);
    }

    #[test]
    fn textual_types_are_compressed_others_are_not() {
        assert!(compressible("text/html; charset=utf-8"));
        assert!(compressible("Application/JSON"));
        assert!(compressible("image/svg+xml"));
        assert!(!compressible("image/png"));
        assert!(!compressible("application/octet-stream"));
        assert!(!compressible("text/event-stream"));
        assert!(!compressible(""));
    }

    #[test]
    fn a_variant_has_its_own_entity_tag() {
        assert_eq!(variant_etag("\"abc\"", Coding::Gzip), "\"abc-gzip\"");
        assert_eq!(variant_etag("W/\"abc\"", Coding::Br), "W/\"abc-br\"");
        assert_eq!(variant_etag("W/\"\"", Coding::Br), "W/\"-br\"");
        assert_eq!(variant_etag("unquoted", Coding::Br), "unquoted");
        assert_eq!(variant_etag("\"", Coding::Br), "\"");
    }

    #[test]
    fn vary_gains_accept_encoding_once() {
        assert_eq!(
            vary_with_accept_encoding(None).as_deref(),
            Some("Accept-Encoding")
        );
        assert_eq!(
            vary_with_accept_encoding(Some("Cookie")).as_deref(),
            Some("Cookie, Accept-Encoding")
        );
        assert_eq!(
            vary_with_accept_encoding(Some("cookie, accept-encoding")),
            None
        );
        assert_eq!(vary_with_accept_encoding(Some("*")), None);
    }

    fn decode(coding: Coding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .expect("gzip");
            }
            Coding::Br => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .expect("br");
            }
            Coding::Zstd => out = zstd::stream::decode_all(data).expect("zstd"),
        }
        out
    }

    #[test]
    fn a_reused_compressor_starts_each_stream_afresh() {
        for coding in PREFERENCE {
            for round in 0..3 {
                let text = format!("round {round}: ").repeat(100 + round * 50);
                // An abandoned stream is not reused half-done.
                let mut dropped = Encoder::new(coding).expect("encoder");
                dropped.write(b"never finished").expect("write");
                drop(dropped);
                let whole = compress(coding, text.as_bytes()).expect("compress");
                assert_eq!(
                    decode(coding, &whole),
                    text.as_bytes(),
                    "{coding:?} {round}"
                );
            }
        }
    }

    #[test]
    fn every_coding_round_trips_whole_and_flushed_block_by_block() {
        let text = "<p>Hello, compressed world!</p>\n".repeat(200);
        for coding in PREFERENCE {
            let whole = compress(coding, text.as_bytes()).expect("compress");
            assert!(whole.len() < text.len() / 4, "{coding:?}");
            assert_eq!(decode(coding, &whole), text.as_bytes(), "{coding:?}");

            let mut e = Encoder::new(coding).expect("encoder");
            let mut wire = Vec::new();
            for block in text.as_bytes().chunks(1000) {
                e.write(block).expect("write");
                e.flush().expect("flush");
                let out = e.take();
                assert!(
                    !out.is_empty(),
                    "{coding:?}: a flushed block produces bytes"
                );
                wire.extend_from_slice(&out);
            }
            wire.extend_from_slice(&e.finish().expect("finish"));
            assert_eq!(decode(coding, &wire), text.as_bytes(), "{coding:?}");
        }
    }
}
