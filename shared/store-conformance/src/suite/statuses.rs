//! Statuses: deduplicated, monotonic, every event in the history, placeholders
//! for unknown wamids merged when the send is recorded.

use serde_json::{json, Value};
use zapfn_store::{callback_data_for, topics};
use zapfn_whatsapp::builders;
use zapfn_whatsapp::webhook::StatusUpdate;

use crate::fixtures::*;
use crate::Backend;

pub async fn statuses_are_deduplicated_by_wamid_and_status(backend: Backend) {
    let store = backend.store().await;
    let first = store.ingest(parse(STATUS_SENT)).await.unwrap();
    assert_eq!((first.new_statuses, first.duplicate_statuses), (1, 0));
    let again = store.ingest(parse(STATUS_SENT)).await.unwrap();
    assert_eq!((again.new_statuses, again.duplicate_statuses), (0, 1));
    let delivered = store.ingest(parse(STATUS_DELIVERED)).await.unwrap();
    assert_eq!(
        (delivered.new_statuses, delivered.duplicate_statuses),
        (1, 0)
    );

    let events = drain(&*store, topics::STATUSES).await;
    let states: Vec<_> = events
        .iter()
        .map(|delivery| {
            let update: StatusUpdate = serde_json::from_value(delivery.payload.clone()).unwrap();
            assert_eq!(update.wamid, "wamid.OUTBOUND0001");
            assert_eq!(delivery.ordering_key, None);
            update.status
        })
        .collect();
    assert_eq!(states, ["sent", "delivered"]);
}

pub async fn apply_status_is_monotonic_and_records_every_event(backend: Backend) {
    let store = backend.store().await;
    let wamid = builders::new_wamid();
    let sent = store
        .enqueue_send(send_to(Some(MARIA), None, "hello"))
        .await
        .unwrap();
    store.record_sent(&sent.id, Some(&wamid)).await.unwrap();
    assert_eq!(
        store.message(&sent.id).await.unwrap().unwrap().status,
        "accepted"
    );

    let t = now_secs() + 100;
    store
        .apply_status(&status(&wamid, MARIA, "read", t + 10, None))
        .await
        .unwrap();
    store
        .apply_status(&status(&wamid, MARIA, "delivered", t, None))
        .await
        .unwrap();
    let view = store.message(&wamid).await.unwrap().unwrap();
    assert_eq!(
        view.status, "read",
        "a late delivered does not downgrade read"
    );
    assert_eq!(view.errors, None);

    let errors = json!([{ "code": 131026, "title": "Message undeliverable" }]);
    store
        .apply_status(&status(
            &wamid,
            MARIA,
            "failed",
            t + 20,
            Some(errors.clone()),
        ))
        .await
        .unwrap();
    store
        .apply_status(&status(&wamid, MARIA, "played", t + 30, None))
        .await
        .unwrap();
    store
        .apply_status(&status(&wamid, MARIA, "read", t + 10, None))
        .await
        .unwrap();

    let view = store.message(&sent.id).await.unwrap().unwrap();
    assert_eq!(view.status, "failed", "failed is terminal");
    assert_eq!(view.errors, Some(errors.clone()));
    assert_eq!(
        history(&view),
        [
            "queued",
            "accepted",
            "delivered",
            "read",
            "failed",
            "played"
        ]
    );
    let failed = view
        .status_history
        .iter()
        .find(|entry| entry.status == "failed")
        .unwrap();
    assert_eq!(
        (failed.timestamp, failed.errors.clone()),
        (t + 20, Some(errors))
    );
    let conversation = view.conversation_id.unwrap();
    assert_eq!(messages_of(&*store, &conversation).await.len(), 1);
}

pub async fn status_for_unknown_wamid_makes_a_placeholder_that_record_sent_merges(
    backend: Backend,
) {
    let store = backend.store().await;
    let wamid = builders::new_wamid();
    let t = now_secs() + 100;
    store
        .apply_status(&status(&wamid, MARIA, "sent", t, None))
        .await
        .unwrap();
    store
        .apply_status(&status(&wamid, MARIA, "delivered", t + 10, None))
        .await
        .unwrap();

    let placeholder = store
        .message(&wamid)
        .await
        .unwrap()
        .expect("placeholder answers by wamid");
    assert_eq!(placeholder.direction, "outbound");
    assert_eq!(placeholder.status, "delivered");
    assert_eq!(placeholder.to.as_deref(), Some(MARIA));
    assert_eq!(placeholder.phone_number_id, PNID);
    assert_eq!(history(&placeholder), ["sent", "delivered"]);

    // The send that the statuses belong to is recorded afterwards.
    let sent = store
        .enqueue_send(send_to(Some(MARIA_FORMATTED), None, "hello"))
        .await
        .unwrap();
    assert_ne!(sent.id, placeholder.id);
    store.record_sent(&sent.id, Some(&wamid)).await.unwrap();

    let by_wamid = store.message(&wamid).await.unwrap().unwrap();
    let by_id = store.message(&sent.id).await.unwrap().unwrap();
    assert_eq!(by_wamid, by_id);
    assert_eq!(by_id.id, sent.id);
    assert_eq!(by_id.wamid.as_deref(), Some(wamid.as_str()));
    assert_eq!(
        by_id.status, "delivered",
        "the higher of accepted and the placeholder's status"
    );
    assert_eq!(by_id.conversation_id, placeholder.conversation_id);
    assert_eq!(history(&by_id), ["queued", "accepted", "sent", "delivered"]);
    assert_eq!(store.message(&placeholder.id).await.unwrap(), None);
    let conversation = by_id.conversation_id.unwrap();
    let messages = messages_of(&*store, &conversation).await;
    assert_eq!(
        messages.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [sent.id.as_str()],
        "the placeholder is merged away"
    );
    let outbound = store.outbound(&sent.id).await.unwrap().unwrap();
    assert_eq!(
        (outbound.wamid.as_deref(), outbound.status.as_str()),
        (Some(wamid.as_str()), "delivered")
    );
}

pub async fn merging_a_failed_placeholder_keeps_failed_and_its_errors(backend: Backend) {
    let store = backend.store().await;
    let wamid = builders::new_wamid();
    let errors = json!([{ "code": 131049, "title": "Not delivered to maintain healthy ecosystem engagement" }]);
    store
        .apply_status(&status(
            &wamid,
            MARIA,
            "failed",
            now_secs(),
            Some(errors.clone()),
        ))
        .await
        .unwrap();
    let placeholder = store.message(&wamid).await.unwrap().unwrap();
    assert_eq!(placeholder.status, "failed");
    assert_eq!(placeholder.errors, Some(errors.clone()));

    let sent = store
        .enqueue_send(send_to(Some(MARIA), None, "hello"))
        .await
        .unwrap();
    store.record_sent(&sent.id, Some(&wamid)).await.unwrap();
    let view = store.message(&sent.id).await.unwrap().unwrap();
    assert_eq!(
        (view.status.as_str(), view.errors),
        ("failed", Some(errors))
    );
    assert_eq!(store.message(&placeholder.id).await.unwrap(), None);
    let conversation = view.conversation_id.unwrap();
    assert_eq!(messages_of(&*store, &conversation).await.len(), 1);
}

pub async fn a_status_with_callback_data_links_a_send_whose_answer_was_lost(backend: Backend) {
    let store = backend.store().await;
    let enqueued = store
        .enqueue_send(send_to(Some(MARIA), None, "hi"))
        .await
        .unwrap();
    store.mark_dispatching(&enqueued.id).await.unwrap();

    let wamid = builders::new_wamid();
    let mut object = builders::status(&wamid, MARIA, "delivered", now_secs() + 100, None);
    object["biz_opaque_callback_data"] = json!(callback_data_for(&enqueued.id));
    let update = parse_json(&builders::statuses_notification(PNID, vec![object]))
        .statuses
        .remove(0);
    store.apply_status(&update).await.unwrap();

    let view = store.message(&wamid).await.unwrap().unwrap();
    assert_eq!(
        (view.id.as_str(), view.status.as_str()),
        (enqueued.id.as_str(), "delivered")
    );
    assert_eq!(history(&view), ["queued", "accepted", "delivered"]);
    let outbound = store.outbound(&enqueued.id).await.unwrap().unwrap();
    assert_eq!(
        (outbound.wamid.as_deref(), outbound.dispatch_started_at),
        (Some(wamid.as_str()), None)
    );

    // The dispatcher's own record arriving late changes nothing.
    store.record_sent(&enqueued.id, Some(&wamid)).await.unwrap();
    assert_eq!(
        store.message(&wamid).await.unwrap().unwrap().status,
        "delivered"
    );
    let conversation = view.conversation_id.unwrap();
    assert_eq!(messages_of(&*store, &conversation).await.len(), 1);

    // Callback data naming a message that already has its wamid links nothing:
    // the status stays on a placeholder of its own.
    let other = builders::new_wamid();
    let mut object = builders::status(&other, MARIA, "sent", now_secs() + 100, None);
    object["biz_opaque_callback_data"] = json!(callback_data_for(&enqueued.id));
    let update = parse_json(&builders::statuses_notification(PNID, vec![object]))
        .statuses
        .remove(0);
    store.apply_status(&update).await.unwrap();
    let placeholder = store.message(&other).await.unwrap().unwrap();
    assert_ne!(placeholder.id, enqueued.id);
    assert_eq!(
        store
            .message(&wamid)
            .await
            .unwrap()
            .unwrap()
            .wamid
            .as_deref(),
        Some(wamid.as_str())
    );
}

pub async fn a_send_given_up_unanswered_is_revived_by_its_status_webhook(backend: Backend) {
    let store = backend.store().await;
    let enqueued = store
        .enqueue_send(send_to(Some(MARIA), None, "hi"))
        .await
        .unwrap();
    store.mark_dispatching(&enqueued.id).await.unwrap();
    // The last attempt timed out: the dispatcher gave up, but Meta had the message.
    let timeout = json!({ "code": 0, "title": "Graph API timed out" });
    store
        .record_send_error(&enqueued.id, timeout, true, true)
        .await
        .unwrap();
    assert_eq!(
        store.message(&enqueued.id).await.unwrap().unwrap().status,
        "failed"
    );

    let wamid = builders::new_wamid();
    let mut object = builders::status(&wamid, MARIA, "read", now_secs() + 100, None);
    object["biz_opaque_callback_data"] = json!(callback_data_for(&enqueued.id));
    let update = parse_json(&builders::statuses_notification(PNID, vec![object]))
        .statuses
        .remove(0);
    store.apply_status(&update).await.unwrap();
    let view = store.message(&enqueued.id).await.unwrap().unwrap();
    assert_eq!(
        (view.wamid.as_deref(), view.status.as_str()),
        (Some(wamid.as_str()), "read")
    );
    let history = history(&view);
    assert!(history.contains(&"failed"), "{history:?}");
    assert_eq!(history.last(), Some(&"read"), "{history:?}");

    // Meta's own `failed` (the message has its wamid) stays terminal.
    let failed = builders::status(&wamid, MARIA, "failed", now_secs() + 200, None);
    let update = parse_json(&builders::statuses_notification(PNID, vec![failed]))
        .statuses
        .remove(0);
    store.apply_status(&update).await.unwrap();
    store.record_sent(&enqueued.id, Some(&wamid)).await.unwrap();
    assert_eq!(
        store.message(&enqueued.id).await.unwrap().unwrap().status,
        "failed"
    );
}

pub async fn concurrent_statuses_of_an_unknown_wamid_make_one_placeholder(backend: Backend) {
    let store = backend.store().await;
    let wamid = builders::new_wamid();
    let t = now_secs();
    let states = ["sent", "delivered", "read", "sent", "delivered", "read"];
    let tasks: Vec<_> = states
        .iter()
        .enumerate()
        .map(|(i, state)| {
            let update = status(&wamid, MARIA, state, t + i as i64, None);
            let store = store.clone();
            tokio::spawn(async move { store.apply_status(&update).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let placeholder = store.message(&wamid).await.unwrap().unwrap();
    assert_eq!(placeholder.status, "read", "no status downgraded another");
    assert_eq!(history(&placeholder).len(), 3, "{placeholder:?}");
    let conversation = placeholder.conversation_id.unwrap();
    assert_eq!(messages_of(&*store, &conversation).await.len(), 1);
}

/// A group message's status (Groups API) about one member: `recipient_participant_id`.
fn member_status(wamid: &str, member: Option<&str>, state: &str, at: i64) -> Value {
    let errors =
        (state == "failed").then(|| json!([{ "code": 131026, "title": "Message undeliverable" }]));
    let mut status = builders::status(wamid, GROUP_ID, state, at, errors);
    status["recipient_type"] = json!("group");
    if let Some(member) = member {
        status["recipient_participant_id"] = json!(member);
    }
    builders::statuses_notification(PNID, vec![status])
}

/// A group id as Meta gives it.
const GROUP_ID: &str = "Y2FwaV9ncm91cDoxMjAzNjMwNDAwMDAwMDAwMDE";

pub async fn group_members_statuses_are_each_kept_and_one_members_failure_fails_nothing(
    backend: Backend,
) {
    let store = backend.store().await;
    let wamid = builders::new_wamid();
    let sent = store
        .enqueue_send(send_to(Some(MARIA), None, "olá, grupo"))
        .await
        .unwrap();
    store.record_sent(&sent.id, Some(&wamid)).await.unwrap();
    let t = now_secs();
    let updates = [
        (Some(MARIA), "delivered", t + 1),
        (Some(JOAO), "delivered", t + 2),
        (Some(MARIA), "read", t + 3),
        (Some("5531977776666"), "failed", t + 4),
    ];
    // Each stored by the webhook, then applied by the status function.
    for (member, state, at) in updates {
        let notification = parse_json(&member_status(&wamid, member, state, at));
        let update = notification.statuses[0].clone();
        let ingested = store.ingest(notification).await.unwrap();
        assert_eq!(ingested.new_statuses, 1, "{member:?} {state}");
        store.apply_status(&update).await.unwrap();
    }
    let again = store
        .ingest(parse_json(&member_status(
            &wamid,
            Some(JOAO),
            "delivered",
            t + 2,
        )))
        .await
        .unwrap();
    assert_eq!(
        again.duplicate_statuses, 1,
        "a redelivery is still one event"
    );

    let view = store.message(&sent.id).await.unwrap().unwrap();
    assert_eq!(view.status, "read", "one member's failure does not fail it");
    assert_eq!(view.errors, None);
    let members: Vec<(&str, Option<&str>)> = view
        .status_history
        .iter()
        .map(|entry| (entry.status.as_str(), entry.participant.as_deref()))
        .collect();
    assert_eq!(
        members,
        [
            ("queued", None),
            ("accepted", None),
            ("delivered", Some(MARIA)),
            ("delivered", Some(JOAO)),
            ("read", Some(MARIA)),
            ("failed", Some("5531977776666")),
        ]
    );
    let failed = &view.status_history[5];
    assert_eq!(failed.errors.as_ref().unwrap()[0]["code"], 131026);

    // The group's own failure (no member named) is the message's.
    let notification = parse_json(&member_status(&wamid, None, "failed", t + 5));
    store.apply_status(&notification.statuses[0]).await.unwrap();
    let view = store.message(&sent.id).await.unwrap().unwrap();
    assert_eq!(view.status, "failed");
    assert!(view.errors.is_some());
}
