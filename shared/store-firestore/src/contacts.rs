//! Erasure and retention on Firestore: deleting messages with their look-ups,
//! status events and the events naming them; a contact's conversation and the
//! events about them; and what is past retention.
//!
//! Queued events with an ordering key are never deleted one by one (a gap
//! would stall the key): a contact's keys (`{pnid}:{wa_id}`, in every topic)
//! are deleted whole, with their state documents, in the transaction that
//! reads those states, so a concurrent publish is serialized against it.
//! Unkeyed events and dead letters are found by scanning those collections,
//! which hold only what is pending or given up on.

use std::collections::BTreeSet;

use firestore::gcloud_sdk::google::firestore::v1::Document;
use firestore::FirestoreDb;
use serde::de::DeserializeOwned;
use serde_json::Value;
use zapfn_store::{topics, Erased, Result, StoredMessage, StoredRawEvent};

use crate::error::store_error;
use crate::layout::{collections, keyed_event_id, DocRef, Layout};
use crate::local_locks::Name;
use crate::records::{
    ConversationDoc, DeadLetterDoc, EventDoc, LookupDoc, MessageDoc, OrderingKeyDoc, RawEventDoc,
    StatusEventDoc,
};
use crate::tx::{doc_id, Tx};
use crate::FirestoreStore;

/// Messages erased per transaction: each writes up to a dozen documents (the
/// message, two look-ups, its status events, the events naming it), inside
/// Firestore's 500 writes per commit.
const MESSAGES_PER_TX: usize = 25;
/// Keyed events deleted per transaction.
const EVENTS_PER_TX: i64 = 400;
/// Firestore's limit of values in one `in` filter.
const MAX_IN_VALUES: usize = 30;
/// Every topic whose events may carry a contact's ordering key.
const TOPICS: [&str; 5] = [
    topics::MESSAGES,
    topics::STATUSES,
    topics::DISPATCH,
    topics::MEDIA,
    topics::TRANSCRIPTS,
];

fn decode<T: DeserializeOwned>(doc: &Document) -> Result<T> {
    FirestoreDb::deserialize_doc_to(doc).map_err(store_error)
}

/// The documents of a root collection (outbox or dead letters), with their ids.
async fn scan<T: DeserializeOwned>(
    db: &FirestoreDb,
    layout: &Layout,
    collection: &str,
) -> Result<Vec<(String, T)>> {
    let docs: Vec<Document> = db
        .fluent()
        .select()
        .from(collection)
        .parent(layout.root())
        .query()
        .await
        .map_err(store_error)?;
    docs.iter()
        .map(|doc| Ok((doc_id(doc).to_owned(), decode(doc)?)))
        .collect()
}

/// A payload's string field.
fn field<'a>(payload: &'a Value, name: &str) -> Option<&'a str> {
    payload.get(name).and_then(Value::as_str)
}

/// Unkeyed outbox events and dead letters whose payload `names` says is about
/// what is being erased.
async fn unkeyed_and_dead(
    db: &FirestoreDb,
    layout: &Layout,
    names: impl Fn(&Value) -> bool,
) -> Result<(Vec<DocRef>, Vec<DocRef>)> {
    let about = |payload: &str| serde_json::from_str::<Value>(payload).is_ok_and(|p| names(&p));
    let events = scan::<EventDoc>(db, layout, collections::OUTBOX)
        .await?
        .into_iter()
        .filter(|(_, event)| event.ordering_key.is_none() && about(&event.payload))
        .filter_map(|(id, _)| layout.event(&id))
        .collect();
    let dead = scan::<DeadLetterDoc>(db, layout, collections::DEAD_LETTERS)
        .await?
        .into_iter()
        .filter(|(_, letter)| about(&letter.payload))
        .map(|(id, _)| layout.dead_letter(&id))
        .collect();
    Ok((events, dead))
}

/// The raw events of a number (`None`: of every number) whose JSON names the
/// contact (`"<wa_id>"`), with their documents.
async fn raw_events_naming(
    db: &FirestoreDb,
    layout: &Layout,
    phone_number_id: Option<&str>,
    wa_id: &str,
) -> Result<Vec<(DocRef, RawEventDoc)>> {
    let needle = zapfn_store::quoted(wa_id);
    let docs: Vec<Document> = db
        .fluent()
        .select()
        .from(collections::RAW_EVENTS)
        .parent(layout.root())
        .filter(|q| phone_number_id.and_then(|pnid| q.field("phone_number_id").eq(pnid)))
        .query()
        .await
        .map_err(store_error)?;
    let mut naming = Vec::new();
    for doc in &docs {
        let event: RawEventDoc = decode(doc)?;
        if event.phone_number_id.is_some() && event.raw.contains(&needle) {
            naming.push((layout.raw_event(doc_id(doc)), event));
        }
    }
    Ok(naming)
}

/// Deletes those of `docs` that exist; returns how many did.
async fn delete_existing<T: DeserializeOwned>(tx: &mut Tx, docs: &[DocRef]) -> Result<u64> {
    tx.prefetch(docs).await?;
    let mut deleted = 0;
    for doc in docs {
        if tx.get::<T>(doc).await?.is_some() {
            tx.delete(doc);
            deleted += 1;
        }
    }
    Ok(deleted)
}

impl FirestoreStore {
    /// See `Store::raw_events_naming`: oldest first (by receipt, then id).
    pub(crate) async fn contact_raw_events(
        &self,
        phone_number_id: Option<&str>,
        wa_id: &str,
    ) -> Result<Vec<StoredRawEvent>> {
        let mut naming =
            raw_events_naming(self.db(), self.layout(), phone_number_id, wa_id).await?;
        naming.sort_by(|(a_doc, a), (b_doc, b)| {
            (a.received_at, &a_doc.id).cmp(&(b.received_at, &b_doc.id))
        });
        Ok(naming
            .into_iter()
            .map(|(_, event)| {
                StoredRawEvent::new(
                    event.phone_number_id.unwrap_or_default(),
                    event.kind,
                    event.received_at,
                    &event.raw,
                )
            })
            .collect())
    }

    /// See `Store::erase_messages`.
    pub(crate) async fn erase_message_docs(&self, ids: &[String]) -> Result<Erased> {
        let layout = self.layout();
        let docs: Vec<DocRef> = ids.iter().filter_map(|id| layout.message(id)).collect();
        let mut erased = Erased::default();
        for chunk in docs.chunks(MESSAGES_PER_TX) {
            erased += self.erase_chunk(chunk).await?;
        }
        Ok(erased)
    }

    async fn erase_chunk(&self, docs: &[DocRef]) -> Result<Erased> {
        let (db, layout) = (self.db(), self.layout());
        let messages: Vec<MessageDoc> = futures::future::try_join_all(
            docs.iter()
                .map(|doc| crate::reads::fetch::<MessageDoc>(db, doc)),
        )
        .await?
        .into_iter()
        .flatten()
        .collect();
        if messages.is_empty() {
            return Ok(Erased::default());
        }
        let status_docs = status_event_docs(db, layout, &messages).await?;
        let ids: BTreeSet<&str> = messages.iter().map(|m| m.id.as_str()).collect();
        let wamids: BTreeSet<&str> = messages.iter().filter_map(|m| m.wamid.as_deref()).collect();
        let (events, dead) = unkeyed_and_dead(db, layout, |payload| {
            field(payload, "message_id").is_some_and(|id| ids.contains(id))
                || field(payload, "wamid").is_some_and(|w| wamids.contains(w))
        })
        .await?;
        let names = messages.iter().flat_map(|m| {
            [
                Some(Name::Message(&m.id)),
                m.wamid.as_deref().map(Name::Wamid),
            ]
            .into_iter()
            .flatten()
        });
        let _held = self.locks().lock(names).await;
        let (messages, status_docs, events, dead) = (&messages, &status_docs, &events, &dead);
        self.transact(move |mut tx| async move {
            let result = erase_in(&mut tx, layout, messages, status_docs, events, dead).await;
            (tx, result)
        })
        .await
    }

    /// See `Store::erase_conversation`.
    pub(crate) async fn erase_contact_conversation(
        &self,
        phone_number_id: &str,
        wa_id: &str,
    ) -> Result<Erased> {
        let (db, layout) = (self.db(), self.layout());
        let conversation = layout.conversation_for(phone_number_id, wa_id);
        let has_messages = !db
            .fluent()
            .select()
            .fields(["id"])
            .from(collections::MESSAGES)
            .parent(&conversation.parent)
            .filter(|q| q.field("conversation_id").eq(conversation.id.as_str()))
            .limit(1)
            .query()
            .await
            .map_err(store_error)?
            .is_empty();
        let (events, dead) = unkeyed_and_dead(db, layout, |payload| {
            field(payload, "phone_number_id") == Some(phone_number_id)
                && (field(payload, "from") == Some(wa_id)
                    || field(payload, "recipient_id") == Some(wa_id))
        })
        .await?;
        let raw: Vec<DocRef> = raw_events_naming(db, layout, Some(phone_number_id), wa_id)
            .await?
            .into_iter()
            .map(|(doc, _)| doc)
            .collect();
        let key = format!("{phone_number_id}:{wa_id}");
        let names = TOPICS
            .iter()
            .map(|topic| Name::OrderingKey { topic, key: &key })
            .chain([Name::Conversation {
                pnid: phone_number_id,
                wa_id,
            }]);
        let _held = self.locks().lock(names).await;
        let mut erased = Erased::default();
        let (conversation, events, dead) = (&conversation, &events, &dead);
        for chunk in raw.chunks(EVENTS_PER_TX as usize) {
            erased += self
                .transact(move |mut tx| async move {
                    let result =
                        delete_existing::<RawEventDoc>(&mut tx, chunk)
                            .await
                            .map(|raw_events| Erased {
                                raw_events,
                                ..Erased::default()
                            });
                    (tx, result)
                })
                .await?;
        }
        erased += self
            .transact(move |mut tx| async move {
                let result = async {
                    let mut erased = Erased::default();
                    if !has_messages && tx.get::<ConversationDoc>(conversation).await?.is_some() {
                        tx.delete(conversation);
                        erased.conversations = 1;
                    }
                    erased.events = delete_existing::<EventDoc>(&mut tx, events).await?
                        + delete_existing::<DeadLetterDoc>(&mut tx, dead).await?;
                    Ok(erased)
                }
                .await;
                (tx, result)
            })
            .await?;
        for topic in TOPICS {
            let key_doc = &layout.ordering_key(topic, &key);
            loop {
                let (deleted, more) = self
                    .transact(move |mut tx| async move {
                        let result = drop_key_events(&mut tx, layout, key_doc).await;
                        (tx, result)
                    })
                    .await?;
                erased.events += deleted;
                if !more {
                    break;
                }
            }
        }
        Ok(erased)
    }

    /// See `Store::messages_before`.
    pub(crate) async fn messages_older_than(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>> {
        let layout = self.layout();
        let found: Vec<Document> = self
            .db()
            .fluent()
            .select()
            .from(collections::MESSAGES)
            .parent(layout.documents())
            .all_descendants()
            .filter(|q| q.field("timestamp").less_than(before))
            .order(|o| o.fields([o.field("timestamp").ascending(), o.field("id").ascending()]))
            .limit(limit.min(u32::MAX as usize) as u32)
            .query()
            .await
            .map_err(store_error)?;
        // A database shared with other stores: keep this store's own.
        let own = format!("{}/", layout.root());
        found
            .iter()
            .filter(|doc| doc.name.starts_with(&own))
            .map(|doc| {
                let message: MessageDoc = decode(doc)?;
                Ok(StoredMessage {
                    media: message
                        .media
                        .as_deref()
                        .and_then(|text| serde_json::from_str(text).ok()),
                    id: message.id,
                    phone_number_id: message.phone_number_id,
                    wamid: message.wamid,
                    timestamp: message.timestamp,
                })
            })
            .collect()
    }

    /// See `Store::purge_expired`.
    pub(crate) async fn purge_older_than(&self, before: i64, limit: usize) -> Result<Erased> {
        let (db, layout) = (self.db(), self.layout());
        let limit = limit.min(EVENTS_PER_TX as usize) as u32;
        let idle: Vec<ConversationDoc> = db
            .fluent()
            .select()
            .from(collections::CONVERSATIONS)
            .parent(layout.documents())
            .all_descendants()
            .filter(|q| {
                q.for_all([
                    q.field("store").eq(layout.prefix()),
                    q.field("last_message_at").less_than(before),
                ])
            })
            .order(|o| {
                o.fields([
                    o.field("last_message_at").descending(),
                    o.field("id").descending(),
                ])
            })
            .limit(limit)
            .obj()
            .query()
            .await
            .map_err(store_error)?;
        let mut empty = Vec::new();
        for conversation in idle {
            let doc = layout.conversation_for(&conversation.phone_number_id, &conversation.wa_id);
            let has_messages = !db
                .fluent()
                .select()
                .fields(["id"])
                .from(collections::MESSAGES)
                .parent(&doc.parent)
                .filter(|q| q.field("conversation_id").eq(doc.id.as_str()))
                .limit(1)
                .query()
                .await
                .map_err(store_error)?
                .is_empty();
            if !has_messages {
                empty.push(doc);
            }
        }
        let older = |collection: &'static str, field: &'static str, value: i64| async move {
            let docs: Vec<Document> = db
                .fluent()
                .select()
                .fields([field])
                .from(collection)
                .parent(layout.root())
                .filter(|q| q.field(field).less_than(value))
                .limit(limit)
                .query()
                .await
                .map_err(store_error)?;
            Ok::<_, zapfn_store::StoreError>(
                docs.iter()
                    .map(|doc| DocRef {
                        parent: layout.root().to_owned(),
                        collection,
                        id: doc_id(doc).to_owned(),
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let dead = older(
            collections::DEAD_LETTERS,
            "dead_at_ms",
            before.saturating_mul(1000),
        )
        .await?;
        let raw = older(collections::RAW_EVENTS, "received_at", before).await?;
        let (empty, dead, raw) = (&empty, &dead, &raw);
        self.transact(move |mut tx| async move {
            let result = async {
                Ok(Erased {
                    conversations: delete_existing::<ConversationDoc>(&mut tx, empty).await?,
                    events: delete_existing::<DeadLetterDoc>(&mut tx, dead).await?,
                    raw_events: delete_existing::<RawEventDoc>(&mut tx, raw).await?,
                    ..Erased::default()
                })
            }
            .await;
            (tx, result)
        })
        .await
    }
}

/// The status events of `messages` (by zapfn id and by wamid).
async fn status_event_docs(
    db: &FirestoreDb,
    layout: &Layout,
    messages: &[MessageDoc],
) -> Result<Vec<DocRef>> {
    let mut docs = Vec::new();
    for message in messages {
        let subjects: Vec<&str> = [Some(message.id.as_str()), message.wamid.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        for chunk in subjects.chunks(MAX_IN_VALUES) {
            let found: Vec<StatusEventDoc> = db
                .fluent()
                .select()
                .from(collections::STATUS_EVENTS)
                .parent(layout.status_events_parent(&message.phone_number_id))
                .filter(|q| q.field("subject").is_in(chunk.to_vec()))
                .obj()
                .query()
                .await
                .map_err(store_error)?;
            docs.extend(found.iter().map(|event| {
                layout.status_event(
                    &message.phone_number_id,
                    &event.subject,
                    &event.status,
                    event.participant.as_deref(),
                )
            }));
        }
    }
    Ok(docs)
}

/// In one transaction: the messages, their look-ups and status events, and the
/// unkeyed events and dead letters naming them.
async fn erase_in(
    tx: &mut Tx,
    layout: &Layout,
    messages: &[MessageDoc],
    status_docs: &[DocRef],
    events: &[DocRef],
    dead: &[DocRef],
) -> Result<Erased> {
    let mut erased = Erased::default();
    for message in messages {
        let Some(doc) = layout.message(&message.id) else {
            continue;
        };
        let Some(current) = tx.get::<MessageDoc>(&doc).await? else {
            continue;
        };
        tx.delete(&doc);
        erased.messages += 1;
        let lookups = [
            current.wamid.as_deref().map(|w| layout.wamid(w)),
            current
                .idempotency_key
                .as_deref()
                .map(|k| layout.idempotency_key(k)),
        ];
        for lookup in lookups.into_iter().flatten() {
            if tx
                .get::<LookupDoc>(&lookup)
                .await?
                .is_some_and(|found| found.message_id == current.id)
            {
                tx.delete(&lookup);
            }
        }
    }
    erased.status_events = delete_existing::<StatusEventDoc>(tx, status_docs).await?;
    erased.events = delete_existing::<EventDoc>(tx, events).await?
        + delete_existing::<DeadLetterDoc>(tx, dead).await?;
    Ok(erased)
}

/// Deletes up to [`EVENTS_PER_TX`] events of one ordering key from its head,
/// handing the key to the next event when some remain (as an ack does), or
/// deleting its state when none do. Returns how many and whether more remain.
async fn drop_key_events(tx: &mut Tx, layout: &Layout, key_doc: &DocRef) -> Result<(u64, bool)> {
    let Some(mut state) = tx.get::<OrderingKeyDoc>(key_doc).await? else {
        return Ok((0, false));
    };
    let end = state.next_seq.min(state.head_seq + EVENTS_PER_TX);
    let docs: Vec<DocRef> = (state.head_seq..end)
        .filter_map(|seq| layout.event(&keyed_event_id(&key_doc.id, &state.generation, seq)))
        .collect();
    let deleted = delete_existing::<EventDoc>(tx, &docs).await?;
    state.head_seq = end;
    if state.head_seq >= state.next_seq {
        tx.delete(key_doc);
        return Ok((deleted, false));
    }
    tx.set(key_doc, &state)?;
    let next = layout
        .event(&keyed_event_id(
            &key_doc.id,
            &state.generation,
            state.head_seq,
        ))
        .expect("the store's own event ids are valid");
    if let Some(mut event) = tx.get::<EventDoc>(&next).await? {
        event.head = true;
        tx.set(&next, &event)?;
    }
    Ok((deleted, true))
}
