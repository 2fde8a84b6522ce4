//! A minimal blocking HTTP/1.1 GET on a fresh connection, for polling a
//! server that may not be listening yet, and `zapfn-bench wait` built on it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

#[derive(clap::Args)]
pub struct Args {
    /// `http://127.0.0.1:PORT/path` (loopback, plain HTTP).
    #[arg(long)]
    url: String,
    /// Give up after this long.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

/// Polls `--url` every 5 ms until it answers 200; fails after `--timeout-ms`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (addr, path) = split_url(&args.url)?;
    let deadline = Instant::now() + Duration::from_millis(args.timeout_ms);
    while Instant::now() < deadline {
        if status(addr, &path) == Some(200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!(
        "{} did not answer 200 within {} ms",
        args.url,
        args.timeout_ms
    )
}

/// `http://HOST:PORT/path` → (address, path); HOST must be an IP literal.
pub fn split_url(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = authority
        .parse()
        .with_context(|| format!("{authority:?} is not IP:PORT"))?;
    Ok((
        addr,
        if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
    ))
}

/// The status code of `GET path`, or `None` if nothing answered.
pub fn status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.set_nodelay(true).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
