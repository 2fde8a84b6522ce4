//! WAL checkpoints off the write path: the writer connection never checkpoints
//! (`wal_autocheckpoint = 0`); a background thread with its own connection runs
//! a passive checkpoint every second, so copying pages into the database file
//! and its fsync never delay a group commit.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{open_connection, Durability};

/// How often the WAL is copied back into the database file.
const INTERVAL: Duration = Duration::from_secs(1);

/// Stops the checkpoint thread when the last store handle is dropped.
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts the thread; it ends after a final checkpoint once dropped.
    pub(crate) fn start(path: PathBuf, durability: Durability) -> Checkpointer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let spawned = std::thread::Builder::new().name("zapfn-sqlite-checkpoint".into()).spawn(move || {
            let conn = match open_connection(&path, durability) {
                Ok(conn) => conn,
                Err(error) => return tracing::error!(%error, "no checkpoint connection; the WAL will grow"),
            };
            loop {
                let last = stopped.load(Ordering::Relaxed);
                if let Err(error) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                    tracing::warn!(%error, "WAL checkpoint failed");
                }
                if last {
                    return;
                }
                std::thread::park_timeout(INTERVAL);
            }
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start the checkpoint thread");
        }
        Checkpointer { stop }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
