//! The `zapfn` binary's tools: `keys create`, `replay`, `simulate`.

mod common;

use std::time::Duration;

use common::{eventually, SECRET};

/// Runs the binary without blocking the runtime that serves the system under test.
async fn zapfn(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_zapfn"))
        .args(args)
        .env("ZAPFN_DATA_DIR", data_dir)
        .env_remove("ZAPFN_API_KEY")
        .env_remove("WA_APP_SECRET")
        .output()
        .await
        .expect("run zapfn")
}

#[tokio::test]
async fn keys_create_prints_a_key_that_the_api_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let output = zapfn(
        &[
            "keys",
            "create",
            "--name",
            "ops",
            "--scope",
            "read",
            "--phone-number-id",
            common::PHONE_NUMBER_ID,
            "--rate",
            "50",
        ],
        dir.path(),
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("zk_"), "{key}");
    let db = std::fs::read(dir.path().join("zapfn.db")).unwrap();
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "only the hash is stored"
    );

    let system = common::start_in(dir, &[]).await;
    let with = |key: &str| {
        system
            .http
            .get(system.url("/v1/conversations"))
            .bearer_auth(key.to_owned())
            .send()
    };
    assert_eq!(with(&key).await.unwrap().status(), 200);
    assert_eq!(with("zk_not_a_key").await.unwrap().status(), 401);
    let dir = system.stop().await;

    let listed = zapfn(&["keys", "list"], dir.path()).await;
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains(&format!(
            "ops\tread\t{}\t50/s\tlive",
            common::PHONE_NUMBER_ID
        )),
        "{listed}"
    );
    assert!(!listed.contains(&key), "{listed}");
    assert!(zapfn(&["keys", "revoke", "ops"], dir.path())
        .await
        .status
        .success());
    let again = zapfn(&["keys", "revoke", "ops"], dir.path()).await;
    assert!(!again.status.success(), "nothing left to revoke");
    let listed = zapfn(&["keys", "list"], dir.path()).await;
    assert!(String::from_utf8(listed.stdout)
        .unwrap()
        .contains("\trevoked"));

    let system = common::start_in(dir, &[]).await;
    let refused = system
        .http
        .get(system.url("/v1/conversations"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "revoked");
    let unscoped = zapfn(&["keys", "create", "--name", "x"], system.dir.path()).await;
    assert!(
        !unscoped.status.success(),
        "a key names its numbers or --all-numbers"
    );
}

#[tokio::test]
async fn replay_signs_files_as_they_are() {
    let system = common::start(&[]).await;
    let files = [
        common::fixture("webhooks/message_text.json"),
        common::fixture("webhooks/batch_multi.json"),
    ];
    let url = system.url("/webhook");
    let mut args = vec!["replay", "--url", url.as_str(), "--secret", SECRET];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let output = zapfn(&args, system.dir.path()).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("200 ")).count(),
        2,
        "{stdout}"
    );

    let wrong = zapfn(
        &[
            "replay",
            "--url",
            url.as_str(),
            "--secret",
            "wrong",
            files[0].to_str().unwrap(),
        ],
        system.dir.path(),
    )
    .await;
    assert!(
        !wrong.status.success(),
        "a wrong secret is refused by the webhook and reported"
    );
    assert!(String::from_utf8_lossy(&wrong.stdout).starts_with("401 "));
}

#[tokio::test]
async fn simulate_plays_a_customer_that_gets_the_menu() {
    let system = common::start(&[]).await;
    let url = system.url("/webhook");
    let output = zapfn(
        &[
            "simulate",
            "--text",
            "menu",
            "--from",
            "5511955554444",
            "--url",
            url.as_str(),
            "--secret",
            SECRET,
        ],
        system.dir.path(),
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let wamid = stdout.trim().strip_prefix("200 ").unwrap().to_owned();
    let inbound = system.message(&wamid).await.unwrap();
    assert_eq!(inbound["text"], "menu");
    eventually(Duration::from_secs(10), "the menu to be sent", || async {
        system.sent_to("5511955554444").into_iter().next()
    })
    .await;
}
