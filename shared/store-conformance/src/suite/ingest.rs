//! Webhook ingest: every item stored once, raw kept, one event per new item.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;
use zapfn_store::{topics, ConversationQuery, IngestReport, MessageEvent};
use zapfn_whatsapp::builders;

use crate::fixtures::*;
use crate::Backend;

pub async fn ingest_stores_every_message_of_a_multi_entry_batch(backend: Backend) {
    let store = backend.store().await;
    let report = store.ingest(parse(BATCH_MULTI)).await.unwrap();
    assert_eq!(
        report,
        IngestReport {
            new_messages: 7,
            duplicate_messages: 0,
            new_statuses: 3,
            duplicate_statuses: 0,
            raw_events: 1
        }
    );

    // One conversation per (phone_number_id, customer), with the contact's name.
    let conversations = store
        .conversations(ConversationQuery::default())
        .await
        .unwrap();
    assert_eq!(conversations.items.len(), 2);
    assert_eq!(conversations.next_cursor, None);
    let by_customer: HashMap<_, _> = conversations
        .items
        .iter()
        .map(|c| (c.wa_id.as_str(), c))
        .collect();
    let maria = by_customer[MARIA];
    assert_eq!(
        (
            maria.phone_number_id.as_str(),
            maria.contact_name.as_deref()
        ),
        (PNID, Some("Maria Silva"))
    );
    // Conversation times are kept to the minute (a later message within a minute
    // does not rewrite the row): Maria's messages came at ...600 and ...602.
    assert_eq!(
        (maria.last_inbound_at, maria.last_message_at),
        (Some(1767227600), 1767227600)
    );
    let joao = by_customer[JOAO];
    assert_eq!(
        (joao.phone_number_id.as_str(), joao.contact_name.as_deref()),
        (PNID_2, Some("João Souza"))
    );
    // João wrote at ...606 and ...609: to the minute, the first stands.
    assert_eq!(joao.last_inbound_at, Some(1767227606));
    assert_eq!(
        conversations.items[0].wa_id, JOAO,
        "most recent conversation first"
    );

    // Every message in its conversation, inbound and received.
    for (conversation, expected) in [(maria, 3), (joao, 4)] {
        let messages = messages_of(&*store, &conversation.id).await;
        assert_eq!(messages.len(), expected, "{}", conversation.wa_id);
        for message in &messages {
            assert_eq!(
                (message.direction.as_str(), message.status.as_str()),
                ("inbound", "received")
            );
            assert_eq!(message.phone_number_id, conversation.phone_number_id);
        }
    }

    // What each message keeps.
    let text = store
        .message("wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggBATCH0001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text.direction, "inbound");
    assert_eq!(text.status, "received");
    assert_eq!(text.message_type.as_deref(), Some("text"));
    assert_eq!(text.text.as_deref(), Some("Bom dia! Tem horário hoje?"));
    assert_eq!(
        (text.from.as_deref(), text.to.as_deref()),
        (Some(MARIA), Some(PNID))
    );
    assert_eq!(text.conversation_id.as_deref(), Some(maria.id.as_str()));
    assert_eq!(text.timestamp, 1767227600);
    assert_eq!(
        text.raw.as_ref().unwrap()["text"]["body"],
        "Bom dia! Tem horário hoje?"
    );
    assert_eq!(
        store.message(&text.id).await.unwrap().as_ref(),
        Some(&text),
        "found by zapfn id as by wamid"
    );

    let image = store
        .message("wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggBATCH0002")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(image.message_type.as_deref(), Some("image"));
    assert_eq!(image.media.as_ref().unwrap()["id"], "1480000000000101");
    assert_eq!(image.text, None);

    let reply = store
        .message("wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggBATCH0003")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.text.as_deref(), Some("Sim, confirmo"));
    assert_eq!(
        reply.context.as_ref().unwrap()["id"],
        "wamid.HBgMNTUxMTk5OTk5MDAwFQIAERgSBATCHPROMPT0001"
    );

    let bare = store
        .message("wamid.HBgNNTUyMTk4ODg4Nzc3NxUCABIYIABATCH0007")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (bare.message_type.as_deref(), bare.text.as_deref()),
        (Some("interactive"), None)
    );
    assert_eq!(bare.phone_number_id, PNID_2);
    assert_eq!(bare.conversation_id.as_deref(), Some(joao.id.as_str()));
    assert_eq!(store.message("wamid.UNKNOWN").await.unwrap(), None);

    // Exactly one `messages` event per message, in arrival order per customer.
    let events = drain(&*store, topics::MESSAGES).await;
    assert_eq!(events.len(), 7);
    let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for delivery in &events {
        let event: MessageEvent = serde_json::from_value(delivery.payload.clone()).unwrap();
        let message = store.message(&event.message_id).await.unwrap().unwrap();
        assert_eq!(event.phone_number_id, message.phone_number_id);
        assert_eq!(Some(event.from.as_str()), message.from.as_deref());
        assert_eq!(
            Some(event.message_type.as_str()),
            message.message_type.as_deref()
        );
        assert_eq!(event.text, message.text);
        assert_eq!(delivery.attempt, 1);
        per_key
            .entry(delivery.ordering_key.clone().unwrap())
            .or_default()
            .push(message.wamid.unwrap());
    }
    let suffixes = |wamids: &Vec<String>| {
        wamids
            .iter()
            .map(|w| w[w.len() - 4..].to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(per_key.len(), 2);
    assert_eq!(
        suffixes(&per_key[&format!("{PNID}:{MARIA}")]),
        ["0001", "0002", "0003"]
    );
    assert_eq!(
        suffixes(&per_key[&format!("{PNID_2}:{JOAO}")]),
        ["0004", "0005", "0006", "0007"]
    );

    let depths = store.queue_depths().await.unwrap();
    assert_eq!(pending(&depths), [(topics::STATUSES, 3)]);
}

pub async fn ingest_keeps_unknown_types_and_fields_in_raw(backend: Backend) {
    let store = backend.store().await;
    let report = store.ingest(parse(UNKNOWN_TYPE)).await.unwrap();
    assert_eq!(
        (report.new_messages, report.raw_events),
        (1, 1),
        "unknown message fields stay in the message; unknown value keys keep the value"
    );

    let wamid = "wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggHOLOGRAM0001";
    let view = store.message(wamid).await.unwrap().unwrap();
    assert_eq!(view.message_type.as_deref(), Some("hologram"));
    let raw = view.raw.unwrap();
    assert_eq!(raw["x_delivery_lane"], "experimental");
    assert_eq!(raw["x_flags"], json!({ "beta": true, "ttl": null }));
    assert_eq!(raw["hologram"]["frames"][1]["depth"], 0.5);
}

pub async fn a_group_message_goes_to_the_groups_conversation(backend: Backend) {
    let store = backend.store().await;
    let group = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD";
    let wamid = builders::new_wamid();
    let mut message = builders::text_message(MARIA, &wamid, now_secs(), "o que acham?");
    message["group_id"] = json!(group);
    let notification = parse_json(&builders::messages_notification(
        PNID,
        MARIA,
        "Maria",
        vec![message],
    ));
    store.ingest(notification).await.unwrap();

    let view = store.message(&wamid).await.unwrap().unwrap();
    assert_eq!(
        view.from.as_deref(),
        Some(MARIA),
        "the participant wrote it"
    );
    let conversation = store
        .conversation(view.conversation_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.wa_id, group);
    assert_eq!(
        conversation.contact_name, None,
        "a participant's name is not the group's"
    );
    assert_eq!(
        store.last_inbound_at(PNID, MARIA).await.unwrap(),
        None,
        "a group message opens no window with the participant"
    );
    let events = store.claim(topics::MESSAGES, 10, LEASE).await.unwrap();
    let event: MessageEvent = serde_json::from_value(events[0].payload.clone()).unwrap();
    assert_eq!(event.group_id.as_deref(), Some(group));
    assert_eq!(
        events[0].ordering_key.as_deref(),
        Some(format!("{PNID}:{group}").as_str())
    );
}

pub async fn ingest_round_trips_unicode_and_nul_text(backend: Backend) {
    let store = backend.store().await;
    let notification = parse(UNICODE);
    let expected_text = notification.messages[0].text.clone().unwrap();
    assert!(expected_text.contains("NUL:\u{0}:fim"));
    store.ingest(notification).await.unwrap();

    let wamid = "wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggUNICODE0001";
    let view = store.message(wamid).await.unwrap().unwrap();
    assert_eq!(view.text.as_deref(), Some(expected_text.as_str()));
    assert_eq!(
        view.raw.as_ref().unwrap()["text"]["body"].as_str(),
        Some(expected_text.as_str())
    );
    let conversation = store
        .conversation(view.conversation_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        conversation.contact_name.as_deref(),
        Some("Maria Silva 🌻 مريم")
    );
    let event = claim_one(&*store, topics::MESSAGES).await;
    let event: MessageEvent = serde_json::from_value(event.payload).unwrap();
    assert_eq!(event.text.as_deref(), Some(expected_text.as_str()));
}

pub async fn duplicate_wamid_is_stored_once_with_one_event(backend: Backend) {
    let store = backend.store().await;
    let first = store.ingest(parse(DUPLICATE_A)).await.unwrap();
    assert_eq!((first.new_messages, first.duplicate_messages), (1, 0));
    // Other bytes, same message: deduplicated by wamid, not by body.
    let second = store.ingest(parse(DUPLICATE_B)).await.unwrap();
    assert_eq!((second.new_messages, second.duplicate_messages), (0, 1));
    let third = store.ingest(parse(DUPLICATE_A)).await.unwrap();
    assert_eq!((third.new_messages, third.duplicate_messages), (0, 1));

    // The same wamid twice inside one notification.
    let twice = texts(PNID, MARIA, &[("wamid.TWICE", 10), ("wamid.TWICE", 10)]);
    let report = store.ingest(twice).await.unwrap();
    assert_eq!((report.new_messages, report.duplicate_messages), (1, 1));

    let conversation = conversation_of(&*store, "wamid.TWICE").await;
    let wamids: Vec<_> = messages_of(&*store, &conversation)
        .await
        .into_iter()
        .map(|m| m.wamid.unwrap())
        .collect();
    let duplicated = parse(DUPLICATE_A).messages[0].wamid.clone();
    assert_eq!(wamids.iter().filter(|w| **w == duplicated).count(), 1);
    assert_eq!(wamids.len(), 2, "{wamids:?}");
    assert_eq!(drain(&*store, topics::MESSAGES).await.len(), 2);
}

pub async fn concurrent_duplicates_are_stored_once(backend: Backend) {
    let store = backend.store().await;
    let wamid = builders::new_wamid();
    let body = builders::messages_notification(
        PNID,
        MARIA,
        "Maria",
        vec![builders::text_message(MARIA, &wamid, 1, "hi")],
    )
    .to_string();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, body) = (store.clone(), body.clone());
            tokio::spawn(async move { store.ingest(parse(body.as_bytes())).await.unwrap() })
        })
        .collect();
    let (mut new, mut duplicates) = (0, 0);
    for task in tasks {
        let report = task.await.unwrap();
        new += report.new_messages;
        duplicates += report.duplicate_messages;
    }
    assert_eq!((new, duplicates), (1, 19));
    let conversation = conversation_of(&*store, &wamid).await;
    assert_eq!(messages_of(&*store, &conversation).await.len(), 1);
    let events = drain(&*store, topics::MESSAGES).await;
    assert_eq!(events.len(), 1);
    assert_eq!(event_message_id(&events[0]), id_of(&*store, &wamid).await);
}

pub async fn concurrent_ingests_share_one_conversation_per_customer(backend: Backend) {
    let store = backend.store().await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let customer = format!("55119000{:05}", i % 5);
                let wamid = format!("wamid.LOAD{i:05}");
                store
                    .ingest(texts(PNID, &customer, &[(wamid.as_str(), 1_000 + i)]))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let report = task.await.unwrap().unwrap();
        assert_eq!((report.new_messages, report.duplicate_messages), (1, 0));
    }

    let conversations = store
        .conversations(ConversationQuery::default())
        .await
        .unwrap()
        .items;
    assert_eq!(conversations.len(), 5);
    let mut total = 0;
    for conversation in &conversations {
        let messages = messages_of(&*store, &conversation.id).await;
        assert!(messages
            .iter()
            .all(|m| m.from.as_deref() == Some(conversation.wa_id.as_str())));
        total += messages.len();
    }
    assert_eq!(total, 200);
    assert_eq!(
        store.queue_depths().await.unwrap().pending[topics::MESSAGES],
        200
    );
}
