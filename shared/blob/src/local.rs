//! Objects as files in a directory: `objects/<key>` holds the bytes and
//! `meta/<key>.json` the content type and checksum. Writes go to a temporary
//! file and are renamed into place, so a reader never sees half an object.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;

use crate::{sha256_hex, Blob, BlobError, BlobInfo, BlobKey, BlobStore, Result};

/// A [`BlobStore`] in a local directory.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

#[derive(Deserialize)]
struct Meta {
    content_type: String,
    size: u64,
    sha256: String,
}

impl LocalBlobStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> LocalBlobStore {
        LocalBlobStore { root: root.into() }
    }

    fn object_path(&self, key: &BlobKey) -> PathBuf {
        self.root.join("objects").join(key.as_str())
    }

    fn meta_path(&self, key: &BlobKey) -> PathBuf {
        self.root
            .join("meta")
            .join(format!("{}.json", key.as_str()))
    }
}

fn unavailable(path: &Path, error: std::io::Error) -> BlobError {
    BlobError::Unavailable(format!("{}: {error}", path.display()))
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().expect("object paths have a parent");
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| unavailable(parent, e))?;
    let temporary = parent.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let written = async {
        tokio::fs::write(&temporary, bytes).await?;
        tokio::fs::rename(&temporary, path).await
    }
    .await;
    if let Err(error) = written {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(unavailable(path, error));
    }
    Ok(())
}

async fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(unavailable(path, error)),
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, key: &BlobKey, bytes: Bytes, content_type: &str) -> Result<BlobInfo> {
        let info = BlobInfo {
            key: key.to_string(),
            content_type: content_type.to_owned(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        };
        let meta = serde_json::json!({
            "content_type": info.content_type,
            "size": info.size,
            "sha256": info.sha256,
        });
        write_atomically(&self.object_path(key), &bytes).await?;
        write_atomically(&self.meta_path(key), meta.to_string().as_bytes()).await?;
        Ok(info)
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>> {
        let meta_path = self.meta_path(key);
        let Some(meta) = read_optional(&meta_path).await? else {
            return Ok(None);
        };
        let Some(bytes) = read_optional(&self.object_path(key)).await? else {
            return Ok(None);
        };
        let meta: Meta = serde_json::from_slice(&meta).map_err(|e| {
            BlobError::Unavailable(format!("{}: unreadable metadata: {e}", meta_path.display()))
        })?;
        Ok(Some(Blob {
            info: BlobInfo {
                key: key.to_string(),
                content_type: meta.content_type,
                size: meta.size,
                sha256: meta.sha256,
            },
            bytes: Bytes::from(bytes),
        }))
    }

    async fn delete(&self, key: &BlobKey) -> Result<bool> {
        let mut existed = false;
        for path in [self.object_path(key), self.meta_path(key)] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => existed = true,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(unavailable(&path, error)),
            }
        }
        Ok(existed)
    }

    async fn signed_url(&self, _key: &BlobKey, _ttl: Duration) -> Result<Option<String>> {
        Ok(None)
    }
}
