//! Shared helpers for the integration tests: a whole embedded zapfn on a
//! loopback port with its own SQLite file, and small HTTP helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;
use zapfn::dev::{self, Running};
use zapfn_runtime::Config;
use zapfn_whatsapp::status::FAILED_RANK;

/// The bootstrap API key of test systems.
pub const API_KEY: &str = "test-api-key";
/// The app secret of test systems (sandbox mode).
pub const SECRET: &str = "test-app-secret";
/// The business number used by fixtures.
pub const PHONE_NUMBER_ID: &str = "106540352242922";

/// A running system and the directory holding its state.
pub struct System {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// Starts a system with test defaults, overridden by `env`.
pub async fn start(env: &[(&str, &str)]) -> System {
    start_in(tempfile::tempdir().unwrap(), env).await
}

/// Starts a system whose state lives in `dir` (reuse a dir to restart). With
/// `RUST_LOG` set, its logs go to stderr (`ZAPFN_LOG_FORMAT=pretty` to read them).
pub async fn start_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> System {
    if std::env::var_os("RUST_LOG").is_some() {
        zapfn_runtime::logging::init();
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut vars: HashMap<String, String> = [
        ("PORT", port.as_str()),
        ("ZAPFN_DATA_DIR", dir.path().to_str().unwrap()),
        ("ZAPFN_API_KEY", API_KEY),
        ("WA_APP_SECRET", SECRET),
        ("WA_VERIFY_TOKEN", "test-verify-token"),
        ("ZAPFN_RETRY_BASE_MS", "50"),
        ("ZAPFN_GRAPH_TIMEOUT_MS", "2000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in env {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let running = dev::start(config, listener).await.unwrap();
    System {
        running,
        dir,
        http: reqwest::Client::new(),
    }
}

impl System {
    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    /// Signs `body` with the test secret and posts it to `/webhook`; once
    /// answered, waits until what was acknowledged is stored (the SQLite store
    /// journals webhooks and stores them right after), so the database file
    /// can be read directly.
    pub async fn post_webhook(&self, body: &[u8]) -> u16 {
        let status =
            zapfn_sandbox::post_signed(&self.http, &self.url("/webhook"), SECRET.as_bytes(), body)
                .await
                .unwrap()
                .as_u16();
        self.stored().await;
        status
    }

    /// Waits until every acknowledged webhook is stored (the journal's indexer
    /// is behind the 200 by milliseconds), so the database file can be read.
    pub async fn stored(&self) {
        let store = &self.running.context.store;
        assert!(
            store.flush_webhooks(Duration::from_secs(10)).await,
            "acknowledged webhooks stored"
        );
    }

    /// GET with the API key; (status, JSON body or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POST JSON with the API key; (status, JSON body or Null).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(API_KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A message by zapfn id or wamid, if the read API knows it.
    pub async fn message(&self, id: &str) -> Option<Value> {
        let (status, body) = self.get(&format!("/v1/messages/{id}")).await;
        (status == 200).then_some(body)
    }

    /// Waits until message `id` (zapfn id or wamid) has reached `status`: that
    /// status or, for a delivery state, a later one (the sandbox's `sent`,
    /// `delivered` and `read` can be stored in one batch, so a poll may never
    /// see the middle one); `failed` only itself. Returns its view.
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let wanted = zapfn_whatsapp::status::rank(status).filter(|rank| *rank != FAILED_RANK);
        let reached = |now: &str| match (wanted, zapfn_whatsapp::status::rank(now)) {
            (Some(wanted), Some(now)) => now != FAILED_RANK && now >= wanted,
            _ => now == status,
        };
        eventually(
            Duration::from_secs(20),
            &format!("{id} to become {status}"),
            || async {
                self.message(id)
                    .await
                    .filter(|view| view["status"].as_str().is_some_and(reached))
            },
        )
        .await
    }

    /// What the built-in Graph API sandbox accepted for `to`, in arrival order.
    pub fn sent_to(&self, to: &str) -> Vec<zapfn_sandbox::SentMessage> {
        let sandbox = self.running.sandbox.as_ref().expect("sandbox mode");
        sandbox
            .sent()
            .into_iter()
            .filter(|m| m.to.as_deref() == Some(to))
            .collect()
    }

    /// Opens the customer-service window for `wa_id` with a signed inbound text.
    pub async fn customer_writes(&self, wa_id: &str, text: &str) -> String {
        let wamid = zapfn_whatsapp::builders::new_wamid();
        let now = chrono::Utc::now().timestamp();
        let body = zapfn_whatsapp::builders::messages_notification(
            PHONE_NUMBER_ID,
            wa_id,
            "Test Customer",
            vec![zapfn_whatsapp::builders::text_message(
                wa_id, &wamid, now, text,
            )],
        );
        assert_eq!(self.post_webhook(body.to_string().as_bytes()).await, 200);
        wamid
    }

    /// Seeds `bytes` as a customer's media in the Graph API sandbox (`query`:
    /// e.g. `mime_type=image/jpeg`, plus fault options); the sandbox's answer
    /// (`id`, …).
    pub async fn seed_media(&self, bytes: &[u8], query: &str) -> Value {
        let response = self
            .http
            .post(self.url(&format!("/sandbox/media?{query}")))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// The sandbox plays customer `from` sending `message` (the type's fields of
    /// Meta's message object, e.g. `{"image": {"id": …}}`) to the test number;
    /// asserts the signed webhook got its 200; returns the wamid.
    pub async fn customer_sends(&self, from: &str, message: Value) -> String {
        let mut inbound = serde_json::json!({"phone_number_id": PHONE_NUMBER_ID, "from": from});
        inbound
            .as_object_mut()
            .unwrap()
            .extend(message.as_object().expect("a JSON object").clone());
        let (status, answer) = self.post("/sandbox/inbound", &inbound).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["webhook_status"], 200, "{answer}");
        answer["wamid"].as_str().unwrap().to_owned()
    }

    /// Queues a text to `to` through the send API; returns the zapfn id.
    pub async fn send_text(&self, to: &str, body: &str) -> String {
        let request = serde_json::json!({
            "messaging_product": "whatsapp", "to": to, "type": "text", "text": { "body": body }
        });
        let (status, answer) = self
            .post(&format!("/v1/{PHONE_NUMBER_ID}/messages"), &request)
            .await;
        assert_eq!(status, 202, "{answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    /// Stops the system gracefully and hands back its state directory.
    pub async fn stop(self) -> tempfile::TempDir {
        self.running.stop().await.unwrap();
        self.dir
    }
}

/// Polls `check` every 20 ms until it returns Some, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Path of a file under `fixtures/`.
pub fn fixture(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(path)
}

/// Asserts an RFC 9457 problem answer with `status` and a detail; returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(!detail.is_empty(), "problem without a detail: {body}");
    body
}

/// The statuses of a message view's `status_history`, in order.
pub fn history(view: &Value) -> Vec<&str> {
    view["status_history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["status"].as_str())
        .collect()
}
