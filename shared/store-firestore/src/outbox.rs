//! The transactional outbox: events written in the transaction of the data they
//! describe, leased by consumers (the embedded consumers, or the relay that
//! forwards them to Pub/Sub and Cloud Tasks), retried with backoff and
//! dead-lettered when they run out.
//!
//! Events of one topic with the same ordering key are delivered one at a time,
//! in order: each key has a state document (`outbox_keys`) that numbers its
//! events, and only the oldest pending event of a key is marked `head`. A claim
//! asks for due heads only, oldest first (one composite index on `topic`,
//! `head`, `created_at_ms`, `due_at_ms`), so it never scans the events waiting
//! behind a key; like the SQLite store's, it skips heads that are leased or
//! backing off. Removing a head (ack, dead letter) marks the next event of its
//! key as head, in the same transaction.
//!
//! [`lease`] also takes the ids a handle remembers as its own (see
//! [`crate::own`]), and a sweep's query asks for heads due for a while.

use std::time::Duration;

use firestore::FirestoreDb;
use futures::TryStreamExt;
use serde::Deserialize;
use zapfn_store::{Delivery, QueueDepths, Result, Settlement, StoreError};

use crate::error::store_error;
use crate::layout::{collections, keyed_event_id, random_hex, DocRef, Layout};
use crate::records::{DeadLetterDoc, EventDoc, OrderingKeyDoc, TopicDoc};
use crate::tx::{doc_id, Tx};

/// When an event of the outbox is retried and dead-lettered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub max_attempts: u32,
    pub max_retry_age: Duration,
}

/// Adds an event to the outbox inside the caller's transaction.
pub(crate) async fn publish(
    tx: &mut Tx,
    layout: &Layout,
    topic: &str,
    ordering_key: Option<&str>,
    payload: String,
) -> Result<()> {
    let now = tx.now_ms;
    let (id, key_seq, head) = match ordering_key {
        None => (tx.next_unkeyed_event_id(), None, true),
        Some(key) => {
            let key_doc = layout.ordering_key(topic, key);
            let mut state = tx
                .get::<OrderingKeyDoc>(&key_doc)
                .await?
                .unwrap_or_else(|| OrderingKeyDoc {
                    topic: topic.to_owned(),
                    ordering_key: key.to_owned(),
                    generation: random_hex()[..12].to_owned(),
                    next_seq: 0,
                    head_seq: 0,
                });
            let seq = state.next_seq;
            let head = state.head_seq == seq;
            state.next_seq += 1;
            tx.set(&key_doc, &state)?;
            (
                keyed_event_id(&key_doc.id, &state.generation, seq),
                Some(seq),
                head,
            )
        }
    };
    let doc = layout
        .event(&id)
        .expect("the store's own event ids are valid");
    tx.set(
        &doc,
        &EventDoc {
            topic: topic.to_owned(),
            ordering_key: ordering_key.map(str::to_owned),
            key_seq,
            payload,
            attempts: 0,
            available_at_ms: now,
            leased_until_ms: 0,
            due_at_ms: now,
            head,
            last_error: None,
            created_at_ms: now,
            first_attempt_at_ms: None,
        },
    )?;
    tx.note_topic(topic);
    if head {
        tx.remember_own(topic, &id, now);
    }
    Ok(())
}

/// Most events one claim leases (each is a write of the claiming transaction).
pub(crate) const MAX_CLAIM: usize = 200;

/// The ids of up to `limit` heads of `topic` that have been due for `idle`
/// (zero: due now), oldest first. Read outside the claiming transaction (a
/// transactional query would lock what it scans against every settle);
/// [`lease`] checks each again inside it.
pub(crate) async fn due_heads(
    db: &FirestoreDb,
    layout: &Layout,
    topic: &str,
    limit: usize,
    idle: Duration,
) -> Result<Vec<String>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = chrono::Utc::now().timestamp_millis() - idle.as_millis() as i64;
    let due = db
        .fluent()
        .select()
        .fields(["topic"])
        .from(collections::OUTBOX)
        .parent(layout.root())
        .filter(|q| {
            q.for_all([
                q.field("topic").eq(topic),
                q.field("head").eq(true),
                q.field("due_at_ms").less_than_or_equal(now),
            ])
        })
        // Oldest first, as published (the range field comes last: Firestore
        // walks the index in publish order and skips heads not due).
        .order(|o| {
            o.fields([
                o.field("created_at_ms").ascending(),
                o.field("due_at_ms").ascending(),
            ])
        })
        .limit(limit.min(u32::MAX as usize) as u32)
        .query()
        .await
        .map_err(store_error)?;
    Ok(due.iter().map(|doc| doc_id(doc).to_owned()).collect())
}

/// When the oldest event of `topic` was published: the oldest head (an event
/// behind an ordering key is newer than its head), through the claim's index.
pub(crate) async fn oldest_pending_ms(
    db: &FirestoreDb,
    layout: &Layout,
    topic: &str,
) -> Result<Option<i64>> {
    let oldest: Vec<EventDoc> = db
        .fluent()
        .select()
        .from(collections::OUTBOX)
        .parent(layout.root())
        .filter(|q| q.for_all([q.field("topic").eq(topic), q.field("head").eq(true)]))
        .order(|o| {
            o.fields([
                o.field("created_at_ms").ascending(),
                o.field("due_at_ms").ascending(),
            ])
        })
        .limit(1)
        .obj()
        .query()
        .await
        .map_err(store_error)?;
    Ok(oldest.first().map(|event| event.created_at_ms))
}

/// Leases those of `ids` that are still heads of `topic` due for `idle` (zero:
/// due now), in that order. The leased ones become this handle's own events
/// (due again when the lease ends); ids that are gone, not heads or leased by
/// someone else stop being its own.
pub(crate) async fn lease(
    tx: &mut Tx,
    layout: &Layout,
    topic: &str,
    ids: &[String],
    lease: Duration,
    idle: Duration,
) -> Result<Vec<Delivery>> {
    let now = tx.now_ms;
    let due_by = now - idle.as_millis() as i64;
    let lease_until_ms = now + lease.as_millis() as i64;
    let docs: Vec<DocRef> = ids.iter().filter_map(|id| layout.event(id)).collect();
    tx.prefetch(&docs).await?;
    let mut deliveries = Vec::with_capacity(docs.len());
    for doc in docs {
        let Some(mut event) = tx.get::<EventDoc>(&doc).await? else {
            tx.forget_own(topic, &doc.id);
            continue;
        };
        if event.topic != topic || !event.head || event.leased_until_ms > now {
            tx.forget_own(topic, &doc.id);
            continue;
        }
        if event.due_at_ms > due_by {
            if event.leased_until_ms == 0 {
                tx.remember_own(topic, &doc.id, event.due_at_ms);
            }
            continue;
        }
        event.attempts += 1;
        let first_attempt_at_ms = *event.first_attempt_at_ms.get_or_insert(now);
        event.leased_until_ms = lease_until_ms;
        event.due_at_ms = lease_until_ms;
        tx.set(&doc, &event)?;
        tx.remember_own(topic, &doc.id, lease_until_ms);
        deliveries.push(Delivery {
            id: doc.id,
            topic: topic.to_owned(),
            ordering_key: event.ordering_key,
            payload: serde_json::from_str(&event.payload)?,
            attempt: event.attempts as u32,
            first_attempt_at_ms,
            lease_until_ms,
        });
    }
    Ok(deliveries)
}

/// Applies a consumer's verdict on a leased event, if the lease is still its
/// own (a settle after the lease expired, when the event may be with another
/// consumer, changes nothing: the newer delivery decides).
pub(crate) async fn settle(
    tx: &mut Tx,
    layout: &Layout,
    delivery: &Delivery,
    settlement: Settlement,
    policy: RetryPolicy,
) -> Result<()> {
    let doc = layout
        .event(&delivery.id)
        .ok_or_else(|| StoreError::Invalid(format!("not an outbox event id: {}", delivery.id)))?;
    let Some(mut event) = tx.get::<EventDoc>(&doc).await? else {
        return Ok(());
    };
    if event.leased_until_ms != delivery.lease_until_ms {
        return Ok(());
    }
    let now = tx.now_ms;
    let (after, error) = match settlement {
        Settlement::Ack => return remove_head(tx, layout, &doc, &event).await,
        Settlement::Defer { after } => {
            if event.attempts <= 1 {
                event.first_attempt_at_ms = None;
            }
            event.attempts = (event.attempts - 1).max(0);
            return make_due(tx, &doc, event, now + after.as_millis() as i64, None);
        }
        Settlement::DeadLetter { error } => (None, error),
        Settlement::Retry { after, error } => (Some(after), error),
    };
    let next = after.map(|after| now + after.as_millis() as i64);
    let retry = next.filter(|next| {
        delivery.attempt < policy.max_attempts
            && next - delivery.first_attempt_at_ms <= policy.max_retry_age.as_millis() as i64
    });
    match retry {
        Some(next) => make_due(tx, &doc, event, next, Some(error)),
        None => {
            tracing::warn!(event_id = %delivery.id, error, "event dead-lettered");
            tx.set(
                &layout.dead_letter(&doc.id),
                &DeadLetterDoc {
                    topic: event.topic.clone(),
                    ordering_key: event.ordering_key.clone(),
                    payload: event.payload.clone(),
                    attempts: event.attempts,
                    last_error: Some(error),
                    created_at_ms: event.created_at_ms,
                    dead_at_ms: now,
                },
            )?;
            remove_head(tx, layout, &doc, &event).await
        }
    }
}

/// Extends the lease of `delivery` to `lease` from now if it is still the
/// holder's; returns the new end.
pub(crate) async fn renew_lease(
    tx: &mut Tx,
    layout: &Layout,
    delivery: &Delivery,
    lease: Duration,
) -> Result<Option<i64>> {
    let doc = layout
        .event(&delivery.id)
        .ok_or_else(|| StoreError::Invalid(format!("not an outbox event id: {}", delivery.id)))?;
    let Some(mut event) = tx.get::<EventDoc>(&doc).await? else {
        return Ok(None);
    };
    if event.leased_until_ms != delivery.lease_until_ms {
        return Ok(None);
    }
    let until = tx.now_ms + lease.as_millis() as i64;
    event.leased_until_ms = until;
    event.due_at_ms = until;
    tx.remember_own(&event.topic, &doc.id, until);
    tx.set(&doc, &event)?;
    Ok(Some(until))
}

/// Unleases an event and makes it due at `at`, still this handle's own.
fn make_due(
    tx: &mut Tx,
    doc: &DocRef,
    mut event: EventDoc,
    at: i64,
    error: Option<String>,
) -> Result<()> {
    event.available_at_ms = at;
    event.leased_until_ms = 0;
    event.due_at_ms = at;
    if error.is_some() {
        event.last_error = error;
    }
    tx.remember_own(&event.topic, &doc.id, at);
    tx.set(doc, &event)
}

/// Deletes a head event and hands its ordering key to the next event, if any,
/// which becomes due now and this handle's own (so whoever settles an event
/// forwards the next of its key).
async fn remove_head(tx: &mut Tx, layout: &Layout, doc: &DocRef, event: &EventDoc) -> Result<()> {
    tx.delete(doc);
    tx.forget_own(&event.topic, &doc.id);
    let (Some(key), Some(seq)) = (&event.ordering_key, event.key_seq) else {
        return Ok(());
    };
    let key_doc = layout.ordering_key(&event.topic, key);
    let Some(mut state) = tx.get::<OrderingKeyDoc>(&key_doc).await? else {
        return Ok(());
    };
    state.head_seq = state.head_seq.max(seq + 1);
    if state.head_seq >= state.next_seq {
        tx.delete(&key_doc);
        return Ok(());
    }
    tx.set(&key_doc, &state)?;
    let next_id = keyed_event_id(&key_doc.id, &state.generation, state.head_seq);
    let next_doc = layout
        .event(&next_id)
        .expect("the store's own event ids are valid");
    if let Some(mut next) = tx.get::<EventDoc>(&next_doc).await? {
        // Due from now on: a sweep of idle events leaves it to this handle.
        let now = tx.now_ms;
        next.head = true;
        next.available_at_ms = next.available_at_ms.max(now);
        next.due_at_ms = next.due_at_ms.max(now);
        tx.remember_own(&next.topic, &next_doc.id, next.due_at_ms);
        tx.set(&next_doc, &next)?;
    }
    Ok(())
}

/// Events with a lease, to release; at most this many per transaction.
const RELEASE_BATCH: usize = 200;

/// The ids of every leased event (read outside a transaction; each batch is
/// re-read in its own).
pub(crate) async fn leased_event_ids(
    db: &FirestoreDb,
    layout: &Layout,
) -> Result<Vec<Vec<String>>> {
    let leased: Vec<firestore::gcloud_sdk::google::firestore::v1::Document> = db
        .fluent()
        .select()
        .fields(["leased_until_ms"])
        .from(collections::OUTBOX)
        .parent(layout.root())
        .filter(|q| q.field("leased_until_ms").greater_than(0))
        .stream_query_with_errors()
        .await
        .map_err(store_error)?
        .try_collect()
        .await
        .map_err(store_error)?;
    let ids: Vec<String> = leased.iter().map(|doc| doc_id(doc).to_owned()).collect();
    Ok(ids.chunks(RELEASE_BATCH).map(<[String]>::to_vec).collect())
}

/// Releases the leases of these events; returns how many were still leased.
pub(crate) async fn release(tx: &mut Tx, layout: &Layout, ids: &[String]) -> Result<usize> {
    let docs: Vec<DocRef> = ids.iter().filter_map(|id| layout.event(id)).collect();
    tx.prefetch(&docs).await?;
    let mut released = 0;
    for doc in &docs {
        let Some(mut event) = tx.get::<EventDoc>(doc).await? else {
            continue;
        };
        if event.leased_until_ms > 0 {
            event.leased_until_ms = 0;
            event.due_at_ms = event.available_at_ms;
            tx.set(doc, &event)?;
            released += 1;
        }
    }
    Ok(released)
}

/// Keeps an event that was not in the outbox (delivered by push) as a dead letter.
pub(crate) async fn dead_letter_pushed(
    db: &FirestoreDb,
    layout: &Layout,
    topic: &str,
    payload: &serde_json::Value,
    attempts: u32,
    error: &str,
) -> Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let doc = layout.dead_letter(&format!("pushed_{}", random_hex()));
    let letter = DeadLetterDoc {
        topic: topic.to_owned(),
        ordering_key: None,
        payload: payload.to_string(),
        attempts: attempts.into(),
        last_error: Some(error.to_owned()),
        created_at_ms: now,
        dead_at_ms: now,
    };
    db.fluent()
        .update()
        .in_col(doc.collection)
        .document_id(&doc.id)
        .parent(&doc.parent)
        .object(&letter)
        .execute::<()>()
        .await
        .map_err(store_error)?;
    tracing::warn!(topic, error, "pushed event dead-lettered");
    Ok(())
}

/// Registers a topic for `queue_depths` (idempotent).
pub(crate) async fn register_topic(db: &FirestoreDb, layout: &Layout, topic: &str) -> Result<()> {
    let doc = layout.topic(topic);
    db.fluent()
        .update()
        .in_col(doc.collection)
        .document_id(&doc.id)
        .parent(&doc.parent)
        .object(&TopicDoc {
            topic: topic.to_owned(),
        })
        .execute::<()>()
        .await
        .map_err(store_error)
}

#[derive(Deserialize)]
struct Count {
    count: u64,
}

/// Events waiting or in flight per registered topic, and the dead letters.
pub(crate) async fn depths(db: &FirestoreDb, layout: &Layout) -> Result<QueueDepths> {
    let topics: Vec<TopicDoc> = db
        .fluent()
        .select()
        .from(collections::TOPICS)
        .parent(layout.root())
        .obj()
        .query()
        .await
        .map_err(store_error)?;
    let pending = futures::future::try_join_all(topics.into_iter().map(|entry| async move {
        let count = count(db, layout, collections::OUTBOX, Some(&entry.topic)).await?;
        Ok::<_, StoreError>((entry.topic, count))
    }))
    .await?;
    Ok(QueueDepths {
        pending: pending.into_iter().filter(|(_, n)| *n > 0).collect(),
        dead_letters: count(db, layout, collections::DEAD_LETTERS, None).await?,
    })
}

/// The number of documents of a root collection (of one topic, if given).
async fn count(
    db: &FirestoreDb,
    layout: &Layout,
    collection: &str,
    topic: Option<&str>,
) -> Result<u64> {
    let counts: Vec<Count> = db
        .fluent()
        .select()
        .from(collection)
        .parent(layout.root())
        .filter(|q| topic.and_then(|topic| q.field("topic").eq(topic)))
        .aggregate(|a| a.fields([a.field("count").count()]))
        .obj()
        .query()
        .await
        .map_err(store_error)?;
    Ok(counts.first().map_or(0, |c| c.count))
}
