//! Helpers the workspace's integration tests share (a dev-dependency only; no layer
//! depends on it).
//!
//! The rule for real peers no one here wrote (Twisted, `nc`): under CI (`CI=true`) a
//! missing peer is a failure with a clear message, never a skip; elsewhere the test
//! skips, says so on the process's real stderr (which the test harness does not
//! capture) and appends a line to `<target>/skipped-tests.txt`, which
//! `cargo xtask ci` reports after the tests.
//!
//! ```no_run
//! # fn find_nc() -> Option<std::path::PathBuf> { None }
//! let Some(nc) = test_support::peer_or_skip("nc", find_nc(), "apt-get install netcat-openbsd")
//! else {
//!     return; // skipped, loudly and counted (never under CI=true)
//! };
//! # let _ = nc;
//! ```

use std::io::Write;
use std::path::PathBuf;

/// Whether this run is CI's (`CI=true`), where a missing peer fails.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `found` if the peer is there; otherwise, under CI, a panic naming the peer and how
/// to install it; elsewhere `None` after [`skip`].
///
/// # Panics
///
/// Under `CI=true` when `found` is `None`.
#[track_caller]
pub fn peer_or_skip<T>(peer: &str, found: Option<T>, install: &str) -> Option<T> {
    if found.is_some() {
        return found;
    }
    let why = format!("{peer} is missing (install: {install})");
    assert!(
        !under_ci(),
        "{why}: under CI=true a missing peer is a failure, not a skip (.ci/run installs it)"
    );
    skip(&why);
    None
}

/// Records that the running test skips, and why: a loud line on the real stderr and
/// one in `<target>/skipped-tests.txt`.
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("SKIPPED {test}: {why}");
    // Straight to the file descriptor: `eprintln!` in a test is captured and lost.
    let _ = writeln!(std::io::stderr().lock(), "\n*** {line} ***\n");
    if let Some(log) = skip_log() {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// `<target>/skipped-tests.txt`, found from the running test binary
/// (`<target>/<profile>/deps/<test>`).
pub fn skip_log() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?;
    Some(target.join("skipped-tests.txt"))
}

/// The workspace's root directory.
///
/// # Panics
///
/// Never in this workspace: test-support sits one level below the root.
pub fn workspace() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace")
        .to_path_buf()
}

/// Builds `package`'s example `name` as a binary (`cargo build --example`, in the
/// running test's profile and target directory: a no-op when it is already built) and
/// returns its path. Tests never look for a binary some other command may or may not
/// have built: `--all-targets` builds examples as test harnesses under hashed names.
///
/// # Panics
///
/// If the test binary is not in `<target>/<profile>/deps/`, or the build fails.
pub fn build_example(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in <target>/<profile>/deps");
    let target = profile_dir.parent().expect("a target directory");
    let mut build =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build
        .current_dir(workspace())
        .args(["build", "-q", "-p", package, "--example", name])
        .arg("--target-dir")
        .arg(target)
        .stdin(std::process::Stdio::null());
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let output = build.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "building the {name} example of {package} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = profile_dir.join("examples").join(name);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}
