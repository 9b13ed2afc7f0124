//! Replays the corpora of the `protocol::basic` fuzz targets (`fuzz/corpus/<target>`,
//! grown by `cargo xtask fuzz`, crashers kept as regression inputs) through the same
//! checks the targets run (`fuzz/checks/basic.rs`), so every input the fuzzer ever
//! found stays covered by `cargo test`, without fuzzing.

use std::path::Path;

#[path = "../../fuzz/checks/basic.rs"]
mod checks;

/// Feeds every file of `fuzz/corpus/<target>` to `check`, naming the file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the {target} corpus is kept in {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 10,
        "the {target} corpus has only {} inputs",
        paths.len()
    );
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        if let Err(payload) = outcome {
            panic!(
                "{}: {}",
                path.display(),
                reactor::panic_message(payload.as_ref())
            );
        }
    }
}

#[test]
fn line_receiver_corpus() {
    replay("line_receiver", checks::line_receiver);
}

#[test]
fn netstring_corpus() {
    replay("netstring", checks::netstring);
}

#[test]
fn int_string_corpus() {
    replay("int_string", checks::int_string);
}

/// The checks themselves catch what they are for: a framing that is refused late or
/// not at all would fail them (here, by hand, the inputs each check is built on).
#[test]
fn the_checks_accept_the_basic_cases() {
    // Line: \r\n, max 5, whole; "hello" fits, "toolong" is refused at its 7th byte.
    checks::line_receiver(b"\x00\x05hello\r\nhi\r\ntoolong\r\nnever");
    checks::line_receiver(b"\x05\x05raw\r\nanything at all, \r\n of any length");
    // One byte at a time: refused at the 7th byte of "abcdefgh" (5 + a partial
    // "\r\n" could still be a line), not before, not after.
    checks::line_receiver(b"\x05\x05abcdefgh");
    // Netstring: max 5, one byte at a time; "9" is refused as soon as it arrives.
    checks::netstring(b"\x01\x055:hello,0:,99:xxxxx");
    checks::netstring(b"\x01\x0501:x,");
    checks::netstring(b"\x80\x00999999999999999999999999:");
    // Int16, max 4: "\x00\x05" is refused as soon as its second byte arrives.
    checks::int_string(b"\x04\x04\x00\x02hi\x00\x05abcde");
    checks::int_string(b"\x02\xff\x00\x00\x00\x03abc\xff\xff\xff\xff");
}
