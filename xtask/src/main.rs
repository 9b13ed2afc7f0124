//! The project's automation, reached as `cargo xtask <task>` (the cargo-xtask
//! convention; the alias is in `.cargo/config.toml`).
//!
//! * `demo`: three slow poetry servers and the client fetching from them and from a
//!   dead port, with progress and timeline (the README's main job); `--quick` serves
//!   ten times faster and checks what the client printed. `--all`: the poetry server,
//!   the caching proxy and the transform service together (fetch twice, the second
//!   from the cache; cummingsify with client 6.0).
//! * `ci`: format, lint, every test (unit, integration, doc), docs, the quick demos and
//!   the benchmark's smoke run.
//! * `fuzz [--seconds N] [TARGET...]`: cargo fuzz on each target for a bounded time.
//! * `bench [--smoke] [--rounds N] [SCENARIO...]`: the stack against its peers, side
//!   by side (bulk, poems, echo, idle, slow, timers, transform, proxy); a full run rewrites
//!   `docs/benchmarks.md`, `--smoke` (run by `ci`) is tiny and writes nothing.
//! * `soak [--downloads N] [--concurrency C] [--slow]`: a million checked downloads
//!   from the release server; fails on any corrupted or lost poem or memory growth.

use std::process::ExitCode;

mod bench;
mod ci;
mod demo;
mod demo_all;
mod error;
mod fuzz;
mod soak;
mod util;

const USAGE: &str =
    "usage: cargo xtask <demo [--all] [--release] [--quick] | ci | fuzz [--seconds N] [TARGET...] \
                     | bench [--smoke] [--rounds N] [SCENARIO...] \
                     | soak [--downloads N] [--concurrency C] [--slow]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match task.as_str() {
        "demo" => demo::main(rest),
        "ci" => ci::main(rest),
        "fuzz" => fuzz::main(rest),
        "bench" => bench::main(rest),
        "soak" => soak::main(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("xtask: unknown task {other}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ error::TaskError::Usage(_)) => {
            eprintln!("xtask: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
