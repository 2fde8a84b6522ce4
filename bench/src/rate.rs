//! `zapfn-bench rate`: open-loop load at a fixed request rate.
//!
//! wrk is closed-loop: a slow response delays the next request, so a stall
//! hides itself (coordinated omission). Here request `i` is due at
//! `start + i / rps` whatever happened before, and its latency runs from that
//! due time. As in wrk2, each of the `--connections` workers owns every
//! `connections`-th slot of the schedule and sends one request at a time, so
//! a late response makes that worker's next requests late too, and the
//! lateness is counted. The one delay not counted is the timer overshooting
//! while the worker was idle (tokio timers have 1 ms granularity): then the
//! latency runs from when the request actually left.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};

use crate::payloads::{self, Payload};

#[derive(clap::Args)]
pub struct Args {
    /// Target, e.g. `http://127.0.0.1:18080/webhook`.
    #[arg(long)]
    url: String,
    /// Requests per second.
    #[arg(long, default_value_t = 5000)]
    rps: u32,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Concurrent keep-alive connections (one worker each).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// A file from `zapfn-bench payloads` (each record sent once, its headers
    /// and body to `--url`).
    #[arg(long)]
    payloads: PathBuf,
    /// Client runtime threads (1 leaves the most CPU to the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Status code that counts as success.
    #[arg(long, default_value_t = 200)]
    expect: u16,
}

/// One finished request.
struct Sample {
    latency: Duration,
    ok: bool,
}

/// Runs the schedule and prints percentiles, achieved rate and error counts.
pub fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(
        args.rps > 0 && args.connections > 0 && args.threads > 0,
        "--rps, --connections and --threads must be positive"
    );
    ensure!(
        args.duration > 0.0 && args.duration <= 600.0,
        "--duration must be in (0, 600] seconds"
    );
    let total = (f64::from(args.rps) * args.duration) as usize;
    ensure!(total > 0, "--rps x --duration must be at least one request");
    let payloads = payloads::read(&args.payloads)?;
    if payloads.len() < total {
        bail!(
            "{} has {} payloads, {total} needed: none may repeat",
            args.payloads.display(),
            payloads.len()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    let (samples, elapsed) = runtime.block_on(drive(args, Arc::new(payloads), total))?;
    report(&samples, total, elapsed);
    Ok(())
}

async fn drive(
    args: &Args,
    payloads: Arc<Vec<Payload>>,
    total: usize,
) -> anyhow::Result<(Vec<Sample>, Duration)> {
    let client = reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(10))
        .build()?;
    let interval = 1.0 / f64::from(args.rps);
    let start = Instant::now() + Duration::from_millis(20);
    let workers: Vec<_> = (0..args.connections)
        .map(|worker| {
            let (client, payloads, url, expect) = (
                client.clone(),
                payloads.clone(),
                args.url.clone(),
                args.expect,
            );
            let stride = args.connections;
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(total / stride + 1);
                for i in (worker..total).step_by(stride) {
                    let due = start + Duration::from_secs_f64(i as f64 * interval);
                    let from = if Instant::now() < due {
                        tokio::time::sleep_until(due.into()).await;
                        Instant::now()
                    } else {
                        due
                    };
                    let payload = &payloads[i];
                    let mut request = client.post(&url);
                    for (name, value) in &payload.headers {
                        request = request.header(name, value);
                    }
                    let sent = request.body(payload.body.clone()).send().await;
                    let ok = match sent {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            // Read the whole answer so the connection goes back to the pool.
                            response.bytes().await.is_ok() && status == expect
                        }
                        Err(_) => false,
                    };
                    samples.push(Sample {
                        latency: from.elapsed(),
                        ok,
                    });
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(total);
    for worker in workers {
        samples.extend(worker.await?);
    }
    Ok((samples, start.elapsed()))
}

fn report(samples: &[Sample], total: usize, elapsed: Duration) {
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort_unstable();
    let ok = samples.iter().filter(|s| s.ok).count();
    let percentile = |p: f64| {
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1].as_secs_f64() * 1e3
    };
    println!("requests={total}");
    println!("ok={ok}");
    println!("errors={}", samples.len() - ok);
    println!(
        "achieved_rps={:.0}",
        samples.len() as f64 / elapsed.as_secs_f64()
    );
    for (name, p) in [
        ("p50", 50.0),
        ("p90", 90.0),
        ("p99", 99.0),
        ("p999", 99.9),
        ("max", 100.0),
    ] {
        println!("{name}_ms={:.2}", percentile(p));
    }
}
