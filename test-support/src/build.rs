//! Where the workspace is, and the examples built for the tests that run them.

use std::path::PathBuf;

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
