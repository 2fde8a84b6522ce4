//! Upgrades of databases made by earlier versions, by `PRAGMA user_version`.
//!
//! `schema.sql` is the current schema (idempotent: `IF NOT EXISTS`) and sets the
//! current version. A database of an older version first runs the steps from
//! its version on, each in one transaction, then `schema.sql`.

use rusqlite::Connection;

use crate::{Result, StoreError};

/// The version `schema.sql` creates.
pub(crate) const CURRENT: i64 = 3;

/// Version 1 → 2: API key scopes, numbers and rates (keys made before them
/// keep what they could do: admin on every number, unlimited), and the audit log.
const V2: &str = "
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '[\"admin\"]';
ALTER TABLE api_keys ADD COLUMN phone_number_ids TEXT NOT NULL DEFAULT '[\"*\"]';
ALTER TABLE api_keys ADD COLUMN rate_per_second INTEGER;
PRAGMA user_version = 2;
";

/// Version 2 → 3: status events once per status and group member
/// (`recipient_participant_id`), not once per status.
const V3: &str = "
CREATE TABLE status_events_v3 (
    subject     TEXT NOT NULL,
    status      TEXT NOT NULL,
    participant TEXT NOT NULL DEFAULT '',
    timestamp   INTEGER NOT NULL,
    errors      TEXT,
    raw         TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (subject, status, participant)
) WITHOUT ROWID;
INSERT INTO status_events_v3 (subject, status, timestamp, errors, raw, received_at)
    SELECT subject, status, timestamp, errors, raw, received_at FROM status_events;
DROP TABLE status_events;
ALTER TABLE status_events_v3 RENAME TO status_events;
PRAGMA user_version = 3;
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
    for (from, step) in [(1, V2), (2, V3)] {
        if version != 0 && version <= from {
            let tx = conn.transaction()?;
            tx.execute_batch(step)?;
            tx.commit()?;
        }
    }
    conn.execute_batch(include_str!("schema.sql"))?;
    Ok(())
}
