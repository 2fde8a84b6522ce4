//! A built-in fake of Meta's Graph API (WhatsApp Cloud API), used whenever no
//! real access token is configured so the whole zapfn loop runs on a laptop.
//!
//! It accepts sends like Meta, answers with Meta-shaped ids and errors, posts
//! signed status webhooks back to our `/webhook`, plays customers
//! (`POST /sandbox/inbound`) and lets tests inject faults (`/sandbox/faults`).

mod faults;
mod inbound;
mod media;
mod messages;
mod meta_error;
mod problem;
mod statuses;
mod webhook;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub use media::SandboxMedia;
pub use webhook::post_signed;

/// How the sandbox signs and delivers its webhooks.
#[derive(Clone)]
pub struct SandboxConfig {
    /// App secret that signs every webhook (`X-Hub-Signature-256`).
    pub app_secret: String,
    /// Where webhooks go, e.g. `http://127.0.0.1:8080/webhook`.
    pub webhook_url: String,
    /// The business number shown in `metadata.display_phone_number`.
    pub display_phone_number: String,
    /// Delays after a send is accepted (cumulative) for `sent`, `delivered`
    /// and `read`; an undeliverable send gets `failed` at the second one.
    pub status_delays: [Duration; 3],
    /// How long a media URL from `GET /{media-id}` works (Meta: 5 minutes).
    pub media_url_ttl: Duration,
}

impl SandboxConfig {
    /// A config with display number `15550000000` and status delays of
    /// 20 ms, 60 ms and 120 ms.
    pub fn new(app_secret: impl Into<String>, webhook_url: impl Into<String>) -> Self {
        Self {
            app_secret: app_secret.into(),
            webhook_url: webhook_url.into(),
            display_phone_number: "15550000000".to_owned(),
            status_delays: [20, 60, 120].map(Duration::from_millis),
            media_url_ttl: Duration::from_secs(300),
        }
    }
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("app_secret", &"<redacted>")
            .field("webhook_url", &self.webhook_url)
            .field("display_phone_number", &self.display_phone_number)
            .field("status_delays", &self.status_delays)
            .field("media_url_ttl", &self.media_url_ttl)
            .finish()
    }
}

/// Largest media body taken (Meta's document limit, plus room for the multipart envelope).
const MAX_MEDIA_BODY: usize = 101 * 1024 * 1024;

/// One send request the sandbox accepted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SentMessage {
    /// The `{phone_number_id}` path segment the request was sent to.
    pub phone_number_id: String,
    /// Recipient as given in the request (`None` for mark-as-read).
    pub to: Option<String>,
    /// Message type; `"read"` for mark-as-read and typing indicators.
    pub message_type: String,
    /// The wamid handed back (`None` for mark-as-read).
    pub wamid: Option<String>,
    /// The request body as received.
    pub body: serde_json::Value,
    /// When it arrived, Unix milliseconds.
    pub received_at_ms: i64,
}

/// The fake Graph API; cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: SandboxConfig,
    client: reqwest::Client,
    faults: Mutex<VecDeque<faults::Fault>>,
    sent: Mutex<Vec<SentMessage>>,
    media: Mutex<media::MediaStore>,
}

impl Sandbox {
    /// A sandbox with no pending faults and an empty sent log.
    pub fn new(config: SandboxConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent("facebookexternalua")
            .build()
            .expect("a reqwest client with default TLS settings builds");
        Self {
            inner: Arc::new(Inner {
                config,
                client,
                faults: Mutex::default(),
                sent: Mutex::default(),
                media: Mutex::default(),
            }),
        }
    }

    /// All sandbox routes with state applied:
    /// `POST /graph/{version}/{phone_number_id}/messages`,
    /// `POST /graph/{version}/{phone_number_id}/media`,
    /// `GET|DELETE /graph/{version}/{media_id}` and the media download URLs,
    /// `GET|POST|DELETE /sandbox/faults`, `GET|DELETE /sandbox/sent`,
    /// `POST /sandbox/media`, `GET /sandbox/media/{id}` and `POST /sandbox/inbound`.
    pub fn router(&self) -> Router {
        let large_body = DefaultBodyLimit::max(MAX_MEDIA_BODY);
        Router::new()
            .route(
                "/graph/{version}/{phone_number_id}/messages",
                post(messages::send),
            )
            .route(
                "/graph/{version}/{phone_number_id}/media",
                post(media::upload).layer(large_body),
            )
            .route(
                "/graph/{version}/{media_id}",
                get(media::url).delete(media::delete),
            )
            .route(
                "/sandbox/lookaside/whatsapp_business/attachments/{token}",
                get(media::download),
            )
            .route("/sandbox/media", post(media::seed).layer(large_body))
            .route("/sandbox/media/{id}", get(media::read))
            .route(
                "/sandbox/faults",
                get(faults::list).post(faults::add).delete(faults::clear),
            )
            .route("/sandbox/sent", get(list_sent).delete(clear_sent))
            .route("/sandbox/inbound", post(inbound::simulate))
            .with_state(self.clone())
    }

    /// What the sandbox accepted, in arrival order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.sent_log().clone()
    }

    fn sent_log(&self) -> MutexGuard<'_, Vec<SentMessage>> {
        lock(&self.inner.sent)
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section leaves the data valid.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn list_sent(State(sandbox): State<Sandbox>) -> Json<Vec<SentMessage>> {
    Json(sandbox.sent())
}

async fn clear_sent(State(sandbox): State<Sandbox>) -> StatusCode {
    sandbox.sent_log().clear();
    StatusCode::NO_CONTENT
}
