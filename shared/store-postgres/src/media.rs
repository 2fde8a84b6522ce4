//! Results of media processing, kept under a message's `media` object.

use deadpool_postgres::GenericClient;
use serde_json::{Map, Value};
use zapfn_store::{NewEvent, StoreError};

use crate::db::{execute, json, query_opt, DbResult};
use crate::outbox;

/// Sets `media.<key>` and publishes `events` when the value changed (the row
/// is locked, so concurrent annotations of one message do not lose each other).
pub(crate) async fn annotate(
    db: &impl GenericClient,
    message_id: &str,
    key: &str,
    value: &Value,
    events: &[NewEvent],
    now_ms: i64,
) -> DbResult<bool> {
    let stored = query_opt(
        db,
        "SELECT media::text FROM messages WHERE id = $1 FOR UPDATE",
        &[&message_id],
    )
    .await?;
    let Some(stored) = stored else {
        return Err(StoreError::Invalid(format!("no message {message_id}")).into());
    };
    let mut media = match json(stored.get(0))? {
        Some(Value::Object(media)) => media,
        _ => Map::new(),
    };
    if media.get(key) == Some(value) {
        return Ok(false);
    }
    media.insert(key.to_owned(), value.clone());
    execute(
        db,
        "UPDATE messages SET media = $2::text::json, updated_at = $3 WHERE id = $1",
        &[
            &message_id,
            &Value::Object(media).to_string(),
            &(now_ms / 1000),
        ],
    )
    .await?;
    for event in events {
        let payload = event.payload.to_string();
        outbox::publish(
            db,
            &event.topic,
            event.ordering_key.as_deref(),
            &payload,
            now_ms,
        )
        .await?;
    }
    Ok(true)
}
