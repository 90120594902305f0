//! `Engine::load`'s refusals on a machine that has UCX: each runs in a child process whose
//! `dlopen("libucp.so.0")` finds, through `LD_LIBRARY_PATH`, a library that is not the real
//! one (the outcome of the load is kept per process, so each case needs a process of its
//! own):
//!
//! - a `libucp.so.0` that is not a shared object: `dlopen` fails, `UcxMissing`;
//! - the stand-in of `tests/fake_ucx/libucp.rs` reporting UCX 1.12 or 2.0: `UcxVersion`;
//! - the stand-in built without `ucp_put_nbx`: `UcxSymbolMissing`.
//!
//! The stand-in is compiled here with `rustc` into `CARGO_TARGET_TMPDIR` (or taken from
//! `UNIMEM_FAKE_UCX_DIR`, whose `full/` and `partial/` hold the two builds). Without `rustc`
//! the tests that need it say so and pass; `UNIMEM_REQUIRE_FAKE_UCX=1` (set by `.ci/run`)
//! makes that a failure. The stand-in aborts if any function but `ucp_get_version` is
//! called: a refused load calls nothing else.

#![cfg(all(feature = "ucx", target_os = "linux", not(miri)))]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::is_child;
use unimem::remote::Engine;
use unimem::{ErrorKind, MemError};

/// The directory holding the stand-in `libucp.so.0` (`full` or `partial`), built once per
/// test process; `Err` says why there is none.
fn stand_in(build: &'static str) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("UNIMEM_FAKE_UCX_DIR") {
        return Ok(PathBuf::from(dir).join(build));
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let root = BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fake-ucx");
            let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fake_ucx/libucp.rs");
            let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
            for (build, cfg) in [("full", None), ("partial", Some("unimem_fake_ucx_partial"))] {
                let dir = root.join(build);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let mut command = std::process::Command::new(&rustc);
                command.args(["--edition", "2021", "--crate-type", "cdylib", "-O"]);
                if let Some(cfg) = cfg {
                    command.args(["--cfg", cfg]);
                }
                let status = command
                    .arg(source)
                    .arg("-o")
                    .arg(dir.join("libucp.so.0"))
                    .status()
                    .map_err(|e| format!("cannot run {rustc} to build the stand-in UCX: {e}"))?;
                if !status.success() {
                    return Err(format!("{rustc} failed to build {source} ({status})"));
                }
            }
            Ok(root)
        })
        .clone()?;
    Ok(root.join(build))
}

/// Runs `test` in a child with `env` added, its `libucp.so.0` found in `dir` first.
fn in_child(test: &str, dir: &std::path::Path, env: &[(&str, String)]) {
    let mut env = env.to_vec();
    env.push(("LD_LIBRARY_PATH", dir.display().to_string()));
    common::assert_passed(test, &common::run_child_with(test, &env));
}

/// What `Engine::load` says, twice: the outcome of the first load is kept.
fn refusal() -> MemError {
    let err = Engine::load().expect_err("the load is refused");
    assert_eq!(Engine::load().unwrap_err(), err, "the outcome is kept");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    err
}

#[test]
fn a_libucp_that_cannot_be_loaded_is_ucx_missing() {
    const TEST: &str = "a_libucp_that_cannot_be_loaded_is_ucx_missing";
    if is_child(TEST) {
        let err = refusal();
        let MemError::UcxMissing { library, reason } = &err else {
            panic!("not UcxMissing: {err}");
        };
        assert_eq!(*library, "libucp.so.0");
        // dlerror()'s own words, naming the file it found.
        assert!(
            reason.contains("libucp.so.0") && reason.contains("too short"),
            "{reason}"
        );
        assert!(err.to_string().contains("apt-get install libucx0"), "{err}");
        return;
    }
    // An empty file where the dynamic loader looks first: what a broken or half-removed
    // installation leaves. (An empty directory would not do: the loader goes on to the
    // system's libucp.so.0.)
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("broken-ucx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("libucp.so.0"), b"").unwrap();
    in_child(TEST, &dir, &[]);
}

#[test]
fn an_older_or_another_major_ucx_is_ucx_version() {
    const TEST: &str = "an_older_or_another_major_ucx_is_ucx_version";
    if is_child(TEST) {
        let reported = std::env::var("UNIMEM_FAKE_UCX_VERSION").unwrap();
        let (major, minor) = match reported.as_str() {
            "1.12.9" => (1, 12),
            "2.0.0" => (2, 0),
            other => panic!("unexpected version {other}"),
        };
        let err = refusal();
        assert_eq!(
            err,
            MemError::UcxVersion {
                major,
                minor,
                min_major: 1,
                min_minor: 13
            }
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("UCX {major}.{minor} is installed")) && text.contains("1.13"),
            "{text}"
        );
        return;
    }
    let dir = match stand_in("full") {
        Ok(dir) => dir,
        Err(why) => return common::skip(TEST, "FAKE_UCX", &why),
    };
    for version in ["1.12.9", "2.0.0"] {
        in_child(TEST, &dir, &[("UNIMEM_FAKE_UCX_VERSION", version.into())]);
    }
}

#[test]
fn a_ucx_without_a_function_is_ucx_symbol_missing() {
    const TEST: &str = "a_ucx_without_a_function_is_ucx_symbol_missing";
    if is_child(TEST) {
        let err = refusal();
        let MemError::UcxSymbolMissing {
            library,
            symbol,
            reason,
        } = &err
        else {
            panic!("not UcxSymbolMissing: {err}");
        };
        assert_eq!((*library, *symbol), ("libucp.so.0", "ucp_put_nbx"));
        assert!(reason.contains("ucp_put_nbx"), "{reason}");
        assert!(err.to_string().contains("UCX 1.13 or later"), "{err}");
        return;
    }
    let dir = match stand_in("partial") {
        Ok(dir) => dir,
        Err(why) => return common::skip(TEST, "FAKE_UCX", &why),
    };
    // A version unimem accepts: the missing function, not the version, is the refusal.
    in_child(TEST, &dir, &[("UNIMEM_FAKE_UCX_VERSION", "1.13.1".into())]);
}
