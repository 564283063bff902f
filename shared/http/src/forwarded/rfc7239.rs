//! The `Forwarded` field (RFC 7239): its elements and their pairs.

/// RFC 7239 4: `#forwarded-element`, each `pair *( ";" pair )`, a pair
/// `token "=" ( token / quoted-string )`. Names lowercase, values unquoted.
/// `None` when the field is not that.
pub(super) fn forwarded_elements(v: &str) -> Option<Vec<Vec<(String, String)>>> {
    let b = v.as_bytes();
    let mut elements = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    let skip_ows = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ows(&mut i);
        match b.get(i) {
            None => break,
            Some(b',') => {
                if !pairs.is_empty() {
                    elements.push(std::mem::take(&mut pairs));
                }
                i += 1;
                continue;
            }
            Some(b';') => {
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if i == start || b.get(i) != Some(&b'=') {
            return None;
        }
        let name = v[start..i].to_ascii_lowercase();
        i += 1;
        let value = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut value = Vec::new();
            loop {
                match *b.get(i)? {
                    b'"' => break,
                    b'\\' => {
                        value.push(*b.get(i + 1)?);
                        i += 2;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            i += 1;
            String::from_utf8(value).ok()?
        } else {
            let start = i;
            while i < b.len() && is_tchar(b[i]) {
                i += 1;
            }
            v[start..i].to_owned()
        };
        pairs.push((name, value));
        skip_ows(&mut i);
        if !matches!(b.get(i), None | Some(b';' | b',')) {
            return None;
        }
    }
    if !pairs.is_empty() {
        elements.push(pairs);
    }
    Some(elements)
}

/// RFC 9110 5.6.2 tchar.
const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}
