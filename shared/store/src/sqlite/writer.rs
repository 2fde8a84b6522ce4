//! Group commit: one thread owns the write connection and runs every queued
//! write job of a moment in a single transaction, each job kept apart from the
//! others (a failing job rolls back alone), then answers every caller after
//! COMMIT.
//!
//! Inside a savepoint SQLite copies every page a job modifies into the
//! sub-journal before changing it, which costs more than many jobs' own
//! work. So a savepoint is taken only where it is needed: not for the first
//! job of a transaction (if it fails, the transaction is rolled back and begun
//! again, before anything else is in it), nor for a job of one statement
//! (SQLite undoes a failed statement by itself). A bulk job (the webhook
//! indexer's batches) is put first in its transaction.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 1024;

type Finish = Box<dyn FnOnce(Result<()>) + Send>;
/// Runs on the connection (or, given none, fails without running) and says
/// whether it succeeded, plus how to answer its caller once the commit is known.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Finish) + Send>;

/// How a job is kept apart from the other jobs of its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// In a savepoint of its own, unless it comes first.
    Savepoint,
    /// None needed: the job is one statement.
    Statement,
    /// First in its transaction, without a savepoint.
    Bulk,
}

/// A job and how it is kept apart.
struct Queued {
    job: Job,
    isolation: Isolation,
}

/// Handle to the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Queued>,
}

impl Writer {
    /// Starts the writer thread on `conn`, at nice value `nice`.
    pub(crate) fn start(conn: Connection, nice: i32) -> Writer {
        let (jobs, receiver) = mpsc::channel(8192);
        std::thread::Builder::new()
            .name("zapfn-sqlite-writer".into())
            .spawn(move || {
                super::priority::lower_this_thread(nice);
                run(conn, receiver)
            })
            .expect("spawn the SQLite writer thread");
        Writer { jobs }
    }

    /// Runs `work` inside the next group transaction; resolves after COMMIT.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.queue(work, Isolation::Savepoint).await
    }

    /// As [`Writer::write`] for `work` that runs a single statement (and fails
    /// only when that statement does), so it needs no savepoint.
    pub(crate) async fn write_statement<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.queue(work, Isolation::Statement).await
    }

    async fn queue<T, F>(&self, work: F, isolation: Isolation) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (job, answer) = job(work);
        let queued = Queued { job, isolation };
        self.jobs
            .send(queued)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// As [`Writer::write`] for a large job, from a thread outside the async
    /// runtime: it runs first in its transaction, without a savepoint, and a
    /// failure undoes all of it.
    pub(crate) fn write_bulk_blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (job, answer) = job(work);
        let queued = Queued {
            job,
            isolation: Isolation::Bulk,
        };
        self.jobs
            .blocking_send(queued)
            .map_err(|_| StoreError::Closed)?;
        answer.blocking_recv().map_err(|_| StoreError::Closed)?
    }
}

/// Wraps `work` as a job, with the receiver of its outcome after COMMIT.
fn job<T, F>(work: F) -> (Job, oneshot::Receiver<Result<T>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job: Job = Box::new(move |conn| {
        let outcome = match conn {
            Some(conn) => work(conn),
            None => Err(StoreError::Unavailable(
                "could not begin a write transaction".into(),
            )),
        };
        let ok = outcome.is_ok();
        let finish: Finish = Box::new(move |committed| {
            let _ = reply.send(committed.and(outcome));
        });
        (ok, finish)
    });
    (job, answer)
}

fn run(conn: Connection, mut receiver: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let _ = commit_batch(&conn, &mut batch);
    }
}

/// Runs a batch in one transaction and answers every job with the commit result.
fn commit_batch(conn: &Connection, batch: &mut Vec<Queued>) -> Result<()> {
    // Jobs of one moment come from different callers (each waits for its
    // commit), so their order within the transaction is free.
    batch.sort_by_key(|queued| queued.isolation != Isolation::Bulk);
    let mut jobs = batch.drain(..);
    if let Err(error) = run_cached(conn, "BEGIN IMMEDIATE") {
        return Err(refuse(jobs, Vec::new(), error.to_string()));
    }
    let mut finishers = Vec::with_capacity(jobs.len());
    let mut first = true;
    while let Some(Queued { job, isolation }) = jobs.next() {
        let savepoint_taken = !first
            && isolation == Isolation::Savepoint
            && run_cached(conn, "SAVEPOINT job").is_ok();
        // A panicking job loses its own answer (its caller sees `Closed`), not the writer.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Some(conn))));
        let ok = matches!(outcome, Ok((true, _)));
        finishers.extend(outcome.ok().map(|(_, finish)| finish));
        if savepoint_taken {
            if let Err(error) = end_savepoint(conn, ok) {
                tracing::error!(%error, "savepoint end failed");
            }
        }
        let lost = match (first, ok) {
            (true, true) => {
                first = false;
                None
            }
            (true, false) => restart(conn).err().map(|error| error.to_string()),
            // SQLite rolls a whole transaction back on some errors (disk full, I/O).
            (false, _) if conn.is_autocommit() => {
                Some("the group transaction was rolled back after a failed write".into())
            }
            (false, _) => None,
        };
        if let Some(error) = lost {
            return Err(refuse(jobs, finishers, error));
        }
    }
    let result = run_cached(conn, "COMMIT").map_err(StoreError::from);
    let shared = match &result {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(%error, jobs = finishers.len(), "group commit failed");
            Err(error.to_string())
        }
    };
    for finish in finishers {
        finish(shared.clone().map_err(StoreError::Unavailable));
    }
    result
}

/// Rolls back the transaction (whatever is left of it) and begins a new one.
fn restart(conn: &Connection) -> rusqlite::Result<()> {
    let _ = run_cached(conn, "ROLLBACK");
    run_cached(conn, "BEGIN IMMEDIATE")
}

/// Answers the jobs that ran (`finishers`) and those that did not (`rest`)
/// with `error`: the transaction could not begin or is gone.
fn refuse(rest: impl Iterator<Item = Queued>, finishers: Vec<Finish>, error: String) -> StoreError {
    tracing::error!(%error, "no group transaction; its writes are refused");
    let unanswered = rest.map(|queued| (queued.job)(None).1);
    for finish in finishers.into_iter().chain(unanswered) {
        finish(Err(StoreError::Unavailable(error.clone())));
    }
    StoreError::Unavailable(error)
}

/// Keeps a job's writes (`ok`) or undoes them.
fn end_savepoint(conn: &Connection, ok: bool) -> rusqlite::Result<()> {
    if !ok {
        run_cached(conn, "ROLLBACK TO job")?;
    }
    run_cached(conn, "RELEASE job")
}

/// Runs a parameterless statement through the statement cache (no re-parsing).
pub(crate) fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v TEXT NOT NULL UNIQUE)")
            .unwrap();
        (dir, conn)
    }

    /// A job inserting `value`, or inserting it and then failing.
    fn insert(value: &'static str, fail: bool) -> (Queued, oneshot::Receiver<Result<()>>) {
        let (job, answer) = job(move |conn: &Connection| {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [value])?;
            match fail {
                true => Err(StoreError::Invalid(format!("{value} refused"))),
                false => Ok(()),
            }
        });
        (
            Queued {
                job,
                isolation: Isolation::Savepoint,
            },
            answer,
        )
    }

    /// The values in `order`.
    fn values(conn: &Connection, order: &str) -> Vec<String> {
        let mut statement = conn
            .prepare(&format!("SELECT v FROM t ORDER BY {order}"))
            .unwrap();
        let rows = statement.query_map([], |row| row.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// Each failing job is undone alone, the first (run without a savepoint)
    /// as well as later ones; the others commit together.
    #[test]
    fn a_failing_job_is_undone_alone_first_or_not() {
        let (_dir, conn) = table();
        let (mut batch, mut answers) = (Vec::new(), Vec::new());
        for (value, fail) in [("a", true), ("b", false), ("c", true), ("d", false)] {
            let (queued, answer) = insert(value, fail);
            batch.push(queued);
            answers.push(answer);
        }
        commit_batch(&conn, &mut batch).unwrap();
        let outcomes: Vec<bool> = answers
            .into_iter()
            .map(|mut answer| answer.try_recv().unwrap().is_ok())
            .collect();
        assert_eq!(outcomes, [false, true, false, true]);
        assert_eq!(values(&conn, "v"), ["b", "d"]);
    }

    /// A job of one statement needs no savepoint: SQLite undoes the failed
    /// statement alone (here a unique constraint), the rest commits.
    #[test]
    fn a_failing_single_statement_job_is_undone_alone() {
        let (_dir, conn) = table();
        let (first, _) = insert("a", false);
        let (mut again, mut refused) = insert("a", false);
        again.isolation = Isolation::Statement;
        let (last, _) = insert("b", false);
        commit_batch(&conn, &mut vec![first, again, last]).unwrap();
        let error = refused.try_recv().unwrap().unwrap_err();
        assert!(error.to_string().contains("UNIQUE"), "{error}");
        assert_eq!(values(&conn, "v"), ["a", "b"]);
    }

    /// Bulk jobs run first in their transaction (where they need no savepoint).
    #[test]
    fn bulk_jobs_run_first() {
        let (_dir, conn) = table();
        let (normal, _) = insert("normal", false);
        let (mut bulk, _) = insert("bulk", false);
        bulk.isolation = Isolation::Bulk;
        commit_batch(&conn, &mut vec![normal, bulk]).unwrap();
        assert_eq!(values(&conn, "rowid"), ["bulk", "normal"]);
    }
}
