//! Most of the WAL checkpoint work off the write path: a background thread with
//! its own connection copies committed frames into the database file (passive
//! checkpoints every 20 ms). The writer keeps a large automatic
//! checkpoint threshold; when the WAL reaches it, the writer's own checkpoint
//! finds nearly everything already copied, finishes cheaply and restarts the
//! WAL from the beginning, so it stays bounded.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::{open_connection, Durability};

/// How often the WAL is copied back into the database file.
const INTERVAL: Duration = Duration::from_millis(20);

/// WAL size after which the writer checkpoints and restarts the WAL itself
/// (also the size the WAL file is truncated back to after a checkpoint).
pub(crate) const WRITER_CHECKPOINT_BYTES: i64 = 64 * 1024 * 1024;

/// [`WRITER_CHECKPOINT_BYTES`] in WAL frames (pages) of `conn`'s database.
pub(crate) fn writer_checkpoint_frames(conn: &Connection) -> rusqlite::Result<i64> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    Ok(WRITER_CHECKPOINT_BYTES / page_size.max(512))
}

/// Stops the checkpoint thread when the last store handle is dropped.
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts the thread; it ends after a final checkpoint once dropped.
    pub(crate) fn start(path: PathBuf, durability: Durability, nice: i32) -> Checkpointer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let spawned = std::thread::Builder::new().name("zapfn-sqlite-checkpoint".into()).spawn(move || {
            super::priority::lower_this_thread(nice);
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
