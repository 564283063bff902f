//! Resolving request paths to files, case by case.

use super::*;
use rwsgi_shared::config::UrlAlias;

use std::io::Read;
use std::sync::atomic::AtomicUsize;

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn temp_dir() -> TempDir {
    static N: AtomicUsize = AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "rwsgi-statics-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("test");
    TempDir(p)
}

fn write(dir: &Path, rel: &str, body: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("test")).expect("test");
    std::fs::write(p, body).expect("test");
}

fn head(path: &str, headers: &[(&str, &str)]) -> RequestHead {
    super::super::test_head("GET", path, headers)
}

/// A site: /static -> dir/htdocs, /favicon.ico -> dir/icon.ico,
/// outside: dir/secret.txt.
fn site(config: impl FnOnce(&mut StaticConfig)) -> (TempDir, StaticFiles) {
    let t = temp_dir();
    let d = &t.0;
    write(d, "htdocs/css/site.css", "body{}");
    write(d, "htdocs/app.js", "1");
    write(d, "htdocs/app.js.gz", "gz");
    write(d, "htdocs/app.js.br", "br");
    write(d, "htdocs/docs/index.html", "<p>docs");
    write(d, "htdocs/empty/README", "x");
    write(d, "htdocs/.env", "SECRET");
    write(d, "htdocs/inner.txt", "inner");
    write(d, "secret.txt", "TOP SECRET");
    write(d, "icon.ico", "ico");
    std::os::unix::fs::symlink(d.join("secret.txt"), d.join("htdocs/out.txt")).expect("test");
    std::os::unix::fs::symlink("inner.txt", d.join("htdocs/in.txt")).expect("test");
    let mut c = StaticConfig {
        aliases: vec![
            UrlAlias {
                url: "/static".into(),
                path: d.join("htdocs"),
            },
            UrlAlias {
                url: "/favicon.ico".into(),
                path: d.join("icon.ico"),
            },
        ],
        ..StaticConfig::default()
    };
    config(&mut c);
    let (files, problems) = StaticFiles::new(&c);
    assert!(problems.is_empty(), "{problems:?}");
    (t, files)
}

fn body(r: Resolution) -> String {
    match r {
        Resolution::File(mut f) => {
            let mut s = String::new();
            f.file.read_to_string(&mut s).expect("test");
            s
        }
        other => panic!("not a file: {other:?}"),
    }
}

#[test]
fn files_under_an_alias() {
    let (_t, files) = site(|_| {});
    assert_eq!(
        body(files.resolve(&head("/static/css/site.css", &[]))),
        "body{}"
    );
    assert_eq!(
        body(files.resolve(&head("/static//css/site.css?v=1", &[]))),
        "body{}"
    );
    assert_eq!(body(files.resolve(&head("/favicon.ico", &[]))), "ico");
    let Resolution::File(f) = files.resolve(&head("/static/css/site.css", &[])) else {
        panic!()
    };
    assert_eq!(f.content_type, "text/css; charset=utf-8");
    assert_eq!(f.len, 6);
    assert!(!f.vary);
}

#[test]
fn outside_the_mounts_is_the_apps() {
    let (_t, files) = site(|_| {});
    for p in ["/", "/staticx/a", "/app", "*", "/favicon.icox"] {
        assert!(
            matches!(files.resolve(&head(p, &[])), Resolution::NotStatic),
            "{p}"
        );
    }
    assert!(matches!(
        files.resolve(&head("/favicon.ico/x", &[])),
        Resolution::NotFound(_)
    ));
}

#[test]
fn directories() {
    let (_t, files) = site(|_| {});
    match files.resolve(&head("/static/docs?x=1", &[])) {
        Resolution::Redirect(l) => assert_eq!(l, "/static/docs/?x=1"),
        other => panic!("{other:?}"),
    }
    match files.resolve(&head("/static", &[])) {
        Resolution::Redirect(l) => assert_eq!(l, "/static/"),
        other => panic!("{other:?}"),
    }
    assert_eq!(body(files.resolve(&head("/static/docs/", &[]))), "<p>docs");
    assert!(matches!(
        files.resolve(&head("/static/empty/", &[])),
        Resolution::NotFound(_)
    ));
    assert!(matches!(
        files.resolve(&head("/static/app.js/", &[])),
        Resolution::NotFound(_)
    ));
    assert!(matches!(
        files.resolve(&head("/static/missing.css", &[])),
        Resolution::NotFound(_)
    ));
}

#[test]
fn refusals() {
    let (_t, files) = site(|_| {});
    for p in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/css%2f..%2f..%2fsecret.txt",
        "/static/..%5csecret.txt",
        "/static/.env",
        "/static/%2eenv",
        "/static/out.txt",
        "/static/a%00b",
        "/static/%c0%ae%c0%ae/secret.txt",
    ] {
        assert!(
            matches!(files.resolve(&head(p, &[])), Resolution::Forbidden(_)),
            "{p}: {:?}",
            files.resolve(&head(p, &[]))
        );
    }
    // A symlink that stays inside is fine.
    assert_eq!(body(files.resolve(&head("/static/in.txt", &[]))), "inner");
}

#[test]
fn options_allow_symlinks_and_dotfiles() {
    let (_t, files) = site(|c| {
        c.follow_symlinks = true;
        c.allow_dotfiles = true;
    });
    assert_eq!(
        body(files.resolve(&head("/static/out.txt", &[]))),
        "TOP SECRET"
    );
    assert_eq!(body(files.resolve(&head("/static/.env", &[]))), "SECRET");
    assert!(matches!(
        files.resolve(&head("/static/../secret.txt", &[])),
        Resolution::Forbidden(_)
    ));
}

#[test]
fn fallback_without_openat2_refuses_symlinks_out() {
    let (_t, files) = site(|_| {});
    files.beneath.store(false, Ordering::Relaxed);
    assert!(matches!(
        files.resolve(&head("/static/out.txt", &[])),
        Resolution::Forbidden(_)
    ));
    assert_eq!(body(files.resolve(&head("/static/in.txt", &[]))), "inner");
}

#[test]
fn siblings_follow_the_clients_weights_and_stale_ones_are_ignored() {
    let (t, files) = site(|_| {});
    write(&t.0, "htdocs/app.js.zst", "zst");
    let enc = |ae: &str| match files.resolve(&head("/static/app.js", &[("Accept-Encoding", ae)])) {
        Resolution::File(f) => f.encoding,
        other => panic!("{other:?}"),
    };
    assert_eq!(enc("gzip, deflate, br, zstd"), Some("zstd"));
    assert_eq!(enc("br;q=0.5, gzip"), Some("gzip"));
    assert_eq!(enc("br;q=0.5, gzip;q=0"), Some("br"));
    // An edit of the file after its sibling was made: the sibling is stale.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(t.0.join("htdocs/app.js.zst"))
        .and_then(|f| f.set_modified(old))
        .expect("test");
    assert_eq!(enc("zstd, gzip"), Some("gzip"));
    assert_eq!(enc("zstd"), None);
}

#[test]
fn textual_files_are_compressed_on_the_fly_only_when_asked_and_worth_it() {
    let css = "body { color: black; }\n".repeat(40);
    let (t, plain) = site(|_| {});
    write(&t.0, "htdocs/big.css", &css);
    let (t2, files) = site(|c| c.compress = true);
    write(&t2.0, "htdocs/big.css", &css);
    write(&t2.0, "htdocs/big.png", &css);
    let file = |files: &StaticFiles, path: &str, hs: &[(&str, &str)]| match files
        .resolve(&head(path, hs))
    {
        Resolution::File(f) => f,
        other => panic!("{other:?}"),
    };
    let br = [("Accept-Encoding", "gzip, br")];
    let f = file(&plain, "/static/big.css", &br);
    assert_eq!(
        (f.compress, f.vary),
        (None, false),
        "off without --compress-responses"
    );
    let f = file(&files, "/static/big.css", &br);
    assert_eq!((f.compress, f.vary), (Some(Coding::Br), true));
    let (coding, bytes) = files
        .compressed(&head("/static/big.css", &br), &f)
        .expect("compressed");
    assert_eq!(coding, Coding::Br);
    assert!(bytes.len() < css.len() / 4);
    // A range is served from the file as it is.
    let ranged = [("Accept-Encoding", "br"), ("Range", "bytes=0-9")];
    assert!(files
        .compressed(&head("/static/big.css", &ranged), &f)
        .is_none());
    // The type decides Vary; the client decides the coding.
    let f = file(&files, "/static/big.css", &[]);
    assert_eq!((f.compress, f.vary), (None, true));
    let f = file(&files, "/static/big.png", &br);
    assert_eq!((f.compress, f.vary), (None, false));
    // Too small to be worth it.
    let f = file(&files, "/static/css/site.css", &br);
    assert_eq!((f.compress, f.vary), (None, false));
}

#[test]
fn precompressed_siblings() {
    let (_t, files) = site(|_| {});
    let get = |ae: &str| match files.resolve(&head("/static/app.js", &[("Accept-Encoding", ae)])) {
        Resolution::File(f) => (f.encoding, f.vary, f.content_type, f.etag),
        other => panic!("{other:?}"),
    };
    let (enc, vary, ct, br_tag) = get("gzip, br");
    assert_eq!((enc, vary), (Some("br"), true));
    assert!(ct.contains("javascript"));
    let (enc, vary, _, gz_tag) = get("gzip");
    assert_eq!((enc, vary), (Some("gzip"), true));
    let (enc, vary, _, id_tag) = get("identity");
    assert_eq!((enc, vary), (None, false));
    assert_ne!(br_tag, gz_tag);
    assert_ne!(gz_tag, id_tag);
    assert_eq!(
        body(files.resolve(&head("/static/app.js", &[("Accept-Encoding", "br")]))),
        "br"
    );
}

#[test]
fn document_root_serves_files_and_leaves_the_rest_to_the_app() {
    let (t, files) = site(|c| {
        c.aliases.clear();
    });
    drop(files);
    let c = StaticConfig {
        document_root: Some(t.0.join("htdocs")),
        ..StaticConfig::default()
    };
    let (files, _) = StaticFiles::new(&c);
    assert_eq!(body(files.resolve(&head("/css/site.css", &[]))), "body{}");
    for p in [
        "/",
        "/docs",
        "/docs/",
        "/missing",
        "/.env",
        "/../secret.txt",
        "/out.txt",
    ] {
        assert!(
            matches!(files.resolve(&head(p, &[])), Resolution::NotStatic),
            "{p}"
        );
    }
    let c = StaticConfig {
        document_root: Some(t.0.join("htdocs")),
        directory_index: Some("index.html".into()),
        ..StaticConfig::default()
    };
    let (files, _) = StaticFiles::new(&c);
    assert!(matches!(
        files.resolve(&head("/docs", &[])),
        Resolution::Redirect(_)
    ));
    assert_eq!(body(files.resolve(&head("/docs/", &[]))), "<p>docs");
    assert!(matches!(
        files.resolve(&head("/empty", &[])),
        Resolution::NotStatic
    ));
}

#[test]
fn static_only_answers_everything() {
    let t = temp_dir();
    write(&t.0, "index.html", "home");
    let c = StaticConfig {
        document_root: Some(t.0.clone()),
        only_static: true,
        ..StaticConfig::default()
    };
    let (files, _) = StaticFiles::new(&c);
    assert_eq!(body(files.resolve(&head("/", &[]))), "home");
    assert!(matches!(
        files.resolve(&head("/missing", &[])),
        Resolution::NotFound(_)
    ));
    assert!(matches!(
        files.resolve(&head("/../x", &[])),
        Resolution::Forbidden(_)
    ));
    assert!(matches!(
        files.resolve(&head("*", &[])),
        Resolution::NotFound(_)
    ));
}

#[test]
fn longest_alias_wins_and_missing_dirs_are_reported() {
    let t = temp_dir();
    write(&t.0, "a/x.txt", "a");
    write(&t.0, "b/x.txt", "b");
    let c = StaticConfig {
        aliases: vec![
            UrlAlias {
                url: "/s".into(),
                path: t.0.join("a"),
            },
            UrlAlias {
                url: "/s/deep".into(),
                path: t.0.join("b"),
            },
            UrlAlias {
                url: "/gone".into(),
                path: t.0.join("gone"),
            },
        ],
        ..StaticConfig::default()
    };
    let (files, problems) = StaticFiles::new(&c);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(body(files.resolve(&head("/s/x.txt", &[]))), "a");
    assert_eq!(body(files.resolve(&head("/s/deep/x.txt", &[]))), "b");
    assert!(matches!(
        files.resolve(&head("/gone/x", &[])),
        Resolution::NotFound(_)
    ));
    // Created later: served without a restart.
    write(&t.0, "gone/x", "back");
    assert_eq!(body(files.resolve(&head("/gone/x", &[]))), "back");
    assert!(files.claims(&head("/s/deep", &[])));
    assert!(!files.claims(&head("/other", &[])));
}

#[test]
fn directory_listings_where_directories_are_static() {
    let (t, files) = site(|c| c.directory_listing = true);
    let Resolution::File(f) = files.resolve(&head("/static/empty/", &[])) else {
        panic!()
    };
    assert_eq!(f.content_type, "text/html; charset=utf-8");
    let page = body(files.resolve(&head("/static/empty/", &[])));
    assert!(page.contains("href=\"README\"") && page.contains("href=\"../\""));
    // The alias root: no parent, no dotfile, no symlink out.
    let page = body(files.resolve(&head("/static/", &[])));
    assert!(!page.contains("href=\"../\""), "{page}");
    assert!(
        !page.contains(".env") && !page.contains("out.txt"),
        "{page}"
    );
    assert!(page.contains("href=\"in.txt\"") && page.contains("href=\"css/\""));
    assert!(matches!(
        files.resolve(&head("/static/empty", &[])),
        Resolution::Redirect(_)
    ));
    assert_eq!(body(files.resolve(&head("/static/docs/", &[]))), "<p>docs");
    // A document root next to an application: directories are the
    // application's unless --directory-index makes them static.
    let mut c = StaticConfig {
        document_root: Some(t.0.join("htdocs")),
        directory_listing: true,
        ..StaticConfig::default()
    };
    let (files, _) = StaticFiles::new(&c);
    assert!(matches!(
        files.resolve(&head("/empty/", &[])),
        Resolution::NotStatic
    ));
    c.directory_index = Some("index.html".into());
    let (files, _) = StaticFiles::new(&c);
    assert!(body(files.resolve(&head("/empty/", &[]))).contains("README"));
    assert!(!body(files.resolve(&head("/", &[]))).contains("href=\"../\""));
}
