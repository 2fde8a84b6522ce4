//! Firestore errors as store errors.

use firestore::errors::FirestoreError;
use zapfn_store::StoreError;

/// Whether a transaction lost a conflict with another one (`ABORTED`): it runs again.
pub(crate) fn is_contention(error: &FirestoreError) -> bool {
    matches!(error, FirestoreError::DatabaseError(e) if e.public.code == "Aborted")
}

/// Maps a Firestore error to the store's: what the caller sent wrong is
/// `Invalid`, undecodable documents are `Json`, and everything else
/// (unavailable, aborted, deadline exceeded, a lost connection, …) is
/// `Unavailable`, which callers answer with a retry.
pub(crate) fn store_error(error: FirestoreError) -> StoreError {
    match error {
        FirestoreError::InvalidParametersError(e) => StoreError::Invalid(e.to_string()),
        FirestoreError::SerializeError(e) | FirestoreError::DeserializeError(e) => {
            StoreError::Json(serde::de::Error::custom(e))
        }
        other => StoreError::Unavailable(format!("firestore: {other}")),
    }
}
