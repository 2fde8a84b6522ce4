//! `zapfn-bench payloads`: distinct, ready-to-send requests for wrk and `rate`.
//!
//! wrk's Lua cannot compute an HMAC, so the requests are made here. Each
//! record is a complete HTTP/1.1 request (headers including
//! `Content-Length`, then a compact JSON body) followed by a NUL byte, so
//! wrk's `request()` only cuts the next record out of the file: building the
//! request in Lua instead costs wrk about a quarter of its throughput, which
//! on a shared 2-core machine is taken from the server. Records are split
//! into one file per wrk thread (`OUT.0`, `OUT.1`, ...) so each thread loads
//! only its own slice.
//!
//! - `--kind webhook`: `POST /webhook`, an inbound text notification signed
//!   with `X-Hub-Signature-256`; every one has a fresh wamid.
//! - `--kind send`: `POST /v1/{phone_number_id}/messages` with the bearer
//!   key, a `hello_world` template; every one to a different recipient.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use serde_json::json;
use zapfn_whatsapp::{builders, signature};

/// Ends every record.
const END: u8 = 0;

/// What the requests are.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Kind {
    /// Signed inbound-message webhooks.
    Webhook,
    /// Template sends through the send API.
    Send,
}

#[derive(clap::Args)]
pub struct Args {
    /// Output prefix: files `OUT.0` .. `OUT.<parts-1>` are written.
    #[arg(long)]
    out: PathBuf,
    /// Requests in all files together.
    #[arg(long)]
    count: usize,
    /// Number of files (one per wrk thread).
    #[arg(long, default_value_t = 1)]
    parts: usize,
    #[arg(long, value_enum, default_value = "webhook")]
    kind: Kind,
    /// App secret that signs webhooks (zapfn's WA_APP_SECRET).
    #[arg(
        long,
        env = "WA_APP_SECRET",
        default_value = "zapfn-sandbox-secret",
        hide_env_values = true
    )]
    secret: String,
    /// API key for sends (zapfn's ZAPFN_API_KEY).
    #[arg(
        long,
        env = "ZAPFN_API_KEY",
        default_value = "",
        hide_env_values = true
    )]
    api_key: String,
    /// Business number the requests are for.
    #[arg(long, default_value = "106540352242922")]
    phone_number_id: String,
    /// Distinct customers webhooks come from (round robin).
    #[arg(long, default_value_t = 10_000)]
    customers: u64,
}

/// Writes the files in parallel, one thread per part.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.parts == 0 || args.customers == 0 {
        bail!("--parts and --customers must be at least 1");
    }
    if matches!(args.kind, Kind::Send) && args.api_key.is_empty() {
        bail!("--kind send needs --api-key (or ZAPFN_API_KEY)");
    }
    let per_part = args.count.div_ceil(args.parts);
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..args.parts)
            .map(|part| scope.spawn(move || write_part(args, part, per_part, timestamp)))
            .collect();
        writers
            .into_iter()
            .try_for_each(|writer| writer.join().expect("payload writer panicked"))
    })?;
    println!("payloads={}", per_part * args.parts);
    println!("files={}", args.parts);
    Ok(())
}

/// The path of part `part` of prefix `out`.
fn part_path(out: &Path, part: usize) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(format!(".{part}"));
    PathBuf::from(name)
}

fn write_part(args: &Args, part: usize, count: usize, timestamp: i64) -> anyhow::Result<()> {
    let path = part_path(&args.out, part);
    let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for n in (part * count..(part + 1) * count).map(|n| n as u64) {
        let (target, header, body) = match args.kind {
            Kind::Webhook => {
                let body = webhook_body(args, n, timestamp)?;
                let header = format!(
                    "X-Hub-Signature-256: {}",
                    signature::sign(args.secret.as_bytes(), &body)
                );
                ("/webhook".to_owned(), header, body)
            }
            Kind::Send => (
                format!("/v1/{}/messages", args.phone_number_id),
                format!("Authorization: Bearer {}", args.api_key),
                send_body(n)?,
            ),
        };
        write!(
            out,
            "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             {header}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )?;
        out.write_all(&body)?;
        out.write_all(&[END])?;
    }
    out.flush()
        .with_context(|| format!("write {}", path.display()))
}

/// Inbound text number `n`: a fresh wamid, from customer `n % customers`.
fn webhook_body(args: &Args, n: u64, timestamp: i64) -> serde_json::Result<Vec<u8>> {
    let customer = (5_511_900_000_000 + n % args.customers).to_string();
    let message = builders::text_message(
        &customer,
        &builders::new_wamid(),
        timestamp,
        &format!("bench message {n}"),
    );
    let notification = builders::messages_notification(
        &args.phone_number_id,
        &customer,
        "Bench Customer",
        vec![message],
    );
    serde_json::to_vec(&notification)
}

/// Template send number `n`, to recipient `5521<n>`.
fn send_body(n: u64) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&json!({
        "messaging_product": "whatsapp",
        "to": format!("5521{n:09}"),
        "type": "template",
        "template": { "name": "hello_world", "language": { "code": "en_US" } },
    }))
}

/// One record: its headers (without `Host` and `Content-Length`) and body.
pub struct Payload {
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Reads a file written by [`run`].
pub fn read(path: &Path) -> anyhow::Result<Vec<Payload>> {
    let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    data.split(|&byte| byte == END)
        .filter(|record| !record.is_empty())
        .enumerate()
        .map(|(number, record)| {
            parse(record).with_context(|| {
                format!(
                    "{}: record {} is not an HTTP request",
                    path.display(),
                    number + 1
                )
            })
        })
        .collect()
}

/// Splits one record into its headers and body.
fn parse(record: &[u8]) -> Option<Payload> {
    let split = record.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&record[..split]).ok()?;
    let headers = head
        .lines()
        .skip(1)
        .map(|line| {
            line.split_once(':')
                .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        })
        .filter(|header| {
            header.as_ref().is_none_or(|(name, _)| {
                !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length")
            })
        })
        .collect::<Option<_>>()?;
    Some(Payload {
        headers,
        body: Bytes::copy_from_slice(&record[split + 4..]),
    })
}
