//! The embedded store: one SQLite file in WAL mode. Writes go through a single
//! group-commit writer thread; reads use a small pool of read connections.
//! Webhook bodies are acknowledged once appended to a journal beside the file
//! and stored from there by the indexer ([`journal`], [`indexer`]).

mod audit;
mod checkpoint;
mod contacts;
mod indexer;
mod ingest;
mod journal;
mod keys;
mod media;
mod messages;
mod migrations;
mod outbox;
mod priority;
mod readers;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::Notify;
use zapfn_whatsapp::webhook::{Notification, StatusUpdate};

use crate::model::*;
use crate::{Erased, Result, Store, StoredMessage, StoredRawEvent};
use checkpoint::Checkpointer;
use journal::Journal;
use outbox::ConsumerLock;
use readers::Readers;
use writer::Writer;

/// How durable a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL`: survives a process crash (SIGKILL), not a power cut. The default.
    Process,
    /// `synchronous=FULL`: fsync on every group commit; survives a power cut.
    Power,
}

/// Store settings.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub durability: Durability,
    /// Deliveries of one outbox event before it is dead-lettered.
    pub max_attempts: u32,
    /// Age after which a failing outbox event is dead-lettered.
    pub max_retry_age: Duration,
    /// Acknowledge webhooks once journaled and store them from the journal
    /// (true), or store each before acknowledging it (false). What an earlier
    /// run journaled is stored either way.
    pub webhook_journal: bool,
    /// Journaled webhook bytes not yet stored past which new webhooks are
    /// refused (`StoreError::Unavailable`: Meta redelivers them later).
    pub max_journal_backlog: u64,
    /// Nice value of the writer, checkpoint and indexer threads (Linux; 0
    /// leaves them at the process's): under a saturated CPU, requests first.
    pub background_nice: i32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Process,
            max_attempts: 5,
            max_retry_age: Duration::from_secs(300),
            webhook_journal: true,
            max_journal_backlog: 1 << 30,
            background_nice: 5,
        }
    }
}

/// The SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    published: Arc<Notify>,
    _checkpointer: Arc<Checkpointer>,
    /// The webhook journal, when this process owns it.
    journal: Option<Arc<Journal>>,
    /// Held once this store consumes events (see [`Store::release_leases`]).
    consumers: Arc<ConsumerLock>,
    options: SqliteOptions,
    path: PathBuf,
}

/// Longest a read waits for acknowledged webhooks to be stored (so a read after
/// a 200 sees the message); under a backlog longer than this it answers with
/// what is stored.
const READ_AFTER_WEBHOOK_WAIT: Duration = Duration::from_secs(2);

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies the schema.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                crate::StoreError::Unavailable(format!("{}: {e}", parent.display()))
            })?;
        }
        let mut conn = open_connection(&path, options.durability)?;
        migrations::apply(&mut conn)?;
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::writer_checkpoint_frames(&conn)?,
        )?;
        conn.pragma_update(None, "cache_size", -i64::from(WRITER_CACHE_KIB))?;
        let nice = options.background_nice;
        let checkpointer = Arc::new(Checkpointer::start(path.clone(), options.durability, nice));
        let stored_position = indexer::stored_position(&conn)?;
        let writer = Writer::start(conn, nice);
        let published = Arc::new(Notify::new());
        // Opened even when webhooks are not journaled: what an earlier run
        // journaled is still stored from it.
        let journal = Journal::open(
            &path.with_extension("journal"),
            options.durability,
            options.max_journal_backlog,
            stored_position,
        )?;
        if let Some(journal) = &journal {
            indexer::start(
                journal.shared(),
                writer.clone(),
                published.clone(),
                stored_position,
                nice,
            )?;
        }
        Ok(SqliteStore {
            writer,
            readers: Arc::new(Readers::new(path.clone(), options.durability)),
            published,
            _checkpointer: checkpointer,
            journal: journal.map(Arc::new),
            consumers: Arc::new(ConsumerLock::new(path.with_extension("consumers.lock"))),
            options,
            path,
        })
    }

    /// Waits until webhooks acknowledged before this call are stored (bounded).
    async fn after_webhooks(&self) {
        if let Some(journal) = &self.journal {
            if !journal.caught_up(READ_AFTER_WEBHOOK_WAIT).await {
                tracing::debug!(
                    backlog_bytes = journal.backlog(),
                    "read answered before every acknowledged webhook was stored"
                );
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Notified when new events were committed to the outbox: consumers wait on
    /// it between looks instead of polling hard. (Only publishing writes notify:
    /// a claim or settle must not wake the other consumers, or they would wake
    /// each other forever.)
    pub fn published(&self) -> Arc<Notify> {
        self.published.clone()
    }

    fn notify_published<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_ok() {
            self.published.notify_waiters();
        }
        result
    }
}

/// Page size of new databases. Ingest is bound by the pages a transaction
/// dirties, each written whole to the WAL and again by the checkpoint, and by
/// the work per page (cache look-ups, one WAL frame and `pwrite` each): with
/// 16 KiB pages storing a webhook took ≈ 25 % less CPU than with SQLite's
/// default 4 KiB (1 and 2 KiB took more, their rows overflow).
const PAGE_SIZE: u32 = 16 * 1024;

/// Cache of the writer's connection (KiB): the indexes a batch of webhooks
/// touches stay in memory (the other connections keep 4 MB each).
const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// Opens one connection with zapfn's pragmas.
fn open_connection(path: &Path, durability: Durability) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Every statement zapfn runs stays prepared (the default cache of 16 thrashes).
    conn.set_prepared_statement_cache_capacity(256);
    let synchronous = match durability {
        Durability::Process => "NORMAL",
        Durability::Power => "FULL",
    };
    // The page size takes effect when the file is created (before WAL mode; a
    // database made with another size keeps it). The WAL is truncated back to
    // the writer's checkpoint size after checkpoints.
    let wal_limit = checkpoint::WRITER_CHECKPOINT_BYTES;
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA journal_mode = WAL; PRAGMA journal_size_limit = {wal_limit};
         PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -4000;"
    ))?;
    Ok(conn)
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new time-ordered id with a readable prefix.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ingest(&self, notification: Notification) -> Result<IngestReport> {
        let result = self
            .writer
            .write(move |conn| ingest::ingest(conn, &notification))
            .await;
        self.notify_published(result)
    }

    async fn accept_webhook(&self, body: &[u8]) -> Result<()> {
        match &self.journal {
            Some(journal) if self.options.webhook_journal => journal.append(body).await,
            _ => crate::ingest_webhook(self, body).await,
        }
    }

    fn webhook_backlog_bytes(&self) -> u64 {
        self.journal.as_ref().map_or(0, |journal| journal.backlog())
    }

    async fn flush_webhooks(&self, limit: Duration) -> bool {
        match &self.journal {
            Some(journal) => journal.caught_up(limit).await,
            None => true,
        }
    }

    async fn apply_status(&self, status: &StatusUpdate) -> Result<()> {
        let status = status.clone();
        self.writer
            .write(move |conn| messages::apply_status(conn, &status))
            .await
    }

    async fn enqueue_send(&self, send: NewOutbound) -> Result<Enqueued> {
        let result = self
            .writer
            .write(move |conn| messages::enqueue_send(conn, &send))
            .await;
        self.notify_published(result)
    }

    async fn outbound(&self, id: &str) -> Result<Option<OutboundMessage>> {
        let id = id.to_owned();
        self.readers
            .read(move |conn| messages::outbound(conn, &id))
            .await
    }

    async fn earlier_send_pending(&self, id: &str, since: i64) -> Result<bool> {
        let id = id.to_owned();
        self.readers
            .read(move |conn| messages::earlier_send_pending(conn, &id, since))
            .await
    }

    async fn record_sent(&self, id: &str, wamid: Option<&str>) -> Result<()> {
        let (id, wamid) = (id.to_owned(), wamid.map(str::to_owned));
        self.writer
            .write(move |conn| messages::record_sent(conn, &id, wamid.as_deref()))
            .await
    }

    async fn mark_dispatching(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.writer
            .write(move |conn| messages::mark_dispatching(conn, &id))
            .await
    }

    async fn record_send_error(
        &self,
        id: &str,
        error: serde_json::Value,
        terminal: bool,
        maybe_sent: bool,
    ) -> Result<()> {
        let id = id.to_owned();
        self.writer
            .write(move |conn| messages::record_send_error(conn, &id, &error, terminal, maybe_sent))
            .await
    }

    async fn message(&self, id_or_wamid: &str) -> Result<Option<MessageView>> {
        self.after_webhooks().await;
        let key = id_or_wamid.to_owned();
        self.readers
            .read(move |conn| messages::message(conn, &key))
            .await
    }

    async fn conversations(&self, query: ConversationQuery) -> Result<Page<Conversation>> {
        self.after_webhooks().await;
        self.readers
            .read(move |conn| messages::conversations(conn, &query))
            .await
    }

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>> {
        self.after_webhooks().await;
        let id = id.to_owned();
        self.readers
            .read(move |conn| messages::conversation(conn, &id))
            .await
    }

    async fn conversation_messages(
        &self,
        conversation_id: &str,
        page: PageRequest,
    ) -> Result<Page<MessageView>> {
        self.after_webhooks().await;
        let id = conversation_id.to_owned();
        self.readers
            .read(move |conn| messages::conversation_messages(conn, &id, &page))
            .await
    }

    async fn last_inbound_at(&self, phone_number_id: &str, wa_id: &str) -> Result<Option<i64>> {
        self.after_webhooks().await;
        let (pnid, wa_id) = (phone_number_id.to_owned(), wa_id.to_owned());
        self.readers
            .read(move |conn| messages::last_inbound_at(conn, &pnid, &wa_id))
            .await
    }

    async fn annotate_media(
        &self,
        message_id: &str,
        key: &str,
        value: serde_json::Value,
        events: Vec<NewEvent>,
    ) -> Result<bool> {
        let (id, key) = (message_id.to_owned(), key.to_owned());
        let publishes = !events.is_empty();
        let result = self
            .writer
            .write(move |conn| media::annotate(conn, &id, &key, &value, &events))
            .await;
        if publishes {
            return self.notify_published(result);
        }
        result
    }

    async fn dead_letter(
        &self,
        topic: &str,
        payload: &serde_json::Value,
        attempts: u32,
        error: &str,
    ) -> Result<()> {
        let (topic, payload, error) = (topic.to_owned(), payload.to_string(), error.to_owned());
        self.writer
            .write(move |conn| outbox::dead_letter_pushed(conn, &topic, &payload, attempts, &error))
            .await
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<()> {
        let key = key.clone();
        self.writer.write(move |conn| keys::put(conn, &key)).await
    }

    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let hash = key_hash.to_owned();
        self.readers.read(move |conn| keys::live(conn, &hash)).await
    }

    async fn revoke_api_key(&self, name: &str) -> Result<usize> {
        let name = name.to_owned();
        self.writer
            .write(move |conn| keys::revoke(conn, &name))
            .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        self.readers.read(keys::all).await
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
        let entry = entry.clone();
        self.writer
            .write(move |conn| audit::record(conn, &entry))
            .await
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.readers
            .read(move |conn| audit::latest(conn, limit))
            .await
    }

    async fn claim(&self, topic: &str, limit: usize, lease: Duration) -> Result<Vec<Delivery>> {
        let topic = topic.to_owned();
        let leased = self
            .writer
            .write_statement({
                let topic = topic.clone();
                move |conn| outbox::claim(conn, &topic, limit, lease)
            })
            .await?;
        leased
            .into_iter()
            .map(|event| {
                Ok(Delivery {
                    id: event.id.to_string(),
                    topic: topic.clone(),
                    ordering_key: event.ordering_key,
                    payload: serde_json::from_str(&event.payload)?,
                    attempt: event.attempt,
                    first_attempt_at_ms: event.first_attempt_at_ms,
                    lease_until_ms: event.lease_until_ms,
                })
            })
            .collect()
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<()> {
        let (delivery, options) = (delivery.clone(), self.options.clone());
        let one_statement = matches!(settlement, Settlement::Ack | Settlement::Defer { .. });
        let work = move |conn: &Connection| outbox::settle(conn, &delivery, settlement, &options);
        match one_statement {
            true => self.writer.write_statement(work).await,
            false => self.writer.write(work).await,
        }
    }

    async fn renew_lease(&self, delivery: &Delivery, lease: Duration) -> Result<Option<i64>> {
        let delivery = delivery.clone();
        let until = now_ms() + lease.as_millis() as i64;
        let renewed = self
            .writer
            .write_statement(move |conn| outbox::renew_lease(conn, &delivery, until))
            .await?;
        Ok(renewed.then_some(until))
    }

    /// Releases leases only when no other process consumes from this file.
    async fn release_leases(&self) -> Result<usize> {
        let release = self.writer.write(outbox::release_leases);
        self.consumers.join(release).await
    }

    async fn queue_depths(&self) -> Result<QueueDepths> {
        self.readers.read(outbox::depths).await
    }

    async fn oldest_pending_ms(&self, topic: &str) -> Result<Option<i64>> {
        let topic = topic.to_owned();
        self.readers
            .read(move |conn| outbox::oldest_pending_ms(conn, &topic))
            .await
    }

    async fn erase_messages(&self, ids: &[String]) -> Result<Erased> {
        let ids = ids.to_vec();
        self.writer
            .write(move |conn| contacts::erase_messages(conn, &ids))
            .await
    }

    async fn erase_conversation(&self, phone_number_id: &str, wa_id: &str) -> Result<Erased> {
        let (pnid, wa_id) = (phone_number_id.to_owned(), wa_id.to_owned());
        self.writer
            .write(move |conn| contacts::erase_conversation(conn, &pnid, &wa_id))
            .await
    }

    async fn raw_events_naming(
        &self,
        phone_number_id: Option<&str>,
        wa_id: &str,
    ) -> Result<Vec<StoredRawEvent>> {
        self.after_webhooks().await;
        let (pnid, wa_id) = (phone_number_id.map(str::to_owned), wa_id.to_owned());
        self.readers
            .read(move |conn| contacts::raw_events_naming(conn, pnid.as_deref(), &wa_id))
            .await
    }

    async fn messages_before(&self, before: i64, limit: usize) -> Result<Vec<StoredMessage>> {
        self.after_webhooks().await;
        self.readers
            .read(move |conn| contacts::messages_before(conn, before, limit))
            .await
    }

    async fn purge_expired(&self, before: i64, limit: usize) -> Result<Erased> {
        self.writer
            .write(move |conn| contacts::purge_expired(conn, before, limit))
            .await
    }
}
