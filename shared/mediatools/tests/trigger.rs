//! A Cloud Storage object event resolves to the `media` event media-fetch
//! would have published for it, on a real SQLite store; anything else is
//! ignored, waited for or refused.

use serde_json::{json, Value};
use zapfn_mediatools::samples;
use zapfn_mediatools::trigger::{resolve, Trigger};
use zapfn_store::MediaStored;

/// The StorageObjectData of `name` (the fields Cloud Storage sends).
fn object(name: &str) -> Value {
    json!({"kind": "storage#object", "bucket": "zapfn-media", "name": name, "size": "4",
           "generation": "1700000000000000", "contentType": "image/jpeg"})
}

#[tokio::test]
async fn storage_events_resolve_through_the_recorded_original() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let store = context.store.as_ref();
    let delivery = samples::inbound_media(
        &context,
        "wamid.TRG1",
        "document",
        b"%PDF".to_vec(),
        "application/pdf",
    )
    .await;
    let media: MediaStored = serde_json::from_value(delivery.payload.clone()).unwrap();

    // A `media` event as it is; the original's object event as media-fetch's event.
    assert_eq!(
        resolve(store, &delivery.payload).await,
        Trigger::Media(Box::new(media.clone()))
    );
    assert_eq!(
        resolve(store, &object(&media.key)).await,
        Trigger::Media(Box::new(media.clone()))
    );

    let ignored = |trigger: Trigger| assert!(matches!(trigger, Trigger::Ignore(_)), "{trigger:?}");
    let prefix = format!("{}/{}", media.phone_number_id, media.message_id);
    ignored(resolve(store, &object(&format!("{prefix}/thumb.webp"))).await);
    ignored(resolve(store, &object(&format!("{prefix}/original.png"))).await);
    ignored(resolve(store, &object("106540352242922/msg_unknown/original.jpg")).await);

    for (record, waits) in [
        (json!({"status": "pending"}), true),
        (json!({"status": "failed", "code": "too_large"}), false),
    ] {
        store
            .annotate_media(&media.message_id, "object", record, vec![])
            .await
            .unwrap();
        let trigger = resolve(store, &object(&media.key)).await;
        assert_eq!(matches!(trigger, Trigger::Wait(_)), waits, "{trigger:?}");
        assert!(!matches!(trigger, Trigger::Media(_)), "{trigger:?}");
    }

    let invalid = resolve(store, &json!({"message_id": "msg_1"})).await;
    assert!(matches!(invalid, Trigger::Invalid(_)), "{invalid:?}");
}
