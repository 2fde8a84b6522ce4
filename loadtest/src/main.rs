//! `zapfn-loadtest` (`make loadtest`): replays a realistic day against
//! `zapfn dev` on loopback — inbound texts, images, "menu" texts that get an
//! auto-reply, small batches, redeliveries, a 10× burst, sends through the API,
//! Graph API errors, statuses out of order and twice — optionally SIGKILLing
//! the server at random points and restarting it; then waits for everything to
//! settle and reconciles the store (SQLite, PostgreSQL with `--store
//! postgres`, or the Firestore emulator with `--store firestore`) with what
//! was acknowledged. Prints a markdown report; exits
//! non-zero if any check fails.

mod backend;
mod ledger;
mod meta;
mod reconcile;
mod report;
mod system;
mod traffic;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use rand::Rng;
use zapfn_sandbox::{Sandbox, SandboxConfig};

use backend::{Backend, StoreKind};
use ledger::Ledger;
use meta::{Behaviour, Meta};
use report::{percentiles, Figures, Sample};
use system::{Setup, System};
use traffic::{Schedule, Traffic};

const SECRET: &str = "zapfn-loadtest-secret";
const API_KEY: &str = "zapfn-loadtest-key";
const PHONE_NUMBER_ID: &str = "106540352242922";
const PHOTO: &[u8] = include_bytes!("../../fixtures/media/photo.jpg");

#[derive(Parser)]
#[command(
    name = "zapfn-loadtest",
    about = "A realistic day against zapfn dev, reconciled"
)]
struct Args {
    /// The `zapfn` binary (default: next to this one).
    #[arg(long)]
    zapfn: Option<PathBuf>,
    /// Seconds of load.
    #[arg(long, default_value_t = 600.0)]
    seconds: f64,
    /// Inbound webhooks per second (steady; 3 % carry 2–4 messages).
    #[arg(long, default_value_t = 1200.0)]
    inbound_rate: f64,
    /// Send-API calls per second.
    #[arg(long, default_value_t = 450.0)]
    send_rate: f64,
    /// Inbound rate multiplier during the burst.
    #[arg(long, default_value_t = 10.0)]
    burst_factor: f64,
    /// Burst length in seconds (0: none); it starts in the middle of the run.
    #[arg(long, default_value_t = 30.0)]
    burst_seconds: f64,
    /// Share of acknowledged inbound bodies posted again later.
    #[arg(long, default_value_t = 0.05)]
    redelivery: f64,
    /// Share of sends whose statuses arrive out of order.
    #[arg(long, default_value_t = 0.3)]
    out_of_order: f64,
    /// Share of status webhooks delivered twice.
    #[arg(long, default_value_t = 0.05)]
    status_duplicates: f64,
    /// Share of Graph API calls failed with a transient error.
    #[arg(long, default_value_t = 0.01)]
    graph_errors: f64,
    /// SIGKILL and restart the server this many times at random points.
    #[arg(long, default_value_t = 0)]
    kills: u32,
    /// Most requests in flight per generator.
    #[arg(long, default_value_t = 1024)]
    in_flight: usize,
    /// Longest wait for queues to empty after the load.
    #[arg(long, default_value_t = 300.0)]
    drain_seconds: f64,
    /// Write the report into this section of RELIABILITY.md (e.g. `loadtest`).
    #[arg(long)]
    section: Option<String>,
    /// The store `zapfn dev` runs on.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    store: StoreKind,
    /// The PostgreSQL server of `--store postgres` (a fresh schema on it per run).
    #[arg(long, env = "ZAPFN_TEST_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match &args.zapfn {
        Some(path) => path.clone(),
        None => system::sibling_binary("zapfn")?,
    };
    let dir = tempfile::tempdir()?;
    let backend = Backend::prepare(args.store, args.database_url.as_deref(), dir.path()).await?;
    let port = system::free_port()?;
    let ledger = Arc::new(Ledger::default());

    // Meta: the Graph API (sends here, media from the sandbox) and its webhooks.
    let graph = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let graph_url = format!("http://{}/graph", graph.local_addr()?);
    let sandbox = Sandbox::new(SandboxConfig::new(
        SECRET,
        format!("http://127.0.0.1:{port}/webhook"),
    ));
    let behaviour = Behaviour {
        secret: SECRET.into(),
        webhook_url: format!("http://127.0.0.1:{port}/webhook"),
        phone_number_id: PHONE_NUMBER_ID.into(),
        graph_error_rate: args.graph_errors,
        out_of_order: args.out_of_order,
        duplicates: args.status_duplicates,
    };
    let (meta, router) = Meta::start(behaviour, ledger.clone(), sandbox.router());
    tokio::spawn(async move { axum::serve(graph, router).await });
    let media_ids = seed_media(&graph_url).await?;

    let env = [
        ("WA_APP_SECRET", SECRET),
        ("ZAPFN_API_KEY", API_KEY),
        ("WA_GRAPH_URL", graph_url.as_str()),
        ("WA_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
        ("WA_RATE_LIMIT", "5000"),
        ("ZAPFN_RECONCILE_SECONDS", "5"),
        ("ZAPFN_RETRY_BASE_MS", "200"),
        ("ZAPFN_MAX_ATTEMPTS", "50"),
        ("ZAPFN_OCR_ENGINE", "off"),
        ("ZAPFN_SPEECH_ENGINE", "off"),
        ("ZAPFN_ALLOW_PRIVATE_MEDIA_HOSTS", "true"),
        ("RUST_LOG", "warn"),
    ];
    let log = std::env::temp_dir().join(format!("zapfn-loadtest-{}.log", std::process::id()));
    let system = Arc::new(
        System::start(Setup {
            binary: binary.clone(),
            port,
            data_dir: dir.path().to_owned(),
            log: log.clone(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain(backend.env())
                .collect(),
        })
        .await?,
    );
    eprintln!(
        "loadtest: {} on 127.0.0.1:{port} on {}, {} s at {}/s inbound (×{} for {} s) and {}/s sends, {} SIGKILLs; log {}",
        binary.display(),
        backend.describe(),
        args.seconds,
        args.inbound_rate,
        args.burst_factor,
        args.burst_seconds,
        args.send_rate,
        args.kills,
        log.display()
    );

    let burst_seconds = args.burst_seconds.min(args.seconds);
    let start = Instant::now();
    let burst_at = (args.seconds - burst_seconds) / 2.0;
    let has_burst = burst_seconds > 0.0 && args.burst_factor != 1.0;
    // Latencies of what is due before the burst are the steady ones (all of them without a burst).
    let steady_until = if has_burst {
        burst_at
    } else {
        args.seconds + 1.0
    };
    let traffic = Arc::new(Traffic::new(
        ledger.clone(),
        &system.url(""),
        API_KEY,
        SECRET,
        PHONE_NUMBER_ID,
        args.redelivery,
        media_ids,
        start + Duration::from_secs_f64(steady_until),
    ));
    let inbound_schedule = Schedule {
        rate: args.inbound_rate,
        seconds: args.seconds,
        burst_at,
        burst_seconds,
        burst_factor: args.burst_factor,
    };
    let send_schedule = Schedule {
        rate: args.send_rate,
        seconds: args.seconds,
        burst_at: 0.0,
        burst_seconds: 0.0,
        burst_factor: 1.0,
    };

    let stop_monitor = Arc::new(AtomicBool::new(false));
    let monitor = tokio::spawn(monitor(system.clone(), start, stop_monitor.clone()));
    let killer = tokio::spawn(kill_at_random(system.clone(), args.kills, args.seconds));
    let inbound = {
        let traffic = traffic.clone();
        tokio::spawn(traffic::run(
            inbound_schedule,
            start,
            args.in_flight,
            move |_, due| traffic::inbound(traffic.clone(), due),
        ))
    };
    let sends = {
        let traffic = traffic.clone();
        tokio::spawn(traffic::run(
            send_schedule,
            start,
            args.in_flight,
            move |n, due| traffic::send(traffic.clone(), n, due),
        ))
    };
    inbound.await?;
    sends.await?;
    let kills = killer.await??;
    let load_seconds = start.elapsed().as_secs_f64();
    eprintln!("loadtest: load done after {load_seconds:.0} s; waiting for queues to drain");

    let drained = drain(&system, &meta, Duration::from_secs_f64(args.drain_seconds)).await;
    let total_seconds = start.elapsed().as_secs_f64();
    stop_monitor.store(true, Ordering::Relaxed);
    let (samples, (max_pending, max_pending_topics)) = monitor.await?;
    system.stop();
    if !drained {
        eprintln!(
            "loadtest: queues did not drain within {} s",
            args.drain_seconds
        );
    }

    let facts = backend.facts().await?;
    let figures = ledger.with(|l| {
        let checks = reconcile::reconcile(&facts, l);
        let mut dispatch_latency: Vec<u32> = l
            .api_accepted
            .iter()
            .filter_map(|(id, accepted)| {
                let (_, sent) = l.dispatched.get(id)?.first()?;
                Some(ledger::micros(sent.saturating_duration_since(*accepted)))
            })
            .collect();
        Figures {
            title: format!(
                "Last run: `{}`, {}, {} cores; store: {}.",
                std::env::args().collect::<Vec<_>>().join(" ").replace(
                    std::env::current_exe().unwrap_or_default().to_str().unwrap_or(""),
                    "zapfn-loadtest"
                ),
                chrono::Utc::now().format("%Y-%m-%d"),
                std::thread::available_parallelism().map_or(0, |n| n.get()),
                backend.describe(),
            ),
            settings: format!(
                "{} s of load: {}/s inbound webhooks ({}; texts, 2 % \"menu\", 2 % images, 3 % batches of 2–4, {} % redelivered), {}/s send-API calls (templates, 2 % undeliverable, and texts to customers who wrote), {} % of Graph calls failed transiently, statuses {} % out of order and {} % twice{}.",
                args.seconds,
                args.inbound_rate,
                if has_burst {
                    format!("×{} for {burst_seconds} s mid-run", args.burst_factor)
                } else {
                    "no burst".to_owned()
                },
                args.redelivery * 100.0,
                args.send_rate,
                args.graph_errors * 100.0,
                args.out_of_order * 100.0,
                args.status_duplicates * 100.0,
                if args.kills > 0 { format!(", {} SIGKILLs at random points", args.kills) } else { String::new() },
            ),
            load_seconds,
            total_seconds,
            inbound_messages: l.inbound.len() as u64,
            inbound_posts: l.inbound_posts,
            redeliveries: l.redeliveries,
            status_posts: l.status_posts,
            statuses: l.statuses.len() as u64,
            status_duplicates: l.status_duplicates,
            api_accepted: l.api_accepted.len() as u64,
            dispatched: l.dispatched.len() as u64,
            graph_errors: l.graph_errors,
            webhook_retries: l.webhook_retries,
            api_retries: l.api_retries,
            kills,
            webhook_latency: percentiles(&mut l.webhook_latency),
            webhook_latency_steady: percentiles(&mut l.webhook_latency_steady),
            api_latency: percentiles(&mut l.api_latency),
            api_latency_steady: percentiles(&mut l.api_latency_steady),
            burst: has_burst,
            dispatch_latency: percentiles(&mut dispatch_latency),
            max_pending,
            max_pending_topics,
            samples,
            checks,
        }
    });
    let abandoned = ledger.with(|l| (l.webhook_abandoned, l.api_refused.clone()));
    let markdown = figures.markdown();
    println!("{markdown}");
    let passed = figures.passed() && drained && abandoned.0 == 0 && abandoned.1.is_empty();
    // A failed run's figures are not the product's: RELIABILITY.md keeps the last good run.
    match &args.section {
        Some(section) if passed => write_section(section, &markdown)?,
        Some(section) => {
            eprintln!("RELIABILITY.md: section {section} left as it was (this run failed)")
        }
        None => {}
    }
    backend.finish(passed).await?;
    if abandoned.0 > 0 || !abandoned.1.is_empty() {
        bail!(
            "{} webhook deliveries never acknowledged, {} sends refused (first: {:?})",
            abandoned.0,
            abandoned.1.len(),
            abandoned.1.first()
        );
    }
    if !figures.passed() || !drained {
        bail!("reconciliation failed; zapfn's log: {}", log.display());
    }
    Ok(())
}

/// Seeds images in the Graph sandbox; their media ids.
async fn seed_media(graph_url: &str) -> anyhow::Result<Vec<String>> {
    let base = graph_url.trim_end_matches("/graph");
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..8 {
        let answer: serde_json::Value = http
            .post(format!(
                "{base}/sandbox/media?mime_type=image/jpeg&url_ttl_ms=600000"
            ))
            .body(PHOTO)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        ids.push(
            answer["id"]
                .as_str()
                .context("seeded media has an id")?
                .to_owned(),
        );
    }
    Ok(ids)
}

/// Samples RSS and queue depths every second; the samples, and the largest
/// pending total with its split per topic.
async fn monitor(
    system: Arc<System>,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> (Vec<Sample>, (u64, String)) {
    let mut samples = Vec::new();
    let mut max = (0, String::new());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let rss_kib = system.pid().and_then(system::rss_kib);
        let queues = system.queues().await;
        let pending = queues.as_ref().map(|(pending, _, _)| *pending);
        if let Some((pending, _, split)) = &queues {
            if *pending > max.0 {
                let topics: BTreeMap<String, u64> =
                    serde_json::from_value(split["pending"].clone()).unwrap_or_default();
                let topics: Vec<String> = topics.iter().map(|(t, n)| format!("{t} {n}")).collect();
                max = (*pending, topics.join(", "));
            }
        }
        samples.push(Sample {
            at: start.elapsed(),
            rss_kib,
            pending,
        });
        if stop.load(Ordering::Relaxed) {
            return (samples, max);
        }
    }
}

/// SIGKILLs and restarts the server `kills` times at random points of the
/// load; how long each outage lasted.
async fn kill_at_random(
    system: Arc<System>,
    kills: u32,
    seconds: f64,
) -> anyhow::Result<Vec<Duration>> {
    let mut at: Vec<f64> = {
        let mut rng = rand::thread_rng();
        (0..kills)
            .map(|_| rng.gen_range(0.1..0.9) * seconds)
            .collect()
    };
    at.sort_by(f64::total_cmp);
    let start = Instant::now();
    let mut downtimes = Vec::new();
    for point in at {
        tokio::time::sleep_until((start + Duration::from_secs_f64(point)).into()).await;
        let down = system.kill_and_restart().await?;
        eprintln!(
            "loadtest: SIGKILL at {point:.1} s, back after {:.2} s",
            down.as_secs_f64()
        );
        downtimes.push(down);
    }
    Ok(downtimes)
}

/// Waits until the server's queues and Meta's status deliveries are empty
/// (twice in a row), at most `limit`.
async fn drain(system: &System, meta: &Meta, limit: Duration) -> bool {
    let start = Instant::now();
    let mut quiet = 0;
    while start.elapsed() < limit {
        let pending = system.queues().await.map(|(pending, _, _)| pending);
        if pending == Some(0) && meta.outstanding() == 0 {
            quiet += 1;
            if quiet == 2 {
                return true;
            }
        } else {
            quiet = 0;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Writes `markdown` into RELIABILITY.md's generated `section`.
fn write_section(section: &str, markdown: &str) -> anyhow::Result<()> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/reliability-section.sh");
    let mut child = std::process::Command::new("bash")
        .arg(script)
        .arg(section)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    use std::io::Write;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(markdown.as_bytes())?;
    if !child.wait()?.success() {
        bail!("could not write section {section} of RELIABILITY.md");
    }
    Ok(())
}
