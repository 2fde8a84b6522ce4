//! SIGKILL during load, then restart on the same state: every acknowledged
//! webhook is stored once, every auto-reply is sent to the Graph API once.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, PHONE_NUMBER_ID, SECRET};
use tokio::sync::Semaphore;
use zapfn_sandbox::{Sandbox, SandboxConfig};
use zapfn_whatsapp::builders;

const CUSTOMERS: usize = 300;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `zapfn dev` child process, SIGKILLed when dropped (also when a test fails).
struct Zapfn(Child);

impl Drop for Zapfn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_zapfn(port: u16, data_dir: &std::path::Path, graph_port: u16) -> Zapfn {
    let child = Command::new(env!("CARGO_BIN_EXE_zapfn"))
        .arg("dev")
        .env("PORT", port.to_string())
        .env("ZAPFN_DATA_DIR", data_dir)
        .env("WA_APP_SECRET", SECRET)
        .env("ZAPFN_API_KEY", common::API_KEY)
        .env(
            "WA_GRAPH_URL",
            format!("http://127.0.0.1:{graph_port}/graph"),
        )
        .env("ZAPFN_RECONCILE_SECONDS", "2")
        .env("ZAPFN_RETRY_BASE_MS", "50")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start zapfn dev");
    Zapfn(child)
}

async fn wait_healthy(http: &reqwest::Client, port: u16) {
    eventually(
        Duration::from_secs(10),
        "zapfn to answer /healthz",
        || async {
            let response = http
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .ok()?;
            response.status().is_success().then_some(())
        },
    )
    .await;
}

fn inbound_bodies() -> Vec<(String, String)> {
    let now = chrono::Utc::now().timestamp();
    (0..CUSTOMERS)
        .map(|n| {
            let from = format!("55119800{n:05}");
            let wamid = builders::new_wamid();
            let message = builders::text_message(&from, &wamid, now, "menu");
            (
                wamid,
                builders::messages_notification(PHONE_NUMBER_ID, &from, "Load", vec![message])
                    .to_string(),
            )
        })
        .collect()
}

/// Posts every body (16 at a time); returns the wamids answered 200.
async fn post_all(
    http: &reqwest::Client,
    port: u16,
    bodies: &[(String, String)],
    kill_after: Option<(usize, &mut Zapfn)>,
) -> Vec<String> {
    let url = format!("http://127.0.0.1:{port}/webhook");
    let permits = Arc::new(Semaphore::new(16));
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    for (wamid, body) in bodies.iter().cloned() {
        let (http, url, permits, acked_tx) =
            (http.clone(), url.clone(), permits.clone(), acked_tx.clone());
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            if let Ok(status) =
                zapfn_sandbox::post_signed(&http, &url, SECRET.as_bytes(), body.as_bytes()).await
            {
                if status == 200 {
                    let _ = acked_tx.send(wamid);
                }
            }
        });
    }
    drop(acked_tx);
    let mut acked = Vec::new();
    let mut kill_after = kill_after;
    while let Some(wamid) = acked_rx.recv().await {
        acked.push(wamid);
        if let Some((after, child)) = kill_after.as_mut() {
            if acked.len() == *after {
                child.0.kill().unwrap();
                child.0.wait().unwrap();
                kill_after = None;
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_and_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (port, http) = (free_port(), reqwest::Client::new());
    let graph = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let graph_port = graph.local_addr().unwrap().port();
    let sandbox = Sandbox::new(SandboxConfig::new(
        SECRET,
        format!("http://127.0.0.1:{port}/webhook"),
    ));
    let router = sandbox.router();
    tokio::spawn(async move { axum::serve(graph, router).await });

    let bodies = inbound_bodies();
    let mut first = spawn_zapfn(port, dir.path(), graph_port);
    wait_healthy(&http, port).await;
    let acked_before_kill = post_all(&http, port, &bodies, Some((CUSTOMERS / 2, &mut first))).await;
    assert!(acked_before_kill.len() >= CUSTOMERS / 2);

    // Restart on the same state; Meta redelivers everything it has not seen acknowledged
    // (here: everything, so acknowledged ones are duplicates and must be absorbed).
    let _second = spawn_zapfn(port, dir.path(), graph_port);
    wait_healthy(&http, port).await;
    let acked_after = post_all(&http, port, &bodies, None).await;
    assert_eq!(
        acked_after.len(),
        CUSTOMERS,
        "every redelivery is acknowledged"
    );

    let db = rusqlite::Connection::open(dir.path().join("zapfn.db")).unwrap();
    let count = |sql: &str| db.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
    eventually(
        Duration::from_secs(60),
        "every auto-reply to be read",
        || async {
            let read = count(
                "SELECT count(*) FROM messages WHERE direction = 'outbound' AND status = 'read'",
            );
            (read == CUSTOMERS as i64).then_some(())
        },
    )
    .await;

    assert_eq!(
        count("SELECT count(*) FROM messages WHERE direction = 'inbound'"),
        CUSTOMERS as i64
    );
    assert_eq!(
        count("SELECT count(*) FROM messages WHERE direction = 'outbound'"),
        CUSTOMERS as i64
    );
    for wamid in &acked_before_kill {
        let stored = db
            .query_row(
                "SELECT count(*) FROM messages WHERE wa_message_id = ?1",
                [wamid],
                |row| row.get::<_, i64>(0),
            )
            .unwrap();
        assert_eq!(stored, 1, "acknowledged before the kill: {wamid}");
    }
    let mut sends_per_recipient: HashMap<String, usize> = HashMap::new();
    for sent in sandbox.sent() {
        *sends_per_recipient
            .entry(sent.to.unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(
        sends_per_recipient.len(),
        CUSTOMERS,
        "every customer got a reply"
    );
    let twice: Vec<_> = sends_per_recipient
        .iter()
        .filter(|(_, n)| **n > 1)
        .collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
}
