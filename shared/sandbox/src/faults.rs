//! Fault injection for tests: a FIFO of faults, each consumed by one send.
//!
//! A fault is exactly one of `{"http_status":500}` (a 131000 error at that
//! status), `{"error_code":130429}` (that Meta error at Meta's status for it),
//! `{"delay_ms":N}` (sleep, then answer normally: a slow Meta that still takes
//! the message), `{"hang_ms":N}` (sleep, then close the connection without
//! taking it) or `{"reset":true}` (close the connection at once), plus an optional `"to"` restricting it
//! to sends to that number.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::meta_error::{meta_error, meta_error_with_status};
use crate::problem::problem;
use crate::{lock, Sandbox};
use zapfn_whatsapp::errors::title;
use zapfn_whatsapp::wa_id;

/// One injected fault, as posted to `/sandbox/faults`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hang_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    reset: bool,
}

/// Body of `POST /sandbox/faults` and of the listing.
#[derive(Serialize, Deserialize)]
pub(crate) struct Faults {
    faults: Vec<Fault>,
}

impl Fault {
    fn check(&self) -> Result<(), String> {
        let kinds = [
            self.http_status.is_some(),
            self.error_code.is_some(),
            self.delay_ms.is_some(),
            self.hang_ms.is_some(),
            self.reset,
        ];
        if kinds.into_iter().filter(|&kind| kind).count() != 1 {
            return Err(
                "each fault needs exactly one of http_status, error_code, delay_ms, hang_ms or reset:true"
                    .to_owned(),
            );
        }
        match self.http_status {
            Some(status) if !(400..=599).contains(&status) => Err(format!(
                "http_status {status} is not an error status (400..=599)"
            )),
            _ => Ok(()),
        }
    }

    fn matches(&self, to: Option<&str>) -> bool {
        match (&self.to, to) {
            (None, _) => true,
            (Some(wanted), Some(to)) => wa_id(wanted) == wa_id(to),
            (Some(_), None) => false,
        }
    }

    /// Applies the fault: `Some(response)` to answer with instead of handling
    /// the send, `None` to carry on normally.
    pub(crate) async fn apply(&self) -> Option<Response> {
        if let Some(ms) = self.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return None;
        }
        if let Some(ms) = self.hang_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Some(reset());
        }
        if self.reset {
            return Some(reset());
        }
        if let Some(status) = self.http_status {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Some(meta_error_with_status(status, 131000, title(131000)));
        }
        self.error_code.map(|code| meta_error(code, title(code)))
    }
}

/// Removes and returns the first pending fault that applies to a send to `to`.
pub(crate) fn take(sandbox: &Sandbox, to: Option<&str>) -> Option<Fault> {
    let mut queue = lock(&sandbox.inner.faults);
    let index = queue.iter().position(|fault| fault.matches(to))?;
    queue.remove(index)
}

/// A response whose body fails before its first byte. hyper has only buffered
/// the head at that point, so it drops the connection without writing
/// anything: the client sees the connection close with no answer.
fn reset() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "sandbox fault: reset",
        ))
    });
    Response::new(Body::from_stream(failing))
}

/// `POST /sandbox/faults`: appends faults; answers with all pending ones.
pub(crate) async fn add(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let Faults { faults } = match serde_json::from_slice(&body) {
        Ok(faults) => faults,
        Err(error) => return problem(StatusCode::BAD_REQUEST, format!("invalid faults: {error}")),
    };
    if let Err(detail) = faults.iter().try_for_each(Fault::check) {
        return problem(StatusCode::BAD_REQUEST, detail);
    }
    lock(&sandbox.inner.faults).extend(faults);
    list(State(sandbox)).await.into_response()
}

/// `GET /sandbox/faults`: the pending faults, first to apply first.
pub(crate) async fn list(State(sandbox): State<Sandbox>) -> Json<Faults> {
    let faults = lock(&sandbox.inner.faults).iter().cloned().collect();
    Json(Faults { faults })
}

/// `DELETE /sandbox/faults`: drops all pending faults.
pub(crate) async fn clear(State(sandbox): State<Sandbox>) -> StatusCode {
    lock(&sandbox.inner.faults).clear();
    StatusCode::NO_CONTENT
}
