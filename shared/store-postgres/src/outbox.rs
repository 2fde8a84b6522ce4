//! The transactional outbox: events written with the data they describe, leased
//! by consumers (`FOR UPDATE SKIP LOCKED`), retried with backoff and
//! dead-lettered when they run out. Events of one topic with the same ordering
//! key are delivered one at a time, oldest first.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use zapfn_store::{Delivery, QueueDepths, Settlement, StoreError};

use crate::db::{execute, query, query_opt, storable_text, DbResult};
use crate::PostgresOptions;

/// Adds an event to the outbox inside the caller's transaction.
pub(crate) async fn publish(
    db: &impl GenericClient,
    topic: &str,
    ordering_key: Option<&str>,
    payload: &str,
    now_ms: i64,
) -> DbResult<()> {
    execute(
        db,
        "INSERT INTO outbox (topic, ordering_key, payload, available_at_ms, created_at_ms)
         VALUES ($1, $2, $3::text::json, $4, $4)",
        &[&topic, &ordering_key, &payload, &now_ms],
    )
    .await?;
    Ok(())
}

/// Leases due events of `topic`: of each ordering key only the oldest, and only
/// while no other event of its key is in flight.
///
/// Claims of one topic take a transaction-level advisory lock, so each sees the
/// leases of the claim before it: two consumers can never each lease an event
/// of the same key (an event committed late with a lower id would otherwise
/// look like a free head to one while the other holds a newer one).
/// `SKIP LOCKED` passes over events a settle is changing right now.
pub(crate) async fn claim(
    db: &impl GenericClient,
    topic: &str,
    limit: usize,
    lease: Duration,
    now: i64,
) -> DbResult<Vec<Delivery>> {
    let leased_until = now + lease.as_millis() as i64;
    execute(
        db,
        "SELECT pg_advisory_xact_lock(hashtextextended('zapfn-claim:' || $1, 0))",
        &[&topic],
    )
    .await?;
    let rows = query(
        db,
        "WITH due AS (
             SELECT id FROM outbox AS o
             WHERE topic = $1 AND available_at_ms <= $2 AND leased_until_ms <= $2
               AND (ordering_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM outbox AS p
                    WHERE p.topic = o.topic AND p.ordering_key = o.ordering_key
                      AND (p.id < o.id OR p.leased_until_ms > $2)))
             ORDER BY id
             LIMIT $3
             FOR UPDATE SKIP LOCKED)
         UPDATE outbox SET leased_until_ms = $4, attempts = attempts + 1,
             first_attempt_at_ms = coalesce(first_attempt_at_ms, $2)
         FROM due WHERE outbox.id = due.id
         RETURNING outbox.id, ordering_key, payload::text, attempts, first_attempt_at_ms",
        &[&topic, &now, &(limit as i64), &leased_until],
    )
    .await?;
    let mut leased = rows
        .into_iter()
        .map(|row| {
            let payload: String = row.get(2);
            Ok(Delivery {
                id: row.get::<_, i64>(0).to_string(),
                topic: topic.to_owned(),
                ordering_key: row.get(1),
                payload: serde_json::from_str(&payload)?,
                attempt: row.get::<_, i32>(3) as u32,
                first_attempt_at_ms: row.get(4),
                lease_until_ms: leased_until,
            })
        })
        .collect::<DbResult<Vec<_>>>()?;
    leased.sort_by_key(|delivery| delivery.id.parse::<i64>().unwrap_or_default());
    Ok(leased)
}

/// Applies a consumer's verdict on a leased event, if the lease is still its own
/// (a settle after the lease expired, when the event may be with another
/// consumer, changes nothing: the newer delivery decides).
pub(crate) async fn settle(
    db: &impl GenericClient,
    delivery: &Delivery,
    settlement: Settlement,
    options: &PostgresOptions,
    now: i64,
) -> DbResult<()> {
    let id: i64 = delivery
        .id
        .parse()
        .map_err(|_| StoreError::Invalid(format!("not an outbox event id: {}", delivery.id)))?;
    let lease = delivery.lease_until_ms;
    let (after, error) = match settlement {
        Settlement::Ack => {
            execute(
                db,
                "DELETE FROM outbox WHERE id = $1 AND leased_until_ms = $2",
                &[&id, &lease],
            )
            .await?;
            return Ok(());
        }
        Settlement::Defer { after } => {
            let available_at = now + after.as_millis() as i64;
            execute(
                db,
                "UPDATE outbox SET available_at_ms = $3, leased_until_ms = 0,
                     attempts = greatest(attempts - 1, 0),
                     first_attempt_at_ms = CASE WHEN attempts <= 1 THEN NULL ELSE first_attempt_at_ms END
                 WHERE id = $1 AND leased_until_ms = $2",
                &[&id, &lease, &available_at],
            )
            .await?;
            return Ok(());
        }
        Settlement::DeadLetter { error } => (None, error),
        Settlement::Retry { after, error } => (Some(after), error),
    };
    let error = storable_text(&error);
    let next = after.map(|after| now + after.as_millis() as i64);
    let retry = next.filter(|next| {
        delivery.attempt < options.max_attempts
            && next - delivery.first_attempt_at_ms <= options.max_retry_age.as_millis() as i64
    });
    match retry {
        Some(next) => {
            execute(
                db,
                "UPDATE outbox SET available_at_ms = $3, leased_until_ms = 0, last_error = $4
                 WHERE id = $1 AND leased_until_ms = $2",
                &[&id, &lease, &next, &error],
            )
            .await?;
        }
        None => {
            let moved = execute(
                db,
                "WITH dead AS (DELETE FROM outbox WHERE id = $1 AND leased_until_ms = $2
                               RETURNING id, topic, ordering_key, payload, attempts, created_at_ms)
                 INSERT INTO dead_letters (event_id, topic, ordering_key, payload, attempts, last_error,
                                           created_at_ms, dead_at_ms)
                 SELECT id, topic, ordering_key, payload, attempts, $3, created_at_ms, $4 FROM dead",
                &[&id, &lease, &error, &now],
            )
            .await?;
            if moved > 0 {
                tracing::warn!(event_id = id, error, "event dead-lettered");
            }
        }
    }
    Ok(())
}

/// Extends the lease of `delivery` to `until` if it is still the holder's.
pub(crate) async fn renew_lease(
    db: &impl GenericClient,
    delivery: &Delivery,
    until: i64,
) -> DbResult<bool> {
    let id: i64 = delivery
        .id
        .parse()
        .map_err(|_| StoreError::Invalid(format!("not an outbox event id: {}", delivery.id)))?;
    let renewed = execute(
        db,
        "UPDATE outbox SET leased_until_ms = $3 WHERE id = $1 AND leased_until_ms = $2",
        &[&id, &delivery.lease_until_ms, &until],
    )
    .await?;
    Ok(renewed > 0)
}

/// Releases every lease: for a process that starts consuming after an unclean stop
/// (handlers are idempotent, so at worst an event runs twice).
pub(crate) async fn release_leases(db: &impl GenericClient) -> DbResult<usize> {
    let released = execute(
        db,
        "UPDATE outbox SET leased_until_ms = 0 WHERE leased_until_ms > 0",
        &[],
    )
    .await?;
    Ok(released as usize)
}

/// Keeps an event that was not in the outbox (delivered by push) as a dead letter.
pub(crate) async fn dead_letter_pushed(
    db: &impl GenericClient,
    topic: &str,
    payload: &str,
    attempts: u32,
    error: &str,
    now: i64,
) -> DbResult<()> {
    let error = storable_text(error);
    execute(
        db,
        "INSERT INTO dead_letters (topic, payload, attempts, last_error, created_at_ms, dead_at_ms)
         VALUES ($1, $2::text::json, $3, $4, $5, $5)",
        &[&topic, &payload, &(attempts as i32), &error, &now],
    )
    .await?;
    tracing::warn!(topic, error, "pushed event dead-lettered");
    Ok(())
}

/// Backlog per topic and the number of dead letters.
pub(crate) async fn depths(db: &impl GenericClient) -> DbResult<QueueDepths> {
    let mut depths = QueueDepths::default();
    for row in query(db, "SELECT topic, count(*) FROM outbox GROUP BY topic", &[]).await? {
        depths
            .pending
            .insert(row.get(0), row.get::<_, i64>(1) as u64);
    }
    let dead = query_opt(db, "SELECT count(*) FROM dead_letters", &[]).await?;
    depths.dead_letters = dead.map_or(0, |row| row.get::<_, i64>(0) as u64);
    Ok(depths)
}

/// When the oldest event of `topic` was published (ids grow with publishing).
pub(crate) async fn oldest_pending_ms(
    db: &impl GenericClient,
    topic: &str,
) -> DbResult<Option<i64>> {
    let row = query_opt(
        db,
        "SELECT created_at_ms FROM outbox WHERE topic = $1 ORDER BY id LIMIT 1",
        &[&topic],
    )
    .await?;
    Ok(row.map(|row| row.get(0)))
}
