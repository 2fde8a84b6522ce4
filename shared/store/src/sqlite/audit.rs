//! The audit log of state-changing API calls.

use rusqlite::{params, Connection};

use crate::model::AuditEntry;
use crate::Result;

pub(crate) fn record(conn: &Connection, entry: &AuditEntry) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at_ms, key_name, method, route, target, status, request_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        entry.at_ms,
        entry.key_name,
        entry.method,
        entry.route,
        entry.target,
        entry.status,
        entry.request_id,
    ])?;
    Ok(())
}

pub(crate) fn latest(conn: &Connection, limit: usize) -> Result<Vec<AuditEntry>> {
    let mut statement = conn.prepare_cached(
        "SELECT at_ms, key_name, method, route, target, status, request_id
         FROM audit_log ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = statement.query_map([limit as i64], |row| {
        Ok(AuditEntry {
            at_ms: row.get(0)?,
            key_name: row.get(1)?,
            method: row.get(2)?,
            route: row.get(3)?,
            target: row.get(4)?,
            status: row.get(5)?,
            request_id: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
