//! A small pool of read-only connections used from blocking tasks.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;

use super::{open_connection, Durability};
use crate::{Result, StoreError};

/// Idle read connections, opened on demand.
pub(crate) struct Readers {
    path: PathBuf,
    durability: Durability,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: PathBuf, durability: Durability) -> Readers {
        Readers {
            path,
            durability,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `work` on a read connection in a blocking task.
    pub(crate) async fn read<T, F>(self: &std::sync::Arc<Self>, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match readers.idle.lock().map(|mut idle| idle.pop()) {
                Ok(Some(conn)) => conn,
                _ => open_connection(&readers.path, readers.durability)?,
            };
            let result = work(&conn);
            if let Ok(mut idle) = readers.idle.lock() {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}
