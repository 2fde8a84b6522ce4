//! Storage faults under a real `zapfn dev` process: the disk fills up (a tmpfs
//! filled by another file: ENOSPC), a file-size limit stops every write
//! (RLIMIT_FSIZE: EFBIG), another process holds SQLite's write lock past the
//! busy timeout. While the fault lasts the webhook answers 200 only for what it
//! stored (in the webhook journal, when SQLite itself is locked) and non-200
//! only for what it did not (so Meta redelivers it); once it clears, every
//! acknowledged message is stored without a redelivery, no refused one is, the
//! redelivery stores every message exactly once and each customer gets exactly
//! one auto-reply.

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

/// What one fault did: answers while it lasted, how many acknowledged ones
/// were already in the database then, and how long after it cleared every
/// customer had their reply (events whose settle failed wait for their lease).
struct Felt {
    acknowledged: usize,
    refused: usize,
    stored_during: usize,
    replied_after: Duration,
}

/// Whether a fault can refuse webhooks: the journal takes them while SQLite is
/// locked (they are stored once the lock goes), not when its own writes fail.
#[derive(PartialEq)]
enum Refusals {
    Expected,
    None,
}

/// Stores a first batch, injects the fault, posts a second batch, clears the
/// fault, checks that every acknowledged message gets stored without being sent
/// again and no refused one does, then redelivers everything and checks that
/// all is stored once and replied to once.
async fn survive(
    zapfn: &Zapfn,
    db: &Path,
    refusals: Refusals,
    inject: impl FnOnce(),
    clear: impl FnOnce(),
) -> Felt {
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
    let stored_during = answers
        .iter()
        .filter(|(wamid, status)| *status == Some(200) && stored(&reader, wamid) == 1)
        .count();
    drop(reader);
    let acknowledged: Vec<&String> = answers
        .iter()
        .filter(|(_, status)| *status == Some(200))
        .map(|(wamid, _)| wamid)
        .collect();
    let felt = Felt {
        acknowledged: acknowledged.len(),
        refused: answers.len() - acknowledged.len(),
        stored_during,
        replied_after: Duration::ZERO,
    };
    match refusals {
        Refusals::Expected => assert!(felt.refused > 0, "the fault was never felt"),
        Refusals::None => assert_eq!(felt.refused, 0, "refused while the journal could take them"),
    }
    clear();

    // What was acknowledged is stored from the journal, with no redelivery;
    // once it all is (and nothing waits in the journal), no refused one is.
    let start = Instant::now();
    loop {
        let reader = read_only(db);
        let missing = acknowledged
            .iter()
            .filter(|wamid| stored(&reader, wamid) != 1)
            .count();
        if missing == 0 && zapfn.webhook_backlog().await == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{missing} acknowledged messages not stored 60 s after the fault cleared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reader = read_only(db);
    for (wamid, status) in &answers {
        if *status != Some(200) {
            assert_eq!(
                stored(&reader, wamid),
                0,
                "{wamid} answered {status:?} but stored"
            );
        }
    }
    drop(reader);

    // Meta redelivers what was refused; redeliver the acknowledged ones too.
    let answers = post_all(zapfn, &during).await;
    assert!(
        answers.iter().all(|(_, status)| *status == Some(200)),
        "{answers:?}"
    );
    let start = Instant::now();
    while zapfn.webhook_backlog().await != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "journal never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
        // An event leased before the fault whose settle kept failing is
        // settled once the store recovers, or delivered again when its
        // lease (60 s for replies) runs out.
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} of {customers} customers got their reply",
            replies.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut felt = felt;
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
        Refusals::Expected,
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
        Refusals::Expected,
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
async fn a_write_lock_held_past_the_busy_timeout_delays_storing_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("zapfn.db");
    let zapfn = child::spawn(child::free_port(), dir.path(), &[]);
    zapfn.wait_healthy().await;
    // Another process (this test) takes the write lock and keeps it 11 s: the
    // store's writer waits 5 s (its busy timeout) per group commit and gives
    // up, so nothing is stored meanwhile; webhooks are acknowledged from the
    // journal and stored once a commit gets through.
    let lock: Arc<std::sync::Mutex<Option<Connection>>> = Arc::default();
    let felt = survive(
        &zapfn,
        &db,
        Refusals::None,
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
    assert_eq!(
        felt.stored_during, 0,
        "nothing reached SQLite while it was locked"
    );
    eprintln!(
        "write lock held 11 s: {} acknowledged from the journal, {} refused; stored after the lock went, all replied {:?} after",
        felt.acknowledged, felt.refused, felt.replied_after
    );
}

/// What the read API says about a message (None: not known).
async fn view(http: &reqwest::Client, zapfn: &Zapfn, id: &str) -> Option<Value> {
    let response = http
        .get(zapfn.url(&format!("/v1/messages/{id}")))
        .bearer_auth(child::API_KEY)
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

/// A customer sends an image through the system's sandbox (signed like Meta);
/// (wamid, the webhook's answer).
async fn customer_sends_image(
    http: &reqwest::Client,
    zapfn: &Zapfn,
    from: &str,
    media_id: &str,
) -> (String, u16) {
    let answer: Value = http
        .post(zapfn.url("/sandbox/inbound"))
        .json(&serde_json::json!({
            "phone_number_id": PHONE_NUMBER_ID, "from": from, "image": { "id": media_id }
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wamid = answer["wamid"].as_str().unwrap().to_owned();
    (wamid, answer["webhook_status"].as_u64().unwrap() as u16)
}

/// Seeds `bytes` in the system's sandbox as a customer's image; its media id.
async fn seed_image(http: &reqwest::Client, zapfn: &Zapfn, bytes: &[u8]) -> String {
    let seeded: Value = http
        .post(zapfn.url("/sandbox/media?mime_type=image/jpeg"))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    seeded["id"].as_str().unwrap().to_owned()
}

/// Polls the messages `wamids` until `done` holds for each view, or panics after `limit`.
async fn wait_all(
    http: &reqwest::Client,
    zapfn: &Zapfn,
    wamids: &[String],
    limit: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let mut views = Vec::new();
        for wamid in wamids {
            match view(http, zapfn, wamid).await {
                Some(view) if done(&view) => views.push(view),
                _ => break,
            }
        }
        if views.len() == wamids.len() {
            return views;
        }
        assert!(
            start.elapsed() < limit,
            "{} of {} messages {what} after {limit:?}",
            views.len(),
            wamids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_blob_store_loses_no_message_and_no_media() {
    let dir = tempfile::tempdir().unwrap();
    let media_dir = dir.path().join("media");
    let away = dir.path().join("media.away");
    // Retries every 0.2–0.4 s at first, doubling: 12 attempts span far more than the outage.
    let env = [
        ("ZAPFN_RETRY_BASE_MS", "200"),
        ("ZAPFN_MAX_ATTEMPTS", "12"),
        ("ZAPFN_ALLOW_PRIVATE_MEDIA_HOSTS", "1"),
    ];
    let zapfn = child::spawn(child::free_port(), dir.path(), &env);
    zapfn.wait_healthy().await;
    let http = reqwest::Client::new();
    let photo =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/media/photo.jpg"))
            .unwrap();

    // One image stored before the fault.
    let media_id = seed_image(&http, &zapfn, &photo).await;
    let (before, status) = customer_sends_image(&http, &zapfn, "5511930000000", &media_id).await;
    assert_eq!(status, 200);
    let first = wait_all(
        &http,
        &zapfn,
        std::slice::from_ref(&before),
        Duration::from_secs(20),
        "stored",
        |view| view["media"]["object"]["status"] == "done",
    )
    .await;
    let before_id = first[0]["id"].as_str().unwrap().to_owned();

    // The blob store goes away: its directory is moved and a file takes its
    // place, so every read and write of an object fails (ENOTDIR).
    std::fs::rename(&media_dir, &away).unwrap();
    std::fs::write(&media_dir, b"not a directory").unwrap();
    let outage = Instant::now();
    let mut during = Vec::new();
    for n in 0..20 {
        let media_id = seed_image(&http, &zapfn, &photo).await;
        let (wamid, status) =
            customer_sends_image(&http, &zapfn, &format!("55119300{n:05}"), &media_id).await;
        // The message itself is stored (the blob store is not on the webhook's path).
        assert_eq!(status, 200, "{wamid}");
        during.push(wamid);
    }
    // Every fetch fails and is retried, shown as pending with the error, none given up.
    let pending = wait_all(
        &http,
        &zapfn,
        &during,
        Duration::from_secs(20),
        "retried",
        |view| {
            let object = &view["media"]["object"];
            object["status"] == "pending" && object["attempts"].as_u64() >= Some(2)
        },
    )
    .await;
    let error = pending[0]["media"]["object"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("media"), "{error}");
    let served = http
        .get(zapfn.url(&format!("/v1/media/{before_id}")))
        .bearer_auth(child::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        served.status(),
        503,
        "an object that cannot be read is not 200 or 404"
    );
    // Messages keep flowing meanwhile: a text is stored and answered.
    let texts = messages("3", 1);
    let answers = post_all(&zapfn, &texts).await;
    assert_eq!(answers[0].1, Some(200));
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(outage.elapsed())).await;
    let mut attempts = 0;
    for wamid in &during {
        let view = view(&http, &zapfn, wamid).await.unwrap();
        let object = &view["media"]["object"];
        assert_eq!(object["status"], "pending", "{view}");
        attempts = attempts.max(object["attempts"].as_u64().unwrap_or(0));
    }
    let down_for = outage.elapsed();

    // The blob store comes back: everything fetched during the outage is stored, once.
    std::fs::remove_file(&media_dir).unwrap();
    std::fs::rename(&away, &media_dir).unwrap();
    let back = Instant::now();
    let done = wait_all(
        &http,
        &zapfn,
        &during,
        Duration::from_secs(60),
        "stored after the outage",
        |view| view["media"]["object"]["status"] == "done",
    )
    .await;
    let recovered_in = back.elapsed();
    for view in &done {
        let key = view["media"]["object"]["key"].as_str().unwrap();
        let bytes = std::fs::read(media_dir.join("objects").join(key)).unwrap();
        assert_eq!(bytes, photo, "{key}");
    }
    let served = http
        .get(zapfn.url(&format!("/v1/media/{before_id}")))
        .bearer_auth(child::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap(), photo);
    let db = read_only(&dir.path().join("zapfn.db"));
    let objects = std::fs::read_dir(media_dir.join("objects").join(PHONE_NUMBER_ID))
        .unwrap()
        .count();
    assert_eq!(objects, during.len() + 1, "one object per message");
    let dead: i64 = db
        .query_row("SELECT count(*) FROM dead_letters", [], |row| row.get(0))
        .unwrap();
    assert_eq!(dead, 0, "no event given up");
    assert_eq!(stored(&db, &texts[0].0), 1);
    eprintln!(
        "blob store unavailable for {:.1} s: 20 of 20 image webhooks acknowledged and stored, every fetch retried (pending, up to attempt {}), all 20 objects stored {:.1} s after it came back",
        down_for.as_secs_f64(),
        attempts,
        recovered_in.as_secs_f64()
    );
}
