//! Replays the corpus of the `transform_request` fuzz target (`fuzz/corpus/
//! transform_request`, grown by `cargo xtask fuzz transform_request`) through the
//! check the target runs (`fuzz/checks/transform.rs`), so every input the fuzzer
//! kept stays covered by `cargo test`, without fuzzing.

use std::path::Path;

#[path = "../../fuzz/checks/transform.rs"]
mod checks;

#[test]
fn transform_request_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/transform_request");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus is kept in {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 10,
        "the corpus has only {} inputs",
        paths.len()
    );
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        if let Err(payload) = std::panic::catch_unwind(|| checks::transform_request(&bytes)) {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("{}: {message}", path.display());
        }
    }
}

/// The check catches what it is for: a server that answered a refused request, or
/// one in a later read, would disagree with the model on these inputs.
#[test]
fn the_check_accepts_the_basic_cases() {
    let ns = |p: &[u8]| [format!("{}:", p.len()).as_bytes(), p, b","].concat();
    // Whole, two in one read, the second answered.
    checks::transform_request(
        &[&[0x40, 0][..], &ns(b"cummingsify.A"), &ns(b"cummingsify.B")].concat(),
    );
    // Five bytes at a time: the second request completes in a later read, unanswered.
    checks::transform_request(
        &[&[0x40, 5][..], &ns(b"cummingsify.A"), &ns(b"cummingsify.B")].concat(),
    );
    // A refusal in the middle stops the replies.
    checks::transform_request(&[&[0x40, 0][..], &ns(b"x.A"), &ns(b"cummingsify.B")].concat());
    // Over the limit of 16, refused at the length.
    checks::transform_request(b"\x00\x0117:cummingsify.ABCD,");
}
