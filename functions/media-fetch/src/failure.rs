//! Why fetching a media file did not work, and whether trying again may help.

use serde_json::{json, Value};
use zapfn_media::check::RefusalCode;
use zapfn_media::Refusal;
use zapfn_whatsapp::errors::ErrorClass;
use zapfn_whatsapp::graph::CallError;

/// A failed fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Will fail again: recorded on the message as `failed`, never retried.
    Permanent { code: &'static str, reason: String },
    /// May work later (network, 5xx, storage): retried with backoff.
    Transient(String),
}

impl Failure {
    /// A permanent failure with a machine-readable `code`.
    pub fn permanent(code: &'static str, reason: impl Into<String>) -> Failure {
        Failure::Permanent {
            code,
            reason: reason.into(),
        }
    }

    /// A Graph API error: Meta's permanent errors (unknown media id, bad token) are permanent.
    pub fn graph(what: &str, error: CallError) -> Failure {
        match error.class() {
            ErrorClass::Permanent => Failure::permanent(
                "graph_error",
                format!("{what}: Graph API error {}: {error}", error.code()),
            ),
            _ => Failure::Transient(format!("{what}: {error}")),
        }
    }

    /// The reason, for logs and retries.
    pub fn reason(&self) -> &str {
        match self {
            Failure::Permanent { reason, .. } | Failure::Transient(reason) => reason,
        }
    }

    /// The `media.object` value of a message whose fetch failed for good.
    pub fn record(&self, media_id: Option<&str>) -> Value {
        match self {
            Failure::Permanent { code, reason } => {
                json!({ "status": "failed", "code": code, "reason": reason, "media_id": media_id })
            }
            Failure::Transient(reason) => json!({
                "status": "failed", "code": "gave_up", "transient": true, "reason": reason, "media_id": media_id
            }),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        let code = match refusal.code {
            RefusalCode::Empty => "empty",
            RefusalCode::TooLarge => "too_large",
            RefusalCode::UnsupportedType => "unsupported_type",
            RefusalCode::TypeMismatch => "type_mismatch",
        };
        Failure::permanent(code, refusal.reason)
    }
}
