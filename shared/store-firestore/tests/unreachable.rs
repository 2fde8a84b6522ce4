//! A Firestore that cannot be reached, and a configuration that cannot work,
//! are errors the caller can act on (retry later; fix the setting), never
//! panics. Needs no emulator: the client is pointed at a port nothing listens on.

use zapfn_store::StoreError;
use zapfn_store_firestore::{FirestoreConfig, FirestoreStore};

#[tokio::test]
async fn unreachable_firestore_is_unavailable_and_a_bad_prefix_is_invalid() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = refused.local_addr().unwrap();
    drop(refused);
    // This test binary holds this one test, so no other thread reads the variable.
    std::env::set_var("FIRESTORE_EMULATOR_HOST", address.to_string());

    for prefix in ["a/b", "", "__zapfn__"] {
        let connected = FirestoreStore::connect(FirestoreConfig {
            prefix: prefix.into(),
            ..FirestoreConfig::new("zapfn-unreachable")
        })
        .await;
        assert!(
            matches!(connected, Err(StoreError::Invalid(_))),
            "{prefix:?}: {:?}",
            connected.err()
        );
    }

    let connected = FirestoreStore::connect(FirestoreConfig::new("zapfn-unreachable")).await;
    assert!(
        matches!(connected, Err(StoreError::Unavailable(_))),
        "{:?}",
        connected.err()
    );
}
