//! One attempt of a read-write transaction, with read-your-writes.
//!
//! Firestore sends a transaction's writes only at commit, so a read after a
//! write would not see it. [`Tx`] keeps every document it read or wrote and
//! answers later reads from that, so the store's logic can read, decide and
//! write in any order (one notification may hold the same wamid twice, or two
//! messages of one conversation). Each document is written at most once per
//! commit, with its final state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use firestore::gcloud_sdk::google::firestore::v1::{write, Document, Write};
use firestore::{
    FirestoreDb, FirestoreResult, FirestoreTransaction, FirestoreTransactionData,
    FirestoreTransactionOps,
};
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use zapfn_store::Result;

use crate::error::{is_contention, store_error};
use crate::layout::{random_hex, unkeyed_event_id, DocRef};
use crate::own::OwnChange;

/// The state of one transaction attempt.
pub(crate) struct Tx {
    /// Reads through this handle take part in the transaction.
    db: FirestoreDb,
    data: FirestoreTransactionData,
    /// Every document read or written so far, by name (None: absent or deleted).
    seen: HashMap<String, Option<Document>>,
    /// The final state of every written document, by name (None: delete).
    writes: BTreeMap<String, Option<Document>>,
    /// Topics this transaction publishes to.
    topics: BTreeSet<String>,
    /// Random stem and count of the unkeyed events published.
    event_stem: String,
    events: usize,
    /// What this attempt changes in the handle's own events, once committed.
    own: Vec<OwnChange>,
    /// A read lost a conflict with another transaction: retry the whole attempt.
    contended: bool,
    /// The attempt's clock (Unix ms): every time it writes is this one.
    pub now_ms: i64,
}

impl Tx {
    pub(crate) fn new(db: FirestoreDb, data: FirestoreTransactionData, now_ms: i64) -> Tx {
        Tx {
            db,
            data,
            seen: HashMap::new(),
            writes: BTreeMap::new(),
            topics: BTreeSet::new(),
            event_stem: random_hex(),
            events: 0,
            own: Vec::new(),
            contended: false,
            now_ms,
        }
    }

    /// The attempt's clock in Unix seconds.
    pub(crate) fn now(&self) -> i64 {
        self.now_ms / 1000
    }

    /// Maps a transactional read's error, noting contention.
    fn track<T>(&mut self, result: FirestoreResult<T>) -> Result<T> {
        result.map_err(|error| {
            self.contended |= is_contention(&error);
            store_error(error)
        })
    }

    /// Whether a read of this attempt lost a conflict (the attempt runs again).
    pub(crate) fn contended(&self) -> bool {
        self.contended
    }

    /// A document as this transaction sees it.
    pub(crate) async fn get<T: DeserializeOwned>(&mut self, doc: &DocRef) -> Result<Option<T>> {
        let name = doc.name();
        if !self.seen.contains_key(&name) {
            let fetched = self
                .db
                .fluent()
                .select()
                .by_id_in(doc.collection)
                .parent(&doc.parent)
                .one(&doc.id)
                .await;
            let fetched = self.track(fetched)?;
            self.seen.insert(name.clone(), fetched);
        }
        self.seen[&name].as_ref().map(decode).transpose()
    }

    /// Reads the documents not seen yet in one round trip per collection, so
    /// that the `get`s that follow need none.
    pub(crate) async fn prefetch(&mut self, docs: &[DocRef]) -> Result<()> {
        let mut groups: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
        for doc in docs
            .iter()
            .filter(|doc| !self.seen.contains_key(&doc.name()))
        {
            groups
                .entry((doc.parent.as_str(), doc.collection))
                .or_default()
                .insert(doc.id.as_str());
        }
        let fetches = groups.into_iter().map(|((parent, collection), ids)| {
            let db = &self.db;
            async move {
                let found: Vec<(String, Option<Document>)> = db
                    .fluent()
                    .select()
                    .by_id_in(collection)
                    .parent(parent)
                    .batch_with_errors(ids)
                    .await?
                    .try_collect()
                    .await?;
                FirestoreResult::Ok(
                    found
                        .into_iter()
                        .map(|(id, doc)| (format!("{parent}/{collection}/{id}"), doc))
                        .collect::<Vec<_>>(),
                )
            }
        });
        let fetched = futures::future::try_join_all(fetches).await;
        for (name, doc) in self.track(fetched)?.into_iter().flatten() {
            self.seen.entry(name).or_insert(doc);
        }
        Ok(())
    }

    /// Writes the whole document at commit (creating or replacing it).
    pub(crate) fn set<T: Serialize>(&mut self, doc: &DocRef, value: &T) -> Result<()> {
        let name = doc.name();
        let encoded = FirestoreDb::serialize_to_doc(&name, value).map_err(store_error)?;
        self.seen.insert(name.clone(), Some(encoded.clone()));
        self.writes.insert(name, Some(encoded));
        Ok(())
    }

    /// Deletes the document at commit.
    pub(crate) fn delete(&mut self, doc: &DocRef) {
        let name = doc.name();
        self.seen.insert(name.clone(), None);
        self.writes.insert(name, None);
    }

    /// Notes that this transaction publishes to `topic`.
    pub(crate) fn note_topic(&mut self, topic: &str) {
        if !self.topics.contains(topic) {
            self.topics.insert(topic.to_owned());
        }
    }

    /// The topics this transaction publishes to.
    pub(crate) fn topics(&self) -> &BTreeSet<String> {
        &self.topics
    }

    /// Makes an event this handle's to forward once `due_ms` has passed (if the
    /// transaction commits).
    pub(crate) fn remember_own(&mut self, topic: &str, id: &str, due_ms: i64) {
        self.own.push(OwnChange::Remember {
            topic: topic.to_owned(),
            id: id.to_owned(),
            due_ms,
        });
    }

    /// Takes an event off this handle's own events (if the transaction commits).
    pub(crate) fn forget_own(&mut self, topic: &str, id: &str) {
        self.own.push(OwnChange::Forget {
            topic: topic.to_owned(),
            id: id.to_owned(),
        });
    }

    /// The changes to the own events, to apply after the commit.
    pub(crate) fn take_own(&mut self) -> Vec<OwnChange> {
        std::mem::take(&mut self.own)
    }

    /// The id of the next unkeyed event this transaction publishes.
    pub(crate) fn next_unkeyed_event_id(&mut self) -> String {
        self.events += 1;
        unkeyed_event_id(&self.event_stem, self.events)
    }

    /// Commits the writes on `db` (the store's own handle).
    pub(crate) async fn commit(self, db: &FirestoreDb) -> FirestoreResult<()> {
        let mut data = self.data;
        for (name, document) in self.writes {
            let operation = match document {
                Some(document) => write::Operation::Update(document),
                None => write::Operation::Delete(name),
            };
            data.add(WholeDocument(operation))?;
        }
        FirestoreTransaction::from_data(db, data).commit().await?;
        Ok(())
    }

    /// Abandons the attempt, releasing its locks now.
    pub(crate) async fn rollback(self, db: &FirestoreDb) {
        if let Err(error) = FirestoreTransaction::from_data(db, self.data)
            .rollback()
            .await
        {
            tracing::debug!(%error, "transaction rollback failed (it expires on its own)");
        }
    }
}

/// A write of a whole document (or its deletion), without precondition.
struct WholeDocument(write::Operation);

impl TryFrom<WholeDocument> for Write {
    type Error = firestore::errors::FirestoreError;

    fn try_from(write: WholeDocument) -> Result<Write, Self::Error> {
        Ok(Write {
            update_mask: None,
            update_transforms: Vec::new(),
            current_document: None,
            operation: Some(write.0),
        })
    }
}

/// A stored document as a record.
fn decode<T: DeserializeOwned>(doc: &Document) -> Result<T> {
    FirestoreDb::deserialize_doc_to(doc).map_err(store_error)
}

/// The id (last path segment) of a document.
pub(crate) fn doc_id(doc: &Document) -> &str {
    doc.name.rsplit('/').next().unwrap_or_default()
}
