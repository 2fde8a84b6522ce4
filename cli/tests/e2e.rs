//! The whole loop on the embedded default: a customer writes, the text function
//! auto-replies through the send queue, the dispatcher sends to the Graph API
//! sandbox, and the sandbox's signed status webhooks bring the reply to `read`.

mod common;

use std::time::Duration;

use common::{eventually, PHONE_NUMBER_ID};
use serde_json::Value;

async fn outbound_messages(system: &common::System, wa_id: &str) -> Vec<Value> {
    let (_, conversations) = system
        .get(&format!(
            "/v1/conversations?phone_number_id={PHONE_NUMBER_ID}&wa_id={wa_id}"
        ))
        .await;
    let Some(id) = conversations["items"][0]["id"].as_str() else {
        return Vec::new();
    };
    let (_, page) = system
        .get(&format!("/v1/conversations/{id}/messages"))
        .await;
    page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["direction"] == "outbound")
        .cloned()
        .collect()
}

#[tokio::test]
async fn inbound_hi_gets_a_menu_that_ends_read() {
    let system = common::start(&[]).await;
    let inbound = system
        .customer_writes("5511988887777", "Oi, tudo bem?")
        .await;

    let reply = eventually(
        Duration::from_secs(10),
        "the auto-reply to reach read",
        || async {
            let replies = outbound_messages(&system, "5511988887777").await;
            replies.first().filter(|m| m["status"] == "read").cloned()
        },
    )
    .await;

    assert_eq!(reply["type"], "interactive");
    assert!(reply["wamid"].as_str().unwrap().starts_with("wamid."));
    let history = common::history(&reply);
    assert_eq!(history, ["queued", "accepted", "sent", "delivered", "read"]);

    let sent = system.running.sandbox.as_ref().unwrap().sent();
    assert_eq!(sent.len(), 1, "exactly one send reached the Graph API");
    assert_eq!(sent[0].to.as_deref(), Some("5511988887777"));
    assert_eq!(sent[0].body["interactive"]["type"], "button");
    assert_eq!(sent[0].wamid.as_deref(), reply["wamid"].as_str());

    let inbound = system.message(&inbound).await.unwrap();
    assert_eq!(inbound["direction"], "inbound");
    assert_eq!(inbound["text"], "Oi, tudo bem?");
}

#[tokio::test]
async fn button_reply_follows_the_menu_rule() {
    let system = common::start(&[]).await;
    let (wamid, status) = zapfn::replay::simulate(
        &system.url("/webhook"),
        common::SECRET,
        PHONE_NUMBER_ID,
        "5511977776666",
        "Ana",
        zapfn::replay::CustomerInput::ButtonReply {
            id: "menu_hours".into(),
            title: "Opening hours".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(status, 200);

    let reply = eventually(Duration::from_secs(10), "the hours reply", || async {
        outbound_messages(&system, "5511977776666")
            .await
            .into_iter()
            .find(|m| m["status"] == "read")
    })
    .await;
    assert_eq!(reply["text"], "We are open Monday to Friday, 9:00–18:00.");
    let inbound = system.message(&wamid).await.unwrap();
    assert_eq!(inbound["type"], "interactive");
    assert_eq!(inbound["text"], "Opening hours");
}

#[tokio::test]
async fn redelivered_inbound_is_answered_once() {
    let system = common::start(&[]).await;
    let wamid = zapfn_whatsapp::builders::new_wamid();
    let body = zapfn_whatsapp::builders::messages_notification(
        PHONE_NUMBER_ID,
        "5511966665555",
        "Bia",
        vec![zapfn_whatsapp::builders::text_message(
            "5511966665555",
            &wamid,
            chrono::Utc::now().timestamp(),
            "menu",
        )],
    )
    .to_string();
    for _ in 0..5 {
        assert_eq!(system.post_webhook(body.as_bytes()).await, 200);
    }
    eventually(Duration::from_secs(10), "the reply to be read", || async {
        outbound_messages(&system, "5511966665555")
            .await
            .first()
            .filter(|m| m["status"] == "read")
            .cloned()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(outbound_messages(&system, "5511966665555").await.len(), 1);
    assert_eq!(system.running.sandbox.as_ref().unwrap().sent().len(), 1);
}

#[tokio::test]
async fn a_customer_with_only_a_user_id_gets_a_reply_through_recipient() {
    let system = common::start(&[]).await;
    let user_id = "BR.55555555550000000042";
    let now = chrono::Utc::now().timestamp();
    let body = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"user_id": user_id, "profile": {"name": "Joana", "username": "@joana"}}],
            "messages": [{"from_user_id": user_id, "id": zapfn_whatsapp::builders::new_wamid(),
                          "timestamp": now.to_string(), "type": "text", "text": {"body": "menu"}}],
        }}]}],
    });
    assert_eq!(system.post_webhook(body.to_string().as_bytes()).await, 200);

    let reply = eventually(Duration::from_secs(10), "the reply to be read", || async {
        outbound_messages(&system, user_id)
            .await
            .first()
            .filter(|m| m["status"] == "read")
            .cloned()
    })
    .await;
    assert_eq!(reply["to"], user_id);
    let sent = system.running.sandbox.as_ref().unwrap().sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["recipient"], user_id);
    assert!(
        sent[0].body.get("to").is_none(),
        "no phone number to send to"
    );
}

#[tokio::test]
async fn a_message_written_in_a_group_is_answered_in_the_group() {
    let system = common::start(&[]).await;
    let group = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD";
    let participant = "5511955554444";
    let mut message = zapfn_whatsapp::builders::text_message(
        participant,
        &zapfn_whatsapp::builders::new_wamid(),
        chrono::Utc::now().timestamp(),
        "menu",
    );
    message["group_id"] = group.into();
    let body = zapfn_whatsapp::builders::messages_notification(
        PHONE_NUMBER_ID,
        participant,
        "Ana",
        vec![message],
    );
    assert_eq!(system.post_webhook(body.to_string().as_bytes()).await, 200);

    let reply = eventually(
        Duration::from_secs(10),
        "the group's reply to be read",
        || async {
            outbound_messages(&system, group)
                .await
                .first()
                .filter(|m| m["status"] == "read")
                .cloned()
        },
    )
    .await;
    assert_eq!(reply["to"], group);
    let sent = system.running.sandbox.as_ref().unwrap().sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["recipient_type"], "group");
    assert_eq!(sent[0].body["to"], group);
    assert!(
        outbound_messages(&system, participant).await.is_empty(),
        "nothing sent 1:1"
    );
}

#[tokio::test]
async fn unknown_recipient_fails_with_metas_reason() {
    let system = common::start(&[]).await;
    system
        .customer_writes("9911122223333", "order status 42")
        .await;
    let id = system
        .send_text("9911122223333", "your order shipped")
        .await;
    let message = eventually(Duration::from_secs(10), "the failed status", || async {
        system
            .message(&id)
            .await
            .filter(|m| m["status"] == "failed")
    })
    .await;
    assert_eq!(message["errors"][0]["code"], 131026);
    let history = common::history(&message);
    assert!(history.ends_with(&["sent", "failed"]), "{history:?}");
}

#[tokio::test]
async fn live_mode_sends_to_the_configured_graph_api_with_the_token() {
    // A separate fake plays Meta: zapfn must call WA_GRAPH_URL and mount no sandbox
    // of its own. (This fake's status webhooks go nowhere; statuses are tested elsewhere.)
    let graph = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let graph_url = format!("http://{}/graph", graph.local_addr().unwrap());
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let meta = zapfn_sandbox::Sandbox::new(zapfn_sandbox::SandboxConfig::new(
        common::SECRET,
        format!("http://127.0.0.1:{nowhere}/webhook"),
    ));
    let router = meta.router();
    tokio::spawn(async move { axum::serve(graph, router).await });

    let system = common::start(&[
        ("WA_ACCESS_TOKEN", "EAAG-test-token"),
        ("WA_GRAPH_URL", &graph_url),
        ("WA_API_VERSION", "v99.0"),
    ])
    .await;
    assert!(
        system.running.sandbox.is_none(),
        "no built-in sandbox in live mode"
    );
    let (_, health) = system.get("/healthz").await;
    assert_eq!(health["mode"], "live");
    let not_mounted = system
        .http
        .get(system.url("/sandbox/sent"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_mounted.status(), 404);

    system
        .customer_writes("5511944443333", "order status 7")
        .await;
    let id = system.send_text("5511944443333", "live hello").await;
    let sent = eventually(
        Duration::from_secs(10),
        "the send to reach the Graph API",
        || async {
            meta.sent()
                .into_iter()
                .find(|m| m.to.as_deref() == Some("5511944443333"))
        },
    )
    .await;
    assert_eq!(sent.body["text"]["body"], "live hello");
    let message = eventually(
        Duration::from_secs(10),
        "the wamid to be recorded",
        || async { system.message(&id).await.filter(|m| m["wamid"].is_string()) },
    )
    .await;
    assert_eq!(message["wamid"].as_str(), sent.wamid.as_deref());
}
