//! API keys (by peppered hash) with their scopes, numbers and rates, and the
//! audit log of state-changing calls.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use zapfn_store::{ApiKey, AuditEntry, Scope, StoreError};

use crate::db::{execute, query, query_opt, storable_text, DbResult};

const COLUMNS: &str =
    "name, key_hash, scopes, phone_number_ids, rate_per_second, created_at, revoked_at";

pub(crate) async fn put(db: &impl GenericClient, key: &ApiKey) -> DbResult<()> {
    let scopes: Vec<&str> = key.scopes.iter().map(|scope| scope.as_str()).collect();
    let rate = key.rate_per_second.map(|rate| rate as i32);
    execute(
        db,
        "INSERT INTO api_keys (key_hash, name, scopes, phone_number_ids, rate_per_second, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (key_hash) DO UPDATE SET name = excluded.name, scopes = excluded.scopes,
             phone_number_ids = excluded.phone_number_ids,
             rate_per_second = excluded.rate_per_second, revoked_at = NULL",
        &[
            &key.key_hash,
            &key.name,
            &scopes,
            &key.phone_number_ids,
            &rate,
            &key.created_at,
        ],
    )
    .await?;
    Ok(())
}

/// The live key with this hash.
pub(crate) async fn live(db: &impl GenericClient, key_hash: &str) -> DbResult<Option<ApiKey>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL");
    query_opt(db, &sql, &[&key_hash])
        .await?
        .as_ref()
        .map(decode)
        .transpose()
}

/// Revokes the live keys named `name`; how many.
pub(crate) async fn revoke(db: &impl GenericClient, name: &str, now_ms: i64) -> DbResult<usize> {
    let revoked = execute(
        db,
        "UPDATE api_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
        &[&name, &(now_ms / 1000)],
    )
    .await?;
    Ok(revoked as usize)
}

/// Every key, by name then creation.
pub(crate) async fn all(db: &impl GenericClient) -> DbResult<Vec<ApiKey>> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY name, created_at, key_hash");
    query(db, &sql, &[]).await?.iter().map(decode).collect()
}

fn decode(row: &Row) -> DbResult<ApiKey> {
    let scopes = row
        .get::<_, Vec<String>>(2)
        .iter()
        .map(|scope| scope.parse::<Scope>())
        .collect::<Result<_, _>>()
        .map_err(StoreError::Invalid)?;
    Ok(ApiKey {
        name: row.get(0),
        key_hash: row.get(1),
        scopes,
        phone_number_ids: row.get(3),
        rate_per_second: row.get::<_, Option<i32>>(4).map(|rate| rate as u32),
        created_at: row.get(5),
        revoked_at: row.get(6),
    })
}

pub(crate) async fn record_audit(db: &impl GenericClient, entry: &AuditEntry) -> DbResult<()> {
    execute(
        db,
        "INSERT INTO audit_log (at_ms, key_name, method, route, target, status, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &entry.at_ms,
            &storable_text(&entry.key_name),
            &storable_text(&entry.method),
            &storable_text(&entry.route),
            &entry.target.as_deref().map(storable_text),
            &i32::from(entry.status),
            &storable_text(&entry.request_id),
        ],
    )
    .await?;
    Ok(())
}

/// The latest `limit` entries, newest first.
pub(crate) async fn audit_log(db: &impl GenericClient, limit: usize) -> DbResult<Vec<AuditEntry>> {
    let rows = query(
        db,
        "SELECT at_ms, key_name, method, route, target, status, request_id
         FROM audit_log ORDER BY id DESC LIMIT $1",
        &[&(limit as i64)],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| AuditEntry {
            at_ms: row.get(0),
            key_name: row.get(1),
            method: row.get(2),
            route: row.get(3),
            target: row.get(4),
            status: row.get::<_, i32>(5) as u16,
            request_id: row.get(6),
        })
        .collect())
}
