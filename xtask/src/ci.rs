//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure; then
//! the library crates' packaging, `cargo install` of the two programs, the
//! protocol-crate template (a crate outside the workspace, built as a newcomer builds
//! theirs), the quick demos (`cargo xtask demo --quick` and `--all --quick`, checked) and, last, the
//! benchmark's smoke run (`cargo xtask bench --smoke`) on the debug binaries the tests
//! built.
//!
//! A test whose peer (Twisted, nc) is missing fails under `CI=true`; elsewhere it
//! skips, and says so in `<target>/skipped-tests.txt`, which this task empties before
//! the tests and reports after them.

use std::process::{Command, Stdio};

use crate::demo::target_dir;
use crate::error::TaskError;
use crate::util::{cargo, root, run};

/// The crates other people depend on, bottom first.
const LIBRARIES: [&str; 4] = ["reactor", "deferred", "transport", "protocol"];

/// The template of `docs/writing-a-protocol-crate.md`, outside the workspace.
const TEMPLATE: &str = "examples/protocol-crate-template/Cargo.toml";

/// What every library package must carry.
const PACKAGED: [&str; 4] = ["Cargo.toml", "LICENSE", "README.md", "src/lib.rs"];

pub(crate) fn main(args: &[String]) -> Result<(), TaskError> {
    if let Some(other) = args.first() {
        return Err(TaskError::Usage(format!("ci: unknown argument {other}")));
    }
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run("cargo fmt --all --check", fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(
        "cargo clippy --workspace --all-targets -- -D warnings",
        clippy,
    )?;

    let skipped = crate::demo::target_dir().join("skipped-tests.txt");
    let _ = std::fs::remove_file(&skipped);
    let mut test = cargo();
    test.args(["test", "--workspace", "--all-targets"]);
    run("cargo test --workspace --all-targets", test)?;
    report_skips(&skipped);

    let mut doctest = cargo();
    doctest.args(["test", "--workspace", "--doc"]);
    run("cargo test --workspace --doc", doctest)?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run("cargo doc --workspace --no-deps (warnings denied)", doc)?;

    packaging()?;
    install()?;
    template()?;

    eprintln!("xtask: cargo xtask demo --quick");
    crate::demo::main(&["--quick".to_owned()])?;
    eprintln!("xtask: cargo xtask demo --all --quick");
    crate::demo::main(&["--all".to_owned(), "--quick".to_owned()])?;

    eprintln!("xtask: cargo xtask bench --smoke");
    crate::bench::smoke()?;

    eprintln!("xtask: ci passed");
    Ok(())
}

/// Says loudly which tests skipped for want of a peer (none can under `CI=true`).
fn report_skips(file: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    if !lines.is_empty() {
        eprintln!(
            "xtask: {} tests SKIPPED for a missing peer (they fail under CI=true; .ci/run installs the peers):",
            lines.len()
        );
        for line in lines {
            eprintln!("xtask:   {line}");
        }
    }
}

/// Packages the library crates and builds each package from its tarball, the lower
/// layers' tarballs standing in for crates.io (so this works before anything is
/// published), then checks that each package carries its license and README.
fn packaging() -> Result<(), TaskError> {
    forget_unpacked_tarballs()?;
    let target = target_dir().join("package-check");
    forget_built_tarballs(&target.join("debug"))?;
    let mut package = cargo();
    package
        .args(["package", "--allow-dirty"])
        .env("CARGO_TARGET_DIR", &target);
    for krate in LIBRARIES {
        package.args(["-p", krate]);
    }
    run(
        "cargo package of the library crates (each built from its tarball)",
        package,
    )?;
    for krate in LIBRARIES {
        let mut list = cargo();
        list.args(["package", "--list", "--allow-dirty", "-p", krate]);
        let what = format!("cargo package --list -p {krate}");
        eprintln!("xtask: {what}");
        let output = list.output().map_err(|e| TaskError::Spawn {
            what: what.clone(),
            source: e,
        })?;
        if !output.status.success() {
            return Err(TaskError::Failed {
                what,
                status: output.status.code(),
            });
        }
        let files = String::from_utf8_lossy(&output.stdout);
        if let Some(missing) = PACKAGED.iter().find(|f| !files.lines().any(|l| l == **f)) {
            return Err(TaskError::Check(format!(
                "the {krate} package lacks {missing}"
            )));
        }
    }
    Ok(())
}

/// Removes what earlier packaging runs unpacked of our own tarballs. Cargo unpacks the
/// stand-in registry's crates under `$CARGO_HOME/registry/src/-<hash>/NAME-VERSION` and
/// never unpacks the same name and version again, so a later run would build against
/// the sources of an earlier commit. Only those nameless-source folders are touched.
fn forget_unpacked_tarballs() -> Result<(), TaskError> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    let Some(sources) = home.map(|h| h.join("registry/src")) else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(&sources) else {
        return Ok(());
    };
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for krate in LIBRARIES {
            let stale = entry
                .path()
                .join(format!("{krate}-{}", env!("CARGO_PKG_VERSION")));
            if stale.exists() {
                std::fs::remove_dir_all(&stale).map_err(TaskError::Io)?;
            }
        }
    }
    Ok(())
}

/// Removes what earlier packaging runs built of our own tarballs in their own target
/// directory: cargo takes a registry crate of the same name and version as unchanged,
/// so without this a later run would link the build of an earlier commit.
fn forget_built_tarballs(profile: &std::path::Path) -> Result<(), TaskError> {
    for folder in [".fingerprint", "deps"] {
        let Ok(entries) = std::fs::read_dir(profile.join(folder)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = LIBRARIES.iter().any(|krate| {
                name.starts_with(&format!("{krate}-")) || name.starts_with(&format!("lib{krate}-"))
            });
            if ours {
                let path = entry.path();
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(TaskError::Io)?;
            }
        }
    }
    Ok(())
}

/// `cargo install --path` works for both programs, as the README says: a debug
/// install (reusing the workspace's build) into `target/install-check`, and the
/// installed binaries run.
fn install() -> Result<(), TaskError> {
    let target = target_dir();
    let into = target.join("install-check");
    for program in ["poetry-server", "poetry-client"] {
        let mut command = cargo();
        command
            .args(["install", "--locked", "--debug", "--force"])
            .args(["--path", program, "--root"])
            .arg(&into)
            .arg("--target-dir")
            .arg(&target);
        run(
            &format!("cargo install --locked --debug --force --path {program}"),
            command,
        )?;
        let mut help = Command::new(into.join("bin").join(program));
        help.arg("--help").stdout(Stdio::null());
        run(&format!("the installed {program} --help"), help)?;
    }
    Ok(())
}

/// Formats, lints and tests the protocol-crate template with its own manifest, as a
/// crate outside the workspace; it shares the workspace's target directory so the
/// layers below are not built twice.
fn template() -> Result<(), TaskError> {
    let target = target_dir();
    let manifest = root().join(TEMPLATE);
    let steps: [(&str, &[&str]); 3] = [
        ("fmt", &["--check"]),
        ("clippy", &["--all-targets", "--", "-D", "warnings"]),
        ("test", &[]),
    ];
    for (step, extra) in steps {
        let mut command = cargo();
        command
            .arg(step)
            .arg("--manifest-path")
            .arg(&manifest)
            .args(extra)
            .env("CARGO_TARGET_DIR", &target);
        run(&format!("cargo {step} --manifest-path {TEMPLATE}"), command)?;
    }
    Ok(())
}
