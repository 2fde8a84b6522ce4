//! API key hashes.

use zapfn_store::Result;

use crate::layout::Layout;
use crate::records::ApiKeyDoc;
use crate::tx::Tx;

/// Stores (or renames and revives) the key with this hash.
pub(crate) async fn put(tx: &mut Tx, layout: &Layout, name: &str, key_hash: &str) -> Result<()> {
    let doc = layout.api_key(key_hash);
    let created_at = match tx.get::<ApiKeyDoc>(&doc).await? {
        Some(existing) => existing.created_at,
        None => tx.now(),
    };
    tx.set(
        &doc,
        &ApiKeyDoc {
            key_hash: key_hash.to_owned(),
            name: name.to_owned(),
            created_at,
            revoked_at: None,
        },
    )
}

/// The name of a live key.
pub(crate) fn live_name(key: ApiKeyDoc, key_hash: &str) -> Option<String> {
    (key.revoked_at.is_none() && key.key_hash == key_hash).then_some(key.name)
}
