//! Percentiles for the benches' p50/p95/p99 reports, computed one way everywhere.

/// The `p` quantile (0.0..=1.0) of `sorted` (ascending), by nearest rank.
///
/// # Panics
/// When `sorted` is empty.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// p50, p95 and p99 of `samples`, which are sorted in place first.
///
/// # Panics
/// When `samples` is empty.
pub fn p50_p95_p99<T: Copy + PartialOrd>(samples: &mut [T]) -> (T, T, T) {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    (
        percentile(samples, 0.50),
        percentile(samples, 0.95),
        percentile(samples, 0.99),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(p50_p95_p99(&mut v), (51, 95, 99));
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }
}
