//! Retry delays: capped exponential backoff with full jitter (pure).

use std::time::Duration;

/// The delay before retry number `attempt` (1 = the first retry):
/// `base · 2^(attempt−1)`, capped at `max`, scaled by `jitter` ∈ [0.5, 1.0]
/// so that many failed deliveries do not all retry at the same instant.
pub fn delay(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    raw.mul_f64(jitter.clamp(0.5, 1.0))
}

/// A jitter factor for [`delay`].
pub fn jitter() -> f64 {
    rand::random_range(0.5..=1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_double_and_stop_at_the_cap() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(60);
        let table = [(1, 500), (2, 1000), (3, 2000), (8, 60_000), (40, 60_000)];
        for (attempt, ms) in table {
            assert_eq!(
                delay(attempt, base, max, 1.0),
                Duration::from_millis(ms),
                "attempt {attempt}"
            );
        }
        assert_eq!(delay(2, base, max, 0.5), Duration::from_millis(500));
        assert_eq!(
            delay(2, base, max, 0.1),
            Duration::from_millis(500),
            "jitter is clamped"
        );
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.5..=1.0).contains(&j));
        }
    }
}
