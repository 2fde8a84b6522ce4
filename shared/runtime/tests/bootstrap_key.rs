//! The bootstrap API key (`ZAPFN_API_KEY`) on a real SQLite store: written at
//! the first start, only read at the next ones (every instance of a deployed
//! function starts by looking for it).

use std::collections::HashMap;
use std::sync::Arc;
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

/// Changing `ZAPFN_API_KEY` adds the new key and leaves the old one live (an
/// old revision still starting during a rollout must not revoke the new one);
/// revoking `bootstrap` retires both, and the next start stores the current
/// one again, as the README's rotation steps say.
#[tokio::test]
async fn a_changed_bootstrap_key_is_added_and_the_old_one_retired_by_revoking() {
    let dir = tempfile::tempdir().unwrap();
    let start_with = |key: &str| {
        let vars: HashMap<&str, String> = [
            ("ZAPFN_DATA_DIR", dir.path().to_str().unwrap().to_owned()),
            ("ZAPFN_API_KEY", key.to_owned()),
        ]
        .into_iter()
        .collect();
        Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
    };
    let old = Context::connect(start_with("old-bootstrap-key"))
        .await
        .unwrap();
    store_bootstrap_key(&old).await.unwrap();
    let new = Context {
        config: Arc::new(start_with("new-bootstrap-key")),
        ..old.clone()
    };
    store_bootstrap_key(&new).await.unwrap();
    let old_hash = hash_key(&old.config.key_pepper, "old-bootstrap-key");
    let new_hash = hash_key(&new.config.key_pepper, "new-bootstrap-key");
    assert_ne!(old_hash, new_hash);
    assert!(new.store.api_key(&old_hash).await.unwrap().is_some());
    assert!(new.store.api_key(&new_hash).await.unwrap().is_some());

    assert_eq!(new.store.revoke_api_key("bootstrap").await.unwrap(), 2);
    store_bootstrap_key(&new).await.unwrap();
    assert_eq!(new.store.api_key(&old_hash).await.unwrap(), None);
    let current = new
        .store
        .api_key(&new_hash)
        .await
        .unwrap()
        .expect("stored again");
    assert_eq!(current.scopes, [Scope::Admin]);
}
