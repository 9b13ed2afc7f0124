//! Replays the fuzzer's corpus for the address parser (`fuzz/corpus/address`, grown
//! by `cargo xtask fuzz`) as a plain test, so every input it ever found stays
//! covered: no input panics, and whatever parses prints back to the same address.

use std::path::Path;

use poetry_client::parse_address;

#[test]
fn address_corpus_never_panics_and_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/address");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("the address corpus is kept in the repository") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        replayed += 1;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        if let Ok(address) = parse_address(text) {
            let again = parse_address(&address.to_string()).expect("a printed address parses");
            assert_eq!(again, address, "input {text:?}");
        }
    }
    assert!(replayed >= 3, "the corpus has only {replayed} inputs");
}
