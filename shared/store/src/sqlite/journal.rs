//! The webhook journal: validly signed webhook bodies are appended to segment
//! files, and acknowledged once the append is as durable as a commit of the
//! database would be; the [`indexer`](super::indexer) then stores them in
//! SQLite, in order, and records how far it got in the same transaction.
//!
//! With [`Durability::Process`] (the default) a request appends its record
//! itself: one `write` into the page cache under a lock, which survives the
//! process being killed, as SQLite's `synchronous=NORMAL` commits do. With
//! [`Durability::Power`] appends go to a thread that gives every request of a
//! moment one shared `write` and `fdatasync`. Either way acknowledging a
//! webhook costs a memory copy rather than the B-tree pages its rows will
//! dirty: the writer thread's SQL is no longer on the webhook's path.
//!
//! Format: `.zapfn/journal/{segment:020}.log`, each record a little-endian
//! `u32` length, the `u32` CRC-32 of the body, then the body. A process only
//! appends to a segment it created, so a record torn by a crash is always the
//! last of its segment: a reader stops a segment at its first short or
//! corrupt record and moves on to the next. Segments the indexer has passed
//! are deleted. One process owns the journal (an exclusive lock on
//! `journal/lock`); another process opening the same database gets none and
//! stores webhooks directly.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::Durability;
use crate::{Result, StoreError};

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Most bytes one `write` takes from waiting appends.
const MAX_WRITE_BYTES: usize = 4 * 1024 * 1024;
/// Length and checksum before each body.
const HEADER: usize = 8;
/// Largest body a record can hold (Meta's webhooks are at most 3 MiB).
pub(crate) const MAX_RECORD: usize = 16 * 1024 * 1024;

/// A place in the journal: records before it are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// One body waiting for the group-write thread.
struct Append {
    body: Vec<u8>,
    done: oneshot::Sender<Result<()>>,
}

/// What the append thread and the indexer share.
pub(crate) struct Shared {
    dir: PathBuf,
    /// The end of what is written (appended and acknowledged).
    end: Mutex<End>,
    /// Signalled when the end moves while the indexer waits, or on stop.
    moved: Condvar,
    /// How far the indexer has stored (and committed) records.
    indexed: watch::Sender<Position>,
    /// Set when the last store handle is gone.
    stopped: Mutex<bool>,
    /// Refuse appends while the indexer is this many bytes behind.
    max_backlog: u64,
}

/// The end of the written records, and whether the indexer waits for it to
/// move (only then does an append pay for a wake-up).
struct End {
    at: Position,
    watched: bool,
}

/// The append side of the journal (one per owning process).
pub(crate) struct Journal {
    /// The segment being written.
    appender: Arc<Mutex<Appender>>,
    /// With power durability, appends wait for the group-write thread.
    group: Option<mpsc::Sender<Append>>,
    shared: Arc<Shared>,
    /// Held for the life of the journal: the exclusive lock on `journal/lock`.
    _lock: File,
}

impl Journal {
    /// Opens the journal in `dir` (created if needed), or `None` when another
    /// process owns it. Appends start in a new segment after the existing ones
    /// and after `indexed`'s (where the database says indexing got to), so a
    /// lost or emptied directory never puts new records behind that position.
    pub(crate) fn open(
        dir: &Path,
        durability: Durability,
        max_backlog: u64,
        indexed: Position,
    ) -> Result<Option<Journal>> {
        std::fs::create_dir_all(dir).map_err(|e| unavailable(dir, e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| unavailable(dir, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(unavailable(dir, e)),
        }
        let existing = segments(dir)?;
        if indexed.segment > 0
            && existing
                .first()
                .is_none_or(|first| *first > indexed.segment)
        {
            tracing::error!(
                dir = %dir.display(),
                segment = indexed.segment,
                "the webhook journal segment the database was indexing is gone; webhooks acknowledged but not yet stored in it are lost"
            );
        }
        let next = existing
            .last()
            .map_or(1, |last| last + 1)
            .max(indexed.segment + 1);
        let file = create_segment(dir, next, durability)?;
        let start = Position {
            segment: next,
            offset: 0,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            end: Mutex::new(End {
                at: start,
                watched: false,
            }),
            moved: Condvar::new(),
            indexed: watch::channel(Position::default()).0,
            stopped: Mutex::new(false),
            max_backlog,
        });
        let appender = Arc::new(Mutex::new(Appender {
            shared: shared.clone(),
            file,
            at: start,
            durability,
        }));
        let group = match durability {
            Durability::Process => None,
            Durability::Power => {
                let (appends, receiver) = mpsc::channel(16_384);
                let appender = appender.clone();
                std::thread::Builder::new()
                    .name("zapfn-journal".into())
                    .spawn(move || group_writes(&appender, receiver))
                    .map_err(|e| StoreError::Unavailable(format!("journal thread: {e}")))?;
                Some(appends)
            }
        };
        Ok(Some(Journal {
            appender,
            group,
            shared,
            _lock: lock,
        }))
    }

    /// What the indexer needs.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Appends `body`; resolves once it is written (as durable as a commit).
    pub(crate) async fn append(&self, body: &[u8]) -> Result<()> {
        if body.len() > MAX_RECORD {
            return Err(StoreError::Invalid(format!(
                "a webhook body of {} bytes is over the journal's {MAX_RECORD}",
                body.len()
            )));
        }
        let Some(group) = &self.group else {
            let mut record = Vec::with_capacity(HEADER + body.len());
            frame(&mut record, body);
            return lock(&self.appender)
                .write(&record)
                .map_err(StoreError::Unavailable);
        };
        let (done, answer) = oneshot::channel();
        let append = Append {
            body: body.to_vec(),
            done,
        };
        group.send(append).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits (at most `limit`) until every record appended before this call is
    /// stored by the indexer: a read after an acknowledged webhook sees it.
    /// Whether it was.
    pub(crate) async fn caught_up(&self, limit: Duration) -> bool {
        let target = self.shared.end();
        let mut indexed = self.shared.indexed.subscribe();
        let waited = tokio::time::timeout(limit, indexed.wait_for(|at| *at >= target)).await;
        matches!(waited, Ok(Ok(_)))
    }

    /// Bytes appended but not yet indexed (about: whole segments count full).
    pub(crate) fn backlog(&self) -> u64 {
        self.shared.backlog()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

impl Shared {
    /// The end of the written records.
    pub(crate) fn end(&self) -> Position {
        lock(&self.end).at
    }

    /// Blocks until the end is past `at` (returned), or `timeout` passes, or
    /// the journal stops (None).
    pub(crate) fn wait_past(&self, at: Position, timeout: Duration) -> Option<Position> {
        let mut end = lock(&self.end);
        end.watched = true;
        let (mut end, _) = self
            .moved
            .wait_timeout_while(end, timeout, |end| end.at <= at && !self.is_stopped())
            .unwrap_or_else(|e| e.into_inner());
        end.watched = false;
        (!self.is_stopped()).then_some(end.at)
    }

    /// Records how far the indexer has stored (readers waiting on it wake).
    pub(crate) fn set_indexed(&self, at: Position) {
        self.indexed.send_replace(at);
    }

    /// The directory of the segments.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes written but not yet indexed (about: whole segments count full).
    pub(crate) fn backlog(&self) -> u64 {
        let (end, indexed) = (self.end(), *self.indexed.borrow());
        let segments = end.segment.saturating_sub(indexed.segment.max(1));
        (segments * SEGMENT_BYTES + end.offset).saturating_sub(indexed.offset)
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *lock(&self.stopped)
    }

    fn stop(&self) {
        *lock(&self.stopped) = true;
        let _guard = lock(&self.end);
        self.moved.notify_all();
    }

    fn advance(&self, to: Position) {
        let mut end = lock(&self.end);
        end.at = to;
        if end.watched {
            self.moved.notify_all();
        }
    }
}

/// The append thread's state.
struct Appender {
    shared: Arc<Shared>,
    file: File,
    at: Position,
    durability: Durability,
}

/// The group-write thread (power durability): every append waiting at a
/// moment goes into one `write` and `fdatasync`.
fn group_writes(appender: &Mutex<Appender>, mut receiver: mpsc::Receiver<Append>) {
    let mut buffer = Vec::with_capacity(MAX_WRITE_BYTES);
    let mut waiting = Vec::new();
    while let Some(first) = receiver.blocking_recv() {
        let mut next = Some(first);
        while let Some(append) = next.take() {
            frame(&mut buffer, &append.body);
            waiting.push(append.done);
            if buffer.len() < MAX_WRITE_BYTES {
                next = receiver.try_recv().ok();
            }
        }
        let outcome = lock(appender).write(&buffer);
        buffer.clear();
        for done in waiting.drain(..) {
            let _ = done.send(outcome.clone().map_err(StoreError::Unavailable));
        }
    }
}

/// Appends one record (length, CRC-32, body) to `buffer`.
fn frame(buffer: &mut Vec<u8>, body: &[u8]) {
    buffer.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buffer.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    buffer.extend_from_slice(body);
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Appender {
    /// Writes one batch of records at the end of the segment; on failure the
    /// segment is cut back to where it was (or closed), so no torn record is
    /// followed by others.
    fn write(&mut self, records: &[u8]) -> std::result::Result<(), String> {
        if self.shared.backlog() > self.shared.max_backlog {
            return Err(format!(
                "the webhook journal is {} MiB behind (limit {} MiB): storage is not keeping up",
                self.shared.backlog() >> 20,
                self.shared.max_backlog >> 20
            ));
        }
        if self.at.offset >= SEGMENT_BYTES {
            self.rotate()?;
        }
        let written = self
            .file
            .write_all(records)
            .and_then(|()| match self.durability {
                Durability::Process => Ok(()),
                Durability::Power => self.file.sync_data(),
            });
        match written {
            Ok(()) => {
                self.at.offset += records.len() as u64;
                self.shared.advance(self.at);
                Ok(())
            }
            Err(error) => {
                let message = format!("webhook journal write failed: {error}");
                // Appends go to the end of the file (O_APPEND), wherever it is cut.
                if self.file.set_len(self.at.offset).is_err() {
                    // The torn tail stays; later records go to a new segment.
                    self.at.offset = SEGMENT_BYTES;
                }
                Err(message)
            }
        }
    }

    fn rotate(&mut self) -> std::result::Result<(), String> {
        let next = self.at.segment + 1;
        self.file =
            create_segment(&self.shared.dir, next, self.durability).map_err(|e| e.to_string())?;
        self.at = Position {
            segment: next,
            offset: 0,
        };
        self.shared.advance(self.at);
        Ok(())
    }
}

/// Reads records in order, from a position up to the written end.
pub(crate) struct Reader {
    dir: PathBuf,
    at: Position,
    file: Option<BufReader<File>>,
}

impl Reader {
    /// A reader from `at` (a stored position; (0, 0) reads from the first segment).
    pub(crate) fn new(dir: &Path, at: Position) -> Reader {
        Reader {
            dir: dir.to_path_buf(),
            at,
            file: None,
        }
    }

    /// Where the next record is read from.
    pub(crate) fn position(&self) -> Position {
        self.at
    }

    /// Up to `max_records` records (about `max_bytes`) before `end`.
    pub(crate) fn read(
        &mut self,
        end: Position,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let mut records = Vec::new();
        let mut bytes = 0;
        let read = self.read_into(&mut records, &mut bytes, end, max_records, max_bytes);
        // The segment being written is read afresh next time: a buffer filled
        // past the end may hold bytes of a failed write that were cut since.
        if self.at.segment >= end.segment {
            self.file = None;
        }
        read.map(|()| records)
    }

    fn read_into(
        &mut self,
        records: &mut Vec<Vec<u8>>,
        bytes: &mut usize,
        end: Position,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<()> {
        while records.len() < max_records && *bytes < max_bytes && self.at < end {
            if self.file.is_none() {
                self.open_segment(end)?;
            }
            let limit = (self.at.segment == end.segment).then_some(end.offset);
            match self.next_record(limit)? {
                Some(body) => {
                    *bytes += body.len();
                    records.push(body);
                }
                // The end of an older segment (or its torn tail): the next one.
                None if self.at.segment < end.segment => {
                    self.file = None;
                    self.at = Position {
                        segment: self.at.segment + 1,
                        offset: 0,
                    };
                }
                None => break,
            }
        }
        Ok(())
    }

    /// Opens the segment of `at`, or the first one after it (up to `end`'s).
    fn open_segment(&mut self, end: Position) -> Result<()> {
        let Some(segment) = segments(&self.dir)?
            .into_iter()
            .find(|segment| *segment >= self.at.segment && *segment <= end.segment)
        else {
            return Err(StoreError::Unavailable(format!(
                "{}: no journal segment from {} to {}",
                self.dir.display(),
                self.at.segment,
                end.segment
            )));
        };
        if segment != self.at.segment {
            self.at = Position { segment, offset: 0 };
        }
        let path = segment_path(&self.dir, segment);
        let mut file = File::open(&path).map_err(|e| unavailable(&path, e))?;
        file.seek(SeekFrom::Start(self.at.offset))
            .map_err(|e| unavailable(&path, e))?;
        self.file = Some(BufReader::with_capacity(256 * 1024, file));
        Ok(())
    }

    /// The next whole, intact record before `limit`; None at the end of the data.
    fn next_record(&mut self, limit: Option<u64>) -> Result<Option<Vec<u8>>> {
        let Some(file) = self.file.as_mut() else {
            return Ok(None);
        };
        let remaining = limit.map_or(u64::MAX, |limit| limit.saturating_sub(self.at.offset));
        if remaining < HEADER as u64 {
            return Ok(None);
        }
        let mut header = [0u8; HEADER];
        if !read_fully(file, &mut header)? {
            return Ok(None);
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > MAX_RECORD || (HEADER + len) as u64 > remaining {
            return Ok(None);
        }
        let mut body = vec![0u8; len];
        if !read_fully(file, &mut body)? || crc32fast::hash(&body) != crc {
            return Ok(None);
        }
        self.at.offset += (HEADER + len) as u64;
        Ok(Some(body))
    }
}

/// Reads exactly `buffer.len()` bytes; false at the end of the file first.
fn read_fully(file: &mut BufReader<File>, buffer: &mut [u8]) -> Result<bool> {
    match file.read_exact(buffer) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(StoreError::Unavailable(format!("journal read: {error}"))),
    }
}

/// Deletes the segments before `segment` (their records are all indexed).
pub(crate) fn remove_before(dir: &Path, segment: u64) -> Result<()> {
    for old in segments(dir)?.into_iter().filter(|old| *old < segment) {
        let path = segment_path(dir, old);
        std::fs::remove_file(&path).map_err(|e| unavailable(&path, e))?;
    }
    Ok(())
}

/// The segment numbers in `dir`, in order.
fn segments(dir: &Path) -> Result<BTreeSet<u64>> {
    let entries = std::fs::read_dir(dir).map_err(|e| unavailable(dir, e))?;
    Ok(entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name();
            name.to_str()?.strip_suffix(".log")?.parse().ok()
        })
        .collect())
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.log"))
}

fn create_segment(dir: &Path, segment: u64, durability: Durability) -> Result<File> {
    let path = segment_path(dir, segment);
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| unavailable(&path, e))?;
    if durability == Durability::Power {
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| unavailable(dir, e))?;
    }
    Ok(file)
}

fn unavailable(path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {error}", path.display()))
}
