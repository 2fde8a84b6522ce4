//! Media objects in Cloud Storage, with V4 signed URLs.
//!
//! Each object keeps its SHA-256 in custom metadata (`sha256`), so reads return
//! the same [`BlobInfo`] as the local store without hashing again.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use gcloud_storage::client::{Client, ClientConfig};
use gcloud_storage::http::buckets::insert::{
    BucketCreationConfig, InsertBucketParam, InsertBucketRequest,
};
use gcloud_storage::http::objects::delete::DeleteObjectRequest;
use gcloud_storage::http::objects::download::Range;
use gcloud_storage::http::objects::get::GetObjectRequest;
use gcloud_storage::http::objects::upload::{UploadObjectRequest, UploadType};
use gcloud_storage::http::objects::Object;
use gcloud_storage::sign::{SignBy, SignedURLMethod, SignedURLOptions, URLStyle};
use serde::Deserialize;
use zapfn_blob::{sha256_hex, Blob, BlobError, BlobInfo, BlobKey, BlobStore};

use crate::CloudError;

/// A service account key that signs URLs locally (instead of IAM signBlob).
#[derive(Clone, Deserialize)]
pub struct SigningKey {
    pub client_email: String,
    /// PKCS#8 PEM.
    pub private_key: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a service account JSON key file.
    pub fn from_file(path: &std::path::Path) -> Result<SigningKey, CloudError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CloudError::Config(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| {
            CloudError::Config(format!(
                "{}: not a service account key: {e}",
                path.display()
            ))
        })
    }
}

/// A [`BlobStore`] on one Cloud Storage bucket.
pub struct GcsBlobStore {
    client: Client,
    bucket: String,
    signing_key: Option<SigningKey>,
    /// The emulator's address (`STORAGE_EMULATOR_HOST`), whose URLs are path-style over HTTP.
    emulator: Option<String>,
}

/// Path-style URLs on the emulator's host.
struct EmulatorStyle(String);

impl URLStyle for EmulatorStyle {
    fn host(&self, _bucket: &str) -> String {
        self.0.clone()
    }

    fn path(&self, bucket: &str, object: &str) -> String {
        format!("{bucket}/{object}")
    }
}

impl GcsBlobStore {
    /// Connects to the emulator at `STORAGE_EMULATOR_HOST` (anonymous) when set,
    /// else to Cloud Storage with the Application Default Credentials. Signed
    /// URLs use `signing_key` when given, else the credentials' own key or IAM
    /// signBlob for the runtime service account.
    pub async fn connect(
        bucket: impl Into<String>,
        signing_key: Option<SigningKey>,
    ) -> Result<GcsBlobStore, CloudError> {
        if let Some(host) = std::env::var("STORAGE_EMULATOR_HOST")
            .ok()
            .filter(|host| !host.is_empty())
        {
            return Ok(GcsBlobStore::anonymous(bucket, signing_key, Some(host)));
        }
        let config = ClientConfig::default()
            .with_auth()
            .await
            .map_err(|e| CloudError::service("storage auth", e))?;
        Ok(GcsBlobStore {
            client: Client::new(config),
            bucket: bucket.into(),
            signing_key,
            emulator: None,
        })
    }

    /// A client without credentials: for the emulator at `emulator`
    /// (`http://host:port`), or Cloud Storage when None (public objects, and
    /// URLs signed locally with `signing_key`).
    pub fn anonymous(
        bucket: impl Into<String>,
        signing_key: Option<SigningKey>,
        emulator: Option<String>,
    ) -> GcsBlobStore {
        let mut config = ClientConfig::default().anonymous();
        if let Some(host) = &emulator {
            config.storage_endpoint = host.trim_end_matches('/').to_owned();
        }
        GcsBlobStore {
            client: Client::new(config),
            bucket: bucket.into(),
            signing_key,
            emulator: emulator.map(|host| {
                host.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned()
            }),
        }
    }

    /// Creates the bucket unless it exists (tests and local wiring).
    pub async fn ensure_bucket(&self, project: &str) -> Result<(), CloudError> {
        let request = InsertBucketRequest {
            name: self.bucket.clone(),
            param: InsertBucketParam {
                project: project.to_owned(),
                ..Default::default()
            },
            bucket: BucketCreationConfig::default(),
        };
        match self.client.insert_bucket(&request).await {
            Ok(_) => Ok(()),
            Err(error) if status_of(&error) == Some(409) => Ok(()),
            Err(error) => Err(CloudError::service("storage create bucket", error)),
        }
    }

    /// A V4 signed GET URL valid from `start` for `ttl` (at most 7 days).
    pub async fn signed_url_at(
        &self,
        key: &BlobKey,
        ttl: Duration,
        start: SystemTime,
    ) -> Result<String, BlobError> {
        let mut options = SignedURLOptions {
            method: SignedURLMethod::GET,
            start_time: Some(start),
            expires: ttl,
            ..Default::default()
        };
        if let Some(host) = &self.emulator {
            options.style = Box::new(EmulatorStyle(host.clone()));
            options.insecure = true;
        }
        let (access_id, sign_by) = match &self.signing_key {
            Some(key) => (
                Some(key.client_email.clone()),
                Some(SignBy::PrivateKey(key.private_key.clone().into_bytes())),
            ),
            None => (None, None),
        };
        self.client
            .signed_url(&self.bucket, key.as_str(), access_id, sign_by, options)
            .await
            .map_err(|e| BlobError::Unavailable(format!("cannot sign a URL: {e}")))
    }

    fn object_request(&self, key: &BlobKey) -> GetObjectRequest {
        GetObjectRequest {
            bucket: self.bucket.clone(),
            object: key.to_string(),
            ..Default::default()
        }
    }
}

fn unavailable(error: gcloud_storage::http::Error) -> BlobError {
    BlobError::Unavailable(format!("cloud storage: {error}"))
}

/// The HTTP status of a failed call: Cloud Storage answers a JSON error, the emulator a bare status.
fn status_of(error: &gcloud_storage::http::Error) -> Option<u16> {
    use gcloud_storage::http::Error;
    match error {
        Error::Response(response) => Some(response.code),
        Error::HttpClient(error) => error.status().map(|status| status.as_u16()),
        _ => None,
    }
}

fn is_not_found(error: &gcloud_storage::http::Error) -> bool {
    status_of(error) == Some(404)
}

#[async_trait]
impl BlobStore for GcsBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Bytes,
        content_type: &str,
    ) -> zapfn_blob::Result<BlobInfo> {
        let info = BlobInfo {
            key: key.to_string(),
            content_type: content_type.to_owned(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        };
        let object = Object {
            name: key.to_string(),
            content_type: Some(content_type.to_owned()),
            metadata: Some(HashMap::from([("sha256".to_owned(), info.sha256.clone())])),
            ..Default::default()
        };
        let request = UploadObjectRequest {
            bucket: self.bucket.clone(),
            ..Default::default()
        };
        self.client
            .upload_object(&request, bytes, &UploadType::Multipart(Box::new(object)))
            .await
            .map_err(unavailable)?;
        Ok(info)
    }

    async fn get(&self, key: &BlobKey) -> zapfn_blob::Result<Option<Blob>> {
        let request = self.object_request(key);
        let object = match self.client.get_object(&request).await {
            Ok(object) => object,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(unavailable(error)),
        };
        let bytes = match self
            .client
            .download_object(&request, &Range::default())
            .await
        {
            Ok(bytes) => Bytes::from(bytes),
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(unavailable(error)),
        };
        let sha256 = object
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.get("sha256").cloned())
            .unwrap_or_else(|| sha256_hex(&bytes));
        Ok(Some(Blob {
            info: BlobInfo {
                key: key.to_string(),
                content_type: object
                    .content_type
                    .unwrap_or_else(|| "application/octet-stream".into()),
                size: bytes.len() as u64,
                sha256,
            },
            bytes,
        }))
    }

    async fn delete(&self, key: &BlobKey) -> zapfn_blob::Result<bool> {
        let request = DeleteObjectRequest {
            bucket: self.bucket.clone(),
            object: key.to_string(),
            ..Default::default()
        };
        match self.client.delete_object(&request).await {
            Ok(()) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn signed_url(&self, key: &BlobKey, ttl: Duration) -> zapfn_blob::Result<Option<String>> {
        self.signed_url_at(key, ttl, SystemTime::now())
            .await
            .map(Some)
    }
}
