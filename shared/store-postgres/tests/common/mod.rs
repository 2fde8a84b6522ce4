//! A store in a schema of its own on the test server (`ZAPFN_TEST_DATABASE_URL`).

use zapfn_store_postgres::{PostgresOptions, PostgresStore};

/// The test server's URL, or `None` after a loud `SKIPPED` line (a failure
/// when `ZAPFN_REQUIRE_EMULATORS=1`).
pub fn database_url() -> Option<String> {
    match std::env::var("ZAPFN_TEST_DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            zapfn_store_conformance::unavailable(
                "PostgreSQL not running (ZAPFN_TEST_DATABASE_URL is unset; `scripts/postgres.sh start` prints one)",
            );
            None
        }
    }
}

/// A fresh schema name.
pub fn new_schema() -> String {
    format!("test_{}", uuid::Uuid::new_v4().simple())
}

/// A store in schema `schema` (created, and migrated, by connecting).
pub async fn connect(url: &str, schema: &str, options: PostgresOptions) -> PostgresStore {
    let options = PostgresOptions {
        schema: Some(schema.to_owned()),
        pool_size: 8,
        ..options
    };
    PostgresStore::connect(url, options)
        .await
        .unwrap_or_else(|e| panic!("ZAPFN_TEST_DATABASE_URL is set but connecting failed: {e}"))
}

/// A plain connection to the test server with `search_path` set to `schema`.
pub async fn raw_client(url: &str, schema: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path = {schema}"))
        .await
        .unwrap();
    client
}

/// Drops a test schema and everything in it.
pub async fn drop_schema(url: &str, schema: &str) {
    let client = raw_client(url, "public").await;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
}
