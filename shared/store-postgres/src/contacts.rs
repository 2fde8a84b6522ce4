//! Erasure and retention: deleting messages with everything derived from them,
//! a contact's conversation and queued events, and what is past retention. Each
//! call is one bounded step in one transaction (the caller batches).

use deadpool_postgres::GenericClient;
use zapfn_store::{Erased, StoredMessage, StoredRawEvent};

use crate::db::{execute, json, query, DbResult};

/// Deletes these messages (unknown ids are skipped), their status history and
/// the queued events and dead letters that name them.
pub(crate) async fn erase_messages(db: &impl GenericClient, ids: &[String]) -> DbResult<Erased> {
    if ids.is_empty() {
        return Ok(Erased::default());
    }
    let wamids: Vec<String> = query(
        db,
        "SELECT wa_message_id FROM messages WHERE id = ANY($1) AND wa_message_id IS NOT NULL FOR UPDATE",
        &[&ids],
    )
    .await?
    .iter()
    .map(|row| row.get(0))
    .collect();
    let status_events = execute(
        db,
        "DELETE FROM status_events WHERE subject = ANY($1) OR subject = ANY($2)",
        &[&ids, &wamids],
    )
    .await?;
    let mut events = 0;
    for table in ["outbox", "dead_letters"] {
        let sql = format!(
            "DELETE FROM {table}
             WHERE payload->>'message_id' = ANY($1)
                OR (topic = 'statuses' AND payload->>'wamid' = ANY($2))"
        );
        events += execute(db, &sql, &[&ids, &wamids]).await?;
    }
    let messages = execute(db, "DELETE FROM messages WHERE id = ANY($1)", &[&ids]).await?;
    Ok(Erased {
        messages,
        status_events,
        events,
        ..Erased::default()
    })
}

/// Deletes the conversation of (`phone_number_id`, `wa_id`) once it has no
/// messages left, and the queued events and dead letters about the contact.
pub(crate) async fn erase_conversation(
    db: &impl GenericClient,
    phone_number_id: &str,
    wa_id: &str,
) -> DbResult<Erased> {
    let ordering_key = format!("{phone_number_id}:{wa_id}");
    let mut events = 0;
    for table in ["outbox", "dead_letters"] {
        let sql = format!(
            "DELETE FROM {table}
             WHERE ordering_key = $3
                OR (payload->>'phone_number_id' = $1
                    AND (payload->>'from' = $2 OR payload->>'recipient_id' = $2))"
        );
        events += execute(db, &sql, &[&phone_number_id, &wa_id, &ordering_key]).await?;
    }
    let conversations = execute(
        db,
        "DELETE FROM conversations AS c
         WHERE phone_number_id = $1 AND wa_id = $2
           AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = c.id)",
        &[&phone_number_id, &wa_id],
    )
    .await?;
    let raw_events = execute(
        db,
        "DELETE FROM raw_events WHERE phone_number_id = $1 AND strpos(raw, $2) > 0",
        &[&phone_number_id, &zapfn_store::quoted(wa_id)],
    )
    .await?;
    Ok(Erased {
        conversations,
        events,
        raw_events,
        ..Erased::default()
    })
}

/// The raw events of a number (`None`: of every number) whose JSON names the
/// contact, oldest first.
pub(crate) async fn raw_events_naming(
    db: &impl GenericClient,
    phone_number_id: Option<&str>,
    wa_id: &str,
) -> DbResult<Vec<StoredRawEvent>> {
    Ok(query(
        db,
        "SELECT phone_number_id, kind, received_at, raw FROM raw_events
         WHERE phone_number_id = coalesce($1, phone_number_id) AND strpos(raw, $2) > 0
         ORDER BY id",
        &[&phone_number_id, &zapfn_store::quoted(wa_id)],
    )
    .await?
    .iter()
    .map(|row| StoredRawEvent::new(row.get(0), row.get(1), row.get(2), row.get(3)))
    .collect())
}

/// Up to `limit` messages whose timestamp is before `before` (Unix seconds).
pub(crate) async fn messages_before(
    db: &impl GenericClient,
    before: i64,
    limit: usize,
) -> DbResult<Vec<StoredMessage>> {
    query(
        db,
        "SELECT id, phone_number_id, wa_message_id, media::text, timestamp FROM messages
         WHERE timestamp < $1 LIMIT $2",
        &[&before, &(limit as i64)],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(StoredMessage {
            id: row.get(0),
            phone_number_id: row.get(1),
            wamid: row.get(2),
            media: json(row.get(3))?,
            timestamp: row.get(4),
        })
    })
    .collect()
}

/// Deletes up to `limit` of each: conversations without messages whose last
/// message is before `before`, dead letters that died before it, and raw
/// webhook events received before it.
pub(crate) async fn purge_expired(
    db: &impl GenericClient,
    before: i64,
    limit: usize,
) -> DbResult<Erased> {
    let limit = limit as i64;
    let conversations = execute(
        db,
        "DELETE FROM conversations WHERE id IN (
             SELECT id FROM conversations AS c
             WHERE last_message_at < $1
               AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = c.id)
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[&before, &limit],
    )
    .await?;
    let events = execute(
        db,
        "DELETE FROM dead_letters WHERE id IN (
             SELECT id FROM dead_letters WHERE dead_at_ms < $1 ORDER BY id LIMIT $2)",
        &[&before.saturating_mul(1000), &limit],
    )
    .await?;
    let raw_events = execute(
        db,
        "DELETE FROM raw_events WHERE id IN (
             SELECT id FROM raw_events WHERE received_at < $1 ORDER BY id LIMIT $2)",
        &[&before, &limit],
    )
    .await?;
    Ok(Erased {
        conversations,
        events,
        raw_events,
        ..Erased::default()
    })
}
