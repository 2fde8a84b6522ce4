//! Erasure and retention: deleting messages with everything derived from them,
//! a contact's conversation and queued events, and what is past retention. Each
//! call is one bounded step (the caller batches), so no step holds the writer long.

use rusqlite::{params, Connection, Row};
use serde_json::Value;

use crate::erasure::{Erased, StoredMessage, StoredRawEvent};
use crate::Result;

/// The ids as a JSON array, for `json_each`.
fn json_array(items: &[String]) -> String {
    Value::from(items.to_vec()).to_string()
}

/// Deletes these messages (unknown ids are skipped), their status history and
/// the queued events and dead letters that name them.
pub(crate) fn erase_messages(conn: &Connection, ids: &[String]) -> Result<Erased> {
    if ids.is_empty() {
        return Ok(Erased::default());
    }
    let ids = json_array(ids);
    let wamids: Vec<String> = conn
        .prepare_cached(
            "SELECT wa_message_id FROM messages
             WHERE id IN (SELECT value FROM json_each(?1)) AND wa_message_id IS NOT NULL",
        )?
        .query_map([&ids], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let wamids = json_array(&wamids);
    let status_events = conn
        .prepare_cached(
            "DELETE FROM status_events
             WHERE subject IN (SELECT value FROM json_each(?1) UNION ALL SELECT value FROM json_each(?2))",
        )?
        .execute(params![ids, wamids])?;
    let mut events = 0;
    for table in ["outbox", "dead_letters"] {
        events += conn
            .prepare_cached(&format!(
                "DELETE FROM {table}
                 WHERE json_extract(payload, '$.message_id') IN (SELECT value FROM json_each(?1))
                    OR (topic = 'statuses'
                        AND json_extract(payload, '$.wamid') IN (SELECT value FROM json_each(?2)))"
            ))?
            .execute(params![ids, wamids])?;
    }
    let messages = conn
        .prepare_cached("DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?1))")?
        .execute([&ids])?;
    Ok(Erased {
        messages: messages as u64,
        status_events: status_events as u64,
        events: events as u64,
        ..Erased::default()
    })
}

/// Deletes the conversation of (`phone_number_id`, `wa_id`) once it has no
/// messages left, and the queued events and dead letters about the contact.
pub(crate) fn erase_conversation(
    conn: &Connection,
    phone_number_id: &str,
    wa_id: &str,
) -> Result<Erased> {
    let ordering_key = format!("{phone_number_id}:{wa_id}");
    let mut events = 0;
    for table in ["outbox", "dead_letters"] {
        events += conn
            .prepare_cached(&format!(
                "DELETE FROM {table}
                 WHERE ordering_key = ?3
                    OR (json_extract(payload, '$.phone_number_id') = ?1
                        AND (json_extract(payload, '$.from') = ?2
                             OR json_extract(payload, '$.recipient_id') = ?2))"
            ))?
            .execute(params![phone_number_id, wa_id, ordering_key])?;
    }
    let conversations = conn
        .prepare_cached(
            "DELETE FROM conversations AS c
             WHERE phone_number_id = ?1 AND wa_id = ?2
               AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = c.id)",
        )?
        .execute(params![phone_number_id, wa_id])?;
    let raw_events = conn
        .prepare_cached("DELETE FROM raw_events WHERE phone_number_id = ?1 AND instr(raw, ?2) > 0")?
        .execute(params![phone_number_id, crate::quoted(wa_id)])?;
    Ok(Erased {
        conversations: conversations as u64,
        events: events as u64,
        raw_events: raw_events as u64,
        ..Erased::default()
    })
}

/// The raw events of a number (`None`: of every number) whose JSON names the
/// contact, oldest first.
pub(crate) fn raw_events_naming(
    conn: &Connection,
    phone_number_id: Option<&str>,
    wa_id: &str,
) -> Result<Vec<StoredRawEvent>> {
    Ok(conn
        .prepare_cached(
            "SELECT phone_number_id, kind, received_at, raw FROM raw_events
             WHERE phone_number_id = coalesce(?1, phone_number_id) AND instr(raw, ?2) > 0
             ORDER BY id",
        )?
        .query_map(params![phone_number_id, crate::quoted(wa_id)], |row| {
            Ok(StoredRawEvent::new(
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                &row.get::<_, String>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?)
}

fn stored_message(row: &Row) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: row.get(0)?,
        phone_number_id: row.get(1)?,
        wamid: row.get(2)?,
        media: row
            .get::<_, Option<String>>(3)?
            .and_then(|text| serde_json::from_str(&text).ok()),
        timestamp: row.get(4)?,
    })
}

/// Up to `limit` messages whose timestamp is before `before` (Unix seconds).
/// The table is walked in insertion order, where the oldest messages are, so a
/// step stops after `limit` matches instead of sorting the table.
pub(crate) fn messages_before(
    conn: &Connection,
    before: i64,
    limit: usize,
) -> Result<Vec<StoredMessage>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, phone_number_id, wa_message_id, media, timestamp FROM messages
             WHERE timestamp < ?1 LIMIT ?2",
        )?
        .query_map(params![before, limit as i64], stored_message)?
        .collect::<rusqlite::Result<_>>()?)
}

/// Deletes up to `limit` of each: conversations without messages whose last
/// message is before `before`, dead letters that died before it, and raw
/// webhook events received before it.
pub(crate) fn purge_expired(conn: &Connection, before: i64, limit: usize) -> Result<Erased> {
    let conversations = conn
        .prepare_cached(
            "DELETE FROM conversations WHERE id IN (
                 SELECT id FROM conversations AS c
                 WHERE last_message_at < ?1
                   AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = c.id)
                 LIMIT ?2)",
        )?
        .execute(params![before, limit as i64])?;
    let events = conn
        .prepare_cached(
            "DELETE FROM dead_letters WHERE id IN (
                 SELECT id FROM dead_letters WHERE dead_at_ms < ?1 ORDER BY id LIMIT ?2)",
        )?
        .execute(params![before.saturating_mul(1000), limit as i64])?;
    let raw_events = conn
        .prepare_cached(
            "DELETE FROM raw_events WHERE id IN (
                 SELECT id FROM raw_events WHERE received_at < ?1 ORDER BY id LIMIT ?2)",
        )?
        .execute(params![before, limit as i64])?;
    Ok(Erased {
        conversations: conversations as u64,
        events: events as u64,
        raw_events: raw_events as u64,
        ..Erased::default()
    })
}
