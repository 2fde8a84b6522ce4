//! The send API and read API through a real server: auth, validation, the
//! 24-hour window, idempotency, and messages that go all the way through the
//! dispatcher to the Graph API sandbox and come back as status webhooks.

mod common;

use std::time::Duration;

use common::{assert_problem, eventually, System, API_KEY, PHONE_NUMBER_ID};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};
use zapfn_whatsapp::builders;

const WAIT: Duration = Duration::from_secs(30);
const CUSTOMER: &str = "5511988880001";

fn send_path() -> String {
    format!("/v1/{PHONE_NUMBER_ID}/messages")
}

/// A send body to `to`: `messaging_product` and `to` plus `fields`.
fn body_to(to: &str, fields: Value) -> Value {
    let mut body =
        json!({ "messaging_product": "whatsapp", "recipient_type": "individual", "to": to });
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    body
}

fn text_to(to: &str, text: &str) -> Value {
    body_to(to, json!({ "type": "text", "text": { "body": text } }))
}

fn db(system: &System) -> Connection {
    let path = system.dir.path().join("zapfn.db");
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn outbound_rows(system: &System) -> i64 {
    db(system)
        .query_row(
            "SELECT count(*) FROM messages WHERE direction = 'outbound'",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

/// Posts an inbound text from `wa_id` sent `age_seconds` ago; returns its wamid.
async fn customer_wrote_ago(system: &System, wa_id: &str, age_seconds: i64) -> String {
    let wamid = builders::new_wamid();
    let at = chrono::Utc::now().timestamp() - age_seconds;
    let message = builders::text_message(wa_id, &wamid, at, "order status 42");
    let body =
        builders::messages_notification(PHONE_NUMBER_ID, wa_id, "Test Customer", vec![message]);
    assert_eq!(system.post_webhook(body.to_string().as_bytes()).await, 200);
    wamid
}

/// A body the sandbox received, without the `biz_opaque_callback_data` zapfn adds to
/// every send of message `id` (asserted here).
fn as_sent(body: &Value, id: &str) -> Value {
    let mut body = body.clone();
    let callback = body
        .as_object_mut()
        .unwrap()
        .remove("biz_opaque_callback_data");
    match callback {
        Some(callback) if callback == format!("zapfn:{id}").as_str() => body,
        other => json!({ "unexpected_callback_data": other }),
    }
}

/// Asserts a Meta-style error (`{"error": {code, error_data.details, field}}`) naming `field`.
fn assert_meta_error(body: &Value, code: i64, field: &str) {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert_eq!(error["field"], field, "{body}");
    assert_eq!(error["type"], "OAuthException", "{body}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("(#{code})")),
        "{body}"
    );
    let details = error["error_data"]["details"].as_str().unwrap();
    assert!(
        details.contains(field),
        "details do not name {field}: {body}"
    );
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn every_v1_route_refuses_a_missing_wrong_or_empty_key() {
    let system = common::start(&[]).await;
    let valid = text_to(CUSTOMER, "order status 42");
    let routes = [
        ("POST", send_path()),
        ("GET", "/v1/messages/msg_unknown".to_owned()),
        ("GET", "/v1/conversations".to_owned()),
        ("GET", "/v1/conversations/conv_unknown".to_owned()),
        ("GET", "/v1/conversations/conv_unknown/messages".to_owned()),
    ];
    let credentials = [
        None,
        Some("Bearer wrong-key"),
        Some("Bearer "),
        Some("Bearer"),
        Some(API_KEY),
    ];
    for (method, path) in &routes {
        for credential in credentials {
            let mut request = match *method {
                "POST" => system.http.post(system.url(path)).json(&valid),
                _ => system.http.get(system.url(path)),
            };
            if let Some(credential) = credential {
                request = request.header(AUTHORIZATION, credential);
            }
            let response = request.send().await.unwrap();
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(
                challenge.as_deref(),
                Some("Bearer"),
                "{method} {path} with {credential:?}"
            );
            assert_problem(response, 401).await;
        }
        let right = match *method {
            "POST" => system.http.post(system.url(path)).json(&valid),
            _ => system.http.get(system.url(path)),
        };
        let status = right
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_ne!(status, 401, "{method} {path} refused the right key");
    }
    assert_eq!(outbound_rows(&system), 0);
}

// ---------------------------------------------------------------- sending every type

#[tokio::test]
async fn every_message_type_is_queued_then_sent_and_read_through_the_sandbox() {
    let system = common::start(&[]).await;
    let inbound = system.customer_writes(CUSTOMER, "order status 42").await;
    let to = |fields: Value| body_to(CUSTOMER, fields);
    // Media go by Meta id here, so each body reaches the sandbox as given; media by
    // link are uploaded first and sent by id (cli/tests/media_fetch.rs).
    let cases: Vec<(&str, Value)> = vec![
        (
            "text",
            to(
                json!({"type": "text", "text": {"body": "Your order 42 ships today", "preview_url": false}}),
            ),
        ),
        (
            "image",
            to(json!({"type": "image", "image": {"id": "1480000000000011", "caption": "Receipt"}})),
        ),
        (
            "image",
            to(json!({"type": "image", "image": {"id": "1480000000000001"}})),
        ),
        (
            "video",
            to(json!({"type": "video", "video": {"id": "1480000000000012", "caption": "How to"}})),
        ),
        (
            "audio",
            to(json!({"type": "audio", "audio": {"id": "1480000000000003"}})),
        ),
        (
            "document",
            to(json!({"type": "document", "document": {
                "id": "1480000000000015", "filename": "invoice-42.pdf", "caption": "Invoice"}})),
        ),
        (
            "sticker",
            to(json!({"type": "sticker", "sticker": {"id": "1480000000000006"}})),
        ),
        (
            "location",
            to(json!({"type": "location", "location": {
                "latitude": -23.5613991, "longitude": -46.6565712, "name": "MASP", "address": "Av. Paulista, 1578"}})),
        ),
        (
            "contacts",
            to(json!({"type": "contacts", "contacts": [{
                "name": {"formatted_name": "Ana Pereira", "first_name": "Ana"},
                "phones": [{"phone": "+5511988887777", "type": "CELL", "wa_id": "5511988887777"}],
                "emails": [{"email": "ana@example.com", "type": "WORK"}]}]})),
        ),
        (
            "interactive",
            to(json!({"type": "interactive", "interactive": {
                "type": "button", "body": {"text": "Confirm your appointment?"},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "no", "title": "No"}}]}}})),
        ),
        (
            "interactive",
            to(json!({"type": "interactive", "interactive": {
                "type": "list", "header": {"type": "text", "text": "Slots"}, "body": {"text": "Pick a time"},
                "footer": {"text": "zapfn"},
                "action": {"button": "See slots", "sections": [
                    {"title": "Monday", "rows": [{"id": "mon_10", "title": "10:00", "description": "45 min"}]},
                    {"title": "Tuesday", "rows": [{"id": "tue_14", "title": "14:00"}]}]}}})),
        ),
        (
            "interactive",
            to(json!({"type": "interactive", "interactive": {
                "type": "cta_url", "body": {"text": "Track your order"},
                "action": {"name": "cta_url", "parameters": {"display_text": "Track", "url": "https://example.com/t/42"}}}})),
        ),
        (
            "interactive",
            to(json!({"type": "interactive", "interactive": {
                "type": "flow", "body": {"text": "Book a visit"},
                "action": {"name": "flow", "parameters": {
                    "flow_message_version": "3", "flow_token": "tok-42", "flow_id": "1234567890", "flow_cta": "Book",
                    "flow_action": "navigate", "flow_action_payload": {"screen": "WELCOME", "data": {"order": "42"}}}}}})),
        ),
        (
            "template",
            to(json!({"type": "template", "template": {
                "name": "order_update", "language": {"code": "en_US"},
                "components": [
                    {"type": "header", "parameters": [{"type": "image", "image": {"id": "1480000000000021"}}]},
                    {"type": "body", "parameters": [
                        {"type": "text", "text": "42"},
                        {"type": "currency", "currency": {"fallback_value": "$10", "code": "USD", "amount_1000": 10000}}]},
                    {"type": "button", "sub_type": "quick_reply", "index": "0",
                     "parameters": [{"type": "payload", "payload": "TRACK_42"}]}]}})),
        ),
        (
            "reaction",
            to(json!({"type": "reaction", "reaction": {"message_id": inbound, "emoji": "👍"}})),
        ),
        (
            "text",
            to(
                json!({"context": {"message_id": inbound}, "type": "text", "text": {"body": "Replying to you"}}),
            ),
        ),
        (
            "read",
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound,
                   "typing_indicator": {"type": "text"}}),
        ),
    ];
    let mut queued = Vec::new();
    for (kind, body) in &cases {
        let (status, answer) = system.post(&send_path(), body).await;
        assert_eq!(status, 202, "{kind}: {answer}");
        let id = answer["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("msg"), "{answer}");
        assert_eq!(answer["status"], "queued", "{answer}");
        assert_eq!(answer["messages"][0]["id"], id.as_str());
        assert_eq!(answer["messaging_product"], "whatsapp");
        if *kind == "read" {
            assert_eq!(answer["contacts"], json!([]));
        } else {
            assert_eq!(answer["contacts"][0]["wa_id"], CUSTOMER, "{answer}");
        }
        queued.push(id);
    }
    let ids: std::collections::HashSet<&String> = queued.iter().collect();
    assert_eq!(ids.len(), cases.len(), "ids are not unique");

    let sandbox = system.running.sandbox.as_ref().unwrap();
    let sent = eventually(WAIT, "every send to reach the sandbox", || async {
        let sent = sandbox.sent();
        (sent.len() >= cases.len()).then_some(sent)
    })
    .await;
    assert_eq!(sent.len(), cases.len(), "the sandbox got extra sends");
    for ((kind, body), id) in cases.iter().zip(&queued) {
        let got = sent
            .iter()
            .find(|s| &as_sent(&s.body, id) == body)
            .unwrap_or_else(|| panic!("{kind} {id} never reached the sandbox as sent: {sent:#?}"));
        assert_eq!(got.message_type, *kind);
        assert_eq!(got.phone_number_id, PHONE_NUMBER_ID);
        if *kind == "read" {
            let view = system.wait_status(id, "accepted").await;
            assert_eq!(view["type"], "read");
            assert!(view["wamid"].is_null(), "{view}");
            continue;
        }
        let view = system.wait_status(id, "read").await;
        assert_eq!(view["direction"], "outbound", "{kind}");
        assert_eq!(view["type"], *kind);
        assert_eq!(view["to"], CUSTOMER);
        assert_eq!(view["wamid"].as_str(), got.wamid.as_deref(), "{kind}");
        assert_eq!(&view["raw"], body, "{kind}");
        let history = common::history(&view);
        assert_eq!(
            history,
            ["queued", "accepted", "sent", "delivered", "read"],
            "{kind}"
        );
    }
    let reply = system.message(&queued[15]).await.unwrap();
    assert_eq!(reply["context"]["id"], inbound.as_str());
    assert_eq!(reply["text"], "Replying to you");
    let reaction = system.message(&queued[14]).await.unwrap();
    assert_eq!(reaction["context"]["id"], inbound.as_str());
}

// ---------------------------------------------------------------- validation

#[tokio::test]
async fn invalid_bodies_get_meta_style_errors_naming_the_field() {
    let system = common::start(&[]).await;
    system.customer_writes(CUSTOMER, "order status 42").await;
    let to = |fields: Value| body_to(CUSTOMER, fields);
    let button = |title: &str| json!({"type": "reply", "reply": {"id": title, "title": title}});
    let cases: Vec<(Value, i64, &str)> = vec![
        (to(json!({"type": "text", "text": {}})), 131008, "text.body"),
        (
            to(json!({"type": "text", "text": {"body": ""}})),
            131009,
            "text.body",
        ),
        (
            to(json!({"type": "text", "text": {"body": "x".repeat(4097)}})),
            100,
            "text.body",
        ),
        (
            body_to(
                "not-a-phone",
                json!({"type": "text", "text": {"body": "hello"}}),
            ),
            131009,
            "to",
        ),
        (to(json!({"type": "poll", "poll": {}})), 100, "type"),
        (
            {
                let mut body = text_to(CUSTOMER, "hello");
                body["messaging_product"] = json!("sms");
                body
            },
            131009,
            "messaging_product",
        ),
        (
            to(json!({"type": "image", "image": {"id": "1", "link": "https://example.com/a.jpg"}})),
            131009,
            "image",
        ),
        (
            to(json!({"type": "image", "image": {"link": "ftp://example.com/a.jpg"}})),
            131009,
            "image.link",
        ),
        (
            to(json!({"type": "location", "location": {"latitude": 91, "longitude": 0}})),
            131009,
            "location.latitude",
        ),
        (
            to(
                json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "Pick"},
                "action": {"buttons": [button("a"), button("b"), button("c"), button("d")]}}}),
            ),
            131009,
            "interactive.action.buttons",
        ),
        (
            to(
                json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "Pick"},
                "action": {"buttons": [button("this title is far too long")]}}}),
            ),
            131009,
            "interactive.action.buttons[0].reply.title",
        ),
        (
            to(
                json!({"type": "template", "template": {"name": "Order_Update", "language": {"code": "en_US"}}}),
            ),
            131009,
            "template.name",
        ),
        (
            to(json!({"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "ok"}})),
            131009,
            "reaction.emoji",
        ),
    ];
    for (body, code, field) in &cases {
        let (status, answer) = system.post(&send_path(), body).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_meta_error(&answer, *code, field);
    }
    assert_eq!(outbound_rows(&system), 0, "an invalid body was queued");
}

#[tokio::test]
async fn non_json_body_is_400() {
    let system = common::start(&[]).await;
    for body in [
        "{\"messaging_product\": \"whatsapp\", ",
        "to=5511988880001&text=hi",
        "",
    ] {
        let response = system
            .http
            .post(system.url(&send_path()))
            .bearer_auth(API_KEY)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{body:?}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], 100, "{answer}");
        assert_eq!(answer["error"]["field"], "body", "{answer}");
    }
    assert_eq!(outbound_rows(&system), 0);
}

#[tokio::test]
async fn non_numeric_phone_number_id_is_400() {
    let system = common::start(&[]).await;
    system.customer_writes(CUSTOMER, "order status 42").await;
    for id in ["abc", "10654035224292x", "+106540352242922"] {
        let path = format!("/v1/{}/messages", id.replace('+', "%2B"));
        let (status, answer) = system
            .post(&path, &text_to(CUSTOMER, "order status 42"))
            .await;
        assert_eq!(status, 400, "{id}: {answer}");
        assert_meta_error(&answer, 131009, "phone_number_id");
    }
    assert_eq!(outbound_rows(&system), 0);
}

// ---------------------------------------------------------------- the 24-hour window

#[tokio::test]
async fn free_form_text_to_a_number_that_never_wrote_is_422_131047() {
    let system = common::start(&[]).await;
    let (status, answer) = system
        .post(&send_path(), &text_to("5511977770000", "order status 42"))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_meta_error(&answer, 131047, "to");
    assert!(
        answer["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("template"),
        "{answer}"
    );
    assert_eq!(outbound_rows(&system), 0);
}

#[tokio::test]
async fn template_to_a_number_that_never_wrote_is_accepted() {
    let system = common::start(&[]).await;
    let template = body_to(
        "5511977770000",
        json!({"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}),
    );
    let (status, answer) = system.post(&send_path(), &template).await;
    assert_eq!(status, 202, "{answer}");
    system
        .wait_status(answer["id"].as_str().unwrap(), "read")
        .await;
}

#[tokio::test]
async fn text_after_the_customer_wrote_is_accepted_however_the_number_is_written() {
    let system = common::start(&[]).await;
    system.customer_writes(CUSTOMER, "order status 42").await;
    let (status, answer) = system
        .post(&send_path(), &text_to(CUSTOMER, "It ships today"))
        .await;
    assert_eq!(status, 202, "{answer}");
    let first = system
        .wait_status(answer["id"].as_str().unwrap(), "read")
        .await;
    assert!(first["conversation_id"].is_string(), "{first}");
    // Meta accepts '+', spaces, hyphens and parentheses, and echoes `to` as written.
    for written in [format!("+{CUSTOMER}"), "+55 (11) 98888-0001".to_owned()] {
        let body = text_to(&written, "Tracking: 42");
        let (status, answer) = system.post(&send_path(), &body).await;
        assert_eq!(status, 202, "{answer}");
        let contact = json!([{ "input": written, "wa_id": CUSTOMER }]);
        assert_eq!(answer["contacts"], contact, "{answer}");
        let view = system
            .wait_status(answer["id"].as_str().unwrap(), "read")
            .await;
        assert_eq!(view["to"], CUSTOMER, "{view}");
        assert_eq!(view["conversation_id"], first["conversation_id"], "{view}");
        assert_eq!(view["raw"], body, "the body goes to Meta as written");
    }
}

#[tokio::test]
async fn text_25_hours_after_the_customer_wrote_is_422_but_23_hours_is_accepted() {
    let system = common::start(&[]).await;
    customer_wrote_ago(&system, "5511966660001", 25 * 3600).await;
    customer_wrote_ago(&system, "5511966660002", 23 * 3600).await;
    let (status, answer) = system
        .post(&send_path(), &text_to("5511966660001", "order status 42"))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_meta_error(&answer, 131047, "to");
    let details = answer["error"]["error_data"]["details"].as_str().unwrap();
    assert!(
        details.contains("24 hours") && details.contains("template"),
        "{answer}"
    );
    let (status, answer) = system
        .post(&send_path(), &text_to("5511966660002", "order status 42"))
        .await;
    assert_eq!(status, 202, "{answer}");
}

/// Holds the SQLite write lock of `system` from another connection, as another
/// process could: webhooks are still acknowledged (journaled) but not stored.
fn lock_writes(system: &System) -> Connection {
    let lock = Connection::open(system.dir.path().join("zapfn.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    lock
}

/// A customer's text acknowledged with 200; not waiting for it to be stored.
async fn customer_writes_unstored(system: &System, wa_id: &str) {
    let message = builders::text_message(
        wa_id,
        &builders::new_wamid(),
        chrono::Utc::now().timestamp(),
        "where is my order?",
    );
    let body =
        builders::messages_notification(PHONE_NUMBER_ID, wa_id, "Test Customer", vec![message]);
    let status = zapfn_sandbox::post_signed(
        &system.http,
        &system.url("/webhook"),
        common::SECRET.as_bytes(),
        body.to_string().as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_reply_to_a_message_acknowledged_but_not_stored_yet_waits_for_it() {
    let system = common::start(&[]).await;
    let lock = lock_writes(&system);
    customer_writes_unstored(&system, "5511966660003").await;
    let unlock = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(4));
        lock.execute_batch("ROLLBACK").unwrap();
    });
    let asked = std::time::Instant::now();
    let (status, answer) = system
        .post(&send_path(), &text_to("5511966660003", "It ships today"))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert!(
        asked.elapsed() >= Duration::from_secs(3),
        "answered after {:?}, before the customer's message could be stored",
        asked.elapsed()
    );
    unlock.join().unwrap();
}

#[tokio::test]
async fn a_reply_whose_window_cannot_be_known_yet_is_503_not_422() {
    let system = common::start(&[]).await;
    let lock = lock_writes(&system);
    customer_writes_unstored(&system, "5511966660004").await;
    let response = system
        .http
        .post(system.url(&send_path()))
        .bearer_auth(API_KEY)
        .json(&text_to("5511966660004", "It ships today"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    let answer: Value = response.json().await.unwrap();
    assert_meta_error(&answer, 2, "to");
    assert_eq!(outbound_rows(&system), 0, "nothing queued");

    lock.execute_batch("ROLLBACK").unwrap();
    let (status, answer) = system
        .post(&send_path(), &text_to("5511966660004", "It ships today"))
        .await;
    assert_eq!(status, 202, "{answer}");
}

// ---------------------------------------------------------------- idempotency

#[tokio::test]
async fn repeated_idempotency_key_returns_the_first_message_and_sends_once() {
    let system = common::start(&[]).await;
    system.customer_writes(CUSTOMER, "order status 42").await;
    let body = text_to(CUSTOMER, "Your order 42 ships today");
    let send = || {
        system
            .http
            .post(system.url(&send_path()))
            .bearer_auth(API_KEY)
            .header("Idempotency-Key", "order-42-shipped")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status().as_u16(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status().as_u16(), 202);
    assert_eq!(
        second
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap().to_owned())
            .as_deref(),
        Some("true")
    );
    let second: Value = second.json().await.unwrap();
    let id = first["id"].as_str().unwrap();
    assert_eq!(second["id"], id);
    system.wait_status(id, "read").await;
    let sandbox = system.running.sandbox.as_ref().unwrap();
    assert_eq!(
        sandbox
            .sent()
            .iter()
            .filter(|s| as_sent(&s.body, id) == body)
            .count(),
        1
    );
    assert_eq!(outbound_rows(&system), 1);
    // A third replay after delivery still answers the same message.
    let third: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(third["id"], id);
}

// ---------------------------------------------------------------- read API

#[tokio::test]
async fn a_sent_message_is_readable_by_zapfn_id_and_by_wamid() {
    let system = common::start(&[]).await;
    system.customer_writes(CUSTOMER, "order status 42").await;
    let id = system
        .send_text(CUSTOMER, "Your order 42 ships today")
        .await;
    let by_id = system.wait_status(&id, "read").await;
    assert_eq!(by_id["id"], id.as_str());
    assert_eq!(by_id["direction"], "outbound");
    assert_eq!(by_id["type"], "text");
    assert_eq!(by_id["text"], "Your order 42 ships today");
    assert_eq!(by_id["to"], CUSTOMER);
    assert_eq!(by_id["phone_number_id"], PHONE_NUMBER_ID);
    let wamid = by_id["wamid"].as_str().expect("a wamid once sent");
    let by_wamid = system.message(wamid).await.unwrap();
    assert_eq!(by_wamid, by_id);
}

#[tokio::test]
async fn conversations_are_found_by_phone_number_id_and_wa_id() {
    let system = common::start(&[]).await;
    system
        .customer_writes("5511977770001", "order status 42")
        .await;
    system
        .customer_writes("5511977770002", "order status 43")
        .await;
    let (status, all) = system
        .get(&format!(
            "/v1/conversations?phone_number_id={PHONE_NUMBER_ID}"
        ))
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");
    for wa_id in ["5511977770001", "%2B5511977770001"] {
        let (status, page) = system
            .get(&format!(
                "/v1/conversations?phone_number_id={PHONE_NUMBER_ID}&wa_id={wa_id}"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{wa_id}: {page}");
        assert_eq!(items[0]["wa_id"], "5511977770001");
        assert_eq!(items[0]["phone_number_id"], PHONE_NUMBER_ID);
        assert_eq!(items[0]["contact_name"], "Test Customer");
        let last_inbound = items[0]["last_inbound_at"].as_i64().unwrap();
        assert!(
            (chrono::Utc::now().timestamp() - last_inbound).abs() < 60,
            "{page}"
        );
        assert!(page["next_cursor"].is_null());
        let id = items[0]["id"].as_str().unwrap();
        let (status, one) = system.get(&format!("/v1/conversations/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(one, items[0]);
    }
    let (status, other) = system
        .get("/v1/conversations?phone_number_id=106540352242999")
        .await;
    assert_eq!(status, 200);
    assert_eq!(other["items"], json!([]));
}

#[tokio::test]
async fn conversations_page_with_a_limit() {
    let system = common::start(&[]).await;
    for wa_id in ["5511977770001", "5511977770002", "5511977770003"] {
        system.customer_writes(wa_id, "order status 42").await;
    }
    let (status, first) = system.get("/v1/conversations?limit=2").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 2, "{first}");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (status, second) = system
        .get(&format!("/v1/conversations?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["items"].as_array().unwrap().len(), 1, "{second}");
    assert!(second["next_cursor"].is_null());
    let mut seen: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|c| c["wa_id"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, ["5511977770001", "5511977770002", "5511977770003"]);
}

#[tokio::test]
async fn conversation_messages_come_newest_first_in_cursor_pages() {
    let system = common::start(&[]).await;
    let mut wamids = Vec::new();
    for age in [50, 40, 30, 20, 10] {
        wamids.push(customer_wrote_ago(&system, CUSTOMER, age).await);
    }
    let (_, page) = system
        .get(&format!(
            "/v1/conversations?phone_number_id={PHONE_NUMBER_ID}&wa_id={CUSTOMER}"
        ))
        .await;
    let conversation = page["items"][0]["id"].as_str().unwrap().to_owned();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("limit=2&cursor={cursor}"),
            None => "limit=2".to_owned(),
        };
        let (status, page) = system
            .get(&format!(
                "/v1/conversations/{conversation}/messages?{query}"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        let items: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["wamid"].as_str().unwrap().to_owned())
            .collect();
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["conversation_id"], conversation.as_str());
        }
        pages.push(items);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages.len() < 5, "pagination does not end");
    }
    let newest_first: Vec<String> = wamids.iter().rev().cloned().collect();
    assert_eq!(
        pages,
        [
            newest_first[0..2].to_vec(),
            newest_first[2..4].to_vec(),
            newest_first[4..5].to_vec()
        ]
    );
}

#[tokio::test]
async fn bad_limits_and_cursors_are_400_problems() {
    let system = common::start(&[]).await;
    system.customer_writes(CUSTOMER, "order status 42").await;
    let (_, page) = system.get("/v1/conversations").await;
    let conversation = page["items"][0]["id"].as_str().unwrap().to_owned();
    let paths = [
        format!("/v1/conversations/{conversation}/messages?limit=0"),
        format!("/v1/conversations/{conversation}/messages?limit=501"),
        format!("/v1/conversations/{conversation}/messages?limit=abc"),
        format!("/v1/conversations/{conversation}/messages?limit=-1"),
        format!("/v1/conversations/{conversation}/messages?cursor=not-a-cursor"),
        "/v1/conversations?limit=0".to_owned(),
        "/v1/conversations?limit=ten".to_owned(),
        "/v1/conversations?cursor=nope".to_owned(),
    ];
    for path in paths {
        let response = system
            .http
            .get(system.url(&path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{path}");
        let problem = assert_problem(response, 400).await;
        if path.contains("limit=") {
            assert_eq!(problem["field"], "limit", "{path}: {problem}");
        }
    }
}

#[tokio::test]
async fn unknown_ids_are_404_problems() {
    let system = common::start(&[]).await;
    for path in [
        "/v1/messages/msg_doesnotexist",
        "/v1/messages/wamid.DOESNOTEXIST",
        "/v1/conversations/conv_doesnotexist",
        "/v1/conversations/conv_doesnotexist/messages",
    ] {
        let response = system
            .http
            .get(system.url(path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 404).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("doesnotexist")
                || problem["detail"].as_str().unwrap().contains("DOESNOTEXIST"),
            "{path}: {problem}"
        );
    }
}

#[tokio::test]
async fn an_oversized_send_body_is_413_in_metas_shape() {
    let system = common::start(&[]).await;
    let huge = "x".repeat(300 * 1024);
    let request = json!({ "messaging_product": "whatsapp", "to": "5511900000009", "type": "text", "text": { "body": huge } });
    let (status, body) = system
        .post(&format!("/v1/{PHONE_NUMBER_ID}/messages"), &request)
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], 100);
    assert_eq!(body["error"]["field"], "body");
}
