//! The transactional outbox: events written with the data they describe, leased
//! by consumers, retried with backoff and dead-lettered when they run out.
//! Events of one topic with the same ordering key are delivered one at a time, in order.

use std::fs::{File, OpenOptions, TryLockError};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, SqliteOptions};
use crate::model::{Delivery, QueueDepths, Settlement};
use crate::{Result, StoreError};

/// Adds an event to the outbox inside the caller's transaction.
pub(crate) fn publish(
    conn: &Connection,
    topic: &str,
    ordering_key: Option<&str>,
    payload: &str,
    now_ms: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (topic, ordering_key, payload, available_at_ms, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![topic, ordering_key, payload, now_ms])?;
    Ok(())
}

/// A leased event as stored; its payload is parsed off the writer thread.
pub(crate) struct Leased {
    pub id: i64,
    pub ordering_key: Option<String>,
    pub payload: String,
    pub attempt: u32,
    pub first_attempt_at_ms: i64,
    pub lease_until_ms: i64,
}

/// Leases due events (the oldest of each ordering key only) in one statement.
pub(crate) fn claim(
    conn: &Connection,
    topic: &str,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Leased>> {
    let now = now_ms();
    let leased_until = now + lease.as_millis() as i64;
    let mut lease_due = conn.prepare_cached(
        "UPDATE outbox SET leased_until_ms = ?4, attempts = attempts + 1,
             first_attempt_at_ms = coalesce(first_attempt_at_ms, ?2)
         WHERE id IN (
             SELECT id FROM outbox AS o INDEXED BY outbox_by_topic
             WHERE topic = ?1 AND available_at_ms <= ?2 AND leased_until_ms <= ?2
               AND (ordering_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM outbox AS p
                    WHERE p.topic = o.topic AND p.ordering_key = o.ordering_key AND p.id < o.id))
             ORDER BY id LIMIT ?3)
         RETURNING id, ordering_key, payload, attempts, first_attempt_at_ms",
    )?;
    let mut leased = lease_due
        .query_map(params![topic, now, limit as i64, leased_until], |row| {
            Ok(Leased {
                id: row.get(0)?,
                ordering_key: row.get(1)?,
                payload: row.get(2)?,
                attempt: row.get(3)?,
                first_attempt_at_ms: row.get(4)?,
                lease_until_ms: leased_until,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    leased.sort_by_key(|event| event.id);
    Ok(leased)
}

/// Applies a consumer's verdict on a leased event, if the lease is still its own
/// (a settle after the lease expired, when the event may be with another
/// consumer, changes nothing: the newer delivery decides).
pub(crate) fn settle(
    conn: &Connection,
    delivery: &Delivery,
    settlement: Settlement,
    options: &SqliteOptions,
) -> Result<()> {
    let id: i64 = delivery
        .id
        .parse()
        .map_err(|_| StoreError::Invalid(format!("not an outbox event id: {}", delivery.id)))?;
    let lease = params![id, delivery.lease_until_ms];
    let (after, error) = match settlement {
        Settlement::Ack => {
            conn.prepare_cached("DELETE FROM outbox WHERE id = ?1 AND leased_until_ms = ?2")?
                .execute(lease)?;
            return Ok(());
        }
        Settlement::Defer { after } => {
            conn.prepare_cached(
                "UPDATE outbox SET available_at_ms = ?3, leased_until_ms = 0, attempts = max(attempts - 1, 0),
                     first_attempt_at_ms = CASE WHEN attempts <= 1 THEN NULL ELSE first_attempt_at_ms END
                 WHERE id = ?1 AND leased_until_ms = ?2",
            )?
            .execute(params![id, delivery.lease_until_ms, now_ms() + after.as_millis() as i64])?;
            return Ok(());
        }
        Settlement::DeadLetter { error } => (None, error),
        Settlement::Retry { after, error } => (Some(after), error),
    };
    let still_leased = conn
        .prepare_cached("SELECT 1 FROM outbox WHERE id = ?1 AND leased_until_ms = ?2")?
        .query_row(lease, |_| Ok(()))
        .optional()?;
    if still_leased.is_none() {
        return Ok(());
    }
    let now = now_ms();
    let next = after.map(|after| now + after.as_millis() as i64);
    let retry = next.filter(|next| {
        delivery.attempt < options.max_attempts
            && next - delivery.first_attempt_at_ms <= options.max_retry_age.as_millis() as i64
    });
    match retry {
        Some(next) => {
            conn.prepare_cached(
                "UPDATE outbox SET available_at_ms = ?2, leased_until_ms = 0, last_error = ?3 WHERE id = ?1",
            )?
            .execute(params![id, next, error])?;
        }
        None => dead_letter(conn, id, &error, now)?,
    }
    Ok(())
}

/// Extends the lease of `delivery` to `until` if it is still the holder's.
pub(crate) fn renew_lease(conn: &Connection, delivery: &Delivery, until: i64) -> Result<bool> {
    let id: i64 = delivery
        .id
        .parse()
        .map_err(|_| StoreError::Invalid(format!("not an outbox event id: {}", delivery.id)))?;
    let renewed = conn
        .prepare_cached(
            "UPDATE outbox SET leased_until_ms = ?3 WHERE id = ?1 AND leased_until_ms = ?2",
        )?
        .execute(params![id, delivery.lease_until_ms, until])?;
    Ok(renewed > 0)
}

/// Releases every lease: for a process that starts consuming after an unclean stop
/// (handlers are idempotent, so at worst an event runs twice).
pub(crate) fn release_leases(conn: &Connection) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE outbox SET leased_until_ms = 0 WHERE leased_until_ms > 0",
        [],
    )?)
}

/// Every process consuming from a database holds a shared lock on the
/// `{name}.consumers.lock` file beside it for as long as its store lives; the
/// OS drops the lock of a process that dies. Whoever can take it exclusively consumes alone, so
/// the leases it finds are dead ones.
pub(crate) struct ConsumerLock {
    path: PathBuf,
    held: Mutex<Option<File>>,
}

impl ConsumerLock {
    /// The lock on `path` (created when first taken).
    pub(crate) fn new(path: PathBuf) -> ConsumerLock {
        ConsumerLock {
            path,
            held: Mutex::new(None),
        }
    }

    /// Joins the consumers: runs `release` under an exclusive lock when no other
    /// process consumes (0 released otherwise: their leases are live, and a dead
    /// process's run out in time), then holds the shared lock.
    pub(crate) async fn join(&self, release: impl Future<Output = Result<usize>>) -> Result<usize> {
        // This store's own earlier lock would count as another consumer.
        drop(self.held().take());
        let unavailable =
            |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", self.path.display()));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.path)
            .map_err(unavailable)?;
        let released = match file.try_lock() {
            Ok(()) => release.await?,
            Err(TryLockError::WouldBlock) => 0,
            Err(TryLockError::Error(e)) => return Err(unavailable(e)),
        };
        // Waits out another process's exclusive moment, if any.
        let file = tokio::task::spawn_blocking(move || file.lock_shared().map(|()| file))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(unavailable)?;
        *self.held() = Some(file);
        Ok(released)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<File>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn dead_letter(conn: &Connection, id: i64, error: &str, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO dead_letters (id, topic, ordering_key, payload, attempts, last_error, created_at_ms, dead_at_ms)
         SELECT id, topic, ordering_key, payload, attempts, ?2, created_at_ms, ?3 FROM outbox WHERE id = ?1",
    )?
    .execute(params![id, error, now])?;
    conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
        .execute([id])?;
    tracing::warn!(event_id = id, error, "event dead-lettered");
    Ok(())
}

/// Keeps an event that was not in the outbox (delivered by push) as a dead letter.
pub(crate) fn dead_letter_pushed(
    conn: &Connection,
    topic: &str,
    payload: &str,
    attempts: u32,
    error: &str,
) -> Result<()> {
    let now = now_ms();
    conn.prepare_cached(
        "INSERT INTO dead_letters (topic, payload, attempts, last_error, created_at_ms, dead_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![topic, payload, attempts, error, now])?;
    tracing::warn!(topic, error, "pushed event dead-lettered");
    Ok(())
}

/// Backlog per topic and the number of dead letters.
pub(crate) fn depths(conn: &Connection) -> Result<QueueDepths> {
    let mut depths = QueueDepths::default();
    let mut per_topic = conn.prepare_cached("SELECT topic, count(*) FROM outbox GROUP BY topic")?;
    for row in per_topic.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?))
    })? {
        let (topic, count) = row?;
        depths.pending.insert(topic, count);
    }
    depths.dead_letters = conn
        .prepare_cached("SELECT count(*) FROM dead_letters")?
        .query_row([], |r| r.get(0))?;
    Ok(depths)
}

/// When the oldest event of `topic` was published (ids grow with publishing).
pub(crate) fn oldest_pending_ms(conn: &Connection, topic: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT created_at_ms FROM outbox WHERE topic = ?1 ORDER BY id LIMIT 1")?
        .query_row([topic], |row| row.get(0))
        .optional()?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::sqlite::{SqliteOptions, SqliteStore};
    use crate::{topics, NewOutbound, Store};

    const LEASE: std::time::Duration = std::time::Duration::from_secs(600);

    fn send() -> NewOutbound {
        NewOutbound {
            phone_number_id: "106540352242922".into(),
            to: Some("5511999990000".into()),
            message_type: "text".into(),
            preview: None,
            context_message_id: None,
            body: json!({ "type": "text", "text": { "body": "hi" } }),
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn leases_are_released_only_while_no_other_process_consumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.db");
        let open = || SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let first = open();
        assert_eq!(first.release_leases().await.unwrap(), 0);
        first.enqueue_send(send()).await.unwrap();
        assert_eq!(
            first.claim(topics::DISPATCH, 1, LEASE).await.unwrap().len(),
            1
        );

        // Another process starts consuming from the file while the first runs.
        let second = open();
        assert_eq!(
            second.release_leases().await.unwrap(),
            0,
            "the first one's lease is live"
        );
        assert!(second
            .claim(topics::DISPATCH, 1, LEASE)
            .await
            .unwrap()
            .is_empty());

        // Once the first is gone, a consumer starting alone releases what it left.
        drop(first);
        assert_eq!(second.release_leases().await.unwrap(), 1);
        let again = second.claim(topics::DISPATCH, 1, LEASE).await.unwrap();
        assert_eq!(again[0].attempt, 2);
    }
}
