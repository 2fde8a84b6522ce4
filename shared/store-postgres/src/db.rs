//! Errors, transactions with conflict retries, ids and clocks.

use deadpool_postgres::{GenericClient, PoolError};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use zapfn_store::StoreError;
use zapfn_whatsapp::webhook::{Notification, StatusUpdate};

/// Why a database step failed, before it becomes a [`StoreError`].
#[derive(Debug)]
pub(crate) enum Failure {
    Postgres(tokio_postgres::Error),
    Pool(PoolError),
    Store(StoreError),
}

/// Result of a database step.
pub(crate) type DbResult<T> = Result<T, Failure>;

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Failure {
        Failure::Postgres(error)
    }
}

impl From<PoolError> for Failure {
    fn from(error: PoolError) -> Failure {
        Failure::Pool(error)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::Store(error)
    }
}

impl From<serde_json::Error> for Failure {
    fn from(error: serde_json::Error) -> Failure {
        Failure::Store(error.into())
    }
}

impl Failure {
    /// A conflict with a concurrent transaction that running again resolves:
    /// a serialization failure, a deadlock, or a unique key another writer took
    /// first (the retry then finds its row, as a duplicate or idempotent repeat).
    pub(crate) fn is_conflict(&self) -> bool {
        let Failure::Postgres(error) = self else {
            return false;
        };
        matches!(
            error.code(),
            Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                | Some(&SqlState::T_R_DEADLOCK_DETECTED)
                | Some(&SqlState::UNIQUE_VIOLATION)
        )
    }
}

impl From<Failure> for StoreError {
    /// Data the database refuses (class 22, e.g. a NUL in an identifier) is
    /// `Invalid`; everything else (connections, pool timeouts, conflicts that
    /// persisted, a server shutting down) is `Unavailable`: try again later.
    fn from(failure: Failure) -> StoreError {
        match failure {
            Failure::Store(error) => error,
            Failure::Pool(error) => StoreError::Unavailable(format!("postgres pool: {error}")),
            Failure::Postgres(error) => {
                let data_exception = error
                    .code()
                    .is_some_and(|code| code.code().starts_with("22"));
                let detail = match error.as_db_error() {
                    Some(db) => format!("postgres: {} ({})", db.message(), db.code().code()),
                    None => format!("postgres: {error}"),
                };
                if data_exception {
                    StoreError::Invalid(detail)
                } else {
                    StoreError::Unavailable(detail)
                }
            }
        }
    }
}

/// Runs of a transaction that keeps conflicting before the store gives up.
pub(crate) const TRANSACTION_RUNS: u32 = 5;

/// Runs `$body` (an expression awaiting to `DbResult<T>`, using `$tx`, a
/// `&deadpool_postgres::Transaction`) in a transaction on a pooled connection,
/// committing on success and running it again on a conflict.
macro_rules! transaction {
    ($pool:expr, |$tx:ident| $body:expr) => {{
        let mut run = 1;
        loop {
            let outcome: $crate::db::DbResult<_> = async {
                let mut client = $pool.get().await?;
                let transaction = client.transaction().await?;
                let value = {
                    let $tx = &transaction;
                    $body.await?
                };
                transaction.commit().await?;
                Ok(value)
            }
            .await;
            match outcome {
                Err(failure) if failure.is_conflict() && run < $crate::db::TRANSACTION_RUNS => {
                    tracing::debug!(?failure, run, "transaction conflict; running it again");
                    tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(run))).await;
                    run += 1;
                }
                other => break other.map_err(zapfn_store::StoreError::from),
            }
        }
    }};
}
pub(crate) use transaction;

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new time-ordered id with a readable prefix (the SQLite store's format).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Text for a `text` column, which cannot hold NUL: each NUL becomes U+FFFD.
/// Deterministic, so a redelivered webhook still deduplicates.
pub(crate) fn storable_text(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

fn make_storable(text: &mut String) {
    if text.contains('\0') {
        *text = storable_text(text);
    }
}

/// A notification whose identifiers fit `text` columns (message text and
/// contact names are stored as bytes and keep their NULs).
pub(crate) fn storable_notification(mut notification: Notification) -> Notification {
    for message in &mut notification.messages {
        for field in [
            &mut message.phone_number_id,
            &mut message.wamid,
            &mut message.from,
            &mut message.message_type,
        ] {
            make_storable(field);
        }
    }
    for status in &mut notification.statuses {
        make_status_storable(status);
    }
    for event in &mut notification.events {
        make_storable(&mut event.kind);
        event.phone_number_id.iter_mut().for_each(make_storable);
    }
    notification
}

/// A status whose identifiers fit `text` columns.
pub(crate) fn make_status_storable(status: &mut StatusUpdate) {
    for field in [
        &mut status.phone_number_id,
        &mut status.wamid,
        &mut status.status,
    ] {
        make_storable(field);
    }
    status.recipient_id.iter_mut().for_each(make_storable);
    status.callback_data.iter_mut().for_each(make_storable);
}

/// Runs a statement (prepared once per connection) and returns its rows.
pub(crate) async fn query(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> DbResult<Vec<Row>> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query(&statement, params).await?)
}

/// Runs a statement that returns at most one row.
pub(crate) async fn query_opt(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> DbResult<Option<Row>> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_opt(&statement, params).await?)
}

/// Runs a statement and returns the number of rows it changed.
pub(crate) async fn execute(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> DbResult<u64> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.execute(&statement, params).await?)
}

/// A JSON column read as text (`column::text`), parsed.
pub(crate) fn json(text: Option<String>) -> DbResult<Option<serde_json::Value>> {
    Ok(text.map(|text| serde_json::from_str(&text)).transpose()?)
}

/// A bytea column holding UTF-8 text.
pub(crate) fn utf8(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}
