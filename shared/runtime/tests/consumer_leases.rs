//! Embedded consumers lease each event for as long as its subscription asks,
//! in the store a short lease at a time, renewed while the handler runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use zapfn_runtime::{consumer, Config, Context, Subscription};
use zapfn_store::{parse_webhook, topics, Delivery, NewOutbound, Settlement};
use zapfn_whatsapp::builders;

type Seen = Arc<Mutex<Vec<(Delivery, i64)>>>;

/// A subscription that keeps each delivery, and when it came (Unix ms).
fn recording(topic: &'static str, seen: &Seen) -> Subscription {
    let seen = seen.clone();
    Subscription::new(topic, 1, move |delivery| {
        let now_ms = chrono::Utc::now().timestamp_millis();
        seen.lock().unwrap().push((delivery, now_ms));
        async { Settlement::Ack }
    })
}

fn context(dir: &std::path::Path, extra: &[(&str, &str)]) -> Context {
    let mut vars: HashMap<&str, String> = [("ZAPFN_DATA_DIR", dir.to_str().unwrap().to_owned())]
        .into_iter()
        .collect();
    vars.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    Context::open(config).unwrap()
}

/// Stores an inbound text, which publishes one `messages` event.
async fn receive(context: &Context, wamid: &str) {
    let now = chrono::Utc::now().timestamp();
    let inbound = builders::messages_notification(
        "106540352242922",
        "5511999990000",
        "Maria",
        vec![builders::text_message("5511999990000", wamid, now, "oi")],
    );
    context
        .store
        .ingest(parse_webhook(inbound.to_string().as_bytes()).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn each_subscription_leases_for_as_long_as_it_asks() {
    let dir = tempfile::tempdir().unwrap();
    let context = context(dir.path(), &[]);
    let (long, default): (Seen, Seen) = Default::default();
    let lease = Duration::from_secs(600);
    let consumers = consumer::start(
        &context,
        vec![
            recording(topics::DISPATCH, &long).with_lease(lease),
            recording(topics::MESSAGES, &default),
        ],
    )
    .await
    .unwrap();

    context
        .store
        .enqueue_send(NewOutbound {
            phone_number_id: "106540352242922".into(),
            to: Some("5511999990000".into()),
            message_type: "text".into(),
            preview: None,
            context_message_id: None,
            body: json!({ "type": "text", "text": { "body": "hi" } }),
            idempotency_key: None,
        })
        .await
        .unwrap();
    receive(&context, "wamid.L1").await;

    let started = Instant::now();
    while long.lock().unwrap().is_empty() || default.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "events not delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumers.shutdown(Duration::from_secs(5)).await;

    let left = |seen: &Seen| {
        let (delivery, at_ms) = seen.lock().unwrap()[0].clone();
        Duration::from_millis((delivery.lease_until_ms - at_ms) as u64)
    };
    let slack = Duration::from_secs(5);
    assert!(
        left(&long) > lease - slack && left(&long) <= lease,
        "{:?}",
        left(&long)
    );
    let sixty = Duration::from_secs(60);
    assert!(
        left(&default) > sixty - slack && left(&default) <= sixty,
        "the default: {:?}",
        left(&default)
    );
}

/// A handler that runs for `run`, counting its runs.
fn slow(run: Duration, runs: &Arc<Mutex<Vec<Delivery>>>) -> Subscription {
    let runs = runs.clone();
    Subscription::new(topics::MESSAGES, 1, move |delivery| {
        runs.lock().unwrap().push(delivery);
        async move {
            tokio::time::sleep(run).await;
            Settlement::Ack
        }
    })
}

#[tokio::test]
async fn a_run_longer_than_the_store_lease_keeps_its_event() {
    let dir = tempfile::tempdir().unwrap();
    let context = context(dir.path(), &[("ZAPFN_STORE_LEASE_MS", "600")]);
    let runs = Arc::new(Mutex::new(Vec::new()));
    let budget = Duration::from_secs(30);
    let consumers = consumer::start(
        &context,
        vec![slow(Duration::from_millis(2500), &runs).with_lease(budget)],
    )
    .await
    .unwrap();
    receive(&context, "wamid.SLOW").await;

    let started = Instant::now();
    while runs.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "not delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = runs.lock().unwrap()[0].clone();
    let left_ms = seen.lease_until_ms - chrono::Utc::now().timestamp_millis();
    assert!(
        left_ms > 25_000 && left_ms <= 30_000,
        "the handler sees its whole budget: {left_ms} ms"
    );
    // Past the store lease twice over, the event is still this run's.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let taken = context
        .store
        .claim(topics::MESSAGES, 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(taken.is_empty(), "handed out during the run: {taken:?}");

    while context
        .store
        .queue_depths()
        .await
        .unwrap()
        .pending
        .contains_key(topics::MESSAGES)
    {
        assert!(started.elapsed() < Duration::from_secs(10), "not settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        runs.lock().unwrap().len(),
        1,
        "settled with the renewed lease"
    );
}

#[tokio::test]
async fn the_event_of_a_run_that_stopped_is_delivered_again_within_the_store_lease() {
    let dir = tempfile::tempdir().unwrap();
    let context = context(dir.path(), &[("ZAPFN_STORE_LEASE_MS", "600")]);
    let runs = Arc::new(Mutex::new(Vec::new()));
    let consumers = consumer::start(
        &context,
        vec![slow(Duration::from_secs(3600), &runs).with_lease(Duration::from_secs(600))],
    )
    .await
    .unwrap();
    receive(&context, "wamid.STOPPED").await;
    let started = Instant::now();
    while runs.lock().unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "not delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The run is abandoned, as by a process that died: nobody renews its lease.
    consumers.shutdown(Duration::ZERO).await;
    let stopped = Instant::now();
    let again = loop {
        let taken = context
            .store
            .claim(topics::MESSAGES, 1, Duration::from_secs(5))
            .await
            .unwrap();
        if let Some(delivery) = taken.into_iter().next() {
            break delivery;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "still leased long after the store lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(again.attempt, 2);
}
