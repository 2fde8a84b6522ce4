//! The outbox relay against the Pub/Sub and Cloud Tasks emulators: events
//! written with their data are forwarded, acknowledged only once accepted, and
//! kept (deferred) when forwarding fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use serde_json::json;
use zapfn_cloud::pubsub::{PubSubBus, PushSubscription};
use zapfn_cloud::tasks::{task_delivery, CloudTasksQueue, TaskTarget};
use zapfn_runtime::relay::Relay;
use zapfn_runtime::{Config, Context};
use zapfn_store::NewOutbound;
use zapfn_whatsapp::builders;

type Log = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

async fn receiver() -> (String, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let app = Router::new().route(
        "/{*path}",
        post(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let sink = sink.clone();
                async move {
                    sink.lock()
                        .unwrap()
                        .push((uri.path().to_owned(), headers, body));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

async fn wait_for(log: &Log, n: usize) -> Vec<(String, HeaderMap, Bytes)> {
    let start = Instant::now();
    loop {
        let got = log.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} of {n} arrived",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn emulators_up() -> bool {
    for var in ["PUBSUB_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST"] {
        if std::env::var(var).map_or(true, |v| v.is_empty()) {
            assert!(
                std::env::var("ZAPFN_REQUIRE_EMULATORS").as_deref() != Ok("1"),
                "{var} is not set but ZAPFN_REQUIRE_EMULATORS=1"
            );
            eprintln!("SKIPPED relay tests: {var} is not set (scripts/emulators.sh start)");
            return false;
        }
    }
    true
}

fn unique() -> String {
    format!("{:x}", chrono::Utc::now().timestamp_nanos_opt().unwrap())
}

async fn context(dir: &tempfile::TempDir, prefix: &str, queue: &str, target: &str) -> Context {
    connect(dir, prefix, queue, target, &[]).await
}

/// A context on the remote bus and task queue, with `more` settings.
async fn connect(
    dir: &tempfile::TempDir,
    prefix: &str,
    queue: &str,
    target: &str,
    more: &[(&'static str, &str)],
) -> Context {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("ZAPFN_DATA_DIR", dir.path().to_str().unwrap().to_owned()),
        ("ZAPFN_BUS", "pubsub".into()),
        ("ZAPFN_TOPIC_PREFIX", prefix.to_owned()),
        ("ZAPFN_TASKS", "cloudtasks".into()),
        ("ZAPFN_TASKS_QUEUE", queue.to_owned()),
        ("ZAPFN_DISPATCH_URL", target.to_owned()),
        ("GOOGLE_CLOUD_PROJECT", "zapfn-relay-test".into()),
    ]);
    vars.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
    Context::connect(Config::from_lookup(|name| vars.get(name).cloned()).unwrap())
        .await
        .unwrap()
}

fn text_from(wa_id: &str) -> zapfn_whatsapp::webhook::Notification {
    let notification = builders::messages_notification(
        "106540352242922",
        wa_id,
        "Maria",
        vec![builders::text_message(
            wa_id,
            &builders::new_wamid(),
            chrono::Utc::now().timestamp(),
            "hi",
        )],
    );
    zapfn_whatsapp::webhook::parse(notification.to_string().as_bytes()).unwrap()
}

#[tokio::test]
async fn stored_events_are_forwarded_and_acknowledged_once_accepted() {
    if !emulators_up() {
        return;
    }
    let (url, log) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("relay{}-", unique());
    let queue = format!(
        "projects/zapfn-relay-test/locations/here/queues/q{}",
        unique()
    );
    let target = format!("{url}/_tasks/dispatch");
    let context = context(&dir, &prefix, &queue, &target).await;

    let bus = PubSubBus::connect(Some("zapfn-relay-test".into()), &prefix)
        .await
        .unwrap();
    bus.ensure_push_subscription(&PushSubscription::new(
        format!("{prefix}text-messages"),
        "messages",
        format!("{url}/_push/messages"),
    ))
    .await
    .unwrap();
    let tasks = CloudTasksQueue::connect(TaskTarget {
        queue: queue.clone(),
        url: target.clone(),
        oidc_service_account: None,
        oidc_audience: None,
    })
    .await
    .unwrap();
    tasks.ensure_queue().await.unwrap();

    let wamid = builders::new_wamid();
    let notification = builders::messages_notification(
        "106540352242922",
        "5511999990000",
        "Maria",
        vec![builders::text_message(
            "5511999990000",
            &wamid,
            chrono::Utc::now().timestamp(),
            "hi",
        )],
    );
    let parsed = zapfn_whatsapp::webhook::parse(notification.to_string().as_bytes()).unwrap();
    context.store.ingest(parsed).await.unwrap();
    let queued = context
        .store
        .enqueue_send(NewOutbound {
            phone_number_id: "106540352242922".into(),
            to: Some("5511999990000".into()),
            message_type: "text".into(),
            preview: Some("hello".into()),
            context_message_id: None,
            body: json!({"messaging_product": "whatsapp", "to": "5511999990000", "type": "text", "text": {"body": "hello"}}),
            idempotency_key: None,
        })
        .await
        .unwrap();

    let relay = Relay::connect(&context)
        .await
        .unwrap()
        .expect("remote backends");
    let flushed = relay.flush(Duration::from_secs(10)).await;
    assert_eq!((flushed.forwarded, flushed.failed), (2, 0));
    let depths = context.store.queue_depths().await.unwrap();
    assert_eq!(depths.pending.values().sum::<u64>(), 0, "{depths:?}");
    assert_eq!(
        relay.flush(Duration::from_secs(1)).await.forwarded,
        0,
        "acknowledged once"
    );

    let got = wait_for(&log, 2).await;
    let push = got
        .iter()
        .find(|(path, ..)| path == "/_push/messages")
        .expect("pushed");
    let message = zapfn_cloud::push::decode(&push.2, "messages").unwrap();
    assert_eq!(message.payload["wamid"], wamid.as_str());
    assert_eq!(message.payload["text"], "hi");
    let task = got
        .iter()
        .find(|(path, ..)| path == "/_tasks/dispatch")
        .expect("task");
    let dispatch = task_delivery(&task.1, &task.2, "dispatch").unwrap();
    assert_eq!(dispatch.payload["message_id"], queued.id.as_str());
    assert_eq!(dispatch.attempt, 1);
}

#[tokio::test]
async fn events_stay_in_the_outbox_while_forwarding_fails() {
    if !emulators_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Neither the topic nor the queue exists: both forwards fail.
    let prefix = format!("missing{}-", unique());
    let queue = format!(
        "projects/zapfn-relay-test/locations/here/queues/none{}",
        unique()
    );
    let context = context(&dir, &prefix, &queue, "http://127.0.0.1:9/_tasks/dispatch").await;
    let wamid = builders::new_wamid();
    let notification = builders::messages_notification(
        "106540352242922",
        "5511999990001",
        "Ana",
        vec![builders::text_message(
            "5511999990001",
            &wamid,
            chrono::Utc::now().timestamp(),
            "oi",
        )],
    );
    context
        .store
        .ingest(zapfn_whatsapp::webhook::parse(notification.to_string().as_bytes()).unwrap())
        .await
        .unwrap();
    let relay = Relay::connect(&context).await.unwrap().unwrap();
    let flushed = relay.flush(Duration::from_secs(5)).await;
    assert_eq!((flushed.forwarded, flushed.failed), (0, 1));
    let depths = context.store.queue_depths().await.unwrap();
    assert_eq!(
        depths.pending.get("messages"),
        Some(&1),
        "kept for the next try"
    );
    assert_eq!(
        depths.dead_letters, 0,
        "never dead-lettered for a forwarding failure"
    );
}

#[tokio::test]
async fn on_firestore_each_instance_forwards_its_own_and_the_sweep_what_was_left() {
    if !emulators_up() {
        return;
    }
    if std::env::var("FIRESTORE_EMULATOR_HOST").is_err() {
        assert!(
            std::env::var("ZAPFN_REQUIRE_EMULATORS").as_deref() != Ok("1"),
            "FIRESTORE_EMULATOR_HOST is not set but ZAPFN_REQUIRE_EMULATORS=1"
        );
        eprintln!("SKIPPED relay on Firestore: FIRESTORE_EMULATOR_HOST is not set");
        return;
    }
    let (url, log) = receiver().await;
    let prefix = format!("own{}-", unique());
    let bus = PubSubBus::connect(Some("zapfn-relay-test".into()), &prefix)
        .await
        .unwrap();
    bus.ensure_push_subscription(&PushSubscription::new(
        format!("{prefix}text-messages"),
        "messages",
        format!("{url}/_push/messages"),
    ))
    .await
    .unwrap();
    let queue = format!(
        "projects/zapfn-relay-test/locations/here/queues/q{}",
        unique()
    );
    let target = format!("{url}/_tasks/dispatch");
    let collections = format!("relay{}", unique());
    let firestore = [
        ("ZAPFN_STORE", "firestore"),
        ("ZAPFN_FIRESTORE_PREFIX", collections.as_str()),
    ];
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut instances = Vec::new();
    for dir in &dirs {
        let context = connect(dir, &prefix, &queue, &target, &firestore).await;
        let relay = Relay::connect(&context).await.unwrap().unwrap();
        instances.push((context, relay));
    }
    let [(a, relay_a), (_, relay_b), (dead, _)] = &instances[..] else {
        unreachable!()
    };

    a.store.ingest(text_from("5511999990002")).await.unwrap();
    assert_eq!(
        relay_b.flush(Duration::from_secs(5)).await.forwarded,
        0,
        "not B's"
    );
    assert_eq!(relay_a.flush(Duration::from_secs(5)).await.forwarded, 1);

    // An instance commits and dies before its flush: only a sweep forwards
    // that, once it has been idle long enough.
    dead.store.ingest(text_from("5511999990003")).await.unwrap();
    let idle = Duration::from_millis(1500);
    assert_eq!(
        relay_b.sweep(idle, Duration::from_secs(5)).await.forwarded,
        0
    );
    tokio::time::sleep(idle + Duration::from_millis(200)).await;
    assert_eq!(
        relay_b.sweep(idle, Duration::from_secs(5)).await.forwarded,
        1
    );
    assert!(a.store.queue_depths().await.unwrap().pending.is_empty());
    let pushed = wait_for(&log, 2).await;
    let mut customers: Vec<String> = pushed
        .iter()
        .map(|(_, _, body)| {
            let message = zapfn_cloud::push::decode(body, "messages").unwrap();
            message.payload["from"].as_str().unwrap().to_owned()
        })
        .collect();
    customers.sort();
    assert_eq!(customers, ["5511999990002", "5511999990003"]);
}
