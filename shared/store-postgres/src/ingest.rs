//! Storing a webhook notification in one transaction. Duplicates are found by
//! the unique keys (`ON CONFLICT DO NOTHING`), so concurrent deliveries of one
//! webhook store and publish each item once.

use deadpool_postgres::GenericClient;
use zapfn_store::{topics, IngestReport, MessageEvent};
use zapfn_whatsapp::webhook::{InboundMessage, Notification, RawEvent, StatusUpdate};

use crate::db::new_id;
use crate::db::{execute, query_opt, DbResult};
use crate::outbox;

pub(crate) async fn ingest(
    db: &impl GenericClient,
    notification: &Notification,
    now_ms: i64,
) -> DbResult<IngestReport> {
    let mut report = IngestReport::default();
    for message in &notification.messages {
        if insert_message(db, message, now_ms).await? {
            report.new_messages += 1;
        } else {
            report.duplicate_messages += 1;
        }
    }
    for status in &notification.statuses {
        if insert_status_event(db, status, now_ms).await? {
            let payload = serde_json::to_string(status)?;
            outbox::publish(db, topics::STATUSES, None, &payload, now_ms).await?;
            report.new_statuses += 1;
        } else {
            report.duplicate_statuses += 1;
        }
    }
    for event in &notification.events {
        insert_raw_event(db, event, now_ms).await?;
        report.raw_events += 1;
    }
    Ok(report)
}

/// Stores a new inbound message and its `messages` event; false if the wamid is known.
async fn insert_message(
    db: &impl GenericClient,
    message: &InboundMessage,
    now_ms: i64,
) -> DbResult<bool> {
    let now = now_ms / 1000;
    let sent_at = if message.timestamp > 0 {
        message.timestamp
    } else {
        now
    };
    let conversation_id = upsert_conversation(
        db,
        &message.phone_number_id,
        message.conversation_wa_id(),
        message.conversation_name(),
        Some(sent_at),
        now,
    )
    .await?;
    let id = new_id("msg");
    let media = message.media.as_ref().map(|m| m.to_string());
    let context = message.context.as_ref().map(|c| c.to_string());
    let inserted = query_opt(
        db,
        "INSERT INTO messages (id, wa_message_id, conversation_id, phone_number_id, direction, type,
             from_id, to_id, text, media, context, status, raw, timestamp, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'inbound', $5, $6, $4, $7, $8::text::json, $9::text::json, 'received',
                 $10, $11, $12, $12)
         ON CONFLICT (wa_message_id) DO NOTHING
         RETURNING id",
        &[
            &id,
            &message.wamid,
            &conversation_id,
            &message.phone_number_id,
            &message.message_type,
            &message.from,
            &message.text.as_deref().map(str::as_bytes),
            &media,
            &context,
            &message.raw,
            &sent_at,
            &now,
        ],
    )
    .await?;
    if inserted.is_none() {
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
    let payload = serde_json::to_string(&event)?;
    outbox::publish(db, topics::MESSAGES, Some(&ordering_key), &payload, now_ms).await?;
    Ok(true)
}

/// Times within this many seconds of the stored ones do not rewrite a conversation
/// (as in the SQLite store): a busy chat's row is touched at most once a minute.
/// The 24-hour window may then close up to a minute early (the safe side);
/// listing order is to the minute.
const TOUCH_SECONDS: i64 = 60;

/// Creates or touches the conversation of (`phone_number_id`, `wa_id`); returns its id.
/// `inbound_at` is set when the customer wrote (it moves the 24-hour window).
pub(crate) async fn upsert_conversation(
    db: &impl GenericClient,
    phone_number_id: &str,
    wa_id: &str,
    contact_name: Option<&str>,
    inbound_at: Option<i64>,
    now: i64,
) -> DbResult<String> {
    let message_at = inbound_at.unwrap_or(now);
    let contact_name = contact_name.map(str::as_bytes);
    // GREATEST ignores NULLs. When the WHERE is false the row is still locked
    // but not rewritten, and nothing is returned.
    let touched = query_opt(
        db,
        "INSERT INTO conversations AS c (id, phone_number_id, wa_id, contact_name, last_inbound_at,
             last_message_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (phone_number_id, wa_id) DO UPDATE SET
             contact_name = coalesce(excluded.contact_name, c.contact_name),
             last_inbound_at = greatest(c.last_inbound_at, excluded.last_inbound_at),
             last_message_at = greatest(c.last_message_at, excluded.last_message_at),
             updated_at = excluded.updated_at
         WHERE excluded.contact_name IS NOT NULL AND excluded.contact_name IS DISTINCT FROM c.contact_name
            OR excluded.last_inbound_at >= coalesce(c.last_inbound_at, 0) + $8
            OR excluded.last_message_at >= c.last_message_at + $8
         RETURNING id",
        &[
            &new_id("conv"),
            &phone_number_id,
            &wa_id,
            &contact_name,
            &inbound_at,
            &message_at,
            &now,
            &TOUCH_SECONDS,
        ],
    )
    .await?;
    if let Some(row) = touched {
        return Ok(row.get(0));
    }
    let existing = query_opt(
        db,
        "SELECT id FROM conversations WHERE phone_number_id = $1 AND wa_id = $2",
        &[&phone_number_id, &wa_id],
    )
    .await?;
    existing
        .map(|row| row.get(0))
        .ok_or_else(|| zapfn_store::StoreError::Unavailable("conversation vanished".into()).into())
}

/// Records a status event once per (wamid, status); true if it is new.
pub(crate) async fn insert_status_event(
    db: &impl GenericClient,
    status: &StatusUpdate,
    now_ms: i64,
) -> DbResult<bool> {
    let errors = status.errors.as_ref().map(|e| e.to_string());
    let inserted = execute(
        db,
        "INSERT INTO status_events (subject, status, participant, timestamp, errors, raw, received_at)
         VALUES ($1, $2, $7, $3, $4::text::json, $5, $6) ON CONFLICT DO NOTHING",
        &[
            &status.wamid,
            &status.status,
            &status.timestamp,
            &errors,
            &status.raw,
            &(now_ms / 1000),
            &status.participant.as_deref().unwrap_or_default(),
        ],
    )
    .await?;
    Ok(inserted == 1)
}

async fn insert_raw_event(db: &impl GenericClient, event: &RawEvent, now_ms: i64) -> DbResult<()> {
    execute(
        db,
        "INSERT INTO raw_events (phone_number_id, kind, raw, received_at) VALUES ($1, $2, $3, $4)",
        &[
            &event.phone_number_id,
            &event.kind,
            &event.raw,
            &(now_ms / 1000),
        ],
    )
    .await?;
    Ok(())
}
