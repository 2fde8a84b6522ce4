//! `zapfn-bench dispatch`: the end-to-end dispatch rate while zapfn works
//! through a backlog of queued sends, as the Graph API sandbox saw it.
//!
//! The store is sampled to know when a backlog existed (outbound rows still
//! `queued` without a wamid); the sends are then counted where they arrived,
//! from the sandbox's own log (`GET /sandbox/sent`, each with its arrival
//! time), between the first sample and the last one that still had a backlog,
//! so an emptied queue never dilutes the rate and the writer's batching of
//! wamids does not blur it. The first `--skip-ms` are ignored: the rate
//! limiter is a token bucket one second deep, so a fresh or idle dispatcher
//! may burst.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

#[derive(clap::Args)]
pub struct Args {
    /// zapfn's SQLite file (`$ZAPFN_DATA_DIR/zapfn.db`).
    #[arg(long)]
    db: PathBuf,
    /// zapfn's base URL (the sandbox's `/sandbox/sent` is read from it).
    #[arg(long)]
    url: String,
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

/// Counts of outbound rows at one instant (Unix milliseconds).
#[derive(Clone, Copy)]
struct Sample {
    at_ms: i64,
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
            "SELECT count(*) FILTER (WHERE wa_message_id IS NULL AND status = 'queued'),
                    count(*) FILTER (WHERE status = 'failed')
             FROM messages WHERE direction = 'outbound'",
            [],
            |row| {
                Ok(Sample {
                    at_ms: unix_ms(),
                    pending: row.get(0)?,
                    failed: row.get(1)?,
                })
            },
        )
    };
    std::thread::sleep(Duration::from_millis(args.skip_ms));
    let first = sample()?;
    let deadline = first.at_ms + args.window_ms as i64;
    let (mut last, mut drained) = (first, first.pending == 0);
    while !drained && unix_ms() < deadline {
        std::thread::sleep(Duration::from_millis(args.poll_ms));
        let next = sample()?;
        drained = next.pending == 0;
        if !drained {
            last = next;
        }
    }
    let arrivals = sandbox_arrivals(&args.url)?;
    let span_ms = last.at_ms - first.at_ms;
    let sent = arrivals
        .iter()
        .filter(|at| (first.at_ms..last.at_ms).contains(at))
        .count();
    let rate = if span_ms == 0 {
        0.0
    } else {
        sent as f64 * 1000.0 / span_ms as f64
    };
    println!("dispatch_rps={rate:.0}");
    println!("span_ms={span_ms}");
    println!("drained={}", u8::from(drained));
    println!("failed={}", last.failed);
    Ok(())
}

/// When the sandbox received each send (Unix ms), from `GET /sandbox/sent`.
fn sandbox_arrivals(url: &str) -> anyhow::Result<Vec<i64>> {
    let url = format!("{}/sandbox/sent", url.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sent: Vec<serde_json::Value> =
        runtime.block_on(async { reqwest::get(url).await?.error_for_status()?.json().await })?;
    Ok(sent
        .iter()
        .filter(|message| message["wamid"].is_string())
        .filter_map(|message| message["received_at_ms"].as_i64())
        .collect())
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}
