//! `zapfn-bench startup`: how fast `zapfn dev` comes up and how small it idles.
//!
//! Each run spawns the binary with a fresh data directory and a free port and
//! polls `GET /healthz` every millisecond on a new connection; the time from
//! spawn to the first 200 is the cold start. After the last run the process
//! idles for `--idle-ms` and its `VmRSS` is read from `/proc/PID/status`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::probe;

#[derive(clap::Args)]
pub struct Args {
    /// The `zapfn` release binary.
    #[arg(long)]
    binary: PathBuf,
    /// Cold starts to measure (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Idle time before reading RSS.
    #[arg(long, default_value_t = 2000)]
    idle_ms: u64,
    /// Longest a start may take before it counts as failed.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

/// Kills the child when dropped, so no exit path leaves it running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prints `cold_start_ms` (median), `cold_start_all_ms` and `idle_rss_kib`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut starts = Vec::with_capacity(args.runs);
    let mut rss_kib = 0;
    for run in 0..args.runs {
        let data_dir = tempfile::tempdir()?;
        let port = free_port()?;
        let addr = ([127, 0, 0, 1], port).into();
        let spawned = Instant::now();
        let mut child = Guard(
            Command::new(&args.binary)
                .arg("dev")
                .env("PORT", port.to_string())
                .env("ZAPFN_DATA_DIR", data_dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .with_context(|| format!("spawn {}", args.binary.display()))?,
        );
        let deadline = spawned + Duration::from_millis(args.timeout_ms);
        loop {
            if probe::status(addr, "/healthz") == Some(200) {
                break;
            }
            if let Some(exit) = child.0.try_wait()? {
                bail!("zapfn dev exited during start: {exit}");
            }
            if Instant::now() > deadline {
                bail!("no 200 on /healthz within {} ms", args.timeout_ms);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let elapsed = spawned.elapsed();
        eprintln!("start {}: {:.1} ms", run + 1, elapsed.as_secs_f64() * 1e3);
        starts.push(elapsed);
        if run + 1 == args.runs {
            std::thread::sleep(Duration::from_millis(args.idle_ms));
            rss_kib = vm_rss_kib(child.0.id())?;
        }
    }
    let all: Vec<String> = starts
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .collect();
    starts.sort();
    println!(
        "cold_start_ms={:.1}",
        starts[starts.len() / 2].as_secs_f64() * 1e3
    );
    println!("cold_start_all_ms={}", all.join(","));
    println!("idle_rss_kib={rss_kib}");
    Ok(())
}

/// A port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `VmRSS` of `pid`, in KiB.
fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}
