//! Results of media processing, kept under a message's `media` object.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::{now_ms, outbox};
use crate::model::NewEvent;
use crate::{Result, StoreError};

/// Sets `media.<key>` and publishes `events` when the value changed.
pub(crate) fn annotate(
    conn: &Connection,
    message_id: &str,
    key: &str,
    value: &Value,
    events: &[NewEvent],
) -> Result<bool> {
    let stored: Option<Option<String>> = conn
        .prepare_cached("SELECT media FROM messages WHERE id = ?1")?
        .query_row([message_id], |row| row.get(0))
        .optional()?;
    let Some(stored) = stored else {
        return Err(StoreError::Invalid(format!("no message {message_id}")));
    };
    let mut media = match stored.as_deref().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(media))) => media,
        Some(Err(error)) => return Err(error.into()),
        _ => Map::new(),
    };
    if media.get(key) == Some(value) {
        return Ok(false);
    }
    media.insert(key.to_owned(), value.clone());
    let now = now_ms();
    conn.prepare_cached("UPDATE messages SET media = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![
            message_id,
            Value::Object(media).to_string(),
            now / 1000
        ])?;
    for event in events {
        outbox::publish(
            conn,
            &event.topic,
            event.ordering_key.as_deref(),
            &event.payload.to_string(),
            now,
        )?;
    }
    Ok(true)
}
