//! The SQLite store's webhook journal on real files: acknowledged bodies are
//! read back at once and stored once, segments a crashed process left behind
//! (torn tail included) are stored on the next open, a body that is not a
//! notification is kept raw, a second opener of the file stores webhooks
//! itself, and while storage is locked webhooks are acknowledged from the
//! journal up to its backlog limit, then refused, and all stored afterwards;
//! with journaling off, webhooks are stored before the call returns; a journal
//! directory lost under a database still stores the webhooks that come next.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use tempfile::TempDir;
use zapfn_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use zapfn_store::{Store, StoreError};
use zapfn_store_conformance::fixtures::*;
use zapfn_whatsapp::builders;

const FLUSH: Duration = Duration::from_secs(30);

fn open(dir: &TempDir, options: SqliteOptions) -> SqliteStore {
    SqliteStore::open(dir.path().join("z.db"), options).unwrap()
}

fn count(path: &Path, sql: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

fn inbound_rows(path: &Path) -> i64 {
    count(
        path,
        "SELECT count(*) FROM messages WHERE direction = 'inbound'",
    )
}

/// A signed-webhook body with one text from `from`; (wamid, body).
fn text_webhook(from: &str, text: &str) -> (String, Vec<u8>) {
    let wamid = builders::new_wamid();
    let message = builders::text_message(from, &wamid, now_secs(), text);
    let body = builders::messages_notification(PNID, from, "Maria", vec![message]);
    (wamid, serde_json::to_vec(&body).unwrap())
}

/// Writes a segment as an earlier process would have: length, CRC-32, body.
fn write_segment(dir: &Path, segment: u64, records: &[&[u8]], torn_tail: bool) -> PathBuf {
    let journal = dir.join("z.journal");
    std::fs::create_dir_all(&journal).unwrap();
    let mut bytes = Vec::new();
    for body in records {
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        bytes.extend_from_slice(body);
    }
    if torn_tail {
        // The head of a 1,000-byte record whose body never made it to the disk.
        bytes.extend_from_slice(&1000u32.to_le_bytes());
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(b"{\"obj");
    }
    let path = journal.join(format!("{segment:020}.log"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn acknowledged_webhooks_are_read_back_at_once_and_stored_once() {
    read_back_and_stored_once(Durability::Process).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_power_durability_group_writes_are_read_back_and_stored_once() {
    read_back_and_stored_once(Durability::Power).await;
}

/// Appends 200 webhooks concurrently, redelivers them and the duplicate
/// fixtures, and checks every one readable at once and stored once.
async fn read_back_and_stored_once(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        &dir,
        SqliteOptions {
            durability,
            ..SqliteOptions::default()
        },
    );
    let webhooks: Vec<_> = (0..200)
        .map(|n| text_webhook(&format!("55119{n:08}"), &format!("oi {n}")))
        .collect();
    let accepted = futures_join(&store, &webhooks).await;
    assert!(accepted.iter().all(Result::is_ok), "{accepted:?}");
    // Reads wait for acknowledged webhooks: every message is there at once.
    for (wamid, _) in &webhooks {
        let view = store.message(wamid).await.unwrap();
        assert!(view.is_some(), "{wamid} readable right after its 200");
    }
    // Redelivered, every one of them, and the duplicate fixtures twice over.
    futures_join(&store, &webhooks).await;
    for body in [DUPLICATE_A, DUPLICATE_B, DUPLICATE_A] {
        store.accept_webhook(body).await.unwrap();
    }
    assert!(store.flush_webhooks(FLUSH).await);
    assert_eq!(inbound_rows(store.path()), 201);
    assert_eq!(
        count(
            store.path(),
            "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"
        ),
        201,
        "one `messages` event per new message, none for redeliveries"
    );
}

/// Accepts every body concurrently.
async fn futures_join(
    store: &SqliteStore,
    webhooks: &[(String, Vec<u8>)],
) -> Vec<Result<(), StoreError>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (_, body) in webhooks {
        let (store, body) = (store.clone(), body.clone());
        tasks.spawn(async move { store.accept_webhook(&body).await });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn segments_a_crashed_process_left_are_stored_on_open_past_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (first, first_body) = text_webhook(MARIA, "antes do crash");
    let (second, second_body) = text_webhook(JOAO, "também");
    let (third, third_body) = text_webhook(MARIA, "no segmento seguinte");
    let old = [
        write_segment(dir.path(), 1, &[&first_body, &second_body], true),
        write_segment(dir.path(), 2, &[&third_body], false),
    ];
    let store = open(&dir, SqliteOptions::default());
    assert!(store.flush_webhooks(FLUSH).await);
    for wamid in [&first, &second, &third] {
        assert!(store.message(wamid).await.unwrap().is_some(), "{wamid}");
    }
    assert_eq!(inbound_rows(store.path()), 3);
    // Passed segments are deleted once their records are committed.
    for path in &old {
        assert!(!path.exists(), "{} deleted", path.display());
    }
    // A new process starts where the last one stopped: nothing twice.
    drop(store);
    let store = open(&dir, SqliteOptions::default());
    assert!(store.flush_webhooks(FLUSH).await);
    assert_eq!(inbound_rows(store.path()), 3);
}

#[tokio::test]
async fn a_lost_journal_directory_does_not_put_new_webhooks_behind_the_stored_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, SqliteOptions::default());
    let (before, before_body) = text_webhook(MARIA, "antes de perder o diretório");
    store.accept_webhook(&before_body).await.unwrap();
    assert!(store.flush_webhooks(FLUSH).await);
    drop(store);
    // The database keeps its journal position; the segments are gone.
    std::fs::remove_dir_all(dir.path().join("z.journal")).unwrap();
    let store = open(&dir, SqliteOptions::default());
    let (after, after_body) = text_webhook(JOAO, "depois");
    store.accept_webhook(&after_body).await.unwrap();
    assert!(store.flush_webhooks(FLUSH).await);
    for wamid in [&before, &after] {
        assert!(store.message(wamid).await.unwrap().is_some(), "{wamid}");
    }
    assert_eq!(inbound_rows(store.path()), 2);
}

#[tokio::test]
async fn a_journaled_body_that_is_not_a_notification_is_kept_raw() {
    let dir = tempfile::tempdir().unwrap();
    let (wamid, body) = text_webhook(MARIA, "depois do lixo");
    write_segment(dir.path(), 1, &[b"{\"object\": not json", &body], false);
    let store = open(&dir, SqliteOptions::default());
    assert!(store.flush_webhooks(FLUSH).await);
    assert!(store.message(&wamid).await.unwrap().is_some());
    let kept: String = Connection::open(store.path())
        .unwrap()
        .query_row(
            "SELECT raw FROM raw_events WHERE kind = 'unstored_webhook'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(kept, "{\"object\": not json");
}

/// A batch is stored in one savepoint; a bad record in it undoes the batch,
/// which is then stored record by record: the good ones once each.
#[tokio::test]
async fn a_bad_record_mid_batch_leaves_the_others_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let (before, first) = text_webhook(MARIA, "antes");
    let (after, second) = text_webhook(MARIA, "depois");
    write_segment(dir.path(), 1, &[&first, b"[1, 2", &second], false);
    let store = open(&dir, SqliteOptions::default());
    assert!(store.flush_webhooks(FLUSH).await);
    for wamid in [&before, &after] {
        assert!(store.message(wamid).await.unwrap().is_some(), "{wamid}");
    }
    assert_eq!(inbound_rows(store.path()), 2);
    let db = Connection::open(store.path()).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |row| row.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE topic = 'messages'"),
        2,
        "one event per message"
    );
    assert_eq!(
        count("SELECT count(*) FROM raw_events WHERE kind = 'unstored_webhook'"),
        1
    );
}

#[tokio::test]
async fn a_second_opener_of_the_file_stores_webhooks_itself() {
    let dir = tempfile::tempdir().unwrap();
    let owner = open(&dir, SqliteOptions::default());
    let other = open(&dir, SqliteOptions::default());
    let journals = std::fs::read_dir(dir.path().join("z.journal"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "log")
        })
        .count();
    assert_eq!(journals, 1, "only the owner has a segment");
    let (wamid, body) = text_webhook(MARIA, "pelo outro processo");
    other.accept_webhook(&body).await.unwrap();
    // Stored before the call returned: no indexer was involved.
    assert_eq!(inbound_rows(other.path()), 1);
    assert!(owner.message(&wamid).await.unwrap().is_some());
}

#[tokio::test]
async fn while_storage_is_locked_webhooks_are_journaled_up_to_the_limit_then_refused_and_all_stored_after(
) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        &dir,
        SqliteOptions {
            max_journal_backlog: 64 * 1024,
            ..SqliteOptions::default()
        },
    );
    // Another process holds the write lock: nothing can be stored for now.
    let blocker = Connection::open(store.path()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for n in 0..400 {
        let (wamid, body) = text_webhook(&format!("55219{n:08}"), &"x".repeat(900));
        match store.accept_webhook(&body).await {
            Ok(()) => accepted.push(wamid),
            Err(StoreError::Unavailable(reason)) => {
                assert!(reason.contains("journal"), "{reason}");
                refused += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert!(
        (40..=100).contains(&accepted.len()),
        "about 64 KiB acknowledged: {}",
        accepted.len()
    );
    assert_eq!(accepted.len() + refused, 400);
    blocker.execute_batch("ROLLBACK").unwrap();
    assert!(store.flush_webhooks(FLUSH).await);
    assert_eq!(inbound_rows(store.path()), accepted.len() as i64);
    for wamid in &accepted {
        assert!(store.message(wamid).await.unwrap().is_some());
    }
    // Once stored, the journal takes webhooks again.
    let (wamid, body) = text_webhook(MARIA, "de volta");
    store.accept_webhook(&body).await.unwrap();
    assert!(store.message(&wamid).await.unwrap().is_some());
}

#[tokio::test]
async fn without_journaling_webhooks_are_stored_before_the_call_returns_and_old_segments_still_are()
{
    let dir = tempfile::tempdir().unwrap();
    let (left, left_body) = text_webhook(MARIA, "journaled by an earlier run");
    write_segment(dir.path(), 1, &[&left_body], false);
    let store = open(
        &dir,
        SqliteOptions {
            webhook_journal: false,
            ..SqliteOptions::default()
        },
    );
    let (wamid, body) = text_webhook(JOAO, "stored at once");
    store.accept_webhook(&body).await.unwrap();
    let db = Connection::open(store.path()).unwrap();
    let rows: i64 = db
        .query_row(
            "SELECT count(*) FROM messages WHERE wa_message_id = ?1",
            [&wamid],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(rows, 1, "in the database before accept_webhook returned");
    assert!(store.flush_webhooks(FLUSH).await);
    assert!(store.message(&left).await.unwrap().is_some());
}
