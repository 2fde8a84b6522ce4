//! API key hashes.

use rusqlite::{params, Connection, OptionalExtension};

use crate::Result;

pub(crate) fn put(conn: &Connection, name: &str, key_hash: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO api_keys (key_hash, name, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key_hash) DO UPDATE SET name = excluded.name, revoked_at = NULL",
    )?
    .execute(params![key_hash, name, super::now_ms() / 1000])?;
    Ok(())
}

pub(crate) fn name(conn: &Connection, key_hash: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT name FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL")?
        .query_row([key_hash], |row| row.get(0))
        .optional()?)
}
