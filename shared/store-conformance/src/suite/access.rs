//! API keys (scopes, numbers, rates, revocation) and the audit log.

use zapfn_store::{ApiKey, AuditEntry, Scope, ALL_NUMBERS};

use crate::fixtures::*;
use crate::Backend;

/// A live key named `name` with hash `hash`, sending for `PNID` at 5/s.
fn key(name: &str, hash: &str) -> ApiKey {
    ApiKey {
        name: name.to_owned(),
        key_hash: hash.to_owned(),
        scopes: vec![Scope::Send, Scope::Read],
        phone_number_ids: vec![PNID.to_owned()],
        rate_per_second: Some(5),
        created_at: now_secs(),
        revoked_at: None,
    }
}

pub async fn api_keys_are_found_by_hash_while_live(backend: Backend) {
    let store = backend.store().await;
    assert_eq!(store.api_key("h1").await.unwrap(), None);
    let ci = key("ci", "h1");
    store.put_api_key(&ci).await.unwrap();
    let admin = ApiKey {
        scopes: vec![Scope::Admin],
        phone_number_ids: vec![ALL_NUMBERS.to_owned()],
        rate_per_second: None,
        ..key("admin", "h2")
    };
    store.put_api_key(&admin).await.unwrap();
    assert_eq!(store.api_key("h1").await.unwrap().as_ref(), Some(&ci));
    assert_eq!(store.api_key("h2").await.unwrap().as_ref(), Some(&admin));
    assert_eq!(store.api_key("h3").await.unwrap(), None);

    let renamed = ApiKey {
        name: "ci-renamed".into(),
        scopes: vec![Scope::Read],
        phone_number_ids: vec![PNID.to_owned(), PNID_2.to_owned()],
        rate_per_second: None,
        ..ci.clone()
    };
    store.put_api_key(&renamed).await.unwrap();
    assert_eq!(store.api_key("h1").await.unwrap().as_ref(), Some(&renamed));
}

pub async fn revoked_keys_authenticate_nothing_and_are_still_listed(backend: Backend) {
    let store = backend.store().await;
    store.put_api_key(&key("ci", "h1")).await.unwrap();
    store.put_api_key(&key("ci", "h2")).await.unwrap();
    store.put_api_key(&key("other", "h3")).await.unwrap();

    assert_eq!(store.revoke_api_key("ci").await.unwrap(), 2);
    assert_eq!(store.revoke_api_key("ci").await.unwrap(), 0, "idempotent");
    assert_eq!(store.revoke_api_key("nobody").await.unwrap(), 0);
    assert_eq!(store.api_key("h1").await.unwrap(), None);
    assert_eq!(store.api_key("h2").await.unwrap(), None);
    assert!(store.api_key("h3").await.unwrap().is_some());

    let listed = store.api_keys().await.unwrap();
    let names: Vec<_> = listed.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["ci", "ci", "other"]);
    assert!(listed[..2].iter().all(|k| k.revoked_at.is_some()));
    assert_eq!(listed[2].revoked_at, None);
    assert_eq!(listed[2].rate_per_second, Some(5));

    // Putting a revoked hash again makes it live again.
    store.put_api_key(&key("ci", "h1")).await.unwrap();
    assert!(store.api_key("h1").await.unwrap().is_some());
}

pub async fn audit_log_keeps_entries_newest_first(backend: Backend) {
    let store = backend.store().await;
    assert!(store.audit_log(10).await.unwrap().is_empty());
    let entries: Vec<AuditEntry> = (0..5)
        .map(|i| AuditEntry {
            at_ms: 1_700_000_000_000 + i,
            key_name: format!("key{i}"),
            method: "POST".into(),
            route: "/v1/{phone_number_id}/messages".into(),
            target: (i % 2 == 0).then(|| PNID.to_owned()),
            status: 202,
            request_id: format!("req-{i}"),
        })
        .collect();
    for entry in &entries {
        store.record_audit(entry).await.unwrap();
    }
    let latest = store.audit_log(3).await.unwrap();
    let expected: Vec<_> = entries.iter().rev().take(3).cloned().collect();
    assert_eq!(latest, expected);
    assert_eq!(store.audit_log(100).await.unwrap().len(), 5);
}
