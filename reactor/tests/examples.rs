//! The examples, run as a reader runs them (built by `test_support::build_example`, so
//! these tests always run), their output checked against what each one teaches.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `reactor`'s example `name` with `args` and `stdin`, to its end (at most 20 s).
fn run_example(name: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(test_support::build_example("reactor", name))
        .args(args)
        .env("RUST_LOG", "error")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).expect("the example takes its input");
    drop(input); // end of file
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the {name} example did not end within 20 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("its output")
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn hello_prints_from_the_delayed_call_then_stops() {
    let began = Instant::now();
    let out = stdout_of(&run_example("hello", &[], b""));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "Starting the reactor.");
    let seconds: f64 = lines[1]
        .strip_prefix("Hello from the reactor, ")
        .and_then(|l| l.strip_suffix("s after it started."))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", lines[1]));
    assert!((0.5..5.0).contains(&seconds), "{seconds}");
    assert_eq!(lines[2], "The reactor has stopped.");
    assert!(began.elapsed() >= Duration::from_millis(500));
}

#[test]
fn countdown_counts_down_one_step_apart() {
    let began = Instant::now();
    let out = stdout_of(&run_example("countdown", &["0.05"], b""));
    assert_eq!(
        out,
        "Start!\n5...\n4...\n3...\n2...\n1...\nLiftoff!\nStop!\n"
    );
    // Five steps of 50 ms, each a timer: not printed all at once.
    assert!(
        began.elapsed() >= Duration::from_millis(250),
        "{:?}",
        began.elapsed()
    );
    let bad = run_example("countdown", &["soon"], b"");
    assert!(!bad.status.success());
}

#[test]
fn exception_is_logged_and_the_next_call_still_runs() {
    let output = run_example("exception", &[], b"");
    let out = stdout_of(&output);
    assert_eq!(out, "But I get up again.\nThe reactor stopped normally.\n");
    let err = String::from_utf8_lossy(&output.stderr);
    // The panic, and the reactor's log line about it.
    assert!(err.contains("I fall down."), "{err}");
    assert!(err.contains("panicked"), "{err}");
}

#[test]
fn stack_shows_the_reactor_under_the_callback() {
    let out = stdout_of(&run_example("stack", &[], b""));
    let stack = out
        .strip_prefix("The stack inside a delayed call:\n")
        .unwrap_or_else(|| panic!("{out}"));
    if cfg!(debug_assertions) {
        // Innermost first: the callback, then the reactor's run under it.
        let callback = stack.find("stack::main::").expect(stack);
        let run = stack.find("reactor::reactor::Reactor::run").expect(stack);
        assert!(callback < run, "{stack}");
    }
}

#[test]
fn read_stdin_counts_every_byte_to_end_of_file() {
    let input = b"roses are red\n".repeat(3000); // 42,000 bytes: several reads
    let out = stdout_of(&run_example("read_stdin", &[], &input));
    let mut lines: Vec<&str> = out.lines().collect();
    let last = lines.pop().unwrap_or_default();
    let reads: Vec<usize> = lines
        .iter()
        .map(|l| {
            l.strip_prefix("read ")
                .and_then(|l| l.strip_suffix(" bytes"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{l:?} in\n{out}"))
        })
        .collect();
    assert_eq!(reads.iter().sum::<usize>(), input.len(), "{out}");
    assert!(reads.iter().all(|&n| n <= 4096), "{out}");
    assert_eq!(
        last,
        format!(
            "end of file after {} reads, {} bytes",
            reads.len(),
            input.len()
        )
    );
}
