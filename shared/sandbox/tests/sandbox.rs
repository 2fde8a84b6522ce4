//! Runs the sandbox router on a loopback port next to a tiny webhook receiver
//! that records every POST and checks its `X-Hub-Signature-256`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use zapfn_sandbox::{Sandbox, SandboxConfig};
use zapfn_whatsapp::signature::verify;

const SECRET: &str = "sandbox-test-secret";
const PHONE_NUMBER_ID: &str = "106540352242922";
const DISPLAY_NUMBER: &str = "15551234567";
const CUSTOMER: &str = "+5511999990000";

/// One POST the receiver got.
#[derive(Clone, Debug)]
struct Hook {
    signed: bool,
    body: Value,
}

/// The receiver's state: what arrived, and scripted non-200 answers.
#[derive(Clone, Default)]
struct Receiver {
    hooks: Arc<Mutex<Vec<Hook>>>,
    answers: Arc<Mutex<VecDeque<StatusCode>>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("x-hub-signature-256")
        .map(|value| value.as_bytes());
    let signed = verify(SECRET.as_bytes(), &body, signature).is_ok();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    receiver.hooks.lock().unwrap().push(Hook { signed, body });
    receiver
        .answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(StatusCode::OK)
}

/// Serves `router` on 127.0.0.1:0 and returns its base URL.
async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

struct Harness {
    base: String,
    sandbox: Sandbox,
    receiver: Receiver,
    http: reqwest::Client,
}

async fn start() -> Harness {
    let receiver = Receiver::default();
    let receiver_url = serve(
        Router::new()
            .route("/webhook", post(receive))
            .with_state(receiver.clone()),
    )
    .await;
    start_with(receiver, format!("{receiver_url}/webhook")).await
}

async fn start_with(receiver: Receiver, webhook_url: String) -> Harness {
    let mut config = SandboxConfig::new(SECRET, webhook_url);
    config.display_phone_number = DISPLAY_NUMBER.to_owned();
    let sandbox = Sandbox::new(config);
    let base = serve(sandbox.router()).await;
    Harness {
        base,
        sandbox,
        receiver,
        http: reqwest::Client::new(),
    }
}

fn text(to: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "to": to,
        "type": "text",
        "text": { "body": "Olá!" }
    })
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

impl Harness {
    fn messages_url(&self) -> String {
        format!("{}/graph/v23.0/{PHONE_NUMBER_ID}/messages", self.base)
    }

    fn post_send(&self, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.messages_url())
            .bearer_auth("test-token")
            .json(body)
    }

    async fn send(&self, body: Value) -> (StatusCode, Value) {
        json_of(self.post_send(&body).send().await.unwrap()).await
    }

    async fn sandbox_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        json_of(self.http.post(url).json(&body).send().await.unwrap()).await
    }

    async fn sandbox_get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn hooks(&self) -> Vec<Hook> {
        self.receiver.hooks.lock().unwrap().clone()
    }

    /// Status objects posted for `wamid`, in arrival order, once `count` arrived.
    async fn statuses(&self, wamid: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let statuses: Vec<Value> = self
                .hooks()
                .into_iter()
                .filter_map(|hook| {
                    assert!(hook.signed, "unsigned webhook: {}", hook.body);
                    hook.body
                        .pointer("/entry/0/changes/0/value/statuses/0")
                        .cloned()
                })
                .filter(|status| status["id"] == wamid)
                .collect();
            if statuses.len() >= count || Instant::now() > deadline {
                return statuses;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn names(statuses: &[Value]) -> Vec<&str> {
    statuses
        .iter()
        .map(|status| status["status"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn send_is_answered_like_meta_and_statuses_arrive_signed_in_order() {
    let harness = start().await;
    let (status, body) = harness.send(text(CUSTOMER)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(
        body["contacts"],
        json!([{ "input": CUSTOMER, "wa_id": "5511999990000" }])
    );
    let wamid = body["messages"][0]["id"].as_str().unwrap();
    assert!(wamid.starts_with("wamid."), "{wamid}");

    let statuses = harness.statuses(wamid, 3).await;
    assert_eq!(names(&statuses), ["sent", "delivered", "read"]);
    let now = chrono::Utc::now().timestamp();
    for status in &statuses {
        assert_eq!(status["recipient_id"], "5511999990000");
        let timestamp: i64 = status["timestamp"].as_str().unwrap().parse().unwrap();
        assert!(
            (now - timestamp).abs() < 60,
            "timestamp in seconds: {timestamp}"
        );
    }
    let hook = &harness.hooks()[0].body;
    let metadata = &hook["entry"][0]["changes"][0]["value"]["metadata"];
    assert_eq!(metadata["phone_number_id"], PHONE_NUMBER_ID);
    assert_eq!(metadata["display_phone_number"], DISPLAY_NUMBER);

    let sent = harness.sandbox.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].phone_number_id, PHONE_NUMBER_ID);
    assert_eq!(sent[0].to.as_deref(), Some(CUSTOMER));
    assert_eq!(sent[0].message_type, "text");
    assert_eq!(sent[0].wamid.as_deref(), Some(wamid));
    assert_eq!(sent[0].body, text(CUSTOMER));

    let listed = harness.sandbox_get("/sandbox/sent").await;
    assert_eq!(listed[0]["wamid"], wamid);
    let cleared = harness
        .http
        .delete(format!("{}/sandbox/sent", harness.base))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert!(harness.sandbox.sent().is_empty());
}

#[tokio::test]
async fn mark_as_read_succeeds_without_statuses() {
    let harness = start().await;
    let read =
        json!({ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.ABC" });
    let (status, body) = harness.send(read.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "success": true }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(harness.hooks().is_empty());
    let sent = harness.sandbox.sent();
    assert_eq!(
        (sent[0].message_type.as_str(), &sent[0].wamid, &sent[0].body),
        ("read", &None, &read)
    );
}

#[tokio::test]
async fn numbers_starting_with_99_are_accepted_then_fail() {
    let harness = start().await;
    let (status, body) = harness.send(text("+9912345678")).await;
    assert_eq!(status, StatusCode::OK);
    let wamid = body["messages"][0]["id"].as_str().unwrap();
    let statuses = harness.statuses(wamid, 2).await;
    assert_eq!(names(&statuses), ["sent", "failed"]);
    assert_eq!(statuses[1]["recipient_id"], "9912345678");
    assert_eq!(
        statuses[1]["errors"],
        json!([{
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": { "details": "Message Undeliverable." }
        }])
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        harness.statuses(wamid, 2).await.len(),
        2,
        "nothing after failed"
    );
}

#[tokio::test]
async fn refused_status_webhooks_are_retried_in_order() {
    let harness = start().await;
    harness
        .receiver
        .answers
        .lock()
        .unwrap()
        .extend([StatusCode::INTERNAL_SERVER_ERROR, StatusCode::UNAUTHORIZED]);
    let (_, body) = harness.send(text(CUSTOMER)).await;
    let wamid = body["messages"][0]["id"].as_str().unwrap();
    let statuses = harness.statuses(wamid, 5).await;
    assert_eq!(
        names(&statuses),
        ["sent", "sent", "sent", "delivered", "read"]
    );
}

#[tokio::test]
async fn missing_bearer_token_is_error_190() {
    let harness = start().await;
    let no_header = harness
        .http
        .post(harness.messages_url())
        .json(&text(CUSTOMER));
    let empty = harness
        .http
        .post(harness.messages_url())
        .header("authorization", "Bearer ");
    let basic = harness
        .http
        .post(harness.messages_url())
        .header("authorization", "Basic abc");
    for request in [no_header, empty, basic] {
        let (status, body) = json_of(request.json(&text(CUSTOMER)).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], 190);
        assert_eq!(body["error"]["type"], "OAuthException");
    }
    assert!(harness.sandbox.sent().is_empty());
}

#[tokio::test]
async fn validation_errors_have_meta_shape() {
    let harness = start().await;
    let (status, body) = harness
        .send(json!({ "messaging_product": "whatsapp", "to": CUSTOMER, "type": "text" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = &body["error"];
    assert_eq!(error["message"], "(#131008) Required parameter is missing");
    assert_eq!(error["type"], "OAuthException");
    assert_eq!(error["code"], 131008);
    assert_eq!(error["error_data"]["messaging_product"], "whatsapp");
    assert!(error["error_data"]["details"]
        .as_str()
        .unwrap()
        .starts_with("text: "));
    assert_eq!(error["fbtrace_id"].as_str().unwrap().len(), 27);

    let (status, body) = harness.send(text("not-a-number")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["message"],
        "(#131009) Parameter value is not valid"
    );
    assert!(body["error"]["error_data"]["details"]
        .as_str()
        .unwrap()
        .starts_with("to: "));

    let response = harness
        .http
        .post(harness.messages_url())
        .bearer_auth("test-token")
        .body("to=5511")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "(#100) Invalid parameter");
    assert!(harness.sandbox.sent().is_empty());
}

#[tokio::test]
async fn error_faults_apply_in_order_and_by_recipient() {
    let harness = start().await;
    let faults = json!({ "faults": [
        { "to": "5511988887777", "error_code": 131047 },
        { "http_status": 500 },
        { "error_code": 130429 },
        { "error_code": 131056 },
        { "error_code": 190 },
    ]});
    let (status, listed) = harness
        .sandbox_post("/sandbox/faults", faults.clone())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, faults);

    let expected = [
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            131000,
            "(#131000) Something went wrong",
        ),
        (
            StatusCode::TOO_MANY_REQUESTS,
            130429,
            "(#130429) Rate limit hit",
        ),
        (
            StatusCode::BAD_REQUEST,
            131056,
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        ),
        (
            StatusCode::UNAUTHORIZED,
            190,
            "(#190) Invalid OAuth access token - Cannot parse access token",
        ),
    ];
    for (http_status, code, message) in expected {
        let (status, body) = harness.send(text(CUSTOMER)).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (http_status, &json!(code))
        );
        assert_eq!(body["error"]["message"], message);
        assert_eq!(body["error"]["type"], "OAuthException");
    }
    let (status, _) = harness.send(text(CUSTOMER)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the 131047 fault only matches its recipient"
    );
    let (status, body) = harness.send(text("+55 11 98888-7777")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!(131047))
    );
    assert_eq!(
        harness.sandbox_get("/sandbox/faults").await,
        json!({ "faults": [] })
    );
    assert_eq!(harness.sandbox.sent().len(), 1);
}

#[tokio::test]
async fn delay_fault_slows_the_answer() {
    let harness = start().await;
    let faults = json!({ "faults": [{ "delay_ms": 400 }, { "delay_ms": 300 }] });
    harness.sandbox_post("/sandbox/faults", faults).await;
    let error = harness
        .post_send(&text(CUSTOMER))
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    let started = Instant::now();
    let (status, _) = harness.send(text(CUSTOMER)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn reset_fault_closes_the_connection_without_an_answer() {
    let harness = start().await;
    harness
        .sandbox_post("/sandbox/faults", json!({ "faults": [{ "reset": true }] }))
        .await;
    let error = harness.post_send(&text(CUSTOMER)).send().await.unwrap_err();
    assert!(!error.is_timeout() && error.status().is_none(), "{error:?}");
    assert!(harness.sandbox.sent().is_empty());
    let (status, _) = harness.send(text(CUSTOMER)).await;
    assert_eq!(status, StatusCode::OK, "the next send is served normally");
}

#[tokio::test]
async fn faults_can_be_listed_cleared_and_are_checked() {
    let harness = start().await;
    let faults = json!({ "faults": [{ "http_status": 503 }, { "reset": true }] });
    harness
        .sandbox_post("/sandbox/faults", faults.clone())
        .await;
    assert_eq!(harness.sandbox_get("/sandbox/faults").await, faults);
    let cleared = harness
        .http
        .delete(format!("{}/sandbox/faults", harness.base))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        harness.sandbox_get("/sandbox/faults").await,
        json!({ "faults": [] })
    );
    assert_eq!(harness.send(text(CUSTOMER)).await.0, StatusCode::OK);

    for invalid in [
        json!({ "faults": [{ "http_status": 500, "delay_ms": 10 }] }),
        json!({ "faults": [{ "to": CUSTOMER }] }),
        json!({ "faults": [{ "http_status": 200 }] }),
        json!({ "faults": [{ "reset": true, "typo": 1 }] }),
        json!({ "fault": [] }),
    ] {
        let (status, body) = harness
            .sandbox_post("/sandbox/faults", invalid.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{invalid}");
        assert_eq!(body["type"], "about:blank");
    }
    assert_eq!(
        harness.sandbox_get("/sandbox/faults").await,
        json!({ "faults": [] })
    );
}

#[tokio::test]
async fn inbound_text_is_posted_signed() {
    let harness = start().await;
    let inbound = json!({
        "phone_number_id": PHONE_NUMBER_ID, "from": "5511999990000", "name": "Maria", "text": "hi"
    });
    let (status, body) = harness.sandbox_post("/sandbox/inbound", inbound).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["webhook_status"], 200);
    let hooks = harness.hooks();
    assert_eq!(hooks.len(), 1);
    assert!(hooks[0].signed);
    let value = &hooks[0].body["entry"][0]["changes"][0]["value"];
    assert_eq!(value["metadata"]["phone_number_id"], PHONE_NUMBER_ID);
    assert_eq!(value["metadata"]["display_phone_number"], DISPLAY_NUMBER);
    assert_eq!(
        value["contacts"][0],
        json!({ "profile": { "name": "Maria" }, "wa_id": "5511999990000" })
    );
    let message = &value["messages"][0];
    assert_eq!(message["id"], body["wamid"]);
    assert_eq!(
        (&message["from"], &message["type"]),
        (&json!("5511999990000"), &json!("text"))
    );
    assert_eq!(message["text"]["body"], "hi");
}

#[tokio::test]
async fn inbound_replies_carry_their_context() {
    let harness = start().await;
    let inbound = json!({
        "phone_number_id": PHONE_NUMBER_ID, "from": "+5511999990000", "name": "Maria",
        "button_reply": { "id": "yes", "title": "Yes" }, "context": "wamid.BUSINESS"
    });
    let (status, _) = harness.sandbox_post("/sandbox/inbound", inbound).await;
    assert_eq!(status, StatusCode::OK);
    let list = json!({
        "phone_number_id": PHONE_NUMBER_ID, "from": "5511999990000",
        "list_reply": { "id": "row-2", "title": "Second" }
    });
    harness
        .receiver
        .answers
        .lock()
        .unwrap()
        .push_back(StatusCode::UNAUTHORIZED);
    let (status, body) = harness.sandbox_post("/sandbox/inbound", list).await;
    assert_eq!(
        (status, &body["webhook_status"]),
        (StatusCode::OK, &json!(401))
    );

    let hooks = harness.hooks();
    let button = &hooks[0].body["entry"][0]["changes"][0]["value"]["messages"][0];
    assert_eq!(button["from"], "5511999990000");
    assert_eq!(
        button["interactive"]["button_reply"],
        json!({ "id": "yes", "title": "Yes" })
    );
    assert_eq!(
        button["context"],
        json!({ "from": DISPLAY_NUMBER, "id": "wamid.BUSINESS" })
    );
    let list = &hooks[1].body["entry"][0]["changes"][0]["value"]["messages"][0];
    assert_eq!(list["interactive"]["type"], "list_reply");
    assert_eq!(list["interactive"]["list_reply"]["id"], "row-2");
    assert!(list.get("context").is_none());
}

#[tokio::test]
async fn inbound_rejects_bad_requests_with_problems() {
    let harness = start().await;
    for invalid in [
        json!({ "from": "5511999990000", "text": "hi" }),
        json!({ "phone_number_id": PHONE_NUMBER_ID, "from": "abc", "text": "hi" }),
        json!({ "phone_number_id": PHONE_NUMBER_ID, "from": "5511999990000" }),
        json!({ "phone_number_id": PHONE_NUMBER_ID, "from": "5511999990000", "text": "hi",
                "button_reply": { "id": "a", "title": "A" } }),
        json!({ "phone_number_id": PHONE_NUMBER_ID, "from": "5511999990000", "button_reply": { "id": "a" } }),
    ] {
        let response = harness
            .http
            .post(format!("{}/sandbox/inbound", harness.base))
            .json(&invalid)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{invalid}");
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Bad Request");
        assert_eq!(body["status"], 400);
        assert!(body["detail"].is_string());
    }
    assert!(harness.hooks().is_empty());
}

#[tokio::test]
async fn inbound_reports_an_unreachable_webhook_as_502() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", closed.local_addr().unwrap());
    drop(closed);
    let harness = start_with(Receiver::default(), url).await;
    let inbound =
        json!({ "phone_number_id": PHONE_NUMBER_ID, "from": "5511999990000", "text": "hi" });
    let (status, body) = harness.sandbox_post("/sandbox/inbound", inbound).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["status"], 502);
}
