//! Speech-to-Text v1: `speech:recognize` for up to a minute of audio,
//! `speech:longrunningrecognize` and operation polling beyond that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::token::MetadataToken;
use super::{error_from, transport_error};
use crate::engines::Transcript;
use crate::ToolError;

const SERVICE: &str = "Speech-to-Text";
/// Longest audio `speech:recognize` takes (Google's limit is one minute).
const SYNC_MAX_SECONDS: f64 = 55.0;
/// Between two looks at a long-running operation.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A Speech-to-Text client.
pub struct Speech {
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: String,
    pub(crate) token: Arc<MetadataToken>,
    /// BCP 47 language, e.g. `pt-BR`.
    pub(crate) language: String,
    /// How long to wait for a long-running operation.
    pub(crate) timeout: Duration,
}

#[derive(Deserialize, Default)]
struct RecognizeResponse {
    #[serde(default)]
    results: Vec<RecognitionResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecognitionResult {
    #[serde(default)]
    alternatives: Vec<Alternative>,
    language_code: Option<String>,
}

#[derive(Deserialize)]
struct Alternative {
    #[serde(default)]
    transcript: String,
    confidence: Option<f32>,
}

#[derive(Deserialize)]
struct Operation {
    name: String,
    #[serde(default)]
    done: bool,
    error: Option<Value>,
    response: Option<RecognizeResponse>,
}

impl Speech {
    /// Transcribes `wav` (16 kHz mono 16-bit PCM) lasting `duration_s`.
    pub async fn transcribe(&self, wav: &[u8], duration_s: f64) -> Result<Transcript, ToolError> {
        let body = json!({
            "config": {
                "encoding": "LINEAR16",
                "sampleRateHertz": 16000,
                "audioChannelCount": 1,
                "languageCode": self.language,
                "enableAutomaticPunctuation": true
            },
            "audio": {"content": base64::engine::general_purpose::STANDARD.encode(wav)}
        });
        let response = if duration_s <= SYNC_MAX_SECONDS {
            self.call(
                self.http
                    .post(format!("{}/v1/speech:recognize", self.base_url))
                    .json(&body),
            )
            .await?
        } else {
            let operation = self
                .call(
                    self.http
                        .post(format!("{}/v1/speech:longrunningrecognize", self.base_url))
                        .json(&body),
                )
                .await?;
            self.wait(operation).await?
        };
        Ok(self.transcript(response))
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ToolError> {
        let response = request
            .bearer_auth(self.token.bearer().await?)
            .send()
            .await
            .map_err(|e| transport_error(SERVICE, e))?;
        if !response.status().is_success() {
            return Err(error_from(SERVICE, response).await);
        }
        response.json().await.map_err(|e| ToolError::Unreadable {
            tool: SERVICE,
            detail: e.to_string(),
        })
    }

    /// Polls a long-running recognition until it is done.
    async fn wait(&self, mut operation: Operation) -> Result<RecognizeResponse, ToolError> {
        let deadline = Instant::now() + self.timeout;
        while !operation.done {
            if Instant::now() >= deadline {
                return Err(ToolError::Timeout {
                    tool: SERVICE,
                    after: self.timeout,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            let url = format!("{}/v1/operations/{}", self.base_url, operation.name);
            operation = self.call(self.http.get(url)).await?;
        }
        if let Some(error) = operation.error {
            return Err(ToolError::Service {
                service: SERVICE,
                detail: format!("recognition failed: {error}"),
                transient: false,
            });
        }
        Ok(operation.response.unwrap_or_default())
    }

    fn transcript(&self, response: RecognizeResponse) -> Transcript {
        let best: Vec<&Alternative> = response
            .results
            .iter()
            .filter_map(|r| r.alternatives.first())
            .collect();
        let confidences: Vec<f32> = best.iter().filter_map(|a| a.confidence).collect();
        Transcript {
            text: best
                .iter()
                .map(|a| a.transcript.trim())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            language: response
                .results
                .iter()
                .find_map(|r| r.language_code.clone())
                .unwrap_or_else(|| self.language.clone()),
            confidence: (!confidences.is_empty())
                .then(|| confidences.iter().sum::<f32>() / confidences.len() as f32),
            engine: "google-speech",
        }
    }
}
