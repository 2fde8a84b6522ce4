//! The push adapter on a real server: envelopes in, handler settlements out as
//! the HTTP answers Pub/Sub and Cloud Tasks act on; dead letters in a real SQLite store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use zapfn_runtime::{service, Config, Context, Function, Subscription};
use zapfn_store::{Delivery, Settlement};

struct Server {
    url: String,
    context: Context,
    seen: Arc<Mutex<Vec<Delivery>>>,
    _dir: tempfile::TempDir,
}

/// A function whose `statuses` and `dispatch` handlers answer what the payload's
/// `outcome` says, served with a remote bus and task queue (no emulator is
/// contacted: nothing is written to the outbox).
async fn start(extra: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut vars: HashMap<String, String> = [
        ("ZAPFN_DATA_DIR", dir.path().to_str().unwrap()),
        ("ZAPFN_MAX_ATTEMPTS", "3"),
        ("ZAPFN_MAX_RETRY_SECONDS", "600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let context = Context::connect(config).await.unwrap();
    let seen: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let handler = |seen: Arc<Mutex<Vec<Delivery>>>| {
        move |delivery: Delivery| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(delivery.clone());
                match delivery.payload["outcome"].as_str().unwrap_or("ack") {
                    "retry" => Settlement::Retry {
                        after: Duration::from_millis(1500),
                        error: "graph 500".into(),
                    },
                    "defer" => Settlement::Defer {
                        after: Duration::from_secs(7),
                    },
                    "dead" => Settlement::DeadLetter {
                        error: "not a status".into(),
                    },
                    _ => Settlement::Ack,
                }
            }
        }
    };
    let function = Function::events(
        "test",
        vec![
            Subscription::new("statuses", 4, handler(seen.clone())),
            Subscription::new("dispatch", 4, handler(seen.clone())),
        ],
    );
    let service = service::assemble(&context, function).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, service.router).await.unwrap() });
    Server {
        url,
        context,
        seen,
        _dir: dir,
    }
}

fn envelope(payload: &Value, attempt: Option<u32>, published: &str) -> Value {
    let mut body = json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(payload.to_string()),
            "messageId": "m-1", "message_id": "m-1",
            "publishTime": published, "attributes": {"topic": "statuses"}
        },
        "subscription": "projects/p/subscriptions/zapfn-status-statuses"
    });
    if let Some(attempt) = attempt {
        body["deliveryAttempt"] = json!(attempt);
    }
    body
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339()
}

async fn push(server: &Server, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/_push/statuses", server.url))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn dead_letters(server: &Server) -> u64 {
    server
        .context
        .store
        .queue_depths()
        .await
        .unwrap()
        .dead_letters
}

const REMOTE: [(&str, &str); 4] = [
    ("ZAPFN_BUS", "pubsub"),
    ("ZAPFN_TASKS", "cloudtasks"),
    ("ZAPFN_TASKS_QUEUE", "projects/p/locations/l/queues/q"),
    ("ZAPFN_DISPATCH_URL", "http://127.0.0.1:9/_tasks/dispatch"),
];

#[tokio::test]
async fn settlements_become_the_answers_google_retries_on() {
    let Some(server) = start_remote().await else {
        return;
    };
    let now = now_rfc3339();

    let ack = push(
        &server,
        &envelope(&json!({"outcome": "ack", "wamid": "w"}), Some(1), &now),
    )
    .await;
    assert_eq!(ack.status(), 204);
    let delivery = server.seen.lock().unwrap()[0].clone();
    assert_eq!(
        (
            delivery.id.as_str(),
            delivery.topic.as_str(),
            delivery.attempt
        ),
        ("m-1", "statuses", 1)
    );
    assert_eq!(delivery.payload["wamid"], "w");

    let retry = push(
        &server,
        &envelope(&json!({"outcome": "retry"}), Some(1), &now),
    )
    .await;
    assert_eq!(retry.status(), 503);
    assert_eq!(retry.headers()["retry-after"], "2");

    let defer = push(
        &server,
        &envelope(&json!({"outcome": "defer"}), Some(2), &now),
    )
    .await;
    assert_eq!(defer.status(), 429);
    assert_eq!(defer.headers()["retry-after"], "7");
    assert_eq!(dead_letters(&server).await, 0);

    // Out of attempts (ZAPFN_MAX_ATTEMPTS=3): kept as a dead letter, acknowledged.
    let last = push(
        &server,
        &envelope(&json!({"outcome": "retry"}), Some(3), &now),
    )
    .await;
    assert_eq!(last.status(), 204);
    assert_eq!(dead_letters(&server).await, 1);

    // Out of the retry window (published 20 minutes ago, window 600 s).
    let old = (chrono::Utc::now() - chrono::Duration::minutes(20)).to_rfc3339();
    let stale = push(&server, &envelope(&json!({"outcome": "retry"}), None, &old)).await;
    assert_eq!(stale.status(), 204);
    assert_eq!(dead_letters(&server).await, 2);

    let poison = push(
        &server,
        &envelope(&json!({"outcome": "dead"}), Some(1), &now),
    )
    .await;
    assert_eq!(poison.status(), 204);
    assert_eq!(dead_letters(&server).await, 3);
}

#[tokio::test]
async fn cloud_tasks_requests_reach_the_dispatch_handler_with_their_attempt() {
    let Some(server) = start_remote().await else {
        return;
    };
    let response = reqwest::Client::new()
        .post(format!("{}/_tasks/dispatch", server.url))
        .header("X-CloudTasks-TaskName", "dispatch-abc")
        .header("X-CloudTasks-TaskRetryCount", "1")
        .header("X-CloudTasks-QueueName", "q")
        .header(
            "x-zapfn-created-at-ms",
            chrono::Utc::now().timestamp_millis().to_string(),
        )
        .json(&json!({"message_id": "msg_1", "outcome": "retry"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let delivery = server.seen.lock().unwrap()[0].clone();
    assert_eq!(
        (delivery.id.as_str(), delivery.attempt),
        ("dispatch-abc", 2)
    );

    let not_a_task = reqwest::Client::new()
        .post(format!("{}/_tasks/dispatch", server.url))
        .json(&json!({"message_id": "msg_1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_task.status(), 400);
}

#[tokio::test]
async fn bad_requests_are_refused_without_running_handlers() {
    let Some(server) = start_remote().await else {
        return;
    };
    let client = reqwest::Client::new();
    let unknown = client
        .post(format!("{}/_push/messages", server.url))
        .json(&envelope(&json!({}), None, &now_rfc3339()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let garbage = client
        .post(format!("{}/_push/statuses", server.url))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    assert_eq!(
        garbage.headers()["content-type"],
        "application/problem+json"
    );
    assert!(server.seen.lock().unwrap().is_empty());
}

/// The remote server, or None (after a loud SKIPPED) without the emulators the
/// relay connects to at start.
async fn start_remote() -> Option<Server> {
    for var in ["PUBSUB_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST"] {
        if std::env::var(var).map_or(true, |v| v.is_empty()) {
            assert!(
                std::env::var("ZAPFN_REQUIRE_EMULATORS").as_deref() != Ok("1"),
                "{var} is not set but ZAPFN_REQUIRE_EMULATORS=1"
            );
            eprintln!("SKIPPED push adapter tests: {var} is not set (scripts/emulators.sh start)");
            return None;
        }
    }
    Some(start(&REMOTE).await)
}

#[tokio::test]
async fn push_routes_need_an_oidc_token_when_an_audience_is_set() {
    if start_remote().await.is_none() {
        return;
    }
    let mut env = REMOTE.to_vec();
    env.push(("ZAPFN_PUSH_AUDIENCE", "https://status.example.run.app"));
    env.push(("ZAPFN_OIDC_JWKS_URL", "http://127.0.0.1:9/certs"));
    let server = start(&env).await;
    for path in ["/_push/statuses", "/_tasks/dispatch", "/_relay"] {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", server.url))
            .json(&envelope(&json!({}), None, &now_rfc3339()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "health stays open");
    assert!(server.seen.lock().unwrap().is_empty());
}

/// A token as a private Cloud Run service forwards it: its signature removed.
fn signature_removed(audience: &str) -> String {
    let b64 =
        |value: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let now = chrono::Utc::now().timestamp();
    let header = b64(json!({"alg": "RS256", "kid": "k1", "typ": "JWT"}));
    let claims = b64(json!({
        "iss": "https://accounts.google.com", "aud": audience, "iat": now, "exp": now + 600,
        "email": "zapfn-push@p.iam.gserviceaccount.com", "email_verified": true
    }));
    format!("Bearer {header}.{claims}.SIGNATURE_REMOVED_BY_GOOGLE")
}

#[tokio::test]
async fn tokens_cloud_run_checked_pass_only_when_cloud_run_is_trusted() {
    if start_remote().await.is_none() {
        return;
    }
    let audience = "https://status.example.run.app";
    let mut env = REMOTE.to_vec();
    env.push(("ZAPFN_PUSH_AUDIENCE", audience));
    env.push(("ZAPFN_OIDC_JWKS_URL", "http://127.0.0.1:9/certs"));
    let send = |server: &Server, token: String| {
        reqwest::Client::new()
            .post(format!("{}/_push/statuses", server.url))
            .header("authorization", token)
            .json(&envelope(&json!({"status": "read"}), None, &now_rfc3339()))
            .send()
    };

    let untrusting = start(&env).await;
    let refused = send(&untrusting, signature_removed(audience))
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(untrusting.seen.lock().unwrap().is_empty());

    env.push(("ZAPFN_PUSH_VERIFIED_BY", "cloud-run"));
    let trusting = start(&env).await;
    let other = send(&trusting, signature_removed("https://elsewhere.run.app"))
        .await
        .unwrap();
    assert_eq!(other.status(), 401, "the audience is still checked");
    let accepted = send(&trusting, signature_removed(audience)).await.unwrap();
    assert_eq!(accepted.status(), 204);
    assert_eq!(trusting.seen.lock().unwrap().len(), 1);
}
