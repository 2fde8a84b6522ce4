//! What only the PostgreSQL store has: its rows (raw JSON kept byte for byte),
//! identifiers Postgres text cannot hold, migrations, and connection errors.
//! Needs `ZAPFN_TEST_DATABASE_URL` (`scripts/postgres.sh start`) except where noted.

mod common;

use std::time::Duration;

use serde_json::json;
use zapfn_store::{topics, AuditEntry, Store, StoreError};
use zapfn_store_conformance::fixtures::*;
use zapfn_store_postgres::{PostgresOptions, PostgresStore};
use zapfn_whatsapp::builders;

#[tokio::test]
async fn raw_json_is_kept_byte_for_byte() {
    let Some(url) = common::database_url() else {
        return;
    };
    let schema = common::new_schema();
    let store = common::connect(&url, &schema, PostgresOptions::default()).await;
    store.ingest(parse(UNKNOWN_TYPE)).await.unwrap();
    store.ingest(parse(UNICODE)).await.unwrap();
    store.ingest(parse(STATUS_SENT)).await.unwrap();

    let db = common::raw_client(&url, &schema).await;
    let raw = |wamid: &'static str| {
        let db = &db;
        async move {
            let row = db
                .query_one(
                    "SELECT raw FROM messages WHERE wa_message_id = $1",
                    &[&wamid],
                )
                .await
                .unwrap();
            row.get::<_, String>(0)
        }
    };
    assert_eq!(
        raw("wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggHOLOGRAM0001").await,
        first_message_object(UNKNOWN_TYPE)
    );
    assert_eq!(
        raw("wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggUNICODE0001").await,
        first_message_object(UNICODE)
    );
    // Text with a NUL is kept as UTF-8 bytes.
    let text: Vec<u8> = db
        .query_one(
            "SELECT text FROM messages WHERE wa_message_id LIKE '%UNICODE0001'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(String::from_utf8(text).unwrap().ends_with("NUL:\u{0}:fim"));
    let status_raw: String = db
        .query_one(
            "SELECT raw FROM status_events WHERE subject = 'wamid.OUTBOUND0001'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(parse(STATUS_SENT).statuses[0].raw, status_raw);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test]
async fn identifiers_with_nul_are_stored_and_still_deduplicated() {
    let Some(url) = common::database_url() else {
        return;
    };
    let schema = common::new_schema();
    let store = common::connect(&url, &schema, PostgresOptions::default()).await;
    let (wamid, from) = ("wamid.N\u{0}UL", "5511\u{0}999");
    let mut message = builders::text_message(from, wamid, 10, "hi");
    message["type"] = json!("te\u{0}xt");
    let body = builders::messages_notification(PNID, from, "N\u{0}UL", vec![message]);

    let first = store.ingest(parse_json(&body)).await.unwrap();
    let again = store.ingest(parse_json(&body)).await.unwrap();
    assert_eq!((first.new_messages, again.duplicate_messages), (1, 1));
    let view = store
        .message(wamid)
        .await
        .unwrap()
        .expect("found by its wamid");
    assert_eq!(view.wamid.as_deref(), Some("wamid.N\u{FFFD}UL"));
    assert_eq!(view.text.as_deref(), Some("hi"));
    let event = claim_one(&store, topics::MESSAGES).await;
    assert_eq!(event.payload["wamid"], "wamid.N\u{FFFD}UL");

    store
        .apply_status(&status(wamid, MARIA, "sent", 20, None))
        .await
        .unwrap();
    let view = store.message(wamid).await.unwrap().unwrap();
    assert_eq!(history(&view), ["sent"]);
    store
        .apply_status(&status("wamid.OTHER\u{0}", MARIA, "sent", 20, None))
        .await
        .unwrap();
    assert!(store.message("wamid.OTHER\u{0}").await.unwrap().is_some());
    common::drop_schema(&url, &schema).await;
}

#[tokio::test]
async fn migrations_run_once_when_stores_start_together() {
    let Some(url) = common::database_url() else {
        return;
    };
    let schema = common::new_schema();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move {
                let options = PostgresOptions {
                    schema: Some(schema),
                    ..PostgresOptions::default()
                };
                PostgresStore::connect(&url, options).await
            })
        })
        .collect();
    for start in starts {
        start.await.unwrap().expect("every instance starts");
    }
    let store = common::connect(&url, &schema, PostgresOptions::default()).await;
    store.record_audit(&audit_entry()).await.unwrap();
    assert_eq!(store.audit_log(5).await.unwrap(), [audit_entry()]);

    let db = common::raw_client(&url, &schema).await;
    let versions: Vec<i32> = db
        .query(
            "SELECT version FROM refinery_schema_history ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert_eq!(versions.len(), files, "{versions:?}");
    assert_eq!(versions[0], 1);
    common::drop_schema(&url, &schema).await;
}

#[tokio::test]
async fn publishing_writes_wake_waiting_consumers() {
    let Some(url) = common::database_url() else {
        return;
    };
    let schema = common::new_schema();
    let store = common::connect(&url, &schema, PostgresOptions::default()).await;
    let published = store.published();
    let wait = Duration::from_secs(5);

    let woken = published.notified();
    store
        .ingest(texts(PNID, MARIA, &[("wamid.WAKE", 1)]))
        .await
        .unwrap();
    tokio::time::timeout(wait, woken)
        .await
        .expect("ingest wakes");
    let woken = published.notified();
    store
        .enqueue_send(send_to(Some(MARIA), None, "hi"))
        .await
        .unwrap();
    tokio::time::timeout(wait, woken)
        .await
        .expect("a send wakes");

    // A claim publishes nothing, so it wakes no one.
    let woken = published.notified();
    claim_one(&store, topics::MESSAGES).await;
    let quiet = tokio::time::timeout(Duration::from_millis(200), woken).await;
    assert!(quiet.is_err(), "a claim woke the consumers");
    common::drop_schema(&url, &schema).await;
}

fn audit_entry() -> AuditEntry {
    AuditEntry {
        at_ms: 1,
        key_name: "ci".into(),
        method: "POST".into(),
        route: "/v1/keys".into(),
        target: None,
        status: 201,
        request_id: "r".into(),
    }
}

/// Needs no server: nothing listens on port 1.
#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let result = PostgresStore::connect(
        "postgres://zapfn@127.0.0.1:1/zapfn",
        PostgresOptions::default(),
    )
    .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{:?}",
        result.err()
    );
}

/// Needs no server: names are checked before connecting.
#[tokio::test]
async fn a_schema_name_that_is_not_an_identifier_is_invalid() {
    for schema in ["", "a b", "x;DROP TABLE messages", "zapfn-test"] {
        let options = PostgresOptions {
            schema: Some(schema.into()),
            ..PostgresOptions::default()
        };
        let result = PostgresStore::connect("postgres://zapfn@127.0.0.1:1/zapfn", options).await;
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{schema:?}: {:?}",
            result.err()
        );
    }
    let result = PostgresStore::connect("not a url", PostgresOptions::default()).await;
    assert!(matches!(result, Err(StoreError::Invalid(_))));
}
