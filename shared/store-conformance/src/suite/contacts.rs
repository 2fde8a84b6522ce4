//! Data protection: erasing a contact (their messages with status histories,
//! their conversation, and every queued event and dead letter about them) and
//! retention (old messages listed, what they leave behind purged in bounded steps).

use std::collections::BTreeSet;

use serde_json::json;
use zapfn_store::{ConversationQuery, Erased, NewEvent, PageRequest, Store};
use zapfn_whatsapp::builders;

use crate::fixtures::*;
use crate::Backend;

/// Every due event of every topic, acked: (topic, payload) pairs.
async fn drain_all(store: &dyn Store) -> Vec<(String, serde_json::Value)> {
    let mut all = Vec::new();
    for topic in ["messages", "statuses", "dispatch", "media", "transcripts"] {
        for delivery in drain(store, topic).await {
            all.push((delivery.topic, delivery.payload));
        }
    }
    all
}

async fn conversation_count(store: &dyn Store, pnid: &str, wa_id: &str) -> usize {
    store
        .conversations(ConversationQuery {
            phone_number_id: Some(pnid.into()),
            wa_id: Some(wa_id.into()),
            page: PageRequest::default(),
        })
        .await
        .unwrap()
        .items
        .len()
}

pub async fn erasing_a_contact_deletes_messages_histories_events_and_conversation(
    backend: Backend,
) {
    let store = backend.store().await;
    let store = &*store;
    store
        .ingest(texts(
            PNID,
            MARIA,
            &[("wamid.M1", 1_000), ("wamid.M2", 1_001)],
        ))
        .await
        .unwrap();
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 1_002)]))
        .await
        .unwrap();
    store
        .ingest(texts(PNID_2, MARIA, &[("wamid.O1", 1_003)]))
        .await
        .unwrap();
    let sent = store
        .enqueue_send(send_to(Some(MARIA), Some("erase-idem"), "olá"))
        .await
        .unwrap();
    store.record_sent(&sent.id, Some("wamid.S1")).await.unwrap();
    let now = now_secs();
    store
        .apply_status(&status("wamid.S1", MARIA, "delivered", now, None))
        .await
        .unwrap();
    store
        .ingest(parse_json(&builders::statuses_notification(
            PNID,
            vec![builders::status("wamid.S1", MARIA, "read", now + 1, None)],
        )))
        .await
        .unwrap();
    let (m1, m2, j1) = (
        id_of(store, "wamid.M1").await,
        id_of(store, "wamid.M2").await,
        id_of(store, "wamid.J1").await,
    );
    let media_event = NewEvent {
        topic: "media".into(),
        ordering_key: None,
        payload: json!({"message_id": m1, "phone_number_id": PNID, "from": MARIA}),
    };
    store
        .annotate_media(
            &m1,
            "object",
            json!({"status": "done", "key": format!("{PNID}/{m1}/original.jpg")}),
            vec![media_event],
        )
        .await
        .unwrap();
    for (id, from) in [(&m2, MARIA), (&j1, JOAO)] {
        let payload = json!({"message_id": id, "phone_number_id": PNID, "from": from});
        store
            .dead_letter("messages", &payload, 5, "gave up")
            .await
            .unwrap();
    }

    // The erasure: the conversation's messages, then the conversation.
    let conversation = conversation_of(store, &m1).await;
    let listed = messages_of(store, &conversation).await;
    let ids: BTreeSet<String> = listed.iter().map(|m| m.id.clone()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([m1.clone(), m2.clone(), sent.id.clone()]),
        "the conversation holds the contact's messages both ways"
    );
    let ids: Vec<String> = ids.into_iter().collect();
    let mut erased = store.erase_messages(&ids).await.unwrap();
    assert_eq!(erased.messages, 3);
    // queued and accepted (by zapfn id), delivered and read (by wamid).
    assert_eq!(erased.status_events, 4);
    erased += store.erase_conversation(PNID, MARIA).await.unwrap();
    assert_eq!(erased.conversations, 1);
    // Two `messages` events, the dispatch task, the media event, the status
    // event and the dead letter about M2.
    assert_eq!(erased.events, 6, "{erased:?}");

    for gone in [&m1, &m2, &sent.id, "wamid.M1", "wamid.S1"] {
        assert!(store.message(gone).await.unwrap().is_none(), "{gone}");
    }
    assert!(store.conversation(&conversation).await.unwrap().is_none());
    assert_eq!(conversation_count(store, PNID, MARIA).await, 0);
    assert_eq!(store.last_inbound_at(PNID, MARIA).await.unwrap(), None);
    // Other contacts, and the same contact on another number, are untouched.
    assert!(store.message("wamid.J1").await.unwrap().is_some());
    assert!(store.message("wamid.O1").await.unwrap().is_some());
    assert_eq!(conversation_count(store, PNID_2, MARIA).await, 1);
    let left = drain_all(store).await;
    let about: Vec<_> = left
        .iter()
        .filter(|(_, payload)| {
            let text = payload.to_string();
            [&m1, &m2, &sent.id, "wamid.S1"]
                .iter()
                .any(|id| text.contains(*id))
                || (payload["phone_number_id"] == PNID
                    && (payload["from"] == MARIA || payload["recipient_id"] == MARIA))
        })
        .collect();
    assert!(
        about.is_empty(),
        "events about the contact survived: {about:?}"
    );
    let kept: BTreeSet<_> = left
        .iter()
        .filter(|(topic, _)| topic == "messages")
        .map(|(_, payload)| payload["wamid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept, BTreeSet::from(["wamid.J1".into(), "wamid.O1".into()]));
    assert_eq!(store.queue_depths().await.unwrap().dead_letters, 1);

    // Erasing again finds nothing.
    assert_eq!(store.erase_messages(&ids).await.unwrap(), Erased::default());
    assert_eq!(
        store.erase_conversation(PNID, MARIA).await.unwrap(),
        Erased::default()
    );
    // The same idempotency key is free again: nothing remembers the send.
    let again = store
        .enqueue_send(send_to(Some(MARIA), Some("erase-idem"), "olá"))
        .await
        .unwrap();
    assert!(again.created);
}

pub async fn erasing_what_is_not_stored_deletes_nothing(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 1_000)]))
        .await
        .unwrap();
    let unknown = [
        "msg_unknown".to_owned(),
        "msg_0192f0c1d2e37a5b8c9d0e1f2a3b4c5d".to_owned(),
        "wamid.J1".to_owned(),
    ];
    assert_eq!(
        store.erase_messages(&unknown).await.unwrap(),
        Erased::default()
    );
    assert_eq!(store.erase_messages(&[]).await.unwrap(), Erased::default());
    assert_eq!(
        store.erase_conversation(PNID, MARIA).await.unwrap(),
        Erased::default()
    );
    // A conversation that still has messages is not deleted.
    let kept = store.erase_conversation(PNID, JOAO).await.unwrap();
    assert_eq!(kept.conversations, 0);
    assert!(store.message("wamid.J1").await.unwrap().is_some());
    assert_eq!(conversation_count(&*store, PNID, JOAO).await, 1);
}

pub async fn retention_lists_old_messages_and_purges_what_they_leave_behind(backend: Backend) {
    let store = backend.store().await;
    let store = &*store;
    let now = now_secs();
    store
        .ingest(texts(
            PNID,
            MARIA,
            &[("wamid.OLD1", 1_000), ("wamid.OLD2", 1_001)],
        ))
        .await
        .unwrap();
    store
        .ingest(texts(PNID, JOAO, &[("wamid.NEW", now)]))
        .await
        .unwrap();
    let account_update = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA",
        "changes": [{"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}]}]});
    let report = store.ingest(parse_json(&account_update)).await.unwrap();
    assert_eq!(report.raw_events, 1);
    for n in 0..2 {
        store
            .dead_letter("messages", &json!({"n": n}), 5, "gave up")
            .await
            .unwrap();
    }
    let cutoff = now - 86_400;

    let old = store.messages_before(cutoff, 10).await.unwrap();
    let wamids: BTreeSet<_> = old.iter().filter_map(|m| m.wamid.clone()).collect();
    assert_eq!(
        wamids,
        BTreeSet::from(["wamid.OLD1".into(), "wamid.OLD2".into()])
    );
    assert!(old
        .iter()
        .all(|m| m.phone_number_id == PNID && m.timestamp < cutoff));
    assert_eq!(store.messages_before(cutoff, 1).await.unwrap().len(), 1);
    let ids: Vec<String> = old.into_iter().map(|m| m.id).collect();
    assert_eq!(store.erase_messages(&ids).await.unwrap().messages, 2);
    assert!(store.messages_before(cutoff, 10).await.unwrap().is_empty());
    assert!(store.message("wamid.NEW").await.unwrap().is_some());

    // Maria's conversation is left empty and old: purged. João's has a message.
    let purged = store.purge_expired(cutoff, 100).await.unwrap();
    assert_eq!(
        purged,
        Erased {
            conversations: 1,
            ..Erased::default()
        }
    );
    assert_eq!(conversation_count(store, PNID, MARIA).await, 0);
    assert_eq!(conversation_count(store, PNID, JOAO).await, 1);

    // With a later cutoff, dead letters and raw events go too, `limit` at a time.
    let later = now + 3_600;
    let first = store.purge_expired(later, 1).await.unwrap();
    assert_eq!((first.events, first.raw_events), (1, 1), "{first:?}");
    let second = store.purge_expired(later, 1).await.unwrap();
    assert_eq!((second.events, second.raw_events), (1, 0), "{second:?}");
    assert_eq!(
        store.purge_expired(later, 1).await.unwrap(),
        Erased::default()
    );
    assert_eq!(store.queue_depths().await.unwrap().dead_letters, 0);
    assert_eq!(conversation_count(store, PNID, JOAO).await, 1);
}

/// A `calls` webhook of call `id` from `from` to PNID: a raw event naming the caller.
fn call(id: &str, from: &str) -> serde_json::Value {
    call_on(PNID, id, from)
}

/// A call webhook of the business number `pnid`.
fn call_on(pnid: &str, id: &str, from: &str) -> serde_json::Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "calls", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"phone_number_id": pnid},
            "contacts": [{"wa_id": from, "profile": {"name": "Cliente"}}],
            "calls": [{"id": id, "from": from, "event": "connect"}],
        }}]}],
    })
}

pub async fn a_contacts_raw_events_are_listed_for_export(backend: Backend) {
    let store = backend.store().await;
    assert!(store
        .raw_events_naming(Some(PNID), MARIA)
        .await
        .unwrap()
        .is_empty());
    for (id, from) in [("wacid.1", MARIA), ("wacid.2", JOAO), ("wacid.3", MARIA)] {
        store.ingest(parse_json(&call(id, from))).await.unwrap();
    }
    let marias = store.raw_events_naming(Some(PNID), MARIA).await.unwrap();
    assert_eq!(marias.len(), 2, "{marias:?}");
    for event in &marias {
        assert_eq!(
            (event.phone_number_id.as_str(), event.kind.as_str()),
            (PNID, "calls")
        );
        assert_eq!(
            event.raw["value"]["calls"][0]["from"], MARIA,
            "the change as Meta sent it"
        );
        assert!(
            event.received_at > 1_700_000_000,
            "Unix seconds: {}",
            event.received_at
        );
    }
    let call_ids: BTreeSet<&str> = marias
        .iter()
        .filter_map(|e| e.raw["value"]["calls"][0]["id"].as_str())
        .collect();
    assert_eq!(call_ids, BTreeSet::from(["wacid.1", "wacid.3"]));
    assert_eq!(
        store
            .raw_events_naming(Some(PNID), JOAO)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .raw_events_naming(Some(PNID_2), MARIA)
            .await
            .unwrap()
            .is_empty(),
        "only the number's own raw events"
    );
    store
        .ingest(parse_json(&call_on(PNID_2, "wacid.4", MARIA)))
        .await
        .unwrap();
    let on_every_number = store.raw_events_naming(None, MARIA).await.unwrap();
    let numbers_and_ids: BTreeSet<(&str, &str)> = on_every_number
        .iter()
        .map(|e| {
            (
                e.phone_number_id.as_str(),
                e.raw["value"]["calls"][0]["id"]
                    .as_str()
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        numbers_and_ids,
        BTreeSet::from([(PNID, "wacid.1"), (PNID, "wacid.3"), (PNID_2, "wacid.4")]),
        "None lists the contact's raw events of every number"
    );
    store.erase_conversation(PNID, MARIA).await.unwrap();
    assert!(
        store
            .raw_events_naming(Some(PNID), MARIA)
            .await
            .unwrap()
            .is_empty(),
        "erased"
    );
    let left = store.raw_events_naming(None, MARIA).await.unwrap();
    assert_eq!(
        left.iter()
            .map(|e| e.phone_number_id.as_str())
            .collect::<Vec<_>>(),
        vec![PNID_2],
        "erasing on one number leaves the other's"
    );
}

pub async fn erasing_a_contact_deletes_the_raw_events_that_name_it(backend: Backend) {
    let store = backend.store().await;
    for from in [MARIA, JOAO] {
        let report = store
            .ingest(parse_json(&call("wacid.1", from)))
            .await
            .unwrap();
        assert_eq!(report.raw_events, 1);
    }
    let erased = store.erase_conversation(PNID, MARIA).await.unwrap();
    assert_eq!(erased.raw_events, 1, "Maria's call");
    let again = store.erase_conversation(PNID, MARIA).await.unwrap();
    assert_eq!(again.raw_events, 0, "erasing again deletes nothing");
    let other_number = store.erase_conversation(PNID_2, JOAO).await.unwrap();
    assert_eq!(
        other_number.raw_events, 0,
        "only the number's own raw events"
    );
    let joao = store.erase_conversation(PNID, JOAO).await.unwrap();
    assert_eq!(joao.raw_events, 1, "João's call was left alone");
}
