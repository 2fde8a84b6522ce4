//! Cloud Storage: objects on the emulator, and V4 signed URLs checked against
//! Google's conformance vectors (the emulator does not verify signatures).

mod common;

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use zapfn_blob::{sha256_hex, BlobKey, BlobStore};
use zapfn_cloud::storage::{GcsBlobStore, SigningKey};

fn conformance_key() -> SigningKey {
    SigningKey::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/conformance-service-account.json"),
    )
    .unwrap()
}

/// (bucket, object, expiration s, timestamp (Unix s), expected URL) from
/// googleapis/conformance-tests storage/v1/v4_signatures.json.
const VECTORS: [(&str, &str, u64, u64, &str); 3] = [
    (
        "test-bucket", "test-object", 10, 1_549_011_600,
        "https://storage.googleapis.com/test-bucket/test-object?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=host&X-Goog-Signature=95e6a13d43a1d1962e667f17397f2b80ac9bdd1669210d5e08e0135df9dff4e56113485dbe429ca2266487b9d1796ebdee2d7cf682a6ef3bb9fbb4c351686fba90d7b621cf1c4eb1fdf126460dd25fa0837dfdde0a9fd98662ce60844c458448fb2b352c203d9969cb74efa4bdb742287744a4f2308afa4af0e0773f55e32e92973619249214b97283b2daa14195244444e33f938138d1e5f561088ce8011f4986dda33a556412594db7c12fc40e1ff3f1bedeb7a42f5bcda0b9567f17f65855f65071fabb88ea12371877f3f77f10e1466fff6ff6973b74a933322ff0949ce357e20abe96c3dd5cfab42c9c83e740a4d32b9e11e146f0eb3404d2e975896f74",
    ),
    (
        "test-bucket", "test-object", 20, 1_551_430_800,
        "https://storage.googleapis.com/test-bucket/test-object?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20190301%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190301T090000Z&X-Goog-Expires=20&X-Goog-SignedHeaders=host&X-Goog-Signature=9669ed5b10664dc594c758296580662912cf4bcc5a4ba0b6bf055bcbf6f34eed7bdad664f534962174a924741a0c273a4f67bc1847cef20192a6beab44223bd9d4fbbd749c407b79997598c30f82ddc269ff47ec09fa3afe74e00616d438df0d96a7d8ad0adacfad1dc3286f864d924fe919fb0dce45d3d975c5afe8e13af2db9cc37ba77835f92f7669b61e94c6d562196c1274529e76cfff1564cc2cad7d5387dc8e12f7a5dfd925685fe92c30b43709eee29fa2f66067472cee5423d1a3a4182fe8cea75c9329d181dc6acad7c393cd04f8bf5bc0515127d8ebd65d80c08e19ad03316053ea60033fd1b1fd85a69c576415da3bf0a3718d9ea6d03e0d66f0",
    ),
    (
        "test-bucket2", "test-object2", 10, 1_549_011_600,
        "https://storage.googleapis.com/test-bucket2/test-object2?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=test-iam-credentials%40dummy-project-id.iam.gserviceaccount.com%2F20190201%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20190201T090000Z&X-Goog-Expires=10&X-Goog-SignedHeaders=host&X-Goog-Signature=36e3d58dfd3ec1d2dd2f24b5ee372a71e811ffaa2162a2b871d26728d0354270bc116face87127532969c4a3967ed05b7309af741e19c7202f3167aa8c2ac420b61417d6451442bb91d7c822cd17be8783f01e05372769c88913561d27e6660dd8259f0081a71f831be6c50283626cbf04494ac10c394b29bb3bce74ab91548f58a37118a452693cf0483d77561fc9cac8f1765d2c724994cca46a83517a10157ee0347a233a2aaeae6e6ab5e204ff8fc5f54f90a3efdb8301d9fff5475d58cd05b181affd657f48203f4fb133c3a3d355b8eefbd10d5a0a5fd70d06e9515460ad74e22334b2cba4b29cae4f6f285cdb92d8f3126d7a1479ca3bdb69c207d860",
    ),
];

#[tokio::test]
async fn signed_urls_match_googles_v4_conformance_vectors() {
    for (bucket, object, expires, timestamp, expected) in VECTORS {
        // Signing happens locally with the key: no endpoint is contacted.
        let store = GcsBlobStore::anonymous(bucket, Some(conformance_key()), None);
        let url = store
            .signed_url_at(
                &BlobKey::new(object).unwrap(),
                Duration::from_secs(expires),
                UNIX_EPOCH + Duration::from_secs(timestamp),
            )
            .await
            .unwrap();
        assert_eq!(url, expected, "vector {bucket}/{object} at {timestamp}");
    }
}

#[tokio::test]
async fn objects_round_trip_on_the_emulator() {
    let Some(_host) = common::emulator(
        "STORAGE_EMULATOR_HOST",
        "objects_round_trip_on_the_emulator",
    ) else {
        return;
    };
    let bucket = common::unique("zapfn-test-");
    let store = GcsBlobStore::connect(&bucket, Some(conformance_key()))
        .await
        .unwrap();
    store.ensure_bucket("local-project").await.unwrap();
    store.ensure_bucket("local-project").await.unwrap();
    let key = BlobKey::new("106540352242922/msg_1/original.ogg").unwrap();
    let bytes = Bytes::from_static(b"OggS\0\x02 voice note bytes \xff\xfe");

    assert_eq!(store.get(&key).await.unwrap(), None);
    let info = store.put(&key, bytes.clone(), "audio/ogg").await.unwrap();
    assert_eq!(info.sha256, sha256_hex(&bytes));
    assert_eq!(info.size, bytes.len() as u64);

    let blob = store.get(&key).await.unwrap().expect("stored");
    assert_eq!(blob.bytes, bytes);
    assert_eq!(blob.info, info);

    // Replacing is idempotent and changes what is read.
    let newer = Bytes::from_static(b"second version");
    store.put(&key, newer.clone(), "audio/ogg").await.unwrap();
    assert_eq!(store.get(&key).await.unwrap().unwrap().bytes, newer);

    // A signed URL points at the emulator and downloads the object.
    let url = store
        .signed_url(&key, Duration::from_secs(300))
        .await
        .unwrap()
        .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(url.contains("X-Goog-Signature="), "{url}");
    let downloaded = reqwest::get(&url).await.unwrap();
    assert_eq!(downloaded.status(), 200, "{url}");
    assert_eq!(downloaded.bytes().await.unwrap(), newer);

    assert!(store.delete(&key).await.unwrap());
    assert!(!store.delete(&key).await.unwrap());
    assert_eq!(store.get(&key).await.unwrap(), None);
}
