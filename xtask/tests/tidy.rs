//! House rules checked as tests, so `cargo test` alone is the whole gate: the crate
//! layers depend only downwards, every crate opens with its lesson and a table of
//! Twisted's names, and every example says how to run it.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The layers, bottom first. `deferred` sits right above the reactor: it uses time and
/// the thread-safe call path, and nothing of transports or protocols.
const LAYERS: [&str; 8] = [
    "reactor",
    "deferred",
    "transport",
    "protocol",
    "poetry-server",
    "poetry-client",
    "poetry-transform",
    "poetry-proxy",
];

/// The protocol crates built on the public API only: they name neither `reactor` nor
/// `transport` as a dependency (they reach both through `protocol`'s re-exports).
const PUBLIC_API_CRATES: [&str; 2] = ["poetry-transform", "poetry-proxy"];

/// The one program crate with a reusable library face (`poetry_client::get_poetry`,
/// the Introduction's client 4.0): the protocol crates above it download poems with
/// it rather than writing the download again.
const REUSABLE_CLIENT: &str = "poetry-client";

/// The workspace crates named in the `[dependencies]` table of a manifest.
fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some((name, _)) = line.split_once('=') {
                let name = name.trim().trim_end_matches(".workspace").to_owned();
                if LAYERS.contains(&name.as_str()) {
                    deps.push(name);
                }
            }
        }
    }
    deps
}

#[test]
fn dependencies_point_down_the_layers() {
    for (level, krate) in LAYERS.iter().enumerate() {
        let manifest = fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        for dep in normal_dependencies(&manifest) {
            let dep_level = LAYERS.iter().position(|l| *l == dep).unwrap();
            let first_program = LAYERS.iter().position(|l| *l == "poetry-server").unwrap();
            let both_programs = level >= first_program && dep_level >= first_program;
            let reuses_the_client = dep == REUSABLE_CLIENT && PUBLIC_API_CRATES.contains(krate);
            assert!(
                dep_level < level && (!both_programs || reuses_the_client),
                "{krate} depends on {dep}: dependencies must point down the layers"
            );
        }
    }
}

#[test]
fn the_deferred_layer_sits_beside_the_transports() {
    for (krate, other) in [("transport", "deferred"), ("deferred", "transport")] {
        let manifest = fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        assert!(
            !all_dependencies(&manifest).iter().any(|d| d == other),
            "{krate} depends on {other}: the deferred layer is built on the reactor beside \
             the transports, and neither names the other"
        );
    }
}

#[test]
fn the_side_crates_depend_on_no_layer_and_test_support_is_dev_only() {
    for krate in ["poetry-cli", "test-support"] {
        let manifest = fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        let layers: Vec<String> = all_dependencies(&manifest)
            .into_iter()
            .filter(|d| LAYERS.contains(&d.as_str()))
            .collect();
        assert!(
            layers.is_empty(),
            "{krate} depends on the layers {layers:?}"
        );
    }
    let members = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    for krate in LAYERS.iter().chain(["poetry-cli", "xtask"].iter()) {
        let manifest = fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        let mut table = String::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                table = line.to_owned();
            } else if line.starts_with("test-support") {
                assert!(
                    table.contains("dev-dependencies"),
                    "{krate} names test-support under {table}: it is for tests only"
                );
            }
        }
    }
    assert!(
        members.contains("test-support"),
        "test-support is a workspace member"
    );
}

/// The workspace crates named in every dependency table of a manifest (normal, dev,
/// build, target-specific).
fn all_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line.trim_matches(['[', ']']).ends_with("dependencies");
            continue;
        }
        if let (true, Some((name, _))) = (in_deps, line.split_once('=')) {
            deps.push(name.trim().trim_end_matches(".workspace").to_owned());
        }
    }
    deps
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Where `text` names a lower layer other than through `protocol`'s re-exports
/// (`reactor::X` but not `protocol::reactor::X`), or includes a file of another crate.
fn reaches_below_protocol(text: &str) -> Option<String> {
    for krate in ["reactor::", "transport::"] {
        for (at, _) in text.match_indices(krate) {
            let before = &text[..at];
            let qualified = before.ends_with("protocol::");
            let part_of_a_name = before
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            if !qualified && !part_of_a_name {
                let line = text[at..].lines().next().unwrap_or_default();
                return Some(format!("names {krate} directly: {line}"));
            }
        }
    }
    text.lines()
        .find(|l| l.contains("#[path") && !l.contains("fuzz/checks/"))
        .map(|l| format!("includes another crate's file: {l}"))
}

#[test]
fn protocol_crates_use_only_the_public_api() {
    for krate in PUBLIC_API_CRATES {
        let dir = root().join(krate);
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        for dep in all_dependencies(&manifest) {
            assert!(
                dep != "reactor" && dep != "transport",
                "{krate} depends on {dep}: it must reach it through protocol's re-exports"
            );
        }
        let mut files = Vec::new();
        for sub in ["src", "tests", "examples", "benches"] {
            rust_files(&dir.join(sub), &mut files);
        }
        assert!(!files.is_empty(), "{krate} has no sources");
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            if let Some(problem) = reaches_below_protocol(&text) {
                panic!("{} {problem}", file.display());
            }
        }
    }
}

#[test]
fn the_public_api_check_catches_lower_layers() {
    assert!(reaches_below_protocol("use reactor::Reactor;").is_some());
    assert!(reaches_below_protocol("fn f(r: &mut transport::Transport<'_>) {}").is_some());
    assert!(reaches_below_protocol("use protocol::reactor::Reactor;").is_none());
    assert!(reaches_below_protocol("my_reactor::x; protocol::transport::Address").is_none());
    assert!(reaches_below_protocol("#[path = \"../../protocol/src/x.rs\"]").is_some());
    let manifest = "[dependencies]\nprotocol.workspace = true\n[dev-dependencies]\nreactor = { path = \"r\" }\n";
    assert_eq!(all_dependencies(manifest), ["protocol", "reactor"]);
}

#[test]
fn the_reactor_knows_nothing_of_tcp() {
    let mut files = Vec::new();
    rust_files(&root().join("reactor/src"), &mut files);
    assert!(files.len() > 5, "the reactor's sources: {files:?}");
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        for word in ["TcpStream", "TcpListener", "SocketAddr"] {
            assert!(!text.contains(word), "{} mentions {word}", path.display());
        }
    }
}

#[test]
fn every_crate_opens_with_its_lesson() {
    for krate in LAYERS {
        let lib = root().join(krate).join("src/lib.rs");
        let text = fs::read_to_string(&lib).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} must start with a crate doc comment",
            lib.display()
        );
        assert!(
            text.contains("```"),
            "{} must show an example",
            lib.display()
        );
    }
}

/// README: each layer's "crate documentation starts with a table from our names to
/// Twisted's": a `//!` table whose header row names Twisted (`| here | Twisted … |`).
#[test]
fn every_crate_page_maps_its_names_to_twisteds() {
    for krate in LAYERS {
        let lib = root().join(krate).join("src/lib.rs");
        let text = fs::read_to_string(&lib).unwrap();
        let page: Vec<&str> = text
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .collect();
        let header = page
            .iter()
            .position(|line| line.starts_with("//! | here |") && line.contains("Twisted"));
        assert!(
            header.is_some_and(|at| page
                .get(at + 1)
                .is_some_and(|rule| rule.starts_with("//! |---|"))),
            "{}: the crate page has no `| here | Twisted … |` table",
            lib.display()
        );
    }
}

#[test]
fn every_example_says_how_to_run_it() {
    for krate in LAYERS {
        let dir = root().join(krate).join("examples");
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let head: String = fs::read_to_string(&path)
                .unwrap()
                .lines()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                head.contains("cargo run")
                    && head.contains(&format!("-p {krate} "))
                    && head.contains("--example"),
                "{} must say in its first lines how to run it",
                path.display()
            );
        }
    }
}

#[test]
fn manifest_parsing_finds_only_normal_dependencies() {
    let manifest = "[package]\nname = \"x\"\n[dependencies]\nreactor.workspace = true\nlog = \"0.4\"\n[dev-dependencies]\nprotocol.workspace = true\n";
    assert_eq!(normal_dependencies(manifest), vec!["reactor".to_owned()]);
}

/// The repository stands alone: no tracked file reaches for a sibling folder
/// (the `shared` folder or anything else beside the clone). Test data lives in `poems/`.
#[test]
fn nothing_tracked_reads_outside_the_repository() {
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .expect("git ls-files runs");
    assert!(listed.status.success(), "git ls-files failed");
    let needle = ["..", "/shared"].concat();
    let mut offenders = Vec::new();
    for path in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = root().join(String::from_utf8_lossy(path).as_ref());
        let Ok(text) = fs::read_to_string(&path) else {
            continue; // binary or vanished: not a reader of paths
        };
        if text.contains(&needle) {
            offenders.push(path.display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "these tracked files read {needle}, which a fresh clone does not have: {offenders:?}"
    );
}

/// The project's own poems are there and differ as the README says.
#[test]
fn the_project_ships_its_own_poems() {
    let dir = root().join("poems");
    let read = |name: &str| fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (long, short, utf8, crlf) = (
        read("lighthouse.txt"),
        read("haiku.txt"),
        read("ete.txt"),
        read("crlf.txt"),
    );
    assert!(long.len() > 10 * short.len(), "the long poem is long");
    assert!(
        long.len() >= 1000,
        "slow mode takes tens of seconds over it"
    );
    let utf8 = String::from_utf8(utf8).expect("ete.txt is UTF-8");
    assert!(!utf8.is_ascii(), "ete.txt has non-ASCII letters");
    assert!(
        crlf.windows(2).any(|w| w == b"\r\n"),
        "crlf.txt has CRLF endings"
    );
    assert!(!crlf.ends_with(b"\n"), "crlf.txt ends without a newline");
}

/// No test leaves the loopback interface, DNS included (ARCHITECTURE.md, "Tests"):
/// no test names a host of the `.invalid` domain or a real one, whose lookup would
/// reach the machine's resolver. Tests resolve names with `protocol::MemoryResolver`
/// (or `TWISTIER_TEST_HOSTS` for a binary).
#[test]
fn no_test_looks_up_a_name_off_the_machine() {
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z", "*.rs"])
        .current_dir(root())
        .output()
        .expect("git ls-files runs");
    assert!(listed.status.success(), "git ls-files failed");
    let forbidden = [
        [".inv", "alid\""].concat(),
        ["example", ".com"].concat(),
        ["example", ".org"].concat(),
        ["google", ".com"].concat(),
    ];
    let mut offenders = Vec::new();
    for path in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path).into_owned();
        // xtask's own tests search files for these strings; they look nothing up.
        let is_test = path.contains("/tests/") || path.starts_with("fuzz/");
        if !is_test || path.starts_with("xtask/") {
            continue;
        }
        let Ok(text) = fs::read_to_string(root().join(&path)) else {
            continue;
        };
        for name in &forbidden {
            if text.contains(name.as_str()) {
                offenders.push(format!("{path}: {name}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "tests must resolve names in memory (protocol::MemoryResolver): {offenders:?}"
    );
}
