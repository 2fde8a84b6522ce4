//! `zapfn dev` refuses to start talking to Meta without the secrets that keep
//! others out: with an access token (not the sandbox) but no `WA_APP_SECRET`,
//! or no `WA_VERIFY_TOKEN`, it exits with an error naming the variable, never
//! echoing the token, and never listens. A setting under a name zapfn no
//! longer reads stops it the same way, naming the new one.

mod child;

use std::process::Stdio;
use std::time::Duration;

const ACCESS_TOKEN: &str = "EAAGstartupCheckToken4410";

/// Runs `zapfn dev` on a free port with `env` (and none of the test defaults).
async fn dev(env: &[(&str, &str)]) -> (std::process::Output, u16) {
    let port = child::free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_zapfn"));
    command
        .arg("dev")
        .env_clear()
        .env("PORT", port.to_string())
        .env("ZAPFN_DATA_DIR", dir.path())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(20), command.output())
        .await
        .expect("zapfn dev exits instead of serving")
        .unwrap();
    (output, port)
}

#[tokio::test]
async fn live_mode_without_the_app_secret_or_verify_token_does_not_start() {
    for (env, missing) in [
        (
            vec![
                ("WA_ACCESS_TOKEN", ACCESS_TOKEN),
                ("WA_VERIFY_TOKEN", "verify"),
            ],
            "WA_APP_SECRET",
        ),
        (
            vec![
                ("WA_ACCESS_TOKEN", ACCESS_TOKEN),
                ("WA_APP_SECRET", "secret"),
            ],
            "WA_VERIFY_TOKEN",
        ),
    ] {
        let (output, port) = dev(&env).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started without {missing}");
        assert!(stderr.contains(missing), "{stderr}");
        assert!(
            !stderr.contains(ACCESS_TOKEN),
            "the token was echoed: {stderr}"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "something listens on {port}"
        );
    }
    // The sandbox (no access token) needs neither, and serves.
    let port = child::free_port();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = child::spawn(port, dir.path(), &[("WA_APP_SECRET", "")]);
    sandbox.wait_healthy().await;
}

#[tokio::test]
async fn a_setting_under_its_old_name_alone_does_not_start() {
    let password = "oldNamePassword5521";
    let url = format!("postgres://zapfn:{password}@127.0.0.1:9/zapfn");
    for (env, old, new) in [
        (
            vec![("ZAPFN_STORE", "postgres"), ("DATABASE_URL", url.as_str())],
            "DATABASE_URL",
            "ZAPFN_DATABASE_URL",
        ),
        (
            vec![("ZAPFN_BLOBS", "gcs"), ("ZAPFN_BUCKET", "zapfn-media")],
            "ZAPFN_BUCKET",
            "ZAPFN_MEDIA_BUCKET",
        ),
    ] {
        let (output, port) = dev(&env).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started with {old}");
        assert!(stderr.contains(old) && stderr.contains(new), "{stderr}");
        assert!(!stderr.contains(password), "the URL was echoed: {stderr}");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "something listens on {port}"
        );
    }
}
