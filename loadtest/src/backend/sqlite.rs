//! The end state read straight from the SQLite file.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::reconcile::{Facts, Outbound};

/// Reads [`Facts`] from the database at `path` (read-only).
pub fn facts(path: &Path) -> anyhow::Result<Facts> {
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;

    let mut inbound: HashMap<String, u64> = HashMap::new();
    let mut statement =
        db.prepare("SELECT wa_message_id FROM messages WHERE direction = 'inbound'")?;
    for wamid in statement.query_map([], |row| row.get::<_, String>(0))? {
        *inbound.entry(wamid?).or_default() += 1;
    }

    let mut statement = db.prepare(
        "SELECT id, wa_message_id, status, idempotency_key, raw IS NULL FROM messages WHERE direction = 'outbound'",
    )?;
    let outbound = statement
        .query_map([], |row| {
            Ok(Outbound {
                id: row.get(0)?,
                wamid: row.get(1)?,
                status: row.get(2)?,
                idempotency_key: row.get(3)?,
                placeholder: row.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;

    let mut statement = db.prepare("SELECT subject, status FROM status_events")?;
    let statuses = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<HashSet<_>, _>>()?;

    let mut statement = db.prepare(
        "SELECT wa_message_id, json_extract(media, '$.object.status') FROM messages
         WHERE direction = 'inbound' AND type = 'image'",
    )?;
    let image_objects = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<HashMap<_, _>, _>>()?;

    let count = |table: &str| -> rusqlite::Result<u64> {
        db.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get::<_, i64>(0)
        })
        .map(|n| n as u64)
    };
    Ok(Facts {
        inbound,
        outbound,
        statuses,
        image_objects,
        dead_letters: count("dead_letters")?,
        outbox: count("outbox")?,
    })
}
