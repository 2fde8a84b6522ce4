//! A message erased while a processor works on its media (a contact's erasure,
//! the retention job) leaves nothing behind: the derived object is deleted and
//! the delivery is acknowledged, not retried until it dead-letters. Real SQLite
//! store and local blob store.

use serde_json::json;
use zapfn_blob::BlobKey;
use zapfn_mediatools::processor::{Done, Processor};
use zapfn_mediatools::samples;
use zapfn_store::{MediaStored, Settlement};

#[tokio::test]
async fn work_on_an_erased_message_deletes_what_it_derived() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let delivery = samples::inbound_media(
        &context,
        "wamid.ERASED1",
        "image",
        b"not really a jpeg".to_vec(),
        "image/jpeg",
    )
    .await;
    let media: MediaStored = serde_json::from_value(delivery.payload.clone()).unwrap();
    let processor = Processor::new(&context, "image", &["image"]);

    let (worker, store, id) = (&processor, &context.store, media.message_id.clone());
    let settlement = processor
        .handle(&delivery, |job| async move {
            let key = worker
                .put_derived(&job, "thumb.webp", b"webp".to_vec(), "image/webp")
                .await?;
            // The contact is erased while the thumbnail is being made.
            store
                .erase_messages(std::slice::from_ref(&id))
                .await
                .unwrap();
            Ok(Done {
                fields: json!({"thumbnail_key": key}),
                events: vec![],
            })
        })
        .await;

    assert_eq!(settlement, Settlement::Ack);
    let thumbnail = BlobKey::new(format!(
        "{}/{}/thumb.webp",
        media.phone_number_id, media.message_id
    ))
    .unwrap();
    assert!(
        context.blobs.get(&thumbnail).await.unwrap().is_none(),
        "the thumbnail of an erased message is deleted"
    );

    // A redelivery finds no message and settles at once, deriving nothing.
    let again = processor
        .handle(&delivery, |_| async {
            panic!("no work for an erased message")
        })
        .await;
    assert_eq!(again, Settlement::Ack);
}
