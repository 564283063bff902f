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

/// The id of a request: its `X-Request-Id` if acceptable, else a new one.
pub fn of(incoming: Option<&[u8]>) -> String {
    if let Some(id) = incoming.filter(|id| acceptable(id)) {
        return String::from_utf8_lossy(id).into_owned();
    }
    NEXT.with(|next| {
        let (prefix, n) = next.get();
        next.set((prefix, n.wrapping_add(1)));
        // Hex by hand, without the formatting machinery: this runs on every request.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = String::with_capacity(32);
        for word in [prefix, n] {
            for shift in (0..16).rev() {
                id.push(HEX[((word >> (shift * 4)) & 0xf) as usize] as char);
            }
        }
        id
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids_are_kept_when_sane_and_replaced_otherwise() {
        assert_eq!(of(Some(b"3f2c-abc_1")), "3f2c-abc_1");
        for bad in [&b""[..], b"a b", b"a\"b", b"a\r\nb", &[b'x'; 201]] {
            assert_eq!(of(Some(bad)).len(), 32);
        }
        let (a, b) = (of(None), of(None));
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }
}
