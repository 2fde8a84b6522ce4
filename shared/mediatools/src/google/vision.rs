//! Cloud Vision `images:annotate` with `TEXT_DETECTION` and `LABEL_DETECTION`.

use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::token::MetadataToken;
use super::{error_from, transport_error};
use crate::engines::ImageText;
use crate::ToolError;

const SERVICE: &str = "Cloud Vision";
/// Labels asked for per image.
const MAX_LABELS: u32 = 10;

/// A Cloud Vision client.
pub struct Vision {
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: String,
    pub(crate) token: Arc<MetadataToken>,
}

#[derive(Deserialize)]
struct BatchResponse {
    #[serde(default)]
    responses: Vec<AnnotateResponse>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AnnotateResponse {
    #[serde(default)]
    text_annotations: Vec<TextAnnotation>,
    full_text_annotation: Option<FullText>,
    #[serde(default)]
    label_annotations: Vec<Label>,
    error: Option<Status>,
}

#[derive(Deserialize)]
struct TextAnnotation {
    #[serde(default)]
    description: String,
    locale: Option<String>,
}

#[derive(Deserialize)]
struct FullText {
    #[serde(default)]
    text: String,
    #[serde(default)]
    pages: Vec<Page>,
}

#[derive(Deserialize)]
struct Page {
    confidence: Option<f32>,
}

#[derive(Deserialize)]
struct Label {
    description: String,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    code: i32,
    #[serde(default)]
    message: String,
}

impl Vision {
    /// Text and labels of `image` (JPEG, PNG, WebP... as bytes).
    pub async fn read(&self, image: &[u8]) -> Result<ImageText, ToolError> {
        let body = json!({"requests": [{
            "image": {"content": base64::engine::general_purpose::STANDARD.encode(image)},
            "features": [
                {"type": "TEXT_DETECTION"},
                {"type": "LABEL_DETECTION", "maxResults": MAX_LABELS}
            ]
        }]});
        let response = self
            .http
            .post(format!("{}/v1/images:annotate", self.base_url))
            .bearer_auth(self.token.bearer().await?)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(SERVICE, e))?;
        if !response.status().is_success() {
            return Err(error_from(SERVICE, response).await);
        }
        let batch: BatchResponse = response.json().await.map_err(|e| ToolError::Unreadable {
            tool: SERVICE,
            detail: e.to_string(),
        })?;
        image_text(batch.responses.into_iter().next().unwrap_or_default())
    }
}

fn image_text(response: AnnotateResponse) -> Result<ImageText, ToolError> {
    if let Some(error) = response.error {
        // google.rpc codes: 3 INVALID_ARGUMENT (bad image data) is the image's fault.
        return Err(ToolError::Service {
            service: SERVICE,
            detail: format!("error {}: {}", error.code, error.message),
            transient: error.code != 3,
        });
    }
    let first = response.text_annotations.first();
    let text = match &response.full_text_annotation {
        Some(full) => full.text.clone(),
        None => first.map(|t| t.description.clone()).unwrap_or_default(),
    };
    let confidences: Vec<f32> = response
        .full_text_annotation
        .iter()
        .flat_map(|full| full.pages.iter().filter_map(|p| p.confidence))
        .collect();
    Ok(ImageText {
        text: text.trim().to_owned(),
        confidence: (!confidences.is_empty())
            .then(|| confidences.iter().sum::<f32>() / confidences.len() as f32),
        labels: response
            .label_annotations
            .into_iter()
            .map(|l| l.description)
            .collect(),
        language: first.and_then(|t| t.locale.clone()),
        engine: "google-vision",
    })
}
