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

/// The pages for newcomers whose links and commands are checked.
const PAGES: [&str; 8] = [
    "README.md",
    "ARCHITECTURE.md",
    "docs/tour.md",
    "docs/writing-a-protocol-crate.md",
    "reactor/README.md",
    "deferred/README.md",
    "transport/README.md",
    "protocol/README.md",
];

/// The relative link targets of a Markdown text (`](path)` and `](path "title")`),
/// without anchors; web links are left out.
fn relative_links(markdown: &str) -> Vec<&str> {
    markdown
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split([')', ' ', '#']).next())
        .filter(|target| !target.is_empty() && !target.contains("://"))
        .collect()
}

/// `(package, example)` for every `cargo run -p PACKAGE --example NAME` in a text.
fn example_commands(text: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |flag: &str| {
            let at = words.iter().position(|w| *w == flag)?;
            let word = words.get(at + 1)?;
            // Prose around a command: `... --example qotd`), or a trailing comma.
            Some(word.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        };
        if line.contains("cargo run") {
            if let (Some(package), Some(example)) = (after("-p"), after("--example")) {
                found.push((package, example));
            }
        }
    }
    found
}

#[test]
fn the_pages_link_to_files_that_exist_and_run_examples_that_exist() {
    for page in PAGES {
        let text = fs::read_to_string(root().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        let dir = root().join(page);
        let dir = dir.parent().expect("a page sits in a folder");
        for target in relative_links(&text) {
            assert!(
                dir.join(target).exists(),
                "{page} links to {target}, which does not exist"
            );
        }
        for (package, example) in example_commands(&text) {
            let file = root()
                .join(package)
                .join("examples")
                .join(format!("{example}.rs"));
            assert!(
                file.is_file(),
                "{page} runs `-p {package} --example {example}`, but there is no {}",
                file.display()
            );
        }
    }
}

/// Every `poems/NAME` a text names.
fn poem_paths(text: &str) -> Vec<&str> {
    text.match_indices("poems/")
        .filter_map(|(at, _)| {
            let rest = &text[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
                .unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches('.');
            (path.len() > "poems/".len()).then_some(path)
        })
        .collect()
}

#[test]
fn the_pages_name_only_poems_that_exist() {
    for page in PAGES {
        let text = fs::read_to_string(root().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        for poem in poem_paths(&text) {
            assert!(
                root().join(poem).is_file(),
                "{page} names {poem}, which the project does not ship"
            );
        }
    }
}

#[test]
fn the_readme_gives_each_poem_its_true_size() {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut rows = 0;
    for line in readme.lines().filter(|l| l.starts_with("| `poems/")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let poem = cells[1].trim_matches('`');
        let said: u64 = cells[2].replace(',', "").parse().unwrap_or_else(|e| {
            panic!(
                "README's row for {poem}: {:?} is not a byte count: {e}",
                cells[2]
            )
        });
        let size = fs::metadata(root().join(poem))
            .unwrap_or_else(|e| panic!("README lists {poem}: {e}"))
            .len();
        assert_eq!(
            said, size,
            "README says {poem} has {said} bytes; it has {size}"
        );
        rows += 1;
    }
    let shipped = fs::read_dir(root().join("poems")).expect("poems/").count();
    assert_eq!(
        rows, shipped,
        "README's poem table lists {rows} of the {shipped} poems"
    );
}

#[test]
fn links_and_commands_are_found() {
    let text = "see [a](../a.md) and [b](b.svg \"t\"), [c](x.md#part), [w](https://x.org/y)\n\
                cargo run -p protocol --example echo_server -- 8000\n\
                (`cargo run -p protocol --example qotd`), prose\n";
    assert_eq!(relative_links(text), ["../a.md", "b.svg", "x.md"]);
    assert_eq!(
        example_commands(text),
        [("protocol", "echo_server"), ("protocol", "qotd")]
    );
    let named = "serve poems/ete.txt and `poems/haiku.txt`. The [poems/](poems/) folder";
    assert_eq!(poem_paths(named), ["poems/ete.txt", "poems/haiku.txt"]);
}
