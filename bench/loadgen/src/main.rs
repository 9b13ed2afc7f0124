//! `loadgen`: parses arguments, runs one mode, prints its `RESULT` line.
//!
//! Exit status: 0 when the run was `ok`; 1 when it ran but failed its checks (the
//! `RESULT` line is still printed, and one line on stderr says why) or could not run;
//! 2 for bad arguments.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use loadgen::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's message is several lines (usage, hints): keep the first.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            eprintln!("loadgen: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match loadgen::run(cli.command) {
        Ok(report) => {
            println!("{}", report.result_line());
            match &report.problem {
                None => ExitCode::SUCCESS,
                Some(problem) => {
                    eprintln!("loadgen: {}: {problem}", report.mode);
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
