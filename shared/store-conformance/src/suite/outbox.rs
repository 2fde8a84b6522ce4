//! The outbox as queue and bus: leases, ordering keys, settlements, retry
//! limits, dead letters, and events published with media annotations.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use zapfn_store::{topics, NewEvent, Settlement, StoreError};

use crate::fixtures::*;
use crate::{Backend, ConformanceOptions};

fn retry(after: Duration, error: &str) -> Settlement {
    Settlement::Retry {
        after,
        error: error.into(),
    }
}

pub async fn ordering_key_holds_later_events_until_the_first_is_acked(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10), ("wamid.M2", 11)]))
        .await
        .unwrap();
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 12)]))
        .await
        .unwrap();
    let (m1, m2, j1) = (
        id_of(&*store, "wamid.M1").await,
        id_of(&*store, "wamid.M2").await,
        id_of(&*store, "wamid.J1").await,
    );

    let heads = store.claim(topics::MESSAGES, 10, LEASE).await.unwrap();
    assert_eq!(
        heads.iter().map(event_message_id).collect::<Vec<_>>(),
        [m1.clone(), j1]
    );
    assert_nothing_due(&*store, topics::MESSAGES, "M2 waits behind leased M1").await;

    store.settle(&heads[1], Settlement::Ack).await.unwrap();
    assert_nothing_due(&*store, topics::MESSAGES, "another key's ack frees nothing").await;

    // A retried head still holds its key.
    store
        .settle(&heads[0], retry(Duration::ZERO, "again"))
        .await
        .unwrap();
    let retried = claim_one(&*store, topics::MESSAGES).await;
    assert_eq!((event_message_id(&retried), retried.attempt), (m1, 2));

    store.settle(&retried, Settlement::Ack).await.unwrap();
    let next = claim_one(&*store, topics::MESSAGES).await;
    assert_eq!((event_message_id(&next), next.attempt), (m2, 1));
}

/// What one outbox relay sees of its own writes: each event once, in key
/// order (the next of a key after the ack of the one before), deferred ones
/// again, and then nothing.
pub async fn own_claims_lease_the_store_s_events_in_key_order(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10), ("wamid.M2", 11)]))
        .await
        .unwrap();
    let reply = store
        .enqueue_send(send_to(Some(MARIA), None, "reply"))
        .await
        .unwrap();
    let (m1, m2) = (
        id_of(&*store, "wamid.M1").await,
        id_of(&*store, "wamid.M2").await,
    );
    let own = |topic| {
        let store = store.clone();
        async move { store.claim_own(topic, 10, LEASE).await.unwrap() }
    };

    let first = own(topics::MESSAGES).await;
    assert_eq!(
        first.iter().map(event_message_id).collect::<Vec<_>>(),
        std::slice::from_ref(&m1)
    );
    assert!(
        own(topics::MESSAGES).await.is_empty(),
        "M2 waits behind leased M1"
    );
    let task = own(topics::DISPATCH).await;
    assert_eq!(
        task.iter().map(event_message_id).collect::<Vec<_>>(),
        [reply.id]
    );

    let defer_now = Settlement::Defer {
        after: Duration::ZERO,
    };
    store.settle(&first[0], defer_now).await.unwrap();
    let again = own(topics::MESSAGES).await;
    assert_eq!(
        again
            .iter()
            .map(|d| (event_message_id(d), d.attempt))
            .collect::<Vec<_>>(),
        [(m1, 1)]
    );
    store.settle(&again[0], Settlement::Ack).await.unwrap();
    let next = own(topics::MESSAGES).await;
    assert_eq!(next.iter().map(event_message_id).collect::<Vec<_>>(), [m2]);

    store.settle(&next[0], Settlement::Ack).await.unwrap();
    store.settle(&task[0], Settlement::Ack).await.unwrap();
    assert!(own(topics::MESSAGES).await.is_empty());
    assert!(own(topics::DISPATCH).await.is_empty());
    assert!(store.queue_depths().await.unwrap().pending.is_empty());
}

/// A relay sweep leases due events like a claim, each once.
pub async fn idle_claims_lease_due_events_once(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    let idle = |store: Arc<dyn zapfn_store::Store>| async move {
        store
            .claim_idle(topics::MESSAGES, 10, LEASE, Duration::ZERO)
            .await
            .unwrap()
    };
    let swept = idle(store.clone()).await;
    assert_eq!(
        swept.iter().map(event_message_id).collect::<Vec<_>>(),
        [id_of(&*store, "wamid.M1").await]
    );
    assert!(idle(store.clone()).await.is_empty(), "leased once");
    assert!(store
        .claim_own(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    store.settle(&swept[0], Settlement::Ack).await.unwrap();
    assert!(store.queue_depths().await.unwrap().pending.is_empty());
}

pub async fn ordering_keys_are_scoped_to_their_topic(backend: Backend) {
    let store = backend.store().await;
    // An inbound message (`messages`, key pnid:wa_id) and a reply to the same customer (`dispatch`, same key).
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    let reply = store
        .enqueue_send(send_to(Some(MARIA), None, "reply"))
        .await
        .unwrap();

    let task = claim_one(&*store, topics::DISPATCH).await;
    assert_eq!(
        event_message_id(&task),
        reply.id,
        "a pending inbound event must not hold back the reply"
    );
    let event = claim_one(&*store, topics::MESSAGES).await;
    assert_eq!(event.ordering_key, task.ordering_key);
}

pub async fn defer_does_not_count_an_attempt(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 10)]))
        .await
        .unwrap();

    let first = store
        .claim(topics::MESSAGES, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.attempt, 1);
    let defer_now = Settlement::Defer {
        after: Duration::ZERO,
    };
    store.settle(&first, defer_now.clone()).await.unwrap();
    let again = store
        .claim(topics::MESSAGES, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((again.id.as_str(), again.attempt), (first.id.as_str(), 1));

    // Deferred into the future: not due, still pending.
    store
        .settle(
            &again,
            Settlement::Defer {
                after: Duration::from_secs(60),
            },
        )
        .await
        .unwrap();
    let other = claim_one(&*store, topics::MESSAGES).await;
    assert_ne!(other.id, first.id);
    assert_eq!(
        store.queue_depths().await.unwrap().pending[topics::MESSAGES],
        2
    );

    // Deferred many times, an event never runs out of attempts.
    store.settle(&other, Settlement::Ack).await.unwrap();
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J2", 11)]))
        .await
        .unwrap();
    for _ in 0..ConformanceOptions::default().max_attempts + 2 {
        let delivery = claim_one(&*store, topics::MESSAGES).await;
        assert_eq!(delivery.attempt, 1);
        store.settle(&delivery, defer_now.clone()).await.unwrap();
    }
    assert_eq!(store.queue_depths().await.unwrap().dead_letters, 0);
}

pub async fn retry_counts_attempts_and_dead_letters_after_max_attempts(backend: Backend) {
    let store = backend
        .store_with(ConformanceOptions {
            max_attempts: 3,
            ..Default::default()
        })
        .await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    let m1 = id_of(&*store, "wamid.M1").await;

    let mut first_attempt_at_ms = None;
    for attempt in 1..=3 {
        let delivery = claim_one(&*store, topics::MESSAGES).await;
        assert_eq!(
            (event_message_id(&delivery), delivery.attempt),
            (m1.clone(), attempt)
        );
        assert_eq!(
            delivery.ordering_key.as_deref(),
            Some(format!("{PNID}:{MARIA}").as_str())
        );
        let first = *first_attempt_at_ms.get_or_insert(delivery.first_attempt_at_ms);
        assert_eq!(
            delivery.first_attempt_at_ms, first,
            "set by the first claim"
        );
        store
            .settle(&delivery, retry(Duration::ZERO, &format!("boom {attempt}")))
            .await
            .unwrap();
    }
    assert_nothing_due(&*store, topics::MESSAGES, "dead after 3 attempts").await;
    let depths = store.queue_depths().await.unwrap();
    assert_eq!((pending(&depths), depths.dead_letters), (vec![], 1));

    // A retry with attempts left waits for its backoff.
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 10)]))
        .await
        .unwrap();
    let j1 = claim_one(&*store, topics::MESSAGES).await;
    store
        .settle(&j1, retry(Duration::from_secs(60), "later"))
        .await
        .unwrap();
    assert_nothing_due(&*store, topics::MESSAGES, "backing off").await;
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(
        (pending(&depths), depths.dead_letters),
        (vec![(topics::MESSAGES, 1)], 1)
    );
}

pub async fn retry_dead_letters_once_past_max_retry_age(backend: Backend) {
    // With the default 300 s age: a retry that would land past it is dead at once.
    let store = backend
        .store_with(ConformanceOptions {
            max_attempts: 100,
            ..Default::default()
        })
        .await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10), ("wamid.M2", 11)]))
        .await
        .unwrap();
    let first = claim_one(&*store, topics::MESSAGES).await;
    store
        .settle(&first, retry(Duration::ZERO, "soon"))
        .await
        .unwrap();
    assert_eq!(store.queue_depths().await.unwrap().dead_letters, 0);
    let again = claim_one(&*store, topics::MESSAGES).await;
    store
        .settle(&again, retry(Duration::from_secs(301), "too late"))
        .await
        .unwrap();
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(
        (pending(&depths), depths.dead_letters),
        (vec![(topics::MESSAGES, 1)], 1)
    );
    let next = claim_one(&*store, topics::MESSAGES).await;
    assert_eq!(next.payload["wamid"], "wamid.M2", "the key is free again");
}

pub async fn retry_dead_letters_an_event_older_than_a_short_max_age(backend: Backend) {
    let max_retry_age = Duration::from_millis(100);
    let store = backend
        .store_with(ConformanceOptions {
            max_attempts: 100,
            max_retry_age,
        })
        .await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    let delivery = claim_one(&*store, topics::MESSAGES).await;
    tokio::time::sleep(max_retry_age + Duration::from_millis(20)).await;
    store
        .settle(&delivery, retry(Duration::ZERO, "old"))
        .await
        .unwrap();
    let depths = store.queue_depths().await.unwrap();
    assert_eq!((pending(&depths), depths.dead_letters), (vec![], 1));
}

pub async fn waiting_behind_an_ordering_key_does_not_age_an_event(backend: Backend) {
    let store = backend
        .store_with(ConformanceOptions {
            max_retry_age: Duration::from_millis(100),
            ..Default::default()
        })
        .await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.AGE1", 1), ("wamid.AGE2", 2)]))
        .await
        .unwrap();
    let first = claim_one(&*store, topics::MESSAGES).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    store.settle(&first, Settlement::Ack).await.unwrap();

    // The second event waited 150 ms behind the first, longer than the retry window,
    // but its window starts at its own first attempt: one quick retry is allowed.
    let second = claim_one(&*store, topics::MESSAGES).await;
    store
        .settle(&second, retry(Duration::ZERO, "once"))
        .await
        .unwrap();
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(
        (pending(&depths), depths.dead_letters),
        (vec![(topics::MESSAGES, 1)], 0)
    );
}

pub async fn expired_lease_is_delivered_again_with_the_next_attempt(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 10)]))
        .await
        .unwrap();
    let long = store
        .claim(topics::MESSAGES, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    let short = store
        .claim(topics::MESSAGES, 1, Duration::from_millis(50))
        .await
        .unwrap()
        .remove(0);
    assert_ne!(short.id, long.id);
    tokio::time::sleep(Duration::from_millis(80)).await;

    let redelivered = claim_one(&*store, topics::MESSAGES).await;
    assert_eq!((redelivered.id, redelivered.attempt), (short.id, 2));
    assert_eq!(redelivered.payload, short.payload);
    assert_eq!(redelivered.first_attempt_at_ms, short.first_attempt_at_ms);
}

pub async fn a_settle_after_the_lease_expired_changes_nothing(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.STALE", 1)]))
        .await
        .unwrap();
    let first = store
        .claim(topics::MESSAGES, 1, Duration::from_millis(30))
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let second = claim_one(&*store, topics::MESSAGES).await;
    assert_eq!(second.attempt, 2);

    for stale in [
        Settlement::Ack,
        retry(Duration::ZERO, "stale"),
        Settlement::Defer {
            after: Duration::ZERO,
        },
        Settlement::DeadLetter {
            error: "stale".into(),
        },
    ] {
        store.settle(&first, stale).await.unwrap();
    }
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(
        (pending(&depths), depths.dead_letters),
        (vec![(topics::MESSAGES, 1)], 0),
        "the stale settlements did not touch the redelivered event"
    );
    assert_nothing_due(&*store, topics::MESSAGES, "still leased by the second").await;

    store.settle(&second, Settlement::Ack).await.unwrap();
    assert!(pending(&store.queue_depths().await.unwrap()).is_empty());
}

pub async fn a_renewed_lease_keeps_the_event_until_settled_with_it(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.RENEW", 1)]))
        .await
        .unwrap();
    let claimed = store
        .claim(topics::MESSAGES, 1, Duration::from_millis(400))
        .await
        .unwrap()
        .remove(0);
    let until = store
        .renew_lease(&claimed, LEASE)
        .await
        .unwrap()
        .expect("the holder renews its lease");
    assert!(until > claimed.lease_until_ms, "{until}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_nothing_due(&*store, topics::MESSAGES, "the renewed lease holds").await;
    assert_eq!(
        store.renew_lease(&claimed, LEASE).await.unwrap(),
        None,
        "the first lease is no longer the event's"
    );
    store.settle(&claimed, Settlement::Ack).await.unwrap();
    assert_eq!(
        pending(&store.queue_depths().await.unwrap()),
        vec![(topics::MESSAGES, 1)],
        "a settle with the first lease changes nothing"
    );
    let renewed = zapfn_store::Delivery {
        lease_until_ms: until,
        ..claimed
    };
    store.settle(&renewed, Settlement::Ack).await.unwrap();
    assert!(pending(&store.queue_depths().await.unwrap()).is_empty());
    assert_eq!(store.renew_lease(&renewed, LEASE).await.unwrap(), None);
}

pub async fn a_lease_taken_by_another_consumer_is_not_renewed(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.LOST", 1)]))
        .await
        .unwrap();
    let first = store
        .claim(topics::MESSAGES, 1, Duration::from_millis(30))
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let second = claim_one(&*store, topics::MESSAGES).await;
    assert_eq!(store.renew_lease(&first, LEASE).await.unwrap(), None);
    assert!(store.renew_lease(&second, LEASE).await.unwrap().is_some());
    assert_nothing_due(&*store, topics::MESSAGES, "the second consumer holds it").await;
}

pub async fn settling_a_removed_delivery_is_a_no_op(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 10)]))
        .await
        .unwrap();
    let acked = store
        .claim(topics::MESSAGES, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    let dead = store
        .claim(topics::MESSAGES, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    store.settle(&acked, Settlement::Ack).await.unwrap();
    store
        .settle(
            &dead,
            Settlement::DeadLetter {
                error: "first".into(),
            },
        )
        .await
        .unwrap();

    for delivery in [&acked, &dead] {
        store.settle(delivery, Settlement::Ack).await.unwrap();
        store
            .settle(delivery, retry(Duration::ZERO, "late"))
            .await
            .unwrap();
        store
            .settle(
                delivery,
                Settlement::Defer {
                    after: Duration::ZERO,
                },
            )
            .await
            .unwrap();
        store
            .settle(
                delivery,
                Settlement::DeadLetter {
                    error: "late".into(),
                },
            )
            .await
            .unwrap();
    }

    let depths = store.queue_depths().await.unwrap();
    assert_eq!((pending(&depths), depths.dead_letters), (vec![], 1));
    assert_nothing_due(&*store, topics::MESSAGES, "nothing came back").await;
}

pub async fn release_leases_delivers_in_flight_events_again(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10), ("wamid.M2", 11)]))
        .await
        .unwrap();
    store
        .enqueue_send(send_to(Some(JOAO), None, "hi"))
        .await
        .unwrap();
    // Leased by handlers that never finish: the process "dies" with them in flight.
    let message = claim_one(&*store, topics::MESSAGES).await;
    let task = claim_one(&*store, topics::DISPATCH).await;
    assert_nothing_due(&*store, topics::MESSAGES, "M2 waits behind M1").await;

    assert_eq!(store.release_leases().await.unwrap(), 2);
    let again = claim_one(&*store, topics::MESSAGES).await;
    assert_eq!((again.id.as_str(), again.attempt), (message.id.as_str(), 2));
    let task_again = claim_one(&*store, topics::DISPATCH).await;
    assert_eq!((task_again.id, task_again.attempt), (task.id, 2));
    assert_eq!(store.release_leases().await.unwrap(), 2);
    store.settle(&again, Settlement::Ack).await.unwrap();
    assert_eq!(store.release_leases().await.unwrap(), 0, "nothing leased");
}

pub async fn concurrent_claims_never_lease_one_event_twice(backend: Backend) {
    let store = backend.store().await;
    // 40 customers with 3 messages each: 120 events, 40 ordering keys.
    for customer in 0..40 {
        let from = format!("55119{customer:08}");
        let wamids: Vec<_> = (0..3).map(|i| format!("wamid.C{customer}_{i}")).collect();
        let batch: Vec<_> = wamids.iter().map(|w| (w.as_str(), 10)).collect();
        store.ingest(texts(PNID, &from, &batch)).await.unwrap();
    }
    // Eight consumers claim and ack concurrently. They note each delivery when
    // they claim it, and check that no other consumer holds its ordering key.
    let held = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let delivered = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let consumers: Vec<_> = (0..8)
        .map(|_| {
            let (store, held, delivered) = (store.clone(), held.clone(), delivered.clone());
            tokio::spawn(async move {
                let mut idle = 0;
                while idle < 3 {
                    let batch = store.claim(topics::MESSAGES, 4, LEASE).await.unwrap();
                    if batch.is_empty() {
                        idle += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    idle = 0;
                    for delivery in &batch {
                        let key = delivery.ordering_key.clone().unwrap();
                        assert!(
                            held.lock().unwrap().insert(key.clone()),
                            "key {key} leased twice at once"
                        );
                        let wamid = delivery.payload["wamid"].as_str().unwrap().to_owned();
                        delivered.lock().unwrap().push((delivery.id.clone(), wamid));
                    }
                    tokio::task::yield_now().await;
                    for delivery in batch {
                        held.lock()
                            .unwrap()
                            .remove(delivery.ordering_key.as_ref().unwrap());
                        store.settle(&delivery, Settlement::Ack).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for consumer in consumers {
        consumer.await.unwrap();
    }
    let delivered = delivered.lock().unwrap().clone();
    let ids: BTreeSet<_> = delivered.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(delivered.len(), 120, "every event delivered");
    assert_eq!(ids.len(), 120, "no event delivered twice");
    for customer in 0..40 {
        let prefix = format!("wamid.C{customer}_");
        let order: Vec<_> = delivered
            .iter()
            .filter(|(_, wamid)| wamid.starts_with(&prefix))
            .map(|(_, wamid)| wamid[prefix.len()..].to_owned())
            .collect();
        assert_eq!(order, ["0", "1", "2"], "customer {customer} in order");
    }
    assert!(pending(&store.queue_depths().await.unwrap()).is_empty());
}

pub async fn queue_depths_count_pending_and_dead_letters(backend: Backend) {
    let store = backend.store().await;
    assert_eq!(store.queue_depths().await.unwrap(), Default::default());

    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 10)]))
        .await
        .unwrap();
    store.ingest(parse(STATUS_SENT)).await.unwrap();
    store
        .enqueue_send(send_to(Some(MARIA), None, "hi"))
        .await
        .unwrap();
    let expected = [
        (topics::DISPATCH, 1),
        (topics::MESSAGES, 2),
        (topics::STATUSES, 1),
    ];
    assert_eq!(pending(&store.queue_depths().await.unwrap()), expected);

    let in_flight = store
        .claim(topics::MESSAGES, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        pending(&store.queue_depths().await.unwrap()),
        expected,
        "in-flight events still count"
    );
    store.settle(&in_flight, Settlement::Ack).await.unwrap();
    let status = claim_one(&*store, topics::STATUSES).await;
    store
        .settle(
            &status,
            Settlement::DeadLetter {
                error: "bad".into(),
            },
        )
        .await
        .unwrap();

    let depths = store.queue_depths().await.unwrap();
    assert_eq!(
        pending(&depths),
        [(topics::DISPATCH, 1), (topics::MESSAGES, 1)]
    );
    assert_eq!(depths.dead_letters, 1);
}

pub async fn oldest_pending_is_the_oldest_event_of_the_topic_until_it_is_settled(backend: Backend) {
    let store = backend.store().await;
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    assert_eq!(
        store.oldest_pending_ms(topics::STATUSES).await.unwrap(),
        None
    );

    let before_first = now_ms();
    store.ingest(parse(STATUS_SENT)).await.unwrap();
    let after_first = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.ingest(parse(STATUS_DELIVERED)).await.unwrap();
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    let first = store
        .oldest_pending_ms(topics::STATUSES)
        .await
        .unwrap()
        .expect("two statuses wait");
    assert!(
        (before_first..=after_first).contains(&first),
        "{first} is when the first status was published ({before_first}..={after_first})"
    );

    let mut claimed = store.claim(topics::STATUSES, 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        store.oldest_pending_ms(topics::STATUSES).await.unwrap(),
        Some(first),
        "an event in flight is not applied yet"
    );
    claimed.sort_by_key(|delivery| delivery.payload["status"].as_str() != Some("sent"));
    store.settle(&claimed[0], Settlement::Ack).await.unwrap();
    let second = store
        .oldest_pending_ms(topics::STATUSES)
        .await
        .unwrap()
        .expect("the second status still waits");
    assert!(
        second > first,
        "{second} is the later status's, after {first}"
    );

    store.settle(&claimed[1], Settlement::Ack).await.unwrap();
    assert_eq!(
        store.oldest_pending_ms(topics::STATUSES).await.unwrap(),
        None,
        "the message event of another topic does not count"
    );
    assert!(store
        .oldest_pending_ms(topics::MESSAGES)
        .await
        .unwrap()
        .is_some());
}

pub async fn dead_letter_keeps_a_pushed_event(backend: Backend) {
    let store = backend.store().await;
    store
        .dead_letter(topics::STATUSES, &json!({ "bad": true }), 3, "not a status")
        .await
        .unwrap();
    store
        .dead_letter(topics::MEDIA, &json!("text \u{0} nul"), 1, "nul")
        .await
        .unwrap();
    let depths = store.queue_depths().await.unwrap();
    assert_eq!((pending(&depths), depths.dead_letters), (vec![], 2));
}

pub async fn annotate_media_publishes_once_per_changed_value(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(parse(
            &include_bytes!("../../../../fixtures/webhooks/message_image.json")[..],
        ))
        .await
        .unwrap();
    let message = drain(&*store, topics::MESSAGES).await.remove(0);
    let id = event_message_id(&message);
    let original = store.message(&id).await.unwrap().unwrap().media.unwrap();
    let event = NewEvent {
        topic: topics::MEDIA.into(),
        ordering_key: Some("k".into()),
        payload: json!({ "message_id": id }),
    };
    let value = json!({ "status": "done", "key": "a/b" });

    let changed = store
        .annotate_media(&id, "object", value.clone(), vec![event.clone()])
        .await
        .unwrap();
    let again = store
        .annotate_media(&id, "object", value.clone(), vec![event.clone()])
        .await
        .unwrap();
    assert!(changed && !again, "only the first write changes the value");
    let published = drain(&*store, topics::MEDIA).await;
    assert_eq!(published.len(), 1, "one event for one change");
    assert_eq!(
        (
            published[0].payload.clone(),
            published[0].ordering_key.as_deref()
        ),
        (event.payload.clone(), Some("k"))
    );
    let media = store.message(&id).await.unwrap().unwrap().media.unwrap();
    assert_eq!(media["object"], value);
    assert_eq!(media["id"], original["id"], "the rest of media is kept");

    // A second key, and a changed value, each publish; no events is fine too.
    assert!(store
        .annotate_media(&id, "ocr", json!("text"), vec![])
        .await
        .unwrap());
    let done = json!({ "status": "failed" });
    assert!(store
        .annotate_media(&id, "object", done.clone(), vec![event.clone()])
        .await
        .unwrap());
    assert_eq!(drain(&*store, topics::MEDIA).await.len(), 1);
    let media = store.message(&id).await.unwrap().unwrap().media.unwrap();
    assert_eq!(
        (media["object"].clone(), media["ocr"].clone()),
        (done, json!("text"))
    );

    // A message without media gets a media object.
    store
        .ingest(texts(PNID, MARIA, &[("wamid.TEXT", 1)]))
        .await
        .unwrap();
    let text = id_of(&*store, "wamid.TEXT").await;
    assert!(store
        .annotate_media(&text, "transcript", json!("hi"), vec![])
        .await
        .unwrap());
    assert_eq!(
        store.message(&text).await.unwrap().unwrap().media,
        Some(json!({ "transcript": "hi" }))
    );

    let unknown = store
        .annotate_media("msg_nope", "object", value, vec![event])
        .await;
    assert!(
        matches!(unknown, Err(StoreError::Invalid(_))),
        "{unknown:?}"
    );
    assert!(pending(&store.queue_depths().await.unwrap())
        .iter()
        .all(|(topic, _)| *topic != topics::MEDIA));
}
