//! The dispatcher with a real SQLite store against a scripted Graph API on
//! loopback: which failures are retried, when it holds a send back, and that
//! the message's state agrees with the queue's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use zapfn_dispatch::Dispatcher;
use zapfn_runtime::{consumer, Config, Context};
use zapfn_store::{topics, Delivery, NewOutbound, Settlement, Store};

const PNID: &str = "106540352242922";

/// The Graph API: answers from `script` first, then accepts; keeps every request's `to`.
#[derive(Clone, Default)]
struct Graph {
    script: Arc<Mutex<VecDeque<(u16, &'static str)>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Graph {
    fn answer_next(&self, status: u16, body: &'static str) {
        self.script.lock().unwrap().push_back((status, body));
    }

    fn requests(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

async fn messages(State(graph): State<Graph>, Json(body): Json<Value>) -> (StatusCode, String) {
    let n = {
        let mut requests = graph.requests.lock().unwrap();
        requests.push(body["to"].as_str().unwrap_or_default().to_owned());
        requests.len()
    };
    match graph.script.lock().unwrap().pop_front() {
        Some((status, body)) => (StatusCode::from_u16(status).unwrap(), body.to_owned()),
        None => (
            StatusCode::OK,
            json!({ "messaging_product": "whatsapp", "messages": [{ "id": format!("wamid.T{n}") }] })
                .to_string(),
        ),
    }
}

/// A store in a temporary directory and the Graph API its dispatcher calls.
struct Setup {
    _dir: tempfile::TempDir,
    context: Context,
    graph: Graph,
}

async fn setup(env: &[(&str, &str)]) -> Setup {
    let graph = Graph::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/{version}/{number}/messages", post(messages))
        .with_state(graph.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let mut vars: HashMap<String, String> = [
        ("ZAPFN_DATA_DIR", dir.path().to_str().unwrap()),
        ("WA_GRAPH_URL", url.as_str()),
        ("ZAPFN_RETRY_BASE_MS", "10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    Setup {
        _dir: dir,
        context: Context::open(config).unwrap(),
        graph,
    }
}

async fn queue_text(store: &dyn Store, to: &str) -> String {
    let send = NewOutbound {
        phone_number_id: PNID.into(),
        to: Some(to.into()),
        message_type: "text".into(),
        preview: None,
        context_message_id: None,
        body: json!({ "messaging_product": "whatsapp", "to": to, "type": "text", "text": { "body": "hi" } }),
        idempotency_key: None,
    };
    store.enqueue_send(send).await.unwrap().id
}

/// Leases the next dispatch task for `lease`, waiting (bounded) for it to come due.
async fn claim(store: &dyn Store, lease: Duration) -> Delivery {
    let started = Instant::now();
    loop {
        if let Some(delivery) = store.claim(topics::DISPATCH, 1, lease).await.unwrap().pop() {
            return delivery;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no dispatch task came due"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn status(store: &dyn Store, id: &str) -> String {
    store.message(id).await.unwrap().unwrap().status
}

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn http_429_is_retried_whatever_the_code() {
    let setup = setup(&[]).await;
    let store = setup.context.store.as_ref();
    let dispatcher = Dispatcher::new(&setup.context);
    setup.graph.answer_next(
        429,
        r#"{"error":{"code":613,"message":"Calls to this api have exceeded the rate limit"}}"#,
    );
    let id = queue_text(store, "5511900000001").await;

    let first = claim(store, LEASE).await;
    let settlement = dispatcher.handle(&first).await;
    assert!(
        matches!(settlement, Settlement::Retry { .. }),
        "{settlement:?}"
    );
    assert_eq!(status(store, &id).await, "queued", "not failed");
    store.settle(&first, settlement).await.unwrap();

    let second = claim(store, LEASE).await;
    assert_eq!(dispatcher.handle(&second).await, Settlement::Ack);
    assert!(store.outbound(&id).await.unwrap().unwrap().wamid.is_some());
    assert_eq!(setup.graph.requests(), 2);
}

#[tokio::test]
async fn a_gateway_error_waits_out_the_reconcile_window() {
    let setup = setup(&[]).await;
    let store = setup.context.store.as_ref();
    let dispatcher = Dispatcher::new(&setup.context);
    setup.graph.answer_next(502, "<html>Bad Gateway</html>");
    queue_text(store, "5511900000002").await;

    let first = claim(store, LEASE).await;
    let settlement = dispatcher.handle(&first).await;
    assert!(
        matches!(settlement, Settlement::Retry { .. }),
        "{settlement:?}"
    );
    store.settle(&first, settlement).await.unwrap();

    // Meta may have the message: the retry waits for a status naming it.
    let second = claim(store, LEASE).await;
    match dispatcher.handle(&second).await {
        Settlement::Defer { after } => assert!(after > Duration::from_secs(10), "{after:?}"),
        other => panic!("sent again at once: {other:?}"),
    }
    assert_eq!(setup.graph.requests(), 1);
}

#[tokio::test]
async fn the_dispatch_lease_outlasts_the_slowest_run() {
    let setup = setup(&[("ZAPFN_GRAPH_TIMEOUT_MS", "30000")]).await;
    let function = zapfn_dispatch::function(&setup.context);
    // A link fetch, a voice-note conversion, an upload, the rate wait, the send call.
    let slowest = Duration::from_secs(25 + 120 + 25 + 2 + 30);
    let lease = function.subscriptions[0].lease;
    assert!(
        lease > slowest && lease >= Duration::from_secs(600),
        "{lease:?}"
    );
}

#[tokio::test]
async fn a_send_is_not_started_near_the_end_of_its_lease() {
    let setup = setup(&[]).await;
    let store = setup.context.store.as_ref();
    let dispatcher = Dispatcher::new(&setup.context);
    let id = queue_text(store, "5511900000003").await;

    let short = claim(store, Duration::from_secs(5)).await;
    assert_eq!(
        dispatcher.handle(&short).await,
        Settlement::Defer {
            after: Duration::ZERO
        }
    );
    assert_eq!(setup.graph.requests(), 0, "nothing sent");
    assert_eq!(
        store
            .outbound(&id)
            .await
            .unwrap()
            .unwrap()
            .dispatch_started_at,
        None,
        "not marked as mid-send"
    );
    store
        .settle(
            &short,
            Settlement::Defer {
                after: Duration::ZERO,
            },
        )
        .await
        .unwrap();

    let long = claim(store, LEASE).await;
    assert_eq!(long.attempt, 1, "a deferral spends no attempt");
    assert_eq!(dispatcher.handle(&long).await, Settlement::Ack);
    assert_eq!(setup.graph.requests(), 1);
}

#[tokio::test]
async fn pushed_deliveries_without_a_lease_are_sent() {
    let setup = setup(&[]).await;
    let store = setup.context.store.as_ref();
    let dispatcher = Dispatcher::new(&setup.context);
    queue_text(store, "5511900000004").await;
    let pushed = Delivery {
        lease_until_ms: 0,
        ..claim(store, LEASE).await
    };
    assert_eq!(dispatcher.handle(&pushed).await, Settlement::Ack);
    assert_eq!(setup.graph.requests(), 1);
}

#[tokio::test]
async fn a_low_rate_limit_keeps_sending_to_many_recipients() {
    // 2 sends/s and 8 handlers: most tasks find the number's next slot more than
    // 2 s away and defer; deferring must not spend the slots others wait for.
    let setup = setup(&[("WA_RATE_LIMIT", "2")]).await;
    let store = setup.context.store.as_ref();
    let recipients = 16;
    for n in 0..recipients {
        queue_text(store, &format!("55119200{n:05}")).await;
    }
    let function = zapfn_dispatch::function(&setup.context);
    let consumers = consumer::start(&setup.context, function.subscriptions)
        .await
        .unwrap();
    let started = Instant::now();
    while setup.graph.requests() < recipients {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {recipients} sent",
            setup.graph.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    consumers.shutdown(Duration::from_secs(5)).await;
    let depths = store.queue_depths().await.unwrap();
    assert_eq!(
        depths.pending.get(topics::DISPATCH),
        None,
        "all acknowledged"
    );
}

#[tokio::test]
async fn gives_up_before_the_queue_would() {
    let setup = setup(&[
        ("ZAPFN_MAX_RETRY_SECONDS", "10"),
        ("ZAPFN_RETRY_BASE_MS", "1"),
    ])
    .await;
    let store = setup.context.store.as_ref();
    let dispatcher = Dispatcher::new(&setup.context);
    setup.graph.answer_next(503, "unavailable");
    let id = queue_text(store, "5511900000005").await;

    // First attempted almost 10 s ago: a retry would be due just inside the window.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let delivery = Delivery {
        first_attempt_at_ms: now_ms - 9_800,
        ..claim(store, LEASE).await
    };
    let settlement = dispatcher.handle(&delivery).await;
    // The queue settles a moment later (a busy writer), past the window.
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.settle(&delivery, settlement.clone()).await.unwrap();

    let depths = store.queue_depths().await.unwrap();
    assert_eq!(depths.dead_letters, 1, "the queue gave up: {settlement:?}");
    assert_eq!(
        status(store, &id).await,
        "failed",
        "and so did the dispatcher"
    );
}

#[tokio::test]
async fn with_cloud_tasks_a_send_waits_for_an_earlier_one_to_the_same_customer() {
    let setup = setup(&[
        ("ZAPFN_TASKS", "cloudtasks"),
        (
            "ZAPFN_TASKS_QUEUE",
            "projects/p/locations/l/queues/dispatch",
        ),
        ("ZAPFN_DISPATCH_URL", "http://127.0.0.1:9/_tasks/dispatch"),
    ])
    .await;
    let store = setup.context.store.as_ref();
    let dispatcher = Dispatcher::new(&setup.context);
    let customer = "5511900000009";
    let first = queue_text(store, customer).await;
    let second = queue_text(store, customer).await;
    let other = queue_text(store, "5511900000010").await;
    // The relay hands every event to Cloud Tasks and acknowledges it at once:
    // the queue no longer holds a customer's later sends behind earlier ones.
    let mut pushed = HashMap::new();
    for _ in 0..3 {
        let delivery = claim(store, LEASE).await;
        store.settle(&delivery, Settlement::Ack).await.unwrap();
        let task: Value = delivery.payload.clone();
        let id = task["message_id"].as_str().unwrap().to_owned();
        pushed.insert(
            id,
            Delivery {
                lease_until_ms: 0,
                ..delivery
            },
        );
    }

    assert!(
        matches!(
            dispatcher.handle(&pushed[&second]).await,
            Settlement::Defer { .. }
        ),
        "the second waits while the first is queued"
    );
    assert_eq!(dispatcher.handle(&pushed[&other]).await, Settlement::Ack);
    assert_eq!(setup.graph.requests(), 1, "another customer's send goes");
    assert_eq!(dispatcher.handle(&pushed[&first]).await, Settlement::Ack);
    assert_eq!(dispatcher.handle(&pushed[&second]).await, Settlement::Ack);
    assert_eq!(setup.graph.requests(), 3);
    assert_eq!(status(store, &second).await, "accepted");
}
