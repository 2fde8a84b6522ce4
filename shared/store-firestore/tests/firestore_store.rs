//! The Firestore store on the real Firestore emulator, beyond the shared
//! conformance suite: where documents land (read back with a plain Firestore
//! client), prefixes that share nothing, and writers in separate "processes"
//! (separate connections, so no shared local locks) that only Firestore's
//! transactions keep apart.
//!
//! Needs `FIRESTORE_EMULATOR_HOST`; without it every test prints a loud
//! SKIPPED line and passes, unless `ZAPFN_REQUIRE_EMULATORS` is set (CI),
//! where a missing emulator fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firestore::gcloud_sdk::google::firestore::v1::Document;
use firestore::FirestoreDb;
use serde_json::{json, Value};
use zapfn_store::{
    topics, ConversationQuery, Delivery, NewOutbound, PageRequest, Settlement, Store, StoreError,
};
use zapfn_store_firestore::{FirestoreConfig, FirestoreStore};
use zapfn_whatsapp::builders;
use zapfn_whatsapp::webhook::{self, Notification, StatusUpdate};

const PNID: &str = "106540352242922";
const MARIA: &str = "5511999990000";
const JOAO: &str = "5521988887777";
const LEASE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- helpers

mod common;

/// A fresh project on the emulator (an empty database), or None after a loud skip.
fn project() -> Option<String> {
    common::emulator()?;
    Some(format!("zapfn-test-{}", uuid::Uuid::new_v4().simple()))
}

/// A store on `project` with this prefix: each call is a new connection with
/// its own local locks, as another process would have.
async fn connect(project: &str, prefix: &str) -> FirestoreStore {
    FirestoreStore::connect(FirestoreConfig {
        prefix: prefix.into(),
        ..FirestoreConfig::new(project)
    })
    .await
    .expect("connect to the Firestore emulator")
}

/// A plain client of the same database, to read the documents themselves.
async fn raw(project: &str) -> FirestoreDb {
    FirestoreDb::new(project).await.unwrap()
}

/// The documents of a collection under `zapfn/v1/{path}` (path: "" or "phone_numbers/{pnid}").
async fn documents(db: &FirestoreDb, path: &str, collection: &str) -> Vec<Document> {
    let parent = match path {
        "" => format!("{}/zapfn/v1", db.get_documents_path()),
        path => format!("{}/zapfn/v1/{path}", db.get_documents_path()),
    };
    db.fluent()
        .select()
        .from(collection)
        .parent(parent)
        .query()
        .await
        .unwrap()
}

fn id_of(document: &Document) -> &str {
    document.name.rsplit('/').next().unwrap()
}

fn string_field(document: &Document, field: &str) -> String {
    match &document.fields[field].value_type {
        Some(firestore::gcloud_sdk::google::firestore::v1::value::ValueType::StringValue(s)) => {
            s.clone()
        }
        other => panic!("{field}: {other:?}"),
    }
}

fn parse_json(body: &Value) -> Notification {
    webhook::parse(body.to_string().as_bytes()).unwrap()
}

/// Text messages `(wamid, timestamp)` from one customer of `PNID`.
fn texts(from: &str, messages: &[(&str, i64)]) -> Notification {
    texts_to(PNID, from, messages)
}

fn texts_to(pnid: &str, from: &str, messages: &[(&str, i64)]) -> Notification {
    let messages = messages
        .iter()
        .map(|(wamid, at)| builders::text_message(from, wamid, *at, &format!("text {wamid}")))
        .collect();
    parse_json(&builders::messages_notification(
        pnid, from, "Customer", messages,
    ))
}

fn status(wamid: &str, state: &str, timestamp: i64) -> StatusUpdate {
    let body = builders::statuses_notification(
        PNID,
        vec![builders::status(wamid, MARIA, state, timestamp, None)],
    );
    parse_json(&body).statuses.remove(0)
}

fn send_to(to: &str, idempotency_key: Option<&str>) -> NewOutbound {
    NewOutbound {
        phone_number_id: PNID.into(),
        to: Some(to.into()),
        message_type: "text".into(),
        preview: Some("hi".into()),
        context_message_id: None,
        body: json!({ "messaging_product": "whatsapp", "to": to, "type": "text", "text": { "body": "hi" } }),
        idempotency_key: idempotency_key.map(str::to_owned),
    }
}

fn message_id(delivery: &Delivery) -> String {
    delivery.payload["message_id"].as_str().unwrap().to_owned()
}

/// Claims and acks `topic` until nothing is due.
async fn drain(store: &FirestoreStore, topic: &str) -> Vec<Delivery> {
    let mut all = Vec::new();
    loop {
        let batch = store.claim(topic, 50, LEASE).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        for delivery in &batch {
            store.settle(delivery, Settlement::Ack).await.unwrap();
        }
        all.extend(batch);
    }
}

// ---------------------------------------------------------------- layout

#[tokio::test]
async fn documents_live_where_the_crate_docs_say() {
    let Some(project) = project() else { return };
    let store = connect(&project, "zapfn").await;
    let db = raw(&project).await;
    store
        .ingest(texts(MARIA, &[("wamid.IN/1+=", 10)]))
        .await
        .unwrap();
    let sent = store
        .enqueue_send(send_to(MARIA, Some("key-1")))
        .await
        .unwrap();
    store
        .apply_status(&status("wamid.UNKNOWN", "delivered", 20))
        .await
        .unwrap();

    let partition = format!("phone_numbers/{PNID}");
    let messages = documents(&db, &partition, "messages").await;
    assert_eq!(messages.len(), 3, "inbound, queued send, placeholder");
    let ids: BTreeSet<&str> = messages.iter().map(id_of).collect();
    assert!(ids.contains(sent.id.as_str()));
    for id in &ids {
        let random = id
            .strip_prefix("msg_")
            .and_then(|rest| rest.strip_suffix(&format!("_{PNID}")))
            .unwrap_or_else(|| panic!("{id}"));
        assert_eq!(random.len(), 32, "a random id part: {id}");
    }
    assert_eq!(
        ids.iter()
            .map(|id| &id[4..12])
            .collect::<BTreeSet<_>>()
            .len(),
        3,
        "ids do not share a prefix (no hot spot)"
    );

    // One conversation for the customer, shared by her message, the send and the status.
    let conversations = documents(&db, &partition, "conversations").await;
    assert_eq!(conversations.len(), 1);
    let conversation = id_of(&conversations[0]);
    assert!(conversation.starts_with("conv_") && conversation.ends_with(PNID));
    assert!(messages
        .iter()
        .all(|m| string_field(m, "conversation_id") == conversation));

    // Look-ups are named by hashes, never by the wamid or key (which may hold `/`).
    let wamids = documents(&db, "", "wamids").await;
    let looked_up: BTreeMap<String, String> = wamids
        .iter()
        .map(|doc| {
            assert_eq!(id_of(doc).len(), 32);
            (string_field(doc, "key"), string_field(doc, "message_id"))
        })
        .collect();
    assert_eq!(
        looked_up.keys().cloned().collect::<Vec<_>>(),
        ["wamid.IN/1+=", "wamid.UNKNOWN"]
    );
    assert!(looked_up.values().all(|id| ids.contains(id.as_str())));
    let keys = documents(&db, "", "idempotency_keys").await;
    assert_eq!(keys.len(), 1);
    assert_eq!(string_field(&keys[0], "message_id"), sent.id);

    // Every status event once: the send's `queued` and Meta's `delivered`.
    let statuses = documents(&db, &partition, "status_events").await;
    let mut subjects: Vec<_> = statuses
        .iter()
        .map(|doc| (string_field(doc, "subject"), string_field(doc, "status")))
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            (sent.id.clone(), "queued".to_owned()),
            ("wamid.UNKNOWN".to_owned(), "delivered".to_owned())
        ]
    );

    // The outbox: the inbound event and the dispatch task, each with its key's state.
    let outbox = documents(&db, "", "outbox").await;
    let mut events: Vec<_> = outbox
        .iter()
        .map(|doc| string_field(doc, "topic"))
        .collect();
    events.sort();
    assert_eq!(events, [topics::DISPATCH, topics::MESSAGES]);
    assert_eq!(documents(&db, "", "outbox_keys").await.len(), 2);
    let registered: BTreeSet<_> = documents(&db, "", "topics")
        .await
        .iter()
        .map(|doc| string_field(doc, "topic"))
        .collect();
    assert_eq!(
        registered,
        BTreeSet::from([topics::DISPATCH.to_owned(), topics::MESSAGES.to_owned()])
    );
}

#[tokio::test]
async fn a_merged_placeholder_leaves_no_document_behind() {
    let Some(project) = project() else { return };
    let store = connect(&project, "zapfn").await;
    let db = raw(&project).await;
    let wamid = builders::new_wamid();
    store
        .apply_status(&status(&wamid, "sent", 10))
        .await
        .unwrap();
    let sent = store.enqueue_send(send_to(MARIA, None)).await.unwrap();
    store.record_sent(&sent.id, Some(&wamid)).await.unwrap();

    let messages = documents(&db, &format!("phone_numbers/{PNID}"), "messages").await;
    assert_eq!(
        messages.iter().map(id_of).collect::<Vec<_>>(),
        [sent.id.as_str()]
    );
    let wamids = documents(&db, "", "wamids").await;
    assert_eq!(wamids.len(), 1);
    assert_eq!(string_field(&wamids[0], "message_id"), sent.id);
    let view = store.message(&wamid).await.unwrap().unwrap();
    assert_eq!(
        (view.id.as_str(), view.status.as_str()),
        (sent.id.as_str(), "sent")
    );
}

#[tokio::test]
async fn a_drained_ordering_key_is_deleted_and_old_deliveries_cannot_touch_its_next_events() {
    let Some(project) = project() else { return };
    let store = connect(&project, "zapfn").await;
    let db = raw(&project).await;
    store
        .ingest(texts(MARIA, &[("wamid.K1", 10)]))
        .await
        .unwrap();
    let first = store
        .claim(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .remove(0);
    store.settle(&first, Settlement::Ack).await.unwrap();
    assert!(documents(&db, "", "outbox").await.is_empty());
    assert!(
        documents(&db, "", "outbox_keys").await.is_empty(),
        "no state is kept for a key without events"
    );

    // The key comes back in a new generation: its first event has another id.
    store
        .ingest(texts(MARIA, &[("wamid.K2", 11)]))
        .await
        .unwrap();
    let second = store
        .claim(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_ne!(second.id, first.id);
    let stale = Settlement::Retry {
        after: Duration::ZERO,
        error: "stale".into(),
    };
    store.settle(&first, stale).await.unwrap();
    assert!(
        store
            .claim(topics::MESSAGES, 10, LEASE)
            .await
            .unwrap()
            .is_empty(),
        "the stale delivery released nothing"
    );
    store.settle(&second, Settlement::Ack).await.unwrap();
    assert!(store.queue_depths().await.unwrap().pending.is_empty());
}

#[tokio::test]
async fn a_delivery_id_this_store_never_gave_out_is_invalid() {
    let Some(project) = project() else { return };
    let store = connect(&project, "zapfn").await;
    let delivery = Delivery {
        id: "42".into(),
        topic: topics::MESSAGES.into(),
        ordering_key: None,
        payload: json!({}),
        attempt: 1,
        first_attempt_at_ms: 0,
        lease_until_ms: 0,
    };
    let settled = store.settle(&delivery, Settlement::Ack).await;
    assert!(
        matches!(settled, Err(StoreError::Invalid(_))),
        "{settled:?}"
    );
}

// ---------------------------------------------------------------- isolation

#[tokio::test]
async fn stores_with_different_prefixes_share_nothing() {
    let Some(project) = project() else { return };
    let (alpha, beta) = (
        connect(&project, "alpha").await,
        connect(&project, "beta").await,
    );
    alpha
        .ingest(texts(MARIA, &[("wamid.A1", 10)]))
        .await
        .unwrap();
    alpha
        .put_api_key(&zapfn_store::ApiKey {
            name: "ci".into(),
            key_hash: "hash".into(),
            scopes: vec![zapfn_store::Scope::Admin],
            phone_number_ids: vec![zapfn_store::ALL_NUMBERS.into()],
            rate_per_second: None,
            created_at: 1,
            revoked_at: None,
        })
        .await
        .unwrap();

    assert!(beta.message("wamid.A1").await.unwrap().is_none());
    let everything = ConversationQuery::default();
    assert!(beta
        .conversations(everything.clone())
        .await
        .unwrap()
        .items
        .is_empty());
    let by_customer = ConversationQuery {
        wa_id: Some(MARIA.into()),
        ..Default::default()
    };
    assert!(beta
        .conversations(by_customer.clone())
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(beta.queue_depths().await.unwrap(), Default::default());
    assert!(beta
        .claim(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(beta.api_key("hash").await.unwrap(), None);
    assert!(beta.api_keys().await.unwrap().is_empty());
    assert_eq!(beta.revoke_api_key("ci").await.unwrap(), 0);
    assert_eq!(beta.last_inbound_at(PNID, MARIA).await.unwrap(), None);

    assert_eq!(
        alpha.conversations(everything).await.unwrap().items.len(),
        1
    );
    assert_eq!(
        alpha.conversations(by_customer).await.unwrap().items.len(),
        1
    );
    assert_eq!(drain(&alpha, topics::MESSAGES).await.len(), 1);
    assert!(alpha.api_key("hash").await.unwrap().is_some());
}

#[tokio::test]
async fn conversations_of_every_number_page_in_order() {
    let Some(project) = project() else { return };
    let store = connect(&project, "zapfn").await;
    // 3 numbers × 4 customers, each last written at a different minute.
    let mut expected = Vec::new();
    for (n, pnid) in ["111", "222", "333"].into_iter().enumerate() {
        for customer in 0..4 {
            let from = format!("55119{customer:08}");
            let at = 1_000 + 120 * (n as i64 * 4 + customer);
            let wamid = format!("wamid.{pnid}.{customer}");
            store
                .ingest(texts_to(pnid, &from, &[(wamid.as_str(), at)]))
                .await
                .unwrap();
            expected.push((at, pnid.to_owned(), from));
        }
    }
    expected.sort();
    expected.reverse();

    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let page = store
            .conversations(ConversationQuery {
                page: PageRequest { cursor, limit: 5 },
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(
            page.items
                .into_iter()
                .map(|c| (c.last_message_at, c.phone_number_id, c.wa_id)),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected, "every conversation once, most recent first");

    let one_number = store
        .conversations(ConversationQuery {
            phone_number_id: Some("222".into()),
            page: PageRequest {
                cursor: None,
                limit: 3,
            },
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one_number.items.len(), 3);
    assert!(one_number.next_cursor.is_some());
    assert!(one_number.items.iter().all(|c| c.phone_number_id == "222"));
}

// ---------------------------------------------------------------- separate processes

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_from_separate_processes_are_stored_once() {
    let Some(project) = project() else { return };
    let stores = futures::future::join_all((0..4).map(|_| connect(&project, "zapfn"))).await;
    let db = raw(&project).await;
    let wamid = builders::new_wamid();
    let tasks: Vec<_> = stores
        .iter()
        .map(|store| {
            let (store, notification) = (store.clone(), texts(MARIA, &[(wamid.as_str(), 10)]));
            tokio::spawn(async move { store.ingest(notification).await.unwrap() })
        })
        .collect();
    let (mut new, mut duplicate) = (0, 0);
    for task in tasks {
        let report = task.await.unwrap();
        new += report.new_messages;
        duplicate += report.duplicate_messages;
    }
    assert_eq!((new, duplicate), (1, 3));
    assert_eq!(
        documents(&db, &format!("phone_numbers/{PNID}"), "messages")
            .await
            .len(),
        1
    );
    assert_eq!(
        documents(&db, &format!("phone_numbers/{PNID}"), "conversations")
            .await
            .len(),
        1
    );
    let events = drain(&stores[0], topics::MESSAGES).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        message_id(&events[0]),
        stores[1].message(&wamid).await.unwrap().unwrap().id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_idempotency_key_from_separate_processes_makes_one_message() {
    let Some(project) = project() else { return };
    let stores = futures::future::join_all((0..3).map(|_| connect(&project, "zapfn"))).await;
    let tasks: Vec<_> = stores
        .iter()
        .map(|store| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enqueue_send(send_to(MARIA, Some("once")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    assert_eq!(
        answers.iter().filter(|a| a.created).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().map(|a| &a.id).collect::<BTreeSet<_>>().len(),
        1
    );
    assert_eq!(drain(&stores[0], topics::DISPATCH).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claimers_in_separate_processes_never_share_a_lease() {
    let Some(project) = project() else { return };
    let stores = futures::future::join_all((0..3).map(|_| connect(&project, "zapfn"))).await;
    // 6 customers with 2 messages each: 12 events, 6 ordering keys.
    for customer in 0..6 {
        let from = format!("55119{customer:08}");
        let wamids: Vec<_> = (0..2).map(|i| format!("wamid.P{customer}_{i}")).collect();
        let batch: Vec<_> = wamids.iter().map(|w| (w.as_str(), 10)).collect();
        stores[0].ingest(texts(&from, &batch)).await.unwrap();
    }
    let held = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let delivered = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let consumers: Vec<_> = stores
        .iter()
        .map(|store| {
            let (store, held, delivered) = (store.clone(), held.clone(), delivered.clone());
            tokio::spawn(async move {
                let mut idle = 0;
                while idle < 3 {
                    let batch = store.claim(topics::MESSAGES, 2, LEASE).await.unwrap();
                    if batch.is_empty() {
                        idle += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    idle = 0;
                    for delivery in &batch {
                        let key = delivery.ordering_key.clone().unwrap();
                        assert!(
                            held.lock().unwrap().insert(key.clone()),
                            "{key} leased twice"
                        );
                        let wamid = delivery.payload["wamid"].as_str().unwrap().to_owned();
                        delivered.lock().unwrap().push((delivery.id.clone(), wamid));
                    }
                    for delivery in batch {
                        held.lock()
                            .unwrap()
                            .remove(delivery.ordering_key.as_ref().unwrap());
                        store.settle(&delivery, Settlement::Ack).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for consumer in consumers {
        consumer.await.unwrap();
    }
    let delivered = delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 12, "every event once: {delivered:?}");
    assert_eq!(
        delivered
            .iter()
            .map(|(id, _)| id)
            .collect::<BTreeSet<_>>()
            .len(),
        12
    );
    for customer in 0..6 {
        let prefix = format!("wamid.P{customer}_");
        let order: Vec<_> = delivered
            .iter()
            .filter_map(|(_, wamid)| wamid.strip_prefix(&prefix))
            .collect();
        assert_eq!(order, ["0", "1"], "customer {customer} in order");
    }
    assert!(stores[2].queue_depths().await.unwrap().pending.is_empty());
}

/// The wamids of claimed `messages` events.
fn wamids(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| d.payload["wamid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_of_separate_processes_each_forward_only_their_own_events() {
    let Some(project) = project() else { return };
    let (a, b) = (
        connect(&project, "zapfn").await,
        connect(&project, "zapfn").await,
    );
    a.ingest(texts(MARIA, &[("wamid.A1", 10)])).await.unwrap();
    b.ingest(texts(JOAO, &[("wamid.B1", 10)])).await.unwrap();
    // Maria writes again through B while A's event still holds her key.
    b.ingest(texts(MARIA, &[("wamid.B2", 11)])).await.unwrap();

    let of_a = a.claim_own(topics::MESSAGES, 10, LEASE).await.unwrap();
    let of_b = b.claim_own(topics::MESSAGES, 10, LEASE).await.unwrap();
    assert_eq!(wamids(&of_a), ["wamid.A1"]);
    assert_eq!(wamids(&of_b), ["wamid.B1"], "B2 waits behind A1");
    // Whoever acks a key's event forwards the next one.
    a.settle(&of_a[0], Settlement::Ack).await.unwrap();
    assert!(b
        .claim_own(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    let next = a.claim_own(topics::MESSAGES, 10, LEASE).await.unwrap();
    assert_eq!(wamids(&next), ["wamid.B2"]);
    for delivery in of_b.iter().chain(&next) {
        let store = if delivery.id == next[0].id { &a } else { &b };
        store.settle(delivery, Settlement::Ack).await.unwrap();
    }
    assert!(a
        .claim_own(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    assert!(b.queue_depths().await.unwrap().pending.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sweep_takes_only_events_nobody_forwarded_for_the_idle_time() {
    let Some(project) = project() else { return };
    let idle = Duration::from_millis(1500);
    // A process stores two messages of one customer, then dies before forwarding.
    let dead = connect(&project, "zapfn").await;
    dead.ingest(texts(MARIA, &[("wamid.D1", 10), ("wamid.D2", 11)]))
        .await
        .unwrap();
    drop(dead);
    let (sweeper, other) = (
        connect(&project, "zapfn").await,
        connect(&project, "zapfn").await,
    );
    assert!(sweeper
        .claim_own(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    assert!(
        sweeper
            .claim_idle(topics::MESSAGES, 10, LEASE, idle)
            .await
            .unwrap()
            .is_empty(),
        "just written: its writer may still forward it"
    );
    tokio::time::sleep(idle + Duration::from_millis(200)).await;
    let swept = sweeper
        .claim_idle(topics::MESSAGES, 10, LEASE, idle)
        .await
        .unwrap();
    assert_eq!(wamids(&swept), ["wamid.D1"]);
    sweeper.settle(&swept[0], Settlement::Ack).await.unwrap();
    // The next of the key is the sweeper's own now, not idle for another sweep.
    assert!(other
        .claim_idle(topics::MESSAGES, 10, LEASE, idle)
        .await
        .unwrap()
        .is_empty());
    let next = sweeper
        .claim_own(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(wamids(&next), ["wamid.D2"]);
    assert_eq!(next[0].attempt, 1);
}

#[tokio::test]
async fn leases_of_a_dead_process_are_released_by_the_next() {
    let Some(project) = project() else { return };
    let before = connect(&project, "zapfn").await;
    before
        .ingest(texts(JOAO, &[("wamid.D1", 10)]))
        .await
        .unwrap();
    let leased = before
        .claim(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .remove(0);
    drop(before);

    let after = connect(&project, "zapfn").await;
    assert_eq!(after.release_leases().await.unwrap(), 1);
    let again = after
        .claim(topics::MESSAGES, 10, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((again.id.as_str(), again.attempt), (leased.id.as_str(), 2));
    assert_eq!(again.first_attempt_at_ms, leased.first_attempt_at_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statuses_racing_from_separate_processes_end_at_the_highest() {
    let Some(project) = project() else { return };
    let stores = futures::future::join_all((0..3).map(|_| connect(&project, "zapfn"))).await;
    let sent = stores[0].enqueue_send(send_to(MARIA, None)).await.unwrap();
    let wamid = builders::new_wamid();
    stores[0].record_sent(&sent.id, Some(&wamid)).await.unwrap();
    let tasks: Vec<_> = ["read", "sent", "delivered"]
        .into_iter()
        .zip(stores.iter().cloned())
        .enumerate()
        .map(|(i, (state, store))| {
            let update = status(&wamid, state, 100 + i as i64);
            tokio::spawn(async move { store.apply_status(&update).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let view = stores[1].message(&sent.id).await.unwrap().unwrap();
    assert_eq!(view.status, "read");
    let history: BTreeSet<_> = view
        .status_history
        .iter()
        .map(|e| e.status.as_str())
        .collect();
    assert_eq!(
        history,
        BTreeSet::from(["queued", "accepted", "sent", "delivered", "read"])
    );
}

#[tokio::test]
async fn a_notification_larger_than_one_transaction_is_stored_once() {
    let Some(project) = project() else { return };
    let store = connect(&project, "zapfn").await;
    // 130 messages from 13 customers and 60 statuses: several transactions.
    let messages: Vec<Value> = (0..130)
        .map(|i| {
            let from = format!("55119{:08}", i % 13);
            builders::text_message(&from, &format!("wamid.BIG{i:03}"), 1_000 + i, "hi")
        })
        .collect();
    let mut body = builders::messages_notification(PNID, MARIA, "Maria", messages);
    let statuses: Vec<Value> = (0..60)
        .map(|i| builders::status(&format!("wamid.OUT{i:03}"), MARIA, "sent", 2_000, None))
        .collect();
    body["entry"][0]["changes"][0]["value"]["statuses"] = Value::Array(statuses);
    let report = store.ingest(parse_json(&body)).await.unwrap();
    assert_eq!(
        (report.new_messages, report.new_statuses),
        (130, 60),
        "{report:?}"
    );
    let again = store.ingest(parse_json(&body)).await.unwrap();
    assert_eq!(
        (again.duplicate_messages, again.duplicate_statuses),
        (130, 60),
        "{again:?}"
    );
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(depths.pending[topics::MESSAGES], 130);
    assert_eq!(depths.pending[topics::STATUSES], 60);
    let events = drain(&store, topics::MESSAGES).await;
    let mut per_customer: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in &events {
        let wamid = event.payload["wamid"].as_str().unwrap().to_owned();
        per_customer
            .entry(event.ordering_key.clone().unwrap())
            .or_default()
            .push(wamid);
    }
    assert_eq!(per_customer.len(), 13);
    for wamids in per_customer.values() {
        let mut sorted = wamids.clone();
        sorted.sort();
        assert_eq!(wamids, &sorted, "each customer's messages in order");
    }
}
