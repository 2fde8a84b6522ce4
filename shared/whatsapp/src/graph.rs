//! A small client for the Graph API endpoints zapfn calls.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::errors::{ErrorClass, GraphError};

pub mod media;

/// Where and how to reach the Graph API (Meta's, or the built-in sandbox).
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// e.g. `https://graph.facebook.com` or `http://127.0.0.1:8080/graph`.
    pub base_url: String,
    /// e.g. `v23.0`.
    pub api_version: String,
    pub access_token: String,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Graph API client; cheap to clone.
#[derive(Debug, Clone)]
pub struct GraphClient {
    config: std::sync::Arc<GraphConfig>,
    http: reqwest::Client,
}

/// Why a call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Meta answered with an error object.
    #[error("Graph API error {}: {}", .error.code, .error.message)]
    Api { http_status: u16, error: GraphError },
    /// No answer in time; Meta may or may not have accepted the request.
    #[error("Graph API timed out")]
    Timeout,
    /// No connection could be made: Meta certainly did not get the request.
    #[error("Graph API unreachable: {0}")]
    Unreachable(String),
    /// The connection broke mid-request, or an answer that is not Meta's shape.
    #[error("Graph API transport error: {0}")]
    Transport(String),
}

impl CallError {
    /// Whether Meta may have taken the message although the call failed.
    pub fn maybe_delivered(&self) -> bool {
        matches!(self, CallError::Timeout | CallError::Transport(_))
    }

    /// Whether the call may be tried again, and how.
    pub fn class(&self) -> ErrorClass {
        match self {
            CallError::Api { http_status, error } => match error.class() {
                ErrorClass::Permanent if *http_status >= 500 => ErrorClass::Retry,
                class => class,
            },
            CallError::Timeout | CallError::Unreachable(_) | CallError::Transport(_) => {
                ErrorClass::Retry
            }
        }
    }

    /// Meta's error code, or 0 for timeouts and transport errors.
    pub fn code(&self) -> i64 {
        match self {
            CallError::Api { error, .. } => error.code,
            _ => 0,
        }
    }
}

/// Meta's answer to a message send.
#[derive(Debug, Clone, Deserialize)]
pub struct SendResponse {
    #[serde(default)]
    pub messages: Vec<SentId>,
    #[serde(default)]
    pub success: Option<bool>,
}

/// One `messages[]` item of a send answer.
#[derive(Debug, Clone, Deserialize)]
pub struct SentId {
    pub id: String,
    #[serde(default)]
    pub message_status: Option<String>,
}

impl SendResponse {
    /// The wamid Meta assigned, if this was a message (mark-as-read has none).
    pub fn wamid(&self) -> Option<&str> {
        self.messages.first().map(|m| m.id.as_str())
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: GraphError,
}

impl GraphClient {
    /// Builds a client; the HTTP connection pool is shared by clones.
    pub fn new(config: GraphConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_max_idle_per_host(64)
            .build()
            .expect("TLS backend initialises");
        GraphClient {
            config: std::sync::Arc::new(config),
            http,
        }
    }

    /// `POST /{phone-number-id}/messages` with a Graph API send body.
    pub async fn send_message(
        &self,
        phone_number_id: &str,
        body: &Value,
    ) -> Result<SendResponse, CallError> {
        let response = self
            .http
            .post(self.url(&format!("{phone_number_id}/messages")))
            .bearer_auth(&self.config.access_token)
            .json(body)
            .send()
            .await
            .map_err(transport_error)?;
        read_answer(response).await
    }

    /// `{base_url}/{api_version}/{path}`.
    fn url(&self, path: &str) -> String {
        format!(
            "{}/{}/{path}",
            self.config.base_url.trim_end_matches('/'),
            self.config.api_version,
        )
    }
}

/// A Graph API answer: the success body as `T`, or Meta's error.
async fn read_answer<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, CallError> {
    let status = response.status();
    let bytes = response.bytes().await.map_err(transport_error)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes)
            .map_err(|e| CallError::Transport(format!("unexpected success body: {e}")));
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => Err(CallError::Api {
            http_status: status.as_u16(),
            error: body.error,
        }),
        Err(_) if status.is_server_error() || status.as_u16() == 429 => Err(CallError::Api {
            http_status: status.as_u16(),
            error: GraphError {
                code: if status.as_u16() == 429 {
                    130429
                } else {
                    131000
                },
                title: None,
                message: format!("HTTP {status} without a Graph error body"),
                error_subcode: None,
                error_data: None,
                fbtrace_id: None,
            },
        }),
        Err(_) => Err(CallError::Transport(format!(
            "HTTP {status} without a Graph error body"
        ))),
    }
}

fn transport_error(error: reqwest::Error) -> CallError {
    if error.is_timeout() {
        CallError::Timeout
    } else if error.is_connect() {
        CallError::Unreachable(error.to_string())
    } else {
        CallError::Transport(error.to_string())
    }
}
