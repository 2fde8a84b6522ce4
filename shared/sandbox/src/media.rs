//! Meta's media endpoints, in memory: uploads (`POST /{phone-number-id}/media`),
//! media URLs that expire (`GET /{media-id}`), downloads that need the bearer
//! token, deletes; plus test controls: seeding inbound media (`POST /sandbox/media`)
//! with expired URLs, failing downloads or corrupted bytes, and reading what
//! was uploaded (`GET /sandbox/media/{id}`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use zapfn_media::checksum::{sha256_base64, sha256_hex};
use zapfn_media::{check, MediaKind};

use crate::messages::has_bearer_token;
use crate::meta_error::{meta_error, meta_error_with_status};
use crate::problem::problem;
use crate::{lock, Sandbox};

/// Meta's code for a media upload or download problem.
const MEDIA_ERROR: i64 = 131053;

/// One stored file and its test behaviour.
#[derive(Clone)]
pub(crate) struct Item {
    pub(crate) bytes: Bytes,
    pub(crate) mime_type: String,
    phone_number_id: Option<String>,
    /// Serve bytes whose SHA-256 is not the advertised one.
    corrupt: bool,
    /// URLs handed out already expired, first ones first.
    expired_urls: u32,
    /// Downloads answered 503 before one succeeds.
    unavailable: u32,
    /// How long a URL works (the sandbox's default unless seeded otherwise).
    url_ttl: Option<Duration>,
    /// Download requests with a live URL (answered 503 or not).
    downloads: u32,
}

/// A handed-out download URL.
struct Grant {
    media_id: String,
    expires_at: Instant,
}

/// Files and live URLs.
#[derive(Default)]
pub(crate) struct MediaStore {
    items: HashMap<String, Item>,
    grants: HashMap<String, Grant>,
}

/// A file the sandbox holds (uploaded by zapfn, or seeded by a test).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxMedia {
    pub bytes: Bytes,
    pub mime_type: String,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Download requests with a live URL, including those answered 503.
    pub downloads: u32,
}

impl Sandbox {
    /// The file stored under media id `id`.
    pub fn media(&self, id: &str) -> Option<SandboxMedia> {
        let store = lock(&self.inner.media);
        store.items.get(id).map(|item| SandboxMedia {
            sha256: sha256_hex(&item.bytes),
            bytes: item.bytes.clone(),
            mime_type: item.mime_type.clone(),
            downloads: item.downloads,
        })
    }

    /// Ids of every stored file.
    pub fn media_ids(&self) -> Vec<String> {
        lock(&self.inner.media).items.keys().cloned().collect()
    }

    pub(crate) fn media_item(&self, id: &str) -> Option<Item> {
        lock(&self.inner.media).items.get(id).cloned()
    }

    fn store_media(&self, item: Item) -> String {
        let id = new_media_id();
        lock(&self.inner.media).items.insert(id.clone(), item);
        id
    }
}

/// A numeric id like Meta's (16 digits).
fn new_media_id() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{}",
        rng.gen_range(1_000_000_000_000_000u64..10_000_000_000_000_000)
    )
}

/// `POST /graph/{version}/{phone_number_id}/media`: multipart `messaging_product`,
/// `type` and `file`, checked like Meta (type accepted for some media kind, size, content).
pub(crate) async fn upload(
    State(sandbox): State<Sandbox>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    if !has_bearer_token(&headers) {
        return meta_error(190, "Authorization: Bearer <access token> is required");
    }
    let mut multipart = match multipart {
        Ok(multipart) => multipart,
        Err(rejection) => {
            return meta_error(
                100,
                &format!("expected multipart/form-data: {}", rejection.body_text()),
            )
        }
    };
    let (mut product, mut declared, mut file) = (None, None, None);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => return meta_error(100, &format!("malformed multipart body: {error}")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let part_type = field.content_type().map(str::to_owned);
        let Ok(value) = field.bytes().await else {
            return meta_error(100, "malformed multipart body");
        };
        match name.as_str() {
            "messaging_product" => product = Some(String::from_utf8_lossy(&value).into_owned()),
            "type" => declared = Some(String::from_utf8_lossy(&value).into_owned()),
            "file" => file = Some((value, part_type)),
            _ => {}
        }
    }
    if product.as_deref() != Some("whatsapp") {
        return meta_error(100, "messaging_product must be \"whatsapp\"");
    }
    let Some((bytes, part_type)) = file else {
        return meta_error(131008, "the parameter file is required");
    };
    let Some(mime_type) = declared.or(part_type) else {
        return meta_error(131008, "the parameter type is required");
    };
    let Some(kind) = MediaKind::ALL
        .into_iter()
        .find(|kind| kind.accepts(&mime_type))
    else {
        return meta_error_with_status(
            StatusCode::BAD_REQUEST,
            MEDIA_ERROR,
            &format!("{mime_type} is not a supported media type"),
        );
    };
    if let Err(refusal) = check(kind, Some(&mime_type), &bytes) {
        return meta_error_with_status(StatusCode::BAD_REQUEST, MEDIA_ERROR, &refusal.reason);
    }
    let id = sandbox.store_media(Item {
        bytes,
        mime_type,
        phone_number_id: Some(phone_number_id),
        corrupt: false,
        expired_urls: 0,
        unavailable: 0,
        url_ttl: None,
        downloads: 0,
    });
    tracing::info!(media_id = %id, "sandbox stored an upload");
    Json(json!({ "id": id })).into_response()
}

/// `?phone_number_id=` of `GET`/`DELETE /{media-id}`.
#[derive(Deserialize)]
pub(crate) struct Owner {
    phone_number_id: Option<String>,
}

/// `GET /graph/{version}/{media_id}`: a download URL that expires, with type, size and checksum.
pub(crate) async fn url(
    State(sandbox): State<Sandbox>,
    Path((_version, media_id)): Path<(String, String)>,
    Query(owner): Query<Owner>,
    headers: HeaderMap,
) -> Response {
    if !has_bearer_token(&headers) {
        return meta_error(190, "Authorization: Bearer <access token> is required");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1");
    let default_ttl = sandbox.inner.config.media_url_ttl;
    let mut store = lock(&sandbox.inner.media);
    let Some(item) = store
        .items
        .get_mut(&media_id)
        .filter(|item| owned_by(item, &owner))
    else {
        return unknown(&media_id);
    };
    let expires_at = if item.expired_urls > 0 {
        item.expired_urls -= 1;
        Instant::now()
    } else {
        Instant::now() + item.url_ttl.unwrap_or(default_ttl)
    };
    let token: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let answer = json!({
        "messaging_product": "whatsapp",
        "url": format!("http://{host}/sandbox/lookaside/whatsapp_business/attachments/{token}"),
        "mime_type": item.mime_type,
        "sha256": sha256_hex(&item.bytes),
        "file_size": item.bytes.len().to_string(),
        "id": media_id,
    });
    let now = Instant::now();
    store.grants.retain(|_, grant| grant.expires_at > now);
    store.grants.insert(
        token,
        Grant {
            media_id,
            expires_at,
        },
    );
    Json(answer).into_response()
}

fn owned_by(item: &Item, owner: &Owner) -> bool {
    match (&owner.phone_number_id, &item.phone_number_id) {
        (Some(asked), Some(owner)) => asked == owner,
        _ => true,
    }
}

fn unknown(media_id: &str) -> Response {
    meta_error(
        100,
        &format!("Unsupported get request. Object with ID '{media_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation"),
    )
}

/// `DELETE /graph/{version}/{media_id}`.
pub(crate) async fn delete(
    State(sandbox): State<Sandbox>,
    Path((_version, media_id)): Path<(String, String)>,
    Query(owner): Query<Owner>,
    headers: HeaderMap,
) -> Response {
    if !has_bearer_token(&headers) {
        return meta_error(190, "Authorization: Bearer <access token> is required");
    }
    let mut store = lock(&sandbox.inner.media);
    if !store
        .items
        .get(&media_id)
        .is_some_and(|item| owned_by(item, &owner))
    {
        return unknown(&media_id);
    }
    store.items.remove(&media_id);
    store.grants.retain(|_, grant| grant.media_id != media_id);
    Json(json!({ "success": true })).into_response()
}

/// `GET /sandbox/lookaside/whatsapp_business/attachments/{token}`: the bytes, with
/// the bearer token only (401 without), 404 once the URL expired.
pub(crate) async fn download(
    State(sandbox): State<Sandbox>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !has_bearer_token(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut store = lock(&sandbox.inner.media);
    let Some(media_id) = store
        .grants
        .get(&token)
        .filter(|grant| grant.expires_at > Instant::now())
        .map(|grant| grant.media_id.clone())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(item) = store.items.get_mut(&media_id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    item.downloads += 1;
    if item.unavailable > 0 {
        item.unavailable -= 1;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let bytes = if item.corrupt {
        corrupted(&item.bytes)
    } else {
        item.bytes.clone()
    };
    ([(header::CONTENT_TYPE, item.mime_type.clone())], bytes).into_response()
}

/// The same length, last byte flipped.
fn corrupted(bytes: &Bytes) -> Bytes {
    let mut copy = bytes.to_vec();
    if let Some(last) = copy.last_mut() {
        *last ^= 0xFF;
    }
    Bytes::from(copy)
}

/// Options of `POST /sandbox/media`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Seed {
    /// The file's type (else the request's `Content-Type`).
    mime_type: Option<String>,
    /// The business number the media belongs to.
    phone_number_id: Option<String>,
    /// Serve bytes that do not match the advertised SHA-256.
    #[serde(default)]
    corrupt: bool,
    /// Hand out this many already-expired URLs first.
    #[serde(default)]
    expired_urls: u32,
    /// Answer this many downloads 503 first.
    #[serde(default)]
    unavailable: u32,
    /// Lifetime of this file's URLs.
    url_ttl_ms: Option<u64>,
}

/// `POST /sandbox/media?mime_type=&corrupt=&expired_urls=&unavailable=&url_ttl_ms=`
/// with the file as the body: stores it as if a customer had sent it; answers
/// `{id, mime_type, sha256 (hex), sha256_base64, file_size}`. Nothing is checked,
/// so tests can seed oversize or mislabelled files.
pub(crate) async fn seed(
    State(sandbox): State<Sandbox>,
    query: Result<Query<Seed>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let seed = match query {
        Ok(Query(seed)) => seed,
        Err(rejection) => return problem(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let mime_type = seed.mime_type.or_else(|| {
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    });
    let Some(mime_type) = mime_type.filter(|mime| !mime.trim().is_empty()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "give the file's type as ?mime_type= or Content-Type",
        );
    };
    let answer = json!({
        "mime_type": mime_type,
        "sha256": sha256_hex(&bytes),
        "sha256_base64": sha256_base64(&bytes),
        "file_size": bytes.len(),
    });
    let id = sandbox.store_media(Item {
        bytes,
        mime_type,
        phone_number_id: seed.phone_number_id,
        corrupt: seed.corrupt,
        expired_urls: seed.expired_urls,
        unavailable: seed.unavailable,
        url_ttl: seed.url_ttl_ms.map(Duration::from_millis),
        downloads: 0,
    });
    let mut answer = answer;
    answer["id"] = json!(id);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// `GET /sandbox/media/{id}`: the stored bytes as they are (no checks, no expiry).
pub(crate) async fn read(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    match sandbox.media(&id) {
        Some(media) => ([(header::CONTENT_TYPE, media.mime_type)], media.bytes).into_response(),
        None => problem(StatusCode::NOT_FOUND, format!("no media {id:?}")),
    }
}
