//! The bootstrap API key (`ZAPFN_API_KEY`) on a real SQLite store: written at
//! the first start, only read at the next ones (every instance of a deployed
//! function starts by looking for it).

use std::collections::HashMap;
use std::time::Duration;

use zapfn_runtime::auth::{hash_key, store_bootstrap_key};
use zapfn_runtime::{Config, Context};
use zapfn_store::{Scope, ALL_NUMBERS};

const KEY: &str = "bootstrap-test-key";

#[tokio::test]
async fn a_start_that_finds_the_bootstrap_key_only_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let vars: HashMap<&str, String> = [
        ("ZAPFN_DATA_DIR", dir.path().to_str().unwrap().to_owned()),
        ("ZAPFN_API_KEY", KEY.to_owned()),
    ]
    .into_iter()
    .collect();
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let database = config.database_path();
    let context = Context::connect(config).await.unwrap();

    store_bootstrap_key(&context).await.unwrap();
    let hash = hash_key(&context.config.key_pepper, KEY);
    let stored = context.store.api_key(&hash).await.unwrap().expect("stored");
    assert_eq!(stored.name, "bootstrap");
    assert_eq!(stored.scopes, [Scope::Admin]);
    assert_eq!(stored.phone_number_ids, [ALL_NUMBERS]);

    // Another process holds the write lock: a start that finds the key needs no write.
    let lock = rusqlite::Connection::open(&database).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    tokio::time::timeout(Duration::from_secs(2), store_bootstrap_key(&context))
        .await
        .expect("the second start waited for the write lock")
        .unwrap();
    lock.execute_batch("ROLLBACK").unwrap();
    assert_eq!(context.store.api_key(&hash).await.unwrap(), Some(stored));
}
