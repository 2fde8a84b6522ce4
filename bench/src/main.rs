//! `zapfn-bench`: the pieces of `make bench` that wrk and a shell cannot do.
//! `bench/run.sh` drives them; each subcommand prints its results as
//! `name=value` lines on stdout (notes go to stderr).

mod count;
mod dispatch;
mod hello;
mod media;
mod payloads;
mod probe;
mod rate;
mod startup;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "zapfn-bench",
    about = "Benchmark helpers for zapfn (see bench/run.sh)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pre-generate distinct requests (signed webhooks or template sends) for wrk and `rate`.
    Payloads(payloads::Args),
    /// Serve a bare axum hello-world: the baseline the webhook figures are compared with.
    Hello(hello::Args),
    /// Open-loop load at a fixed rate; latency from each request's scheduled time.
    Rate(rate::Args),
    /// Cold start to the first 200 on /healthz, and idle RSS, of `zapfn dev`.
    Startup(startup::Args),
    /// Count rows of a table in a SQLite file.
    Count(count::Args),
    /// Dispatch rate (sandbox-accepted sends/s) while a backlog drains.
    Dispatch(dispatch::Args),
    /// Wait until a URL answers 200 (bounded by --timeout-ms).
    Wait(probe::Args),
    /// Thumbnail, OCR and transcription times on media made with real tools.
    Media(media::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Payloads(args) => payloads::run(&args),
        Command::Hello(args) => hello::run(&args),
        Command::Rate(args) => rate::run(&args),
        Command::Startup(args) => startup::run(&args),
        Command::Count(args) => count::run(&args),
        Command::Dispatch(args) => dispatch::run(&args),
        Command::Wait(args) => probe::run(&args),
        Command::Media(args) => media::run(&args),
    }
}
