//! The rule for real peers no one here wrote (Twisted, `nc`): under CI (`CI=true`) a
//! missing peer is a failure with a clear message, never a skip; elsewhere the test
//! skips, says so on the process's real stderr (which the test harness does not
//! capture) and appends a line to `<target>/skipped-tests.txt`, which
//! `cargo xtask ci` reports after the tests.

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

/// A Python that can import Twisted: `$TWISTED_PYTHON`, else the workspace's
/// `.venv/bin/python` (what `.ci/run` makes). `None` if neither can.
pub fn twisted_python() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("TWISTED_PYTHON") {
        candidates.push(PathBuf::from(path));
    }
    candidates.push(crate::workspace().join(".venv/bin/python"));
    candidates.into_iter().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import twisted"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A Twisted peer script of the benchmark's (`bench/peers/twisted/<script>`), if there.
pub fn twisted_peer(script: &str) -> Option<PathBuf> {
    let path = crate::workspace().join("bench/peers/twisted").join(script);
    path.is_file().then_some(path)
}

/// `nc` on the `PATH`, if installed.
pub fn find_nc() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nc"))
        .find(|candidate| candidate.is_file())
}

/// `nc`, or `None` after a loud skip ([`peer_or_skip`]: a failure under `CI=true`).
pub fn nc_or_skip() -> Option<PathBuf> {
    peer_or_skip("nc", find_nc(), "apt-get install netcat-openbsd")
}

/// A Python with Twisted ([`twisted_python`]), or `None` after a loud skip
/// ([`peer_or_skip`]: a failure under `CI=true`).
pub fn twisted_python_or_skip() -> Option<PathBuf> {
    peer_or_skip(
        "Twisted",
        twisted_python(),
        "python3 -m venv .venv && .venv/bin/pip install -r bench/peers/twisted/requirements.txt",
    )
}
