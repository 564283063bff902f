//! Links the worker to the Python it was built against.
//!
//! Without an rpath the loader takes whatever `libpython3.X.so` it finds
//! first (on Debian with pyenv: the system 3.11.2 instead of pyenv's 3.11.7,
//! with the wrong `sys.prefix`). The rpath points at that Python's LIBDIR;
//! where it does not exist (a container image), the loader falls back to the
//! system's library of the same soname.

fn main() {
    let config = pyo3_build_config::get();
    if let Some(lib_dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
    let executable = config.executable().map(str::to_owned).unwrap_or_default();
    println!("cargo:rustc-env=RWSGI_BUILD_PYTHON={executable}");
    println!(
        "cargo:rustc-env=RWSGI_BUILD_PYTHON_VERSION={}.{}",
        config.version().major,
        config.version().minor
    );
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
