//! `POST /graph/{version}/{phone_number_id}/messages`: Meta's send endpoint.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use zapfn_whatsapp::builders::new_wamid;
use zapfn_whatsapp::send::{contacts_answer, validate};

use crate::meta_error::{meta_error, meta_error_with_status};
use crate::{faults, statuses, Sandbox, SentMessage};

/// Checks the bearer token, applies a pending fault, validates the body, records
/// the send and answers like Meta; accepted messages get status webhooks.
pub(crate) async fn send(
    State(sandbox): State<Sandbox>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !has_bearer_token(&headers) {
        return meta_error(190, "Authorization: Bearer <access token> is required");
    }
    let parsed = serde_json::from_slice::<Value>(&body);
    let to = parsed
        .as_ref()
        .ok()
        .and_then(|body| body.get("to"))
        .and_then(Value::as_str);
    if let Some(fault) = faults::take(&sandbox, to) {
        if let Some(response) = fault.apply().await {
            return response;
        }
    }
    let Ok(body) = parsed else {
        return meta_error(100, "The request body must be a JSON object");
    };
    let request = match validate(&body) {
        Ok(request) => request,
        Err(error) => {
            let details = format!("{}: {}", error.field, error.message);
            return meta_error_with_status(StatusCode::BAD_REQUEST, error.code, &details);
        }
    };

    let is_message = request.message_type != "read";
    let wamid = is_message.then(new_wamid);
    // No recipient number at INFO: phone numbers are personal data.
    tracing::info!(
        %phone_number_id, message_type = %request.message_type, ?wamid,
        "sandbox accepted a send"
    );
    let callback_data = body
        .get("biz_opaque_callback_data")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // Meta echoes the recipient as written, with its digits as the `wa_id`
    // (or its business-scoped `user_id`).
    let contacts = request.to.as_deref().map(|to| contacts_answer(&body, to));
    let written = |contacts: &Value| contacts[0]["input"].as_str().map(str::to_owned);
    sandbox.sent_log().push(SentMessage {
        phone_number_id: phone_number_id.clone(),
        to: contacts.as_ref().and_then(written),
        message_type: request.message_type,
        wamid: wamid.clone(),
        body,
        received_at_ms: chrono::Utc::now().timestamp_millis(),
    });
    let Some(wamid) = wamid else {
        return Json(json!({ "success": true })).into_response();
    };
    statuses::spawn(
        &sandbox,
        phone_number_id,
        wamid.clone(),
        request.to.unwrap_or_default(),
        callback_data,
    );
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": contacts.unwrap_or_else(|| json!([])),
        "messages": [{ "id": wamid }],
    }))
    .into_response()
}

/// Whether `Authorization` is `Bearer <non-empty token>` (scheme case-insensitive).
pub(crate) fn has_bearer_token(headers: &HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
        })
}
