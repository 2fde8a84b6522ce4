//! What starts the media processors after media-fetch stored an original: by
//! default a `media` event in the outbox; with `ZAPFN_MEDIA_TRIGGER=storage`
//! (deployed, where the bucket's object-finalized events reach the processors
//! through Eventarc) none, so nothing is processed twice. The real media-fetch
//! handler, the Graph API sandbox on loopback as Meta, the Cloud Storage emulator.

mod cloud;

use std::time::Duration;

use serde_json::{json, Value};
use zapfn_blob::BlobKey;
use zapfn_cloud::storage::GcsBlobStore;
use zapfn_media_fetch::Fetcher;
use zapfn_runtime::{Config, Context};
use zapfn_sandbox::{Sandbox, SandboxConfig};
use zapfn_store::{topics, Settlement};

/// A customer's image message naming media `media_id`, as Meta posts it.
fn image_message(wamid: &str, media_id: &str) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "109876543210987", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": cloud::PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Maria Silva"}, "wa_id": "5511988887777"}],
            "messages": [{"from": "5511988887777", "id": wamid, "timestamp": "1767225840",
                          "type": "image", "image": {"id": media_id, "mime_type": "image/jpeg"}}]
        }}]}]
    })
}

#[tokio::test]
async fn with_storage_triggers_media_fetch_stores_the_original_and_publishes_no_media_event() {
    if !cloud::emulators_up("media_trigger") {
        return;
    }
    let sandbox = Sandbox::new(SandboxConfig::new("secret", "http://127.0.0.1:9/webhook"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_url = format!("http://{}", listener.local_addr().unwrap());
    let router = sandbox.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let photo = std::fs::read(cloud::workspace_root().join("fixtures/media/photo.jpg")).unwrap();

    let run = format!("{:x}", chrono::Utc::now().timestamp_micros());
    let bucket = format!("zapfn-trigger-{run}");
    GcsBlobStore::connect(&bucket, None)
        .await
        .unwrap()
        .ensure_bucket("zapfn-trigger")
        .await
        .unwrap();
    for (trigger, media_events) in [("storage", 0), ("events", 1)] {
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("ZAPFN_DATA_DIR", dir.path().to_str().unwrap().to_owned()),
            ("ZAPFN_BLOBS", "gcs".to_owned()),
            ("ZAPFN_MEDIA_BUCKET", bucket.clone()),
            ("ZAPFN_MEDIA_TRIGGER", trigger.to_owned()),
            ("WA_GRAPH_URL", format!("{sandbox_url}/graph")),
        ];
        let config = Config::from_lookup(|name| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
        })
        .unwrap();
        let context = Context::connect(config).await.unwrap();
        let seeded: Value = reqwest::Client::new()
            .post(format!("{sandbox_url}/sandbox/media?mime_type=image/jpeg"))
            .body(photo.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let wamid = format!("wamid.TRIG{trigger}{run}");
        let webhook = image_message(&wamid, seeded["id"].as_str().unwrap());
        let notification = zapfn_whatsapp::webhook::parse(webhook.to_string().as_bytes()).unwrap();
        context.store.ingest(notification).await.unwrap();
        let lease = Duration::from_secs(30);
        let delivery = context
            .store
            .claim(topics::MESSAGES, 10, lease)
            .await
            .unwrap()
            .pop()
            .expect("the webhook's messages event");

        let settlement = Fetcher::new(&context).handle(&delivery).await;
        assert_eq!(settlement, Settlement::Ack, "{trigger}");
        let view = context.store.message(&wamid).await.unwrap().unwrap();
        let object = &view.media.unwrap()["object"];
        assert_eq!(object["status"], "done", "{trigger}: {object}");
        let key = BlobKey::new(object["key"].as_str().unwrap()).unwrap();
        let stored = context
            .blobs
            .get(&key)
            .await
            .unwrap()
            .expect("in the bucket");
        assert_eq!(stored.bytes, photo);
        let published = context.store.claim(topics::MEDIA, 10, lease).await.unwrap();
        assert_eq!(published.len(), media_events, "{trigger}: media events");
    }
}
