//! The Kubernetes manifests in deploy/kubernetes/ are valid for a current
//! Kubernetes, checked strictly (unknown fields refused) with
//! kubernetes-validate from the test virtualenv.

use std::process::Command;

#[test]
fn kubernetes_manifests_validate() {
    let tool = rwsgi_tests::test_venv().join("bin/kubernetes-validate");
    assert!(
        tool.is_file(),
        "{} is missing: ./tests/run installs tests/requirements.txt",
        tool.display()
    );
    let dir = rwsgi_tests::repo_root().join("deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let out = Command::new(&tool)
        .args(["--strict", "--kubernetes-version", "1.37.0"])
        .args(&files)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches(" passed for resource ").count(),
        files.len(),
        "{text}"
    );
}
