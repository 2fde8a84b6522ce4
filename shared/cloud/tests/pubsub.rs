//! Pub/Sub on the emulator: publish with ordering keys and attributes, push
//! subscriptions with attribute filters POSTing envelopes to a loopback server.

mod common;

use std::time::Duration;

use serde_json::json;
use zapfn_cloud::pubsub::{PubSubBus, PushSubscription};
use zapfn_cloud::push;
use zapfn_store::Delivery;

fn event(topic: &str, payload: serde_json::Value, key: &str) -> Delivery {
    Delivery {
        id: "1".into(),
        topic: topic.into(),
        ordering_key: Some(key.into()),
        payload,
        attempt: 1,
        first_attempt_at_ms: 0,
        lease_until_ms: 0,
    }
}

#[tokio::test]
async fn filtered_push_subscriptions_get_decodable_envelopes_in_order() {
    let Some(_) = common::emulator(
        "PUBSUB_EMULATOR_HOST",
        "filtered_push_subscriptions_get_decodable_envelopes_in_order",
    ) else {
        return;
    };
    let prefix = common::unique("t");
    let bus = PubSubBus::connect(Some("zapfn-test".into()), &format!("{prefix}-"))
        .await
        .unwrap();
    let receiver = common::Receiver::start(vec![]).await;
    let mut texts = PushSubscription::new(
        format!("{prefix}-text"),
        "messages",
        format!("{}/_push/messages", receiver.url),
    );
    texts.filter = Some(r#"attributes.message_type = "text""#.into());
    bus.ensure_push_subscription(&texts).await.unwrap();
    bus.ensure_push_subscription(&texts).await.unwrap(); // idempotent

    let key = "106540352242922:5511999990000";
    let events: Vec<Delivery> = (0..5)
        .map(|n| {
            let message_type = if n == 2 { "image" } else { "text" };
            event(
                "messages",
                json!({"n": n, "message_type": message_type, "phone_number_id": "106540352242922"}),
                key,
            )
        })
        .collect();
    for one in &events {
        let ids = bus.publish("messages", std::slice::from_ref(one)).await;
        assert_eq!(ids.len(), 1);
        ids[0].as_ref().unwrap();
    }

    receiver.wait_for(4, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The emulator stores the filter but does not apply it (real Pub/Sub does),
    // and omits `orderingKey` and `deliveryAttempt` from push envelopes.
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 5, "{received:?}");
    let deliveries: Vec<Delivery> = received
        .iter()
        .map(|r| push::decode(&r.body, "messages").unwrap())
        .collect();
    let order: Vec<i64> = deliveries
        .iter()
        .map(|d| d.payload["n"].as_i64().unwrap())
        .collect();
    assert_eq!(
        order,
        vec![0, 1, 2, 3, 4],
        "ordering key keeps publish order"
    );
    for (delivery, sent) in deliveries.iter().zip(&events) {
        assert_eq!(delivery.payload, sent.payload);
        assert_eq!(delivery.attempt, 1);
        assert!(!delivery.id.is_empty());
    }
    let image: serde_json::Value = serde_json::from_slice(&received[2].body).unwrap();
    assert_eq!(image["message"]["attributes"]["message_type"], "image");
    assert_eq!(image["message"]["attributes"]["topic"], "messages");

    let host = std::env::var("PUBSUB_EMULATOR_HOST").unwrap();
    let stored: serde_json::Value = reqwest::get(format!(
        "http://{host}/v1/projects/zapfn-test/subscriptions/{prefix}-text"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(stored["filter"], r#"attributes.message_type = "text""#);
    assert_eq!(stored["enableMessageOrdering"], true);
    assert_eq!(stored["pushConfig"]["pushEndpoint"], texts.endpoint);
    assert_eq!(stored["deadLetterPolicy"]["maxDeliveryAttempts"], 10);
}

#[tokio::test]
async fn a_failed_push_is_redelivered_with_a_higher_attempt() {
    let Some(_) = common::emulator(
        "PUBSUB_EMULATOR_HOST",
        "a_failed_push_is_redelivered_with_a_higher_attempt",
    ) else {
        return;
    };
    let prefix = common::unique("r");
    let bus = PubSubBus::connect(Some("zapfn-test".into()), &format!("{prefix}-"))
        .await
        .unwrap();
    // 503 first: Pub/Sub must deliver the same message again.
    let receiver = common::Receiver::start(vec![503]).await;
    let mut spec = PushSubscription::new(
        format!("{prefix}-status"),
        "statuses",
        format!("{}/_push/statuses", receiver.url),
    );
    spec.min_backoff = Duration::from_secs(1);
    bus.ensure_push_subscription(&spec).await.unwrap();
    let published = bus
        .publish(
            "statuses",
            &[event(
                "statuses",
                json!({"status": "read", "wamid": "w1"}),
                "w1",
            )],
        )
        .await;
    published[0].as_ref().unwrap();
    let received = receiver.wait_for(2, Duration::from_secs(60)).await;
    let first = push::decode(&received[0].body, "statuses").unwrap();
    let second = push::decode(&received[1].body, "statuses").unwrap();
    assert_eq!(first.id, second.id, "the same message came again");
    assert_eq!(second.payload["status"], "read");
    assert!(
        second.first_attempt_at_ms == first.first_attempt_at_ms,
        "retry windows start at publish"
    );
}

/// A relay batch mixes conversations: each ordering key goes in its own
/// request, and every event gets back its own message id.
#[tokio::test]
async fn a_batch_of_several_ordering_keys_is_published_per_key() {
    let Some(_) = common::emulator(
        "PUBSUB_EMULATOR_HOST",
        "a_batch_of_several_ordering_keys_is_published_per_key",
    ) else {
        return;
    };
    let prefix = common::unique("k");
    let bus = PubSubBus::connect(Some("zapfn-test".into()), &format!("{prefix}-"))
        .await
        .unwrap();
    let receiver = common::Receiver::start(vec![]).await;
    bus.ensure_push_subscription(&PushSubscription::new(
        format!("{prefix}-all"),
        "messages",
        format!("{}/_push/messages", receiver.url),
    ))
    .await
    .unwrap();
    let mut events: Vec<Delivery> = ["a", "b", "a", "c", "b"]
        .iter()
        .enumerate()
        .map(|(n, key)| event("messages", json!({"n": n, "key": key}), key))
        .collect();
    events.push(Delivery {
        ordering_key: None,
        ..event("messages", json!({"n": 5}), "")
    });
    let ids: Vec<String> = bus
        .publish("messages", &events)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids.len(), events.len());
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "one message per event: {ids:?}");

    let received = receiver.wait_for(6, Duration::from_secs(20)).await;
    let by_id: std::collections::HashMap<String, i64> = received
        .iter()
        .map(|r| push::decode(&r.body, "messages").unwrap())
        .map(|d| (d.id, d.payload["n"].as_i64().unwrap()))
        .collect();
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            by_id.get(id),
            Some(&(n as i64)),
            "message id {id} is event {n}'s"
        );
    }
}
