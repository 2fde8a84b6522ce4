//! Integration tests of the embedded SQLite store: a real database file in a
//! temporary directory, driven through the `Store` trait, with raw SQL reads of
//! the same file where the rows themselves are the point.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::{json, Value};
use tempfile::TempDir;
use zapfn_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use zapfn_store::{
    callback_data_for, topics, ConversationQuery, Delivery, DispatchTask, IngestReport,
    MessageEvent, NewOutbound, PageRequest, Settlement, Store, StoreError,
};
use zapfn_whatsapp::builders;
use zapfn_whatsapp::webhook::{self, Notification, StatusUpdate};

const BATCH_MULTI: &[u8] = include_bytes!("../../../fixtures/webhooks/batch_multi.json");
const UNKNOWN_TYPE: &[u8] = include_bytes!("../../../fixtures/webhooks/message_unknown_type.json");
const UNICODE: &[u8] = include_bytes!("../../../fixtures/webhooks/hostile/unicode.json");
const DUPLICATE_A: &[u8] = include_bytes!("../../../fixtures/webhooks/duplicate_a.json");
const DUPLICATE_B: &[u8] = include_bytes!("../../../fixtures/webhooks/duplicate_b.json");
const STATUS_SENT: &[u8] = include_bytes!("../../../fixtures/webhooks/status_sent.json");
const STATUS_DELIVERED: &[u8] = include_bytes!("../../../fixtures/webhooks/status_delivered.json");

/// The fixtures' business numbers and customers.
const PNID: &str = "106540352242922";
const PNID_2: &str = "106540352242999";
const MARIA: &str = "5511999990000";
const MARIA_FORMATTED: &str = "+55 11 99999-0000";
const JOAO: &str = "5521988887777";

/// A lease long enough never to run out during a test.
const LEASE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- helpers

/// A fresh store in its own temporary directory (keep the directory alive).
fn open(options: SqliteOptions) -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("z.db"), options).unwrap();
    (dir, store)
}

fn open_default() -> (TempDir, SqliteStore) {
    open(SqliteOptions::default())
}

/// A plain connection to the store's file, for checking rows.
fn raw_db(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// The single integer a `SELECT count(*) ...` (or similar) returns.
fn count(db: &Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |row| row.get(0)).unwrap()
}

fn parse(body: &[u8]) -> Notification {
    webhook::parse(body).unwrap()
}

fn parse_json(body: &Value) -> Notification {
    parse(body.to_string().as_bytes())
}

/// A notification of text messages `(wamid, timestamp)` from one customer.
fn texts(phone_number_id: &str, from: &str, messages: &[(&str, i64)]) -> Notification {
    let messages = messages
        .iter()
        .map(|(wamid, timestamp)| {
            builders::text_message(from, wamid, *timestamp, &format!("text {wamid}"))
        })
        .collect();
    parse_json(&builders::messages_notification(
        phone_number_id,
        from,
        "Customer",
        messages,
    ))
}

/// One status update as the webhook parser makes it.
fn status(
    wamid: &str,
    recipient: &str,
    state: &str,
    timestamp: i64,
    errors: Option<Value>,
) -> StatusUpdate {
    let body = builders::statuses_notification(
        PNID,
        vec![builders::status(wamid, recipient, state, timestamp, errors)],
    );
    let mut notification = parse_json(&body);
    assert_eq!(notification.statuses.len(), 1);
    notification.statuses.remove(0)
}

/// A text send from the business number `PNID`.
fn send_to(to: Option<&str>, idempotency_key: Option<&str>, body: &str) -> NewOutbound {
    NewOutbound {
        phone_number_id: PNID.into(),
        to: to.map(str::to_owned),
        message_type: "text".into(),
        preview: Some(body.into()),
        context_message_id: None,
        body: json!({ "messaging_product": "whatsapp", "to": to, "type": "text", "text": { "body": body } }),
        idempotency_key: idempotency_key.map(str::to_owned),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims `topic` and acks what it got until nothing is due; every delivery, in claim order.
async fn drain(store: &SqliteStore, topic: &str) -> Vec<Delivery> {
    let mut all = Vec::new();
    loop {
        let batch = store.claim(topic, 100, LEASE).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        for delivery in &batch {
            store.settle(delivery, Settlement::Ack).await.unwrap();
        }
        all.extend(batch);
    }
}

/// Claims exactly one due event of `topic`.
async fn claim_one(store: &SqliteStore, topic: &str) -> Delivery {
    let mut claimed = store.claim(topic, 10, LEASE).await.unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "expected one due {topic} event, got {claimed:?}"
    );
    claimed.remove(0)
}

/// The zapfn id of the message with this wamid.
async fn id_of(store: &SqliteStore, wamid: &str) -> String {
    store
        .message(wamid)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no message {wamid}"))
        .id
}

/// The `message_id` a `messages` or `dispatch` event names.
fn event_message_id(delivery: &Delivery) -> String {
    delivery.payload["message_id"].as_str().unwrap().to_owned()
}

/// The backlog as `(topic, count)` pairs, in topic order.
fn pending(depths: &zapfn_store::QueueDepths) -> Vec<(&str, u64)> {
    depths
        .pending
        .iter()
        .map(|(topic, n)| (topic.as_str(), *n))
        .collect()
}

/// The text of the first `messages[]` object in a fixture, exactly as the file has it.
fn first_message_object(fixture: &[u8]) -> &str {
    let text = std::str::from_utf8(fixture).unwrap();
    let list = text.find("\"messages\": [").unwrap();
    let start = list + text[list..].find('{').unwrap();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (offset, c) in text[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return &text[start..=start + offset];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced fixture")
}

// ---------------------------------------------------------------- ingest

#[tokio::test]
async fn ingest_stores_every_message_of_a_multi_entry_batch() {
    let (_dir, store) = open_default();
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

    let db = raw_db(store.path());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM messages WHERE direction = 'inbound' AND status = 'received'"
        ),
        7
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM messages WHERE phone_number_id = '{PNID}'")
        ),
        3
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM messages WHERE phone_number_id = '{PNID_2}'")
        ),
        4
    );
    assert_eq!(count(&db, "SELECT count(*) FROM status_events"), 3);
    assert_eq!(count(&db, &format!("SELECT count(*) FROM raw_events WHERE kind = 'errors' AND phone_number_id = '{PNID_2}'")), 1);

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

    // Exactly one `messages` event per message, in arrival order per customer.
    let events = drain(&store, topics::MESSAGES).await;
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

#[tokio::test]
async fn ingest_keeps_raw_message_json_byte_for_byte() {
    let (_dir, store) = open_default();
    let report = store.ingest(parse(UNKNOWN_TYPE)).await.unwrap();
    assert_eq!(
        (report.new_messages, report.raw_events),
        (1, 0),
        "unknown fields are not raw events"
    );

    let wamid = "wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggHOLOGRAM0001";
    let db = raw_db(store.path());
    let (raw, kind): (String, String) = db
        .query_row(
            "SELECT raw, type FROM messages WHERE wa_message_id = ?1",
            [wamid],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(raw, first_message_object(UNKNOWN_TYPE));
    assert_eq!(kind, "hologram");

    let view = store.message(wamid).await.unwrap().unwrap();
    let raw = view.raw.unwrap();
    assert_eq!(raw["x_delivery_lane"], "experimental");
    assert_eq!(raw["x_flags"], json!({ "beta": true, "ttl": null }));
    assert_eq!(raw["hologram"]["frames"][1]["depth"], 0.5);
}

#[tokio::test]
async fn ingest_round_trips_unicode_and_nul_text() {
    let (_dir, store) = open_default();
    let notification = parse(UNICODE);
    let expected_text = notification.messages[0].text.clone().unwrap();
    assert!(expected_text.contains("NUL:\u{0}:fim"));
    store.ingest(notification).await.unwrap();

    let wamid = "wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggUNICODE0001";
    let view = store.message(wamid).await.unwrap().unwrap();
    assert_eq!(view.text.as_deref(), Some(expected_text.as_str()));
    let raw: String = raw_db(store.path())
        .query_row(
            "SELECT raw FROM messages WHERE wa_message_id = ?1",
            [wamid],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(raw, first_message_object(UNICODE));
    let conversation = store
        .conversation(view.conversation_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        conversation.contact_name.as_deref(),
        Some("Maria Silva 🌻 مريم")
    );
}

// ---------------------------------------------------------------- duplicates

#[tokio::test]
async fn duplicate_wamid_is_stored_once_with_one_event() {
    let (_dir, store) = open_default();
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

    assert_eq!(
        count(&raw_db(store.path()), "SELECT count(*) FROM messages"),
        2
    );
    assert_eq!(drain(&store, topics::MESSAGES).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_are_stored_once() {
    let (_dir, store) = open_default();
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
    assert_eq!(
        count(&raw_db(store.path()), "SELECT count(*) FROM messages"),
        1
    );
    let events = drain(&store, topics::MESSAGES).await;
    assert_eq!(events.len(), 1);
    assert_eq!(event_message_id(&events[0]), id_of(&store, &wamid).await);
}

// ---------------------------------------------------------------- statuses

#[tokio::test]
async fn statuses_are_deduplicated_by_wamid_and_status() {
    let (_dir, store) = open_default();
    let first = store.ingest(parse(STATUS_SENT)).await.unwrap();
    assert_eq!((first.new_statuses, first.duplicate_statuses), (1, 0));
    let again = store.ingest(parse(STATUS_SENT)).await.unwrap();
    assert_eq!((again.new_statuses, again.duplicate_statuses), (0, 1));
    let delivered = store.ingest(parse(STATUS_DELIVERED)).await.unwrap();
    assert_eq!(
        (delivered.new_statuses, delivered.duplicate_statuses),
        (1, 0)
    );

    assert_eq!(
        count(&raw_db(store.path()), "SELECT count(*) FROM status_events"),
        2
    );
    let events = drain(&store, topics::STATUSES).await;
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

#[tokio::test]
async fn apply_status_is_monotonic_and_records_every_event() {
    let (_dir, store) = open_default();
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
    let history: Vec<_> = view
        .status_history
        .iter()
        .map(|entry| entry.status.as_str())
        .collect();
    assert_eq!(
        history,
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
    assert_eq!(
        count(&raw_db(store.path()), "SELECT count(*) FROM messages"),
        1
    );
}

#[tokio::test]
async fn status_for_unknown_wamid_makes_a_placeholder_that_record_sent_merges() {
    let (_dir, store) = open_default();
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
    let history: Vec<_> = placeholder
        .status_history
        .iter()
        .map(|e| e.status.as_str())
        .collect();
    assert_eq!(history, ["sent", "delivered"]);

    // The send that the statuses belong to is recorded afterwards.
    let sent = store
        .enqueue_send(send_to(Some(MARIA_FORMATTED), None, "hello"))
        .await
        .unwrap();
    assert_ne!(sent.id, placeholder.id);
    store.record_sent(&sent.id, Some(&wamid)).await.unwrap();

    let db = raw_db(store.path());
    assert_eq!(
        count(&db, "SELECT count(*) FROM messages"),
        1,
        "the placeholder is merged away"
    );
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
    let history: Vec<_> = by_id
        .status_history
        .iter()
        .map(|e| e.status.as_str())
        .collect();
    assert_eq!(history, ["queued", "accepted", "sent", "delivered"]);
    let outbound = store.outbound(&sent.id).await.unwrap().unwrap();
    assert_eq!(
        (outbound.wamid.as_deref(), outbound.status.as_str()),
        (Some(wamid.as_str()), "delivered")
    );
}

#[tokio::test]
async fn merging_a_failed_placeholder_keeps_failed_and_its_errors() {
    let (_dir, store) = open_default();
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
    assert_eq!(
        store.message(&wamid).await.unwrap().unwrap().status,
        "failed"
    );

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
    assert_eq!(
        count(&raw_db(store.path()), "SELECT count(*) FROM messages"),
        1
    );
}

// ---------------------------------------------------------------- sends

#[tokio::test]
async fn enqueue_send_stores_a_queued_message_and_one_dispatch_task() {
    let (_dir, store) = open_default();
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
    assert_eq!((view.wamid, view.text.as_deref()), (None, Some("first")));
    assert_eq!(view.raw.as_ref(), Some(&first.body));
    assert_eq!(
        view.status_history
            .iter()
            .map(|e| e.status.as_str())
            .collect::<Vec<_>>(),
        ["queued"]
    );

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

    assert_eq!(
        count(&raw_db(store.path()), "SELECT count(*) FROM messages"),
        2
    );
    let tasks = drain(&store, topics::DISPATCH).await;
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

    // A mark-as-read has no recipient and so no ordering key.
    let read = store
        .enqueue_send(send_to(None, None, "read"))
        .await
        .unwrap();
    let task = claim_one(&store, topics::DISPATCH).await;
    assert_eq!(
        (event_message_id(&task), task.ordering_key),
        (read.id, None)
    );
}

#[tokio::test]
async fn inbound_messages_are_not_outbound_sends() {
    let (_dir, store) = open_default();
    store
        .ingest(texts(PNID, MARIA, &[("wamid.IN", 10)]))
        .await
        .unwrap();
    let id = id_of(&store, "wamid.IN").await;
    assert_eq!(store.outbound(&id).await.unwrap(), None);
}

#[tokio::test]
async fn record_send_error_fails_only_when_terminal() {
    let (_dir, store) = open_default();
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
        (view.status.as_str(), view.errors),
        ("failed", Some(json!([permanent.clone()])))
    );
    let statuses: Vec<_> = view
        .status_history
        .iter()
        .map(|e| e.status.as_str())
        .collect();
    assert_eq!(statuses, ["queued", "failed"]);
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

#[tokio::test]
async fn the_mid_send_mark_is_kept_only_when_the_send_may_have_reached_meta() {
    let (_dir, store) = open_default();
    let enqueued = store
        .enqueue_send(send_to(Some(MARIA), None, "hi"))
        .await
        .unwrap();
    assert_eq!(
        store
            .outbound(&enqueued.id)
            .await
            .unwrap()
            .unwrap()
            .dispatch_started_at,
        None
    );
    let before = now_secs();
    store.mark_dispatching(&enqueued.id).await.unwrap();
    let started = store
        .outbound(&enqueued.id)
        .await
        .unwrap()
        .unwrap()
        .dispatch_started_at
        .unwrap();
    assert!((before..=now_secs()).contains(&started));

    store
        .record_send_error(&enqueued.id, json!({ "error": "timeout" }), false, true)
        .await
        .unwrap();
    assert_eq!(
        store
            .outbound(&enqueued.id)
            .await
            .unwrap()
            .unwrap()
            .dispatch_started_at,
        Some(started)
    );
    store
        .record_send_error(&enqueued.id, json!({ "code": 131000 }), false, false)
        .await
        .unwrap();
    assert_eq!(
        store
            .outbound(&enqueued.id)
            .await
            .unwrap()
            .unwrap()
            .dispatch_started_at,
        None
    );

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

#[tokio::test]
async fn a_status_with_callback_data_links_a_send_whose_answer_was_lost() {
    let (_dir, store) = open_default();
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
    let statuses: Vec<_> = view
        .status_history
        .iter()
        .map(|e| e.status.as_str())
        .collect();
    assert_eq!(statuses, ["queued", "accepted", "delivered"]);
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
    assert_eq!(
        count(&raw_db(store.path()), "SELECT count(*) FROM messages"),
        1
    );
}

// ---------------------------------------------------------------- 24-hour window

#[tokio::test]
async fn last_inbound_at_is_the_latest_customer_message() {
    let (_dir, store) = open_default();
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

// ---------------------------------------------------------------- outbox

#[tokio::test]
async fn ordering_key_holds_later_events_until_the_first_is_acked() {
    let (_dir, store) = open_default();
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10), ("wamid.M2", 11)]))
        .await
        .unwrap();
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 12)]))
        .await
        .unwrap();
    let (m1, m2, j1) = (
        id_of(&store, "wamid.M1").await,
        id_of(&store, "wamid.M2").await,
        id_of(&store, "wamid.J1").await,
    );

    let heads = store.claim(topics::MESSAGES, 10, LEASE).await.unwrap();
    assert_eq!(
        heads.iter().map(event_message_id).collect::<Vec<_>>(),
        [m1.clone(), j1]
    );
    assert!(
        store
            .claim(topics::MESSAGES, 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "M2 waits behind leased M1"
    );

    store.settle(&heads[1], Settlement::Ack).await.unwrap();
    assert!(
        store
            .claim(topics::MESSAGES, 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "another key's ack frees nothing"
    );

    // A retried head still holds its key.
    store
        .settle(
            &heads[0],
            Settlement::Retry {
                after: Duration::ZERO,
                error: "again".into(),
            },
        )
        .await
        .unwrap();
    let retried = claim_one(&store, topics::MESSAGES).await;
    assert_eq!((event_message_id(&retried), retried.attempt), (m1, 2));

    store.settle(&retried, Settlement::Ack).await.unwrap();
    let next = claim_one(&store, topics::MESSAGES).await;
    assert_eq!((event_message_id(&next), next.attempt), (m2, 1));
}

#[tokio::test]
async fn ordering_keys_are_scoped_to_their_topic() {
    let (_dir, store) = open_default();
    // An inbound message (`messages`, key pnid:wa_id) and a reply to the same customer (`dispatch`, same key).
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    let reply = store
        .enqueue_send(send_to(Some(MARIA), None, "reply"))
        .await
        .unwrap();

    let task = claim_one(&store, topics::DISPATCH).await;
    assert_eq!(
        event_message_id(&task),
        reply.id,
        "a pending inbound event must not hold back the reply"
    );
    let event = claim_one(&store, topics::MESSAGES).await;
    assert_eq!(event.ordering_key, task.ordering_key);
}

#[tokio::test]
async fn defer_does_not_count_an_attempt() {
    let (_dir, store) = open_default();
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 10)]))
        .await
        .unwrap();
    let db = raw_db(store.path());

    let first = store
        .claim(topics::MESSAGES, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.attempt, 1);
    store
        .settle(
            &first,
            Settlement::Defer {
                after: Duration::ZERO,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        count(
            &db,
            &format!("SELECT attempts FROM outbox WHERE id = {}", first.id)
        ),
        0
    );
    let again = store
        .claim(topics::MESSAGES, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((again.id.as_str(), again.attempt), (first.id.as_str(), 1));

    // Deferred into the future: not due, still pending, still no attempt counted.
    store
        .settle(
            &again,
            Settlement::Defer {
                after: Duration::from_secs(60),
            },
        )
        .await
        .unwrap();
    let other = claim_one(&store, topics::MESSAGES).await;
    assert_ne!(other.id, first.id);
    assert_eq!(
        count(
            &db,
            &format!("SELECT attempts FROM outbox WHERE id = {}", first.id)
        ),
        0
    );
    assert_eq!(
        store.queue_depths().await.unwrap().pending[topics::MESSAGES],
        2
    );
}

#[tokio::test]
async fn retry_counts_attempts_and_dead_letters_after_max_attempts() {
    let (_dir, store) = open(SqliteOptions {
        max_attempts: 3,
        ..SqliteOptions::default()
    });
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    let m1 = id_of(&store, "wamid.M1").await;

    for attempt in 1..=3 {
        let delivery = claim_one(&store, topics::MESSAGES).await;
        assert_eq!(
            (event_message_id(&delivery), delivery.attempt),
            (m1.clone(), attempt)
        );
        let error = format!("boom {attempt}");
        store
            .settle(
                &delivery,
                Settlement::Retry {
                    after: Duration::ZERO,
                    error,
                },
            )
            .await
            .unwrap();
    }
    assert!(store
        .claim(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .is_empty());

    let depths = store.queue_depths().await.unwrap();
    assert_eq!((pending(&depths), depths.dead_letters), (vec![], 1));
    let (topic, key, payload, attempts, error): (String, Option<String>, String, i64, String) =
        raw_db(store.path())
            .query_row(
                "SELECT topic, ordering_key, payload, attempts, last_error FROM dead_letters",
                [],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )
            .unwrap();
    assert_eq!(
        (topic.as_str(), key, attempts, error.as_str()),
        (
            topics::MESSAGES,
            Some(format!("{PNID}:{MARIA}")),
            3,
            "boom 3"
        )
    );
    assert_eq!(
        serde_json::from_str::<MessageEvent>(&payload)
            .unwrap()
            .message_id,
        m1
    );

    // A retry with attempts left waits for its backoff and keeps the error.
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 10)]))
        .await
        .unwrap();
    let j1 = claim_one(&store, topics::MESSAGES).await;
    store
        .settle(
            &j1,
            Settlement::Retry {
                after: Duration::from_secs(60),
                error: "later".into(),
            },
        )
        .await
        .unwrap();
    assert!(store
        .claim(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    let (attempts, last_error): (i64, String) = raw_db(store.path())
        .query_row("SELECT attempts, last_error FROM outbox", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!((attempts, last_error.as_str()), (1, "later"));
    assert_eq!(
        store.queue_depths().await.unwrap().pending[topics::MESSAGES],
        1
    );
}

#[tokio::test]
async fn retry_dead_letters_once_past_max_retry_age() {
    // With the default 300 s age: a retry that would land past it is dead at once.
    let (_dir, store) = open(SqliteOptions {
        max_attempts: 100,
        ..SqliteOptions::default()
    });
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10), ("wamid.M2", 11)]))
        .await
        .unwrap();
    let first = claim_one(&store, topics::MESSAGES).await;
    store
        .settle(
            &first,
            Settlement::Retry {
                after: Duration::ZERO,
                error: "soon".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(store.queue_depths().await.unwrap().dead_letters, 0);
    let again = claim_one(&store, topics::MESSAGES).await;
    store
        .settle(
            &again,
            Settlement::Retry {
                after: Duration::from_secs(301),
                error: "too late".into(),
            },
        )
        .await
        .unwrap();
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(
        (pending(&depths), depths.dead_letters),
        (vec![(topics::MESSAGES, 1)], 1)
    );

    // An event older than a short max age is dead on its next retry, whatever the backoff.
    let max_retry_age = Duration::from_millis(100);
    let (_dir, store) = open(SqliteOptions {
        max_attempts: 100,
        max_retry_age,
        ..SqliteOptions::default()
    });
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    let delivery = claim_one(&store, topics::MESSAGES).await;
    tokio::time::sleep(max_retry_age + Duration::from_millis(20)).await;
    store
        .settle(
            &delivery,
            Settlement::Retry {
                after: Duration::ZERO,
                error: "old".into(),
            },
        )
        .await
        .unwrap();
    let depths = store.queue_depths().await.unwrap();
    assert_eq!((pending(&depths), depths.dead_letters), (vec![], 1));
}

#[tokio::test]
async fn expired_lease_is_delivered_again_with_the_next_attempt() {
    let (_dir, store) = open_default();
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

    let redelivered = claim_one(&store, topics::MESSAGES).await;
    assert_eq!((redelivered.id, redelivered.attempt), (short.id, 2));
    assert_eq!(redelivered.payload, short.payload);
}

#[tokio::test]
async fn queue_depths_count_pending_and_dead_letters() {
    let (_dir, store) = open_default();
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
    let status = claim_one(&store, topics::STATUSES).await;
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

#[tokio::test]
async fn settling_a_removed_delivery_is_a_no_op() {
    let (_dir, store) = open_default();
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
            .settle(
                delivery,
                Settlement::Retry {
                    after: Duration::ZERO,
                    error: "late".into(),
                },
            )
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

    let db = raw_db(store.path());
    assert_eq!(count(&db, "SELECT count(*) FROM outbox"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM dead_letters"), 1);
    let error: String = db
        .query_row("SELECT last_error FROM dead_letters", [], |row| row.get(0))
        .unwrap();
    assert_eq!(error, "first");
    assert!(store
        .claim(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------- reads

/// 120 messages from Maria on `PNID` (three per second, so timestamps tie),
/// interleaved with 30 from João on `PNID` and 20 from Maria on `PNID_2`.
async fn seed_pagination(store: &SqliteStore) -> BTreeSet<String> {
    let mut maria = BTreeSet::new();
    for chunk in 0..10 {
        let wamids: Vec<_> = (0..12)
            .map(|i| format!("wamid.MARIA{:03}", chunk * 12 + i))
            .collect();
        let batch: Vec<_> = wamids
            .iter()
            .enumerate()
            .map(|(i, w)| (w.as_str(), 1_000 + (chunk * 12 + i as i64) / 3))
            .collect();
        store.ingest(texts(PNID, MARIA, &batch)).await.unwrap();
        maria.extend(wamids);
        let joao: Vec<_> = (0..3)
            .map(|i| format!("wamid.JOAO{:03}", chunk * 3 + i))
            .collect();
        store
            .ingest(texts(
                PNID,
                JOAO,
                &joao.iter().map(|w| (w.as_str(), 5_000)).collect::<Vec<_>>(),
            ))
            .await
            .unwrap();
        let other: Vec<_> = (0..2)
            .map(|i| format!("wamid.OTHER{:03}", chunk * 2 + i))
            .collect();
        store
            .ingest(texts(
                PNID_2,
                MARIA,
                &other
                    .iter()
                    .map(|w| (w.as_str(), 1_010))
                    .collect::<Vec<_>>(),
            ))
            .await
            .unwrap();
    }
    assert_eq!(
        count(&raw_db(store.path()), "SELECT count(*) FROM messages"),
        170
    );
    maria
}

/// Every message of a conversation, walking pages of `limit`; also the page sizes.
async fn walk_messages(
    store: &SqliteStore,
    conversation_id: &str,
    limit: usize,
) -> (Vec<zapfn_store::MessageView>, Vec<usize>) {
    let (mut all, mut sizes, mut cursor) = (Vec::new(), Vec::new(), None);
    loop {
        let page = store
            .conversation_messages(conversation_id, PageRequest { cursor, limit })
            .await
            .unwrap();
        sizes.push(page.items.len());
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (all, sizes),
        }
    }
}

#[tokio::test]
async fn conversation_messages_pages_cover_every_message_once_newest_first() {
    let (_dir, store) = open_default();
    let expected = seed_pagination(&store).await;
    let conversation = store
        .message("wamid.MARIA000")
        .await
        .unwrap()
        .unwrap()
        .conversation_id
        .unwrap();

    let (messages, sizes) = walk_messages(&store, &conversation, 50).await;
    assert_eq!(sizes, [50, 50, 20]);
    let wamids: Vec<_> = messages.iter().map(|m| m.wamid.clone().unwrap()).collect();
    assert_eq!(wamids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(wamids.len(), expected.len(), "no message twice");
    for pair in messages.windows(2) {
        assert!(
            (pair[0].timestamp, &pair[0].id) > (pair[1].timestamp, &pair[1].id),
            "newest first, no ties"
        );
    }
    assert_eq!(
        (messages[0].timestamp, messages[119].timestamp),
        (1_039, 1_000)
    );

    // A last page that is exactly full has no next cursor.
    let (_, sizes) = walk_messages(&store, &conversation, 60).await;
    assert_eq!(sizes, [60, 60]);
}

#[tokio::test]
async fn conversations_filter_by_phone_number_id_and_wa_id() {
    let (_dir, store) = open_default();
    seed_pagination(&store).await;
    let list = |phone_number_id: Option<&str>, wa_id: Option<&str>| {
        let query = ConversationQuery {
            phone_number_id: phone_number_id.map(str::to_owned),
            wa_id: wa_id.map(str::to_owned),
            page: PageRequest::default(),
        };
        let store = store.clone();
        async move {
            let page = store.conversations(query).await.unwrap();
            assert_eq!(page.next_cursor, None);
            page.items
                .into_iter()
                .map(|c| (c.phone_number_id, c.wa_id))
                .collect::<Vec<_>>()
        }
    };
    let pair = |pnid: &str, wa_id: &str| (pnid.to_owned(), wa_id.to_owned());

    assert_eq!(
        list(Some(PNID), None).await,
        [pair(PNID, JOAO), pair(PNID, MARIA)]
    );
    assert_eq!(list(Some(PNID_2), None).await, [pair(PNID_2, MARIA)]);
    // Both conversations' last messages are within a minute: their order is not specified.
    let mut marias = list(None, Some(MARIA)).await;
    marias.sort();
    assert_eq!(marias, [pair(PNID, MARIA), pair(PNID_2, MARIA)]);
    assert_eq!(list(Some(PNID), Some(MARIA)).await, [pair(PNID, MARIA)]);
    assert!(list(Some("000"), None).await.is_empty());

    // Pages of one walk all three, most recent first.
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let query = ConversationQuery {
            page: PageRequest { cursor, limit: 1 },
            ..Default::default()
        };
        let page = store.conversations(query).await.unwrap();
        assert_eq!(page.items.len(), 1);
        seen.push(page.items[0].clone());
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        seen.iter().map(|c| c.last_message_at).collect::<Vec<_>>(),
        // Kept to the minute: each conversation's later messages within 60 s of
        // its first do not move it (Maria's 1,000..1,039 stay at 1,000).
        [5_000, 1_010, 1_000]
    );
    let fetched = store.conversation(&seen[0].id).await.unwrap().unwrap();
    assert_eq!(fetched, seen[0]);
    assert_eq!(store.conversation("conv_unknown").await.unwrap(), None);
}

#[tokio::test]
async fn a_cursor_the_api_did_not_give_out_is_invalid() {
    let (_dir, store) = open_default();
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    let conversation = store
        .message("wamid.M1")
        .await
        .unwrap()
        .unwrap()
        .conversation_id
        .unwrap();
    for cursor in ["garbage", "abc:msg_1", ""] {
        let page = PageRequest {
            cursor: Some(cursor.into()),
            limit: 10,
        };
        let messages = store
            .conversation_messages(&conversation, page.clone())
            .await;
        assert!(
            matches!(messages, Err(StoreError::Invalid(_))),
            "{cursor:?}: {messages:?}"
        );
        let conversations = store
            .conversations(ConversationQuery {
                page,
                ..Default::default()
            })
            .await;
        assert!(
            matches!(conversations, Err(StoreError::Invalid(_))),
            "{cursor:?}: {conversations:?}"
        );
    }
}

#[tokio::test]
async fn api_keys_are_found_by_hash_while_live() {
    let (_dir, store) = open_default();
    assert_eq!(store.api_key_name("h1").await.unwrap(), None);
    store.put_api_key("ci", "h1").await.unwrap();
    store.put_api_key("admin", "h2").await.unwrap();
    assert_eq!(
        store.api_key_name("h1").await.unwrap().as_deref(),
        Some("ci")
    );
    store.put_api_key("ci-renamed", "h1").await.unwrap();
    assert_eq!(
        store.api_key_name("h1").await.unwrap().as_deref(),
        Some("ci-renamed")
    );
    assert_eq!(
        store.api_key_name("h2").await.unwrap().as_deref(),
        Some("admin")
    );
}

// ---------------------------------------------------------------- durability and load

#[tokio::test]
async fn data_and_pending_events_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.db");
    let wamid = builders::new_wamid();
    let sent = {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        store
            .ingest(texts(PNID, MARIA, &[(wamid.as_str(), 10)]))
            .await
            .unwrap();
        store.put_api_key("ci", "hash").await.unwrap();
        let sent = store
            .enqueue_send(send_to(Some(MARIA), Some("key"), "hi"))
            .await
            .unwrap();
        // Leased by a handler that never finishes: the process "dies" with it in flight.
        claim_one(&store, topics::MESSAGES).await;
        sent
    };

    let store = SqliteStore::open(
        &path,
        SqliteOptions {
            durability: Durability::Power,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        store.release_leases().await.unwrap(),
        1,
        "the lease of the dead run"
    );
    let message = store
        .message(&wamid)
        .await
        .unwrap()
        .expect("inbound message kept");
    assert_eq!(
        message.text.as_deref(),
        Some(format!("text {wamid}").as_str())
    );
    assert_eq!(
        store.outbound(&sent.id).await.unwrap().unwrap().status,
        "queued"
    );
    assert_eq!(
        store.api_key_name("hash").await.unwrap().as_deref(),
        Some("ci")
    );
    assert_eq!(store.last_inbound_at(PNID, MARIA).await.unwrap(), Some(10));
    let again = store
        .enqueue_send(send_to(Some(MARIA), Some("key"), "hi"))
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.created),
        (sent.id.as_str(), false)
    );

    assert_eq!(
        pending(&store.queue_depths().await.unwrap()),
        [(topics::DISPATCH, 1), (topics::MESSAGES, 1)]
    );
    let event = claim_one(&store, topics::MESSAGES).await;
    assert_eq!(
        (event_message_id(&event), event.attempt),
        (message.id, 2),
        "the dead process's lease is released"
    );
    assert_eq!(
        event_message_id(&claim_one(&store, topics::DISPATCH).await),
        sent.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_takes_2000_concurrent_ingests() {
    let (_dir, store) = open_default();
    let tasks: Vec<_> = (0..2_000)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let customer = format!("55119000{:05}", i % 50);
                store
                    .ingest(texts(
                        PNID,
                        &customer,
                        &[(format!("wamid.LOAD{i:05}").as_str(), 1_000 + i)],
                    ))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let report = task.await.unwrap().unwrap();
        assert_eq!((report.new_messages, report.duplicate_messages), (1, 0));
    }

    let db = raw_db(store.path());
    assert_eq!(count(&db, "SELECT count(DISTINCT wa_message_id) FROM messages WHERE wa_message_id LIKE 'wamid.LOAD%'"), 2_000);
    assert_eq!(count(&db, "SELECT count(*) FROM conversations"), 50);
    assert_eq!(
        store.queue_depths().await.unwrap().pending[topics::MESSAGES],
        2_000
    );
    assert!(store.message("wamid.LOAD01999").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_does_not_fail_the_others_in_its_batch() {
    let (_dir, store) = open_default();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let result = store
                        .record_sent("msg_does_not_exist", Some("wamid.X"))
                        .await;
                    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
                } else {
                    store
                        .ingest(texts(
                            PNID,
                            MARIA,
                            &[(format!("wamid.OK{i:03}").as_str(), i)],
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        count(&raw_db(store.path()), "SELECT count(*) FROM messages"),
        100
    );
}

#[tokio::test]
async fn a_settle_after_the_lease_expired_changes_nothing() {
    let (_dir, store) = open_default();
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
    let second = claim_one(&store, topics::MESSAGES).await;
    assert_eq!(second.attempt, 2);

    store.settle(&first, Settlement::Ack).await.unwrap();
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(
        pending(&depths),
        vec![(topics::MESSAGES, 1)],
        "the stale ack did not remove the redelivered event"
    );

    store.settle(&second, Settlement::Ack).await.unwrap();
    assert!(pending(&store.queue_depths().await.unwrap()).is_empty());
}

#[tokio::test]
async fn waiting_behind_an_ordering_key_does_not_age_an_event() {
    let (_dir, store) = open(SqliteOptions {
        max_retry_age: Duration::from_millis(100),
        ..SqliteOptions::default()
    });
    store
        .ingest(texts(PNID, MARIA, &[("wamid.AGE1", 1), ("wamid.AGE2", 2)]))
        .await
        .unwrap();
    let first = claim_one(&store, topics::MESSAGES).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    store.settle(&first, Settlement::Ack).await.unwrap();

    // The second event waited 150 ms behind the first, longer than the retry window,
    // but its window starts at its own first attempt: one quick retry is allowed.
    let second = claim_one(&store, topics::MESSAGES).await;
    store
        .settle(
            &second,
            Settlement::Retry {
                after: Duration::ZERO,
                error: "once".into(),
            },
        )
        .await
        .unwrap();
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(
        (pending(&depths), depths.dead_letters),
        (vec![(topics::MESSAGES, 1)], 0)
    );
}

// ---------------------------------------------------------------- media annotations

#[tokio::test]
async fn annotate_media_publishes_once_per_changed_value() {
    let (_dir, store) = open_default();
    store
        .ingest(texts(PNID, MARIA, &[("wamid.annotate", 1_700_000_000)]))
        .await
        .unwrap();
    drain(&store, topics::MESSAGES).await;
    let id = id_of(&store, "wamid.annotate").await;
    let event = zapfn_store::NewEvent {
        topic: "media".into(),
        ordering_key: None,
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
    assert_eq!(
        drain(&store, "media").await.len(),
        1,
        "one event for one change"
    );
    let view = store.message(&id).await.unwrap().unwrap();
    assert_eq!(view.media.unwrap()["object"], value);
    let unknown = store
        .annotate_media("msg_nope", "object", value, vec![event])
        .await;
    assert!(
        matches!(unknown, Err(StoreError::Invalid(_))),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn dead_letter_keeps_a_pushed_event() {
    let (dir, store) = open_default();
    store
        .dead_letter(topics::STATUSES, &json!({ "bad": true }), 3, "not a status")
        .await
        .unwrap();
    assert_eq!(store.queue_depths().await.unwrap().dead_letters, 1);
    let db = raw_db(&dir.path().join("z.db"));
    let (attempts, error): (i64, String) = db
        .query_row("SELECT attempts, last_error FROM dead_letters", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((attempts, error.as_str()), (3, "not a status"));
}
