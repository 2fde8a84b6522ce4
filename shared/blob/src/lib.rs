//! zapfn's blob store: where media objects live.
//!
//! [`BlobStore`] is the seam; [`local::LocalBlobStore`] keeps objects in a
//! directory (the embedded mode). Keys are validated once, in [`BlobKey`], so no
//! backend ever sees `..`, an absolute path or a control character.

pub mod key;
pub mod local;
pub mod media;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

pub use key::BlobKey;

/// Errors from a blob backend.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The key is not a safe object name.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// The backend could not be reached or refused the call: retry later.
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
}

/// Result alias for blob calls.
pub type Result<T, E = BlobError> = std::result::Result<T, E>;

/// What is known about a stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobInfo {
    pub key: String,
    pub content_type: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

/// A stored object with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub info: BlobInfo,
    pub bytes: Bytes,
}

/// Object storage: put, get, delete, and signed URLs where the backend has them.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `key` (replacing what was there): idempotent.
    async fn put(&self, key: &BlobKey, bytes: Bytes, content_type: &str) -> Result<BlobInfo>;

    /// The object, if it exists.
    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>>;

    /// Deletes the object; false when there was none.
    async fn delete(&self, key: &BlobKey) -> Result<bool>;

    /// A URL that lets anyone holding it GET the object for `ttl` (a V4 signed
    /// URL on Cloud Storage). None when the backend serves objects only
    /// through zapfn (the local directory).
    async fn signed_url(&self, key: &BlobKey, ttl: Duration) -> Result<Option<String>>;
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
