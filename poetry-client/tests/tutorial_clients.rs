//! The tutorial's clients as examples (3.0, 3.1, 4.0, 5.0, 8.0's style), each run as a
//! reader runs it, against live poetry servers.

mod util;

use std::process::{Command, Output};
use std::time::Duration;

use util::{assert_same_bytes, build_example, dead_port, fast, poem_bytes, slow, ServerThread};

fn run(example: &str, args: &[String]) -> Output {
    let mut command = Command::new(build_example(example));
    command.args(args);
    util::run_bounded(command, util::PATIENCE)
}

/// The poems as the examples print them: each followed by a newline.
fn printed(poems: &[&[u8]]) -> Vec<u8> {
    poems.iter().flat_map(|p| [*p, b"\n"].concat()).collect()
}

/// A fast server and a slower one: the fast poem finishes first.
fn two_servers() -> (ServerThread, ServerThread, Vec<u8>, Vec<u8>) {
    let (slow_poem, fast_poem) = (poem_bytes("ete.txt"), poem_bytes("haiku.txt"));
    let slow_server = ServerThread::start(&slow_poem, slow(100, Duration::from_millis(40)));
    let fast_server = ServerThread::start(&fast_poem, fast());
    (slow_server, fast_server, slow_poem, fast_poem)
}

#[test]
fn client_3_0_calls_back_with_each_poem() {
    let (slow_server, fast_server, slow_poem, fast_poem) = two_servers();
    let output = run(
        "client_3_0",
        &[slow_server.address(), fast_server.address()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_same_bytes(
        &output.stdout,
        &printed(&[&fast_poem, &slow_poem]),
        "in finishing order",
    );
}

#[test]
fn client_3_1_and_4_0_report_a_failure_and_still_finish() {
    for example in ["client_3_1", "client_4_0"] {
        let (slow_server, fast_server, slow_poem, fast_poem) = two_servers();
        let args = [slow_server.address(), fast_server.address()];
        let output = run(example, &args);
        assert!(
            output.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_same_bytes(&output.stdout, &printed(&[&fast_poem, &slow_poem]), example);

        let output = run(example, &[dead_port().to_string(), fast_server.address()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{example}: {stderr}");
        assert!(
            stderr.starts_with("Poem failed: cannot connect"),
            "{example}: {stderr}"
        );
        assert_same_bytes(&output.stdout, &printed(&[&fast_poem]), example);
    }
}

#[test]
fn client_5_0_cummingsifies_or_recovers_the_original() {
    let poem = poem_bytes("ete.txt");
    let server = ServerThread::start(&poem, fast());
    // cummingsify fails one time in three: both endings are right, nothing else is.
    let lowered = String::from_utf8_lossy(&poem).to_lowercase().into_bytes();
    for _ in 0..3 {
        let output = run("client_5_0", &[server.address()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        if stderr.contains("Cummingsify failed!") {
            assert_same_bytes(
                &output.stdout,
                &printed(&[&poem]),
                "the original, recovered",
            );
        } else {
            assert!(stderr.is_empty(), "{stderr}");
            assert_same_bytes(&output.stdout, &printed(&[&lowered]), "cummingsified");
        }
    }
    let output = run("client_5_0", &[dead_port().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("The poem download failed"));
}

#[test]
fn client_8_0_gathers_the_poems_and_its_timeout_cancels_the_slow_one() {
    let long = poem_bytes("lighthouse.txt"); // ~15 s at this pace
    let slow_server = ServerThread::start(&long, slow(10, Duration::from_millis(100)));
    let (quick, other) = (poem_bytes("haiku.txt"), poem_bytes("crlf.txt"));
    let (quick_server, other_server) = (
        ServerThread::start(&quick, fast()),
        ServerThread::start(&other, fast()),
    );
    let args = [
        "0.5".to_owned(),
        quick_server.address(),
        slow_server.address(),
        other_server.address(),
    ];
    let output = run("client_8_0", &args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Poem from {} failed: timed out after 0.500s",
            slow_server.address()
        )),
        "{stderr}"
    );
    assert_same_bytes(
        &output.stdout,
        &printed(&[&quick, &other]),
        "the others, in address order",
    );
    let stats = slow_server.stop();
    assert_eq!(
        (stats.completed, stats.interrupted),
        (0, 1),
        "the slow download was aborted"
    );

    let args = [
        "10".to_owned(),
        other_server.address(),
        quick_server.address(),
    ];
    let output = run("client_8_0", &args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_same_bytes(&output.stdout, &printed(&[&other, &quick]), "address order");
}
