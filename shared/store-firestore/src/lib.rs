//! zapfn's [`Store`] on Google Cloud Firestore (native mode), with the same
//! behaviour as the embedded SQLite store: messages deduplicated by wamid,
//! statuses by (wamid, status) with their full history, monotonic status
//! updates, placeholders for statuses of unknown wamids, conversations and the
//! 24-hour window, keyset pagination, and the transactional outbox (claim,
//! leases, ordering keys, retries, dead letters).
//!
//! ```no_run
//! # async fn run() -> zapfn_store::Result<()> {
//! use zapfn_store_firestore::{FirestoreConfig, FirestoreStore};
//! // The emulator when FIRESTORE_EMULATOR_HOST is set, else Google Cloud (ADC).
//! let store = FirestoreStore::connect(FirestoreConfig::new("my-project")).await?;
//! # Ok(()) }
//! ```
//!
//! Every write that belongs together is one Firestore transaction: it reads
//! what it decides on, and commits its writes (messages, look-ups, status
//! events, and the outbox events that describe them) atomically. A transaction
//! that loses a conflict (`ABORTED`) runs again with backoff, for up to a
//! minute. Within one process, operations that would write the same documents
//! (a conversation, an ordering key, a wamid, a message) first queue on local
//! locks, so they do not fight in Firestore at all. Errors Firestore reports
//! as unavailable, aborted (after the retries) or past a deadline, and a lost
//! connection, come back as [`StoreError::Unavailable`]; a bad configuration
//! or an id this store never gave out as [`StoreError::Invalid`].
//!
//! # Layout
//!
//! Everything lives under one root document, `{prefix}/v1` (the prefix is
//! configurable, so stores can share a database), in these collections:
//!
//! | path (under `{prefix}/v1/`) | document id | what |
//! |---|---|---|
//! | `phone_numbers/{pnid}/messages/{id}` | `msg_{random}_{pnid}` | a message (inbound, outbound or placeholder) |
//! | `phone_numbers/{pnid}/conversations/{id}` | `conv_{hash(pnid, wa_id)}_{pnid}` | one per (business number, customer) |
//! | `phone_numbers/{pnid}/status_events/{id}` | `hash(subject, status[, participant])` | every status event, once per (wamid or id, status, group member) |
//! | `wamids/{id}` | `hash(wamid)` | makes a wamid unique; names its message |
//! | `idempotency_keys/{id}` | `hash(key)` | makes a send's idempotency key unique |
//! | `raw_events/{id}` | random | webhook content that is not a message or status |
//! | `outbox/{id}` | `evt_{random}_{n}`, or `evt_{key}_{generation}_{seq}` | pending events |
//! | `outbox_keys/{id}` | `hash(topic, ordering key)` | the sequence of one ordering key |
//! | `dead_letters/{id}` | the event's id, or `pushed_{random}` | events given up on |
//! | `topics/{topic}` | the topic | topics that had events (for `queue_depths`) |
//! | `api_keys/{id}` | the key hash | API keys (scopes, numbers, rate, revocation) |
//! | `audit_log/{id}` | random | the audit log of state-changing API calls (newest first by `at_ms`) |
//!
//! - **Partitioned per business number**: a number's messages, conversations
//!   and status events are its own subcollections; message and conversation
//!   ids end with the number, so a read by id needs no look-up.
//! - **No hot spots on ids**: ids are random or hashes; time order is kept in
//!   fields (`timestamp`, `last_message_at`, `due_at_ms`). A pnid that is not
//!   short ASCII letters, digits and `-` appears in paths as `~{hash}`.
//! - **Uniqueness** (wamids, idempotency keys, status events, one conversation
//!   per pair) comes from deterministic document ids, checked and written in
//!   the same transaction.
//! - JSON kept as it came (raw objects, bodies, payloads, media, errors) is a
//!   JSON string field, so it round-trips byte for byte.
//!
//! # Queries and indexes
//!
//! Most reads are gets by id. The queries, and the composite indexes they need
//! (listed with reasons in `indexes.json` next to this crate's `Cargo.toml`,
//! in the Firebase CLI format that `infra/` turns into Terraform):
//!
//! | query | index |
//! |---|---|
//! | claim and sweep: `outbox` where `topic ==`, `head == true`, `due_at_ms <=` now (minus the idle time), by `created_at_ms`, `due_at_ms`; the oldest pending event, without the `due_at_ms` filter | composite (topic, head, created_at_ms, due_at_ms) |
//! | a conversation's messages: `messages` where `conversation_id ==`, by `timestamp desc`, `id desc` | composite |
//! | one number's conversations: by `last_message_at desc`, `id desc` | composite |
//! | all conversations (collection group, `store ==` prefix), optionally `wa_id ==` | two composites |
//! | status histories: `status_events` where `subject in [...]` | automatic single-field |
//! | leased events (`release_leases`), pending per topic (`queue_depths`) | automatic single-field |
//! | keys by name (`revoke_api_key`), audit log by `at_ms desc` | automatic single-field |
//!
//! `fieldOverrides` there exempt the large JSON text fields from single-field
//! indexing: they are never queried, and indexing them costs a write each.
//!
//! Collection-group queries run from the database root (the emulator runs them
//! nowhere else) and keep to this store through the `store` field.
//!
//! # Many instances, one outbox
//!
//! Deployed, every instance of every function writes to the same outbox, and
//! a relay in each forwards events to Pub/Sub and Cloud Tasks. Firestore has
//! no `SKIP LOCKED`: relays that each query for the oldest due heads pick the
//! same ones, and their leasing transactions fight over those documents
//! (aborts and lock waits; on the emulator, a lock timeout per conflict).
//! So relays do not query:
//!
//! - **Own events, by id** (`claim_own`): a store handle remembers the
//!   events its own transactions published, leased or made the head of their
//!   ordering key (settling an event hands its key to the next event, which
//!   becomes the settler's to forward). A relay leases exactly those, in one
//!   transaction over their documents; no other instance reads them. With
//!   none due, a claim makes no request at all. The handle keeps ids and due
//!   times only, at most 10,000 per topic.
//! - **A sweep of idle events** (`claim_idle`): an event whose instance died
//!   between commit and forward stays due with nobody leasing it. One caller
//!   (Cloud Scheduler's `POST /_relay`, on one function) queries for heads due
//!   for longer than an idle time, longer than an owner takes to forward or
//!   retry. A head that was just handed its key counts as due from then, so a
//!   sweep does not take it from the instance that is about to forward it.
//!
//! Contention is then what the data itself has: writers of one conversation
//! or ordering key, and an owner and the sweep on an event that stayed idle.
//!
//! # Limits
//!
//! - One ordering key's events and one conversation are each a document that
//!   concurrent writers of that key or conversation serialize on (Firestore
//!   sustains about one write per second per document; bursts are absorbed by
//!   the transaction retries). Different customers never contend.
//! - The claim index orders by `due_at_ms`, a time: Firestore's guidance caps
//!   such an index near 500 writes/s per topic.
//! - Leases and due times use the clock of the process that writes them, as
//!   in the SQLite store.
//! - A notification of more than 50 items (rare: Meta batches a few) is
//!   stored in several transactions, each inside Firestore's writes-per-commit
//!   limit; a failure between them is safe to redeliver (duplicates are
//!   recognised, nothing is published twice). A claim leases at most 200 events.
//! - Embedded consumers on this store (`claim`, everything due) in several
//!   processes pick the same oldest heads and contend (one retries); leasing
//!   is still exclusive. Relays do not (see above).
//! - Own events are remembered in memory: after a restart, or over the bound,
//!   an instance's unforwarded events wait for the sweep.

mod audit;
mod contacts;
mod error;
mod ingest;
mod keys;
mod layout;
mod local_locks;
mod media;
mod messages;
mod outbox;
mod own;
mod reads;
mod records;
mod tx;

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use firestore::{
    FirestoreConsistencySelector, FirestoreDb, FirestoreDbOptions, FirestoreTransactionMode,
    FirestoreTransactionOptions,
};
use rand::Rng;
use zapfn_store::{
    topics, ApiKey, AuditEntry, Conversation, ConversationQuery, Delivery, Enqueued, Erased,
    IngestReport, MessageView, NewEvent, NewOutbound, OutboundMessage, Page, PageRequest,
    QueueDepths, Result, Settlement, Store, StoreError, StoredMessage, StoredRawEvent,
};
use zapfn_whatsapp::webhook::{Notification, StatusUpdate};

/// The collection names of the layout above, for tools that read the
/// documents themselves (the load test's reconciliation).
pub use crate::layout::collections;

use crate::error::{is_contention, store_error};
use crate::layout::Layout;
use crate::local_locks::{LocalLocks, Name};
use crate::outbox::RetryPolicy;
use crate::own::OwnEvents;
use crate::records::ApiKeyDoc;
use crate::tx::Tx;

/// Where the store lives and how its outbox retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirestoreConfig {
    /// The Google Cloud project.
    pub project_id: String,
    /// The Firestore database (`(default)` unless the project has several).
    pub database_id: String,
    /// The root collection everything is kept under (a valid collection id,
    /// e.g. `zapfn`): stores with different prefixes share nothing.
    pub prefix: String,
    /// Deliveries of one outbox event before it is dead-lettered.
    pub max_attempts: u32,
    /// Age after an event's first attempt past which a retry dead-letters it.
    pub max_retry_age: Duration,
}

impl FirestoreConfig {
    /// The `(default)` database, prefix `zapfn`, and the deployed retry
    /// defaults (5 attempts, 300 s).
    pub fn new(project_id: impl Into<String>) -> FirestoreConfig {
        FirestoreConfig {
            project_id: project_id.into(),
            database_id: firestore::FIREBASE_DEFAULT_DATABASE_ID.to_owned(),
            prefix: "zapfn".to_owned(),
            max_attempts: 5,
            max_retry_age: Duration::from_secs(300),
        }
    }
}

/// Longest a transaction keeps retrying after contention.
const CONTENTION_BUDGET: Duration = Duration::from_secs(60);
/// Longest one Firestore request may take before it is `Unavailable`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The Firestore-backed [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct FirestoreStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: FirestoreDb,
    layout: Layout,
    policy: RetryPolicy,
    /// Topics this process has registered (see [`outbox::register_topic`]).
    registered_topics: Mutex<HashSet<String>>,
    locks: LocalLocks,
    /// The outbox events this handle forwards (see [`own`]).
    own: OwnEvents,
}

impl FirestoreStore {
    /// Connects to Firestore: the emulator at `FIRESTORE_EMULATOR_HOST` when it
    /// is set (no credentials needed), otherwise Google Cloud with Application
    /// Default Credentials. `Unavailable` when it cannot be reached; `Invalid`
    /// for a prefix that is not a collection id.
    pub async fn connect(config: FirestoreConfig) -> Result<FirestoreStore> {
        if !valid_collection_id(&config.prefix) {
            return Err(StoreError::Invalid(format!(
                "Firestore prefix {:?} is not a collection id",
                config.prefix
            )));
        }
        let options = FirestoreDbOptions::new(config.project_id.clone())
            .with_database_id(config.database_id.clone())
            .with_request_timeout(REQUEST_TIMEOUT);
        let db = FirestoreDb::with_options(options)
            .await
            .map_err(store_error)?;
        let layout = Layout::new(db.get_documents_path(), &config.prefix);
        Ok(FirestoreStore {
            inner: Arc::new(Inner {
                db,
                layout,
                policy: RetryPolicy {
                    max_attempts: config.max_attempts,
                    max_retry_age: config.max_retry_age,
                },
                registered_topics: Mutex::new(HashSet::new()),
                locks: LocalLocks::new(),
                own: OwnEvents::default(),
            }),
        })
    }

    fn db(&self) -> &FirestoreDb {
        &self.inner.db
    }

    fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    fn locks(&self) -> &LocalLocks {
        &self.inner.locks
    }

    /// Runs `work` in a read-write transaction and commits it, running it
    /// again (with backoff) while it loses conflicts to other transactions.
    /// `work` gets the attempt's [`Tx`] and hands it back with its result.
    async fn transact<T, F, Fut>(&self, mut work: F) -> Result<T>
    where
        F: FnMut(Tx) -> Fut,
        Fut: Future<Output = (Tx, Result<T>)>,
    {
        let started = Instant::now();
        let mut options = FirestoreTransactionOptions::new();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let transaction = self
                .db()
                .begin_transaction_with_options(options.clone())
                .await
                .map_err(store_error)?;
            let id = transaction.transaction_id().clone();
            let bound = self.db().clone_with_consistency_selector(
                FirestoreConsistencySelector::Transaction(id.clone()),
            );
            let tx = Tx::new(
                bound,
                transaction.into_data(),
                chrono::Utc::now().timestamp_millis(),
            );
            let (mut tx, result) = work(tx).await;
            let error = match result {
                Ok(value) => {
                    if let Err(error) = self.register_topics(tx.topics()).await {
                        tx.rollback(self.db()).await;
                        return Err(error);
                    }
                    let own = tx.take_own();
                    match tx.commit(self.db()).await {
                        Ok(()) => {
                            self.inner.own.apply(own);
                            return Ok(value);
                        }
                        Err(error) if is_contention(&error) => store_error(error),
                        // Unknown outcome (the writes may be applied): the
                        // caller retries, and every operation is idempotent.
                        Err(error) => return Err(store_error(error)),
                    }
                }
                Err(error) => {
                    let contended = tx.contended();
                    tx.rollback(self.db()).await;
                    if !contended {
                        return Err(error);
                    }
                    error
                }
            };
            if started.elapsed() >= CONTENTION_BUDGET {
                return Err(error);
            }
            tracing::debug!(attempt, %error, "transaction contended; retrying");
            tokio::time::sleep(backoff(attempt)).await;
            // A retry keeps the aborted transaction's place in the lock queue.
            options = FirestoreTransactionOptions::new()
                .with_mode(FirestoreTransactionMode::ReadWriteRetry(id));
        }
    }

    /// Leases those of `ids` still due (for `idle`) in one transaction; the
    /// caller holds the topic's claim lock.
    async fn lease(
        &self,
        topic: &str,
        ids: &[String],
        lease: Duration,
        idle: Duration,
    ) -> Result<Vec<Delivery>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let layout = self.layout();
        self.transact(move |mut tx| async move {
            let result = outbox::lease(&mut tx, layout, topic, ids, lease, idle).await;
            (tx, result)
        })
        .await
    }

    /// Makes sure `queue_depths` will count these topics. Written before the
    /// transaction that publishes to them commits, once per topic and process
    /// (a blind write inside every publishing transaction would make the
    /// registry document a point of contention).
    async fn register_topics(&self, topics: &BTreeSet<String>) -> Result<()> {
        for topic in topics {
            let known = self
                .inner
                .registered_topics
                .lock()
                .map(|registered| registered.contains(topic))
                .unwrap_or(false);
            if !known {
                outbox::register_topic(self.db(), self.layout(), topic).await?;
                if let Ok(mut registered) = self.inner.registered_topics.lock() {
                    registered.insert(topic.clone());
                }
            }
        }
        Ok(())
    }
}

/// Full-jitter exponential backoff: up to 10 ms × 2ⁿ, at most 1 s.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 10u64.saturating_mul(1 << attempt.min(7)).min(1_000);
    Duration::from_millis(rand::thread_rng().gen_range(1..=ceiling))
}

/// Firestore collection ids: no `/`, not `.` or `..`, not `__…__`, at most 1500 bytes.
fn valid_collection_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 1500
        && !id.contains('/')
        && id != "."
        && id != ".."
        && !(id.starts_with("__") && id.ends_with("__"))
}

#[async_trait]
impl Store for FirestoreStore {
    async fn ingest(&self, notification: Notification) -> Result<IngestReport> {
        let keys: Vec<String> = notification
            .messages
            .iter()
            .map(|m| format!("{}:{}", m.phone_number_id, m.conversation_wa_id()))
            .collect();
        let names = notification
            .messages
            .iter()
            .zip(&keys)
            .flat_map(|(m, key)| {
                [
                    Name::Conversation {
                        pnid: &m.phone_number_id,
                        wa_id: m.conversation_wa_id(),
                    },
                    Name::OrderingKey {
                        topic: topics::MESSAGES,
                        key,
                    },
                    Name::Wamid(&m.wamid),
                ]
            });
        let statuses = notification.statuses.iter().map(|s| Name::Wamid(&s.wamid));
        let _held = self.locks().lock(names.chain(statuses)).await;
        let layout = self.layout();
        let mut report = IngestReport::default();
        for chunk in ingest::chunks(&notification) {
            let stored = self
                .transact(move |mut tx| async move {
                    let result = ingest::ingest(&mut tx, layout, chunk).await;
                    (tx, result)
                })
                .await?;
            report.new_messages += stored.new_messages;
            report.duplicate_messages += stored.duplicate_messages;
            report.new_statuses += stored.new_statuses;
            report.duplicate_statuses += stored.duplicate_statuses;
            report.raw_events += stored.raw_events;
        }
        Ok(report)
    }

    async fn apply_status(&self, status: &StatusUpdate) -> Result<()> {
        let linked = status
            .callback_data
            .as_deref()
            .and_then(|d| d.strip_prefix("zapfn:"));
        let conversation = status
            .recipient_id
            .as_deref()
            .map(|wa_id| Name::Conversation {
                pnid: &status.phone_number_id,
                wa_id,
            });
        let names = [
            Some(Name::Wamid(&status.wamid)),
            linked.map(Name::Message),
            conversation,
        ];
        let _held = self.locks().lock(names.into_iter().flatten()).await;
        let layout = self.layout();
        self.transact(move |mut tx| async move {
            let result = messages::apply_status(&mut tx, layout, status).await;
            (tx, result)
        })
        .await
    }

    async fn enqueue_send(&self, send: NewOutbound) -> Result<Enqueued> {
        let recipient = send.to.as_deref().map(zapfn_whatsapp::wa_id);
        let key = recipient
            .as_ref()
            .map(|wa_id| format!("{}:{wa_id}", send.phone_number_id));
        let names = [
            recipient.as_deref().map(|wa_id| Name::Conversation {
                pnid: &send.phone_number_id,
                wa_id,
            }),
            key.as_deref().map(|key| Name::OrderingKey {
                topic: topics::DISPATCH,
                key,
            }),
            send.idempotency_key.as_deref().map(Name::IdempotencyKey),
        ];
        let _held = self.locks().lock(names.into_iter().flatten()).await;
        let (layout, send) = (self.layout(), &send);
        self.transact(move |mut tx| async move {
            let result = messages::enqueue_send(&mut tx, layout, send).await;
            (tx, result)
        })
        .await
    }

    async fn earlier_send_pending(&self, id: &str, since: i64) -> Result<bool> {
        reads::earlier_send_pending(self.db(), self.layout(), id, since).await
    }

    async fn outbound(&self, id: &str) -> Result<Option<OutboundMessage>> {
        let Some(doc) = self.layout().message(id) else {
            return Ok(None);
        };
        match reads::fetch(self.db(), &doc).await? {
            Some(message) => messages::outbound(message),
            None => Ok(None),
        }
    }

    async fn record_sent(&self, id: &str, wamid: Option<&str>) -> Result<()> {
        let names = [Some(Name::Message(id)), wamid.map(Name::Wamid)];
        let _held = self.locks().lock(names.into_iter().flatten()).await;
        let layout = self.layout();
        self.transact(move |mut tx| async move {
            let result = messages::record_sent(&mut tx, layout, id, wamid).await;
            (tx, result)
        })
        .await
    }

    async fn mark_dispatching(&self, id: &str) -> Result<()> {
        let _held = self.locks().lock([Name::Message(id)]).await;
        let layout = self.layout();
        self.transact(move |mut tx| async move {
            let result = messages::mark_dispatching(&mut tx, layout, id).await;
            (tx, result)
        })
        .await
    }

    async fn record_send_error(
        &self,
        id: &str,
        error: serde_json::Value,
        terminal: bool,
        maybe_sent: bool,
    ) -> Result<()> {
        let _held = self.locks().lock([Name::Message(id)]).await;
        let (layout, error) = (self.layout(), &error);
        self.transact(move |mut tx| async move {
            let result =
                messages::record_send_error(&mut tx, layout, id, error, terminal, maybe_sent).await;
            (tx, result)
        })
        .await
    }

    async fn message(&self, id_or_wamid: &str) -> Result<Option<MessageView>> {
        reads::message(self.db(), self.layout(), id_or_wamid).await
    }

    async fn conversations(&self, query: ConversationQuery) -> Result<Page<Conversation>> {
        reads::conversations(self.db(), self.layout(), &query).await
    }

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>> {
        reads::conversation(self.db(), self.layout(), id).await
    }

    async fn conversation_messages(
        &self,
        conversation_id: &str,
        page: PageRequest,
    ) -> Result<Page<MessageView>> {
        reads::conversation_messages(self.db(), self.layout(), conversation_id, &page).await
    }

    async fn last_inbound_at(&self, phone_number_id: &str, wa_id: &str) -> Result<Option<i64>> {
        reads::last_inbound_at(self.db(), self.layout(), phone_number_id, wa_id).await
    }

    async fn annotate_media(
        &self,
        message_id: &str,
        key: &str,
        value: serde_json::Value,
        events: Vec<NewEvent>,
    ) -> Result<bool> {
        let keys = events.iter().filter_map(|event| {
            let key = event.ordering_key.as_deref()?;
            Some(Name::OrderingKey {
                topic: &event.topic,
                key,
            })
        });
        let _held = self
            .locks()
            .lock(keys.chain([Name::Message(message_id)]))
            .await;
        let (layout, value, events) = (self.layout(), &value, &events);
        self.transact(move |mut tx| async move {
            let result = media::annotate(&mut tx, layout, message_id, key, value, events).await;
            (tx, result)
        })
        .await
    }

    async fn dead_letter(
        &self,
        topic: &str,
        payload: &serde_json::Value,
        attempts: u32,
        error: &str,
    ) -> Result<()> {
        outbox::dead_letter_pushed(self.db(), self.layout(), topic, payload, attempts, error).await
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<()> {
        let layout = self.layout();
        self.transact(move |mut tx| async move {
            let result = keys::put(&mut tx, layout, key).await;
            (tx, result)
        })
        .await
    }

    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let doc = self.layout().api_key(key_hash);
        match reads::fetch::<ApiKeyDoc>(self.db(), &doc).await? {
            Some(key) if key.revoked_at.is_none() && key.key_hash == key_hash => {
                keys::api_key(key).map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn revoke_api_key(&self, name: &str) -> Result<usize> {
        let layout = self.layout();
        let named = keys::stored(self.db(), layout, Some(name)).await?;
        if named.is_empty() {
            return Ok(0);
        }
        let hashes = &named
            .into_iter()
            .map(|key| key.key_hash)
            .collect::<Vec<_>>();
        self.transact(move |mut tx| async move {
            let result = keys::revoke(&mut tx, layout, name, hashes).await;
            (tx, result)
        })
        .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let mut all = keys::stored(self.db(), self.layout(), None).await?;
        all.sort_by(|a, b| {
            (&a.name, a.created_at, &a.key_hash).cmp(&(&b.name, b.created_at, &b.key_hash))
        });
        Ok(all)
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
        audit::record(self.db(), self.layout(), entry).await
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        audit::latest(self.db(), self.layout(), limit).await
    }

    async fn claim(&self, topic: &str, limit: usize, lease: Duration) -> Result<Vec<Delivery>> {
        self.claim_idle(topic, limit, lease, Duration::ZERO).await
    }

    async fn claim_own(&self, topic: &str, limit: usize, lease: Duration) -> Result<Vec<Delivery>> {
        let _held = self.locks().lock([Name::Claims(topic)]).await;
        let now = chrono::Utc::now().timestamp_millis();
        let ids = self.inner.own.due(topic, now, limit.min(outbox::MAX_CLAIM));
        self.lease(topic, &ids, lease, Duration::ZERO).await
    }

    async fn claim_idle(
        &self,
        topic: &str,
        limit: usize,
        lease: Duration,
        idle: Duration,
    ) -> Result<Vec<Delivery>> {
        let _held = self.locks().lock([Name::Claims(topic)]).await;
        let limit = limit.min(outbox::MAX_CLAIM);
        let ids = outbox::due_heads(self.db(), self.layout(), topic, limit, idle).await?;
        self.lease(topic, &ids, lease, idle).await
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<()> {
        let key = delivery
            .ordering_key
            .as_deref()
            .map(|key| Name::OrderingKey {
                topic: &delivery.topic,
                key,
            });
        let names = [Some(Name::Event(&delivery.id)), key];
        let _held = self.locks().lock(names.into_iter().flatten()).await;
        let (layout, policy, settlement) = (self.layout(), self.inner.policy, &settlement);
        self.transact(move |mut tx| async move {
            let result =
                outbox::settle(&mut tx, layout, delivery, settlement.clone(), policy).await;
            (tx, result)
        })
        .await
    }

    async fn renew_lease(&self, delivery: &Delivery, lease: Duration) -> Result<Option<i64>> {
        let _held = self.locks().lock([Name::Event(&delivery.id)]).await;
        let layout = self.layout();
        self.transact(move |mut tx| async move {
            let result = outbox::renew_lease(&mut tx, layout, delivery, lease).await;
            (tx, result)
        })
        .await
    }

    async fn release_leases(&self) -> Result<usize> {
        let layout = self.layout();
        let mut released = 0;
        for batch in outbox::leased_event_ids(self.db(), layout).await? {
            let _held = self
                .locks()
                .lock(batch.iter().map(|id| Name::Event(id)))
                .await;
            let batch = &batch;
            released += self
                .transact(move |mut tx| async move {
                    let result = outbox::release(&mut tx, layout, batch).await;
                    (tx, result)
                })
                .await?;
        }
        Ok(released)
    }

    async fn queue_depths(&self) -> Result<QueueDepths> {
        outbox::depths(self.db(), self.layout()).await
    }

    async fn oldest_pending_ms(&self, topic: &str) -> Result<Option<i64>> {
        outbox::oldest_pending_ms(self.db(), self.layout(), topic).await
    }

    async fn erase_messages(&self, ids: &[String]) -> Result<Erased> {
        self.erase_message_docs(ids).await
    }

    async fn erase_conversation(&self, phone_number_id: &str, wa_id: &str) -> Result<Erased> {
        self.erase_contact_conversation(phone_number_id, wa_id)
            .await
    }

    async fn raw_events_naming(
        &self,
        phone_number_id: Option<&str>,
        wa_id: &str,
    ) -> Result<Vec<StoredRawEvent>> {
        self.contact_raw_events(phone_number_id, wa_id).await
    }

    async fn messages_before(&self, before: i64, limit: usize) -> Result<Vec<StoredMessage>> {
        self.messages_older_than(before, limit).await
    }

    async fn purge_expired(&self, before: i64, limit: usize) -> Result<Erased> {
        self.purge_older_than(before, limit).await
    }
}
