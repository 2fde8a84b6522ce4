//! What every function gets: the store, the blob store, the configuration and the Graph API client.

use std::sync::Arc;

use zapfn_blob::local::LocalBlobStore;
use zapfn_blob::BlobStore;
use zapfn_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use zapfn_store::Store;
use zapfn_whatsapp::graph::{GraphClient, GraphConfig};

use crate::Config;

/// Shared handles; cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    /// Media objects.
    pub blobs: Arc<dyn BlobStore>,
    pub graph: GraphClient,
    /// Notified when the store publishes events (embedded consumers wait on it).
    pub published: Arc<tokio::sync::Notify>,
}

impl Context {
    /// Opens the embedded backends named by `config`.
    pub fn open(config: Config) -> anyhow::Result<Context> {
        let options = SqliteOptions {
            durability: if config.sqlite_full_sync {
                Durability::Power
            } else {
                Durability::Process
            },
            max_attempts: config.max_attempts,
            max_retry_age: config.max_retry_age,
        };
        let store = SqliteStore::open(config.database_path(), options)?;
        let published = store.published();
        let graph = GraphClient::new(GraphConfig {
            base_url: config.graph_url.clone(),
            api_version: config.api_version.clone(),
            access_token: config
                .access_token
                .clone()
                .unwrap_or_else(|| "sandbox-token".into()),
            timeout: config.graph_timeout,
        });
        let blobs = Arc::new(LocalBlobStore::new(config.media_dir()));
        Ok(Context {
            config: Arc::new(config),
            store: Arc::new(store),
            blobs,
            graph,
            published,
        })
    }
}
