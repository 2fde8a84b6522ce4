//! API key hashes.

use deadpool_postgres::GenericClient;

use crate::db::{execute, query_opt, DbResult};

pub(crate) async fn put(
    db: &impl GenericClient,
    name: &str,
    key_hash: &str,
    now_ms: i64,
) -> DbResult<()> {
    execute(
        db,
        "INSERT INTO api_keys (key_hash, name, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (key_hash) DO UPDATE SET name = excluded.name, revoked_at = NULL",
        &[&key_hash, &name, &(now_ms / 1000)],
    )
    .await?;
    Ok(())
}

pub(crate) async fn name(db: &impl GenericClient, key_hash: &str) -> DbResult<Option<String>> {
    let row = query_opt(
        db,
        "SELECT name FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        &[&key_hash],
    )
    .await?;
    Ok(row.map(|row| row.get(0)))
}
