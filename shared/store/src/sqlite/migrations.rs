//! Upgrades of databases made by earlier versions, by `PRAGMA user_version`.
//!
//! `schema.sql` is the current schema (idempotent: `IF NOT EXISTS`) and sets the
//! current version. A database of an older version first runs the steps from
//! its version on, each in one transaction, then `schema.sql`.

use rusqlite::Connection;

use crate::{Result, StoreError};

/// The version `schema.sql` creates.
pub(crate) const CURRENT: i64 = 2;

/// Version 1 → 2: API key scopes, numbers and rates (keys made before them
/// keep what they could do: admin on every number, unlimited), and the audit log.
const V2: &str = "
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '[\"admin\"]';
ALTER TABLE api_keys ADD COLUMN phone_number_ids TEXT NOT NULL DEFAULT '[\"*\"]';
ALTER TABLE api_keys ADD COLUMN rate_per_second INTEGER;
PRAGMA user_version = 2;
";

/// Brings the database to [`CURRENT`], then applies `schema.sql`.
pub(crate) fn apply(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > CURRENT {
        return Err(StoreError::Invalid(format!(
            "the database has schema version {version}, newer than this zapfn's {CURRENT}"
        )));
    }
    // Version 0 is a new file: schema.sql creates everything.
    if version == 1 {
        let tx = conn.transaction()?;
        tx.execute_batch(V2)?;
        tx.commit()?;
    }
    conn.execute_batch(include_str!("schema.sql"))?;
    Ok(())
}
