//! The deployed topology on the emulators (`make e2e-cloud`): every function
//! binary as its own process and port, Firestore as the store (PostgreSQL with
//! `ZAPFN_E2E_STORE=postgres`), Pub/Sub push subscriptions, a Cloud Tasks
//! queue and the relay sweep's schedule wired as `infra/` wires them, Cloud
//! Storage for media and the Graph API sandbox as Meta.
//!
//! signed webhook → webhook (Firestore, outbox) → relay → Pub/Sub → text
//! (auto-reply, outbox) → relay → Cloud Tasks → dispatch → sandbox → signed
//! statuses → webhook → Pub/Sub → status → `read`.

mod cloud;

use std::time::Duration;

use cloud::{eventually, Deployment, PHONE_NUMBER_ID};
use serde_json::{json, Value};
use zapfn_whatsapp::builders;

const LOOP_LIMIT: Duration = Duration::from_secs(60);

fn inbound_text(wa_id: &str, wamid: &str, text: &str) -> Vec<u8> {
    builders::messages_notification(
        PHONE_NUMBER_ID,
        wa_id,
        "Cloud Customer",
        vec![builders::text_message(
            wa_id,
            wamid,
            chrono::Utc::now().timestamp(),
            text,
        )],
    )
    .to_string()
    .into_bytes()
}

/// A customer number of this run (runs share the emulators' and PostgreSQL's state).
fn customer(n: u8) -> String {
    format!("55{:09}{n}", chrono::Utc::now().timestamp() % 1_000_000_000)
}

/// The conversation's messages with `wa_id` (newest first).
async fn conversation_messages(deployment: &Deployment, wa_id: &str) -> Vec<Value> {
    let (_, conversations) = deployment
        .get(&format!(
            "/v1/conversations?phone_number_id={PHONE_NUMBER_ID}&wa_id={wa_id}"
        ))
        .await;
    let Some(id) = conversations["items"][0]["id"].as_str() else {
        return Vec::new();
    };
    let (_, page) = deployment
        .get(&format!("/v1/conversations/{id}/messages"))
        .await;
    page["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until the auto-reply to `wa_id` is `read`; returns it.
async fn reply_read(deployment: &Deployment, wa_id: &str) -> Value {
    eventually(
        LOOP_LIMIT,
        &format!("the auto-reply to {wa_id} to be read"),
        || deployment.logs(),
        || async {
            conversation_messages(deployment, wa_id)
                .await
                .into_iter()
                .find(|m| m["direction"] == "outbound" && m["status"] == "read")
        },
    )
    .await
}

fn history(message: &Value) -> Vec<String> {
    message["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn topology_matches_infra() {
    let tf = std::fs::read_to_string(cloud::workspace_root().join("infra/functions.tf"))
        .expect("infra/functions.tf");
    let mut declared = cloud::topology::declared_in_infra(&tf);
    let mut wired: Vec<(String, String, String)> = cloud::topology::SUBSCRIPTIONS
        .iter()
        .map(|r| {
            (
                r.function.to_owned(),
                r.topic.to_owned(),
                r.filter.to_owned(),
            )
        })
        .collect();
    declared.sort();
    wired.sort();
    assert_eq!(
        wired, declared,
        "cli/tests/cloud/topology.rs and infra/functions.tf disagree"
    );
    let job = &cloud::topology::RELAY_JOB;
    assert_eq!(
        cloud::topology::relay_job_in_infra(&tf),
        Some((job.function.to_owned(), job.path.to_owned())),
        "the relay sweep job of infra/functions.tf"
    );
}

#[tokio::test]
async fn the_message_loop_runs_on_the_deployed_topology() {
    if !cloud::emulators_up("the_message_loop_runs_on_the_deployed_topology") {
        return;
    }
    let packages = cloud::function_packages();
    for needed in [
        "zapfn-webhook",
        "zapfn-send",
        "zapfn-status",
        "zapfn-text",
        "zapfn-dispatch",
    ] {
        assert!(
            packages.iter().any(|p| p == needed),
            "{needed} is not a workspace function: {packages:?}"
        );
    }
    let bin_dir = cloud::build(&packages);
    let mut deployment = Deployment::start(&packages, &bin_dir).await;
    eprintln!(
        "e2e-cloud: {} functions on project {}, store {}",
        deployment.functions.len(),
        deployment.project,
        deployment.store
    );

    // 1. A customer writes: stored in Firestore, answered through Pub/Sub,
    //    Cloud Tasks and the Graph API, and the reply's statuses come back to read.
    let wa_id = &customer(1);
    let wamid = builders::new_wamid();
    assert_eq!(
        deployment
            .post_webhook(&inbound_text(wa_id, &wamid, "hi"))
            .await,
        200
    );
    let (status, inbound) = deployment.get(&format!("/v1/messages/{wamid}")).await;
    assert_eq!(status, 200, "stored before the 200: {inbound}");
    assert_eq!(inbound["text"], "hi");
    let reply = reply_read(&deployment, wa_id).await;
    assert_eq!(
        history(&reply),
        ["queued", "accepted", "sent", "delivered", "read"]
    );
    let sent = deployment.sent_to(wa_id);
    assert_eq!(sent.len(), 1, "one send reached the Graph API");
    assert_eq!(sent[0].wamid.as_deref(), reply["wamid"].as_str());

    // 2. The send API: 202, then Cloud Tasks → dispatch → read.
    let (status, queued) = deployment
        .post(
            &format!("/v1/{PHONE_NUMBER_ID}/messages"),
            &json!({"messaging_product": "whatsapp", "to": wa_id, "type": "text", "text": {"body": "Your order shipped"}}),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["id"].as_str().unwrap().to_owned();
    eventually(
        LOOP_LIMIT,
        "the API send to be read",
        || deployment.logs(),
        || async {
            let (_, message) = deployment.get(&format!("/v1/messages/{id}")).await;
            (message["status"] == "read").then_some(())
        },
    )
    .await;
    assert_eq!(deployment.sent_to(wa_id).len(), 2);

    // 3. Meta redelivers a webhook (three times, at once): stored once, answered once.
    let wa_id = &customer(2);
    let wamid = builders::new_wamid();
    let body = inbound_text(wa_id, &wamid, "hi");
    let answers = futures::future::join_all((0..3).map(|_| deployment.post_webhook(&body))).await;
    assert_eq!(answers, [200, 200, 200]);
    reply_read(&deployment, wa_id).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let messages = conversation_messages(&deployment, wa_id).await;
    let inbound = messages
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .count();
    let outbound = messages
        .iter()
        .filter(|m| m["direction"] == "outbound")
        .count();
    assert_eq!((inbound, outbound), (1, 1), "{messages:#?}");
    assert_eq!(
        deployment.sent_to(wa_id).len(),
        1,
        "the duplicate sent nothing"
    );

    // 4. The text function is killed: its push fails, Pub/Sub redelivers once it
    //    is back, and the reply is sent exactly once.
    deployment.function("text").kill();
    let wa_id = &customer(3);
    let wamid = builders::new_wamid();
    assert_eq!(
        deployment
            .post_webhook(&inbound_text(wa_id, &wamid, "hi"))
            .await,
        200
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        deployment.sent_to(wa_id).is_empty(),
        "nothing answered while text was down"
    );
    deployment.function("text").restart().await;
    reply_read(&deployment, wa_id).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        deployment.sent_to(wa_id).len(),
        1,
        "redelivered and processed once"
    );

    // 5. The dispatch function is killed: Cloud Tasks retries the task once it
    //    is back. (The emulator retries at once and gives up after its `-r`
    //    attempts, about two seconds: dispatch comes back as soon as the task
    //    has failed a few times.)
    deployment.function("dispatch").kill();
    let wa_id = &customer(4);
    assert_eq!(
        deployment
            .post_webhook(&inbound_text(wa_id, &builders::new_wamid(), "hi"))
            .await,
        200
    );
    let reply = eventually(
        LOOP_LIMIT,
        &format!("the auto-reply to {wa_id} to be queued"),
        || deployment.logs(),
        || async {
            conversation_messages(&deployment, wa_id)
                .await
                .into_iter()
                .find(|m| m["direction"] == "outbound")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(deployment.sent_to(wa_id).is_empty());
    deployment.function("dispatch").restart().await;
    reply_read(&deployment, wa_id).await;
    assert_eq!(deployment.sent_to(wa_id).len(), 1);
    let id = reply["id"].as_str().unwrap();
    let sent = deployment.log_lines(&[&format!("message_id=\"{id}\"")]);
    let attempt = |line: &String| {
        let (_, rest) = line.split_once(" attempt=")?;
        rest.split_whitespace().next()?.parse::<u32>().ok()
    };
    assert!(
        sent.iter()
            .any(|line| line.contains(" sent ") && attempt(line) > Some(1)),
        "sent on a retry of its task: {sent:#?}"
    );

    // 6. An instance stored a webhook and died before forwarding its event: no
    //    running instance owns it, Cloud Scheduler's relay sweep forwards it.
    let wa_id = &customer(5);
    let body = inbound_text(wa_id, &builders::new_wamid(), "hi");
    let dead_instance = deployment.store().await;
    dead_instance
        .ingest(zapfn_whatsapp::webhook::parse(&body).unwrap())
        .await
        .unwrap();
    drop(dead_instance);
    reply_read(&deployment, wa_id).await;
    assert_eq!(deployment.sent_to(wa_id).len(), 1);

    // No relay failed to lease or settle (as when instances fought over one outbox).
    let troubles = deployment.log_lines(&["could not lease", "not settled"]);
    assert!(troubles.is_empty(), "{troubles:#?}");

    let (_, health) = deployment.get("/healthz").await;
    assert_eq!(health["status"], "ok", "{health}");
}
