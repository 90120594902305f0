//! The Python package's tests (`python/tests`, pytest), run by `cargo test`: builds the
//! extension with maturin into `target/python`, installs the wheel into
//! `target/python/site` (no network), and runs pytest with it on the path.
//!
//! Where python3, maturin, pytest or numpy is missing the test says so on stderr and
//! passes, unless `UNIMEM_REQUIRE_PYTHON=1` (set by `.ci/run`), which makes it fail.
//! pytest's own output (and its skip reasons, `-rs`) goes straight to the terminal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Tells the person running the tests, past libtest's output capture.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn skip_or_fail(reason: &str) {
    if std::env::var("UNIMEM_REQUIRE_PYTHON").is_ok_and(|v| v == "1") {
        panic!("the Python tests cannot run: {reason} (UNIMEM_REQUIRE_PYTHON=1)");
    }
    say(&format!(
        "python tests SKIPPED: {reason} (pip install maturin numpy pytest; \
         UNIMEM_REQUIRE_PYTHON=1 makes this an error)"
    ));
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn python_package() {
    if !cfg!(target_os = "linux") {
        return skip_or_fail("the Python package is Linux-only for now");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    if !works(&python, &["--version"]) {
        return skip_or_fail(&format!("no {python}"));
    }
    if !works(&python, &["-m", "maturin", "--version"]) {
        return skip_or_fail(&format!("{python} has no maturin"));
    }
    for module in ["pytest", "numpy"] {
        if !works(&python, &["-c", &format!("import {module}")]) {
            return skip_or_fail(&format!("{python} has no {module}"));
        }
    }
    let out = root.join("target/python");
    let wheels = out.join("wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    let built = Command::new("maturin")
        .args([
            "build",
            "--quiet",
            "-m",
            "python/Cargo.toml",
            "-i",
            &python,
            "-o",
        ])
        .arg(&wheels)
        .current_dir(root)
        .status()
        .expect("run maturin");
    assert!(built.success(), "maturin build failed");
    let wheel: PathBuf = std::fs::read_dir(&wheels)
        .expect("the wheel folder")
        .map(|entry| entry.expect("a wheel").path())
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .expect("maturin made no wheel");
    let site = out.join("site");
    let _ = std::fs::remove_dir_all(&site);
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--target",
        ])
        .arg(&site)
        .arg(&wheel)
        .status()
        .expect("run pip");
    assert!(
        installed.success(),
        "pip could not install {}",
        wheel.display()
    );
    let tested = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "python/tests",
        ])
        .env("PYTHONPATH", &site)
        .current_dir(root)
        .status()
        .expect("run pytest");
    assert!(
        tested.success(),
        "the Python tests failed (pytest's output is above)"
    );
}
