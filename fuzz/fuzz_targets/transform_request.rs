//! Fuzzes the transform server's request handling (`poetry-transform`'s protocol in
//! protocol's `NetstringReceiver`) with arbitrary bytes, a small limit and arbitrary
//! chunking: no input panics, the replies and the close match a model of the service.
//! The check lives in `fuzz/checks/transform.rs`, shared with the test that replays
//! this target's corpus (`poetry-transform/tests/fuzz_corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/transform.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::transform_request(data));
