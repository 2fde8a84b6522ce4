//! The media-fetch function: for every inbound image, video, audio (voice notes
//! too), document and sticker, download the file from the Graph API before its
//! URL expires, verify Meta's SHA-256, check Meta's type rules against the real
//! content and the size against what customers can send (100 MiB of any kind),
//! store it in the blob store under
//! `{phone_number_id}/{message_id}/original.{ext}`, and in one store call record
//! `media.object` on the message and publish a `media` event for the processors
//! (none with `ZAPFN_MEDIA_TRIGGER=storage`: deployed, the bucket's
//! object-finalized events start them).
//!
//! `media.object.status` is `pending` while fetching (with the last error when
//! retrying), `done` with key, type, checksum and size, or `failed` with a code
//! and reason. Size, type and checksum violations and Meta's permanent errors
//! fail at once; network, 5xx and storage errors are retried with backoff, and
//! recorded as failed when the retries run out. A redelivered event whose
//! object is already stored is acknowledged without another download.

mod download;
mod failure;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use zapfn_blob::media::original_key;
use zapfn_blob::{BlobKey, BlobStore};
use zapfn_media::check::check_inbound;
use zapfn_media::{safe_filename, MediaKind};
use zapfn_runtime::{retry, Context, Function, MediaTrigger, Subscription};
use zapfn_store::{topics, Delivery, MediaStored, MessageEvent, NewEvent, Settlement, Store};
use zapfn_whatsapp::graph::GraphClient;

pub use download::{download, Downloaded};
pub use failure::Failure;

/// Longest one download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(45);
/// What a delivery needs besides downloads: store calls and putting up to
/// 100 MiB in the blob store.
const STORE_BUDGET: Duration = Duration::from_secs(120);
/// Lease beyond the run budget, so a run at its limit still settles in time.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// Downloads at once.
const CONCURRENCY: usize = 8;

/// The media-fetch function.
pub fn function(context: &Context) -> Function {
    let fetcher = Arc::new(Fetcher::new(context));
    let lease = lease(context.config.graph_timeout);
    Function::events(
        "media-fetch",
        vec![
            Subscription::new(topics::MESSAGES, CONCURRENCY, move |delivery| {
                let fetcher = fetcher.clone();
                async move { fetcher.handle(&delivery).await }
            })
            // Longer than a run: a second run meanwhile could overwrite `done`.
            .with_lease(lease),
        ],
    )
}

/// A delivery's lease: longer than a run ([`run_budget`]), so a second run
/// meanwhile cannot overwrite `done`; what the deployed service's request
/// timeout must allow.
pub fn lease(graph_timeout: Duration) -> Duration {
    run_budget(graph_timeout) + LEASE_MARGIN
}

/// The longest handling one delivery takes with Graph API calls bounded by
/// `graph_timeout`: every download try, plus the store and blob store.
pub fn run_budget(graph_timeout: Duration) -> Duration {
    download::longest(graph_timeout, DOWNLOAD_TIMEOUT) + STORE_BUDGET
}

/// Fetches and stores inbound media.
pub struct Fetcher {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    graph: GraphClient,
    media_trigger: MediaTrigger,
    retry_base: Duration,
    max_attempts: u32,
    max_retry_age: Duration,
}

/// What one media message asks for, read from the webhook's media object.
struct Request {
    event: MessageEvent,
    kind: MediaKind,
    media_id: Option<String>,
    declared_type: Option<String>,
    sha256: Option<String>,
    filename: Option<String>,
    voice: bool,
}

impl Fetcher {
    /// A fetcher configured from the context.
    pub fn new(context: &Context) -> Fetcher {
        Fetcher {
            store: context.store.clone(),
            blobs: context.blobs.clone(),
            graph: context.graph.clone(),
            media_trigger: context.config.media_trigger,
            retry_base: context.config.retry_base,
            max_attempts: context.config.max_attempts,
            max_retry_age: context.config.max_retry_age,
        }
    }

    /// Handles one `messages` event; messages without media are acknowledged at once.
    pub async fn handle(&self, delivery: &Delivery) -> Settlement {
        let event: MessageEvent = match serde_json::from_value(delivery.payload.clone()) {
            Ok(event) => event,
            Err(error) => {
                return Settlement::DeadLetter {
                    error: format!("not a message event: {error}"),
                }
            }
        };
        let Some(kind) = MediaKind::parse(&event.message_type) else {
            return Settlement::Ack;
        };
        let message = match self.store.message(&event.message_id).await {
            Ok(Some(message)) => message,
            Ok(None) => {
                tracing::warn!(message_id = %event.message_id, "media event for an unknown message");
                return Settlement::Ack;
            }
            Err(error) => return self.retry(delivery, error.to_string()),
        };
        let media = message.media.unwrap_or(Value::Null);
        if matches!(media["object"]["status"].as_str(), Some("done" | "failed")) {
            tracing::info!(message_id = %event.message_id, "media already fetched");
            return Settlement::Ack;
        }
        let text = |key: &str| media[key].as_str().map(str::to_owned);
        let request = Request {
            kind,
            media_id: text("id").filter(|id| !id.is_empty()),
            declared_type: text("mime_type"),
            sha256: text("sha256"),
            filename: text("filename").as_deref().and_then(safe_filename),
            voice: media["voice"].as_bool().unwrap_or(false),
            event,
        };
        if delivery.attempt == 1 {
            if let Err(error) = self
                .record(&request, json!({ "status": "pending" }), vec![])
                .await
            {
                return self.retry(delivery, error);
            }
        }
        match self.fetch(&request).await {
            Ok(()) => Settlement::Ack,
            Err(Failure::Transient(error)) => self.transient(delivery, &request, error).await,
            Err(failure) => {
                tracing::warn!(message_id = %request.event.message_id, reason = failure.reason(), "media refused");
                let record = failure.record(request.media_id.as_deref());
                match self.record(&request, record, vec![]).await {
                    Ok(()) => Settlement::Ack,
                    Err(error) => self.retry(delivery, error),
                }
            }
        }
    }

    /// Downloads, verifies, stores and records one media file.
    async fn fetch(&self, request: &Request) -> Result<(), Failure> {
        let Some(media_id) = &request.media_id else {
            return Err(Failure::permanent(
                "no_media_id",
                "the webhook's media object has no id",
            ));
        };
        let Downloaded { bytes, meta } = download(
            &self.graph,
            media_id,
            request.sha256.as_deref(),
            DOWNLOAD_TIMEOUT,
        )
        .await?;
        let declared = request
            .declared_type
            .as_deref()
            .or(meta.mime_type.as_deref());
        let checked = check_inbound(request.kind, declared, &bytes)?;
        let event = &request.event;
        let key = BlobKey::new(original_key(
            &event.phone_number_id,
            &event.message_id,
            checked.extension,
        ))
        .map_err(|error| Failure::permanent("invalid_key", error.to_string()))?;
        let info = self
            .blobs
            .put(&key, bytes, &checked.content_type)
            .await
            .map_err(|error| Failure::Transient(error.to_string()))?;
        let stored = MediaStored {
            message_id: event.message_id.clone(),
            wamid: event.wamid.clone(),
            phone_number_id: event.phone_number_id.clone(),
            from: event.from.clone(),
            message_type: request.kind.as_str().to_owned(),
            key: info.key.clone(),
            content_type: info.content_type.clone(),
            sha256: info.sha256.clone(),
            size: info.size,
            filename: request.filename.clone(),
            voice: request.voice,
            group_id: event.group_id.clone(),
        };
        let object = json!({
            "status": "done",
            "key": info.key,
            "content_type": info.content_type,
            "sha256": info.sha256,
            "size": info.size,
            "filename": request.filename,
            "voice": request.voice,
            "animated": checked.animated,
            "media_id": media_id,
        });
        let published = match self.media_trigger {
            MediaTrigger::Events => vec![NewEvent {
                topic: topics::MEDIA.to_owned(),
                ordering_key: None,
                payload: serde_json::to_value(&stored).expect("MediaStored serialises"),
            }],
            MediaTrigger::Storage => Vec::new(),
        };
        self.record(request, object, published)
            .await
            .map_err(Failure::Transient)?;
        tracing::info!(message_id = %event.message_id, key = %key, size = info.size, "media stored");
        Ok(())
    }

    /// Sets `media.object` (publishing `events` only if it changed).
    async fn record(
        &self,
        request: &Request,
        value: Value,
        events: Vec<NewEvent>,
    ) -> Result<(), String> {
        self.store
            .annotate_media(&request.event.message_id, "object", value, events)
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    }

    /// A transient failure: retried while attempts and the retry window last (the
    /// message shows `pending` with the error), then recorded as failed.
    async fn transient(&self, delivery: &Delivery, request: &Request, error: String) -> Settlement {
        let after = retry::backoff(self.retry_base, delivery.attempt);
        let elapsed_ms = now_ms() - delivery.first_attempt_at_ms;
        let out_of_retries = delivery.attempt >= self.max_attempts
            || elapsed_ms + after.as_millis() as i64 > self.max_retry_age.as_millis() as i64;
        tracing::warn!(message_id = %request.event.message_id, attempt = delivery.attempt, out_of_retries, %error, "media fetch failed");
        let media_id = request.media_id.as_deref();
        let value = if out_of_retries {
            Failure::Transient(format!(
                "gave up after {} attempts: {error}",
                delivery.attempt
            ))
            .record(media_id)
        } else {
            json!({ "status": "pending", "attempts": delivery.attempt, "last_error": error, "media_id": media_id })
        };
        if let Err(store_error) = self.record(request, value, vec![]).await {
            return self.retry(delivery, store_error);
        }
        if out_of_retries {
            Settlement::DeadLetter { error }
        } else {
            Settlement::Retry { after, error }
        }
    }

    fn retry(&self, delivery: &Delivery, error: String) -> Settlement {
        Settlement::Retry {
            after: retry::backoff(self.retry_base, delivery.attempt),
            error,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
