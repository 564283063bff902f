//! From a request path to an open file under one of the static mounts.

use super::compressed::Compressed;
use super::listing;
use super::path::{self, Refused};
use super::response::{content_type_with, etag, FileInfo, Options};
use crate::coding::{self, Coding};
use crate::RequestHead;
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use rwsgi_shared::config::StaticConfig;
use std::fs::{File, Metadata};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::SystemTime;

/// Index file of directories under `--url-alias` and in static-only mode
/// when `--directory-index` is not given (Apache's default).
const DEFAULT_INDEX: &str = "index.html";

/// What a request path names.
#[derive(Debug)]
pub enum Resolution {
    File(StaticFile),
    /// A directory asked for without its trailing slash: 301 to this location.
    Redirect(String),
    /// Under a static mount but nothing is there (the reason is for the log).
    NotFound(&'static str),
    /// Under a static mount but refused (traversal, dotfile, symlink out).
    Forbidden(&'static str),
    /// Not a static file: the application answers.
    NotStatic,
}

/// An open file (or its precompressed sibling) and what its response needs.
#[derive(Debug)]
pub struct StaticFile {
    pub file: File,
    pub len: u64,
    pub modified: SystemTime,
    pub etag: String,
    pub content_type: String,
    /// `Content-Encoding` when a precompressed sibling was picked.
    pub encoding: Option<&'static str>,
    /// The response varies on Accept-Encoding: a precompressed sibling was
    /// picked, or the file's type is compressed on the fly.
    pub vary: bool,
    /// `--compress-responses`: the coding to compress this file with when
    /// sent whole (no sibling was picked; see [`StaticFiles::compressed`]).
    pub compress: Option<Coding>,
}

impl StaticFile {
    pub fn info(&self) -> FileInfo<'_> {
        FileInfo {
            len: self.len,
            modified: self.modified,
            etag: &self.etag,
            content_type: &self.content_type,
            encoding: self.encoding,
            vary: self.vary,
        }
    }
}

/// `path` below the URL prefix `url` ("" is the whole site), or `None`.
fn below<'p>(url: &str, path: &'p str) -> Option<&'p str> {
    let rest = path.strip_prefix(url)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

struct Mount {
    url: String,
    path: PathBuf,
    /// The alias names one file, not a directory.
    single_file: bool,
    /// The directory, opened on first use (`O_PATH`); files are opened
    /// beneath it.
    root: OnceLock<OwnedFd>,
}

impl Mount {
    fn new(url: &str, path: &Path) -> Mount {
        Mount {
            url: url.to_owned(),
            path: path.to_path_buf(),
            single_file: path.is_file(),
            root: OnceLock::new(),
        }
    }

    fn root(&self) -> Result<BorrowedFd<'_>, Errno> {
        if let Some(fd) = self.root.get() {
            return Ok(fd.as_fd());
        }
        let fd = nix::fcntl::open(
            &self.path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // A concurrent first use may have won; either descriptor is fine.
        let _ = self.root.set(fd);
        self.root.get().map(|fd| fd.as_fd()).ok_or(Errno::EBADF)
    }
}

/// Where a file of a mount is (for the file itself and its siblings).
enum Place<'a> {
    Under(&'a Mount, &'a str),
    Exact(&'a Path),
}

/// The static mounts of one worker, with their directories open.
pub struct StaticFiles {
    aliases: Vec<Mount>,
    document_root: Option<Mount>,
    directory_index: Option<String>,
    only_static: bool,
    follow_symlinks: bool,
    allow_dotfiles: bool,
    /// `--directory-listing`.
    listing: bool,
    options: Options,
    /// `--compress-responses`: files compressed on the fly, kept in memory.
    compressed: Option<Compressed>,
    /// `openat2` works here (Linux 5.6+, allowed by seccomp).
    beneath: AtomicBool,
    /// `--mime-types`: extension to type, before the built-in table.
    mime_types: std::collections::HashMap<String, String>,
}

fn open_flags() -> OFlag {
    // O_NONBLOCK: opening a FIFO must not hang the I/O thread.
    OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY
}

impl StaticFiles {
    /// The mounts of `config`; the second value lists mounts whose path
    /// cannot be opened now (each is retried on use).
    pub fn new(config: &StaticConfig) -> (StaticFiles, Vec<String>) {
        let mut aliases: Vec<Mount> = config
            .aliases
            .iter()
            .map(|a| Mount::new(&a.url, &a.path))
            .collect();
        aliases.sort_by_key(|a| std::cmp::Reverse(a.url.len()));
        let files = StaticFiles {
            aliases,
            document_root: config.document_root.as_deref().map(|p| Mount::new("", p)),
            directory_index: config.directory_index.clone(),
            only_static: config.only_static,
            follow_symlinks: config.follow_symlinks,
            allow_dotfiles: config.allow_dotfiles,
            compressed: config.compress.then(Compressed::default),
            listing: config.directory_listing,
            options: Options {
                max_age: config.max_age,
            },
            beneath: AtomicBool::new(true),
            // Later lines of the file win, as in Apache's TypesConfig.
            mime_types: config.mime_types.iter().cloned().collect(),
        };
        let mut problems = Vec::new();
        for m in files.aliases.iter().chain(files.document_root.iter()) {
            if m.single_file {
                continue;
            }
            if let Err(e) = m.root() {
                problems.push(format!("{}: {}", m.path.display(), e.desc()));
            }
        }
        (files, problems)
    }

    /// The compressed variant of `file` (see [`StaticFile::compress`]),
    /// made on first use and then kept; `None` when it is not to be sent
    /// compressed (a range request, a read error).
    pub fn compressed(
        &self,
        req: &RequestHead,
        file: &StaticFile,
    ) -> Option<(Coding, std::sync::Arc<[u8]>)> {
        let coding = file.compress?;
        // A range names bytes of the file as it is; it is served from the file.
        if req.header("range").is_some() {
            return None;
        }
        let bytes = self.compressed.as_ref()?.get(file, coding)?;
        Some((coding, bytes))
    }

    /// Whether any request can be static.
    pub fn enabled(&self) -> bool {
        self.only_static || !self.aliases.is_empty() || self.document_root.is_some()
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Whether the request is static whatever the file system says (it is
    /// under a `--url-alias`, or nothing else is served): it can then be
    /// resolved off the I/O thread.
    pub fn claims(&self, head: &RequestHead) -> bool {
        self.only_static
            || self
                .aliases
                .iter()
                .any(|m| below(&m.url, &head.path).is_some())
    }

    /// What the request's path names.
    pub fn resolve(&self, head: &RequestHead) -> Resolution {
        if !self.enabled() {
            return Resolution::NotStatic;
        }
        let path = head.path.as_str();
        if !path.starts_with('/') {
            return if self.only_static {
                Resolution::NotFound("not a path")
            } else {
                Resolution::NotStatic
            };
        }
        let accept = head.header("accept-encoding");
        for m in &self.aliases {
            let Some(rest) = below(&m.url, path) else {
                continue;
            };
            if m.single_file {
                if !rest.is_empty() {
                    return Resolution::NotFound("below a single-file alias");
                }
                return match open_exact(&m.path) {
                    Ok((file, meta)) if meta.is_file() => {
                        self.found(file, meta, Place::Exact(&m.path), accept)
                    }
                    Ok(_) => Resolution::Forbidden("not a regular file"),
                    Err(e) => failure(e),
                };
            }
            let index = self.directory_index.as_deref().unwrap_or(DEFAULT_INDEX);
            return self.under(m, rest, head, accept, Some(index), false);
        }
        match &self.document_root {
            Some(root) if self.only_static => {
                let index = self.directory_index.as_deref().unwrap_or(DEFAULT_INDEX);
                self.under(root, path, head, accept, Some(index), false)
            }
            Some(root) => self.under(
                root,
                path,
                head,
                accept,
                self.directory_index.as_deref(),
                true,
            ),
            None if self.only_static => Resolution::NotFound("no document root"),
            None => Resolution::NotStatic,
        }
    }

    /// Resolves `rest` under a directory mount. `lenient` (a document root
    /// next to an application): whatever is not served goes to the app.
    fn under(
        &self,
        m: &Mount,
        rest: &str,
        head: &RequestHead,
        accept: Option<&[u8]>,
        index: Option<&str>,
        lenient: bool,
    ) -> Resolution {
        let outcome = self.under_strict(m, rest, head, accept, index, lenient);
        match outcome {
            Resolution::File(_) | Resolution::Redirect(_) => outcome,
            _ if lenient => Resolution::NotStatic,
            _ => outcome,
        }
    }

    fn under_strict(
        &self,
        m: &Mount,
        rest: &str,
        head: &RequestHead,
        accept: Option<&[u8]>,
        index: Option<&str>,
        lenient: bool,
    ) -> Resolution {
        let rel = match path::decode(rest, self.allow_dotfiles) {
            Ok(r) => r,
            Err(Refused(why)) => return Resolution::Forbidden(why),
        };
        let (file, meta) = match self.open_under(m, &rel.rel) {
            Ok(opened) => opened,
            Err(e) => return failure(e),
        };
        if meta.is_file() {
            if rel.trailing_slash {
                return Resolution::NotFound("a file asked for as a directory");
            }
            return self.found(file, meta, Place::Under(m, &rel.rel), accept);
        }
        if !meta.is_dir() {
            return Resolution::Forbidden("not a regular file");
        }
        let index_rel = match index {
            Some(name) if rel.rel.is_empty() => name.to_owned(),
            Some(name) => format!("{}/{name}", rel.rel),
            None => String::new(),
        };
        let index_file = match index {
            Some(_) => match self.open_under(m, &index_rel) {
                Ok((f, meta)) if meta.is_file() => Some((f, meta)),
                _ => None,
            },
            None => None,
        };
        // Directories are the static files' where an index is looked for
        // (mod_dir's); only there may they be listed.
        let listed = self.listing && index.is_some();
        if !rel.trailing_slash && (index_file.is_some() || listed || !lenient) {
            let mut location = format!("{}/", head.path);
            if !head.query.is_empty() {
                location.push('?');
                location.push_str(&head.query);
            }
            return Resolution::Redirect(location);
        }
        match index_file {
            Some((f, meta)) => self.found(f, meta, Place::Under(m, &index_rel), accept),
            None if listed => self.list(m, &rel.rel, file, &meta),
            None => Resolution::NotFound("directory without an index file"),
        }
    }

    /// `--directory-listing`: the directory `rel` of the mount as an HTML
    /// page, served like a file.
    fn list(&self, m: &Mount, rel: &str, dir: File, meta: &Metadata) -> Resolution {
        let open = |name: &str| {
            if rel.is_empty() {
                self.open_under(m, name)
            } else {
                self.open_under(m, &format!("{rel}/{name}"))
            }
        };
        let (entries, cut) = match listing::gather(dir, self.allow_dotfiles, open) {
            Ok(found) => found,
            Err(e) => return failure(e),
        };
        let url = if rel.is_empty() {
            format!("{}/", m.url)
        } else {
            format!("{}/{rel}/", m.url)
        };
        let page = listing::render(&url, rel.is_empty(), &entries, cut);
        let Ok((file, page_meta)) = listing::memory_file(page.as_bytes()) else {
            return Resolution::NotFound("the listing could not be built");
        };
        Resolution::File(StaticFile {
            file,
            len: page_meta.len(),
            modified: listing::last_modified(meta, &entries),
            etag: listing::content_etag(page.as_bytes()),
            content_type: "text/html; charset=utf-8".to_owned(),
            encoding: None,
            vary: false,
            // Made per request, and small: sent as it is.
            compress: None,
        })
    }

    /// Opens `rel` beneath the mount's directory; symlinks may not leave it
    /// unless `--static-follow-symlinks`.
    fn open_under(&self, m: &Mount, rel: &str) -> Result<(File, Metadata), Errno> {
        let root = m.root()?;
        let target = if rel.is_empty() { "." } else { rel };
        let fd = if self.follow_symlinks {
            // `..` never gets here (refused by path::decode).
            openat(root, target, open_flags(), Mode::empty())?
        } else if self.beneath.load(Ordering::Relaxed) {
            let how = OpenHow::new()
                .flags(open_flags())
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            match openat2(root, target, how) {
                Ok(fd) => fd,
                Err(Errno::ENOSYS | Errno::EPERM) => {
                    self.beneath.store(false, Ordering::Relaxed);
                    return self.open_under(m, rel);
                }
                Err(e) => return Err(e),
            }
        } else {
            // Without openat2: resolve every symlink, then check the result
            // is still under the root.
            let full = m.path.join(rel);
            let real = full.canonicalize().map_err(errno)?;
            let real_root = m.path.canonicalize().map_err(errno)?;
            if !real.starts_with(&real_root) {
                return Err(Errno::EXDEV);
            }
            nix::fcntl::open(&real, open_flags(), Mode::empty())?
        };
        let file = File::from(fd);
        let meta = file.metadata().map_err(errno)?;
        Ok((file, meta))
    }

    /// A regular file was found: pick a precompressed sibling if the client
    /// takes one, and gather what the response needs.
    fn found(
        &self,
        file: File,
        meta: Metadata,
        place: Place<'_>,
        accept: Option<&[u8]>,
    ) -> Resolution {
        let name = match &place {
            Place::Under(_, rel) => *rel,
            Place::Exact(p) => p.to_str().unwrap_or_default(),
        };
        let content_type = content_type_with(name, &self.mime_types);
        let acceptable = accept.map(coding::acceptable).unwrap_or_default();
        let original_modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let mut chosen = (file, meta, None);
        for coding in &acceptable {
            let ext = coding.extension();
            let sibling = match &place {
                Place::Under(m, rel) => self.open_under(m, &format!("{rel}{ext}")),
                Place::Exact(p) => open_exact(&PathBuf::from(format!("{}{ext}", p.display()))),
            };
            // A sibling older than its file was left behind by an edit:
            // it would serve stale content, so the file is sent instead.
            if let Ok((f, sibling_meta)) = sibling {
                let fresh =
                    sibling_meta.modified().unwrap_or(SystemTime::UNIX_EPOCH) >= original_modified;
                if sibling_meta.is_file() && fresh {
                    chosen = (f, sibling_meta, Some(coding.token()));
                    break;
                }
            }
        }
        let (file, meta, encoding) = chosen;
        let on_the_fly = self.compressed.is_some()
            && encoding.is_none()
            && coding::compressible(&content_type)
            && Compressed::worth_it(meta.len());
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        Resolution::File(StaticFile {
            file,
            len: meta.len(),
            modified,
            etag: etag(meta.len(), modified, meta.ino()),
            vary: encoding.is_some() || on_the_fly,
            compress: acceptable.first().copied().filter(|_| on_the_fly),
            content_type,
            encoding,
        })
    }
}

fn open_exact(p: &Path) -> Result<(File, Metadata), Errno> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(p)
        .map_err(errno)?;
    let meta = file.metadata().map_err(errno)?;
    Ok((file, meta))
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn failure(e: Errno) -> Resolution {
    match e {
        Errno::EXDEV => Resolution::Forbidden("symlink leads outside the directory"),
        Errno::ELOOP => Resolution::Forbidden("too many symlinks"),
        Errno::EACCES | Errno::EPERM => Resolution::Forbidden("permission denied"),
        _ => Resolution::NotFound("no such file"),
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
