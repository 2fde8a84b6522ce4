//! Storing a webhook notification: messages deduplicated by wamid, statuses by
//! (wamid, status), and their events, in the same transaction.

use zapfn_store::{topics, IngestReport, MessageEvent, Result};
use zapfn_whatsapp::webhook::{InboundMessage, Notification, RawEvent, StatusUpdate};

use crate::layout::{DocRef, Layout};
use crate::outbox::publish;
use crate::records::{ConversationDoc, LookupDoc, MessageDoc, RawEventDoc, StatusEventDoc};
use crate::tx::Tx;

/// Items of a notification stored per transaction: a message writes up to six
/// documents, so a chunk stays well inside Firestore's limit of writes per
/// commit. Chunks commit one after another; a failure after some committed is
/// safe to redeliver (what committed is deduplicated, so nothing is published
/// twice), and the caller acknowledges only once every chunk committed.
pub(crate) const ITEMS_PER_TRANSACTION: usize = 50;

/// One chunk of a notification.
#[derive(Clone, Copy)]
pub(crate) struct Chunk<'a> {
    pub messages: &'a [InboundMessage],
    pub statuses: &'a [StatusUpdate],
    pub events: &'a [RawEvent],
}

/// Splits a notification into chunks of at most [`ITEMS_PER_TRANSACTION`]
/// items; the usual small notification is one chunk.
pub(crate) fn chunks(notification: &Notification) -> Vec<Chunk<'_>> {
    let (messages, statuses, events) = (
        &notification.messages[..],
        &notification.statuses[..],
        &notification.events[..],
    );
    if messages.len() + statuses.len() + events.len() <= ITEMS_PER_TRANSACTION {
        return vec![Chunk {
            messages,
            statuses,
            events,
        }];
    }
    let empty = Chunk {
        messages: &[],
        statuses: &[],
        events: &[],
    };
    let messages = messages.chunks(ITEMS_PER_TRANSACTION);
    let statuses = statuses.chunks(ITEMS_PER_TRANSACTION);
    let events = events.chunks(ITEMS_PER_TRANSACTION);
    messages
        .map(|messages| Chunk { messages, ..empty })
        .chain(statuses.map(|statuses| Chunk { statuses, ..empty }))
        .chain(events.map(|events| Chunk { events, ..empty }))
        .collect()
}

pub(crate) async fn ingest(tx: &mut Tx, layout: &Layout, chunk: Chunk<'_>) -> Result<IngestReport> {
    tx.prefetch(&documents_read(layout, chunk)).await?;
    let mut report = IngestReport::default();
    for message in chunk.messages {
        if insert_message(tx, layout, message).await? {
            report.new_messages += 1;
        } else {
            report.duplicate_messages += 1;
        }
    }
    for status in chunk.statuses {
        if insert_status_event(tx, layout, status).await? {
            let payload = serde_json::to_string(status)?;
            publish(tx, layout, topics::STATUSES, None, payload).await?;
            report.new_statuses += 1;
        } else {
            report.duplicate_statuses += 1;
        }
    }
    for event in chunk.events {
        insert_raw_event(tx, layout, event)?;
        report.raw_events += 1;
    }
    Ok(report)
}

/// Everything `ingest` reads, fetched up front in a few round trips.
fn documents_read(layout: &Layout, chunk: Chunk<'_>) -> Vec<DocRef> {
    let mut docs = Vec::new();
    for message in chunk.messages {
        docs.push(layout.wamid(&message.wamid));
        docs.push(layout.conversation_for(&message.phone_number_id, message.conversation_wa_id()));
        docs.push(layout.ordering_key(topics::MESSAGES, &message_ordering_key(message)));
    }
    for status in chunk.statuses {
        docs.push(layout.status_event(
            &status.phone_number_id,
            &status.wamid,
            &status.status,
            status.participant.as_deref(),
        ));
    }
    docs
}

/// A conversation's messages (a customer's, or a group's) are handled one at a time, in order.
fn message_ordering_key(message: &InboundMessage) -> String {
    format!(
        "{}:{}",
        message.phone_number_id,
        message.conversation_wa_id()
    )
}

/// Stores a new inbound message and its `messages` event; false if the wamid is known.
async fn insert_message(tx: &mut Tx, layout: &Layout, message: &InboundMessage) -> Result<bool> {
    let now = tx.now();
    let sent_at = if message.timestamp > 0 {
        message.timestamp
    } else {
        now
    };
    // Idempotent for a duplicate, as the SQLite store's.
    let conversation_id = upsert_conversation(
        tx,
        layout,
        &message.phone_number_id,
        message.conversation_wa_id(),
        message.conversation_name(),
        Some(sent_at),
    )
    .await?;
    let lookup = layout.wamid(&message.wamid);
    if tx.get::<LookupDoc>(&lookup).await?.is_some() {
        return Ok(false);
    }
    let (id, doc) = layout.new_message(&message.phone_number_id);
    tx.set(
        &doc,
        &MessageDoc {
            id: id.clone(),
            wamid: Some(message.wamid.clone()),
            conversation_id: Some(conversation_id),
            phone_number_id: message.phone_number_id.clone(),
            direction: "inbound".into(),
            message_type: Some(message.message_type.clone()),
            from: Some(message.from.clone()),
            to: Some(message.phone_number_id.clone()),
            text: message.text.clone(),
            media: message.media.as_ref().map(|m| m.to_string()),
            context: message.context.as_ref().map(|c| c.to_string()),
            status: "received".into(),
            errors: None,
            raw: Some(message.raw.clone()),
            idempotency_key: None,
            dispatch_started_at: None,
            accepted_at_ms: None,
            timestamp: sent_at,
            created_at: now,
            updated_at: now,
        },
    )?;
    tx.set(
        &lookup,
        &LookupDoc {
            key: message.wamid.clone(),
            message_id: id.clone(),
        },
    )?;
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
    let key = message_ordering_key(message);
    publish(
        tx,
        layout,
        topics::MESSAGES,
        Some(&key),
        serde_json::to_string(&event)?,
    )
    .await?;
    Ok(true)
}

/// Times within this many seconds of the stored ones do not rewrite a
/// conversation (as in the SQLite store): a busy chat's conversation document
/// is written at most about once a minute, far below Firestore's sustained
/// write rate per document. The 24-hour window may then close up to a minute
/// early (the safe side); listing order is to the minute.
const TOUCH_SECONDS: i64 = 60;

/// Creates or touches the conversation of (`phone_number_id`, `wa_id`); returns its id.
/// `inbound_at` is set when the customer wrote (it moves the 24-hour window).
pub(crate) async fn upsert_conversation(
    tx: &mut Tx,
    layout: &Layout,
    phone_number_id: &str,
    wa_id: &str,
    contact_name: Option<&str>,
    inbound_at: Option<i64>,
) -> Result<String> {
    let now = tx.now();
    let message_at = inbound_at.unwrap_or(now);
    let doc = layout.conversation_for(phone_number_id, wa_id);
    let Some(mut stored) = tx.get::<ConversationDoc>(&doc).await? else {
        tx.set(
            &doc,
            &ConversationDoc {
                id: doc.id.clone(),
                store: layout.prefix().to_owned(),
                phone_number_id: phone_number_id.to_owned(),
                wa_id: wa_id.to_owned(),
                contact_name: contact_name.map(str::to_owned),
                last_inbound_at: inbound_at,
                last_message_at: message_at,
                created_at: now,
                updated_at: now,
            },
        )?;
        return Ok(doc.id);
    };
    let renamed = contact_name.is_some() && contact_name != stored.contact_name.as_deref();
    let wrote_later =
        inbound_at.is_some_and(|at| at >= stored.last_inbound_at.unwrap_or(0) + TOUCH_SECONDS);
    let later = message_at >= stored.last_message_at + TOUCH_SECONDS;
    if renamed || wrote_later || later {
        if let Some(name) = contact_name {
            stored.contact_name = Some(name.to_owned());
        }
        stored.last_inbound_at = stored.last_inbound_at.max(inbound_at);
        stored.last_message_at = stored.last_message_at.max(message_at);
        stored.updated_at = now;
        tx.set(&doc, &stored)?;
    }
    Ok(stored.id)
}

/// Records a status event once per (wamid, status, group member); true if it is new.
pub(crate) async fn insert_status_event(
    tx: &mut Tx,
    layout: &Layout,
    status: &StatusUpdate,
) -> Result<bool> {
    let doc = layout.status_event(
        &status.phone_number_id,
        &status.wamid,
        &status.status,
        status.participant.as_deref(),
    );
    if tx.get::<StatusEventDoc>(&doc).await?.is_some() {
        return Ok(false);
    }
    let received_at = tx.now();
    tx.set(
        &doc,
        &StatusEventDoc {
            subject: status.wamid.clone(),
            status: status.status.clone(),
            timestamp: status.timestamp,
            errors: status.errors.as_ref().map(|e| e.to_string()),
            raw: Some(status.raw.clone()),
            received_at,
            participant: status.participant.clone(),
        },
    )?;
    Ok(true)
}

fn insert_raw_event(tx: &mut Tx, layout: &Layout, event: &RawEvent) -> Result<()> {
    let received_at = tx.now();
    tx.set(
        &layout.new_raw_event(),
        &RawEventDoc {
            phone_number_id: event.phone_number_id.clone(),
            kind: event.kind.clone(),
            raw: event.raw.clone(),
            received_at,
        },
    )
}
