//! Percentiles of latency samples.

/// The nearest-rank `p`-th percentile (0 < `p` ≤ 100) of `sorted`, or `None` if there
/// are no samples.
///
/// # Examples
///
/// ```
/// use loadgen::stats::percentile;
///
/// let samples = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
/// assert_eq!(percentile(&samples, 50.0), Some(5));
/// assert_eq!(percentile(&samples, 99.0), Some(10));
/// ```
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Milliseconds from microseconds, for reports.
pub(crate) fn ms(us: Option<u32>) -> Option<f64> {
    us.map(|us| f64::from(us) / 1000.0)
}

/// `count / seconds`, or 0 when no time passed.
pub(crate) fn rate(count: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[42], 50.0), Some(42));
        assert_eq!(percentile(&[42], 99.0), Some(42));
        let hundred: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50.0), Some(50));
        assert_eq!(percentile(&hundred, 99.0), Some(99));
        assert_eq!(percentile(&hundred, 100.0), Some(100));
        assert_eq!(percentile(&hundred, 0.0), Some(1));
    }

    #[test]
    fn rates() {
        assert_eq!(rate(10.0, 2.0), 5.0);
        assert_eq!(rate(10.0, 0.0), 0.0);
        assert_eq!(ms(Some(1500)), Some(1.5));
    }
}
