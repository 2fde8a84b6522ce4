//! The store conformance suite against the Firestore emulator: every test gets
//! its own project id, which the emulator keeps as a separate, empty database.

use std::sync::Arc;

use zapfn_store_conformance::{ConformanceOptions, TestStore};
use zapfn_store_firestore::{FirestoreConfig, FirestoreStore};

mod common;

/// A fresh store on the emulator, or a loud skip when it is not running
/// (a failure when `ZAPFN_REQUIRE_EMULATORS` is set).
async fn make_store(options: ConformanceOptions) -> Option<TestStore> {
    if common::emulator().is_none() {
        return zapfn_store_conformance::unavailable(
            "Firestore emulator not running (FIRESTORE_EMULATOR_HOST unset)",
        );
    }
    let config = FirestoreConfig {
        max_attempts: options.max_attempts,
        max_retry_age: options.max_retry_age,
        ..FirestoreConfig::new(format!("conformance-{}", uuid::Uuid::new_v4().simple()))
    };
    let store = FirestoreStore::connect(config)
        .await
        .expect("connect to the Firestore emulator");
    Some(TestStore::new(Arc::new(store)))
}

zapfn_store_conformance::conformance_tests!(make_store);
