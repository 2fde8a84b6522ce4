//! Token buckets keyed by business number or by (number, recipient).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets of `capacity` tokens refilled at one token per `interval`.
pub struct Buckets {
    capacity: f64,
    interval: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets beyond this many are pruned of idle (full) ones.
const PRUNE_ABOVE: usize = 100_000;

impl Buckets {
    /// `capacity` tokens at most; one more every `interval`.
    pub fn new(capacity: u32, interval: Duration) -> Buckets {
        Buckets {
            capacity: f64::from(capacity.max(1)),
            interval,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token now, or says how long until one is free (taking nothing).
    pub fn try_take(&self, key: &str) -> Result<(), Duration> {
        self.take_at(key, Instant::now(), Duration::ZERO)
            .map(|_| ())
    }

    /// Takes a token, borrowing from the future if one is free within `max_wait`:
    /// the caller must wait the returned time. Past that, takes nothing and says
    /// how long until one is free.
    pub fn reserve(&self, key: &str, max_wait: Duration) -> Result<Duration, Duration> {
        self.take_at(key, Instant::now(), max_wait)
    }

    /// Gives back a token taken for a send that did not happen (never past capacity).
    pub fn refund(&self, key: &str) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(key) {
            let now = Instant::now();
            bucket.tokens =
                (refilled(bucket, now, self.capacity, self.interval) + 1.0).min(self.capacity);
            bucket.at = now;
        }
    }

    /// Empties the bucket so the next token comes after `wait` (e.g. after Meta's 131056).
    pub fn penalize(&self, key: &str, wait: Duration) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let refill = wait.as_secs_f64() / self.interval.as_secs_f64().max(f64::EPSILON);
        buckets.insert(
            key.to_owned(),
            Bucket {
                tokens: 1.0 - refill,
                at: Instant::now(),
            },
        );
    }

    fn take_at(&self, key: &str, now: Instant, max_wait: Duration) -> Result<Duration, Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            let (capacity, interval) = (self.capacity, self.interval);
            buckets.retain(|_, b| refilled(b, now, capacity, interval) < capacity);
        }
        let capacity = self.capacity;
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        bucket.tokens = refilled(bucket, now, capacity, self.interval);
        bucket.at = now;
        let missing = 1.0 - bucket.tokens;
        let wait = if missing > 0.0 {
            self.interval.mul_f64(missing)
        } else {
            Duration::ZERO
        };
        if wait <= max_wait {
            bucket.tokens -= 1.0;
            Ok(wait)
        } else {
            Err(wait)
        }
    }
}

fn refilled(bucket: &Bucket, now: Instant, capacity: f64, interval: Duration) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed / interval.as_secs_f64().max(f64::EPSILON)).min(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces() {
        let buckets = Buckets::new(3, Duration::from_secs(6));
        for _ in 0..3 {
            assert_eq!(buckets.try_take("a"), Ok(()));
        }
        let wait = buckets.try_take("a").unwrap_err();
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
        assert_eq!(buckets.try_take("b"), Ok(()), "other keys are independent");
    }

    const INLINE: Duration = Duration::from_secs(2);

    #[test]
    fn reserve_borrows_and_spaces_out() {
        let buckets = Buckets::new(2, Duration::from_millis(100));
        assert_eq!(buckets.reserve("n", INLINE), Ok(Duration::ZERO));
        assert_eq!(buckets.reserve("n", INLINE), Ok(Duration::ZERO));
        let third = buckets.reserve("n", INLINE).unwrap();
        let fourth = buckets.reserve("n", INLINE).unwrap();
        assert!(
            third > Duration::from_millis(90) && fourth > Duration::from_millis(190),
            "{third:?} {fourth:?}"
        );
    }

    #[test]
    fn reserve_past_the_longest_wait_takes_nothing() {
        let buckets = Buckets::new(1, Duration::from_secs(1));
        assert_eq!(buckets.reserve("n", INLINE), Ok(Duration::ZERO));
        assert!(buckets.reserve("n", INLINE).is_ok(), "1 s to wait");
        assert!(buckets.reserve("n", INLINE).is_ok(), "2 s to wait");
        for _ in 0..10 {
            let wait = buckets.reserve("n", INLINE).unwrap_err();
            assert!(
                wait > INLINE && wait <= Duration::from_secs(3),
                "no debt piles up: {wait:?}"
            );
        }
    }

    #[test]
    fn a_refund_gives_a_token_back_up_to_capacity() {
        let buckets = Buckets::new(2, Duration::from_secs(6));
        buckets.try_take("a").unwrap();
        buckets.try_take("a").unwrap();
        assert!(buckets.try_take("a").is_err());
        buckets.refund("a");
        assert_eq!(buckets.try_take("a"), Ok(()), "the refunded token");
        buckets.refund("a");
        buckets.refund("a");
        buckets.refund("a");
        buckets.try_take("a").unwrap();
        buckets.try_take("a").unwrap();
        assert!(buckets.try_take("a").is_err(), "no more than capacity");
    }

    #[test]
    fn penalty_delays_the_next_token() {
        let buckets = Buckets::new(45, Duration::from_secs(6));
        buckets.penalize("a", Duration::from_secs(16));
        let wait = buckets.try_take("a").unwrap_err();
        assert!(wait > Duration::from_secs(15), "{wait:?}");
    }
}
