//! The sandbox's media endpoints on loopback, driven by zapfn's own Graph client.

use std::time::Duration;

use axum::body::Bytes;
use serde_json::Value;
use zapfn_sandbox::{Sandbox, SandboxConfig};
use zapfn_whatsapp::graph::media::DownloadError;
use zapfn_whatsapp::graph::{CallError, GraphClient, GraphConfig};

const PHONE_NUMBER_ID: &str = "106540352242922";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
const LONG: Duration = Duration::from_secs(5);

struct Harness {
    base: String,
    sandbox: Sandbox,
    graph: GraphClient,
    http: reqwest::Client,
}

async fn start(media_url_ttl: Duration) -> Harness {
    let mut config = SandboxConfig::new("secret", "http://127.0.0.1:9/webhook");
    config.media_url_ttl = media_url_ttl;
    let sandbox = Sandbox::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = sandbox.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let graph = GraphClient::new(GraphConfig {
        base_url: format!("{base}/graph"),
        api_version: "v23.0".into(),
        access_token: "sandbox-token".into(),
        timeout: LONG,
    });
    Harness {
        base,
        sandbox,
        graph,
        http: reqwest::Client::new(),
    }
}

impl Harness {
    /// Seeds `bytes` with query `options`; returns the seed answer.
    async fn seed(&self, bytes: &[u8], options: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/sandbox/media?{options}", self.base))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }
}

#[tokio::test]
async fn seeded_media_downloads_with_the_token_until_its_url_expires() {
    let harness = start(Duration::from_millis(300)).await;
    let seeded = harness.seed(PNG, "mime_type=image/png").await;
    let id = seeded["id"].as_str().unwrap();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit()),
        "{id}"
    );

    let media = harness.graph.media_url(id).await.unwrap();
    assert_eq!(media.mime_type.as_deref(), Some("image/png"));
    assert_eq!(media.file_size, Some(PNG.len() as u64));
    assert_eq!(media.sha256.as_deref(), seeded["sha256"].as_str());
    assert!(media.url.starts_with(&harness.base), "{}", media.url);

    let bytes = harness
        .graph
        .download_media(&media.url, 1 << 20, LONG)
        .await
        .unwrap();
    assert_eq!(&bytes[..], PNG);
    let anonymous = harness.http.get(&media.url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "the URL needs the bearer token");

    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = harness
        .graph
        .download_media(&media.url, 1 << 20, LONG)
        .await;
    assert!(
        matches!(expired, Err(DownloadError::Expired(404))),
        "{expired:?}"
    );
    let fresh = harness.graph.media_url(id).await.unwrap();
    assert_ne!(fresh.url, media.url);
    assert_eq!(
        &harness
            .graph
            .download_media(&fresh.url, 1 << 20, LONG)
            .await
            .unwrap()[..],
        PNG
    );
}

#[tokio::test]
async fn seeded_faults_expired_urls_unavailable_downloads_and_corruption() {
    let harness = start(Duration::from_secs(300)).await;
    let seeded = harness
        .seed(
            PNG,
            "mime_type=image/png&expired_urls=1&unavailable=1&corrupt=true",
        )
        .await;
    let id = seeded["id"].as_str().unwrap();
    let first = harness.graph.media_url(id).await.unwrap();
    let expired = harness
        .graph
        .download_media(&first.url, 1 << 20, LONG)
        .await;
    assert!(
        matches!(expired, Err(DownloadError::Expired(404))),
        "{expired:?}"
    );
    let second = harness.graph.media_url(id).await.unwrap();
    let busy = harness
        .graph
        .download_media(&second.url, 1 << 20, LONG)
        .await;
    assert!(
        matches!(busy, Err(DownloadError::Unavailable(_))),
        "{busy:?}"
    );
    let corrupt = harness
        .graph
        .download_media(&second.url, 1 << 20, LONG)
        .await
        .unwrap();
    assert_eq!(corrupt.len(), PNG.len());
    assert_ne!(&corrupt[..], PNG);
    assert_eq!(
        zapfn_media::checksum::verify(second.sha256.as_deref().unwrap(), &corrupt),
        Some(false)
    );
    let small = harness.graph.download_media(&second.url, 8, LONG).await;
    assert!(
        matches!(small, Err(DownloadError::TooLarge { limit: 8 })),
        "{small:?}"
    );
}

#[tokio::test]
async fn uploads_are_checked_like_meta_and_can_be_deleted() {
    let harness = start(Duration::from_secs(300)).await;
    let id = harness
        .graph
        .upload_media(
            PHONE_NUMBER_ID,
            Bytes::from_static(PNG),
            "image/png",
            "a.png",
            LONG,
        )
        .await
        .unwrap();
    let stored = harness.sandbox.media(&id).unwrap();
    assert_eq!(
        (&stored.bytes[..], stored.mime_type.as_str()),
        (PNG, "image/png")
    );
    let read = harness
        .http
        .get(format!("{}/sandbox/media/{id}", harness.base))
        .send()
        .await
        .unwrap();
    assert_eq!(read.bytes().await.unwrap(), PNG);

    let mislabelled = harness
        .graph
        .upload_media(
            PHONE_NUMBER_ID,
            Bytes::from_static(PNG),
            "image/jpeg",
            "a.jpg",
            LONG,
        )
        .await
        .unwrap_err();
    let CallError::Api { http_status, error } = mislabelled else {
        panic!("{mislabelled:?}")
    };
    assert_eq!((http_status, error.code), (400, 131053));
    let unsupported = harness
        .graph
        .upload_media(
            PHONE_NUMBER_ID,
            Bytes::from_static(b"GIF89a"),
            "image/gif",
            "a.gif",
            LONG,
        )
        .await
        .unwrap_err();
    assert_eq!(unsupported.code(), 131053);

    let other_number = harness
        .http
        .get(format!(
            "{}/graph/v23.0/{id}?phone_number_id=999",
            harness.base
        ))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other_number.status(),
        400,
        "media of another number is not found"
    );

    assert!(harness.graph.delete_media(&id).await.unwrap());
    assert!(harness.sandbox.media(&id).is_none());
    let gone = harness.graph.media_url(&id).await.unwrap_err();
    assert_eq!(gone.code(), 100);
}

#[tokio::test]
async fn uploads_need_a_token_a_file_and_a_multipart_body() {
    let harness = start(Duration::from_secs(300)).await;
    let url = format!("{}/graph/v23.0/{PHONE_NUMBER_ID}/media", harness.base);
    let no_token = harness.http.post(&url).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let json = harness
        .http
        .post(&url)
        .bearer_auth("t")
        .json(&serde_json::json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 400);
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", "image/png");
    let no_file = harness
        .http
        .post(&url)
        .bearer_auth("t")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(no_file.status(), 400);
    let body: Value = no_file.json().await.unwrap();
    assert_eq!(body["error"]["code"], 131008, "{body}");
}
