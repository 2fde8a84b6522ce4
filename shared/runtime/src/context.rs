//! What every function gets: the store, the blob store, the configuration and the Graph API client.

use std::sync::Arc;

use zapfn_blob::local::LocalBlobStore;
use zapfn_blob::BlobStore;
use zapfn_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use zapfn_store::Store;
use zapfn_whatsapp::graph::{GraphClient, GraphConfig};

use crate::backends::{BlobBackend, StoreBackend};
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
    /// Connects the backends `config.backends` names: SQLite or Firestore or
    /// PostgreSQL, a local directory or Cloud Storage.
    pub async fn connect(config: Config) -> anyhow::Result<Context> {
        let embedded = config.backends.store == StoreBackend::Sqlite
            && config.backends.blobs == BlobBackend::Local;
        if embedded {
            return Context::open(config);
        }
        let (store, published) = connect_store(&config).await?;
        let blobs: Arc<dyn BlobStore> = match &config.backends.blobs {
            BlobBackend::Local => Arc::new(LocalBlobStore::new(config.media_dir())),
            BlobBackend::Gcs {
                bucket,
                signing_key_file,
            } => {
                let key = signing_key_file
                    .as_deref()
                    .map(zapfn_cloud::storage::SigningKey::from_file)
                    .transpose()?;
                Arc::new(zapfn_cloud::storage::GcsBlobStore::connect(bucket.clone(), key).await?)
            }
        };
        Ok(Context {
            graph: graph_client(&config),
            config: Arc::new(config),
            store,
            blobs,
            published,
        })
    }

    /// Opens the embedded backends: SQLite and a local blob directory.
    pub fn open(config: Config) -> anyhow::Result<Context> {
        let store = SqliteStore::open(config.database_path(), sqlite_options(&config))?;
        let published = store.published();
        let graph = graph_client(&config);
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

/// Connects only the store `config.backends.store` names (SQLite, Firestore or
/// PostgreSQL), with the notifier its consumers wait on; `zapfn keys` uses it
/// to manage the keys of a deployed store.
pub async fn connect_store(
    config: &Config,
) -> anyhow::Result<(Arc<dyn Store>, Arc<tokio::sync::Notify>)> {
    Ok(match &config.backends.store {
        StoreBackend::Sqlite => {
            let store = SqliteStore::open(config.database_path(), sqlite_options(config))?;
            let published = store.published();
            (Arc::new(store), published)
        }
        StoreBackend::Postgres { url } => {
            let options = zapfn_store_postgres::PostgresOptions {
                max_attempts: config.max_attempts,
                max_retry_age: config.max_retry_age,
                ..Default::default()
            };
            let store = zapfn_store_postgres::PostgresStore::connect(url, options).await?;
            let published = store.published();
            (Arc::new(store), published)
        }
        StoreBackend::Firestore { database, prefix } => {
            let project_id = config.backends.project_id.clone().ok_or_else(|| {
                anyhow::anyhow!("GOOGLE_CLOUD_PROJECT: required with ZAPFN_STORE=firestore")
            })?;
            let store = zapfn_store_firestore::FirestoreStore::connect(
                zapfn_store_firestore::FirestoreConfig {
                    project_id,
                    database_id: database.clone(),
                    prefix: prefix.clone(),
                    max_attempts: config.max_attempts,
                    max_retry_age: config.max_retry_age,
                },
            )
            .await?;
            (Arc::new(store), Arc::default())
        }
    })
}

fn sqlite_options(config: &Config) -> SqliteOptions {
    SqliteOptions {
        durability: if config.sqlite_full_sync {
            Durability::Power
        } else {
            Durability::Process
        },
        max_attempts: config.max_attempts,
        max_retry_age: config.max_retry_age,
        webhook_journal: config.webhook_journal,
        background_nice: config.sqlite_nice,
        ..SqliteOptions::default()
    }
}

fn graph_client(config: &Config) -> GraphClient {
    GraphClient::new(GraphConfig {
        base_url: config.graph_url.clone(),
        api_version: config.api_version.clone(),
        access_token: config
            .access_token
            .clone()
            .unwrap_or_else(|| "sandbox-token".into()),
        timeout: config.graph_timeout,
    })
}
