//! `--directory-listing` (and `--directory-index`) as a browser meets them:
//! python requests follows the links of a listing whose names hold spaces,
//! non-ASCII letters and HTML; `..` never lists the directory above.

use rwsgi_tests::{app, json, request, Server};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fixture directory, removed when dropped: `htdocs/` next to `secret.txt`.
struct Site(PathBuf);

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SCRIPT_NAME: &str = "<script>alert(1)<.txt";

impl Site {
    fn new() -> Site {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "listings-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let site = Site(dir);
        site.write("htdocs/a b.txt", "with a space");
        site.write("htdocs/café.txt", "unicode");
        site.write(&format!("htdocs/{SCRIPT_NAME}"), "html in a name");
        site.write("htdocs/big.bin", &"x".repeat(2048));
        site.write("htdocs/sub dir/inner.txt", "inner");
        site.write("htdocs/docs/index.html", "<h1>the index</h1>");
        site.write("htdocs/.env", "SECRET=dotfile");
        site.write("secret.txt", "TOP SECRET");
        let h = site.0.join("htdocs");
        std::os::unix::fs::symlink("a b.txt", h.join("in.txt")).expect("symlink");
        std::os::unix::fs::symlink(site.0.join("secret.txt"), h.join("out.txt")).expect("symlink");
        site
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write fixture");
    }

    fn htdocs(&self) -> String {
        self.0.join("htdocs").to_string_lossy().into_owned()
    }
}

/// Runs python requests in the test venv: `code` sees `base` and puts its
/// findings in the dict `out`, printed as JSON.
fn browse(base: &str, code: &str) -> serde_json::Value {
    let script = format!(
        "import json, re, requests\nfrom urllib.parse import urljoin\nbase = {base:?}\nout = {{}}\n{code}\nprint(json.dumps(out))\n"
    );
    json(rwsgi_tests::venv_python(&script, &[]).as_bytes())
}

/// What a browser does with a listing: every link followed.
const FOLLOW_LINKS: &str = r#"
r = requests.get(base)
out["status"] = r.status_code
out["type"] = r.headers.get("Content-Type")
out["page"] = r.text
out["etag"] = r.headers.get("ETag")
out["length"] = r.headers.get("Content-Length")
links = re.findall(r'href="([^"]*)"', r.text)
out["links"] = links
out["followed"] = {}
for href in links:
    f = requests.get(urljoin(base, href))
    out["followed"][href] = [f.status_code, f.text]
h = requests.head(base)
out["head"] = [h.status_code, h.headers.get("Content-Length"), len(h.content)]
c = requests.get(base, headers={"If-None-Match": r.headers.get("ETag", "")})
out["conditional"] = c.status_code
s = requests.get(base + "sub%20dir", allow_redirects=False)
out["redirect"] = [s.status_code, s.headers.get("Location")]
sub = requests.get(base + "sub dir/")
out["sub"] = [sub.status_code, sub.text]
"#;

#[test]
fn a_listing_under_an_alias_is_browsable_and_escaped() {
    let site = Site::new();
    let htdocs = site.htdocs();
    let server = Server::start(&[
        "--url-alias",
        "/files",
        &htdocs,
        "--directory-listing",
        &app("app.py"),
    ]);
    let base = format!("http://127.0.0.1:{}/files/", server.port);
    let out = browse(&base, FOLLOW_LINKS);
    assert_eq!(out["status"], 200, "{out}\n{}", server.log.text());
    assert_eq!(out["type"], "text/html; charset=utf-8");
    let page = out["page"].as_str().expect("page");
    // Names are escaped in the text, encoded in the links.
    assert!(page.contains("Index of /files/"), "{page}");
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;.txt"), "{page}");
    // Sizes and dates.
    assert!(page.contains("<td>12</td>"), "{page}");
    assert!(page.contains("<td>2.0K</td>"), "{page}");
    assert!(page.contains(" GMT</td>"), "{page}");
    // What the static rules refuse is not shown; the alias root has no parent.
    assert!(
        !page.contains(".env") && !page.contains("out.txt"),
        "{page}"
    );
    assert!(!page.contains("secret"), "{page}");
    let links: Vec<&str> = out["links"]
        .as_array()
        .expect("links")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert_eq!(
        links,
        [
            "%3Cscript%3Ealert%281%29%3C.txt",
            "a%20b.txt",
            "big.bin",
            "caf%C3%A9.txt",
            "docs/",
            "in.txt",
            "sub%20dir/",
        ],
        "sorted by name, no parent link"
    );
    // Every link works, and gives the file.
    let followed = &out["followed"];
    assert_eq!(followed["a%20b.txt"][1], "with a space");
    assert_eq!(followed["caf%C3%A9.txt"][1], "unicode");
    assert_eq!(
        followed["%3Cscript%3Ealert%281%29%3C.txt"][1],
        "html in a name"
    );
    assert_eq!(followed["in.txt"][1], "with a space");
    assert_eq!(followed["docs/"][1], "<h1>the index</h1>", "the index wins");
    for link in &links {
        assert_eq!(followed[*link][0], 200, "{link}: {out}");
    }
    // HEAD and conditional requests as for a file.
    assert_eq!(out["head"][0], 200);
    assert_eq!(out["head"][1], out["length"]);
    assert_eq!(out["head"][2], 0);
    assert_eq!(out["conditional"], 304);
    // A directory without its slash is redirected to it (mod_dir).
    assert_eq!(out["redirect"][0], 301);
    assert_eq!(out["redirect"][1], "/files/sub%20dir/");
    // Below the root: a parent link, and the directory's own names.
    assert_eq!(out["sub"][0], 200);
    let sub = out["sub"][1].as_str().expect("sub");
    assert!(
        sub.contains("href=\"../\"") && sub.contains("href=\"inner.txt\""),
        "{sub}"
    );
    assert!(sub.contains("Index of /files/sub dir/"), "{sub}");
    // A changed directory is a changed listing.
    site.write("htdocs/new.txt", "new");
    let again = browse(
        &base,
        &format!(
            "out['status'] = requests.get(base, headers={{'If-None-Match': {:?}}}).status_code",
            out["etag"].as_str().expect("etag")
        ),
    );
    assert_eq!(again["status"], 200);
    // `..` however spelled never lists what is above the alias.
    for path in [
        "/files/../",
        "/files/%2e%2e/",
        "/files/sub%20dir/../../",
        "/files/.%2e/",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let r = request(server.port, raw.as_bytes()).expect("request");
        let body = r.text();
        assert!(
            !body.contains("secret.txt") && !body.contains("htdocs"),
            "{path}: {}\n{body}",
            r.status
        );
        assert!(
            r.status == 403 || r.status == 404 || r.status == 400,
            "{path}: {}",
            r.head
        );
    }
}

#[test]
fn document_root_listings_follow_apaches_rules() {
    let site = Site::new();
    let htdocs = site.htdocs();
    // Static only: the document root is listed, without a parent link.
    let server = Server::start(&[
        "--application-type",
        "static",
        "--directory-listing",
        &htdocs,
    ]);
    let base = format!("http://127.0.0.1:{}/", server.port);
    let out = browse(
        &base,
        "r = requests.get(base); out['root'] = [r.status_code, r.text]",
    );
    assert_eq!(out["root"][0], 200, "{}", server.log.text());
    let root = out["root"][1].as_str().expect("root");
    assert!(
        root.contains("Index of /") && root.contains("href=\"sub%20dir/\""),
        "{root}"
    );
    assert!(!root.contains("href=\"../\""), "{root}");
    drop(server);
    // Next to an application, directories are the application's unless
    // --directory-index makes them static (as mod_wsgi-express's rewrite rules).
    let server = Server::start(&[
        "--document-root",
        &htdocs,
        "--directory-listing",
        &app("app.py"),
    ]);
    let base = format!("http://127.0.0.1:{}/", server.port);
    let out = browse(
        &base,
        "r = requests.get(base + 'sub dir/'); out['sub'] = [r.status_code, r.text]",
    );
    assert_eq!(out["sub"][0], 404);
    assert_eq!(out["sub"][1], "not found", "the application's 404");
    drop(server);
    let server = Server::start(&[
        "--document-root",
        &htdocs,
        "--directory-index",
        "index.html",
        "--directory-listing",
        &app("app.py"),
    ]);
    let base = format!("http://127.0.0.1:{}/", server.port);
    let out = browse(
        &base,
        "r = requests.get(base + 'sub dir/'); out['sub'] = [r.status_code, r.text]\nr = requests.get(base + 'environ'); out['app'] = r.status_code",
    );
    assert_eq!(out["sub"][0], 200);
    assert!(out["sub"][1]
        .as_str()
        .expect("sub")
        .contains("href=\"inner.txt\""));
    assert_eq!(out["app"], 200, "the application still answers the rest");
}
