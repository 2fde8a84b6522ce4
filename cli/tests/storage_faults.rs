//! Storage faults under a real `zapfn dev` process: the disk fills up (a tmpfs
//! filled by another file: ENOSPC), a file-size limit stops every write
//! (RLIMIT_FSIZE: EFBIG), another process holds SQLite's write lock past the
//! busy timeout. While the fault lasts the webhook answers 200 only for what it
//! stored and non-200 only for what it did not (so Meta redelivers it); once it
//! clears, the redelivery stores every message exactly once and each customer
//! gets exactly one auto-reply.

mod child;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use child::{Zapfn, SECRET};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tokio::sync::Semaphore;
use zapfn_whatsapp::builders;

const PHONE_NUMBER_ID: &str = "106540352242922";

/// Signed bodies of one text message ("menu": the auto-reply rules answer it)
/// from a distinct customer each: (wamid, customer, body).
fn messages(batch: &str, count: usize) -> Vec<(String, String, String)> {
    let now = chrono::Utc::now().timestamp();
    (0..count)
        .map(|n| {
            let from = format!("55118{batch}{n:05}");
            let wamid = format!("wamid.FAULT{batch}{n:05}");
            let message = builders::text_message(&from, &wamid, now, "menu");
            let body =
                builders::messages_notification(PHONE_NUMBER_ID, &from, "Fault", vec![message]);
            (wamid, from, body.to_string())
        })
        .collect()
}

/// Posts every body, 16 at a time, like Meta; each wamid with its answer (None: no answer).
async fn post_all(
    zapfn: &Zapfn,
    bodies: &[(String, String, String)],
) -> Vec<(String, Option<u16>)> {
    let http = reqwest::Client::new();
    let url = zapfn.url("/webhook");
    let permits = Arc::new(Semaphore::new(16));
    let tasks: Vec<_> = bodies
        .iter()
        .cloned()
        .map(|(wamid, _, body)| {
            let (http, url, permits) = (http.clone(), url.clone(), permits.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.unwrap();
                let status =
                    zapfn_sandbox::post_signed(&http, &url, SECRET.as_bytes(), body.as_bytes())
                        .await
                        .ok()
                        .map(|status| status.as_u16());
                (wamid, status)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

fn read_only(db: &Path) -> Connection {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn stored(db: &Connection, wamid: &str) -> i64 {
    db.query_row(
        "SELECT count(*) FROM messages WHERE wa_message_id = ?1",
        [wamid],
        |row| row.get(0),
    )
    .unwrap()
}

/// Auto-replies the system's Graph API sandbox accepted, per recipient.
async fn replies(zapfn: &Zapfn) -> HashMap<String, usize> {
    let sent: Vec<Value> = reqwest::get(zapfn.url("/sandbox/sent"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut per_recipient = HashMap::new();
    for message in sent {
        if let Some(to) = message["to"].as_str() {
            *per_recipient.entry(to.to_owned()).or_default() += 1;
        }
    }
    per_recipient
}

/// What one fault did: answers while it lasted, and how long after it cleared
/// every customer had their reply (events whose settle failed wait for their lease).
struct Felt {
    acknowledged: usize,
    refused: usize,
    replied_after: Duration,
}

/// Stores a first batch, injects the fault, posts a second batch and checks
/// each answer against the database, clears the fault, redelivers everything
/// and checks that all is stored once and replied to once.
async fn survive(zapfn: &Zapfn, db: &Path, inject: impl FnOnce(), clear: impl FnOnce()) -> Felt {
    let before = messages("1", 20);
    let answers = post_all(zapfn, &before).await;
    assert!(
        answers.iter().all(|(_, status)| *status == Some(200)),
        "{answers:?}"
    );

    inject();
    let during = messages("2", 200);
    let answers = post_all(zapfn, &during).await;
    let reader = read_only(db);
    let mut felt = Felt {
        acknowledged: 0,
        refused: 0,
        replied_after: Duration::ZERO,
    };
    for (wamid, status) in &answers {
        let count = stored(&reader, wamid);
        if *status == Some(200) {
            assert_eq!(count, 1, "{wamid} answered 200 but not stored");
            felt.acknowledged += 1;
        } else {
            assert_eq!(count, 0, "{wamid} answered {status:?} but stored");
            felt.refused += 1;
        }
    }
    drop(reader);
    assert!(felt.refused > 0, "the fault was never felt");
    clear();

    // Meta redelivers what was refused; redeliver the acknowledged ones too.
    let answers = post_all(zapfn, &during).await;
    assert!(
        answers.iter().all(|(_, status)| *status == Some(200)),
        "{answers:?}"
    );
    let reader = read_only(db);
    for (wamid, _, _) in before.iter().chain(&during) {
        assert_eq!(stored(&reader, wamid), 1, "{wamid}");
    }
    let inbound: i64 = reader
        .query_row(
            "SELECT count(*) FROM messages WHERE direction = 'inbound'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(inbound, (before.len() + during.len()) as i64);

    let customers = before.len() + during.len();
    let start = Instant::now();
    loop {
        let replies = replies(zapfn).await;
        if replies.len() == customers {
            break;
        }
        // A consumer lease is 60 s: an event leased before the fault whose
        // settle failed is delivered again when it runs out.
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} of {customers} customers got their reply",
            replies.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    felt.replied_after = start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let twice: Vec<_> = replies(zapfn)
        .await
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(twice.is_empty(), "replied more than once: {twice:?}");
    felt
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a `size`-byte tmpfs on `dir`; None where mounting is not allowed (not root).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the file system has no space left.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut small = false;
    loop {
        let piece = if small { &chunk[..512] } else { &chunk[..] };
        match file.write(piece) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.raw_os_error() == Some(libc::ENOSPC) && !small => small = true,
            Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(error) => panic!("filling {}: {error}", path.display()),
        }
    }
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_what_it_cannot_store_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(dir.path(), "48m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); the RLIMIT_FSIZE test covers a failing disk");
        return;
    };
    let data = dir.path().join("data");
    let filler = dir.path().join("filler");
    let zapfn = child::spawn(child::free_port(), &data, &[]);
    zapfn.wait_healthy().await;
    let felt = survive(
        &zapfn,
        &data.join("zapfn.db"),
        || fill(&filler),
        || std::fs::remove_file(&filler).unwrap(),
    )
    .await;
    eprintln!(
        "disk full (ENOSPC): {} acknowledged, {} refused while full; all replied {:?} after",
        felt.acknowledged, felt.refused, felt.replied_after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_size_limit_refuses_every_write_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let zapfn = child::spawn_with(child::free_port(), dir.path(), &[], child::ignore_sigxfsz);
    zapfn.wait_healthy().await;
    let felt = survive(
        &zapfn,
        &dir.path().join("zapfn.db"),
        || zapfn.limit_file_size(Some(0)),
        || zapfn.limit_file_size(None),
    )
    .await;
    assert_eq!(felt.acknowledged, 0, "no write can succeed under the limit");
    eprintln!(
        "file size limit (EFBIG): {} refused; all replied {:?} after",
        felt.refused, felt.replied_after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_past_the_busy_timeout_refuses_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("zapfn.db");
    let zapfn = child::spawn(child::free_port(), dir.path(), &[]);
    zapfn.wait_healthy().await;
    // Another process (this test) takes the write lock and keeps it 11 s: the
    // store's writer waits 5 s (its busy timeout) per group commit, so the
    // first one or two give up (the first may hold only the consumers' writes)
    // and the next gets through.
    let lock: Arc<std::sync::Mutex<Option<Connection>>> = Arc::default();
    let felt = survive(
        &zapfn,
        &db,
        || {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            *lock.lock().unwrap() = Some(conn);
            let lock = lock.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(11));
                if let Some(conn) = lock.lock().unwrap().take() {
                    conn.execute_batch("ROLLBACK").unwrap();
                }
            });
        },
        || {
            if let Some(conn) = lock.lock().unwrap().take() {
                conn.execute_batch("ROLLBACK").unwrap();
            }
        },
    )
    .await;
    eprintln!(
        "write lock held 11 s: {} acknowledged, {} refused; all replied {:?} after",
        felt.acknowledged, felt.refused, felt.replied_after
    );
}
