//! From the percent-encoded path of a request to a relative file path that
//! cannot leave the directory it is looked up in.
//!
//! The check is lexical and done on every segment after decoding, so no
//! encoding trick (`%2e%2e`, `%2f`, `%5c`, `%00`, overlong UTF-8 such as
//! `%c0%ae`) can produce a `..`, a separator or a NUL. Symlinks are the file
//! system's business and are checked when the file is opened.

use percent_encoding::percent_decode_str;

/// A request path that names nothing we may serve; the reason goes to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// A validated path relative to a mount's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath {
    /// Decoded segments joined with `/`; empty for the directory itself.
    pub rel: String,
    /// The URL ended with `/` (it names a directory).
    pub trailing_slash: bool,
}

/// Decodes and checks `raw`, the part of the URL path below a mount (with or
/// without a leading `/`). Empty segments (`a//b`) are skipped.
pub fn decode(raw: &str, allow_dotfiles: bool) -> Result<RelPath, Refused> {
    let mut rel = String::with_capacity(raw.len());
    for segment in raw.split('/') {
        if segment.is_empty() {
            continue;
        }
        let bytes: Vec<u8> = percent_decode_str(segment).collect();
        // UTF-8 validation refuses overlong forms (%c0%ae is not '.').
        let name = std::str::from_utf8(&bytes).map_err(|_| Refused("path is not valid UTF-8"))?;
        check_segment(name, allow_dotfiles)?;
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(name);
    }
    Ok(RelPath {
        rel,
        trailing_slash: raw.ends_with('/'),
    })
}

/// Whether one decoded path segment may be served.
pub(crate) fn check_segment(name: &str, allow_dotfiles: bool) -> Result<(), Refused> {
    if name == "." || name == ".." {
        return Err(Refused("dot segment in the path"));
    }
    if name.contains(['/', '\\']) {
        return Err(Refused("encoded slash or backslash in the path"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(Refused("NUL or control character in the path"));
    }
    if name.starts_with('.') && !allow_dotfiles {
        return Err(Refused("hidden file (name starting with '.')"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        decode(raw, false)
            .unwrap_or_else(|e| panic!("{raw}: {e:?}"))
            .rel
    }

    #[test]
    fn plain_paths_decode() {
        assert_eq!(ok("/css/site.css"), "css/site.css");
        assert_eq!(ok("css/a%20b.css"), "css/a b.css");
        assert_eq!(ok("//css///x.js"), "css/x.js");
        assert_eq!(ok("/caf%C3%A9.txt"), "café.txt");
        assert_eq!(ok(""), "");
        assert_eq!(ok("/"), "");
        assert!(decode("/dir/", false).expect("test").trailing_slash);
        assert!(!decode("/dir", false).expect("test").trailing_slash);
    }

    #[test]
    fn traversal_is_refused_however_encoded() {
        for raw in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/.%2e/etc/passwd",
            "/%2e./x",
            "/./x",
            "/a/%2e",
            "/..%2fetc%2fpasswd",
            "/a%2f..%2f..%2fetc",
            "/..%5c..%5cwindows",
            "/a\\..\\b",
            "/a%00.txt",
            "/a%0a.txt",
            "/%c0%ae%c0%ae/etc/passwd",
            "/%c0%af",
            "/%e0%80%ae%e0%80%ae/x",
            "/%ff",
        ] {
            assert!(decode(raw, false).is_err(), "{raw} was accepted");
            assert!(
                decode(raw, true).is_err(),
                "{raw} was accepted with dotfiles"
            );
        }
    }

    #[test]
    fn dotfiles_are_refused_unless_allowed() {
        for raw in ["/.env", "/.git/config", "/a/.htaccess", "/%2egit/HEAD"] {
            assert!(decode(raw, false).is_err(), "{raw}");
            assert!(decode(raw, true).is_ok(), "{raw}");
        }
        assert_eq!(ok("/a.b/c..d"), "a.b/c..d");
    }
}
