//! `cargo xtask fuzz [--seconds N] [TARGET...]`: coverage-guided fuzzing with cargo
//! fuzz (libFuzzer) on the stable toolchain (no sanitizer), each target for a bounded
//! time, growing the corpus kept in `fuzz/corpus/<target>`. The corpus is replayed by
//! ordinary tests, so CI checks every input ever found without fuzzing.

use std::process::Command;

use crate::error::TaskError;
use crate::util::{root, run};

/// Every fuzz target (`fuzz/fuzz_targets/<name>.rs`).
fn targets() -> Result<Vec<String>, TaskError> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("fuzz/fuzz_targets"))
        .map_err(TaskError::Io)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            if path.extension()? != "rs" {
                return None;
            }
            Some(path.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}

pub(crate) fn main(args: &[String]) -> Result<(), TaskError> {
    let mut seconds = 60u64;
    let mut chosen = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s| *s > 0)
                    .ok_or_else(|| {
                        TaskError::Usage("fuzz: --seconds takes a positive whole number".into())
                    })?;
            }
            name => chosen.push(name.to_owned()),
        }
    }
    let all = targets()?;
    if let Some(unknown) = chosen.iter().find(|c| !all.contains(c)) {
        return Err(TaskError::Usage(format!(
            "fuzz: no target {unknown} (targets: {})",
            all.join(", ")
        )));
    }
    if chosen.is_empty() {
        chosen = all;
    }
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        let mut install = Command::new("cargo");
        install.args(["install", "cargo-fuzz", "--locked"]);
        run("cargo install cargo-fuzz", install)?;
    }
    for target in &chosen {
        let corpus = root().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(TaskError::Io)?;
        let mut fuzz = Command::new("cargo");
        fuzz.current_dir(root().join("fuzz"))
            .args(["fuzz", "run", "--sanitizer", "none", target])
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-max_len=4096");
        run(&format!("fuzz {target} for {seconds}s"), fuzz)?;
    }
    eprintln!("xtask: fuzzing found nothing; new corpus inputs are in fuzz/corpus (commit them)");
    Ok(())
}
