//! The store conformance suite on PostgreSQL: each test in a schema of its own
//! on the server `ZAPFN_TEST_DATABASE_URL` names (`scripts/postgres.sh start`),
//! dropped afterwards. Skipped loudly when unset, unless `ZAPFN_REQUIRE_EMULATORS=1`.

mod common;

use std::sync::Arc;

use zapfn_store_conformance::{ConformanceOptions, TestStore};
use zapfn_store_postgres::PostgresOptions;

async fn make_store(options: ConformanceOptions) -> Option<TestStore> {
    let url = common::database_url()?;
    let schema = common::new_schema();
    let options = PostgresOptions {
        max_attempts: options.max_attempts,
        max_retry_age: options.max_retry_age,
        ..PostgresOptions::default()
    };
    let store = common::connect(&url, &schema, options).await;
    Some(
        TestStore::new(Arc::new(store))
            .cleanup(async move { common::drop_schema(&url, &schema).await }),
    )
}

zapfn_store_conformance::conformance_tests!(make_store);
