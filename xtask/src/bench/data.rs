//! The poems served: pseudo-random files generated once into `target/bench-data`,
//! the same bytes every time, and the slow scenario's poem.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use super::runner::RunFailure;
use super::scenarios::size_label;

/// Where the poems are.
#[derive(Debug, Clone)]
pub(crate) struct Data {
    /// `target/bench-data`.
    pub(crate) dir: PathBuf,
    /// The slow scenario's poem: poetry-server's default poem, from its source.
    pub(crate) slow_poem: PathBuf,
}

impl Data {
    /// `poem-<size>.bin`: `bytes` pseudo-random bytes, written the first time it is
    /// asked for and read through every time, so that the first server measured does
    /// not pay for a cold page cache.
    pub(crate) fn poem(&self, bytes: u64) -> Result<PathBuf, RunFailure> {
        let path = self
            .dir
            .join(format!("poem-{}.bin", size_label(bytes).replace(' ', "")));
        let failed = |e: std::io::Error| RunFailure(format!("{}: {e}", path.display()));
        if !std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes) {
            eprintln!(
                "xtask: bench: writing {} of pseudo-random poem to {}",
                size_label(bytes),
                path.display()
            );
            write_poem(&path, bytes).map_err(failed)?;
        }
        let read = std::io::copy(
            &mut File::open(&path).map_err(failed)?,
            &mut std::io::sink(),
        )
        .map_err(failed)?;
        if read != bytes {
            return Err(RunFailure(format!(
                "{} holds {read} bytes, not {bytes}",
                path.display()
            )));
        }
        Ok(path)
    }
}

fn write_poem(path: &std::path::Path, bytes: u64) -> std::io::Result<()> {
    let mut file = BufWriter::new(File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ bytes;
    let mut left = bytes;
    let mut chunk = vec![0u8; 1 << 20];
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        fill_pseudo_random(&mut state, &mut chunk[..n]);
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.flush()
}

/// xorshift64*: fast, and good enough that no layer can compress or special-case it.
pub(crate) fn fill_pseudo_random(state: &mut u64, out: &mut [u8]) {
    for chunk in out.chunks_mut(8) {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let word = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_random_poems_are_repeatable_and_varied() {
        let (mut a, mut b) = (1u64, 1u64);
        let mut x = [0u8; 13];
        let mut y = [0u8; 13];
        fill_pseudo_random(&mut a, &mut x);
        fill_pseudo_random(&mut b, &mut y);
        assert_eq!(x, y);
        assert!(x.iter().any(|&v| v != x[0]));
    }

    #[test]
    fn a_poem_is_written_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = Data {
            dir: dir.clone(),
            slow_poem: PathBuf::new(),
        };
        let path = data.poem(3000).unwrap();
        assert!(path.ends_with("poem-3000B.bin"));
        let first = std::fs::read(&path).unwrap();
        assert_eq!(first.len(), 3000);
        assert_eq!(std::fs::read(data.poem(3000).unwrap()).unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
