//! `GET /v1/media/{id}` against a real SQLite store: a redirect where the blob
//! store signs URLs (as Cloud Storage does), and the `pending` answer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use bytes::Bytes;
use serde_json::{json, Value};
use tower::ServiceExt;
use zapfn_blob::local::LocalBlobStore;
use zapfn_blob::{Blob, BlobInfo, BlobKey, BlobStore};
use zapfn_runtime::{auth, Config, Context};
use zapfn_whatsapp::builders::{messages_notification, new_wamid};

const PHONE_NUMBER_ID: &str = "106540352242922";
const KEY: &str = "media-read-key";

/// The local directory, plus signed URLs the way a Cloud Storage bucket gives them.
struct Signing(LocalBlobStore);

#[async_trait]
impl BlobStore for Signing {
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Bytes,
        content_type: &str,
    ) -> zapfn_blob::Result<BlobInfo> {
        self.0.put(key, bytes, content_type).await
    }
    async fn get(&self, key: &BlobKey) -> zapfn_blob::Result<Option<Blob>> {
        self.0.get(key).await
    }
    async fn delete(&self, key: &BlobKey) -> zapfn_blob::Result<bool> {
        self.0.delete(key).await
    }
    async fn signed_url(&self, key: &BlobKey, ttl: Duration) -> zapfn_blob::Result<Option<String>> {
        Ok(Some(format!(
            "https://storage.example/bucket/{key}?expires_in={}",
            ttl.as_secs()
        )))
    }
}

async fn context(dir: &std::path::Path) -> Context {
    let data_dir = dir.to_str().unwrap().to_owned();
    let config = Config::from_lookup(|name| match name {
        "ZAPFN_DATA_DIR" => Some(data_dir.clone()),
        "ZAPFN_API_KEY" => Some(KEY.to_owned()),
        _ => None,
    })
    .unwrap();
    let mut context = Context::open(config).unwrap();
    auth::store_bootstrap_key(&context).await.unwrap();
    context.blobs = Arc::new(Signing(LocalBlobStore::new(dir.join("media"))));
    context
}

/// Stores an inbound image message; returns (zapfn id, wamid).
async fn inbound_image(context: &Context) -> (String, String) {
    let wamid = new_wamid();
    let message = json!({"from": "5511999990000", "id": wamid, "timestamp": "1767225720", "type": "image",
        "image": {"id": "1480000000000001", "mime_type": "image/jpeg", "sha256": "x"}});
    let body = messages_notification(PHONE_NUMBER_ID, "5511999990000", "Ana", vec![message]);
    let notification = zapfn_whatsapp::webhook::parse(body.to_string().as_bytes()).unwrap();
    context.store.ingest(notification).await.unwrap();
    let view = context.store.message(&wamid).await.unwrap().unwrap();
    (view.id, wamid)
}

async fn get(context: &Context, id: &str) -> axum::response::Response {
    let request = Request::get(format!("/v1/media/{id}"))
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .body(Body::empty())
        .unwrap();
    zapfn_send::router(context.clone())
        .oneshot(request)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stored_object_redirects_to_the_signed_url() {
    let dir = tempfile::tempdir().unwrap();
    let context = context(dir.path()).await;
    let (id, wamid) = inbound_image(&context).await;
    let key = BlobKey::new(format!("{PHONE_NUMBER_ID}/{id}/original.jpg")).unwrap();
    let info = context
        .blobs
        .put(&key, Bytes::from_static(b"\xFF\xD8\xFFjpeg"), "image/jpeg")
        .await
        .unwrap();
    let object = json!({"status": "done", "key": info.key, "content_type": info.content_type, "sha256": info.sha256, "size": info.size});
    context
        .store
        .annotate_media(&id, "object", object, vec![])
        .await
        .unwrap();

    let response = get(&context, &wamid).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()[header::LOCATION],
        format!(
            "https://storage.example/bucket/{PHONE_NUMBER_ID}/{id}/original.jpg?expires_in=300"
        )
        .as_str()
    );
}

#[tokio::test]
async fn media_still_being_fetched_is_a_409_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let context = context(dir.path()).await;
    let (id, _) = inbound_image(&context).await;
    for object in [
        None,
        Some(json!({"status": "pending", "attempts": 1, "last_error": "HTTP 503"})),
    ] {
        if let Some(object) = object {
            context
                .store
                .annotate_media(&id, "object", object, vec![])
                .await
                .unwrap();
        }
        let response = get(&context, &id).await;
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body: Value =
            serde_json::from_slice(&to_bytes(response.into_body(), 1 << 16).await.unwrap())
                .unwrap();
        assert_eq!(body["media_status"], "pending", "{body}");
        assert_eq!(body["status"], 409);
    }
}
