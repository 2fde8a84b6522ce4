//! The writes of the send path and of status updates, each in one transaction.

use serde_json::Value;
use zapfn_store::{
    topics, DispatchTask, Enqueued, NewOutbound, OutboundMessage, Result, StoreError,
};
use zapfn_whatsapp::status::{advances, after_acceptance};
use zapfn_whatsapp::wa_id;
use zapfn_whatsapp::webhook::StatusUpdate;

use crate::ingest::{insert_status_event, upsert_conversation};
use crate::layout::{DocRef, Layout};
use crate::outbox::publish;
use crate::records::{LookupDoc, MessageDoc, StatusEventDoc};
use crate::tx::Tx;

/// The message a wamid names, if the store has it.
async fn by_wamid(
    tx: &mut Tx,
    layout: &Layout,
    wamid: &str,
) -> Result<Option<(DocRef, MessageDoc)>> {
    let Some(lookup) = tx.get::<LookupDoc>(&layout.wamid(wamid)).await? else {
        return Ok(None);
    };
    by_id(tx, layout, &lookup.message_id).await
}

/// A message by zapfn id, if the store has it.
async fn by_id(tx: &mut Tx, layout: &Layout, id: &str) -> Result<Option<(DocRef, MessageDoc)>> {
    let Some(doc) = layout.message(id) else {
        return Ok(None);
    };
    Ok(tx
        .get::<MessageDoc>(&doc)
        .await?
        .map(|message| (doc, message)))
}

/// Moves a message to the status if that advances it; unknown wamids are linked
/// through the callback data or get a placeholder.
pub(crate) async fn apply_status(
    tx: &mut Tx,
    layout: &Layout,
    status: &StatusUpdate,
) -> Result<()> {
    insert_status_event(tx, layout, status).await?;
    let mut current = by_wamid(tx, layout, &status.wamid).await?;
    if current.is_none() {
        if let Some(id) = sent_message_of(tx, layout, status).await? {
            // Meta accepted a send whose answer was never recorded (a crash or a timeout mid-send).
            tracing::warn!(message_id = %id, wamid = %status.wamid, "send linked through its status webhook");
            record_sent(tx, layout, &id, Some(&status.wamid)).await?;
            current = by_id(tx, layout, &id).await?;
        }
    }
    let now = tx.now();
    let applied = status.message_status();
    // A group member's failure is in the history, not on the message.
    let errors = applied.and(status.errors.as_ref()).map(Value::to_string);
    if let Some((doc, mut message)) = current {
        if let Some(next) = applied.filter(|next| advances(&message.status, next)) {
            message.status = next.to_owned();
            message.errors = errors.or(message.errors);
            message.updated_at = now;
            tx.set(&doc, &message)?;
        }
        return Ok(());
    }
    let conversation_id = match &status.recipient_id {
        Some(recipient) => Some(
            upsert_conversation(tx, layout, &status.phone_number_id, recipient, None, None).await?,
        ),
        None => None,
    };
    let initial = applied
        .filter(|next| advances("queued", next))
        .unwrap_or("unknown")
        .to_owned();
    let (id, doc) = layout.new_message(&status.phone_number_id);
    tx.set(
        &doc,
        &MessageDoc {
            id: id.clone(),
            wamid: Some(status.wamid.clone()),
            conversation_id,
            phone_number_id: status.phone_number_id.clone(),
            direction: "outbound".into(),
            message_type: None,
            from: None,
            to: status.recipient_id.clone(),
            text: None,
            media: None,
            context: None,
            status: initial,
            errors,
            raw: None,
            idempotency_key: None,
            dispatch_started_at: None,
            accepted_at_ms: None,
            timestamp: if status.timestamp > 0 {
                status.timestamp
            } else {
                now
            },
            created_at: now,
            updated_at: now,
        },
    )?;
    tx.set(
        &layout.wamid(&status.wamid),
        &LookupDoc {
            key: status.wamid.clone(),
            message_id: id,
        },
    )
}

/// The outbound message without a wamid that a status's callback data names.
async fn sent_message_of(
    tx: &mut Tx,
    layout: &Layout,
    status: &StatusUpdate,
) -> Result<Option<String>> {
    let Some(id) = status
        .callback_data
        .as_deref()
        .and_then(|data| data.strip_prefix("zapfn:"))
    else {
        return Ok(None);
    };
    Ok(by_id(tx, layout, id)
        .await?
        .filter(|(_, message)| message.direction == "outbound" && message.wamid.is_none())
        .map(|(_, message)| message.id))
}

/// Stores a queued outbound message and its dispatch task; a known idempotency
/// key returns the message it made.
pub(crate) async fn enqueue_send(
    tx: &mut Tx,
    layout: &Layout,
    send: &NewOutbound,
) -> Result<Enqueued> {
    if let Some(key) = &send.idempotency_key {
        if let Some(lookup) = tx.get::<LookupDoc>(&layout.idempotency_key(key)).await? {
            if let Some((_, message)) = by_id(tx, layout, &lookup.message_id).await? {
                return Ok(Enqueued {
                    id: message.id,
                    created: false,
                    status: message.status,
                });
            }
        }
    }
    let now = tx.now();
    let recipient = send.to.as_deref().map(wa_id);
    let conversation_id = match &recipient {
        Some(wa_id) => {
            Some(upsert_conversation(tx, layout, &send.phone_number_id, wa_id, None, None).await?)
        }
        None => None,
    };
    let (id, doc) = layout.new_message(&send.phone_number_id);
    tx.set(
        &doc,
        &MessageDoc {
            id: id.clone(),
            wamid: None,
            conversation_id,
            phone_number_id: send.phone_number_id.clone(),
            direction: "outbound".into(),
            message_type: Some(send.message_type.clone()),
            from: Some(send.phone_number_id.clone()),
            to: recipient.clone(),
            text: send.preview.clone(),
            media: None,
            context: send
                .context_message_id
                .as_ref()
                .map(|id| serde_json::json!({ "id": id }).to_string()),
            status: "queued".into(),
            errors: None,
            raw: Some(send.body.to_string()),
            idempotency_key: send.idempotency_key.clone(),
            dispatch_started_at: None,
            accepted_at_ms: Some(tx.now_ms),
            timestamp: now,
            created_at: now,
            updated_at: now,
        },
    )?;
    if let Some(key) = &send.idempotency_key {
        tx.set(
            &layout.idempotency_key(key),
            &LookupDoc {
                key: key.clone(),
                message_id: id.clone(),
            },
        )?;
    }
    add_history(tx, layout, &send.phone_number_id, &id, "queued", None).await?;
    let ordering_key = recipient.map(|wa_id| format!("{}:{wa_id}", send.phone_number_id));
    let task = serde_json::to_string(&DispatchTask {
        message_id: id.clone(),
    })?;
    publish(tx, layout, topics::DISPATCH, ordering_key.as_deref(), task).await?;
    Ok(Enqueued {
        id,
        created: true,
        status: "queued".into(),
    })
}

/// Records a status zapfn itself observed (queued, accepted, failed) once.
async fn add_history(
    tx: &mut Tx,
    layout: &Layout,
    phone_number_id: &str,
    subject: &str,
    status: &str,
    errors: Option<&str>,
) -> Result<()> {
    let doc = layout.status_event(phone_number_id, subject, status, None);
    if tx.get::<StatusEventDoc>(&doc).await?.is_some() {
        return Ok(());
    }
    let now = tx.now();
    tx.set(
        &doc,
        &StatusEventDoc {
            subject: subject.to_owned(),
            status: status.to_owned(),
            timestamp: now,
            errors: errors.map(str::to_owned),
            raw: None,
            received_at: now,
            participant: None,
        },
    )
}

/// What the dispatcher needs to send a queued message.
pub(crate) fn outbound(message: MessageDoc) -> Result<Option<OutboundMessage>> {
    if message.direction != "outbound" {
        return Ok(None);
    }
    Ok(Some(OutboundMessage {
        body: serde_json::from_str(message.raw.as_deref().unwrap_or("null"))?,
        id: message.id,
        phone_number_id: message.phone_number_id,
        to: message.to,
        message_type: message.message_type.unwrap_or_default(),
        wamid: message.wamid,
        status: message.status,
        dispatch_started_at: message.dispatch_started_at,
    }))
}

/// Records Meta's acceptance; a placeholder made by early statuses is merged in.
pub(crate) async fn record_sent(
    tx: &mut Tx,
    layout: &Layout,
    id: &str,
    wamid: Option<&str>,
) -> Result<()> {
    let Some((doc, mut message)) = by_id(tx, layout, id).await? else {
        return Err(StoreError::Invalid(format!("no outbound message {id}")));
    };
    message.status = after_acceptance(&message.status, message.wamid.is_some()).to_owned();
    if let Some(wamid) = wamid {
        if let Some((placeholder_doc, placeholder)) = by_wamid(tx, layout, wamid).await? {
            if placeholder.id != message.id {
                tx.delete(&placeholder_doc);
                if advances(&message.status, &placeholder.status) {
                    message.status = placeholder.status;
                    message.errors = placeholder.errors.or(message.errors);
                }
            }
        }
        if let Some(previous) = message.wamid.as_deref().filter(|w| *w != wamid) {
            tx.delete(&layout.wamid(previous));
        }
        tx.set(
            &layout.wamid(wamid),
            &LookupDoc {
                key: wamid.to_owned(),
                message_id: message.id.clone(),
            },
        )?;
        message.wamid = Some(wamid.to_owned());
    }
    add_history(
        tx,
        layout,
        &message.phone_number_id,
        &message.id,
        "accepted",
        None,
    )
    .await?;
    message.updated_at = tx.now();
    message.dispatch_started_at = None;
    tx.set(&doc, &message)
}

/// Records a failed send attempt; a terminal one marks the message failed.
pub(crate) async fn record_send_error(
    tx: &mut Tx,
    layout: &Layout,
    id: &str,
    error: &Value,
    terminal: bool,
    maybe_sent: bool,
) -> Result<()> {
    let Some((doc, mut message)) = by_id(tx, layout, id).await? else {
        return Ok(());
    };
    let errors = Value::Array(vec![error.clone()]).to_string();
    if terminal {
        message.status = "failed".into();
        add_history(
            tx,
            layout,
            &message.phone_number_id,
            id,
            "failed",
            Some(&errors),
        )
        .await?;
    }
    if !maybe_sent {
        message.dispatch_started_at = None;
    }
    message.errors = Some(errors);
    message.updated_at = tx.now();
    tx.set(&doc, &message)
}

/// Notes that a send to Meta is starting.
pub(crate) async fn mark_dispatching(tx: &mut Tx, layout: &Layout, id: &str) -> Result<()> {
    let Some((doc, mut message)) = by_id(tx, layout, id).await? else {
        return Ok(());
    };
    message.dispatch_started_at = Some(tx.now());
    tx.set(&doc, &message)
}
