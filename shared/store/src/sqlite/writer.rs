//! Group commit: one thread owns the write connection and runs every queued
//! write job of a moment in a single transaction, each job in its own savepoint
//! (a failing job rolls back alone), then answers every caller after COMMIT.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 1024;

type Finish = Box<dyn FnOnce(Result<()>) + Send>;
/// Runs on the connection (or, given none, fails without running) and says
/// whether it succeeded, plus how to answer its caller once the commit is known.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Finish) + Send>;

/// Handle to the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(crate) fn start(conn: Connection) -> Writer {
        let (jobs, receiver) = mpsc::channel(8192);
        std::thread::Builder::new()
            .name("zapfn-sqlite-writer".into())
            .spawn(move || run(conn, receiver))
            .expect("spawn the SQLite writer thread");
        Writer { jobs }
    }

    /// Runs `work` inside the next group transaction; resolves after COMMIT.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (job, answer) = job(work);
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// As [`Writer::write`], from a thread outside the async runtime.
    pub(crate) fn write_blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (job, answer) = job(work);
        self.jobs
            .blocking_send(job)
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
}

fn run(conn: Connection, mut receiver: mpsc::Receiver<Job>) {
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
fn commit_batch(conn: &Connection, batch: &mut Vec<Job>) -> Result<()> {
    if let Err(error) = run_cached(conn, "BEGIN IMMEDIATE") {
        tracing::error!(%error, "could not begin a write transaction");
        for job in batch.drain(..) {
            let (_, finish) = job(None);
            finish(Err(StoreError::Unavailable(error.to_string())));
        }
        return Err(StoreError::Unavailable(error.to_string()));
    }
    let mut finishers = Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        let savepoint = run_cached(conn, "SAVEPOINT job");
        // A panicking job loses its own answer (its caller sees `Closed`), not the writer.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Some(conn))));
        let ok = matches!(outcome, Ok((true, _)));
        if savepoint.is_ok() {
            if let Err(error) = end_savepoint(conn, ok) {
                tracing::error!(%error, "savepoint end failed");
            }
        }
        match outcome {
            Ok((_, finish)) => finishers.push(finish),
            Err(_) => tracing::error!("a write job panicked; rolled back"),
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
