//! A database made by the version-1 schema opens with today's: its rows kept,
//! its API keys as powerful as they were (admin on every number, unlimited),
//! its status events kept (once per status and group member since version 3).

use rusqlite::Connection;
use zapfn_store::sqlite::{SqliteOptions, SqliteStore};
use zapfn_store::{AuditEntry, Scope, Store, StoreError, ALL_NUMBERS};

/// The api_keys table and version of schema version 1.
const V1_KEYS: &str = "
PRAGMA user_version = 1;
CREATE TABLE api_keys (
    key_hash   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
INSERT INTO api_keys VALUES ('live-hash', 'old', 100, NULL), ('gone-hash', 'gone', 100, 200);
CREATE TABLE status_events (
    subject     TEXT NOT NULL,
    status      TEXT NOT NULL,
    timestamp   INTEGER NOT NULL,
    errors      TEXT,
    raw         TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (subject, status)
) WITHOUT ROWID;
INSERT INTO status_events VALUES ('wamid.OLD', 'delivered', 1700000000, NULL, '{}', 1700000001);
";

/// An audit entry of a key creation by `key_name`.
fn audit_entry(key_name: &str) -> AuditEntry {
    AuditEntry {
        at_ms: 1,
        key_name: key_name.into(),
        method: "POST".into(),
        route: "/v1/keys".into(),
        target: None,
        status: 201,
        request_id: "r".into(),
    }
}

#[tokio::test]
async fn a_version_1_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(V1_KEYS)
        .unwrap();

    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let old = store.api_key("live-hash").await.unwrap().expect("kept");
    assert_eq!(old.name, "old");
    assert_eq!(old.scopes, [Scope::Admin]);
    assert_eq!(old.phone_number_ids, [ALL_NUMBERS]);
    assert_eq!(old.rate_per_second, None);
    assert_eq!(old.created_at, 100);
    assert_eq!(store.api_key("gone-hash").await.unwrap(), None);
    store.record_audit(&audit_entry("old")).await.unwrap();
    assert_eq!(store.audit_log(5).await.unwrap().len(), 1);
    drop(store);

    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let events: Vec<(String, String, String)> = Connection::open(&path)
        .unwrap()
        .prepare("SELECT subject, status, participant FROM status_events")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        events,
        [("wamid.OLD".into(), "delivered".into(), String::new())]
    );
    // Opening an upgraded database again changes nothing.
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert_eq!(store.api_keys().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_database_of_a_newer_zapfn_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99;")
        .unwrap();
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Invalid(message)) => assert!(message.contains("99"), "{message}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("opened a newer database"),
    }
}

/// The page size of the database file at `path`.
fn page_size(path: &std::path::Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap()
}

/// A new database gets zapfn's 16 KiB pages; one made earlier with SQLite's
/// default 4 KiB pages keeps them (a WAL database cannot change its page size)
/// and is read and written as before.
#[tokio::test]
async fn new_databases_get_16_kib_pages_and_older_ones_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("new.db");
    drop(SqliteStore::open(&fresh, SqliteOptions::default()).unwrap());
    assert_eq!(page_size(&fresh), 16 * 1024);

    let older = dir.path().join("old.db");
    Connection::open(&older)
        .unwrap()
        .execute_batch(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE earlier (x);",
        )
        .unwrap();
    let store = SqliteStore::open(&older, SqliteOptions::default()).unwrap();
    store.record_audit(&audit_entry("k")).await.unwrap();
    assert_eq!(store.audit_log(5).await.unwrap().len(), 1);
    drop(store);
    assert_eq!(page_size(&older), 4096);
}
