//! The local blob store on a real temporary directory.

use bytes::Bytes;
use zapfn_blob::local::LocalBlobStore;
use zapfn_blob::{sha256_hex, BlobKey, BlobStore};

#[tokio::test]
async fn put_get_delete_round_trip_with_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(dir.path());
    let key = BlobKey::new("106540352242922/msg_1/original.ogg").unwrap();
    let bytes = Bytes::from_static(b"OggS\0\x02fake opus");

    let info = store.put(&key, bytes.clone(), "audio/ogg").await.unwrap();
    assert_eq!(info.sha256, sha256_hex(&bytes));
    assert_eq!(info.size, bytes.len() as u64);

    let blob = store.get(&key).await.unwrap().expect("stored");
    assert_eq!(blob.bytes, bytes);
    assert_eq!(blob.info, info);
    assert!(dir
        .path()
        .join("objects/106540352242922/msg_1/original.ogg")
        .is_file());

    assert!(store.delete(&key).await.unwrap());
    assert!(store.get(&key).await.unwrap().is_none());
    assert!(
        !store.delete(&key).await.unwrap(),
        "second delete finds nothing"
    );
}

#[tokio::test]
async fn put_replaces_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(dir.path());
    let key = BlobKey::new("a/b.txt").unwrap();
    store
        .put(&key, Bytes::from_static(b"one"), "text/plain")
        .await
        .unwrap();
    store
        .put(&key, Bytes::from_static(b"two!"), "text/plain")
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap().unwrap().bytes, "two!");
    let names: Vec<_> = std::fs::read_dir(dir.path().join("objects/a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["b.txt"]);
}

#[tokio::test]
async fn an_unwritable_root_is_unavailable_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let store = LocalBlobStore::new(&file);
    let key = BlobKey::new("k").unwrap();
    let error = store
        .put(&key, Bytes::from_static(b"x"), "text/plain")
        .await;
    assert!(
        matches!(error, Err(zapfn_blob::BlobError::Unavailable(_))),
        "{error:?}"
    );
}
