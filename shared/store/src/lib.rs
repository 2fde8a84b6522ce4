//! zapfn's state store: messages, statuses, conversations, API keys and the
//! transactional outbox that feeds the event bus and task queue.
//!
//! [`Store`] is the seam every function codes against; [`sqlite::SqliteStore`]
//! is the embedded implementation (one file under `./.zapfn/`, WAL, group commit).

pub mod erasure;
pub mod model;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use zapfn_whatsapp::webhook::{Notification, StatusUpdate};

pub use erasure::*;
pub use model::*;

/// Errors from a store backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the store could not take the write (shutting down or failing)")]
    Closed,
    /// The write or read could not be done now (disk full, I/O error, locked): retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The request cannot be served as asked (e.g. a cursor this API did not give out).
    #[error("{0}")]
    Invalid(String),
}

/// Parses a webhook body; anything but JSON is [`StoreError::Invalid`].
pub fn parse_webhook(body: &[u8]) -> Result<Notification> {
    zapfn_whatsapp::webhook::parse(body)
        .map_err(|error| StoreError::Invalid(format!("the webhook body is not JSON: {error}")))
}

/// Parses `body` and ingests its notification unless it is empty: what
/// [`Store::accept_webhook`] does where nothing is journaled.
pub async fn ingest_webhook<S: Store + ?Sized>(store: &S, body: &[u8]) -> Result<()> {
    let notification = parse_webhook(body)?;
    if notification.messages.is_empty()
        && notification.statuses.is_empty()
        && notification.events.is_empty()
    {
        return Ok(());
    }
    store.ingest(notification).await.map(drop)
}

/// Result alias for store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything the functions need to persist and read.
///
/// Writes that trigger downstream work (a new inbound message, a new status, a
/// queued send) put their event in the outbox *in the same transaction*, so an
/// acknowledged write always gets its event, exactly once per new item.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a webhook notification: messages deduplicated by wamid, statuses
    /// by (wamid, status), raw events; publishes `messages` and `statuses` events
    /// for the new ones only.
    async fn ingest(&self, notification: Notification) -> Result<IngestReport>;

    /// Stores a webhook body whose signature was checked (valid JSON) before
    /// the webhook is acknowledged; its notification is ingested as by
    /// [`Store::ingest`], here and now or — where the backend journals bodies
    /// (SQLite) — soon after, in order, with reads waiting for it. Empty
    /// notifications store nothing.
    async fn accept_webhook(&self, body: &[u8]) -> Result<()> {
        ingest_webhook(self, body).await
    }

    /// Bytes of accepted webhooks journaled but not ingested yet (0 where
    /// `accept_webhook` ingests before it returns).
    fn webhook_backlog_bytes(&self) -> u64 {
        0
    }

    /// Waits (at most `limit`) until every webhook accepted before the call is
    /// ingested; whether it was. Immediate where `accept_webhook` ingests itself.
    async fn flush_webhooks(&self, limit: Duration) -> bool {
        let _ = limit;
        true
    }

    /// Applies one status to its message (monotonic). An unknown wamid is linked
    /// to the outbound message named by the status's callback data
    /// (`zapfn:<id>`), or else kept on a placeholder outbound message.
    async fn apply_status(&self, status: &StatusUpdate) -> Result<()>;

    /// Stores an outbound message as `queued` and its `dispatch` task; a repeated
    /// idempotency key returns the first message instead.
    async fn enqueue_send(&self, send: NewOutbound) -> Result<Enqueued>;

    /// What the dispatcher needs to send a queued message.
    async fn outbound(&self, id: &str) -> Result<Option<OutboundMessage>>;

    /// Whether another outbound message to the same customer of the same number,
    /// accepted before message `id` and at or after `since` (Unix seconds), still
    /// awaits dispatch: per-customer order where the task queue does not keep it.
    async fn earlier_send_pending(&self, id: &str, since: i64) -> Result<bool>;

    /// Records the wamid Meta returned, merging statuses that arrived first.
    async fn record_sent(&self, id: &str, wamid: Option<&str>) -> Result<()>;

    /// Notes that a send to Meta is starting, so a crash mid-send is noticed on redelivery.
    async fn mark_dispatching(&self, id: &str) -> Result<()>;

    /// Records a failed attempt; `terminal` marks the message `failed`. `maybe_sent`
    /// (a timeout or lost connection) keeps the mid-send mark: Meta may have the message.
    async fn record_send_error(
        &self,
        id: &str,
        error: serde_json::Value,
        terminal: bool,
        maybe_sent: bool,
    ) -> Result<()>;

    /// A message by zapfn id or wamid, with its status history.
    async fn message(&self, id_or_wamid: &str) -> Result<Option<MessageView>>;

    /// Conversations, most recent first.
    async fn conversations(&self, query: ConversationQuery) -> Result<Page<Conversation>>;

    /// A conversation by id.
    async fn conversation(&self, id: &str) -> Result<Option<Conversation>>;

    /// A conversation's messages, newest first.
    async fn conversation_messages(
        &self,
        conversation_id: &str,
        page: PageRequest,
    ) -> Result<Page<MessageView>>;

    /// When the customer last wrote (Unix seconds): the start of the 24-hour window.
    async fn last_inbound_at(&self, phone_number_id: &str, wa_id: &str) -> Result<Option<i64>>;

    /// Sets `media.<key>` of a message to `value` and, in the same transaction,
    /// publishes `events`, but only when the value changed: a redelivered
    /// processor that computes the same result publishes nothing twice.
    /// Returns whether it changed. An unknown message is `StoreError::Invalid`.
    async fn annotate_media(
        &self,
        message_id: &str,
        key: &str,
        value: serde_json::Value,
        events: Vec<NewEvent>,
    ) -> Result<bool>;

    /// Keeps an event a handler gave up on (push-delivered events have no outbox
    /// row to move): counted by `queue_depths().dead_letters`.
    async fn dead_letter(
        &self,
        topic: &str,
        payload: &serde_json::Value,
        attempts: u32,
        error: &str,
    ) -> Result<()>;

    /// Stores an API key by its hash: a stored hash takes the new name, scopes,
    /// numbers and rate, and is live again.
    async fn put_api_key(&self, key: &ApiKey) -> Result<()>;

    /// The live (not revoked) key with this hash.
    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>>;

    /// Revokes every live key with this name; returns how many. Revoking again changes nothing.
    async fn revoke_api_key(&self, name: &str) -> Result<usize>;

    /// Every key, revoked ones too, by name then creation.
    async fn api_keys(&self) -> Result<Vec<ApiKey>>;

    /// Appends one entry to the audit log.
    async fn record_audit(&self, entry: &AuditEntry) -> Result<()>;

    /// The latest `limit` audit entries, newest first.
    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>>;

    /// Leases up to `limit` due events of `topic` (respecting ordering keys).
    async fn claim(&self, topic: &str, limit: usize, lease: Duration) -> Result<Vec<Delivery>>;

    /// Leases up to `limit` due events of `topic` that this store handle is
    /// responsible for: those it published, leased or made the head of their
    /// ordering key (by settling the event before them). An outbox relay
    /// forwards these right after its writes, so relays of different
    /// processes do not claim the same events. The default leases from the
    /// whole outbox ([`Store::claim`]): right for stores whose claims do not
    /// contend across processes (SQLite has one; PostgreSQL skips locked rows).
    async fn claim_own(&self, topic: &str, limit: usize, lease: Duration) -> Result<Vec<Delivery>> {
        self.claim(topic, limit, lease).await
    }

    /// Leases up to `limit` events of `topic` that have been due for at least
    /// `idle` with nobody leasing them: what a relay sweep forwards, the events
    /// whose writer died between its commit and its forward. The default
    /// leases every due event ([`Store::claim`]).
    async fn claim_idle(
        &self,
        topic: &str,
        limit: usize,
        lease: Duration,
        idle: Duration,
    ) -> Result<Vec<Delivery>> {
        let _ = idle;
        self.claim(topic, limit, lease).await
    }

    /// Settles a leased event.
    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<()>;

    /// Extends the lease of `delivery`, while it is still the holder's (its
    /// `lease_until_ms` is the event's), to `lease` from now; returns the new
    /// `lease_until_ms` to settle with, or `None` when the lease is lost
    /// (settled, or expired and leased again).
    async fn renew_lease(&self, delivery: &Delivery, lease: Duration) -> Result<Option<i64>>;

    /// Releases leases left by a process that died, so its events are delivered
    /// again now: call once before consuming, not from tools that only read.
    async fn release_leases(&self) -> Result<usize>;

    /// Events waiting (or in flight) per topic, and dead letters.
    async fn queue_depths(&self) -> Result<QueueDepths>;

    /// When the oldest event of `topic` still in the outbox (waiting or in
    /// flight) was published, in ms since the epoch; `None` when none is. In
    /// process the bus settles events here; deployed, a relay removes an event
    /// once it has forwarded it.
    async fn oldest_pending_ms(&self, topic: &str) -> Result<Option<i64>>;

    /// Deletes these messages (by zapfn id; unknown ids are skipped), their
    /// status history, and the queued events and dead letters that name them
    /// (by `message_id`, or a status by wamid). Their media objects are the
    /// caller's to delete first ([`StoredMessage::blob_keys`]).
    async fn erase_messages(&self, ids: &[String]) -> Result<Erased>;

    /// Deletes the conversation of (`phone_number_id`, `wa_id`) if no message
    /// is left in it (else counts none: erase those first), and every queued
    /// event and dead letter about the contact (its ordering key, or a payload
    /// naming the number and the contact as `from` or `recipient_id`), and every
    /// raw event of the number whose JSON names the contact (`"<wa_id>"`: a
    /// call, a value kept for its user id or username), whole.
    async fn erase_conversation(&self, phone_number_id: &str, wa_id: &str) -> Result<Erased>;

    /// The raw events of `phone_number_id` (`None`: of every number) whose
    /// JSON names the contact (`"<wa_id>"`), oldest first (to the second): what
    /// [`Store::erase_conversation`] deletes with the contact on each number,
    /// for its export and to find the numbers an erasure goes through. Events
    /// stored without a number (unreadable items) are left to retention.
    async fn raw_events_naming(
        &self,
        phone_number_id: Option<&str>,
        wa_id: &str,
    ) -> Result<Vec<StoredRawEvent>>;

    /// Up to `limit` messages whose `timestamp` is before `before` (Unix
    /// seconds), in no particular order: what retention deletes next.
    async fn messages_before(&self, before: i64, limit: usize) -> Result<Vec<StoredMessage>>;

    /// Deletes up to `limit` of each: conversations without messages whose last
    /// message is before `before` (Unix seconds), dead letters that died before
    /// it, and raw webhook events received before it.
    async fn purge_expired(&self, before: i64, limit: usize) -> Result<Erased>;
}
