//! API keys (by peppered hash) with their scopes, numbers and rates.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::model::ApiKey;
use crate::Result;

const COLUMNS: &str =
    "name, key_hash, scopes, phone_number_ids, rate_per_second, created_at, revoked_at";

pub(crate) fn put(conn: &Connection, key: &ApiKey) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO api_keys (key_hash, name, scopes, phone_number_ids, rate_per_second, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (key_hash) DO UPDATE SET name = excluded.name, scopes = excluded.scopes,
             phone_number_ids = excluded.phone_number_ids,
             rate_per_second = excluded.rate_per_second, revoked_at = NULL",
    )?
    .execute(params![
        key.key_hash,
        key.name,
        serde_json::to_string(&key.scopes)?,
        serde_json::to_string(&key.phone_number_ids)?,
        key.rate_per_second,
        key.created_at,
    ])?;
    Ok(())
}

pub(crate) fn live(conn: &Connection, key_hash: &str) -> Result<Option<ApiKey>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL"
    ))?
    .query_row([key_hash], raw)
    .optional()?
    .map(decode)
    .transpose()
}

pub(crate) fn revoke(conn: &Connection, name: &str) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE api_keys SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![name, super::now_ms() / 1000])?)
}

pub(crate) fn all(conn: &Connection) -> Result<Vec<ApiKey>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys ORDER BY name, created_at, key_hash"
    ))?;
    let rows = statement.query_map([], raw)?;
    rows.map(|row| decode(row?)).collect()
}

type RawKey = (
    String,
    String,
    String,
    String,
    Option<u32>,
    i64,
    Option<i64>,
);

fn raw(row: &Row) -> rusqlite::Result<RawKey> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn decode(
    (name, key_hash, scopes, numbers, rate_per_second, created_at, revoked_at): RawKey,
) -> Result<ApiKey> {
    Ok(ApiKey {
        name,
        key_hash,
        scopes: serde_json::from_str(&scopes)?,
        phone_number_ids: serde_json::from_str(&numbers)?,
        rate_per_second,
        created_at,
        revoked_at,
    })
}
