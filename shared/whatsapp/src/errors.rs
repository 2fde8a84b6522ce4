//! Meta's Graph API errors and what a sender should do about each code.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error object as Meta returns it (`{"error": {...}}`) or puts in a status webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphError {
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_subcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
}

/// What to do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient (5xx-like, throughput 130429, app/WABA rate): retry with backoff.
    Retry,
    /// Pair rate limit 131056: wait 4^n seconds before the next message to this recipient.
    PairRateLimit,
    /// The request itself, the recipient, the window, the template or the token is wrong: do not retry.
    Permanent,
}

impl GraphError {
    /// Classifies Meta's code (see `../shared/notes/whatsapp-cloud-api.md` §7).
    pub fn class(&self) -> ErrorClass {
        classify(self.code)
    }
}

/// Meta's title for `code` (the text after `(#code)` in `error.message`).
pub fn title(code: i64) -> &'static str {
    match code {
        0 => "AuthException",
        1 => "API Unknown",
        2 => "API Service",
        4 => "Application request limit reached",
        10 => "Permission denied",
        100 => "Invalid parameter",
        190 => "Invalid OAuth access token - Cannot parse access token",
        80007 => "Rate limit issues",
        130429 => "Rate limit hit",
        131000 => "Something went wrong",
        131008 => "Required parameter is missing",
        131009 => "Parameter value is not valid",
        131016 => "Service unavailable",
        131026 => "Message undeliverable",
        131047 => "Re-engagement message",
        131048 => "Spam rate limit hit",
        131051 => "Unsupported message type",
        131056 => "(Business Account, Consumer Account) pair rate limit hit",
        131062 => "Business-scoped User ID recipients are not supported for this message",
        132000 => "Number of parameters does not match the expected number of params",
        132001 => "Template name does not exist in the translation",
        132018 => "There was an issue with the parameters in your template message",
        _ => "An error occurred",
    }
}

/// Classifies one of Meta's error codes.
pub fn classify(code: i64) -> ErrorClass {
    match code {
        131056 => ErrorClass::PairRateLimit,
        130429 | 4 | 80007 | 131000 | 131016 | 131057 | 1 | 2 => ErrorClass::Retry,
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_meta_codes() {
        for code in [130429, 131000, 131016, 4, 80007, 1, 2] {
            assert_eq!(classify(code), ErrorClass::Retry, "{code}");
        }
        assert_eq!(classify(131056), ErrorClass::PairRateLimit);
        for code in [
            131047, 131026, 131051, 131062, 132000, 132001, 132015, 132018, 190, 0, 10, 131048, 368,
        ] {
            assert_eq!(classify(code), ErrorClass::Permanent, "{code}");
        }
    }
}
