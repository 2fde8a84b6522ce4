//! Signed webhook delivery, the way Meta posts to our `/webhook`.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use zapfn_whatsapp::signature::sign;

/// Retries after the first attempt, like Meta's redelivery (compressed in time:
/// about 10 s in all, so a receiver that restarts still gets its statuses).
const RETRIES: u32 = 10;
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Backoff before the first retry; doubles on each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);

/// Signs `body` with `secret` and POSTs it to `url` like Meta does; returns the HTTP status.
pub async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    secret: &[u8],
    body: &[u8],
) -> Result<StatusCode, reqwest::Error> {
    let response = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("X-Hub-Signature-256", sign(secret, body))
        .body(body.to_vec())
        .send()
        .await?;
    Ok(response.status())
}

/// Posts `body` until it is answered 200, retrying up to [`RETRIES`] times with
/// exponential backoff; logs and gives up after that.
pub(crate) async fn deliver(client: &reqwest::Client, url: &str, secret: &[u8], body: &[u8]) {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0..=RETRIES {
        match post_signed(client, url, secret, body).await {
            Ok(StatusCode::OK) => return,
            Ok(status) => tracing::warn!(%url, attempt, %status, "sandbox webhook refused"),
            Err(error) => tracing::warn!(%url, attempt, %error, "sandbox webhook failed"),
        }
        if attempt < RETRIES {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    tracing::error!(%url, "sandbox webhook dropped after {RETRIES} retries");
}

/// Puts the business's display number into a notification built by
/// `zapfn_whatsapp::builders` (metadata, and the `from` of a reply's context).
pub(crate) fn with_display_number(mut notification: Value, display_phone_number: &str) -> Value {
    let value = "/entry/0/changes/0/value";
    for pointer in [
        format!("{value}/metadata/display_phone_number"),
        format!("{value}/messages/0/context/from"),
    ] {
        if let Some(field) = notification.pointer_mut(&pointer) {
            *field = json!(display_phone_number);
        }
    }
    notification
}
