//! The live progress block (`--progress`, or stderr on a terminal), checked on the
//! rendered screen rather than on the bytes: a message printed between two frames
//! lands above the block, the block is redrawn whole, and no stale row is left.

mod util;

use std::time::Duration;

use poetry_client::report::redraw;
use util::screen::Screen;
use util::{dead_port, poem_bytes, run_client, slow, ServerThread};

fn frame(out: &mut Vec<u8>, drawn: usize, notices: &[&str], lines: &[&str]) -> usize {
    let notices: Vec<String> = notices.iter().map(|s| s.to_string()).collect();
    let lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    redraw(out, drawn, &notices, &lines).expect("a Vec takes every write")
}

#[test]
fn a_message_between_frames_lands_above_the_whole_block() {
    let mut out = b"earlier output\n".to_vec();
    let drawn = frame(
        &mut out,
        0,
        &[],
        &["Task 1 connecting", "Task 2 connecting"],
    );
    let drawn = frame(
        &mut out,
        drawn,
        &["Failed to connect to: 127.0.0.1:9"],
        &["Task 1 receiving", "Task 2 failed"],
    );
    // A shorter row over a longer one leaves nothing of the longer behind.
    let drawn = frame(&mut out, drawn, &[], &["Task 1 done", "Task 2 failed"]);
    assert_eq!(drawn, 2);
    let screen = Screen::render(&String::from_utf8(out).unwrap());
    assert_eq!(
        screen.lines(),
        [
            "earlier output",
            "Failed to connect to: 127.0.0.1:9",
            "Task 1 done",
            "Task 2 failed"
        ]
    );
}

#[test]
fn a_block_that_shrinks_leaves_no_stale_row() {
    let mut out = Vec::new();
    let drawn = frame(&mut out, 0, &[], &["one", "two", "three"]);
    frame(&mut out, drawn, &["note"], &["one"]);
    let screen = Screen::render(&String::from_utf8(out).unwrap());
    assert_eq!(screen.lines(), ["note", "one"]);
}

#[test]
fn the_client_prints_a_failure_once_above_its_progress_block() {
    // The first frame is drawn before the refusal is seen (the reactor runs its
    // start-up calls before its first poll), so the failure comes between frames.
    let poem = poem_bytes("haiku.txt");
    let server = ServerThread::start(&poem, slow(16, Duration::from_millis(30)));
    let dead = dead_port();
    let run = run_client(&["--progress".to_owned(), server.address(), dead.to_string()]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let message = format!("Failed to connect to: 127.0.0.1:{dead} (");
    assert_eq!(run.stderr.matches(&message).count(), 1, "{:?}", run.stderr);
    let screen = Screen::render(&run.stderr).lines();
    let at = |needle: &str| {
        let found: Vec<usize> = (0..screen.len())
            .filter(|&i| screen[i].contains(needle))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{needle:?} on the screen {found:?} times:\n{screen:#?}"
        );
        found[0]
    };
    let failure = at(&message);
    let (row1, row2) = (at("Task   1 "), at("Task   2 "));
    assert!(failure < row1 && row1 + 1 == row2, "{screen:#?}");
    assert!(
        screen[row1].ends_with("done") && screen[row2].ends_with("failed"),
        "{screen:#?}"
    );
    assert!(
        !screen.iter().any(|l| l.contains("connecting")),
        "stale:\n{screen:#?}"
    );
    assert!(
        screen.last().unwrap().starts_with("Got 1 of 2 poems"),
        "{screen:#?}"
    );
}
