//! Access tokens from the metadata server, cached until shortly before they expire.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use super::{error_from, transport_error};
use crate::ToolError;

/// A token is refreshed when less than this is left of it.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The default service account's OAuth token, from `GCE_METADATA_HOST`.
pub struct MetadataToken {
    http: reqwest::Client,
    url: String,
    cached: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl MetadataToken {
    /// Tokens from the metadata server at `host` (`metadata.google.internal`, or `127.0.0.1:PORT` in tests).
    pub fn new(http: reqwest::Client, host: &str) -> MetadataToken {
        MetadataToken {
            http,
            url: format!(
                "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
            ),
            cached: Mutex::new(None),
        }
    }

    /// A valid bearer token.
    pub async fn bearer(&self) -> Result<String, ToolError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if Instant::now() + REFRESH_MARGIN < *expires {
                return Ok(token.clone());
            }
        }
        let response = self
            .http
            .get(&self.url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(|e| transport_error("metadata server", e))?;
        if !response.status().is_success() {
            return Err(error_from("metadata server", response).await);
        }
        let token: TokenResponse = response.json().await.map_err(|e| ToolError::Unreadable {
            tool: "metadata server",
            detail: e.to_string(),
        })?;
        let expires = Instant::now() + Duration::from_secs(token.expires_in);
        *cached = Some((token.access_token.clone(), expires));
        Ok(token.access_token)
    }
}
