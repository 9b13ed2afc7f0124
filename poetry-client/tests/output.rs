//! Where the poems go: a stdout that cannot take them is a failed run. A full disk
//! (`> /dev/full`) exits 1 with one line saying so; a reader that leaves early
//! (`| head -c 10`, EPIPE) exits 1 quietly.

mod util;

use std::fs::OpenOptions;
use std::io::Read;
use std::process::{Command, Stdio};

use util::{fast, poem_bytes, pseudo_random, ChildGuard, ServerThread, PATIENCE};

#[test]
fn a_full_stdout_fails_the_run_with_one_line() {
    let Ok(full) = OpenOptions::new().write(true).open("/dev/full") else {
        panic!("/dev/full is missing: this test needs Linux's full device");
    };
    let poem = poem_bytes("ete.txt");
    let server = ServerThread::start(&poem, fast());
    let mut command = Command::new(util::client_binary());
    command.arg(server.address()).stdout(full);
    let output = util::run_bounded_with_stdout(command, PATIENCE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("poetry-client:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("writing the poems to stdout") && errors[0].contains("space"),
        "{stderr}"
    );
    // No summary claims the poems were delivered.
    assert!(!stderr.contains("Got 1 of 1"), "{stderr}");
}

#[test]
fn a_reader_that_leaves_early_makes_a_quiet_failure() {
    // More than a pipe holds, so the client is still writing when the reader leaves.
    let poem = pseudo_random(4 * 1024 * 1024, 3);
    let server = ServerThread::start(&poem, fast());
    let mut child = ChildGuard(
        Command::new(util::client_binary())
            .arg(server.address())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("poetry-client starts"),
    );
    let (err, err_reader) = util::Collected::spawn(child.0.stderr.take().unwrap());
    let mut stdout = child.0.stdout.take().unwrap();
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).expect("the poem starts");
    assert_eq!(first, poem[..10]);
    drop(stdout); // `head -c 10` is done
    let status = child.wait_for(PATIENCE).expect("the client ends");
    let _ = err_reader.join();
    let stderr = err.text();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("poetry-client:"), "not quiet: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
