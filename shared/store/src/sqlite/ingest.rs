//! Storing a webhook notification in one savepoint of the group transaction.

use rusqlite::{params, Connection, OptionalExtension};
use zapfn_whatsapp::webhook::{InboundMessage, Notification, RawEvent, StatusUpdate};

use super::{new_id, now_ms, outbox};
use crate::model::{topics, IngestReport, MessageEvent};
use crate::Result;

pub(crate) fn ingest(conn: &Connection, notification: &Notification) -> Result<IngestReport> {
    let mut report = IngestReport::default();
    let now_ms = now_ms();
    for message in &notification.messages {
        if insert_message(conn, message, now_ms)? {
            report.new_messages += 1;
        } else {
            report.duplicate_messages += 1;
        }
    }
    for status in &notification.statuses {
        if insert_status_event(conn, status, now_ms)? {
            let payload = serde_json::to_string(status)?;
            outbox::publish(conn, topics::STATUSES, None, &payload, now_ms)?;
            report.new_statuses += 1;
        } else {
            report.duplicate_statuses += 1;
        }
    }
    for event in &notification.events {
        insert_raw_event(conn, event, now_ms)?;
        report.raw_events += 1;
    }
    Ok(report)
}

/// Stores a new inbound message and its `messages` event; false if the wamid is known.
fn insert_message(conn: &Connection, message: &InboundMessage, now_ms: i64) -> Result<bool> {
    let now = now_ms / 1000;
    let sent_at = if message.timestamp > 0 {
        message.timestamp
    } else {
        now
    };
    // Idempotent for a duplicate, so it needs no look-up first.
    let conversation_id = upsert_conversation(
        conn,
        &message.phone_number_id,
        message.conversation_wa_id(),
        message.conversation_name(),
        Some(sent_at),
        now,
    )?;
    let id = new_id("msg");
    let inserted = conn
        .prepare_cached(
            "INSERT INTO messages (id, wa_message_id, conversation_id, phone_number_id, direction, type,
                 from_id, to_id, text, media, context, status, raw, timestamp, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'inbound', ?5, ?6, ?4, ?7, ?8, ?9, 'received', ?10, ?11, ?12, ?12)
             ON CONFLICT (wa_message_id) DO NOTHING",
        )?
        .execute(params![
            id,
            message.wamid,
            conversation_id,
            message.phone_number_id,
            message.message_type,
            message.from,
            message.text,
            message.media.as_ref().map(|m| m.to_string()),
            message.context.as_ref().map(|c| c.to_string()),
            message.raw,
            sent_at,
            now,
        ])?;
    if inserted == 0 {
        return Ok(false);
    }
    let event = MessageEvent {
        message_id: id,
        wamid: message.wamid.clone(),
        phone_number_id: message.phone_number_id.clone(),
        message_type: message.message_type.clone(),
        from: message.from.clone(),
        text: message.text.clone(),
        reply_id: message.reply_id.clone(),
        group_id: message.group_id.clone(),
    };
    let ordering_key = format!(
        "{}:{}",
        message.phone_number_id,
        message.conversation_wa_id()
    );
    outbox::publish(
        conn,
        topics::MESSAGES,
        Some(&ordering_key),
        &serde_json::to_string(&event)?,
        now_ms,
    )?;
    Ok(true)
}

/// Times within this many seconds of the stored ones do not rewrite a conversation:
/// every rewrite dirties random pages (the row and its recency index), so a busy
/// chat's conversation is touched at most once a minute. The 24-hour window may
/// then close up to a minute early (the safe side); listing order is to the minute.
const TOUCH_SECONDS: i64 = 60;

/// Creates or touches the conversation of (`phone_number_id`, `wa_id`); returns its id.
/// `inbound_at` is set when the customer wrote (it moves the 24-hour window).
/// Most calls find a conversation that needs no rewrite: one look-up answers them.
pub(crate) fn upsert_conversation(
    conn: &Connection,
    phone_number_id: &str,
    wa_id: &str,
    contact_name: Option<&str>,
    inbound_at: Option<i64>,
    now: i64,
) -> Result<String> {
    let message_at = inbound_at.unwrap_or(now);
    let stored = conn
        .prepare_cached(
            "SELECT id, contact_name, last_inbound_at, last_message_at FROM conversations
             WHERE phone_number_id = ?1 AND wa_id = ?2",
        )?
        .query_row(params![phone_number_id, wa_id], |row| {
            Ok(StoredConversation {
                id: row.get(0)?,
                contact_name: row.get(1)?,
                last_inbound_at: row.get(2)?,
                last_message_at: row.get(3)?,
            })
        })
        .optional()?;
    if let Some(stored) = &stored {
        if !stored.needs_touch(contact_name, inbound_at, message_at) {
            return Ok(stored.id.clone());
        }
    }
    let touched: Option<String> = conn
        .prepare_cached(
            "INSERT INTO conversations (id, phone_number_id, wa_id, contact_name, last_inbound_at,
                 last_message_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET
                 contact_name = coalesce(excluded.contact_name, contact_name),
                 last_inbound_at = max(coalesce(last_inbound_at, excluded.last_inbound_at),
                                       coalesce(excluded.last_inbound_at, last_inbound_at)),
                 last_message_at = max(last_message_at, excluded.last_message_at),
                 updated_at = excluded.updated_at
             WHERE excluded.contact_name IS NOT NULL AND excluded.contact_name IS NOT contact_name
                OR excluded.last_inbound_at >= coalesce(last_inbound_at, 0) + ?8
                OR excluded.last_message_at >= last_message_at + ?8
             RETURNING id",
        )?
        .query_row(
            params![
                new_id("conv"),
                phone_number_id,
                wa_id,
                contact_name,
                inbound_at,
                message_at,
                now,
                TOUCH_SECONDS
            ],
            |row| row.get(0),
        )
        .optional()?;
    match (touched, stored) {
        (Some(id), _) | (None, Some(StoredConversation { id, .. })) => Ok(id),
        (None, None) => Err(crate::StoreError::Invalid(format!(
            "conversation of {wa_id} neither found nor created"
        ))),
    }
}

/// What [`upsert_conversation`] reads to decide whether a conversation needs a rewrite.
struct StoredConversation {
    id: String,
    contact_name: Option<String>,
    last_inbound_at: Option<i64>,
    last_message_at: i64,
}

impl StoredConversation {
    /// The upsert's `WHERE`: a new name, or times at least [`TOUCH_SECONDS`] later.
    fn needs_touch(
        &self,
        contact_name: Option<&str>,
        inbound_at: Option<i64>,
        message_at: i64,
    ) -> bool {
        contact_name.is_some_and(|name| self.contact_name.as_deref() != Some(name))
            || inbound_at.is_some_and(|at| at >= self.last_inbound_at.unwrap_or(0) + TOUCH_SECONDS)
            || message_at >= self.last_message_at + TOUCH_SECONDS
    }
}

/// Records a status event once per (wamid, status, group member); true if it is new.
pub(crate) fn insert_status_event(
    conn: &Connection,
    status: &StatusUpdate,
    now_ms: i64,
) -> Result<bool> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO status_events (subject, status, participant, timestamp, errors, raw, received_at)
             VALUES (?1, ?2, ?7, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            status.wamid,
            status.status,
            status.timestamp,
            status.errors.as_ref().map(|e| e.to_string()),
            status.raw,
            now_ms / 1000,
            status.participant.as_deref().unwrap_or_default(),
        ])?;
    Ok(inserted == 1)
}

pub(crate) fn insert_raw_event(conn: &Connection, event: &RawEvent, now_ms: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO raw_events (phone_number_id, kind, raw, received_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        event.phone_number_id,
        event.kind,
        event.raw,
        now_ms / 1000
    ])?;
    Ok(())
}
