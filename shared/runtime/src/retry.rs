//! The retry delay every handler uses, so all queues back off alike.

use std::time::Duration;

use rand::Rng;

/// Longest delay between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(120);

/// Exponential backoff with jitter for delivery `attempt` (1 = the first):
/// `base · 2^(attempt-1)`, scaled by a random 50–100 %, at most two minutes.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exponential = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    exponential
        .mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
        .min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for attempt in 1..=4 {
            let delay = backoff(base, attempt);
            let full = base * (1 << (attempt - 1));
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert_eq!(backoff(Duration::from_secs(10), 30), MAX_DELAY);
    }
}
