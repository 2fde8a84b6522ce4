//! The writes the functions make to messages: statuses (monotonic, under a row
//! lock), queued sends and what the dispatcher records.

use deadpool_postgres::GenericClient;
use serde_json::Value;
use zapfn_store::{topics, DispatchTask, Enqueued, NewOutbound, OutboundMessage, StoreError};
use zapfn_whatsapp::status::{advances, after_acceptance};
use zapfn_whatsapp::wa_id;
use zapfn_whatsapp::webhook::StatusUpdate;

use crate::db::new_id;
use crate::db::{execute, json, query_opt, DbResult};
use crate::ingest::{insert_status_event, upsert_conversation};
use crate::outbox;

/// Moves a message to `status` if that advances it; unknown wamids are linked
/// through callback data or get a placeholder.
pub(crate) async fn apply_status(
    db: &impl GenericClient,
    status: &StatusUpdate,
    now_ms: i64,
) -> DbResult<()> {
    insert_status_event(db, status, now_ms).await?;
    let applied = status.message_status();
    // A group member's failure is in the history, not on the message.
    let errors = applied.and(status.errors.as_ref()).map(Value::to_string);
    let now = now_ms / 1000;
    let mut linked = false;
    loop {
        // The row lock orders concurrent statuses of one message: none downgrades another.
        let current = query_opt(
            db,
            "SELECT id, status FROM messages WHERE wa_message_id = $1 FOR UPDATE",
            &[&status.wamid],
        )
        .await?;
        if let Some(row) = current {
            let (id, current): (String, String) = (row.get(0), row.get(1));
            if let Some(next) = applied.filter(|next| advances(&current, next)) {
                execute(
                    db,
                    "UPDATE messages SET status = $2, errors = coalesce($3::text::json, errors), updated_at = $4
                     WHERE id = $1",
                    &[&id, &next, &errors, &now],
                )
                .await?;
            }
            return Ok(());
        }
        if linked {
            break;
        }
        let Some(id) = sent_message_of(db, status).await? else {
            break;
        };
        // Meta accepted a send whose answer was never recorded (a crash or a timeout mid-send).
        tracing::warn!(message_id = %id, wamid = %status.wamid, "send linked through its status webhook");
        record_sent(db, &id, Some(&status.wamid), now_ms).await?;
        linked = true;
    }
    let conversation_id = match &status.recipient_id {
        Some(recipient) => Some(
            upsert_conversation(db, &status.phone_number_id, recipient, None, None, now).await?,
        ),
        None => None,
    };
    let initial = applied
        .filter(|next| advances("queued", next))
        .unwrap_or("unknown");
    let timestamp = if status.timestamp > 0 {
        status.timestamp
    } else {
        now
    };
    // A concurrent status of the same unknown wamid may insert its placeholder
    // first: the unique wamid then fails this transaction, and its rerun
    // finds and advances that placeholder.
    execute(
        db,
        "INSERT INTO messages (id, wa_message_id, conversation_id, phone_number_id, direction, to_id,
             status, errors, timestamp, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'outbound', $5, $6, $7::text::json, $8, $9, $9)",
        &[
            &new_id("msg"),
            &status.wamid,
            &conversation_id,
            &status.phone_number_id,
            &status.recipient_id,
            &initial,
            &errors,
            &timestamp,
            &now,
        ],
    )
    .await?;
    Ok(())
}

/// The outbound message without a wamid that a status's callback data names.
async fn sent_message_of(
    db: &impl GenericClient,
    status: &StatusUpdate,
) -> DbResult<Option<String>> {
    let Some(id) = status
        .callback_data
        .as_deref()
        .and_then(|data| data.strip_prefix("zapfn:"))
    else {
        return Ok(None);
    };
    let row = query_opt(
        db,
        "SELECT id FROM messages WHERE id = $1 AND direction = 'outbound' AND wa_message_id IS NULL
         FOR UPDATE",
        &[&id],
    )
    .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Stores a queued outbound message and its dispatch task; a known idempotency
/// key returns the first message. (Two concurrent requests with one new key:
/// the second fails the unique index, and its rerun returns the first.)
pub(crate) async fn enqueue_send(
    db: &impl GenericClient,
    send: &NewOutbound,
    now_ms: i64,
) -> DbResult<Enqueued> {
    if let Some(key) = &send.idempotency_key {
        let existing = query_opt(
            db,
            "SELECT id, status FROM messages WHERE idempotency_key = $1",
            &[key],
        )
        .await?;
        if let Some(row) = existing {
            return Ok(Enqueued {
                id: row.get(0),
                created: false,
                status: row.get(1),
            });
        }
    }
    let now = now_ms / 1000;
    let recipient = send.to.as_deref().map(wa_id);
    let conversation_id = match &recipient {
        Some(wa_id) => {
            Some(upsert_conversation(db, &send.phone_number_id, wa_id, None, None, now).await?)
        }
        None => None,
    };
    let id = new_id("msg");
    let context = send
        .context_message_id
        .as_ref()
        .map(|id| serde_json::json!({ "id": id }).to_string());
    execute(
        db,
        "INSERT INTO messages (id, conversation_id, phone_number_id, direction, type, from_id, to_id, text,
             context, status, raw, idempotency_key, timestamp, created_at, updated_at)
         VALUES ($1, $2, $3, 'outbound', $4, $3, $5, $6, $7::text::json, 'queued', $8, $9, $10, $10, $10)",
        &[
            &id,
            &conversation_id,
            &send.phone_number_id,
            &send.message_type,
            &recipient,
            &send.preview.as_deref().map(str::as_bytes),
            &context,
            &send.body.to_string(),
            &send.idempotency_key,
            &now,
        ],
    )
    .await?;
    add_history(db, &id, "queued", now, None).await?;
    let ordering_key = recipient.map(|wa_id| format!("{}:{wa_id}", send.phone_number_id));
    let task = serde_json::to_string(&DispatchTask {
        message_id: id.clone(),
    })?;
    outbox::publish(db, topics::DISPATCH, ordering_key.as_deref(), &task, now_ms).await?;
    Ok(Enqueued {
        id,
        created: true,
        status: "queued".into(),
    })
}

/// Adds an entry zapfn made (not Meta) to a message's status history.
async fn add_history(
    db: &impl GenericClient,
    subject: &str,
    status: &str,
    timestamp: i64,
    errors: Option<&str>,
) -> DbResult<()> {
    execute(
        db,
        "INSERT INTO status_events (subject, status, timestamp, errors, received_at)
         VALUES ($1, $2, $3, $4::text::json, $3) ON CONFLICT DO NOTHING",
        &[&subject, &status, &timestamp, &errors],
    )
    .await?;
    Ok(())
}

pub(crate) async fn outbound(
    db: &impl GenericClient,
    id: &str,
) -> DbResult<Option<OutboundMessage>> {
    let row = query_opt(
        db,
        "SELECT id, phone_number_id, to_id, type, raw, wa_message_id, status, dispatch_started_at
         FROM messages WHERE id = $1 AND direction = 'outbound'",
        &[&id],
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let raw: Option<String> = row.get(4);
    Ok(Some(OutboundMessage {
        id: row.get(0),
        phone_number_id: row.get(1),
        to: row.get(2),
        message_type: row.get::<_, Option<String>>(3).unwrap_or_default(),
        body: json(raw)?.unwrap_or(Value::Null),
        wamid: row.get(5),
        status: row.get(6),
        dispatch_started_at: row.get(7),
    }))
}

/// Whether an earlier outbound message of message `id`'s conversation, accepted
/// at or after `since`, is still queued without a wamid.
pub(crate) async fn earlier_send_pending(
    db: &impl GenericClient,
    id: &str,
    since: i64,
) -> DbResult<bool> {
    let row = query_opt(
        db,
        "SELECT 1 FROM messages AS m JOIN messages AS earlier
             ON earlier.conversation_id = m.conversation_id AND earlier.timestamp >= $2
         WHERE m.id = $1 AND earlier.id < m.id AND earlier.direction = 'outbound'
           AND earlier.status = 'queued' AND earlier.wa_message_id IS NULL
         LIMIT 1",
        &[&id, &since],
    )
    .await?;
    Ok(row.is_some())
}

/// Records Meta's acceptance; a placeholder made by early statuses is merged in.
pub(crate) async fn record_sent(
    db: &impl GenericClient,
    id: &str,
    wamid: Option<&str>,
    now_ms: i64,
) -> DbResult<()> {
    let now = now_ms / 1000;
    let current = query_opt(
        db,
        "SELECT status, wa_message_id IS NOT NULL FROM messages WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?;
    let Some((current, had_wamid)) = current.map(|row| (row.get::<_, String>(0), row.get(1)))
    else {
        return Err(StoreError::Invalid(format!("no outbound message {id}")).into());
    };
    let mut status = after_acceptance(&current, had_wamid).to_owned();
    let mut errors: Option<String> = None;
    if let Some(wamid) = wamid {
        let placeholder = query_opt(
            db,
            "DELETE FROM messages WHERE wa_message_id = $1 AND id <> $2
             RETURNING status, errors::text",
            &[&wamid, &id],
        )
        .await?;
        if let Some(row) = placeholder {
            let placeholder_status: String = row.get(0);
            if advances(&status, &placeholder_status) {
                status = placeholder_status;
                errors = row.get(1);
            }
        }
    }
    add_history(db, id, "accepted", now, None).await?;
    execute(
        db,
        "UPDATE messages SET wa_message_id = coalesce($2, wa_message_id), status = $3,
             errors = coalesce($4::text::json, errors), updated_at = $5, dispatch_started_at = NULL
         WHERE id = $1",
        &[&id, &wamid, &status, &errors, &now],
    )
    .await?;
    Ok(())
}

pub(crate) async fn mark_dispatching(
    db: &impl GenericClient,
    id: &str,
    now_ms: i64,
) -> DbResult<()> {
    execute(
        db,
        "UPDATE messages SET dispatch_started_at = $2 WHERE id = $1",
        &[&id, &(now_ms / 1000)],
    )
    .await?;
    Ok(())
}

/// Records a failed send attempt; a terminal one marks the message failed.
pub(crate) async fn record_send_error(
    db: &impl GenericClient,
    id: &str,
    error: &Value,
    terminal: bool,
    maybe_sent: bool,
    now_ms: i64,
) -> DbResult<()> {
    let now = now_ms / 1000;
    let errors = Value::Array(vec![error.clone()]).to_string();
    execute(
        db,
        "UPDATE messages SET errors = $2::text::json, status = CASE WHEN $3 THEN 'failed' ELSE status END,
             updated_at = $4, dispatch_started_at = CASE WHEN $5 THEN dispatch_started_at ELSE NULL END
         WHERE id = $1",
        &[&id, &errors, &terminal, &now, &maybe_sent],
    )
    .await?;
    if terminal {
        add_history(db, id, "failed", now, Some(&errors)).await?;
    }
    Ok(())
}
