//! mod_wsgi's script reloading: a WSGI script file (or a Paste file, or
//! the module of a module entry point) that changes is reloaded without a
//! signal, the `touch wsgi.py` deploy habit; `--disable-reloading` turns
//! it off.

use rwsgi_tests::{apps_dir, get, Server};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("rwsgi-reloading-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn rewrite(file: &Path, from: &str, to: &str) {
    let source = std::fs::read_to_string(file).expect("read");
    std::fs::write(file, source.replace(from, to)).expect("write");
}

/// What the application answers, as the test waits for it to change.
fn wait_served(server: &Server, want: &str) {
    server.wait_until(
        &format!("{want:?} to be served"),
        Duration::from_secs(20),
        || get(server.port, "/").text() == want,
    );
}

#[test]
fn a_changed_script_is_reloaded_without_a_signal() {
    let tmp = TempDir::new("script");
    let script = tmp.0.join("reloadable.py");
    std::fs::copy(apps_dir().join("reloadable.py"), &script).expect("copy");
    let server = Server::start(&["--python-path", &s(&apps_dir()), &s(&script)]);
    assert_eq!(get(server.port, "/").text(), "one");
    rewrite(&script, "\"one\"", "\"second version\"");
    wait_served(&server, "second version");
    let log = server.log.text();
    assert!(log.contains("a file of the application changed"), "{log}");
    // `touch wsgi.py`: a new mtime alone reloads (the workers are replaced).
    let before = server.worker_pids();
    server.wait_until("the reload to complete", Duration::from_secs(20), || {
        server.log.text().contains("reload complete")
    });
    let before_touch = server.worker_pids();
    std::fs::File::options()
        .write(true)
        .open(&script)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .expect("touch");
    server.wait_until(
        "the workers to be replaced",
        Duration::from_secs(20),
        || {
            let now = server.worker_pids();
            !now.is_empty() && now.iter().all(|p| !before_touch.contains(p))
        },
    );
    assert_ne!(before, server.worker_pids());
    assert_eq!(get(server.port, "/").text(), "second version");
}

#[test]
fn a_changed_module_entry_point_is_reloaded() {
    let tmp = TempDir::new("module");
    std::fs::copy(
        apps_dir().join("reloadable.py"),
        tmp.0.join("reloadable_mod.py"),
    )
    .expect("copy");
    let server = Server::start(&[
        "--application-type",
        "module",
        "--python-path",
        &s(&apps_dir()),
        "--python-path",
        &s(&tmp.0),
        "reloadable_mod",
    ]);
    assert_eq!(get(server.port, "/").text(), "one");
    rewrite(
        &tmp.0.join("reloadable_mod.py"),
        "\"one\"",
        "\"module two\"",
    );
    wait_served(&server, "module two");
}

#[test]
fn disable_reloading_keeps_the_loaded_script() {
    let tmp = TempDir::new("disabled");
    let script = tmp.0.join("reloadable.py");
    std::fs::copy(apps_dir().join("reloadable.py"), &script).expect("copy");
    let server = Server::start(&[
        "--disable-reloading",
        "--python-path",
        &s(&apps_dir()),
        &s(&script),
    ]);
    assert_eq!(get(server.port, "/").text(), "one");
    let workers = server.worker_pids();
    rewrite(&script, "\"one\"", "\"not wanted\"");
    // The monitor looks once a second: three seconds of the old code.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(get(server.port, "/").text(), "one");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.worker_pids(), workers);
    let log = server.log.text();
    assert!(!log.contains("a file of the application changed"), "{log}");
    assert!(!log.contains("--disable-reloading is accepted"), "{log}");
}
