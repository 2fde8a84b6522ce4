//! Firestore going away after the store connected: every call is
//! `StoreError::Unavailable` (callers answer 503 and retry), and the store
//! works again once Firestore is back. The emulator is reached through a TCP
//! relay in this test that can be cut and restored.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use zapfn_store::{ConversationQuery, Store, StoreError};
use zapfn_store_firestore::{FirestoreConfig, FirestoreStore};
use zapfn_whatsapp::{builders, webhook};

mod common;

/// Relays connections on `listen` to `upstream` until aborted (which drops them all).
fn relay(listener: TcpListener, upstream: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            connections.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

fn notification(wamid: &str) -> zapfn_whatsapp::webhook::Notification {
    let body = builders::messages_notification(
        "106540352242922",
        "5511999990000",
        "Maria",
        vec![builders::text_message("5511999990000", wamid, 1, "hi")],
    );
    webhook::parse(body.to_string().as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_unavailable_and_the_store_recovers() {
    let Some(emulator) = common::emulator() else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let running = relay(listener, emulator.clone());
    // This test binary holds this one test, so no other thread reads the variable.
    std::env::set_var("FIRESTORE_EMULATOR_HOST", address.to_string());
    let project = format!("zapfn-outage-{}", uuid::Uuid::new_v4().simple());
    let store = FirestoreStore::connect(FirestoreConfig::new(&project))
        .await
        .unwrap();
    store.ingest(notification("wamid.BEFORE")).await.unwrap();

    running.abort();
    let _ = running.await;
    let started = Instant::now();
    let ingest = store.ingest(notification("wamid.DURING")).await;
    assert!(
        matches!(ingest, Err(StoreError::Unavailable(_))),
        "{ingest:?}"
    );
    let read = store.message("wamid.BEFORE").await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    let list = store.conversations(ConversationQuery::default()).await;
    assert!(matches!(list, Err(StoreError::Unavailable(_))), "{list:?}");
    let claim = store.claim("messages", 10, Duration::from_secs(30)).await;
    assert!(
        matches!(claim, Err(StoreError::Unavailable(_))),
        "{claim:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a refused connection fails fast: {:?}",
        started.elapsed()
    );

    let listener = TcpListener::bind(address).await.unwrap();
    let _running = relay(listener, emulator);
    store.ingest(notification("wamid.AFTER")).await.unwrap();
    assert!(store.message("wamid.BEFORE").await.unwrap().is_some());
    assert!(
        store.message("wamid.DURING").await.unwrap().is_none(),
        "the failed ingest stored nothing"
    );
    assert!(store.message("wamid.AFTER").await.unwrap().is_some());
}
