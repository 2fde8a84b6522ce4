//! Meta's side, on loopback: the Graph API send endpoint (which records every
//! send and answers with a wamid, failing a share of calls transiently), the
//! status webhooks for each accepted send (out of order for a share, some
//! twice, several per POST) and webhook delivery with Meta's retries. The
//! media endpoints are the zapfn sandbox's.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use zapfn_whatsapp::builders;

use crate::ledger::Ledger;

/// Statuses of one send, in Meta's order.
const DELIVERED: [&str; 3] = ["sent", "delivered", "read"];
const UNDELIVERABLE: [&str; 2] = ["sent", "failed"];
/// When each status of a send is due after it was accepted (in order).
const DELAYS_MS: [u64; 3] = [40, 150, 400];
/// Most statuses in one webhook POST.
const BATCH: usize = 20;

/// How Meta behaves.
#[derive(Clone)]
pub struct Behaviour {
    pub secret: String,
    pub webhook_url: String,
    pub phone_number_id: String,
    /// Share of Graph API calls answered with a transient error (code 2, HTTP 503).
    pub graph_error_rate: f64,
    /// Share of sends whose statuses arrive in a shuffled order.
    pub out_of_order: f64,
    /// Share of status webhooks delivered twice.
    pub duplicates: f64,
}

/// One status due at a time.
struct Due {
    at: Instant,
    wamid: String,
    to: String,
    status: &'static str,
    callback: Option<String>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

/// The fake Meta.
pub struct Meta {
    behaviour: Behaviour,
    ledger: Arc<Ledger>,
    http: reqwest::Client,
    due: mpsc::UnboundedSender<Due>,
    /// Status deliveries planned but not yet acknowledged.
    outstanding: AtomicU64,
}

impl Meta {
    /// Starts the status scheduler; returns Meta and the Graph API router
    /// (sends here, everything else to `fallback`, the zapfn sandbox).
    pub fn start(
        behaviour: Behaviour,
        ledger: Arc<Ledger>,
        fallback: Router,
    ) -> (Arc<Meta>, Router) {
        let (due, receiver) = mpsc::unbounded_channel();
        let meta = Arc::new(Meta {
            behaviour,
            ledger,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("an HTTP client builds"),
            due,
            outstanding: AtomicU64::new(0),
        });
        tokio::spawn(schedule(meta.clone(), receiver));
        let router = Router::new()
            .route("/graph/{version}/{phone_number_id}/messages", post(send))
            .with_state(meta.clone())
            .fallback_service(fallback);
        (meta, router)
    }

    /// Status webhooks planned and not yet acknowledged.
    pub fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Plans the statuses of an accepted send.
    fn plan(&self, wamid: &str, to: &str, callback: Option<String>) {
        let mut rng = rand::thread_rng();
        let statuses: &[&'static str] = if to.starts_with("99") {
            &UNDELIVERABLE
        } else {
            &DELIVERED
        };
        let mut delays: Vec<u64> = DELAYS_MS[..statuses.len()].to_vec();
        if rng.gen_bool(self.behaviour.out_of_order) {
            delays.shuffle(&mut rng);
        }
        self.ledger.with(|l| {
            l.expected_status
                .insert(wamid.to_owned(), statuses[statuses.len() - 1])
        });
        let now = Instant::now();
        for (status, delay) in statuses.iter().zip(delays) {
            let copies = if rng.gen_bool(self.behaviour.duplicates) {
                2
            } else {
                1
            };
            for copy in 0..copies {
                let jitter = rng.gen_range(0..50) + copy * 300;
                self.outstanding.fetch_add(1, Ordering::Relaxed);
                let _ = self.due.send(Due {
                    at: now + Duration::from_millis(delay + jitter),
                    wamid: wamid.to_owned(),
                    to: to.to_owned(),
                    status,
                    callback: callback.clone(),
                });
            }
        }
    }
}

/// `POST /graph/{version}/{phone_number_id}/messages`.
async fn send(
    State(meta): State<Arc<Meta>>,
    Path((_version, _phone_number_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    if rand::thread_rng().gen_bool(meta.behaviour.graph_error_rate) {
        meta.ledger.with(|l| l.graph_errors += 1);
        let error = json!({"error": {"message": "(#2) Service temporarily unavailable", "type": "OAuthException", "code": 2}});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(error)).into_response();
    }
    let callback = body["biz_opaque_callback_data"].as_str().map(str::to_owned);
    let id = callback.as_deref().and_then(|c| c.strip_prefix("zapfn:"));
    let (Some(to), Some(id)) = (body["to"].as_str(), id) else {
        meta.ledger.with(|l| l.graph_other += 1);
        return Json(json!({"success": true})).into_response();
    };
    let wamid = builders::new_wamid();
    meta.ledger.with(|l| {
        let sends = l.dispatched.entry(id.to_owned()).or_default();
        sends.push((wamid.clone(), Instant::now()));
    });
    meta.plan(&wamid, to, callback);
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": zapfn_whatsapp::wa_id(to)}],
        "messages": [{"id": wamid}],
    }))
    .into_response()
}

/// Holds planned statuses until due, then posts them in batches.
async fn schedule(meta: Arc<Meta>, mut receiver: mpsc::UnboundedReceiver<Due>) {
    let mut heap: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let permits = Arc::new(Semaphore::new(64));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            planned = receiver.recv() => match planned {
                Some(due) => heap.push(Reverse(due)),
                None => return,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let mut batch = Vec::new();
                while heap.peek().is_some_and(|Reverse(due)| due.at <= now) {
                    batch.push(heap.pop().unwrap().0);
                    if batch.len() == BATCH {
                        post_statuses(&meta, &permits, std::mem::take(&mut batch)).await;
                    }
                }
                if !batch.is_empty() {
                    post_statuses(&meta, &permits, batch).await;
                }
            }
        }
    }
}

async fn post_statuses(meta: &Arc<Meta>, permits: &Arc<Semaphore>, batch: Vec<Due>) {
    let permit = permits.clone().acquire_owned().await.unwrap();
    let meta = meta.clone();
    tokio::spawn(async move {
        let timestamp = chrono::Utc::now().timestamp();
        let objects: Vec<Value> = batch
            .iter()
            .map(|due| {
                let errors = (due.status == "failed").then(|| {
                    json!([{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
                            "error_data": {"details": "Message Undeliverable."}}])
                });
                let mut object = builders::status(&due.wamid, &due.to, due.status, timestamp, errors);
                if let Some(callback) = &due.callback {
                    object["biz_opaque_callback_data"] = json!(callback);
                }
                object
            })
            .collect();
        let body =
            builders::statuses_notification(&meta.behaviour.phone_number_id, objects).to_string();
        let delivered = deliver(
            &meta.http,
            &meta.behaviour.webhook_url,
            &meta.behaviour.secret,
            body.into(),
        )
        .await;
        meta.ledger.with(|l| {
            l.status_posts += 1;
            l.webhook_retries += u64::from(delivered.attempts - 1);
            if delivered.acknowledged.is_none() {
                l.webhook_abandoned += 1;
                return;
            }
            for due in &batch {
                if !l.statuses.insert((due.wamid.clone(), due.status)) {
                    l.status_duplicates += 1;
                }
            }
        });
        meta.outstanding
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        drop(permit);
    });
}

/// How a webhook delivery went.
pub struct Delivered {
    /// POSTs made (1 when the first was answered 200).
    pub attempts: u32,
    /// Time from the first attempt to the 200, if one came.
    pub acknowledged: Option<Duration>,
    /// Time of the first attempt alone.
    pub first: Duration,
}

/// Longest Meta keeps redelivering here (it is 7 days at Meta's).
const GIVE_UP: Duration = Duration::from_secs(300);

/// Signs and POSTs `body` until it is answered 200, backing off 50 ms → 1 s
/// between attempts like Meta's redelivery (compressed in time).
pub async fn deliver(http: &reqwest::Client, url: &str, secret: &str, body: Bytes) -> Delivered {
    let signature = zapfn_whatsapp::signature::sign(secret.as_bytes(), &body);
    let start = Instant::now();
    let mut backoff = Duration::from_millis(50);
    let mut first = None;
    for attempt in 1.. {
        let answer = http
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .timeout(Duration::from_secs(30))
            .body(body.clone())
            .send()
            .await;
        let first_took = *first.get_or_insert_with(|| start.elapsed());
        if answer.is_ok_and(|response| response.status() == StatusCode::OK) {
            return Delivered {
                attempts: attempt,
                acknowledged: Some(start.elapsed()),
                first: first_took,
            };
        }
        if start.elapsed() > GIVE_UP {
            return Delivered {
                attempts: attempt,
                acknowledged: None,
                first: first_took,
            };
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    unreachable!("the loop returns")
}
