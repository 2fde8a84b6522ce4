//! API keys, by their (peppered) hash.

use firestore::FirestoreDb;
use zapfn_store::{ApiKey, Result, Scope, StoreError};

use crate::error::store_error;
use crate::layout::{collections, Layout};
use crate::records::ApiKeyDoc;
use crate::tx::Tx;

/// Stores a key; a stored hash takes the new name, scopes, numbers and rate,
/// keeps its creation time, and is live again.
pub(crate) async fn put(tx: &mut Tx, layout: &Layout, key: &ApiKey) -> Result<()> {
    let doc = layout.api_key(&key.key_hash);
    let created_at = match tx.get::<ApiKeyDoc>(&doc).await? {
        Some(stored) => stored.created_at,
        None => key.created_at,
    };
    tx.set(
        &doc,
        &ApiKeyDoc {
            key_hash: key.key_hash.clone(),
            name: key.name.clone(),
            scopes: key.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            phone_number_ids: key.phone_number_ids.clone(),
            rate_per_second: key.rate_per_second,
            created_at,
            revoked_at: None,
        },
    )
}

/// Revokes the live keys among `hashes` that are named `name`; returns how many.
pub(crate) async fn revoke(
    tx: &mut Tx,
    layout: &Layout,
    name: &str,
    hashes: &[String],
) -> Result<usize> {
    let docs: Vec<_> = hashes.iter().map(|hash| layout.api_key(hash)).collect();
    tx.prefetch(&docs).await?;
    let mut revoked = 0;
    for doc in &docs {
        let Some(mut key) = tx.get::<ApiKeyDoc>(doc).await? else {
            continue;
        };
        if key.name == name && key.revoked_at.is_none() {
            key.revoked_at = Some(tx.now());
            tx.set(doc, &key)?;
            revoked += 1;
        }
    }
    Ok(revoked)
}

/// Every stored key, or those named `name`.
pub(crate) async fn stored(
    db: &FirestoreDb,
    layout: &Layout,
    name: Option<&str>,
) -> Result<Vec<ApiKey>> {
    let docs: Vec<ApiKeyDoc> = db
        .fluent()
        .select()
        .from(collections::API_KEYS)
        .parent(layout.root())
        .filter(|q| name.and_then(|name| q.field("name").eq(name)))
        .obj()
        .query()
        .await
        .map_err(store_error)?;
    docs.into_iter().map(api_key).collect()
}

/// A stored key as the store's model.
pub(crate) fn api_key(doc: ApiKeyDoc) -> Result<ApiKey> {
    let scopes = doc
        .scopes
        .iter()
        .map(|scope| scope.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| StoreError::Invalid(format!("stored API key {}: {error}", doc.name)))?;
    Ok(ApiKey {
        name: doc.name,
        key_hash: doc.key_hash,
        scopes,
        phone_number_ids: doc.phone_number_ids,
        rate_per_second: doc.rate_per_second,
        created_at: doc.created_at,
        revoked_at: doc.revoked_at,
    })
}
