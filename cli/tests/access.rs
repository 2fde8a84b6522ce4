//! Access control on a real `zapfn dev` on loopback: scoped, revocable,
//! rate-limited API keys, tenant isolation on every route, the audit log.

mod common;

use reqwest::Method;
use serde_json::{json, Value};

use common::{assert_problem, System, API_KEY, PHONE_NUMBER_ID};

/// A second business number: another tenant.
const OTHER_NUMBER: &str = "106540352242999";

/// `method path` with `key` (and a JSON body).
async fn call(
    system: &System,
    key: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = system
        .http
        .request(method, system.url(path))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

/// A new key made through the admin API with the bootstrap key.
async fn create_key(system: &System, grant: Value) -> String {
    let response = call(system, API_KEY, Method::POST, "/v1/keys", Some(&grant)).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(status, 201, "{body}");
    assert!(body.get("key_hash").is_none(), "{body}");
    body["key"].as_str().unwrap().to_owned()
}

/// A customer writes to business number `pnid`; returns the wamid.
async fn customer_writes_to(system: &System, pnid: &str, wa_id: &str, text: &str) -> String {
    let wamid = zapfn_whatsapp::builders::new_wamid();
    let now = chrono::Utc::now().timestamp();
    let body = zapfn_whatsapp::builders::messages_notification(
        pnid,
        wa_id,
        "Customer",
        vec![zapfn_whatsapp::builders::text_message(
            wa_id, &wamid, now, text,
        )],
    );
    assert_eq!(system.post_webhook(body.to_string().as_bytes()).await, 200);
    wamid
}

fn text_to(to: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "hello"}})
}

#[tokio::test]
async fn a_key_for_one_number_never_reads_or_sends_for_another() {
    let system = common::start(&[]).await;
    let mine = create_key(
        &system,
        json!({"name": "tenant-a", "scopes": ["send", "read"], "phone_number_ids": [PHONE_NUMBER_ID]}),
    )
    .await;
    let own_wamid = customer_writes_to(&system, PHONE_NUMBER_ID, "5511911110000", "oi").await;
    let other_wamid = customer_writes_to(&system, OTHER_NUMBER, "5511922220000", "segredo").await;
    let other = system.message(&other_wamid).await.expect("stored");
    let (other_id, other_conversation) = (
        other["id"].as_str().unwrap().to_owned(),
        other["conversation_id"].as_str().unwrap().to_owned(),
    );
    let own = system.message(&own_wamid).await.expect("stored");
    let own_conversation = own["conversation_id"].as_str().unwrap().to_owned();

    // Sends and uploads for the other number: 403, naming the number.
    let sent = call(
        &system,
        &mine,
        Method::POST,
        &format!("/v1/{OTHER_NUMBER}/messages"),
        Some(&text_to("5511922220000")),
    )
    .await;
    assert_eq!(sent.status(), 403);
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", "image/png")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"png".to_vec()).file_name("a.png"),
        );
    let upload = system
        .http
        .post(system.url(&format!("/v1/{OTHER_NUMBER}/media")))
        .bearer_auth(&mine)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(upload, 403).await;
    let listed = call(
        &system,
        &mine,
        Method::GET,
        &format!("/v1/conversations?phone_number_id={OTHER_NUMBER}"),
        None,
    )
    .await;
    assert_problem(listed, 403).await;

    // Reads of the other number's records: 404, as if they did not exist.
    for path in [
        format!("/v1/messages/{other_id}"),
        format!("/v1/messages/{other_wamid}"),
        format!("/v1/media/{other_id}"),
        format!("/v1/conversations/{other_conversation}"),
        format!("/v1/conversations/{other_conversation}/messages"),
    ] {
        let response = call(&system, &mine, Method::GET, &path, None).await;
        let body = assert_problem(response, 404).await;
        assert!(!body.to_string().contains("segredo"), "{path}: {body}");
        // The bootstrap key (admin on every number) does see it.
        let admin = call(&system, API_KEY, Method::GET, &path, None)
            .await
            .status()
            .as_u16();
        assert!(
            admin == 200 || path.starts_with("/v1/media"),
            "{path}: {admin}"
        );
    }
    let media = call(
        &system,
        &mine,
        Method::GET,
        &format!("/v1/media/{other_id}"),
        None,
    )
    .await;
    let body = assert_problem(media, 404).await;
    assert!(
        body["detail"].as_str().unwrap().contains("no message"),
        "{body}"
    );

    // Its own number works, and an unfiltered list holds only its own conversations.
    for path in [
        format!("/v1/messages/{own_wamid}"),
        format!("/v1/conversations/{own_conversation}"),
        format!("/v1/conversations/{own_conversation}/messages"),
    ] {
        assert_eq!(
            call(&system, &mine, Method::GET, &path, None)
                .await
                .status(),
            200,
            "{path}"
        );
    }
    let page: Value = call(&system, &mine, Method::GET, "/v1/conversations", None)
        .await
        .json()
        .await
        .unwrap();
    let numbers: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["phone_number_id"].clone())
        .collect();
    assert_eq!(numbers, [json!(PHONE_NUMBER_ID)], "{page}");
    let everything: Value = call(&system, API_KEY, Method::GET, "/v1/conversations", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(everything["items"].as_array().unwrap().len(), 2);
    let sent = call(
        &system,
        &mine,
        Method::POST,
        &format!("/v1/{PHONE_NUMBER_ID}/messages"),
        Some(&text_to("5511911110000")),
    )
    .await;
    assert_eq!(sent.status(), 202);
    system.stop().await;
}

#[tokio::test]
async fn scopes_limit_what_a_key_does() {
    let system = common::start(&[]).await;
    let reader = create_key(
        &system,
        json!({"name": "reader", "scopes": ["read"], "phone_number_ids": ["*"]}),
    )
    .await;
    let sender = create_key(
        &system,
        json!({"name": "sender", "scopes": ["send"], "phone_number_ids": [PHONE_NUMBER_ID]}),
    )
    .await;
    let wamid = customer_writes_to(&system, PHONE_NUMBER_ID, "5511911110000", "oi").await;

    let send = |key: String| {
        let system = &system;
        async move {
            call(
                system,
                &key,
                Method::POST,
                &format!("/v1/{PHONE_NUMBER_ID}/messages"),
                Some(&text_to("5511911110000")),
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!(send(reader.clone()).await, 403);
    assert_eq!(send(sender.clone()).await, 202);
    let read = |key: String| {
        let (system, wamid) = (&system, wamid.clone());
        async move {
            call(
                system,
                &key,
                Method::GET,
                &format!("/v1/messages/{wamid}"),
                None,
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!(read(reader.clone()).await, 200);
    assert_eq!(read(sender.clone()).await, 403);
    for key in [&reader, &sender] {
        assert_problem(call(&system, key, Method::GET, "/v1/keys", None).await, 403).await;
        assert_problem(
            call(&system, key, Method::GET, "/v1/audit", None).await,
            403,
        )
        .await;
        let grant = json!({"name": "escalate", "scopes": ["admin"], "phone_number_ids": ["*"]});
        assert_problem(
            call(&system, key, Method::POST, "/v1/keys", Some(&grant)).await,
            403,
        )
        .await;
    }
    // A grant that makes no sense is a 400 naming the field.
    let bad = json!({"name": "x", "scopes": ["send"], "phone_number_ids": ["not-a-number"]});
    let body = assert_problem(
        call(&system, API_KEY, Method::POST, "/v1/keys", Some(&bad)).await,
        400,
    )
    .await;
    assert_eq!(body["field"], "phone_number_ids");
    system.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_and_listed_as_revoked() {
    let system = common::start(&[]).await;
    let key = create_key(
        &system,
        json!({"name": "temp", "scopes": ["read"], "phone_number_ids": [PHONE_NUMBER_ID]}),
    )
    .await;
    assert_eq!(
        call(&system, &key, Method::GET, "/v1/conversations", None)
            .await
            .status(),
        200
    );

    let revoked: Value = call(&system, API_KEY, Method::DELETE, "/v1/keys/temp", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["revoked"], 1);
    assert_problem(
        call(&system, &key, Method::GET, "/v1/conversations", None).await,
        401,
    )
    .await;
    assert_problem(
        call(&system, API_KEY, Method::DELETE, "/v1/keys/temp", None).await,
        404,
    )
    .await;

    let listed: Value = call(&system, API_KEY, Method::GET, "/v1/keys", None)
        .await
        .json()
        .await
        .unwrap();
    let text = listed.to_string();
    assert!(!text.contains(&key) && !text.contains("key_hash"), "{text}");
    let temp = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "temp")
        .unwrap();
    assert!(temp["revoked_at"].is_i64(), "{temp}");
    let bootstrap = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "bootstrap")
        .unwrap();
    assert_eq!(bootstrap["scopes"], json!(["admin"]));
    assert_eq!(bootstrap["phone_number_ids"], json!(["*"]));
    system.stop().await;
}

#[tokio::test]
async fn a_key_past_its_rate_gets_429_with_retry_after() {
    let system = common::start(&[]).await;
    let key = create_key(&system, json!({"name": "slow", "scopes": ["read"], "phone_number_ids": ["*"], "rate_per_second": 2})).await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..4 {
        let response = call(&system, &key, Method::GET, "/v1/conversations", None).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            limited = Some(response);
        }
    }
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    let limited = limited.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&retry_after), "{retry_after}");
    assert_problem(limited, 429).await;
    // Other keys are not slowed down by it.
    for _ in 0..5 {
        assert_eq!(
            call(&system, API_KEY, Method::GET, "/v1/conversations", None)
                .await
                .status(),
            200
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        call(&system, &key, Method::GET, "/v1/conversations", None)
            .await
            .status(),
        200
    );
    system.stop().await;
}

#[tokio::test]
async fn state_changing_calls_are_audited_without_bodies() {
    let system = common::start(&[]).await;
    let key = create_key(&system, json!({"name": "auditee", "scopes": ["send", "read"], "phone_number_ids": [PHONE_NUMBER_ID]})).await;
    system.customer_writes("5511911110000", "oi").await;
    let body = json!({"messaging_product": "whatsapp", "to": "5511911110000", "type": "text",
                      "text": {"body": "very private words"}});
    let sent = system
        .http
        .post(system.url(&format!("/v1/{PHONE_NUMBER_ID}/messages")))
        .bearer_auth(&key)
        .header("x-request-id", "req-audit-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let refused = call(
        &system,
        &key,
        Method::POST,
        &format!("/v1/{OTHER_NUMBER}/messages"),
        Some(&body),
    )
    .await;
    assert_eq!(refused.status(), 403);
    call(&system, &key, Method::GET, "/v1/conversations", None).await;

    let log: Value = call(&system, API_KEY, Method::GET, "/v1/audit", None)
        .await
        .json()
        .await
        .unwrap();
    let text = log.to_string();
    assert!(!text.contains("very private words"), "{text}");
    let entries = log["items"].as_array().unwrap();
    let mine: Vec<&Value> = entries
        .iter()
        .filter(|e| e["key_name"] == "auditee")
        .collect();
    assert_eq!(mine.len(), 2, "reads are not audited: {text}");
    assert_eq!(mine[0]["status"], 403);
    assert_eq!(mine[0]["target"], format!("phone_number_id={OTHER_NUMBER}"));
    assert_eq!(mine[1]["method"], "POST");
    assert_eq!(mine[1]["route"], "/v1/{phone_number_id}/messages");
    assert_eq!(
        mine[1]["target"],
        format!("phone_number_id={PHONE_NUMBER_ID}")
    );
    assert_eq!(mine[1]["status"], 202);
    assert_eq!(mine[1]["request_id"], "req-audit-1");
    assert!(mine[1]["at_ms"].as_i64().unwrap() > 1_700_000_000_000);
    let created = entries
        .iter()
        .find(|e| e["route"] == "/v1/keys")
        .expect("key creation audited");
    assert_eq!(created["key_name"], "bootstrap");
    assert_eq!(created["status"], 201);
    system.stop().await;
}
