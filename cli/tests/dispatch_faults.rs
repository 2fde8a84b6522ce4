//! The dispatcher against a misbehaving Graph API (the sandbox's fault
//! injection): retries with backoff, order per recipient, permanent errors
//! recorded, no duplicate sends, and Meta's rate limits respected.

mod common;

use std::time::Duration;

use common::{eventually, System};
use serde_json::{json, Value};

async fn inject(system: &System, faults: Value) {
    let response = system
        .http
        .post(system.url("/sandbox/faults"))
        .json(&json!({ "faults": faults }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

fn sent_bodies_to(system: &System, to: &str) -> Vec<String> {
    system
        .sent_to(to)
        .into_iter()
        .map(|m| {
            m.body["text"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn transient_failures_are_retried_in_order_and_sent_once() {
    // A hang or a reset may mean Meta took the message: the retry first waits
    // (here 1 s) for a status webhook naming it, then sends again.
    let system = common::start(&[
        ("ZAPFN_GRAPH_TIMEOUT_MS", "300"),
        ("ZAPFN_RECONCILE_SECONDS", "1"),
    ])
    .await;
    let to = "5511900000001";
    system.customer_writes(to, "order status 1").await;
    inject(
        &system,
        json!([
            { "to": to, "http_status": 500 },
            { "to": to, "error_code": 130429 },
            { "to": to, "hang_ms": 600 },
            { "to": to, "reset": true },
        ]),
    )
    .await;
    let ids = [
        system.send_text(to, "first").await,
        system.send_text(to, "second").await,
        system.send_text(to, "third").await,
    ];
    for id in &ids {
        system.wait_status(id, "read").await;
    }
    assert_eq!(
        sent_bodies_to(&system, to),
        ["first", "second", "third"],
        "each sent once, in order"
    );
    let first = system.message(&ids[0]).await.unwrap();
    assert!(
        first["errors"][0]["attempt"].as_u64().unwrap() >= 2,
        "the last failed attempt is recorded: {first}"
    );
}

#[tokio::test]
async fn a_slow_meta_that_took_the_message_is_not_sent_twice() {
    // The client times out, but Meta (the sandbox) accepted the send: the status
    // webhook naming our id links the wamid, so the retry does not send again.
    let system = common::start(&[
        ("ZAPFN_GRAPH_TIMEOUT_MS", "200"),
        ("ZAPFN_RECONCILE_SECONDS", "3"),
    ])
    .await;
    let to = "5511900000002";
    system.customer_writes(to, "order status 2").await;
    inject(&system, json!([{ "to": to, "delay_ms": 400 }])).await;
    let id = system.send_text(to, "slow one").await;
    let message = system.wait_status(&id, "read").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        sent_bodies_to(&system, to),
        ["slow one"],
        "sent exactly once"
    );
    assert!(message["wamid"].as_str().unwrap().starts_with("wamid."));
}

#[tokio::test]
async fn permanent_errors_are_recorded_and_not_retried() {
    let system = common::start(&[]).await;
    let to = "5511900000003";
    system.customer_writes(to, "order status 3").await;
    inject(
        &system,
        json!([{ "to": to, "error_code": 131047 }, { "to": to, "error_code": 132001 }]),
    )
    .await;
    let window = system.send_text(to, "outside window").await;
    let template = system.send_text(to, "bad template").await;
    let after = system.send_text(to, "next one").await;
    let failed = system.wait_status(&window, "failed").await;
    assert_eq!(failed["errors"][0]["code"], 131047);
    assert_eq!(failed["errors"][0]["attempt"], 1);
    assert_eq!(
        system.wait_status(&template, "failed").await["errors"][0]["code"],
        132001
    );
    system.wait_status(&after, "read").await;
    assert_eq!(
        sent_bodies_to(&system, to),
        ["next one"],
        "failed messages never reached Meta, the next one did"
    );
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let system = common::start(&[("ZAPFN_MAX_ATTEMPTS", "3")]).await;
    let to = "5511900000004";
    system.customer_writes(to, "order status 4").await;
    inject(&system, json!([{ "to": to, "http_status": 503 }, { "to": to, "http_status": 503 }, { "to": to, "http_status": 503 }, { "to": to, "http_status": 503 }])).await;
    let id = system.send_text(to, "doomed").await;
    let failed = system.wait_status(&id, "failed").await;
    assert_eq!(failed["errors"][0]["attempt"], 3);
    let (_, health) = system.get("/healthz").await;
    assert_eq!(health["queues"]["dead_letters"], 1);
    assert!(sent_bodies_to(&system, to).is_empty());
}

#[tokio::test]
async fn pair_rate_limit_error_waits_then_sends() {
    let system = common::start(&[]).await;
    let to = "5511900000005";
    system.customer_writes(to, "order status 5").await;
    inject(&system, json!([{ "to": to, "error_code": 131056 }])).await;
    let id = system.send_text(to, "paced").await;
    system.wait_status(&id, "read").await;
    assert_eq!(sent_bodies_to(&system, to), ["paced"]);
}

#[tokio::test]
async fn sends_per_number_stay_within_the_rate_limit() {
    let system = common::start(&[("WA_RATE_LIMIT", "10")]).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        let request = json!({
            "messaging_product": "whatsapp", "to": format!("55119100{n:05}"), "type": "template",
            "template": { "name": "order_update", "language": { "code": "pt_BR" } }
        });
        let (status, answer) = system
            .post(
                &format!("/v1/{}/messages", common::PHONE_NUMBER_ID),
                &request,
            )
            .await;
        assert_eq!(status, 202, "{answer}");
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    eventually(Duration::from_secs(30), "all 30 sends", || async {
        (system.running.sandbox.as_ref().unwrap().sent().len() == 30).then_some(())
    })
    .await;
    let mut times: Vec<i64> = system
        .running
        .sandbox
        .as_ref()
        .unwrap()
        .sent()
        .iter()
        .map(|m| m.received_at_ms)
        .collect();
    times.sort();
    // Paced at 10/s from the first send: the 30th comes 2.9 s after the first,
    // and no second holds more than 10 (a full bucket of 10 let 20 out at once).
    assert!(
        times[29] - times[0] >= 2_700,
        "30 sends in {} ms at 10/s",
        times[29] - times[0]
    );
    for window in times.windows(11) {
        assert!(
            window[10] - window[0] >= 900,
            "11 sends within {} ms",
            window[10] - window[0]
        );
    }
}

#[tokio::test]
async fn pair_limit_paces_one_recipient_in_order() {
    let system = common::start(&[("WA_PAIR_BURST", "2"), ("WA_PAIR_INTERVAL_MS", "400")]).await;
    let to = "5511900000006";
    system.customer_writes(to, "order status 6").await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(system.send_text(to, &format!("part {n}")).await);
    }
    for id in &ids {
        eventually(Duration::from_secs(20), "Meta to take the send", || async {
            system.message(id).await.filter(|m| m["wamid"].is_string())
        })
        .await;
    }
    let sent = system.sent_to(to);
    let bodies: Vec<&str> = sent
        .iter()
        .map(|m| m.body["text"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["part 0", "part 1", "part 2", "part 3"]);
    assert!(
        sent[3].received_at_ms - sent[1].received_at_ms >= 700,
        "burst of 2, then one per 400 ms"
    );
}

#[tokio::test]
async fn a_send_failing_past_the_retry_window_is_marked_failed() {
    let system = common::start(&[
        ("ZAPFN_MAX_RETRY_SECONDS", "1"),
        ("ZAPFN_RETRY_BASE_MS", "800"),
    ])
    .await;
    let to = "5511900000007";
    system.customer_writes(to, "order status 7").await;
    inject(&system, json!([{ "to": to, "http_status": 503 }, { "to": to, "http_status": 503 }, { "to": to, "http_status": 503 }])).await;
    let id = system.send_text(to, "too late").await;
    let failed = system.wait_status(&id, "failed").await;
    assert!(
        failed["errors"][0]["attempt"].as_u64().unwrap() < 5,
        "gave up on time, not on attempts: {failed}"
    );
    let (_, health) = system.get("/healthz").await;
    assert_eq!(health["queues"]["dead_letters"], 1);
}

#[tokio::test]
async fn a_gateway_error_is_sent_again_only_after_the_reconcile_window() {
    // A 502 may come from a proxy whose backend took the message: like a timeout.
    let system = common::start(&[("ZAPFN_RECONCILE_SECONDS", "2")]).await;
    let to = "5511900000008";
    system.customer_writes(to, "order status 8").await;
    inject(&system, json!([{ "to": to, "http_status": 502 }])).await;
    let before_ms = chrono::Utc::now().timestamp_millis();
    let id = system.send_text(to, "through a gateway").await;
    system.wait_status(&id, "read").await;
    let sent = system.sent_to(to);
    assert_eq!(sent.len(), 1, "sent once");
    assert!(
        sent[0].received_at_ms - before_ms >= 1_000,
        "sent again {} ms after the request, inside the reconcile window",
        sent[0].received_at_ms - before_ms
    );
}

#[tokio::test]
async fn a_store_failing_at_the_last_attempt_leaves_the_message_failed() {
    let system = common::start(&[("ZAPFN_MAX_ATTEMPTS", "2")]).await;
    let to = "5511900000009";
    system.customer_writes(to, "order status 9").await;
    // No send can be marked as started: every attempt fails in the store, before Meta.
    let db = rusqlite::Connection::open(system.dir.path().join("zapfn.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER no_sends BEFORE UPDATE OF dispatch_started_at ON messages
         WHEN NEW.dispatch_started_at IS NOT NULL
         BEGIN SELECT RAISE(ABORT, 'injected: the send cannot be marked'); END;",
    )
    .unwrap();
    let id = system.send_text(to, "never marked").await;
    let failed = system.wait_status(&id, "failed").await;
    assert_eq!(failed["errors"][0]["attempt"], 2, "{failed}");
    let (_, health) = system.get("/healthz").await;
    assert_eq!(health["queues"]["dead_letters"], 1);
    assert!(sent_bodies_to(&system, to).is_empty());
}
