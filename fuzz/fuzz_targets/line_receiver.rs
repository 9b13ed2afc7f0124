//! Fuzzes `protocol::basic::LineReceiver` with arbitrary bytes and a small maximum
//! length: no input panics, what is delivered matches a model of the framing, and
//! input over the limit is refused as soon as it shows, before anything large is
//! buffered. The checks live in `fuzz/checks/basic.rs`, shared with the test that
//! replays this target's corpus (`protocol/tests/fuzz_corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/basic.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::line_receiver(data));
