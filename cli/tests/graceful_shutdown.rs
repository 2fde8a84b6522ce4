//! SIGTERM during load, as Cloud Run sends it before stopping an instance: the
//! server stops accepting, finishes what is in flight and exits within the
//! 10 s Cloud Run allows (also with a client holding a half-sent request
//! head); every acknowledged webhook is stored once, and after a restart every
//! customer gets exactly one auto-reply.

mod child;
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use child::SECRET;
use common::eventually;
use rusqlite::{Connection, OpenFlags};
use tokio::io::AsyncWriteExt;
use zapfn_sandbox::{Sandbox, SandboxConfig};
use zapfn_whatsapp::builders;

const PHONE_NUMBER_ID: &str = "106540352242922";

/// One customer's "menu" message: (wamid, signed body).
fn message(worker: usize, n: usize) -> (String, String) {
    let from = format!("5511970{worker:02}{n:04}");
    let wamid = format!("wamid.TERM{worker:02}{n:04}");
    let now = chrono::Utc::now().timestamp();
    let text = builders::text_message(&from, &wamid, now, "menu");
    let body = builders::messages_notification(PHONE_NUMBER_ID, &from, "Term", vec![text]);
    (wamid, body.to_string())
}

/// How one request ended.
#[derive(Debug)]
enum Outcome {
    Answered(u16),
    /// No answer: refused or closed before one (not acknowledged, Meta redelivers).
    NoAnswer,
}

/// Posts distinct messages back to back until `stop`, or until the server is gone.
async fn worker(
    url: String,
    worker: usize,
    stop: Arc<AtomicBool>,
) -> Vec<(String, String, Outcome)> {
    let http = reqwest::Client::new();
    let mut outcomes = Vec::new();
    let mut failures = 0;
    for n in 0.. {
        if stop.load(Ordering::Relaxed) || failures > 20 {
            break;
        }
        let (wamid, body) = message(worker, n);
        let outcome =
            match zapfn_sandbox::post_signed(&http, &url, SECRET.as_bytes(), body.as_bytes()).await
            {
                Ok(status) => Outcome::Answered(status.as_u16()),
                Err(_) => {
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Outcome::NoAnswer
                }
            };
        outcomes.push((wamid, body, outcome));
    }
    outcomes
}

/// Sends SIGTERM and asserts a clean exit within the 10 s Cloud Run allows; how long it took.
async fn sigterm_exits_cleanly_in_time(zapfn: &mut child::Zapfn) -> Duration {
    let signalled = Instant::now();
    zapfn.signal(libc::SIGTERM);
    let exit = zapfn
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("zapfn dev exits after SIGTERM");
    let took = signalled.elapsed();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM"
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_in_flight_work_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = child::free_port();
    // The Graph API sandbox lives in this test, so what it received survives the restart.
    let graph = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let graph_url = format!("http://{}/graph", graph.local_addr().unwrap());
    let sandbox = Sandbox::new(SandboxConfig::new(
        SECRET,
        format!("http://127.0.0.1:{port}/webhook"),
    ));
    let router = sandbox.router();
    tokio::spawn(async move { axum::serve(graph, router).await });
    // A send cut short by the shutdown waits this long for a status naming it before it is sent again.
    let env = [
        ("WA_GRAPH_URL", graph_url.as_str()),
        ("ZAPFN_RECONCILE_SECONDS", "3"),
        // Thousands of customers are acknowledged in the load; reply to them fast.
        ("WA_RATE_LIMIT", "1000"),
    ];

    let mut first = child::spawn(port, dir.path(), &env);
    first.wait_healthy().await;
    let url = first.url("/webhook");
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..24)
        .map(|n| tokio::spawn(worker(url.clone(), n, stop.clone())))
        .collect();
    // A client in the middle of sending its request head when SIGTERM comes.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    slow.write_all(b"POST /webhook HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let took = sigterm_exits_cleanly_in_time(&mut first).await;
    stop.store(true, Ordering::Relaxed);
    drop(slow);

    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.unwrap());
    }
    let acknowledged: Vec<&String> = outcomes
        .iter()
        .filter(|(_, _, outcome)| matches!(outcome, Outcome::Answered(200)))
        .map(|(wamid, _, _)| wamid)
        .collect();
    let other: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, outcome)| matches!(outcome, Outcome::Answered(status) if *status != 200))
        .collect();
    assert!(
        other.is_empty(),
        "answers other than 200 while draining: {other:?}"
    );
    assert!(
        acknowledged.len() > 100,
        "load before SIGTERM: {}",
        acknowledged.len()
    );
    eprintln!(
        "SIGTERM: exited in {took:?}; {} acknowledged, {} unanswered",
        acknowledged.len(),
        outcomes.len() - acknowledged.len()
    );

    // Restart; Meta redelivers what was not acknowledged.
    let second = child::spawn(port, dir.path(), &env);
    second.wait_healthy().await;
    // Everything acknowledged before SIGTERM is stored: from the journal, by
    // the restarted process, before any redelivery.
    let db = Connection::open_with_flags(
        dir.path().join("zapfn.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let start = Instant::now();
    while second.webhook_backlog().await != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "journal never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for wamid in &acknowledged {
        let stored: i64 = db
            .query_row(
                "SELECT count(*) FROM messages WHERE wa_message_id = ?1",
                [wamid],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(
            stored, 1,
            "acknowledged before SIGTERM but not stored: {wamid}"
        );
    }
    drop(db);
    let http = reqwest::Client::new();
    for (_, body, outcome) in &outcomes {
        if !matches!(outcome, Outcome::Answered(200)) {
            let status = zapfn_sandbox::post_signed(
                &http,
                &second.url("/webhook"),
                SECRET.as_bytes(),
                body.as_bytes(),
            )
            .await
            .unwrap();
            assert_eq!(status.as_u16(), 200);
        }
    }
    let customers = outcomes.len();
    let start = Instant::now();
    let replies = || {
        let mut per_recipient: HashMap<String, usize> = HashMap::new();
        for sent in sandbox.sent() {
            *per_recipient
                .entry(sent.to.unwrap_or_default())
                .or_default() += 1;
        }
        per_recipient
    };
    loop {
        let per_recipient = replies();
        if per_recipient.len() == customers {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{} of {customers} customers got their reply",
            per_recipient.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_recipient = replies();
    let twice: Vec<_> = per_recipient.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "replied more than once: {twice:?}");
}

/// The worst a SIGTERM meets: a send hanging on the Graph API (an event
/// handler, and a request to the built-in sandbox in flight) and a client
/// stalled halfway through a webhook body. Draining HTTP and the handlers share
/// the 10 s, so the process still exits in time; the send is made after the
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_send_and_a_stalled_body_still_exit_within_ten_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let port = child::free_port();
    let env = [
        ("ZAPFN_GRAPH_TIMEOUT_MS", "30000"),
        // The send cut short may have reached Meta: look for its status this long.
        ("ZAPFN_RECONCILE_SECONDS", "1"),
    ];
    let mut zapfn = child::spawn(port, dir.path(), &env);
    zapfn.wait_healthy().await;
    let http = reqwest::Client::new();
    let hang = http
        .post(zapfn.url("/sandbox/faults"))
        .json(&serde_json::json!({"faults": [{"hang_ms": 60000}]}))
        .send()
        .await
        .unwrap();
    assert!(hang.status().is_success(), "{}", hang.status());
    let template = serde_json::json!({"messaging_product": "whatsapp", "to": "5511999990000",
        "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let sent = http
        .post(zapfn.url(&format!("/v1/{PHONE_NUMBER_ID}/messages")))
        .bearer_auth(child::API_KEY)
        .json(&template)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let id = sent.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stalled
        .write_all(
            b"POST /webhook HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"obj",
        )
        .await
        .unwrap();
    // The send is on its way to the hanging Graph API: it took the fault.
    eventually(
        Duration::from_secs(10),
        "the send to take the fault",
        || async {
            let faults: serde_json::Value = http
                .get(zapfn.url("/sandbox/faults"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            faults["faults"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
        },
    )
    .await;

    sigterm_exits_cleanly_in_time(&mut zapfn).await;
    drop(stalled);

    let restarted = child::spawn(port, dir.path(), &env);
    restarted.wait_healthy().await;
    let view = eventually(
        Duration::from_secs(20),
        "the send to leave the queue",
        || async {
            let view: serde_json::Value = http
                .get(restarted.url(&format!("/v1/messages/{id}")))
                .bearer_auth(child::API_KEY)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (view["status"] != "queued").then_some(view)
        },
    )
    .await;
    assert!(view["wamid"].is_string(), "sent after the restart: {view}");
}
