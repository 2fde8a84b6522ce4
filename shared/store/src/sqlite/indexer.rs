//! The journal's indexer: a thread that reads acknowledged webhook bodies from
//! the [`journal`](super::journal) in order, parses them and stores them as
//! [`Store::ingest`](crate::Store::ingest) does — messages deduplicated by
//! wamid, statuses by (wamid, status), their events in the outbox — in group
//! transactions that also record the journal position they reached. A crash
//! resumes from the last committed position; records indexed twice (none, but
//! for a crash between the commit and nothing else) would dedupe anyway.
//!
//! Nothing is dropped: a body that cannot be stored as a notification (an
//! error that is not the storage's) is kept whole in `raw_events` as
//! `unstored_webhook` with the reason. A storage error (disk full, locked)
//! stops indexing until a retry succeeds; the journal keeps the records.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::Notify;
use zapfn_whatsapp::webhook::{self, RawEvent};

use super::journal::{self, Position, Reader, Shared};
use super::writer::{run_cached, Writer};
use super::{ingest, now_ms};
use crate::{Result, StoreError};

/// Most records stored in one transaction. Under a backlog, large batches
/// store a webhook for less: the random index pages they dirty are shared by
/// more records (4,096 took ≈ 30 % less CPU per webhook than 512). The writer
/// is busy that long (up to ≈ 0.3 s) for other jobs; acknowledgements do not wait.
const BATCH_RECORDS: usize = 8192;
/// About the most body bytes stored in one transaction.
const BATCH_BYTES: usize = 16 * 1024 * 1024;
/// How long the indexer lets a few records wait for more (see [`Indexer::run`]).
const LINGER: Duration = Duration::from_millis(5);
/// Records of this many bytes or more are stored without lingering.
const LINGER_BYTES: u64 = 256 * 1024;
/// How long an idle indexer sleeps before looking for a stop.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// First and longest pause after a failed batch.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The position the indexer stored last (the start for a new one).
pub(crate) fn stored_position(conn: &Connection) -> Result<Position> {
    let stored = conn
        .query_row(
            "SELECT segment, offset FROM journal_position WHERE id = 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
        )
        .optional()?;
    Ok(
        stored.map_or(Position::default(), |(segment, offset)| Position {
            segment: segment as u64,
            offset: offset as u64,
        }),
    )
}

/// Starts indexing from `start` on its own thread (at nice value `nice`); it
/// ends once the journal stops.
pub(crate) fn start(
    journal: Arc<Shared>,
    writer: Writer,
    published: Arc<Notify>,
    start: Position,
    nice: i32,
) -> Result<()> {
    journal.set_indexed(start);
    let indexer = Indexer {
        journal,
        writer,
        published,
        committed: start,
    };
    std::thread::Builder::new()
        .name("zapfn-indexer".into())
        .spawn(move || {
            super::priority::lower_this_thread(nice);
            indexer.run()
        })
        .map(drop)
        .map_err(|e| StoreError::Unavailable(format!("indexer thread: {e}")))
}

struct Indexer {
    journal: Arc<Shared>,
    writer: Writer,
    published: Arc<Notify>,
    committed: Position,
}

impl Indexer {
    fn run(mut self) {
        let mut reader = Reader::new(self.journal.dir(), self.committed);
        let mut pause = RETRY_FIRST;
        while !self.journal.is_stopped() {
            let end = self.journal.end();
            if reader.position() >= end {
                if self
                    .journal
                    .wait_past(reader.position(), IDLE_WAIT)
                    .is_none()
                {
                    return;
                }
                continue;
            }
            // Every commit writes each page it touched to the WAL whole, so a
            // commit per record or two (webhooks arriving one by one) costs
            // several times the storing; a moment's wait shares it among more.
            let end = if self.journal.backlog() < LINGER_BYTES {
                std::thread::sleep(LINGER);
                self.journal.end()
            } else {
                end
            };
            match self.index_next(&mut reader, end) {
                Ok(()) => pause = RETRY_FIRST,
                Err(error) => {
                    if self.journal.is_stopped() {
                        return;
                    }
                    tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "webhooks journaled but not stored yet; retrying");
                    reader = Reader::new(self.journal.dir(), self.committed);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Stores `records` with `how` as one bulk write job, with the journal
    /// position after them.
    fn store(
        &self,
        records: &Arc<Vec<Vec<u8>>>,
        next: Position,
        how: fn(&Connection, &[Vec<u8>]) -> Result<()>,
    ) -> Result<()> {
        let (journal, records) = (self.journal.clone(), records.clone());
        self.writer.write_bulk_blocking(move |conn| {
            // A store closed meanwhile leaves the batch to the next opener.
            if journal.is_stopped() {
                return Err(StoreError::Closed);
            }
            how(conn, &records)?;
            record_position(conn, next)
        })
    }

    /// Reads and stores the next batch before `end`.
    fn index_next(&mut self, reader: &mut Reader, end: Position) -> Result<()> {
        let before = reader.position();
        let records = reader.read(end, BATCH_RECORDS, BATCH_BYTES)?;
        let next = reader.position();
        if records.is_empty() {
            if next == before {
                return Err(StoreError::Unavailable(format!(
                    "journal record at {before:?} is unreadable before the written end {end:?}"
                )));
            }
            // Only crossed into a newer segment: the ones passed hold nothing unstored.
            journal::remove_before(self.journal.dir(), next.segment)?;
            self.journal.set_indexed(next);
            return Ok(());
        }
        let records = Arc::new(records);
        let stored = self.store(&records, next, store_all);
        match stored {
            Err(error) if !is_storage_failure(&error) => self.store(&records, next, store_each)?,
            stored => stored?,
        }
        self.published.notify_waiters();
        if next.segment > self.committed.segment {
            journal::remove_before(self.journal.dir(), next.segment)?;
        }
        self.committed = next;
        self.journal.set_indexed(next);
        Ok(())
    }
}

/// Stores every record, or fails on the first that cannot be stored (the
/// writer then undoes them all: the job has no savepoint of its own).
fn store_all(conn: &Connection, records: &[Vec<u8>]) -> Result<()> {
    records.iter().try_for_each(|body| store_record(conn, body))
}

/// Records that the journal is stored up to `next`.
fn record_position(conn: &Connection, next: Position) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO journal_position (id, segment, offset) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET segment = excluded.segment, offset = excluded.offset",
    )?
    .execute(params![next.segment as i64, next.offset as i64])?;
    Ok(())
}

/// Stores each record in its own savepoint; one that cannot be stored as a
/// notification is kept whole in `raw_events`, with the reason logged.
fn store_each(conn: &Connection, records: &[Vec<u8>]) -> Result<()> {
    let now = now_ms();
    for body in records {
        run_cached(conn, "SAVEPOINT webhook")?;
        match store_record(conn, body) {
            Ok(()) => run_cached(conn, "RELEASE webhook")?,
            Err(error) if is_storage_failure(&error) => return Err(error),
            Err(error) => {
                run_cached(conn, "ROLLBACK TO webhook")?;
                run_cached(conn, "RELEASE webhook")?;
                tracing::error!(%error, bytes = body.len(), "webhook kept raw: it could not be stored as a notification");
                let kept = RawEvent {
                    phone_number_id: None,
                    kind: "unstored_webhook".into(),
                    raw: String::from_utf8_lossy(body).into_owned(),
                };
                ingest::insert_raw_event(conn, &kept, now)?;
            }
        }
    }
    Ok(())
}

/// Parses and stores one journaled body.
fn store_record(conn: &Connection, body: &[u8]) -> Result<()> {
    match webhook::parse(body) {
        Ok(notification) => ingest::ingest(conn, &notification).map(drop),
        Err(error) => Err(StoreError::Invalid(format!("not JSON: {error}"))),
    }
}

/// Whether `error` is the storage failing (retry later) rather than the data.
fn is_storage_failure(error: &StoreError) -> bool {
    use rusqlite::ErrorCode::*;
    match error {
        StoreError::Database(rusqlite::Error::SqliteFailure(failure, _)) => !matches!(
            failure.code,
            ConstraintViolation | TooBig | TypeMismatch | ParameterOutOfRange
        ),
        StoreError::Database(_) | StoreError::Json(_) | StoreError::Invalid(_) => false,
        StoreError::Closed | StoreError::Unavailable(_) => true,
    }
}
