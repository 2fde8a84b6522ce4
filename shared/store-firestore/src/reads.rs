//! The reads the API serves, outside transactions (strongly consistent single
//! reads and queries).

use std::collections::HashMap;

use firestore::{FirestoreDb, FirestoreQueryCursor};
use serde::de::DeserializeOwned;
use serde_json::Value;
use zapfn_store::{
    Conversation, ConversationQuery, MessageView, Page, PageRequest, Result, StatusEntry,
    StoreError,
};

use crate::error::store_error;
use crate::layout::{collections, segment, DocRef, Layout};
use crate::records::{ConversationDoc, LookupDoc, MessageDoc, StatusEventDoc};

/// Largest page served.
const MAX_PAGE: usize = 500;
/// Firestore's limit of values in one `in` filter.
const MAX_IN_VALUES: usize = 30;

/// A document by reference.
pub(crate) async fn fetch<T: DeserializeOwned + Send>(
    db: &FirestoreDb,
    doc: &DocRef,
) -> Result<Option<T>> {
    db.fluent()
        .select()
        .by_id_in(doc.collection)
        .parent(&doc.parent)
        .obj()
        .one(&doc.id)
        .await
        .map_err(store_error)
}

/// A message by zapfn id or wamid.
pub(crate) async fn message_doc(
    db: &FirestoreDb,
    layout: &Layout,
    key: &str,
) -> Result<Option<MessageDoc>> {
    if let Some(doc) = layout.message(key) {
        if let Some(message) = fetch(db, &doc).await? {
            return Ok(Some(message));
        }
    }
    let Some(lookup) = fetch::<LookupDoc>(db, &layout.wamid(key)).await? else {
        return Ok(None);
    };
    match layout.message(&lookup.message_id) {
        Some(doc) => fetch(db, &doc).await,
        None => Ok(None),
    }
}

/// A message by zapfn id or wamid, with its status history.
pub(crate) async fn message(
    db: &FirestoreDb,
    layout: &Layout,
    key: &str,
) -> Result<Option<MessageView>> {
    let Some(message) = message_doc(db, layout, key).await? else {
        return Ok(None);
    };
    Ok(views(db, layout, vec![message]).await?.pop())
}

/// Messages as the API shows them, with their histories (read in a few queries).
async fn views(
    db: &FirestoreDb,
    layout: &Layout,
    messages: Vec<MessageDoc>,
) -> Result<Vec<MessageView>> {
    let mut subjects: HashMap<&str, Vec<&str>> = HashMap::new();
    for message in &messages {
        let entry = subjects
            .entry(message.phone_number_id.as_str())
            .or_default();
        entry.push(&message.id);
        entry.extend(message.wamid.as_deref());
    }
    let queries = subjects.iter().flat_map(|(pnid, subjects)| {
        subjects
            .chunks(MAX_IN_VALUES)
            .map(move |chunk| status_events(db, layout, pnid, chunk))
    });
    let mut by_subject: HashMap<String, Vec<StatusEntry>> = HashMap::new();
    for event in futures::future::try_join_all(queries)
        .await?
        .into_iter()
        .flatten()
    {
        by_subject
            .entry(event.subject)
            .or_default()
            .push(StatusEntry {
                status: event.status,
                timestamp: event.timestamp,
                errors: event.errors.as_deref().and_then(json),
                participant: event.participant,
            });
    }
    Ok(messages
        .into_iter()
        .map(|message| {
            let mut history: Vec<StatusEntry> = [Some(&message.id), message.wamid.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|subject| by_subject.get(subject))
                .flatten()
                .cloned()
                .collect();
            history.sort_by_key(|entry| {
                (
                    entry.timestamp,
                    zapfn_whatsapp::status::rank(&entry.status).unwrap_or(i64::MAX),
                )
            });
            view(message, history)
        })
        .collect())
}

async fn status_events(
    db: &FirestoreDb,
    layout: &Layout,
    pnid: &str,
    subjects: &[&str],
) -> Result<Vec<StatusEventDoc>> {
    db.fluent()
        .select()
        .from(collections::STATUS_EVENTS)
        .parent(layout.status_events_parent(pnid))
        .filter(|q| q.field("subject").is_in(subjects.to_vec()))
        .obj()
        .query()
        .await
        .map_err(store_error)
}

/// Stored JSON text as a value (unreadable text reads as absent, as in SQLite's store).
fn json(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

fn view(message: MessageDoc, status_history: Vec<StatusEntry>) -> MessageView {
    MessageView {
        id: message.id,
        wamid: message.wamid,
        phone_number_id: message.phone_number_id,
        conversation_id: message.conversation_id,
        direction: message.direction,
        message_type: message.message_type,
        from: message.from,
        to: message.to,
        text: message.text,
        media: message.media.as_deref().and_then(json),
        context: message.context.as_deref().and_then(json),
        status: message.status,
        errors: message.errors.as_deref().and_then(json),
        status_history,
        raw: message.raw.as_deref().and_then(json),
        timestamp: message.timestamp,
    }
}

fn conversation_view(doc: ConversationDoc) -> Conversation {
    Conversation {
        id: doc.id,
        phone_number_id: doc.phone_number_id,
        wa_id: doc.wa_id,
        contact_name: doc.contact_name,
        last_inbound_at: doc.last_inbound_at,
        last_message_at: doc.last_message_at,
    }
}

/// A keyset position: the (time, id) of the last item of the previous page.
/// As text `{time}:{id}`, opaque to clients; only ids this store gives out are accepted.
struct Cursor {
    at: i64,
    id: String,
}

impl Cursor {
    fn parse(cursor: Option<&str>, valid_id: impl Fn(&str) -> bool) -> Result<Option<Cursor>> {
        let Some(cursor) = cursor else {
            return Ok(None);
        };
        cursor
            .split_once(':')
            .and_then(|(at, id)| {
                Some(Cursor {
                    at: at.parse().ok()?,
                    id: id.to_owned(),
                })
            })
            .filter(|cursor| valid_id(&cursor.id))
            .map(Some)
            .ok_or_else(|| {
                StoreError::Invalid(format!("cursor {cursor:?} is not one this API gave out"))
            })
    }

    fn text(at: i64, id: &str) -> String {
        format!("{at}:{id}")
    }

    /// Resumes a query ordered by (time desc, id desc) after this position.
    fn resume(&self) -> FirestoreQueryCursor {
        FirestoreQueryCursor::AfterValue(vec![self.at.into(), self.id.as_str().into()])
    }
}

/// Trims the extra item fetched to learn whether another page exists.
fn page<T>(mut items: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor_of)
    } else {
        None
    };
    Page { items, next_cursor }
}

pub(crate) async fn conversations(
    db: &FirestoreDb,
    layout: &Layout,
    query: &ConversationQuery,
) -> Result<Page<Conversation>> {
    let cursor = Cursor::parse(query.page.cursor.as_deref(), |id| {
        layout.conversation(id).is_some()
    })?;
    let limit = query.page.limit.clamp(1, MAX_PAGE);
    let items: Vec<ConversationDoc> = match (&query.phone_number_id, &query.wa_id) {
        // The pair names one conversation document.
        (Some(pnid), Some(wa_id)) => {
            fetch::<ConversationDoc>(db, &layout.conversation_for(pnid, wa_id))
                .await?
                .into_iter()
                .filter(|c| {
                    cursor.as_ref().is_none_or(|cursor| {
                        (c.last_message_at, c.id.as_str()) < (cursor.at, cursor.id.as_str())
                    })
                })
                .collect()
        }
        (pnid, wa_id) => {
            let select = db.fluent().select().from(collections::CONVERSATIONS);
            // One business number: its partition. Otherwise every partition
            // (a collection group, of this store's documents only).
            let select = match pnid {
                Some(pnid) => select.parent(layout.partition(&segment(pnid))),
                None => select.parent(layout.documents()).all_descendants(),
            };
            let select = select
                .filter(|q| {
                    q.for_all([
                        pnid.is_none()
                            .then(|| q.field("store").eq(layout.prefix()))
                            .flatten(),
                        wa_id
                            .as_ref()
                            .and_then(|wa_id| q.field("wa_id").eq(wa_id.as_str())),
                    ])
                })
                .order(|o| {
                    o.fields([
                        o.field("last_message_at").descending(),
                        o.field("id").descending(),
                    ])
                })
                .limit(limit as u32 + 1);
            let select = match &cursor {
                Some(cursor) => select.start_at(cursor.resume()),
                None => select,
            };
            select.obj().query().await.map_err(store_error)?
        }
    };
    let items = items.into_iter().map(conversation_view).collect();
    Ok(page(items, limit, |c| {
        Cursor::text(c.last_message_at, &c.id)
    }))
}

pub(crate) async fn conversation(
    db: &FirestoreDb,
    layout: &Layout,
    id: &str,
) -> Result<Option<Conversation>> {
    let Some(doc) = layout.conversation(id) else {
        return Ok(None);
    };
    Ok(fetch::<ConversationDoc>(db, &doc)
        .await?
        .map(conversation_view))
}

pub(crate) async fn conversation_messages(
    db: &FirestoreDb,
    layout: &Layout,
    conversation_id: &str,
    request: &PageRequest,
) -> Result<Page<MessageView>> {
    let cursor = Cursor::parse(request.cursor.as_deref(), |id| layout.message(id).is_some())?;
    let limit = request.limit.clamp(1, MAX_PAGE);
    let Some(partition) = layout.messages_of_conversation(conversation_id) else {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    };
    let select = db
        .fluent()
        .select()
        .from(collections::MESSAGES)
        .parent(partition)
        .filter(|q| q.field("conversation_id").eq(conversation_id))
        .order(|o| {
            o.fields([
                o.field("timestamp").descending(),
                o.field("id").descending(),
            ])
        })
        .limit(limit as u32 + 1);
    let select = match &cursor {
        Some(cursor) => select.start_at(cursor.resume()),
        None => select,
    };
    let found: Vec<MessageDoc> = select.obj().query().await.map_err(store_error)?;
    let items = views(db, layout, found).await?;
    Ok(page(items, limit, |m| Cursor::text(m.timestamp, &m.id)))
}

pub(crate) async fn last_inbound_at(
    db: &FirestoreDb,
    layout: &Layout,
    phone_number_id: &str,
    wa_id: &str,
) -> Result<Option<i64>> {
    let doc = layout.conversation_for(phone_number_id, &zapfn_whatsapp::wa_id(wa_id));
    Ok(fetch::<ConversationDoc>(db, &doc)
        .await?
        .and_then(|c| c.last_inbound_at))
}

/// Whether an earlier outbound message of message `id`'s conversation, accepted
/// at or after `since`, is still queued without a wamid.
pub(crate) async fn earlier_send_pending(
    db: &FirestoreDb,
    layout: &Layout,
    id: &str,
    since: i64,
) -> Result<bool> {
    let Some(doc) = layout.message(id) else {
        return Ok(false);
    };
    let Some(message) = fetch::<MessageDoc>(db, &doc).await? else {
        return Ok(false);
    };
    let Some(conversation_id) = message.conversation_id.as_deref() else {
        return Ok(false);
    };
    let Some(partition) = layout.messages_of_conversation(conversation_id) else {
        return Ok(false);
    };
    let recent: Vec<MessageDoc> = db
        .fluent()
        .select()
        .from(collections::MESSAGES)
        .parent(partition)
        .filter(|q| {
            q.for_all([
                q.field("conversation_id").eq(conversation_id),
                q.field("timestamp").greater_than_or_equal(since),
            ])
        })
        .order(|o| {
            o.fields([
                o.field("timestamp").descending(),
                o.field("id").descending(),
            ])
        })
        .obj()
        .query()
        .await
        .map_err(store_error)?;
    Ok(recent.iter().any(|earlier| {
        earlier.send_order() < message.send_order()
            && earlier.direction == "outbound"
            && earlier.status == "queued"
            && earlier.wamid.is_none()
    }))
}
