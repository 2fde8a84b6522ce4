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
    /// Whether Meta may have taken the message although the call failed: no
    /// answer, a broken connection, or a gateway's 502/504 (the backend behind
    /// it may have taken the request).
    pub fn maybe_delivered(&self) -> bool {
        match self {
            CallError::Api { http_status, .. } => matches!(http_status, 502 | 504),
            CallError::Timeout | CallError::Transport(_) => true,
            CallError::Unreachable(_) => false,
        }
    }

    /// Whether the call may be tried again, and how: a 5xx or a 429 always may,
    /// whatever code the body names.
    pub fn class(&self) -> ErrorClass {
        match self {
            CallError::Api { http_status, error } => match error.class() {
                ErrorClass::Permanent if *http_status >= 500 || *http_status == 429 => {
                    ErrorClass::Retry
                }
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A client of a loopback server that answers every request with `status` and `body`.
    async fn answering(status: u16, body: String) -> GraphClient {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    read_request(&mut socket).await;
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        GraphClient::new(GraphConfig {
            base_url: format!("http://{address}"),
            api_version: "v23.0".into(),
            access_token: "token".into(),
            timeout: Duration::from_secs(10),
        })
    }

    /// Reads the request head and as much body as it announces.
    async fn read_request(socket: &mut TcpStream) {
        let mut request = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            let read = socket.read(&mut chunk).await.unwrap_or(0);
            request.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
            let Some(head_end) = text.find("\r\n\r\n") else {
                if read == 0 {
                    return;
                }
                continue;
            };
            let length: usize = text[..head_end]
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            if read == 0 || request.len() >= head_end + 4 + length {
                return;
            }
        }
    }

    async fn send_error(status: u16, body: impl Into<String>) -> CallError {
        answering(status, body.into())
            .await
            .send_message(
                "106540352242922",
                &serde_json::json!({"to": "5511999990000"}),
            )
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn http_429_is_retried_whatever_the_code() {
        for code in ["613", "17", "133016", "131047", "130429"] {
            let body = format!(r#"{{"error":{{"code":{code},"message":"slow down"}}}}"#);
            let error = send_error(429, body).await;
            assert_eq!(error.class(), ErrorClass::Retry, "{code}: {error}");
        }
        let paced = send_error(429, r#"{"error":{"code":131056,"message":"pair"}}"#).await;
        assert_eq!(paced.class(), ErrorClass::PairRateLimit, "pair pacing kept");
        let refused = send_error(400, r#"{"error":{"code":613,"message":"limit"}}"#).await;
        assert_eq!(refused.class(), ErrorClass::Permanent, "not at 429");
    }

    #[tokio::test]
    async fn gateway_errors_may_have_delivered() {
        for status in [502, 504] {
            let error = send_error(status, "<html>bad gateway</html>").await;
            assert!(error.maybe_delivered(), "{status}: {error}");
            assert_eq!(error.class(), ErrorClass::Retry, "{status}");
            let graph = send_error(status, r#"{"error":{"code":131000,"message":"x"}}"#).await;
            assert!(graph.maybe_delivered(), "{status} with a Graph body");
        }
        for status in [500, 503] {
            let error = send_error(status, "oops").await;
            assert!(!error.maybe_delivered(), "{status}: {error}");
            assert_eq!(error.class(), ErrorClass::Retry, "{status}");
        }
        let refused = send_error(400, r#"{"error":{"code":100,"message":"bad"}}"#).await;
        assert!(!refused.maybe_delivered());
    }
}
