//! `zapfn-bench dispatch`: the end-to-end dispatch rate, read from the store
//! while zapfn works through a backlog of queued sends.
//!
//! An outbound row counts as dispatched once the sandbox accepted it, i.e.
//! it has the wamid the sandbox answered with (its status then moves on
//! through `accepted`, `sent`, `delivered`, `read`). The first `--skip-ms`
//! are ignored: the rate limiter is a token bucket one second deep, so a
//! fresh or idle dispatcher may burst. After that the rate is taken between
//! the first sample and the last one that still had a backlog (rows still
//! `queued` without a wamid), so an emptied queue never dilutes it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::Connection;

#[derive(clap::Args)]
pub struct Args {
    /// zapfn's SQLite file (`$ZAPFN_DATA_DIR/zapfn.db`).
    #[arg(long)]
    db: PathBuf,
    /// Warm-up ignored before measuring.
    #[arg(long, default_value_t = 1000)]
    skip_ms: u64,
    /// Longest measurement.
    #[arg(long, default_value_t = 5000)]
    window_ms: u64,
    /// Time between samples (each is a scan of `messages`).
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
}

/// Counts of outbound rows at one instant.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    accepted: i64,
    pending: i64,
    failed: i64,
}

/// Prints `dispatch_rps`, `span_ms` (time measured with a backlog), `drained`
/// (1 if the backlog ran out before the window ended) and `failed`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let conn = Connection::open(&args.db)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let sample = || -> rusqlite::Result<Sample> {
        conn.query_row(
            "SELECT count(*) FILTER (WHERE wa_message_id IS NOT NULL),
                    count(*) FILTER (WHERE wa_message_id IS NULL AND status = 'queued'),
                    count(*) FILTER (WHERE status = 'failed')
             FROM messages WHERE direction = 'outbound'",
            [],
            |row| {
                Ok(Sample {
                    at: Instant::now(),
                    accepted: row.get(0)?,
                    pending: row.get(1)?,
                    failed: row.get(2)?,
                })
            },
        )
    };
    std::thread::sleep(Duration::from_millis(args.skip_ms));
    let first = sample()?;
    let deadline = first.at + Duration::from_millis(args.window_ms);
    let (mut last, mut drained) = (first, first.pending == 0);
    while !drained && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(args.poll_ms));
        let next = sample()?;
        drained = next.pending == 0;
        if !drained {
            last = next;
        }
    }
    let span = last.at - first.at;
    let rate = if span.is_zero() {
        0.0
    } else {
        (last.accepted - first.accepted) as f64 / span.as_secs_f64()
    };
    println!("dispatch_rps={rate:.0}");
    println!("span_ms={}", span.as_millis());
    println!("drained={}", u8::from(drained));
    println!("failed={}", last.failed);
    Ok(())
}
