//! Media routes: `GET /v1/media/{message id}` serves an inbound message's stored
//! file, and `POST /v1/{phone_number_id}/media` takes Meta's upload form, checks
//! it and uploads it to the Graph API, answering Meta's media id.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use zapfn_blob::BlobKey;
use zapfn_media::check::RefusalCode;
use zapfn_media::{check, safe_filename, MediaKind};
use zapfn_runtime::auth::Caller;
use zapfn_runtime::{Context, Problem};
use zapfn_store::Scope;
use zapfn_whatsapp::errors::ErrorClass;

/// How long a signed URL handed out by `GET /v1/media/{id}` works.
const SIGNED_URL_TTL: Duration = Duration::from_secs(300);
/// Longest an upload to the Graph API may take.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(45);
/// What a client is told to wait before asking again for media still being fetched.
const PENDING_RETRY_SECONDS: &str = "2";

/// `GET /v1/media/{id}` (zapfn id or wamid): the stored bytes with their type,
/// or a 302 (Found) to a signed URL where the blob store has them. 404 when the message
/// or its media is unknown; 409 with `media_status` while the file is `pending`
/// (with `Retry-After`) or when it `failed` (with the recorded `reason`).
pub async fn read(
    State(context): State<Context>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Read)?;
    let message = crate::read::visible_message(&context, &caller, &id).await?;
    let media = message.media.unwrap_or(Value::Null);
    let object = &media["object"];
    let status = object["status"].as_str();
    if status.is_none() && media["id"].is_null() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("message {id} has no stored media"),
        ));
    }
    match status {
        Some("done") => {}
        Some("failed") => {
            let reason = object["reason"].as_str().unwrap_or("unknown");
            return Ok(not_ready(
                "failed",
                format!("the media of message {id} could not be stored: {reason}"),
                Some(object["code"].clone()),
            ));
        }
        _ => {
            let mut response = not_ready(
                "pending",
                format!("the media of message {id} is still being fetched"),
                None,
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(PENDING_RETRY_SECONDS),
            );
            return Ok(response);
        }
    }
    let key = object["key"]
        .as_str()
        .and_then(|key| BlobKey::new(key).ok())
        .ok_or_else(|| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("message {id} records no valid object key"),
            )
        })?;
    let unavailable = |error: zapfn_blob::BlobError| {
        tracing::error!(%error, "blob store failure");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the blob store is unavailable; try again",
        )
    };
    if let Some(url) = context
        .blobs
        .signed_url(&key, SIGNED_URL_TTL)
        .await
        .map_err(unavailable)?
    {
        return Ok((StatusCode::FOUND, [(header::LOCATION, url)]).into_response());
    }
    let Some(blob) = context.blobs.get(&key).await.map_err(unavailable)? else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("the stored object of message {id} is gone"),
        ));
    };
    let mut response = blob.bytes.into_response();
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(&blob.info.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", blob.info.sha256)) {
        headers.insert(header::ETAG, etag);
    }
    if let Some(disposition) = object["filename"]
        .as_str()
        .and_then(safe_filename)
        .and_then(|name| {
            HeaderValue::from_str(&format!("inline; filename=\"{}\"", name.replace('\\', "_"))).ok()
        })
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// A 409 problem saying the media is `pending` or `failed`.
fn not_ready(media_status: &str, detail: String, code: Option<Value>) -> Response {
    let mut body = json!({
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": detail,
        "media_status": media_status,
    });
    if let Some(code) = code.filter(|code| !code.is_null()) {
        body["code"] = code;
    }
    (
        StatusCode::CONFLICT,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// One part of the upload form.
struct Form {
    messaging_product: Option<String>,
    declared_type: Option<String>,
    file: Option<(Bytes, Option<String>, Option<String>)>,
}

/// Reads the multipart form; a malformed body is a 400 problem.
async fn read_form(multipart: Result<Multipart, MultipartRejection>) -> Result<Form, Problem> {
    let malformed = |detail: String| Problem::new(StatusCode::BAD_REQUEST, detail);
    let mut multipart = multipart.map_err(|rejection| {
        Problem::new(
            rejection.status(),
            format!(
                "expected a multipart/form-data body: {}",
                rejection.body_text()
            ),
        )
    })?;
    let mut form = Form {
        messaging_product: None,
        declared_type: None,
        file: None,
    };
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|error| malformed(format!("malformed multipart body: {error}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let part_type = field.content_type().map(str::to_owned);
        let file_name = field.file_name().map(str::to_owned);
        let value = field.bytes().await.map_err(|error| {
            Problem::new(
                error.status(),
                format!("malformed multipart body: {}", error.body_text()),
            )
        })?;
        let text = || String::from_utf8_lossy(&value).trim().to_owned();
        match name.as_str() {
            "messaging_product" => form.messaging_product = Some(text()),
            "type" => form.declared_type = Some(text()),
            "file" => form.file = Some((value, part_type, file_name)),
            _ => {}
        }
    }
    Ok(form)
}

/// `POST /v1/{phone_number_id}/media`: Meta's upload form (`messaging_product`,
/// `type`, `file`), checked (type, size, content) and uploaded to the Graph API;
/// answers `{"id"}`, usable as `{"image": {"id": ...}}` in a send.
pub async fn upload(
    State(context): State<Context>,
    caller: Caller,
    Path(phone_number_id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, Problem> {
    if phone_number_id.is_empty() || !phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "must be the numeric id of your business number",
        )
        .with_field("phone_number_id"));
    }
    caller.require_for(Scope::Send, &phone_number_id)?;
    let form = read_form(multipart).await?;
    if form.messaging_product.as_deref() != Some("whatsapp") {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "messaging_product must be \"whatsapp\"",
        )
        .with_field("messaging_product"));
    }
    let Some((bytes, part_type, file_name)) = form.file else {
        return Err(
            Problem::new(StatusCode::BAD_REQUEST, "the form has no file part").with_field("file"),
        );
    };
    let Some(declared) = form.declared_type.or(part_type).filter(|t| !t.is_empty()) else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "give the file's MIME type in the type field",
        )
        .with_field("type"));
    };
    let Some(kind) = MediaKind::ALL
        .into_iter()
        .find(|kind| kind.accepts(&declared))
    else {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{declared} is not a media type WhatsApp accepts"),
        )
        .with_field("type"));
    };
    let checked = check(kind, Some(&declared), &bytes).map_err(|refusal| {
        let status = match refusal.code {
            RefusalCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RefusalCode::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RefusalCode::Empty | RefusalCode::TypeMismatch => StatusCode::BAD_REQUEST,
        };
        Problem::new(status, refusal.reason).with_field("file")
    })?;
    let filename = file_name
        .as_deref()
        .and_then(safe_filename)
        .unwrap_or_else(|| format!("file.{}", checked.extension));
    let id = context
        .graph
        .upload_media(
            &phone_number_id,
            bytes,
            &checked.content_type,
            &filename,
            UPLOAD_TIMEOUT,
        )
        .await
        .map_err(|error| {
            tracing::warn!(%error, "media upload to the Graph API failed");
            let status = match error.class() {
                ErrorClass::Permanent => StatusCode::BAD_GATEWAY,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            Problem::new(status, format!("the Graph API refused the upload: {error}"))
        })?;
    Ok(Json(json!({ "id": id })))
}
