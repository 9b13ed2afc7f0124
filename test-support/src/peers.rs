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
