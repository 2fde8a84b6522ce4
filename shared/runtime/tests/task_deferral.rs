//! Deferrals on the Cloud Tasks emulator: a dispatch task its handler defers
//! (pacing) continues as a new, scheduled task and keeps its attempt number;
//! only real failures spend the queue's attempts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use zapfn_cloud::tasks::{deferred_task_id, task_id, CloudTasksQueue, TaskTarget};
use zapfn_runtime::{service, Config, Context, Function, Subscription};
use zapfn_store::{Delivery, Settlement};

/// What the handler saw: the delivery and when.
type Seen = Arc<Mutex<Vec<(Delivery, Instant)>>>;

const DEFERRALS: usize = 3;
const DEFER_FOR: Duration = Duration::from_millis(1200);

#[tokio::test]
async fn deferred_tasks_do_not_spend_attempts() {
    if std::env::var("CLOUD_TASKS_EMULATOR_HOST").map_or(true, |v| v.is_empty()) {
        assert!(
            std::env::var("ZAPFN_REQUIRE_EMULATORS").as_deref() != Ok("1"),
            "CLOUD_TASKS_EMULATOR_HOST is not set but ZAPFN_REQUIRE_EMULATORS=1"
        );
        eprintln!("SKIPPED deferred_tasks_do_not_spend_attempts: CLOUD_TASKS_EMULATOR_HOST is not set (scripts/emulators.sh start)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/_tasks/dispatch", listener.local_addr().unwrap());
    let queue = format!(
        "projects/zapfn-test/locations/here/queues/deferral-{:x}",
        chrono::Utc::now().timestamp_micros()
    );
    let vars: HashMap<&str, String> = [
        ("ZAPFN_DATA_DIR", dir.path().to_str().unwrap().to_owned()),
        ("ZAPFN_MAX_ATTEMPTS", "5".into()),
        ("ZAPFN_TASKS", "cloudtasks".into()),
        ("ZAPFN_TASKS_QUEUE", queue.clone()),
        ("ZAPFN_DISPATCH_URL", target.clone()),
    ]
    .into_iter()
    .collect();
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let context = Context::connect(config).await.unwrap();

    // Defers the first three deliveries (as dispatch's pacing does), fails the
    // fourth (a Graph 500), acknowledges the fifth.
    let seen: Seen = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |delivery: Delivery| {
            let seen = seen.clone();
            async move {
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push((delivery, Instant::now()));
                    seen.len()
                };
                match n {
                    n if n <= DEFERRALS => Settlement::Defer { after: DEFER_FOR },
                    n if n == DEFERRALS + 1 => Settlement::Retry {
                        after: Duration::from_millis(100),
                        error: "graph 500".into(),
                    },
                    _ => Settlement::Ack,
                }
            }
        }
    };
    let function = Function::events("dispatch", vec![Subscription::new("dispatch", 4, handler)]);
    let service = service::assemble(&context, function).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, service.router).await.unwrap() });

    let tasks = CloudTasksQueue::connect(TaskTarget {
        queue,
        url: target,
        oidc_service_account: None,
        oidc_audience: None,
    })
    .await
    .unwrap();
    tasks.ensure_queue().await.unwrap();
    let event = Delivery {
        id: "1".into(),
        topic: "dispatch".into(),
        ordering_key: Some("106540352242922:5511999990000".into()),
        payload: json!({"message_id": "msg_paced"}),
        attempt: 1,
        first_attempt_at_ms: 0,
        lease_until_ms: 0,
    };
    tasks.enqueue(&event).await.unwrap();

    let started = Instant::now();
    while seen.lock().unwrap().len() < DEFERRALS + 2 {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the task did not finish: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing after the acknowledgement.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = seen.lock().unwrap().clone();

    let attempts: Vec<u32> = seen.iter().map(|(d, _)| d.attempt).collect();
    assert_eq!(
        attempts,
        [1, 1, 1, 1, 2],
        "deferrals keep the attempt; the failure spends one"
    );
    let base = task_id(&event);
    let first = deferred_task_id(&base);
    let second = deferred_task_id(&first);
    let third = deferred_task_id(&second);
    let ids: Vec<&str> = seen.iter().map(|(d, _)| d.id.as_str()).collect();
    assert_eq!(ids, [&base, &first, &second, &third, &third]);
    for pair in seen[..=DEFERRALS].windows(2) {
        let waited = pair[1].1 - pair[0].1;
        assert!(
            waited >= DEFER_FOR - Duration::from_millis(100),
            "a deferred task ran after {waited:?}, before its schedule"
        );
    }
    assert!(seen
        .iter()
        .all(|(d, _)| d.payload == json!({"message_id": "msg_paced"})
            && d.ordering_key.as_deref() == Some("106540352242922:5511999990000")));
}
