//! `POST /v1/{phone_number_id}/messages` to a number written the ways Meta accepts
//! (`+`, spaces, hyphens, parentheses): one customer, one window, one stored form,
//! and `contacts[].input` echoing the number as written.

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use zapfn_runtime::{auth, Config, Context};
use zapfn_whatsapp::builders::{messages_notification, new_wamid, text_message};

const PHONE_NUMBER_ID: &str = "106540352242922";
const KEY: &str = "recipient-key";
const CUSTOMER: &str = "5511999990000";

async fn context(dir: &std::path::Path) -> Context {
    let data_dir = dir.to_str().unwrap().to_owned();
    let config = Config::from_lookup(|name| match name {
        "ZAPFN_DATA_DIR" => Some(data_dir.clone()),
        "ZAPFN_API_KEY" => Some(KEY.to_owned()),
        _ => None,
    })
    .unwrap();
    let context = Context::open(config).unwrap();
    auth::store_bootstrap_key(&context).await.unwrap();
    context
}

/// Stores a text the customer sent just now, which opens the 24-hour window.
async fn customer_writes(context: &Context) {
    let now = chrono::Utc::now().timestamp();
    let message = text_message(CUSTOMER, &new_wamid(), now, "order status 42");
    let body = messages_notification(PHONE_NUMBER_ID, CUSTOMER, "Ana", vec![message]);
    let notification = zapfn_whatsapp::webhook::parse(body.to_string().as_bytes()).unwrap();
    context.store.ingest(notification).await.unwrap();
}

async fn send(context: &Context, body: &Value) -> (StatusCode, Value) {
    let request = Request::post(format!("/v1/{PHONE_NUMBER_ID}/messages"))
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = zapfn_send::router(context.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_formatted_number_is_the_customer_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let context = context(dir.path()).await;
    customer_writes(&context).await;
    for written in ["+55 (11) 99999-0000", "+5511999990000", "55 11 9999-90000"] {
        let body = json!({"messaging_product": "whatsapp", "to": written,
            "type": "text", "text": {"body": "It ships today"}});
        let (status, answer) = send(&context, &body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{written}: {answer}");
        let contacts = json!([{"input": written, "wa_id": CUSTOMER}]);
        assert_eq!(answer["contacts"], contacts, "{written}: {answer}");
        let id = answer["id"].as_str().unwrap();
        let view = context.store.message(id).await.unwrap().unwrap();
        assert_eq!(view.to.as_deref(), Some(CUSTOMER), "{written}");
        assert_eq!(view.raw.as_ref(), Some(&body), "sent to Meta as written");
    }
}

#[tokio::test]
async fn a_business_scoped_user_id_is_the_customer_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let context = context(dir.path()).await;
    let user_id = "US.13491208655302741918";
    let body = json!({"messaging_product": "whatsapp", "recipient": user_id,
        "type": "text", "text": {"body": "Hi Joana"}});
    let (status, refused) = send(&context, &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // The customer writes with a username only: the window opens under the user id.
    let now = chrono::Utc::now().timestamp();
    let mut message = text_message(user_id, &new_wamid(), now, "oi");
    let message = message.as_object_mut().unwrap();
    let from = message.remove("from").unwrap();
    message.insert("from_user_id".into(), from);
    let notification =
        messages_notification(PHONE_NUMBER_ID, user_id, "Joana", vec![json!(message)]);
    let notification = zapfn_whatsapp::webhook::parse(notification.to_string().as_bytes()).unwrap();
    assert_eq!(notification.messages[0].from, user_id);
    context.store.ingest(notification).await.unwrap();

    let (status, answer) = send(&context, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        answer["contacts"],
        json!([{"input": user_id, "user_id": user_id}])
    );
    let view = context
        .store
        .message(answer["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.to.as_deref(), Some(user_id));
}
