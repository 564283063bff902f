//! What a client's `Authorization` header says, as pure functions: Basic
//! credentials (RFC 7617) and Digest parameters (RFC 7616), and the Digest
//! arithmetic with MD5, the one algorithm mod_wsgi's `get_realm_hash` serves.

use base64::Engine;
use md5::{Digest, Md5};

/// How long a nonce is good for: Apache's `AuthDigestNonceLifetime` default.
pub const NONCE_LIFETIME_SECS: u64 = 300;

/// `Basic base64(user:password)`: the user and password as Latin-1, like
/// mod_wsgi (`PyUnicode_DecodeLatin1`). `None` for another scheme or a value
/// that is not base64 of `user:password`.
pub fn basic(header: &[u8]) -> Option<(String, String)> {
    let rest = scheme_value(header, "basic")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((latin1(&decoded[..colon]), latin1(&decoded[colon + 1..])))
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The value after the scheme name (`Basic xyz` -> `xyz`), any case.
fn scheme_value<'a>(header: &'a [u8], scheme: &str) -> Option<&'a [u8]> {
    let n = scheme.len();
    if header.len() > n && header[..n].eq_ignore_ascii_case(scheme.as_bytes()) && header[n] == b' '
    {
        Some(&header[n + 1..])
    } else {
        None
    }
}

/// The parameters of a `Digest` Authorization header.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DigestParams {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

/// `Digest k=v, k="quoted", ...`; `None` for another scheme, a malformed
/// list, or one without the parameters every Digest answer carries.
pub fn digest(header: &[u8]) -> Option<DigestParams> {
    let text = std::str::from_utf8(scheme_value(header, "digest")?).ok()?;
    let mut p = DigestParams::default();
    let (mut has_user, mut has_nonce, mut has_uri, mut has_response) = (false, false, false, false);
    for (name, value) in params(text)? {
        let slot = match name.to_ascii_lowercase().as_str() {
            "username" => {
                has_user = true;
                &mut p.username
            }
            "realm" => &mut p.realm,
            "nonce" => {
                has_nonce = true;
                &mut p.nonce
            }
            "uri" => {
                has_uri = true;
                &mut p.uri
            }
            "response" => {
                has_response = true;
                &mut p.response
            }
            "algorithm" => {
                p.algorithm = Some(value);
                continue;
            }
            "qop" => {
                p.qop = Some(value);
                continue;
            }
            "nc" => {
                p.nc = Some(value);
                continue;
            }
            "cnonce" => {
                p.cnonce = Some(value);
                continue;
            }
            // opaque, userhash and extensions: not used here.
            _ => continue,
        };
        *slot = value;
    }
    (has_user && has_nonce && has_uri && has_response).then_some(p)
}

/// An auth-param list (RFC 9110 11.2): `name=token` or `name="quoted"`,
/// separated by commas.
fn params(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return None;
        }
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => v.push(chars.next()?.1),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = &quoted[end?..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        out.push((name.to_owned(), value));
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    Some(out)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn md5_hex(data: &[u8]) -> String {
    let sum = Md5::digest(data);
    let mut s = String::with_capacity(32);
    for b in sum {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A nonce: when it was made (seconds of the system-wide monotonic clock,
/// which every worker of the server reads alike) and a keyed hash of that
/// and the realm, so only this server's nonces verify (Apache's scheme:
/// a timestamp and a hash of it with a per-server secret).
pub fn make_nonce(key: &str, realm: &str, now_secs: u64) -> String {
    let stamp = format!("{now_secs:016x}");
    let mac = nonce_mac(key, realm, &stamp);
    format!("{stamp}{mac}")
}

fn nonce_mac(key: &str, realm: &str, stamp: &str) -> String {
    // The key on both sides: the fixed-width stamp leaves no room to extend.
    md5_hex(format!("{key}:{stamp}:{realm}:{key}").as_bytes())
}

/// What a nonce the client sent back is.
#[derive(Debug, PartialEq, Eq)]
pub enum NonceState {
    Fresh,
    /// Ours, but older than [`NONCE_LIFETIME_SECS`]: the client retries
    /// with a new one without asking the user again (`stale=true`).
    Stale,
    /// Not made by this server (or by this start of it).
    Forged,
}

pub fn check_nonce(key: &str, realm: &str, nonce: &str, now_secs: u64) -> NonceState {
    if nonce.len() != 48 || !nonce.is_ascii() {
        return NonceState::Forged;
    }
    let (stamp, mac) = nonce.split_at(16);
    if !same(mac.as_bytes(), nonce_mac(key, realm, stamp).as_bytes()) {
        return NonceState::Forged;
    }
    match u64::from_str_radix(stamp, 16) {
        Ok(made) if made <= now_secs && now_secs - made <= NONCE_LIFETIME_SECS => NonceState::Fresh,
        Ok(made) if made <= now_secs => NonceState::Stale,
        _ => NonceState::Forged,
    }
}

/// The response a client that knows the password sends (RFC 7616 3.4.1,
/// qop=auth): `ha1` is what `get_realm_hash` returned, MD5(user:realm:password).
pub fn expected_response(ha1: &str, method: &str, p: &DigestParams) -> String {
    let ha2 = md5_hex(format!("{method}:{}", p.uri).as_bytes());
    let nc = p.nc.as_deref().unwrap_or("");
    let cnonce = p.cnonce.as_deref().unwrap_or("");
    let qop = p.qop.as_deref().unwrap_or("");
    md5_hex(format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", p.nonce).as_bytes())
}

/// Why a Digest answer is refused before asking the script.
#[derive(Debug, PartialEq, Eq)]
pub enum Malformed {
    Realm,
    Uri,
    Algorithm,
    Qop,
}

/// The checks that need no password: the answer is for this realm and this
/// request, with MD5 and qop=auth (the only ones this server offers).
pub fn check_params(p: &DigestParams, realm: &str, target: &str) -> Result<(), Malformed> {
    if p.realm != realm {
        return Err(Malformed::Realm);
    }
    if p.uri != target {
        return Err(Malformed::Uri);
    }
    if p.algorithm
        .as_deref()
        .is_some_and(|a| !a.eq_ignore_ascii_case("MD5"))
    {
        return Err(Malformed::Algorithm);
    }
    let qop_ok = p.qop.as_deref() == Some("auth")
        && p.cnonce.as_deref().is_some_and(|c| !c.is_empty())
        && p.nc
            .as_deref()
            .is_some_and(|n| n.len() == 8 && n.bytes().all(|b| b.is_ascii_hexdigit()));
    if !qop_ok {
        return Err(Malformed::Qop);
    }
    Ok(())
}

/// Equality that takes as long whichever byte differs.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `WWW-Authenticate` value of a Digest challenge.
pub fn digest_challenge(realm: &str, nonce: &str, stale: bool) -> String {
    format!(
        "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{}",
        quote(realm),
        if stale { ", stale=true" } else { "" }
    )
}

/// The `WWW-Authenticate` value of a Basic challenge.
pub fn basic_challenge(realm: &str) -> String {
    format!("Basic realm=\"{}\"", quote(realm))
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials() {
        // "alice:s3cret:x" -- the password may hold colons.
        assert_eq!(
            basic(b"Basic YWxpY2U6czNjcmV0Ong="),
            Some(("alice".into(), "s3cret:x".into()))
        );
        assert_eq!(
            basic(b"basic YWxpY2U6"),
            Some(("alice".into(), String::new()))
        );
        assert_eq!(basic(b"Basic !!!"), None);
        assert_eq!(basic(b"Basic YWxpY2U="), None, "no colon");
        assert_eq!(basic(b"Bearer YWxpY2U6czNjcmV0"), None);
        // Latin-1 bytes become the same code points, as in mod_wsgi.
        assert_eq!(basic(b"Basic 6Tpw"), Some(("\u{e9}".into(), "p".into())));
    }

    /// RFC 2617 3.5's example.
    fn rfc_params() -> DigestParams {
        digest(
            br#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .expect("parses")
    }

    #[test]
    fn digest_parameters_and_the_rfc_example() {
        let p = rfc_params();
        assert_eq!(p.username, "Mufasa");
        assert_eq!(p.uri, "/dir/index.html");
        assert_eq!(p.qop.as_deref(), Some("auth"));
        let ha1 = md5_hex(b"Mufasa:testrealm@host.com:Circle Of Life");
        assert_eq!(expected_response(&ha1, "GET", &p), p.response);
        assert_eq!(
            check_params(&p, "testrealm@host.com", "/dir/index.html"),
            Ok(())
        );
        assert_eq!(
            check_params(&p, "other", "/dir/index.html"),
            Err(Malformed::Realm)
        );
        assert_eq!(
            check_params(&p, "testrealm@host.com", "/x"),
            Err(Malformed::Uri)
        );
    }

    #[test]
    fn digest_needs_qop_auth_and_md5() {
        let mut p = rfc_params();
        p.qop = None;
        assert_eq!(
            check_params(&p, &p.realm.clone(), &p.uri.clone()),
            Err(Malformed::Qop)
        );
        let mut p = rfc_params();
        p.nc = Some("1".into());
        assert_eq!(
            check_params(&p, &p.realm.clone(), &p.uri.clone()),
            Err(Malformed::Qop)
        );
        let mut p = rfc_params();
        p.algorithm = Some("SHA-256".into());
        assert_eq!(
            check_params(&p, &p.realm.clone(), &p.uri.clone()),
            Err(Malformed::Algorithm)
        );
    }

    #[test]
    fn malformed_digest_headers() {
        assert_eq!(digest(b"Digest username=\"a\""), None, "parameters missing");
        assert_eq!(digest(b"Digest username=\"a, nonce=1"), None, "open quote");
        assert_eq!(digest(b"Basic abc"), None);
        let p = digest(br#"Digest username="a\"b", nonce=n, uri="/", response=r"#).expect("ok");
        assert_eq!(p.username, "a\"b");
    }

    #[test]
    fn nonces_are_ours_and_expire() {
        let n = make_nonce("key", "r:1", 1000);
        assert_eq!(check_nonce("key", "r:1", &n, 1000), NonceState::Fresh);
        assert_eq!(
            check_nonce("key", "r:1", &n, 1000 + NONCE_LIFETIME_SECS),
            NonceState::Fresh
        );
        assert_eq!(
            check_nonce("key", "r:1", &n, 1001 + NONCE_LIFETIME_SECS),
            NonceState::Stale
        );
        assert_eq!(check_nonce("other", "r:1", &n, 1000), NonceState::Forged);
        assert_eq!(check_nonce("key", "r:2", &n, 1000), NonceState::Forged);
        assert_eq!(
            check_nonce("key", "r:1", &n, 999),
            NonceState::Forged,
            "from the future"
        );
        let mut moved = n.clone();
        moved.replace_range(..16, &format!("{:016x}", 2000));
        assert_eq!(check_nonce("key", "r:1", &moved, 2000), NonceState::Forged);
        assert_eq!(check_nonce("key", "r:1", "short", 1000), NonceState::Forged);
    }

    #[test]
    fn challenges() {
        assert_eq!(
            basic_challenge("localhost:8000"),
            "Basic realm=\"localhost:8000\""
        );
        assert!(digest_challenge("r", "n", true).ends_with("qop=\"auth\", stale=true"));
    }
}
