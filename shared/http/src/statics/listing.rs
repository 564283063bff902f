//! `--directory-listing`: the HTML page a directory without an index file
//! gets, as Apache's mod_autoindex gives it (`Options +Indexes`).
//!
//! Only what the static rules would serve is listed: names the path check
//! refuses (dotfiles unless `--static-allow-dotfiles`, control characters,
//! backslashes, names that are not UTF-8) and symlinks that could not be
//! opened beneath the mount (unless `--static-follow-symlinks`) are left
//! out, as are FIFOs, sockets and devices. The page is built in memory and
//! served like a file (see [`memory_file`]), so HEAD, conditional requests
//! and ranges behave as for any file.

use super::path::check_segment;
use nix::errno::Errno;
use nix::sys::stat::{fstatat, FileStat, SFlag};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt::Write as _;
use std::fs::{File, Metadata};
use std::io::{Seek as _, Write as _};
use std::os::fd::AsFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Characters left as they are in a link: RFC 3986's unreserved ones.
/// Everything else (`:` too, so no name reads as a scheme) is encoded.
const LINK: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Most entries one listing shows; a larger directory is cut there (the
/// page says so) rather than cost a stat per file for a page nobody reads.
pub const MAX_ENTRIES: usize = 10_000;

/// One line of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub dir: bool,
    pub len: u64,
    pub modified: SystemTime,
}

/// The entries of an open directory the static rules would serve, sorted
/// by name (byte order, as mod_autoindex), and whether the list was cut at
/// [`MAX_ENTRIES`]. `open` opens a name of this directory as the static
/// files do (beneath the mount, following symlinks only as allowed): a
/// symlink is listed when it opens, with what it points at.
pub fn gather(
    dir: File,
    allow_dotfiles: bool,
    open: impl Fn(&str) -> Result<(File, Metadata), Errno>,
) -> Result<(Vec<Entry>, bool), Errno> {
    let mut names = Vec::new();
    let mut cut = false;
    {
        let mut d = nix::dir::Dir::from_fd(dir.try_clone().map_err(io_errno)?.into())?;
        for entry in d.iter() {
            let entry = entry?;
            // Not UTF-8: no request path can name it.
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." || check_segment(name, allow_dotfiles).is_err() {
                continue;
            }
            if names.len() == MAX_ENTRIES {
                cut = true;
                break;
            }
            names.push(name.to_owned());
        }
    }
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let Ok(st) = fstatat(
            dir.as_fd(),
            name.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) else {
            continue;
        };
        let entry = if kind(&st) == SFlag::S_IFLNK {
            match open(&name) {
                Ok((_, meta)) if meta.is_dir() || meta.is_file() => Entry {
                    dir: meta.is_dir(),
                    len: meta.len(),
                    modified: meta.modified().unwrap_or(UNIX_EPOCH),
                    name,
                },
                _ => continue,
            }
        } else if matches!(kind(&st), SFlag::S_IFREG | SFlag::S_IFDIR) {
            Entry {
                dir: kind(&st) == SFlag::S_IFDIR,
                len: u64::try_from(st.st_size).unwrap_or(0),
                modified: stat_time(st.st_mtime, st.st_mtime_nsec),
                name,
            }
        } else {
            continue;
        };
        entries.push(entry);
    }
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok((entries, cut))
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn stat_time(secs: i64, nanos: i64) -> SystemTime {
    match (u64::try_from(secs), u32::try_from(nanos)) {
        (Ok(s), Ok(n)) => UNIX_EPOCH + Duration::new(s, n.min(999_999_999)),
        _ => UNIX_EPOCH,
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// When the listing last changed: the newest of the directory's own time
/// (names added or removed) and its entries' (sizes and dates shown).
pub fn last_modified(dir: &Metadata, entries: &[Entry]) -> SystemTime {
    let own = dir.modified().unwrap_or(UNIX_EPOCH);
    entries
        .iter()
        .map(|e| e.modified)
        .fold(own, SystemTime::max)
}

/// The listing page of the directory shown at `url` (decoded, ending in
/// `/`). `root`: it is the top of its mount, so there is no parent link.
pub fn render(url: &str, root: bool, entries: &[Entry], cut: bool) -> String {
    let title = escape(url);
    let mut out = String::with_capacity(512 + entries.len() * 160);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Index of {title}</title>\n</head>\n<body>\n<h1>Index of {title}</h1>\n<table>\n<tr><th>Name</th><th>Last modified</th><th>Size</th></tr>\n"
    );
    if !root {
        out.push_str(
            "<tr><td><a href=\"../\">Parent Directory</a></td><td>&nbsp;</td><td>-</td></tr>\n",
        );
    }
    for e in entries {
        let slash = if e.dir { "/" } else { "" };
        let size = if e.dir {
            "-".to_owned()
        } else {
            human_size(e.len)
        };
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{}{slash}\">{}{slash}</a></td><td>{}</td><td>{size}</td></tr>",
            utf8_percent_encode(&e.name, LINK),
            escape(&e.name),
            httpdate::fmt_http_date(e.modified),
        );
    }
    out.push_str("</table>\n");
    if cut {
        let _ = writeln!(
            out,
            "<p>Only the first {MAX_ENTRIES} entries are shown.</p>"
        );
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// A size as mod_autoindex shows it (`apr_strfsize`): bytes below 973,
/// then K, M, G, T, P with one decimal below 9.95 of the unit.
pub fn human_size(n: u64) -> String {
    if n < 973 {
        return n.to_string();
    }
    let mut size = n as f64;
    for unit in ['K', 'M', 'G', 'T', 'P', 'E'] {
        size /= 1024.0;
        if size < 973.0 || unit == 'E' {
            return if size < 9.95 {
                format!("{size:.1}{unit}")
            } else {
                format!("{}{unit}", size.round() as u64)
            };
        }
    }
    n.to_string()
}

/// Text made safe inside HTML elements and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A strong entity tag for in-memory content: changes with every byte.
pub fn content_etag(bytes: &[u8]) -> String {
    // FNV-1a 64: a fingerprint, not a defence; listings are public anyway.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"l-{h:x}-{:x}\"", bytes.len())
}

/// `bytes` as an unlinked in-memory file, so the page is sent like a file.
pub fn memory_file(bytes: &[u8]) -> Result<(File, Metadata), Errno> {
    let fd =
        nix::sys::memfd::memfd_create("rwsgi-listing", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    let mut file = File::from(fd);
    file.write_all(bytes).map_err(io_errno)?;
    // Read from the start by whoever reads it as a stream.
    file.rewind().map_err(io_errno)?;
    let meta = file.metadata().map_err(io_errno)?;
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn entry(name: &str, dir: bool, len: u64) -> Entry {
        Entry {
            name: name.to_owned(),
            dir,
            len,
            modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    #[test]
    fn names_are_escaped_in_text_and_encoded_in_links() {
        let page = render(
            "/static/<b>/",
            false,
            &[
                entry("<script>alert(1)</script>.txt", false, 5),
                entry("a b&c.txt", false, 5),
                entry("café \"q\"", true, 0),
                entry("javascript:x", false, 1),
            ],
            false,
        );
        assert!(page.contains("<title>Index of /static/&lt;b&gt;/</title>"));
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains(
            "<a href=\"%3Cscript%3Ealert%281%29%3C%2Fscript%3E.txt\">&lt;script&gt;alert(1)&lt;/script&gt;.txt</a>"
        ));
        assert!(page.contains("<a href=\"a%20b%26c.txt\">a b&amp;c.txt</a>"));
        assert!(page.contains("<a href=\"caf%C3%A9%20%22q%22/\">café &quot;q&quot;/</a>"));
        assert!(page.contains("<a href=\"javascript%3Ax\">"));
    }

    #[test]
    fn the_parent_link_is_shown_below_the_root_only() {
        let e = [entry("a.txt", false, 11)];
        assert!(render("/static/sub/", false, &e, false).contains("href=\"../\""));
        assert!(!render("/static/", true, &e, false).contains("href=\"../\""));
        let page = render("/static/", true, &e, false);
        assert!(page.contains("<td>Tue, 14 Nov 2023 22:13:20 GMT</td><td>11</td>"));
        assert!(render("/", true, &e, true).contains("Only the first"));
    }

    #[test]
    fn sizes_read_like_mod_autoindex() {
        assert_eq!(human_size(0), "0");
        assert_eq!(human_size(972), "972");
        assert_eq!(human_size(973), "1.0K");
        assert_eq!(human_size(1536), "1.5K");
        assert_eq!(human_size(20 * 1024), "20K");
        assert_eq!(human_size(5 * 1024 * 1024 + 1), "5.0M");
        assert_eq!(human_size(300 * 1024 * 1024 * 1024), "300G");
    }

    #[test]
    fn etags_follow_the_content() {
        assert_eq!(content_etag(b"abc"), content_etag(b"abc"));
        assert_ne!(content_etag(b"abc"), content_etag(b"abd"));
        assert!(content_etag(b"").starts_with("\"l-"));
    }

    #[test]
    fn gathering_keeps_what_the_static_rules_serve() {
        let d = std::env::temp_dir().join(format!("rwsgi-listing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).expect("test");
        std::fs::write(d.join("b.txt"), "bbb").expect("test");
        std::fs::write(d.join("a.txt"), "a").expect("test");
        std::fs::write(d.join(".env"), "secret").expect("test");
        std::fs::write(d.join("back\\slash"), "x").expect("test");
        symlink("a.txt", d.join("link-in")).expect("test");
        symlink("/etc/hostname", d.join("link-out")).expect("test");
        let dir = File::open(&d).expect("test");
        let base = d.clone();
        // Stand-in for the mount's opener: refuses links that leave `d`.
        let open = |name: &str| {
            let p = base.join(name);
            let real = p.canonicalize().map_err(io_errno)?;
            if !real.starts_with(base.canonicalize().map_err(io_errno)?) {
                return Err(Errno::EXDEV);
            }
            let f = File::open(&real).map_err(io_errno)?;
            let m = f.metadata().map_err(io_errno)?;
            Ok((f, m))
        };
        let (entries, cut) = gather(dir.try_clone().expect("test"), false, open).expect("test");
        assert!(!cut);
        let names: Vec<_> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.dir, e.len))
            .collect();
        assert_eq!(
            names,
            [
                ("a.txt", false, 1),
                ("b.txt", false, 3),
                ("link-in", false, 1),
                ("sub", true, entries[3].len)
            ]
        );
        let (entries, _) = gather(dir, true, open).expect("test");
        assert!(entries.iter().any(|e| e.name == ".env"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_page_becomes_a_file() {
        let (mut f, meta) = memory_file(b"<p>hi").expect("test");
        assert_eq!(meta.len(), 5);
        let mut s = String::new();
        f.read_to_string(&mut s).expect("test");
        assert_eq!(s, "<p>hi");
    }
}
