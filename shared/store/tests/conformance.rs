//! The store conformance suite on the embedded SQLite store: a real database
//! file in a fresh temporary directory per test.

use std::sync::Arc;

use zapfn_store::sqlite::{SqliteOptions, SqliteStore};
use zapfn_store_conformance::{ConformanceOptions, TestStore};

async fn make_store(options: ConformanceOptions) -> Option<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        dir.path().join("z.db"),
        SqliteOptions {
            max_attempts: options.max_attempts,
            max_retry_age: options.max_retry_age,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    Some(TestStore::new(Arc::new(store)).cleanup(async move { drop(dir) }))
}

zapfn_store_conformance::conformance_tests!(make_store);
