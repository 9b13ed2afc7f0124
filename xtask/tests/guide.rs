//! The guide cannot drift from the template: every code block of
//! `docs/writing-a-protocol-crate.md` whose first line names a file of the template
//! (`// examples/protocol-crate-template/...` or `# examples/...`) appears verbatim in
//! that file, which `cargo xtask ci` builds and tests.

use std::fs;
use std::path::{Path, PathBuf};

const GUIDE: &str = "docs/writing-a-protocol-crate.md";
const TEMPLATE: &str = "examples/protocol-crate-template/";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

/// The fenced code blocks of a Markdown text, without their fences.
fn code_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        if line.starts_with("```") {
            match current.take() {
                Some(lines) => blocks.push(lines.join("\n")),
                None => current = Some(Vec::new()),
            }
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    assert!(current.is_none(), "{GUIDE} has an unclosed code block");
    blocks
}

/// The template file a block names on its first line, and the block's other lines.
fn named_file(block: &str) -> Option<(&str, &str)> {
    let (first, rest) = block.split_once('\n')?;
    let path = first
        .strip_prefix("// ")
        .or_else(|| first.strip_prefix("# "))?;
    path.starts_with(TEMPLATE).then_some((path, rest))
}

#[test]
fn every_excerpt_of_the_guide_is_in_the_template() {
    let guide = fs::read_to_string(root().join(GUIDE)).expect("the guide exists");
    let mut checked = 0;
    for block in code_blocks(&guide) {
        let Some((path, excerpt)) = named_file(&block) else {
            continue;
        };
        let file = fs::read_to_string(root().join(path))
            .unwrap_or_else(|e| panic!("{GUIDE} quotes {path}: {e}"));
        assert!(
            file.contains(excerpt),
            "{GUIDE} quotes {path}, which no longer contains:\n{excerpt}"
        );
        checked += 1;
    }
    assert!(
        checked >= 8,
        "{GUIDE} quotes the template {checked} times; its excerpts must name their file"
    );
}

#[test]
fn code_blocks_are_found_and_files_named() {
    let text = "a\n```rust\n// examples/protocol-crate-template/src/lib.rs\nfn x() {}\n```\n```sh\nls\n```\n";
    let blocks = code_blocks(text);
    assert_eq!(blocks.len(), 2);
    assert_eq!(
        named_file(&blocks[0]),
        Some(("examples/protocol-crate-template/src/lib.rs", "fn x() {}"))
    );
    assert_eq!(named_file(&blocks[1]), None);
}
