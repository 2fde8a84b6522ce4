//! Per-API-key request rates: a token bucket per key, as deep as one second of its rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token buckets keyed by API key hash (this process's share of the limit:
/// each Cloud Run instance keeps its own buckets).
#[derive(Default)]
pub struct KeyRates {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets beyond this many are pruned of full (idle) ones.
const PRUNE_ABOVE: usize = 10_000;

impl KeyRates {
    /// Takes one request's token from `key`'s bucket of `per_second` tokens
    /// (refilled at `per_second`), or says how long until one is free.
    pub fn try_take(&self, key: &str, per_second: u32) -> Result<(), Duration> {
        self.take_at(key, per_second, Instant::now())
    }

    fn take_at(&self, key: &str, per_second: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(per_second.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, bucket| now.duration_since(bucket.at).as_secs_f64() < 1.0);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_rate_then_one_per_interval_per_key() {
        let rates = KeyRates::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(rates.take_at("a", 3, start).is_ok());
        }
        let wait = rates.take_at("a", 3, start).unwrap_err();
        assert!(
            wait > Duration::from_millis(300) && wait <= Duration::from_millis(334),
            "{wait:?}"
        );
        assert!(rates.take_at("b", 3, start).is_ok(), "keys are independent");
        assert!(rates
            .take_at("a", 3, start + Duration::from_millis(340))
            .is_ok());
        assert!(rates
            .take_at("a", 3, start + Duration::from_millis(340))
            .is_err());
    }
}
