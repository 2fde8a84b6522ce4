//! Property tests of the SQLite store on real files: whatever order statuses
//! arrive in and however often webhooks are redelivered, the stored state is
//! the same — statuses never go back, `failed` is terminal, each wamid is
//! stored once and each new item publishes its event once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rusqlite::Connection;
use serde_json::{json, Value};
use zapfn_store::sqlite::{SqliteOptions, SqliteStore};
use zapfn_store::{callback_data_for, topics, NewOutbound, Store};
use zapfn_whatsapp::builders;
use zapfn_whatsapp::status::{rank, FAILED_RANK};
use zapfn_whatsapp::webhook::{self, StatusUpdate};

const PNID: &str = "106540352242922";
const CUSTOMER: &str = "5511999990000";
/// Statuses Meta sends, plus one zapfn does not know (kept, never applied).
const STATUSES: [&str; 6] = ["sent", "delivered", "read", "played", "failed", "deleted"];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("z.db"), SqliteOptions::default()).unwrap();
    (dir, store)
}

/// A status webhook item parsed the way the webhook function parses it.
fn status_update(
    wamid: &str,
    status: &str,
    timestamp: i64,
    callback: Option<&str>,
) -> StatusUpdate {
    let mut object = builders::status(wamid, CUSTOMER, status, timestamp, None);
    if let Some(data) = callback {
        object["biz_opaque_callback_data"] = json!(data);
    }
    let body = builders::statuses_notification(PNID, vec![object]).to_string();
    webhook::parse(body.as_bytes()).unwrap().statuses.remove(0)
}

fn text_send(body: &str) -> NewOutbound {
    NewOutbound {
        phone_number_id: PNID.into(),
        to: Some(CUSTOMER.into()),
        message_type: "text".into(),
        preview: Some(body.into()),
        context_message_id: None,
        body: json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": body}}),
        idempotency_key: None,
    }
}

/// The status a message must end in: `failed` if any status said so, else the
/// highest known one, never below `accepted` (the send recorded its wamid).
fn expected_final(statuses: &[&str]) -> &'static str {
    if statuses.contains(&"failed") {
        return "failed";
    }
    ["played", "read", "delivered", "sent"]
        .into_iter()
        .find(|s| statuses.contains(s))
        .unwrap_or("accepted")
}

fn status_rank(status: &str) -> i64 {
    rank(status).unwrap_or(-1)
}

/// One arrival order: the statuses (with repeats) in the order they come, the
/// point among them at which the dispatcher records the wamid, and whether
/// they carry zapfn's callback data (which links them before that point).
fn arrival() -> impl Strategy<Value = (Vec<&'static str>, usize, bool)> {
    prop::collection::vec(prop::sample::select(&STATUSES[..]), 1..12).prop_flat_map(|statuses| {
        let len = statuses.len();
        (Just(statuses).prop_shuffle(), 0..=len, any::<bool>())
    })
}

#[test]
fn final_status_depends_only_on_which_statuses_arrived_never_on_their_order() {
    let rt = runtime();
    let (_dir, store) = open_store();
    let mut runner = TestRunner::new(Config::with_cases(500));
    let cases = AtomicU64::new(0);
    runner
        .run(&arrival(), |(statuses, record_at, with_callback)| {
            let case = cases.fetch_add(1, Ordering::Relaxed);
            rt.block_on(async {
                let id = store
                    .enqueue_send(text_send(&format!("case {case}")))
                    .await
                    .unwrap()
                    .id;
                let wamid = format!("wamid.PROP{case:06}");
                let callback = with_callback.then(|| callback_data_for(&id));
                let mut seen_rank = status_rank("queued");
                for (n, status) in statuses.iter().enumerate() {
                    if n == record_at {
                        store.record_sent(&id, Some(&wamid)).await.unwrap();
                    }
                    let update = status_update(
                        &wamid,
                        status,
                        1_767_225_600 + n as i64,
                        callback.as_deref(),
                    );
                    store.apply_status(&update).await.unwrap();
                    let now = store.message(&id).await.unwrap().unwrap().status;
                    let now_rank = status_rank(&now);
                    prop_assert!(
                        now_rank >= seen_rank,
                        "{statuses:?}: went from rank {seen_rank} to {now} after {status}"
                    );
                    if seen_rank == FAILED_RANK {
                        prop_assert_eq!(&now, "failed", "failed is terminal: {:?}", statuses);
                    }
                    seen_rank = now_rank;
                }
                if record_at == statuses.len() {
                    store.record_sent(&id, Some(&wamid)).await.unwrap();
                }
                let view = store.message(&id).await.unwrap().unwrap();
                prop_assert_eq!(
                    view.status.as_str(),
                    expected_final(&statuses),
                    "{:?}",
                    statuses
                );
                prop_assert_eq!(view.wamid.as_deref(), Some(wamid.as_str()));
                let by_wamid = store.message(&wamid).await.unwrap().unwrap();
                prop_assert_eq!(&by_wamid.id, &id, "placeholder merged into the send");
                let history: Vec<&str> = view
                    .status_history
                    .iter()
                    .map(|e| e.status.as_str())
                    .collect();
                let distinct: BTreeSet<&str> = history.iter().copied().collect();
                prop_assert_eq!(
                    distinct.len(),
                    history.len(),
                    "each status once: {:?}",
                    history
                );
                for status in &statuses {
                    prop_assert!(distinct.contains(status), "{status} kept in {history:?}");
                }
                Ok::<(), TestCaseError>(())
            })
        })
        .unwrap();
}

/// One webhook delivery: indexes into the pool of items (repeats allowed, also
/// within one delivery, as Meta batches may repeat an item).
type Delivery = Vec<usize>;

/// A pool item: an inbound message (wamid) or a status (wamid, status).
#[derive(Debug, Clone)]
enum Item {
    Message(String),
    Status(String, &'static str),
}

fn pool() -> Vec<Item> {
    let mut items: Vec<Item> = (0..8)
        .map(|n| Item::Message(format!("wamid.IN{n:04}")))
        .collect();
    for n in 0..3 {
        for status in ["sent", "delivered", "read", "failed"] {
            items.push(Item::Status(format!("wamid.OUT{n:04}"), status));
        }
    }
    items
}

fn body_of(delivery: &Delivery, pool: &[Item]) -> String {
    let mut messages = Vec::new();
    let mut statuses = Vec::new();
    for index in delivery {
        match &pool[*index] {
            Item::Message(wamid) => messages.push(builders::text_message(
                CUSTOMER,
                wamid,
                1_767_225_600,
                wamid,
            )),
            Item::Status(wamid, status) => statuses.push(builders::status(
                wamid,
                CUSTOMER,
                status,
                1_767_225_600,
                None,
            )),
        }
    }
    let mut body = builders::messages_notification(PNID, CUSTOMER, "Maria", messages);
    if !statuses.is_empty() {
        body["entry"][0]["changes"][0]["value"]["statuses"] = Value::Array(statuses);
    }
    body.to_string()
}

/// Rows of one column grouped by value: value → count.
fn tally(db: &Connection, sql: &str) -> BTreeMap<String, i64> {
    let mut statement = db.prepare(sql).unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn deliveries() -> impl Strategy<Value = Vec<Delivery>> {
    let items = pool().len();
    prop::collection::vec(prop::collection::vec(0..items, 1..6), 1..14)
        .prop_flat_map(|first| {
            // Redeliveries: whole earlier deliveries again, in any order among the rest.
            let len = first.len();
            (Just(first), prop::collection::vec(0..len, 1..8))
        })
        .prop_map(|(first, again)| {
            let mut all = first.clone();
            all.extend(again.into_iter().map(|n| first[n].clone()));
            all
        })
        .prop_shuffle()
}

#[test]
fn redelivered_webhooks_store_each_wamid_once_and_publish_each_event_once() {
    let rt = runtime();
    let pool = pool();
    let mut runner = TestRunner::new(Config::with_cases(128));
    runner
        .run(&deliveries(), |deliveries| {
            let (dir, store) = open_store();
            rt.block_on(async {
                // Concurrently, as Meta retries while the first attempt is still in flight.
                let ingests = deliveries.iter().map(|delivery| {
                    let store = store.clone();
                    let body = body_of(delivery, &pool);
                    async move { store.ingest(webhook::parse(body.as_bytes()).unwrap()).await }
                });
                let reports = futures_join_all(ingests).await;
                let mut new_messages = 0;
                for (report, delivery) in reports.iter().zip(&deliveries) {
                    let report = report.as_ref().unwrap();
                    let messages = delivery
                        .iter()
                        .filter(|n| matches!(pool[**n], Item::Message(_)))
                        .count();
                    prop_assert_eq!(report.new_messages + report.duplicate_messages, messages);
                    new_messages += report.new_messages;
                }
                let wamids: BTreeSet<&str> = deliveries
                    .iter()
                    .flatten()
                    .filter_map(|n| match &pool[*n] {
                        Item::Message(wamid) => Some(wamid.as_str()),
                        Item::Status(..) => None,
                    })
                    .collect();
                let pairs: BTreeSet<(&str, &str)> = deliveries
                    .iter()
                    .flatten()
                    .filter_map(|n| match &pool[*n] {
                        Item::Status(wamid, status) => Some((wamid.as_str(), *status)),
                        Item::Message(_) => None,
                    })
                    .collect();
                prop_assert_eq!(new_messages, wamids.len());

                let db = Connection::open(dir.path().join("z.db")).unwrap();
                let stored = tally(
                    &db,
                    "SELECT wa_message_id, count(*) FROM messages WHERE direction = 'inbound' GROUP BY 1",
                );
                prop_assert_eq!(stored.keys().map(String::as_str).collect::<BTreeSet<_>>(), wamids.clone());
                prop_assert!(stored.values().all(|n| *n == 1), "{:?}", stored);
                let published = tally(
                    &db,
                    &format!(
                        "SELECT json_extract(payload, '$.wamid'), count(*) FROM outbox WHERE topic = '{}' GROUP BY 1",
                        topics::MESSAGES
                    ),
                );
                prop_assert_eq!(published.keys().map(String::as_str).collect::<BTreeSet<_>>(), wamids);
                prop_assert!(published.values().all(|n| *n == 1), "{:?}", published);
                let status_events = tally(
                    &db,
                    &format!(
                        "SELECT json_extract(payload, '$.wamid') || ' ' || json_extract(payload, '$.status'), count(*)
                         FROM outbox WHERE topic = '{}' GROUP BY 1",
                        topics::STATUSES
                    ),
                );
                let expected: BTreeSet<String> =
                    pairs.iter().map(|(w, s)| format!("{w} {s}")).collect();
                prop_assert_eq!(status_events.keys().cloned().collect::<BTreeSet<_>>(), expected);
                prop_assert!(status_events.values().all(|n| *n == 1), "{:?}", status_events);
                Ok::<(), TestCaseError>(())
            })
        })
        .unwrap();
}

/// Runs every future concurrently on the runtime; results in input order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}
