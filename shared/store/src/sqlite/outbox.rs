//! The transactional outbox: events written with the data they describe, leased
//! by consumers, retried with backoff and dead-lettered when they run out.
//! Events of one topic with the same ordering key are delivered one at a time, in order.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, SqliteOptions};
use crate::model::{Delivery, QueueDepths, Settlement};
use crate::Result;

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

/// Leases due events: the oldest of each ordering key only.
pub(crate) fn claim(
    conn: &Connection,
    topic: &str,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Delivery>> {
    let now = now_ms();
    let mut select = conn.prepare_cached(
        "SELECT id, ordering_key, payload, attempts FROM outbox AS o INDEXED BY outbox_by_topic
         WHERE topic = ?1 AND available_at_ms <= ?2 AND leased_until_ms <= ?2
           AND (ordering_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM outbox AS p
                WHERE p.topic = o.topic AND p.ordering_key = o.ordering_key AND p.id < o.id))
         ORDER BY id LIMIT ?3",
    )?;
    let rows = select
        .query_map(params![topic, now, limit as i64], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, u32>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut lease_row = conn.prepare_cached(
        "UPDATE outbox SET leased_until_ms = ?2, attempts = attempts + 1 WHERE id = ?1",
    )?;
    let leased_until = now + lease.as_millis() as i64;
    let mut deliveries = Vec::with_capacity(rows.len());
    for (id, ordering_key, payload, attempts) in rows {
        lease_row.execute(params![id, leased_until])?;
        deliveries.push(Delivery {
            id,
            topic: topic.to_owned(),
            ordering_key,
            payload: serde_json::from_str(&payload)?,
            attempt: attempts + 1,
            lease_until_ms: leased_until,
        });
    }
    Ok(deliveries)
}

/// Applies a consumer's verdict on a leased event, if the lease is still its own.
pub(crate) fn settle(
    conn: &Connection,
    delivery: &Delivery,
    settlement: Settlement,
    options: &SqliteOptions,
) -> Result<()> {
    let now = now_ms();
    let created_at: Option<i64> = conn
        .prepare_cached("SELECT created_at_ms FROM outbox WHERE id = ?1 AND leased_until_ms = ?2")?
        .query_row(params![delivery.id, delivery.lease_until_ms], |r| r.get(0))
        .optional()?;
    // Gone, or its lease expired and it was delivered again: the newer delivery decides.
    let Some(created_at) = created_at else {
        return Ok(());
    };
    match settlement {
        Settlement::Ack => {
            conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute([delivery.id])?;
        }
        Settlement::Defer { after } => {
            conn.prepare_cached(
                "UPDATE outbox SET available_at_ms = ?2, leased_until_ms = 0, attempts = max(attempts - 1, 0) WHERE id = ?1",
            )?
            .execute(params![delivery.id, now + after.as_millis() as i64])?;
        }
        Settlement::Retry { after, error } => {
            let next = now + after.as_millis() as i64;
            let too_old = next - created_at > options.max_retry_age.as_millis() as i64;
            if delivery.attempt >= options.max_attempts || too_old {
                dead_letter(conn, delivery.id, &error, now)?;
            } else {
                conn.prepare_cached("UPDATE outbox SET available_at_ms = ?2, leased_until_ms = 0, last_error = ?3 WHERE id = ?1")?
                    .execute(params![delivery.id, next, error])?;
            }
        }
        Settlement::DeadLetter { error } => dead_letter(conn, delivery.id, &error, now)?,
    }
    Ok(())
}

/// Releases every lease: for a process that starts consuming after an unclean stop
/// (handlers are idempotent, so at worst an event runs twice).
pub(crate) fn release_leases(conn: &Connection) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE outbox SET leased_until_ms = 0 WHERE leased_until_ms > 0",
        [],
    )?)
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
