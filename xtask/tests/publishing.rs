//! The library crates are ready to publish: a license file matching the declared
//! license in each, a README of their own wired into the manifest, no placeholder
//! repository URL, and sibling layers pinned to the one workspace version.
//! (`cargo xtask ci` also packages them and builds each from its tarball.)

use std::fs;
use std::path::{Path, PathBuf};

/// The crates people depend on, bottom first.
const LIBRARIES: [&str; 4] = ["reactor", "deferred", "transport", "protocol"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of `key = "value"` on a line of `manifest`, if there is one.
fn string_field<'a>(manifest: &'a str, key: &str) -> Option<&'a str> {
    manifest.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

#[test]
fn the_license_file_matches_the_declared_license() {
    let workspace = read(&root().join("Cargo.toml"));
    assert_eq!(string_field(&workspace, "license"), Some("MIT"));
    let license = read(&root().join("LICENSE"));
    assert!(
        license.starts_with("MIT License"),
        "LICENSE is the MIT license"
    );
    for krate in LIBRARIES {
        let copy = read(&root().join(krate).join("LICENSE"));
        assert_eq!(
            copy, license,
            "{krate}/LICENSE must be a copy of LICENSE (it ships in the package)"
        );
        let manifest = read(&root().join(krate).join("Cargo.toml"));
        assert!(
            manifest.contains("license.workspace = true"),
            "{krate} declares the workspace's license"
        );
    }
}

#[test]
fn every_library_has_its_own_readme() {
    for krate in LIBRARIES {
        let manifest = read(&root().join(krate).join("Cargo.toml"));
        assert_eq!(
            string_field(&manifest, "readme"),
            Some("README.md"),
            "{krate}/Cargo.toml must say readme = \"README.md\""
        );
        let readme = read(&root().join(krate).join("README.md"));
        assert!(
            readme.starts_with(&format!("# {krate} ")),
            "{krate}/README.md opens with the crate's name"
        );
        for part in [
            "| Twisted |",
            "## Studying it alone",
            &format!("-p {krate}"),
        ] {
            assert!(readme.contains(part), "{krate}/README.md lacks {part:?}");
        }
    }
}

#[test]
fn no_placeholder_repository() {
    for manifest in LIBRARIES
        .iter()
        .map(|k| root().join(k).join("Cargo.toml"))
        .chain([root().join("Cargo.toml")])
    {
        let text = read(&manifest);
        assert!(
            !text.contains(".invalid") && !text.contains("example.com"),
            "{} carries a placeholder URL",
            manifest.display()
        );
    }
}

#[test]
fn sibling_layers_are_pinned_to_the_workspace_version() {
    let workspace = read(&root().join("Cargo.toml"));
    let version = string_field(&workspace, "version").expect("workspace.package.version");
    for krate in LIBRARIES {
        let line = workspace
            .lines()
            .find(|l| l.starts_with(&format!("{krate} = {{")))
            .unwrap_or_else(|| panic!("{krate} is in [workspace.dependencies]"));
        assert!(
            line.contains(&format!("version = \"={version}\"")),
            "{krate} must be pinned to ={version} to be packaged: {line}"
        );
    }
}
