//! Accepting signed webhook bodies: whatever a backend does before it
//! acknowledges (ingest at once, or journal first), what it accepted is
//! readable right after, stored once however often it comes, and an empty
//! notification stores nothing.

use zapfn_store::{topics, ConversationQuery};
use zapfn_whatsapp::builders;

use crate::fixtures::*;
use crate::Backend;

pub async fn an_accepted_webhook_is_readable_right_after_and_stored_once(backend: Backend) {
    let store = backend.store().await;
    let wamid = builders::new_wamid();
    let message = builders::text_message(MARIA, &wamid, now_secs(), "olá");
    let body = serde_json::to_vec(&builders::messages_notification(
        PNID,
        MARIA,
        "Maria",
        vec![message],
    ))
    .unwrap();
    for _ in 0..3 {
        store.accept_webhook(&body).await.unwrap();
    }
    let view = store
        .message(&wamid)
        .await
        .unwrap()
        .expect("readable after accept");
    assert_eq!(view.text.as_deref(), Some("olá"));
    let conversations = store
        .conversations(ConversationQuery::default())
        .await
        .unwrap();
    assert_eq!(conversations.items.len(), 1);
    assert!(store.flush_webhooks(LEASE).await);
    let events = store.claim(topics::MESSAGES, 10, LEASE).await.unwrap();
    assert_eq!(events.len(), 1, "one `messages` event for three deliveries");
    assert_eq!(store.webhook_backlog_bytes(), 0);
}

pub async fn an_accepted_webhook_without_items_stores_nothing(backend: Backend) {
    let store = backend.store().await;
    let body = serde_json::to_vec(&builders::notification(
        PNID,
        "15550000000",
        serde_json::json!({ "messaging_product": "whatsapp" }),
    ))
    .unwrap();
    store.accept_webhook(&body).await.unwrap();
    assert!(store.flush_webhooks(LEASE).await);
    let conversations = store
        .conversations(ConversationQuery::default())
        .await
        .unwrap();
    assert!(conversations.items.is_empty());
    assert!(store
        .claim(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .claim(topics::STATUSES, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
}
