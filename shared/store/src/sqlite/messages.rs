//! Messages, statuses and conversations: the writes the functions make and the
//! reads the API serves.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;
use zapfn_whatsapp::status::{advances, after_acceptance};
use zapfn_whatsapp::wa_id;
use zapfn_whatsapp::webhook::StatusUpdate;

use super::ingest::{insert_status_event, upsert_conversation};
use super::{new_id, now_ms, outbox};
use crate::model::*;
use crate::{Result, StoreError};

/// Moves a message to `status` if that advances it; unknown wamids get a placeholder.
pub(crate) fn apply_status(conn: &Connection, status: &StatusUpdate) -> Result<()> {
    let now_ms = now_ms();
    insert_status_event(conn, status, now_ms)?;
    let current = conn
        .prepare_cached("SELECT id, status FROM messages WHERE wa_message_id = ?1")?
        .query_row([&status.wamid], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .optional()?;
    if current.is_none() {
        if let Some(id) = sent_message_of(conn, status)? {
            // Meta accepted a send whose answer was never recorded (a crash or a timeout mid-send).
            tracing::warn!(message_id = %id, wamid = %status.wamid, "send linked through its status webhook");
            record_sent(conn, &id, Some(&status.wamid))?;
            return apply_status(conn, status);
        }
    }
    let applied = status.message_status();
    // A group member's failure is in the history, not on the message.
    let errors = applied.and(status.errors.as_ref()).map(Value::to_string);
    let now = now_ms / 1000;
    match current {
        Some((id, current)) => {
            if let Some(next) = applied.filter(|next| advances(&current, next)) {
                conn.prepare_cached(
                    "UPDATE messages SET status = ?2, errors = coalesce(?3, errors), updated_at = ?4 WHERE id = ?1",
                )?
                .execute(params![id, next, errors, now])?;
            }
        }
        None => {
            let conversation_id = match &status.recipient_id {
                Some(recipient) => Some(upsert_conversation(
                    conn,
                    &status.phone_number_id,
                    recipient,
                    None,
                    None,
                    now,
                )?),
                None => None,
            };
            let initial = applied
                .filter(|next| advances("queued", next))
                .unwrap_or("unknown");
            conn.prepare_cached(
                "INSERT INTO messages (id, wa_message_id, conversation_id, phone_number_id, direction, to_id,
                     status, errors, timestamp, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'outbound', ?5, ?6, ?7, ?8, ?9, ?9)",
            )?
            .execute(params![
                new_id("msg"),
                status.wamid,
                conversation_id,
                status.phone_number_id,
                status.recipient_id,
                initial,
                errors,
                if status.timestamp > 0 { status.timestamp } else { now },
                now,
            ])?;
        }
    }
    Ok(())
}

/// The outbound message without a wamid that a status's callback data names.
fn sent_message_of(conn: &Connection, status: &StatusUpdate) -> Result<Option<String>> {
    let Some(id) = status
        .callback_data
        .as_deref()
        .and_then(|data| data.strip_prefix("zapfn:"))
    else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT id FROM messages WHERE id = ?1 AND direction = 'outbound' AND wa_message_id IS NULL")?
        .query_row([id], |row| row.get(0))
        .optional()?)
}

/// Stores a queued outbound message and its dispatch task.
pub(crate) fn enqueue_send(conn: &Connection, send: &NewOutbound) -> Result<Enqueued> {
    if let Some(key) = &send.idempotency_key {
        let existing = conn
            .prepare_cached("SELECT id, status FROM messages WHERE idempotency_key = ?1")?
            .query_row([key], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .optional()?;
        if let Some((id, status)) = existing {
            return Ok(Enqueued {
                id,
                created: false,
                status,
            });
        }
    }
    let now_ms = now_ms();
    let now = now_ms / 1000;
    let recipient = send.to.as_deref().map(wa_id);
    let conversation_id = match &recipient {
        Some(wa_id) => Some(upsert_conversation(
            conn,
            &send.phone_number_id,
            wa_id,
            None,
            None,
            now,
        )?),
        None => None,
    };
    let id = new_id("msg");
    let context = send
        .context_message_id
        .as_ref()
        .map(|id| serde_json::json!({ "id": id }).to_string());
    conn.prepare_cached(
        "INSERT INTO messages (id, conversation_id, phone_number_id, direction, type, from_id, to_id, text,
             context, status, raw, idempotency_key, timestamp, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'outbound', ?4, ?3, ?5, ?6, ?7, 'queued', ?8, ?9, ?10, ?10, ?10)",
    )?
    .execute(params![
        id,
        conversation_id,
        send.phone_number_id,
        send.message_type,
        recipient,
        send.preview,
        context,
        send.body.to_string(),
        send.idempotency_key,
        now,
    ])?;
    add_history(conn, &id, "queued", now, None)?;
    let ordering_key = recipient.map(|wa_id| format!("{}:{wa_id}", send.phone_number_id));
    let task = serde_json::to_string(&DispatchTask {
        message_id: id.clone(),
    })?;
    outbox::publish(
        conn,
        topics::DISPATCH,
        ordering_key.as_deref(),
        &task,
        now_ms,
    )?;
    Ok(Enqueued {
        id,
        created: true,
        status: "queued".into(),
    })
}

fn add_history(
    conn: &Connection,
    subject: &str,
    status: &str,
    timestamp: i64,
    errors: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO status_events (subject, status, timestamp, errors, received_at) VALUES (?1, ?2, ?3, ?4, ?3)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![subject, status, timestamp, errors])?;
    Ok(())
}

pub(crate) fn outbound(conn: &Connection, id: &str) -> Result<Option<OutboundMessage>> {
    conn.prepare_cached(
        "SELECT id, phone_number_id, to_id, type, raw, wa_message_id, status, dispatch_started_at FROM messages
         WHERE id = ?1 AND direction = 'outbound'",
    )?
    .query_row([id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<String>>(2)?,
            row.get::<_, Option<String>>(3)?,
            row.get::<_, Option<String>>(4)?,
            row.get::<_, Option<String>>(5)?,
            row.get::<_, String>(6)?,
            row.get::<_, Option<i64>>(7)?,
        ))
    })
    .optional()?
    .map(|(id, phone_number_id, to, message_type, raw, wamid, status, dispatch_started_at)| {
        Ok(OutboundMessage {
            id,
            phone_number_id,
            to,
            message_type: message_type.unwrap_or_default(),
            body: serde_json::from_str(raw.as_deref().unwrap_or("null"))?,
            wamid,
            status,
            dispatch_started_at,
        })
    })
    .transpose()
}

/// Whether an earlier outbound message of message `id`'s conversation, accepted
/// at or after `since`, is still queued without a wamid.
pub(crate) fn earlier_send_pending(conn: &Connection, id: &str, since: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM messages AS m JOIN messages AS earlier
                 ON earlier.conversation_id = m.conversation_id AND earlier.timestamp >= ?2
             WHERE m.id = ?1 AND earlier.id < m.id AND earlier.direction = 'outbound'
               AND earlier.status = 'queued' AND earlier.wa_message_id IS NULL
             LIMIT 1",
        )?
        .query_row(params![id, since], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Records Meta's acceptance; a placeholder made by early statuses is merged in.
pub(crate) fn record_sent(conn: &Connection, id: &str, wamid: Option<&str>) -> Result<()> {
    let now = now_ms() / 1000;
    let current: Option<(String, bool)> = conn
        .prepare_cached("SELECT status, wa_message_id IS NOT NULL FROM messages WHERE id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((current, had_wamid)) = current else {
        return Err(StoreError::Invalid(format!("no outbound message {id}")));
    };
    let mut status = after_acceptance(&current, had_wamid).to_owned();
    let mut errors: Option<String> = None;
    if let Some(wamid) = wamid {
        let placeholder = conn
            .prepare_cached(
                "SELECT id, status, errors FROM messages WHERE wa_message_id = ?1 AND id <> ?2",
            )?
            .query_row(params![wamid, id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?;
        if let Some((placeholder_id, placeholder_status, placeholder_errors)) = placeholder {
            conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?
                .execute([&placeholder_id])?;
            if advances(&status, &placeholder_status) {
                status = placeholder_status;
                errors = placeholder_errors;
            }
        }
    }
    add_history(conn, id, "accepted", now, None)?;
    conn.prepare_cached(
        "UPDATE messages SET wa_message_id = coalesce(?2, wa_message_id), status = ?3,
             errors = coalesce(?4, errors), updated_at = ?5, dispatch_started_at = NULL
         WHERE id = ?1",
    )?
    .execute(params![id, wamid, status, errors, now])?;
    Ok(())
}

pub(crate) fn mark_dispatching(conn: &Connection, id: &str) -> Result<()> {
    conn.prepare_cached("UPDATE messages SET dispatch_started_at = ?2 WHERE id = ?1")?
        .execute(params![id, now_ms() / 1000])?;
    Ok(())
}

/// Records a failed send attempt; a terminal one marks the message failed.
pub(crate) fn record_send_error(
    conn: &Connection,
    id: &str,
    error: &Value,
    terminal: bool,
    maybe_sent: bool,
) -> Result<()> {
    let now = now_ms() / 1000;
    let errors = Value::Array(vec![error.clone()]).to_string();
    conn.prepare_cached(
        "UPDATE messages SET errors = ?2, status = CASE WHEN ?3 THEN 'failed' ELSE status END, updated_at = ?4,
             dispatch_started_at = CASE WHEN ?5 THEN dispatch_started_at ELSE NULL END
         WHERE id = ?1",
    )?
    .execute(params![id, errors, terminal, now, maybe_sent])?;
    if terminal {
        add_history(conn, id, "failed", now, Some(&errors))?;
    }
    Ok(())
}

const MESSAGE_COLUMNS: &str =
    "id, wa_message_id, phone_number_id, conversation_id, direction, type, from_id, to_id,
     text, media, context, status, errors, raw, timestamp";

fn json_column(row: &Row, index: usize) -> rusqlite::Result<Option<Value>> {
    Ok(row
        .get::<_, Option<String>>(index)?
        .and_then(|text| serde_json::from_str(&text).ok()))
}

fn message_row(row: &Row) -> rusqlite::Result<MessageView> {
    Ok(MessageView {
        id: row.get(0)?,
        wamid: row.get(1)?,
        phone_number_id: row.get(2)?,
        conversation_id: row.get(3)?,
        direction: row.get(4)?,
        message_type: row.get(5)?,
        from: row.get(6)?,
        to: row.get(7)?,
        text: row.get(8)?,
        media: json_column(row, 9)?,
        context: json_column(row, 10)?,
        status: row.get(11)?,
        errors: json_column(row, 12)?,
        raw: json_column(row, 13)?,
        timestamp: row.get(14)?,
        status_history: Vec::new(),
    })
}

/// A message by zapfn id or wamid, with its history.
pub(crate) fn message(conn: &Connection, key: &str) -> Result<Option<MessageView>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1
         UNION ALL SELECT {MESSAGE_COLUMNS} FROM messages WHERE wa_message_id = ?1 LIMIT 1"
    );
    let Some(mut view) = conn
        .prepare_cached(&sql)?
        .query_row([key], message_row)
        .optional()?
    else {
        return Ok(None);
    };
    view.status_history = history(conn, &view.id, view.wamid.as_deref())?;
    Ok(Some(view))
}

fn history(conn: &Connection, id: &str, wamid: Option<&str>) -> Result<Vec<StatusEntry>> {
    let mut entries = conn
        .prepare_cached("SELECT status, timestamp, errors, participant FROM status_events WHERE subject = ?1 OR subject = ?2")?
        .query_map(params![id, wamid], |row| {
            Ok(StatusEntry {
                status: row.get(0)?,
                timestamp: row.get(1)?,
                errors: json_column(row, 2)?,
                participant: Some(row.get::<_, String>(3)?).filter(|p| !p.is_empty()),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    entries.sort_by_key(|entry| {
        (
            entry.timestamp,
            zapfn_whatsapp::status::rank(&entry.status).unwrap_or(i64::MAX),
        )
    });
    Ok(entries)
}

fn conversation_row(row: &Row) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: row.get(0)?,
        phone_number_id: row.get(1)?,
        wa_id: row.get(2)?,
        contact_name: row.get(3)?,
        last_inbound_at: row.get(4)?,
        last_message_at: row.get(5)?,
    })
}

const CONVERSATION_COLUMNS: &str =
    "id, phone_number_id, wa_id, contact_name, last_inbound_at, last_message_at";

/// Splits a `{timestamp}:{id}` cursor.
fn parse_cursor(cursor: Option<&str>) -> Result<(i64, String)> {
    match cursor {
        None => Ok((i64::MAX, String::new())),
        Some(cursor) => cursor
            .split_once(':')
            .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
            .ok_or_else(|| {
                StoreError::Invalid(format!("cursor {cursor:?} is not one this API gave out"))
            }),
    }
}

pub(crate) fn conversations(
    conn: &Connection,
    query: &ConversationQuery,
) -> Result<Page<Conversation>> {
    let (before_at, before_id) = parse_cursor(query.page.cursor.as_deref())?;
    let limit = query.page.limit.clamp(1, 500);
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations
         WHERE (?1 IS NULL OR phone_number_id = ?1) AND (?2 IS NULL OR wa_id = ?2)
           AND (last_message_at < ?3 OR (last_message_at = ?3 AND (?4 = '' OR id < ?4)))
         ORDER BY last_message_at DESC, id DESC LIMIT ?5"
    );
    let items = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                query.phone_number_id,
                query.wa_id,
                before_at,
                before_id,
                limit as i64 + 1
            ],
            conversation_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page(items, limit, |c| {
        format!("{}:{}", c.last_message_at, c.id)
    }))
}

pub(crate) fn conversation(conn: &Connection, id: &str) -> Result<Option<Conversation>> {
    let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], conversation_row)
        .optional()?)
}

pub(crate) fn conversation_messages(
    conn: &Connection,
    conversation_id: &str,
    request: &PageRequest,
) -> Result<Page<MessageView>> {
    let (before_at, before_id) = parse_cursor(request.cursor.as_deref())?;
    let limit = request.limit.clamp(1, 500);
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE conversation_id = ?1 AND (timestamp < ?2 OR (timestamp = ?2 AND (?3 = '' OR id < ?3)))
         ORDER BY timestamp DESC, id DESC LIMIT ?4"
    );
    let mut items = conn
        .prepare_cached(&sql)?
        .query_map(
            params![conversation_id, before_at, before_id, limit as i64 + 1],
            message_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for item in items.iter_mut().take(limit) {
        item.status_history = history(conn, &item.id, item.wamid.as_deref())?;
    }
    Ok(page(items, limit, |m| format!("{}:{}", m.timestamp, m.id)))
}

/// Trims the extra row fetched to learn whether another page exists.
fn page<T>(mut items: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor_of)
    } else {
        None
    };
    Page { items, next_cursor }
}

pub(crate) fn last_inbound_at(
    conn: &Connection,
    phone_number_id: &str,
    wa_id: &str,
) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT last_inbound_at FROM conversations WHERE phone_number_id = ?1 AND wa_id = ?2",
        )?
        .query_row(
            params![phone_number_id, zapfn_whatsapp::wa_id(wa_id)],
            |row| row.get::<_, Option<i64>>(0),
        )
        .optional()?
        .flatten())
}
