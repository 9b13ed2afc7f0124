//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure; last,
//! the benchmark's smoke run (`cargo xtask bench --smoke`) on the debug binaries the
//! tests built.

use crate::error::TaskError;
use crate::util::{cargo, run};

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

    let mut test = cargo();
    test.args(["test", "--workspace", "--all-targets"]);
    run("cargo test --workspace --all-targets", test)?;

    let mut doctest = cargo();
    doctest.args(["test", "--workspace", "--doc"]);
    run("cargo test --workspace --doc", doctest)?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run("cargo doc --workspace --no-deps (warnings denied)", doc)?;

    eprintln!("xtask: cargo xtask bench --smoke");
    crate::bench::smoke()?;

    eprintln!("xtask: ci passed");
    Ok(())
}
