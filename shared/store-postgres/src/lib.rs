//! zapfn's [`Store`] on PostgreSQL (Cloud SQL in the deployed setup), with the
//! same behaviour as the embedded SQLite store: the `zapfn-store-conformance`
//! suite runs against both.
//!
//! - `tokio-postgres` over a `deadpool-postgres` pool (no TLS: Cloud SQL is
//!   reached over its Unix socket or a private IP), statements prepared once per
//!   connection.
//! - Schema in `migrations/` (refinery, embedded), applied by [`PostgresStore::connect`]
//!   under an advisory lock, so instances starting together migrate once.
//! - Every write is one transaction. Duplicates are caught by unique keys
//!   (`ON CONFLICT`); writes that read before they write lock the row
//!   (`FOR UPDATE`); a transaction that conflicts with another (deadlock,
//!   serialization failure, a unique key taken first) runs again.
//! - Errors: data the database refuses is `StoreError::Invalid`; connections,
//!   pool timeouts and conflicts that persist are `StoreError::Unavailable`.

mod contacts;
mod db;
mod ingest;
mod keys;
mod media;
mod messages;
mod outbox;
mod reads;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::Notify;
use tokio_postgres::NoTls;
use zapfn_store::*;
use zapfn_whatsapp::webhook::{Notification, StatusUpdate};

use db::{
    make_status_storable, now_ms, storable_notification, storable_text, transaction, Failure,
};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Store settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Deliveries of one outbox event before it is dead-lettered.
    pub max_attempts: u32,
    /// Age after an event's first attempt past which a retry dead-letters it.
    pub max_retry_age: Duration,
    /// Connections in the pool.
    pub pool_size: usize,
    /// A schema to keep zapfn's tables in (created if missing), instead of the
    /// connection's default `search_path`. Letters, digits and `_` only.
    pub schema: Option<String>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_attempts: 5,
            max_retry_age: Duration::from_secs(300),
            pool_size: 10,
            schema: None,
        }
    }
}

/// How long to wait for a new connection, and for a free one from the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_WAIT: Duration = Duration::from_secs(10);

/// The PostgreSQL-backed [`Store`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    options: PostgresOptions,
    published: Arc<Notify>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`, or
    /// `host=/cloudsql/...` for a Unix socket) and applies pending migrations.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStore> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if let Some(schema) = &options.schema {
            if schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(StoreError::Invalid(format!("schema name {schema:?}")));
            }
            let given = config.get_options().unwrap_or_default();
            config.options(format!("{given} -c search_path={schema}"));
        }
        migrate(&config, options.schema.as_deref()).await?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| StoreError::Invalid(format!("postgres pool: {e}")))?;
        Ok(PostgresStore {
            pool,
            options,
            published: Arc::new(Notify::new()),
        })
    }

    /// Notified when this store committed new outbox events, so consumers in
    /// this process wait on it between looks instead of polling hard (as the
    /// SQLite store's). Events other processes publish are seen on the next look.
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

/// Creates the schema if asked and runs the embedded migrations, holding an
/// advisory lock so concurrent starts wait for one another.
async fn migrate(config: &tokio_postgres::Config, schema: Option<&str>) -> Result<()> {
    let (mut client, connection) = config.connect(NoTls).await.map_err(Failure::from)?;
    let driver = tokio::spawn(connection);
    let migrated: Result<()> = async {
        client
            .execute(
                "SELECT pg_advisory_lock(hashtextextended('zapfn-migrations:' || $1, 0))",
                &[&schema.unwrap_or_default()],
            )
            .await
            .map_err(Failure::from)?;
        if let Some(schema) = schema {
            let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            client.batch_execute(&create).await.map_err(Failure::from)?;
        }
        let report = embedded::migrations::runner()
            .run_async(&mut client)
            .await
            .map_err(|e| StoreError::Unavailable(format!("postgres migrations: {e}")))?;
        for migration in report.applied_migrations() {
            tracing::info!(migration = %migration, "postgres migration applied");
        }
        Ok(())
    }
    .await;
    drop(client);
    let _ = driver.await;
    migrated
}

#[async_trait]
impl Store for PostgresStore {
    async fn ingest(&self, notification: Notification) -> Result<IngestReport> {
        let notification = storable_notification(notification);
        let now = now_ms();
        let result = transaction!(self.pool, |tx| ingest::ingest(tx, &notification, now));
        self.notify_published(result)
    }

    async fn apply_status(&self, status: &StatusUpdate) -> Result<()> {
        let mut status = status.clone();
        make_status_storable(&mut status);
        let now = now_ms();
        transaction!(self.pool, |tx| messages::apply_status(tx, &status, now))
    }

    async fn enqueue_send(&self, send: NewOutbound) -> Result<Enqueued> {
        let now = now_ms();
        let result = transaction!(self.pool, |tx| messages::enqueue_send(tx, &send, now));
        self.notify_published(result)
    }

    async fn outbound(&self, id: &str) -> Result<Option<OutboundMessage>> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(messages::outbound(&client, id).await?)
    }

    async fn earlier_send_pending(&self, id: &str, since: i64) -> Result<bool> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(messages::earlier_send_pending(&client, id, since).await?)
    }

    async fn record_sent(&self, id: &str, wamid: Option<&str>) -> Result<()> {
        let now = now_ms();
        transaction!(self.pool, |tx| messages::record_sent(tx, id, wamid, now))
    }

    async fn mark_dispatching(&self, id: &str) -> Result<()> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(messages::mark_dispatching(&client, id, now_ms()).await?)
    }

    async fn record_send_error(
        &self,
        id: &str,
        error: serde_json::Value,
        terminal: bool,
        maybe_sent: bool,
    ) -> Result<()> {
        let now = now_ms();
        transaction!(self.pool, |tx| messages::record_send_error(
            tx, id, &error, terminal, maybe_sent, now
        ))
    }

    async fn message(&self, id_or_wamid: &str) -> Result<Option<MessageView>> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(reads::message(&client, &storable_text(id_or_wamid)).await?)
    }

    async fn conversations(&self, query: ConversationQuery) -> Result<Page<Conversation>> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(reads::conversations(&client, &query).await?)
    }

    async fn conversation(&self, id: &str) -> Result<Option<Conversation>> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(reads::conversation(&client, id).await?)
    }

    async fn conversation_messages(
        &self,
        conversation_id: &str,
        page: PageRequest,
    ) -> Result<Page<MessageView>> {
        // One snapshot for the page and its histories.
        transaction!(self.pool, |tx| reads::conversation_messages(
            tx,
            conversation_id,
            &page
        ))
    }

    async fn last_inbound_at(&self, phone_number_id: &str, wa_id: &str) -> Result<Option<i64>> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(reads::last_inbound_at(&client, phone_number_id, wa_id).await?)
    }

    async fn annotate_media(
        &self,
        message_id: &str,
        key: &str,
        value: serde_json::Value,
        events: Vec<NewEvent>,
    ) -> Result<bool> {
        let now = now_ms();
        let publishes = !events.is_empty();
        let result = transaction!(self.pool, |tx| media::annotate(
            tx, message_id, key, &value, &events, now
        ));
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
        let client = self.pool.get().await.map_err(Failure::from)?;
        let payload = payload.to_string();
        Ok(outbox::dead_letter_pushed(&client, topic, &payload, attempts, error, now_ms()).await?)
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<()> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(keys::put(&client, key).await?)
    }

    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(keys::live(&client, key_hash).await?)
    }

    async fn revoke_api_key(&self, name: &str) -> Result<usize> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(keys::revoke(&client, name, now_ms()).await?)
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(keys::all(&client).await?)
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(keys::record_audit(&client, entry).await?)
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(keys::audit_log(&client, limit).await?)
    }

    async fn claim(&self, topic: &str, limit: usize, lease: Duration) -> Result<Vec<Delivery>> {
        let now = now_ms();
        transaction!(self.pool, |tx| outbox::claim(tx, topic, limit, lease, now))
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<()> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(outbox::settle(&client, delivery, settlement, &self.options, now_ms()).await?)
    }

    async fn renew_lease(&self, delivery: &Delivery, lease: Duration) -> Result<Option<i64>> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        let until = now_ms() + lease.as_millis() as i64;
        let renewed = outbox::renew_lease(&client, delivery, until).await?;
        Ok(renewed.then_some(until))
    }

    async fn release_leases(&self) -> Result<usize> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(outbox::release_leases(&client).await?)
    }

    async fn queue_depths(&self) -> Result<QueueDepths> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(outbox::depths(&client).await?)
    }

    async fn oldest_pending_ms(&self, topic: &str) -> Result<Option<i64>> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(outbox::oldest_pending_ms(&client, topic).await?)
    }

    async fn erase_messages(&self, ids: &[String]) -> Result<Erased> {
        let ids: Vec<String> = ids.iter().map(|id| storable_text(id)).collect();
        transaction!(self.pool, |tx| contacts::erase_messages(tx, &ids))
    }

    async fn erase_conversation(&self, phone_number_id: &str, wa_id: &str) -> Result<Erased> {
        let (pnid, wa_id) = (storable_text(phone_number_id), storable_text(wa_id));
        transaction!(self.pool, |tx| contacts::erase_conversation(
            tx, &pnid, &wa_id
        ))
    }

    async fn raw_events_naming(
        &self,
        phone_number_id: Option<&str>,
        wa_id: &str,
    ) -> Result<Vec<StoredRawEvent>> {
        let (pnid, wa_id) = (phone_number_id.map(storable_text), storable_text(wa_id));
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(contacts::raw_events_naming(&client, pnid.as_deref(), &wa_id).await?)
    }

    async fn messages_before(&self, before: i64, limit: usize) -> Result<Vec<StoredMessage>> {
        let client = self.pool.get().await.map_err(Failure::from)?;
        Ok(contacts::messages_before(&client, before, limit).await?)
    }

    async fn purge_expired(&self, before: i64, limit: usize) -> Result<Erased> {
        transaction!(self.pool, |tx| contacts::purge_expired(tx, before, limit))
    }
}
