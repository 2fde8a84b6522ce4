//! Outbound sends: queued with one dispatch task, idempotency keys, what the
//! dispatcher records; and the 24-hour window.

use serde_json::json;
use zapfn_store::{topics, ConversationQuery, DispatchTask, StoreError};
use zapfn_whatsapp::builders;

use crate::fixtures::*;
use crate::Backend;

pub async fn enqueue_send_stores_a_queued_message_and_one_dispatch_task(backend: Backend) {
    let store = backend.store().await;
    let first = send_to(Some(MARIA_FORMATTED), Some("key-1"), "first");
    let enqueued = store.enqueue_send(first.clone()).await.unwrap();
    assert!(enqueued.created);
    assert_eq!(enqueued.status, "queued");

    let view = store.message(&enqueued.id).await.unwrap().unwrap();
    assert_eq!(
        (view.direction.as_str(), view.status.as_str()),
        ("outbound", "queued")
    );
    assert_eq!(
        (view.from.as_deref(), view.to.as_deref()),
        (Some(PNID), Some(MARIA))
    );
    assert_eq!(
        (view.wamid.as_deref(), view.text.as_deref()),
        (None, Some("first"))
    );
    assert_eq!(view.message_type.as_deref(), Some("text"));
    assert_eq!(view.raw.as_ref(), Some(&first.body));
    assert_eq!(history(&view), ["queued"]);

    // The same idempotency key returns the first message, whatever the body.
    let again = store
        .enqueue_send(send_to(Some(MARIA), Some("key-1"), "second"))
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.created, again.status.as_str()),
        (enqueued.id.as_str(), false, "queued")
    );
    let other = store
        .enqueue_send(send_to(Some(MARIA), Some("key-2"), "third"))
        .await
        .unwrap();
    assert!(other.created);
    assert_ne!(other.id, enqueued.id);

    let outbound = store.outbound(&enqueued.id).await.unwrap().unwrap();
    assert_eq!(outbound.body, first.body);
    assert_eq!(
        (outbound.phone_number_id.as_str(), outbound.to.as_deref()),
        (PNID, Some(MARIA))
    );
    assert_eq!(
        (
            outbound.message_type.as_str(),
            outbound.status.as_str(),
            outbound.wamid
        ),
        ("text", "queued", None)
    );
    assert_eq!(store.outbound("msg_unknown").await.unwrap(), None);

    let conversation = view.conversation_id.unwrap();
    assert_eq!(messages_of(&*store, &conversation).await.len(), 2);
    let tasks = drain(&*store, topics::DISPATCH).await;
    assert_eq!(
        tasks.len(),
        2,
        "one task per created message, none for the repeat"
    );
    let first_task: DispatchTask = serde_json::from_value(tasks[0].payload.clone()).unwrap();
    assert_eq!(first_task.message_id, enqueued.id);
    assert_eq!(event_message_id(&tasks[1]), other.id);
    let key = format!("{PNID}:{MARIA}");
    assert!(tasks
        .iter()
        .all(|task| task.ordering_key.as_deref() == Some(key.as_str())));

    // A mark-as-read has no recipient and so no ordering key and no conversation.
    let read = store
        .enqueue_send(send_to(None, None, "read"))
        .await
        .unwrap();
    let task = claim_one(&*store, topics::DISPATCH).await;
    assert_eq!(
        (event_message_id(&task), task.ordering_key),
        (read.id.clone(), None)
    );
    let view = store.message(&read.id).await.unwrap().unwrap();
    assert_eq!((view.to, view.conversation_id), (None, None));
}

pub async fn inbound_messages_are_not_outbound_sends(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.IN", 10)]))
        .await
        .unwrap();
    let id = id_of(&*store, "wamid.IN").await;
    assert_eq!(store.outbound(&id).await.unwrap(), None);
}

pub async fn record_sent_for_an_unknown_message_is_invalid(backend: Backend) {
    let store = backend.store().await;
    let result = store
        .record_sent("msg_does_not_exist", Some("wamid.X"))
        .await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    assert_eq!(store.message("wamid.X").await.unwrap(), None);
}

pub async fn record_send_error_fails_only_when_terminal(backend: Backend) {
    let store = backend.store().await;
    let enqueued = store
        .enqueue_send(send_to(Some(MARIA), Some("k"), "hi"))
        .await
        .unwrap();

    let transient = json!({ "code": 131056, "message": "pair rate limit" });
    store
        .record_send_error(&enqueued.id, transient.clone(), false, false)
        .await
        .unwrap();
    let view = store.message(&enqueued.id).await.unwrap().unwrap();
    assert_eq!(
        (view.status.as_str(), view.errors),
        ("queued", Some(json!([transient])))
    );
    assert_eq!(view.status_history.len(), 1);

    let permanent = json!({ "code": 131026, "message": "undeliverable" });
    store
        .record_send_error(&enqueued.id, permanent.clone(), true, false)
        .await
        .unwrap();
    let view = store.message(&enqueued.id).await.unwrap().unwrap();
    assert_eq!(
        (view.status.as_str(), view.errors.clone()),
        ("failed", Some(json!([permanent.clone()])))
    );
    assert_eq!(history(&view), ["queued", "failed"]);
    assert_eq!(view.status_history[1].errors, Some(json!([permanent])));
    assert_eq!(
        store.outbound(&enqueued.id).await.unwrap().unwrap().status,
        "failed"
    );

    let repeat = store
        .enqueue_send(send_to(Some(MARIA), Some("k"), "hi"))
        .await
        .unwrap();
    assert_eq!((repeat.created, repeat.status.as_str()), (false, "failed"));
}

pub async fn the_mid_send_mark_is_kept_only_when_the_send_may_have_reached_meta(backend: Backend) {
    let store = backend.store().await;
    let enqueued = store
        .enqueue_send(send_to(Some(MARIA), None, "hi"))
        .await
        .unwrap();
    let started_at = |store: std::sync::Arc<dyn zapfn_store::Store>| {
        let id = enqueued.id.clone();
        async move {
            store
                .outbound(&id)
                .await
                .unwrap()
                .unwrap()
                .dispatch_started_at
        }
    };
    assert_eq!(started_at(store.clone()).await, None);
    let before = now_secs();
    store.mark_dispatching(&enqueued.id).await.unwrap();
    let started = started_at(store.clone()).await.unwrap();
    assert!((before..=now_secs()).contains(&started));

    store
        .record_send_error(&enqueued.id, json!({ "error": "timeout" }), false, true)
        .await
        .unwrap();
    assert_eq!(started_at(store.clone()).await, Some(started));
    store
        .record_send_error(&enqueued.id, json!({ "code": 131000 }), false, false)
        .await
        .unwrap();
    assert_eq!(started_at(store.clone()).await, None);

    store.mark_dispatching(&enqueued.id).await.unwrap();
    store
        .record_sent(&enqueued.id, Some(&builders::new_wamid()))
        .await
        .unwrap();
    let sent = store.outbound(&enqueued.id).await.unwrap().unwrap();
    assert_eq!(
        (sent.status.as_str(), sent.dispatch_started_at),
        ("accepted", None)
    );
}

pub async fn last_inbound_at_is_the_latest_customer_message(backend: Backend) {
    let store = backend.store().await;
    assert_eq!(store.last_inbound_at(PNID, MARIA).await.unwrap(), None);

    store
        .ingest(texts(PNID, MARIA, &[("wamid.W1", 1_000)]))
        .await
        .unwrap();
    store
        .ingest(texts(PNID, MARIA, &[("wamid.W0", 900)]))
        .await
        .unwrap();
    assert_eq!(
        store.last_inbound_at(PNID, MARIA).await.unwrap(),
        Some(1_000),
        "an older message arriving late"
    );
    store
        .ingest(texts(
            PNID,
            MARIA,
            &[("wamid.W2", 1_100), ("wamid.W3", 1_050)],
        ))
        .await
        .unwrap();
    assert_eq!(
        store.last_inbound_at(PNID, MARIA).await.unwrap(),
        Some(1_100)
    );
    assert_eq!(
        store.last_inbound_at(PNID, MARIA_FORMATTED).await.unwrap(),
        Some(1_100)
    );
    assert_eq!(
        store
            .last_inbound_at(PNID, "+55 (11) 9.9999-0000")
            .await
            .unwrap(),
        Some(1_100)
    );

    // Other number, other customer, and business-side activity do not open a window.
    assert_eq!(store.last_inbound_at(PNID_2, MARIA).await.unwrap(), None);
    store
        .enqueue_send(send_to(Some(MARIA), None, "reply"))
        .await
        .unwrap();
    store
        .apply_status(&status(&builders::new_wamid(), MARIA, "read", 5_000, None))
        .await
        .unwrap();
    assert_eq!(
        store.last_inbound_at(PNID, MARIA).await.unwrap(),
        Some(1_100)
    );

    // A customer the business wrote to first (twice) has no window yet.
    store
        .enqueue_send(send_to(Some("+55 21 98888-7777"), None, "hello"))
        .await
        .unwrap();
    store
        .enqueue_send(send_to(Some(JOAO), None, "hello again"))
        .await
        .unwrap();
    let conversation = &store
        .conversations(ConversationQuery {
            wa_id: Some(JOAO.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(conversation.len(), 1);
    assert_eq!(conversation[0].last_inbound_at, None);
    assert_eq!(store.last_inbound_at(PNID, JOAO).await.unwrap(), None);
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 2_000)]))
        .await
        .unwrap();
    assert_eq!(
        store
            .last_inbound_at(PNID, "+55 21 98888-7777")
            .await
            .unwrap(),
        Some(2_000)
    );
}

pub async fn concurrent_sends_with_one_idempotency_key_make_one_message(backend: Backend) {
    let store = backend.store().await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let send = send_to(Some(MARIA), Some("same-key"), &format!("try {i}"));
            tokio::spawn(async move { store.enqueue_send(send).await.unwrap() })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    assert_eq!(answers.iter().filter(|a| a.created).count(), 1);
    assert!(answers.iter().all(|a| a.id == answers[0].id));
    assert_eq!(drain(&*store, topics::DISPATCH).await.len(), 1);
    let conversation = conversation_of(&*store, &answers[0].id).await;
    assert_eq!(messages_of(&*store, &conversation).await.len(), 1);
}

pub async fn earlier_send_pending_sees_queued_sends_to_the_same_customer_only(backend: Backend) {
    let store = backend.store().await;
    let mut maria = Vec::new();
    for text in ["um", "dois", "três"] {
        let enqueued = store
            .enqueue_send(send_to(Some(MARIA), None, text))
            .await
            .unwrap();
        maria.push(enqueued.id);
    }
    let joao = store
        .enqueue_send(send_to(Some(JOAO), None, "outro"))
        .await
        .unwrap()
        .id;
    let pending = |id: String, since: i64| {
        let store = store.clone();
        async move { store.earlier_send_pending(&id, since).await.unwrap() }
    };
    assert!(
        !pending(maria[0].clone(), 0).await,
        "the first has nothing before it"
    );
    assert!(pending(maria[1].clone(), 0).await);
    assert!(
        !pending(joao.clone(), 0).await,
        "another customer's sends do not count"
    );
    assert!(
        !pending(maria[1].clone(), now_secs() + 60).await,
        "sends accepted before `since` do not count"
    );

    store
        .record_sent(&maria[0], Some(&builders::new_wamid()))
        .await
        .unwrap();
    assert!(!pending(maria[1].clone(), 0).await, "a sent one is done");
    assert!(pending(maria[2].clone(), 0).await, "the second still waits");
    let refused = json!({ "code": 131026, "message": "undeliverable" });
    store
        .record_send_error(&maria[1], refused, true, false)
        .await
        .unwrap();
    assert!(!pending(maria[2].clone(), 0).await, "a failed one is done");
}
