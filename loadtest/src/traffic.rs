//! The day's traffic, open loop: inbound webhooks at a steady rate with a
//! burst (texts, "menu" texts that get an auto-reply, images, small batches,
//! redeliveries of acknowledged bodies) and send-API calls (templates to any
//! number, texts to customers who just wrote), each due at its own time
//! whatever happened before, its latency counted from that time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use zapfn_whatsapp::builders;

use crate::ledger::{micros, Inbound, Ledger};
use crate::meta::deliver;

/// A rate with one burst: `rate` per second, `factor` times that during the burst.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub rate: f64,
    pub seconds: f64,
    pub burst_at: f64,
    pub burst_seconds: f64,
    pub burst_factor: f64,
}

impl Schedule {
    /// Events due by `t` seconds.
    fn due_by(&self, t: f64) -> f64 {
        let burst_end = self.burst_at + self.burst_seconds;
        let in_burst = (t.min(burst_end) - self.burst_at).max(0.0);
        self.rate * t + (self.burst_factor - 1.0) * self.rate * in_burst
    }

    /// When event `n` is due, in seconds from the start (inverse of `due_by`).
    fn time_of(&self, n: f64) -> f64 {
        let before = self.rate * self.burst_at;
        let during = self.rate * self.burst_factor * self.burst_seconds;
        if n <= before {
            n / self.rate
        } else if n <= before + during {
            self.burst_at + (n - before) / (self.rate * self.burst_factor)
        } else {
            self.burst_at + self.burst_seconds + (n - before - during) / self.rate
        }
    }

    /// Every event of the run.
    pub fn total(&self) -> u64 {
        self.due_by(self.seconds) as u64
    }
}

/// Shared by the generators.
pub struct Traffic {
    pub ledger: Arc<Ledger>,
    pub webhook_url: String,
    pub api_url: String,
    pub api_key: String,
    pub secret: String,
    pub phone_number_id: String,
    /// Share of acknowledged inbound bodies posted again later.
    pub redelivery: f64,
    /// Shares of inbound events that are "menu" texts, images and batches.
    pub menu: f64,
    pub images: f64,
    pub batches: f64,
    /// Media ids the Graph sandbox serves (images).
    pub media_ids: Vec<String>,
    /// When the inbound burst starts: latencies of what is due before it are the steady ones.
    pub burst_starts: Instant,
    /// Customers who wrote recently (their window is open).
    recent: Mutex<VecDeque<String>>,
    http: reqwest::Client,
}

impl Traffic {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ledger: Arc<Ledger>,
        base_url: &str,
        api_key: &str,
        secret: &str,
        phone_number_id: &str,
        redelivery: f64,
        media_ids: Vec<String>,
        burst_starts: Instant,
    ) -> Traffic {
        Traffic {
            ledger,
            webhook_url: format!("{base_url}/webhook"),
            api_url: format!("{base_url}/v1/{phone_number_id}/messages"),
            api_key: api_key.to_owned(),
            secret: secret.to_owned(),
            phone_number_id: phone_number_id.to_owned(),
            redelivery,
            menu: 0.02,
            images: 0.02,
            batches: 0.03,
            media_ids,
            burst_starts,
            recent: Mutex::new(VecDeque::new()),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(512)
                .build()
                .expect("an HTTP client builds"),
        }
    }
}

/// Runs `schedule`, calling `event(n)` at each event's due time with at most
/// `in_flight` running; returns when every event has finished.
pub async fn run<F, Fut>(schedule: Schedule, start: Instant, in_flight: usize, event: F)
where
    F: Fn(u64, Instant) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut tasks = JoinSet::new();
    let total = schedule.total();
    for n in 0..total {
        let due = start + Duration::from_secs_f64(schedule.time_of(n as f64));
        tokio::time::sleep_until(due.into()).await;
        let permit = permits.clone().acquire_owned().await.unwrap();
        let work = event(n, due);
        tasks.spawn(async move {
            work.await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// A new customer number (Brazilian mobile, as Meta's `wa_id`).
fn customer(rng: &mut impl Rng) -> String {
    format!("55119{:08}", rng.gen_range(0..100_000_000u32))
}

/// One inbound event: a webhook with one message (or a small batch), posted
/// until acknowledged; some acknowledged bodies are posted again later.
pub async fn inbound(traffic: Arc<Traffic>, due: Instant) {
    let (messages, from, kinds) = {
        let mut rng = rand::thread_rng();
        let from = customer(&mut rng);
        let roll: f64 = rng.gen();
        let count = if roll < traffic.batches {
            rng.gen_range(2..=4)
        } else {
            1
        };
        let now = chrono::Utc::now().timestamp();
        let mut messages = Vec::new();
        let mut kinds = Vec::new();
        for _ in 0..count {
            let wamid = builders::new_wamid();
            let roll: f64 = rng.gen();
            let (message, kind) = if count == 1 && roll < traffic.menu {
                (
                    builders::text_message(&from, &wamid, now, "menu"),
                    Inbound::Menu,
                )
            } else if count == 1
                && roll < traffic.menu + traffic.images
                && !traffic.media_ids.is_empty()
            {
                let id = &traffic.media_ids[rng.gen_range(0..traffic.media_ids.len())];
                let image = json!({"from": from, "id": wamid, "timestamp": now.to_string(), "type": "image",
                    "image": {"id": id, "mime_type": "image/jpeg", "caption": "photo"}});
                (image, Inbound::Image)
            } else {
                let text = format!("order {} status?", rng.gen_range(1000..99999));
                (
                    builders::text_message(&from, &wamid, now, &text),
                    Inbound::Text,
                )
            };
            messages.push(message);
            kinds.push((wamid, kind));
        }
        (messages, from, kinds)
    };
    let body: Bytes =
        builders::messages_notification(&traffic.phone_number_id, &from, "Load", messages)
            .to_string()
            .into();
    let began = Instant::now();
    let delivered = deliver(
        &traffic.http,
        &traffic.webhook_url,
        &traffic.secret,
        body.clone(),
    )
    .await;
    let latency = micros(began.saturating_duration_since(due) + delivered.first);
    traffic.ledger.with(|l| {
        l.inbound_posts += 1;
        l.webhook_retries += u64::from(delivered.attempts - 1);
        l.webhook_latency.push(latency);
        if due < traffic.burst_starts {
            l.webhook_latency_steady.push(latency);
        }
        if delivered.acknowledged.is_none() {
            l.webhook_abandoned += 1;
            return;
        }
        for (wamid, kind) in kinds {
            l.inbound.insert(wamid, kind);
        }
    });
    if delivered.acknowledged.is_some() {
        let mut recent = traffic.recent.lock().unwrap();
        recent.push_back(from);
        if recent.len() > 10_000 {
            recent.pop_front();
        }
    }
    let again = rand::thread_rng().gen_bool(traffic.redelivery);
    if again && delivered.acknowledged.is_some() {
        let wait = Duration::from_millis(rand::thread_rng().gen_range(100..3000));
        tokio::time::sleep(wait).await;
        let redelivered = deliver(&traffic.http, &traffic.webhook_url, &traffic.secret, body).await;
        traffic.ledger.with(|l| {
            l.redeliveries += 1;
            l.webhook_retries += u64::from(redelivered.attempts - 1);
            if redelivered.acknowledged.is_none() {
                l.webhook_abandoned += 1;
            }
        });
    }
}

/// One send through the API: a template to any number (2 % of them
/// undeliverable), or a text to a customer who just wrote. Retried with the
/// same Idempotency-Key until answered 202, as a careful client does.
pub async fn send(traffic: Arc<Traffic>, n: u64, due: Instant) {
    let (body, key) = {
        let mut rng = rand::thread_rng();
        let recent = traffic.recent.lock().unwrap();
        let key = format!("load-{}-{n}", std::process::id());
        let body = if rng.gen_bool(0.3) && !recent.is_empty() {
            let to = recent[rng.gen_range(0..recent.len())].clone();
            json!({"messaging_product": "whatsapp", "to": to, "type": "text",
                   "text": {"body": format!("Your order {n} has shipped.")}})
        } else {
            let to = if rng.gen_bool(0.02) {
                format!("99{:010}", rng.gen_range(0..10_000_000_000u64))
            } else {
                customer(&mut rng)
            };
            json!({"messaging_product": "whatsapp", "to": to, "type": "template",
                   "template": {"name": "order_update", "language": {"code": "pt_BR"},
                                "components": [{"type": "body", "parameters": [{"type": "text", "text": n.to_string()}]}]}})
        };
        (body, key)
    };
    let start = Instant::now();
    let mut backoff = Duration::from_millis(50);
    let mut first = None;
    let mut attempts = 0;
    let outcome: Result<String, String> = loop {
        attempts += 1;
        let answer = traffic
            .http
            .post(&traffic.api_url)
            .bearer_auth(&traffic.api_key)
            .header("idempotency-key", &key)
            .timeout(Duration::from_secs(30))
            .json(&body)
            .send()
            .await;
        first.get_or_insert_with(|| due.elapsed());
        match answer {
            Ok(response) if response.status().as_u16() == 202 => {
                let answer: Value = response.json().await.unwrap_or_default();
                match answer["id"].as_str() {
                    Some(id) => break Ok(id.to_owned()),
                    None => break Err(format!("202 without an id: {answer}")),
                }
            }
            Ok(response) if !response.status().is_server_error() => {
                let status = response.status();
                break Err(format!(
                    "{status}: {}",
                    response.text().await.unwrap_or_default()
                ));
            }
            _ if start.elapsed() > Duration::from_secs(300) => break Err("no 202 in 300 s".into()),
            _ => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    };
    let accepted_at = Instant::now();
    traffic.ledger.with(|l| {
        l.api_retries += attempts - 1;
        let latency = micros(first.unwrap_or_default());
        l.api_latency.push(latency);
        if due < traffic.burst_starts {
            l.api_latency_steady.push(latency);
        }
        match outcome {
            Ok(id) => {
                l.api_accepted.entry(id).or_insert(accepted_at);
            }
            Err(error) => l.api_refused.push(error),
        }
    });
}
