//! What the load test did and what the system acknowledged, kept as it
//! happens so the end state can be reconciled against it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What an inbound message was, for the checks that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Plain text: stored, no reply.
    Text,
    /// "menu": the auto-reply rules answer it once.
    Menu,
    /// An image: media-fetch downloads and stores it.
    Image,
}

/// Everything recorded during a run.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

#[derive(Default)]
pub struct Inner {
    /// Acknowledged inbound messages by wamid.
    pub inbound: HashMap<String, Inbound>,
    /// Webhook POSTs of inbound messages (first deliveries, not retries).
    pub inbound_posts: u64,
    /// Bodies posted again after they were acknowledged (Meta's redeliveries).
    pub redeliveries: u64,
    /// Attempts that got no 200 and were retried (kills, faults).
    pub webhook_retries: u64,
    /// Deliveries given up on (never acknowledged): must stay 0.
    pub webhook_abandoned: u64,
    /// Send API requests answered 202, by zapfn id, with when.
    pub api_accepted: HashMap<String, Instant>,
    /// Send API requests that were retried with the same Idempotency-Key.
    pub api_retries: u64,
    /// Send API requests finally refused (not 202): must stay 0.
    pub api_refused: Vec<String>,
    /// What the fake Graph API accepted, per zapfn id: the wamids it handed out, and when.
    pub dispatched: HashMap<String, Vec<(String, Instant)>>,
    /// Graph API calls answered with an injected transient error.
    pub graph_errors: u64,
    /// Mark-as-read and other sends without a zapfn id.
    pub graph_other: u64,
    /// The status each dispatched wamid must end in.
    pub expected_status: HashMap<String, &'static str>,
    /// Distinct (wamid, status) pairs Meta delivered and had acknowledged.
    pub statuses: HashSet<(String, &'static str)>,
    /// Status webhook POSTs, and how many carried a status already delivered.
    pub status_posts: u64,
    pub status_duplicates: u64,
    /// Latencies in microseconds, of the whole run and of the steady part before the burst.
    pub webhook_latency: Vec<u32>,
    pub webhook_latency_steady: Vec<u32>,
    pub api_latency: Vec<u32>,
    pub api_latency_steady: Vec<u32>,
}

impl Ledger {
    /// Runs `f` on the records.
    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Microseconds, saturated to `u32`.
pub fn micros(duration: Duration) -> u32 {
    duration.as_micros().min(u32::MAX as u128) as u32
}
