//! The project's own poems, in `poems/` at the workspace root.

use std::path::PathBuf;

use crate::build::workspace;

/// The poems' folder.
pub fn poems_dir() -> PathBuf {
    workspace().join("poems")
}

/// One poem's path and bytes.
///
/// # Panics
///
/// If it cannot be read.
pub fn poem(name: &str) -> (PathBuf, Vec<u8>) {
    let path = poems_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, bytes)
}

/// One poem's bytes.
///
/// # Panics
///
/// If it cannot be read.
pub fn poem_bytes(name: &str) -> Vec<u8> {
    poem(name).1
}

/// Every poem (`*.txt`), sorted by file name: `(path, bytes)`.
///
/// # Panics
///
/// If the folder cannot be read or holds no poem.
pub fn poems() -> Vec<(PathBuf, Vec<u8>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(poems_dir())
        .expect("the poems folder")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no poems in {}", poems_dir().display());
    paths
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("a poem");
            (path, bytes)
        })
        .collect()
}
