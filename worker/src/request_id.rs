//! Request ids: the client's (or the proxy's) `X-Request-Id` when it is a
//! sane token, else one made here, unique across workers and restarts with
//! overwhelming probability and cheap (no syscall per request).

use std::cell::Cell;

/// Longest incoming id kept.
const MAX_LEN: usize = 200;

thread_local! {
    /// (random prefix for this thread, counter)
    static NEXT: Cell<(u64, u64)> = Cell::new((random_prefix(), 0));
}

fn random_prefix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// Whether an incoming id may be trusted into logs and headers: what
/// UUIDs, trace ids and base64 use, nothing that could split a line.
fn acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b))
}

/// A request's id: the incoming one, or 32 hex digits made here (kept on
/// the stack: this runs on every request).
pub enum RequestId {
    Incoming(String),
    Made([u8; 32]),
}

impl RequestId {
    pub fn as_str(&self) -> &str {
        match self {
            RequestId::Incoming(s) => s,
            // Hex digits only, so always UTF-8.
            RequestId::Made(hex) => std::str::from_utf8(hex).unwrap_or_default(),
        }
    }
}

/// The id of a request: its `X-Request-Id` if acceptable, else a new one.
pub fn of(incoming: Option<&[u8]>) -> RequestId {
    if let Some(id) = incoming.filter(|id| acceptable(id)) {
        return RequestId::Incoming(String::from_utf8_lossy(id).into_owned());
    }
    NEXT.with(|next| {
        let (prefix, n) = next.get();
        next.set((prefix, n.wrapping_add(1)));
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let word = (u128::from(prefix) << 64) | u128::from(n);
        let mut hex = [0u8; 32];
        for (i, digit) in hex.iter_mut().enumerate() {
            *digit = HEX[((word >> (124 - 4 * i)) & 0xf) as usize];
        }
        RequestId::Made(hex)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids_are_kept_when_sane_and_replaced_otherwise() {
        assert_eq!(of(Some(b"3f2c-abc_1")).as_str(), "3f2c-abc_1");
        for bad in [&b""[..], b"a b", b"a\"b", b"a\r\nb", &[b'x'; 201]] {
            let id = of(Some(bad));
            assert_eq!(id.as_str().len(), 32);
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let (a, b) = (of(None), of(None));
        assert_ne!(a.as_str(), b.as_str());
        // The counter is the low half: consecutive ids differ in their last digits.
        assert_eq!(a.as_str()[..16], b.as_str()[..16]);
    }
}
