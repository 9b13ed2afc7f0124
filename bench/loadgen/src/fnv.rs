//! FNV-1a, 64 bits: the content checksum for `--expect-sum`.
//!
//! Not cryptographic; it only has to notice a poem that arrived reordered, truncated
//! or mixed with another one.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// An FNV-1a 64 hash fed in chunks; the result does not depend on how the bytes were
/// split.
///
/// # Examples
///
/// ```
/// use loadgen::fnv::Fnv1a64;
///
/// let mut h = Fnv1a64::new();
/// h.update(b"a");
/// assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64(OFFSET_BASIS)
    }
}

impl Fnv1a64 {
    /// The hash of no bytes.
    pub fn new() -> Self {
        Fnv1a64::default()
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
        self.0 = h;
    }

    /// The hash of everything fed so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The FNV-1a 64 hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::new();
    h.update(bytes);
    h.finish()
}

/// Formats a sum as `--expect-sum` takes it: 16 lowercase hex digits.
pub fn format_sum(sum: u64) -> String {
    format!("{sum:016x}")
}

/// Parses a sum as printed by [`format_sum`], with or without `0x`.
///
/// # Errors
///
/// A message when `text` is not 1 to 16 hex digits.
pub fn parse_sum(text: &str) -> Result<u64, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.is_empty() || digits.len() > 16 {
        return Err(format!("expected 1 to 16 hex digits, got {text:?}"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| format!("expected hex digits, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn chunking_does_not_matter() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = fnv1a64(&data);
        for size in [1, 2, 3, 64, 999] {
            let mut h = Fnv1a64::new();
            data.chunks(size).for_each(|c| h.update(c));
            assert_eq!(h.finish(), whole, "chunk size {size}");
        }
    }

    #[test]
    fn sums_round_trip() {
        let sum = fnv1a64(b"foobar");
        assert_eq!(format_sum(sum), "85944171f73967e8");
        assert_eq!(parse_sum(&format_sum(sum)), Ok(sum));
        assert_eq!(parse_sum("0x85944171F73967E8"), Ok(sum));
        assert_eq!(parse_sum("ff"), Ok(255));
    }

    #[test]
    fn bad_sums_are_refused() {
        assert!(parse_sum("").is_err());
        assert!(parse_sum("0x").is_err());
        assert!(parse_sum("xyz").is_err());
        assert!(parse_sum("12345678901234567").is_err());
        assert!(parse_sum("-1").is_err());
    }
}
