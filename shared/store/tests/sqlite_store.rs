//! Tests of what only the SQLite store has: the rows in its file (raw JSON kept
//! byte for byte, outbox and dead-letter columns), reopening the file, and the
//! group-commit writer. The behaviour every backend shares is in
//! `tests/conformance.rs` (the `zapfn-store-conformance` suite).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::json;
use tempfile::TempDir;
use zapfn_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use zapfn_store::{topics, MessageEvent, Settlement, Store, StoreError};
use zapfn_store_conformance::fixtures::*;
use zapfn_whatsapp::builders;

// ---------------------------------------------------------------- helpers

/// A fresh store in its own temporary directory (keep the directory alive).
fn open(options: SqliteOptions) -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("z.db"), options).unwrap();
    (dir, store)
}

fn open_default() -> (TempDir, SqliteStore) {
    open(SqliteOptions::default())
}

/// A plain connection to the store's file, for checking rows.
fn raw_db(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// The single integer a `SELECT count(*) ...` (or similar) returns.
fn count(db: &Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// The `raw` column of the message with this wamid.
fn raw_column(store: &SqliteStore, wamid: &str) -> String {
    raw_db(store.path())
        .query_row(
            "SELECT raw FROM messages WHERE wa_message_id = ?1",
            [wamid],
            |row| row.get(0),
        )
        .unwrap()
}

// ---------------------------------------------------------------- rows

#[tokio::test]
async fn ingest_writes_one_row_per_item() {
    let (_dir, store) = open_default();
    store.ingest(parse(BATCH_MULTI)).await.unwrap();

    let db = raw_db(store.path());
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM messages WHERE phone_number_id = '{PNID}'")
        ),
        3
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM messages WHERE phone_number_id = '{PNID_2}'")
        ),
        4
    );
    assert_eq!(count(&db, "SELECT count(*) FROM status_events"), 3);
    assert_eq!(count(&db, &format!("SELECT count(*) FROM raw_events WHERE kind = 'errors' AND phone_number_id = '{PNID_2}'")), 1);
}

#[tokio::test]
async fn ingest_keeps_raw_message_json_byte_for_byte() {
    let (_dir, store) = open_default();
    store.ingest(parse(UNKNOWN_TYPE)).await.unwrap();
    store.ingest(parse(UNICODE)).await.unwrap();
    assert_eq!(
        raw_column(&store, "wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggHOLOGRAM0001"),
        first_message_object(UNKNOWN_TYPE)
    );
    assert_eq!(
        raw_column(&store, "wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggUNICODE0001"),
        first_message_object(UNICODE)
    );
}

#[tokio::test]
async fn a_deferred_event_keeps_no_attempt_in_its_row() {
    let (_dir, store) = open_default();
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    let delivery = claim_one(&store, topics::MESSAGES).await;
    let after = Duration::from_secs(60);
    store
        .settle(&delivery, Settlement::Defer { after })
        .await
        .unwrap();
    let (attempts, first_attempt): (i64, Option<i64>) = raw_db(store.path())
        .query_row(
            "SELECT attempts, first_attempt_at_ms FROM outbox",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((attempts, first_attempt), (0, None));
}

#[tokio::test]
async fn dead_letter_rows_keep_the_event_its_attempts_and_last_error() {
    let (_dir, store) = open(SqliteOptions {
        max_attempts: 2,
        ..SqliteOptions::default()
    });
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    for attempt in 1..=2 {
        let delivery = claim_one(&store, topics::MESSAGES).await;
        let error = format!("boom {attempt}");
        let after = Duration::ZERO;
        store
            .settle(&delivery, Settlement::Retry { after, error })
            .await
            .unwrap();
    }
    store
        .dead_letter(topics::STATUSES, &json!({ "bad": true }), 3, "not a status")
        .await
        .unwrap();

    let db = raw_db(store.path());
    let rows: Vec<(String, Option<String>, String, i64, String)> = db
        .prepare("SELECT topic, ordering_key, payload, attempts, last_error FROM dead_letters ORDER BY dead_at_ms, id")
        .unwrap()
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    let (topic, key, payload, attempts, error) = &rows[0];
    assert_eq!(
        (topic.as_str(), key.clone(), *attempts, error.as_str()),
        (
            topics::MESSAGES,
            Some(format!("{PNID}:{MARIA}")),
            2,
            "boom 2"
        )
    );
    let event: MessageEvent = serde_json::from_str(payload).unwrap();
    assert_eq!(event.wamid, "wamid.M1");
    let (topic, key, payload, attempts, error) = &rows[1];
    assert_eq!(
        (
            topic.as_str(),
            key.clone(),
            payload.as_str(),
            *attempts,
            error.as_str()
        ),
        (topics::STATUSES, None, r#"{"bad":true}"#, 3, "not a status")
    );

    // A retry with attempts left keeps its error on the outbox row.
    store
        .ingest(texts(PNID, JOAO, &[("wamid.J1", 10)]))
        .await
        .unwrap();
    let j1 = claim_one(&store, topics::MESSAGES).await;
    let (after, error) = (Duration::from_secs(60), "later".to_owned());
    store
        .settle(&j1, Settlement::Retry { after, error })
        .await
        .unwrap();
    let (attempts, last_error): (i64, String) = db
        .query_row("SELECT attempts, last_error FROM outbox", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!((attempts, last_error.as_str()), (1, "later"));
}

// ---------------------------------------------------------------- durability and load

#[tokio::test]
async fn data_and_pending_events_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.db");
    let wamid = builders::new_wamid();
    let sent = {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        store
            .ingest(texts(PNID, MARIA, &[(wamid.as_str(), 10)]))
            .await
            .unwrap();
        store
            .put_api_key(&zapfn_store::ApiKey {
                name: "ci".into(),
                key_hash: "hash".into(),
                scopes: vec![zapfn_store::Scope::Send],
                phone_number_ids: vec![PNID.into()],
                rate_per_second: Some(3),
                created_at: 1,
                revoked_at: None,
            })
            .await
            .unwrap();
        let sent = store
            .enqueue_send(send_to(Some(MARIA), Some("key"), "hi"))
            .await
            .unwrap();
        // Leased by a handler that never finishes: the process "dies" with it in flight.
        claim_one(&store, topics::MESSAGES).await;
        sent
    };

    let store = SqliteStore::open(
        &path,
        SqliteOptions {
            durability: Durability::Power,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        store.release_leases().await.unwrap(),
        1,
        "the lease of the dead run"
    );
    let message = store
        .message(&wamid)
        .await
        .unwrap()
        .expect("inbound message kept");
    assert_eq!(
        message.text.as_deref(),
        Some(format!("text {wamid}").as_str())
    );
    assert_eq!(
        store.outbound(&sent.id).await.unwrap().unwrap().status,
        "queued"
    );
    assert_eq!(
        store.api_key("hash").await.unwrap().map(|key| key.name),
        Some("ci".to_owned())
    );
    assert_eq!(store.last_inbound_at(PNID, MARIA).await.unwrap(), Some(10));
    let again = store
        .enqueue_send(send_to(Some(MARIA), Some("key"), "hi"))
        .await
        .unwrap();
    assert_eq!(
        (again.id.as_str(), again.created),
        (sent.id.as_str(), false)
    );

    assert_eq!(
        pending(&store.queue_depths().await.unwrap()),
        [(topics::DISPATCH, 1), (topics::MESSAGES, 1)]
    );
    let event = claim_one(&store, topics::MESSAGES).await;
    assert_eq!(
        (event_message_id(&event), event.attempt),
        (message.id, 2),
        "the dead process's lease is released"
    );
    assert_eq!(
        event_message_id(&claim_one(&store, topics::DISPATCH).await),
        sent.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_takes_2000_concurrent_ingests() {
    let (_dir, store) = open_default();
    let tasks: Vec<_> = (0..2_000)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let customer = format!("55119000{:05}", i % 50);
                store
                    .ingest(texts(
                        PNID,
                        &customer,
                        &[(format!("wamid.LOAD{i:05}").as_str(), 1_000 + i)],
                    ))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let report = task.await.unwrap().unwrap();
        assert_eq!((report.new_messages, report.duplicate_messages), (1, 0));
    }

    let db = raw_db(store.path());
    assert_eq!(count(&db, "SELECT count(DISTINCT wa_message_id) FROM messages WHERE wa_message_id LIKE 'wamid.LOAD%'"), 2_000);
    assert_eq!(count(&db, "SELECT count(*) FROM conversations"), 50);
    assert_eq!(
        store.queue_depths().await.unwrap().pending[topics::MESSAGES],
        2_000
    );
    assert!(store.message("wamid.LOAD01999").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_does_not_fail_the_others_in_its_batch() {
    let (_dir, store) = open_default();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let result = store
                        .record_sent("msg_does_not_exist", Some("wamid.X"))
                        .await;
                    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
                } else {
                    store
                        .ingest(texts(
                            PNID,
                            MARIA,
                            &[(format!("wamid.OK{i:03}").as_str(), i)],
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        count(&raw_db(store.path()), "SELECT count(*) FROM messages"),
        100
    );
}
