//! Test helpers: emulator gating and a loopback HTTP receiver.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// The emulator address in `var`, or None after printing a loud SKIPPED line.
/// With `ZAPFN_REQUIRE_EMULATORS=1` a missing emulator fails the test instead.
pub fn emulator(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("ZAPFN_REQUIRE_EMULATORS").as_deref() != Ok("1"),
                "{test}: {var} is not set but ZAPFN_REQUIRE_EMULATORS=1 (run scripts/emulators.sh start)"
            );
            eprintln!("SKIPPED {test}: {var} is not set (start the emulators: scripts/emulators.sh start)");
            None
        }
    }
}

/// A unique name for this run (emulators keep state between tests).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid_like())
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A loopback server recording every POST; it answers the statuses in
/// `answers` in turn, then 204.
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(answers: Vec<u16>) -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let log = received.clone();
        let app = Router::new().route(
            "/{*path}",
            post(move |headers: HeaderMap, body: Bytes| {
                let (log, answers) = (log.clone(), answers.clone());
                async move {
                    log.lock().unwrap().push(Received { headers, body });
                    let status = answers.lock().unwrap().next().unwrap_or(204);
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, received }
    }

    /// Waits until `n` requests arrived (panics after `limit`).
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let received = self.received.lock().unwrap().clone();
            if received.len() >= n {
                return received;
            }
            assert!(
                start.elapsed() < limit,
                "got {} of {n} requests in {limit:?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
