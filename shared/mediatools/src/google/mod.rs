//! Google's media APIs over REST, authorised by the metadata server's token
//! (the service account a Cloud Run service runs as): Cloud Vision for text
//! and labels, Speech-to-Text for transcripts.

pub mod speech;
pub mod token;
pub mod vision;

use crate::ToolError;

/// Maps an HTTP error answer (`{"error": {"code", "message", "status"}}`) to a
/// [`ToolError`]: 401/403 (credentials), 408, 429 and 5xx may pass later.
async fn error_from(service: &'static str, response: reqwest::Response) -> ToolError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect());
    ToolError::Service {
        service,
        detail: format!("HTTP {}: {message}", status.as_u16()),
        transient: matches!(status.as_u16(), 401 | 403 | 408 | 429) || status.is_server_error(),
    }
}

/// A transport failure (refused, reset, timed out): worth retrying.
fn transport_error(service: &'static str, error: reqwest::Error) -> ToolError {
    ToolError::Service {
        service,
        detail: error.to_string(),
        transient: true,
    }
}
