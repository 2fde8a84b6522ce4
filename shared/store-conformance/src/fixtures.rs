//! Webhook fixtures, the parties in them, and small helpers the behaviour tests share.

use std::time::Duration;

use serde_json::{json, Value};
use zapfn_store::{
    Delivery, MessageView, NewOutbound, PageRequest, QueueDepths, Settlement, Store,
};
use zapfn_whatsapp::builders;
use zapfn_whatsapp::webhook::{self, Notification, StatusUpdate};

/// Webhook fixtures from `fixtures/webhooks`: seven messages over two numbers and
/// customers, three statuses and a value-level error.
pub const BATCH_MULTI: &[u8] = include_bytes!("../../../fixtures/webhooks/batch_multi.json");
/// A message of a type Meta has not documented, with unknown fields.
pub const UNKNOWN_TYPE: &[u8] =
    include_bytes!("../../../fixtures/webhooks/message_unknown_type.json");
/// Text with emoji, RTL marks, NUL; a contact name in three scripts.
pub const UNICODE: &[u8] = include_bytes!("../../../fixtures/webhooks/hostile/unicode.json");
/// One message delivered twice with different bytes.
pub const DUPLICATE_A: &[u8] = include_bytes!("../../../fixtures/webhooks/duplicate_a.json");
pub const DUPLICATE_B: &[u8] = include_bytes!("../../../fixtures/webhooks/duplicate_b.json");
/// `sent` then `delivered` of `wamid.OUTBOUND0001`.
pub const STATUS_SENT: &[u8] = include_bytes!("../../../fixtures/webhooks/status_sent.json");
pub const STATUS_DELIVERED: &[u8] =
    include_bytes!("../../../fixtures/webhooks/status_delivered.json");

/// The fixtures' business numbers and customers.
pub const PNID: &str = "106540352242922";
pub const PNID_2: &str = "106540352242999";
pub const MARIA: &str = "5511999990000";
pub const MARIA_FORMATTED: &str = "+55 11 99999-0000";
pub const JOAO: &str = "5521988887777";

/// A lease long enough never to run out during a test.
pub const LEASE: Duration = Duration::from_secs(60);

/// A webhook body parsed as the webhook function does.
pub fn parse(body: &[u8]) -> Notification {
    webhook::parse(body).unwrap()
}

/// A webhook built as JSON, parsed.
pub fn parse_json(body: &Value) -> Notification {
    parse(body.to_string().as_bytes())
}

/// A notification of text messages `(wamid, timestamp)` from one customer.
pub fn texts(phone_number_id: &str, from: &str, messages: &[(&str, i64)]) -> Notification {
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
pub fn status(
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
pub fn send_to(to: Option<&str>, idempotency_key: Option<&str>, body: &str) -> NewOutbound {
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

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims `topic` and acks what it got until nothing is due; every delivery, in claim order.
pub async fn drain(store: &dyn Store, topic: &str) -> Vec<Delivery> {
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
pub async fn claim_one(store: &dyn Store, topic: &str) -> Delivery {
    let mut claimed = store.claim(topic, 10, LEASE).await.unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "expected one due {topic} event, got {claimed:?}"
    );
    claimed.remove(0)
}

/// Nothing of `topic` is due.
pub async fn assert_nothing_due(store: &dyn Store, topic: &str, why: &str) {
    let claimed = store.claim(topic, 10, LEASE).await.unwrap();
    assert!(claimed.is_empty(), "{why}: {claimed:?}");
}

/// The zapfn id of the message with this wamid.
pub async fn id_of(store: &dyn Store, wamid: &str) -> String {
    store
        .message(wamid)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no message {wamid}"))
        .id
}

/// The conversation of the message with this wamid or id.
pub async fn conversation_of(store: &dyn Store, message: &str) -> String {
    store
        .message(message)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no message {message}"))
        .conversation_id
        .unwrap_or_else(|| panic!("message {message} has no conversation"))
}

/// The `message_id` a `messages` or `dispatch` event names.
pub fn event_message_id(delivery: &Delivery) -> String {
    delivery.payload["message_id"].as_str().unwrap().to_owned()
}

/// The backlog as `(topic, count)` pairs, in topic order.
pub fn pending(depths: &QueueDepths) -> Vec<(&str, u64)> {
    depths
        .pending
        .iter()
        .map(|(topic, n)| (topic.as_str(), *n))
        .collect()
}

/// The statuses of a message's history, oldest first.
pub fn history(view: &MessageView) -> Vec<&str> {
    view.status_history
        .iter()
        .map(|entry| entry.status.as_str())
        .collect()
}

/// Every message of a conversation, walking pages of `limit`; also the page sizes.
pub async fn walk_messages(
    store: &dyn Store,
    conversation_id: &str,
    limit: usize,
) -> (Vec<MessageView>, Vec<usize>) {
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

/// Every message of a conversation, newest first.
pub async fn messages_of(store: &dyn Store, conversation_id: &str) -> Vec<MessageView> {
    walk_messages(store, conversation_id, 500).await.0
}

/// The text of the first `messages[]` object in a fixture, exactly as the file
/// has it: what a store keeps as the message's raw JSON.
pub fn first_message_object(fixture: &[u8]) -> &str {
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
