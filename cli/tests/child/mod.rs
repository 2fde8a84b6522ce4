//! `zapfn dev` as a child process on loopback, for tests that need a real
//! process: signals (SIGTERM, SIGKILL), resource limits and its own environment.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The app secret child systems check webhooks with.
pub const SECRET: &str = "test-app-secret";
/// The bootstrap API key of child systems.
pub const API_KEY: &str = "test-api-key";

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `zapfn dev`, SIGKILLed when dropped (also when a test fails).
pub struct Zapfn {
    pub child: Child,
    pub port: u16,
}

/// Starts `zapfn dev` on `port` with its state in `data_dir`, test defaults and `env`.
pub fn spawn(port: u16, data_dir: &Path, env: &[(&str, &str)]) -> Zapfn {
    spawn_with(port, data_dir, env, |_| {})
}

/// Like [`spawn`], letting `customize` adjust the command (e.g. a `pre_exec`).
pub fn spawn_with(
    port: u16,
    data_dir: &Path,
    env: &[(&str, &str)],
    customize: impl FnOnce(&mut Command),
) -> Zapfn {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zapfn"));
    command
        .arg("dev")
        .env("PORT", port.to_string())
        .env("ZAPFN_DATA_DIR", data_dir)
        .env("WA_APP_SECRET", SECRET)
        .env("ZAPFN_API_KEY", API_KEY)
        .env("ZAPFN_RETRY_BASE_MS", "50")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    customize(&mut command);
    Zapfn {
        child: command.spawn().expect("start zapfn dev"),
        port,
    }
}

/// Makes the child ignore SIGXFSZ, so a write past `RLIMIT_FSIZE` fails with
/// EFBIG instead of killing it.
pub fn ignore_sigxfsz(command: &mut Command) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

impl Zapfn {
    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits (up to 15 s) until `/healthz` answers.
    pub async fn wait_healthy(&self) {
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(response) = http.get(self.url("/healthz")).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "zapfn dev did not answer /healthz"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Bytes of acknowledged webhooks still waiting in the journal (`/healthz`).
    pub async fn webhook_backlog(&self) -> u64 {
        let health: serde_json::Value = reqwest::get(self.url("/healthz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        health["webhook_backlog_bytes"]
            .as_u64()
            .expect("/healthz reports webhook_backlog_bytes")
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the child.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let result = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(result, 0, "kill({signal})");
    }

    /// Waits up to `limit` for the child to exit; None if it is still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Sets the child's `RLIMIT_FSIZE` (bytes; `None`: unlimited).
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        let value = bytes.unwrap_or(libc::RLIM_INFINITY);
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: prlimit(2) on our own child with a valid struct.
        let result = unsafe {
            libc::prlimit(
                self.child.id() as libc::pid_t,
                libc::RLIMIT_FSIZE,
                &limit,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(result, 0, "prlimit: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Zapfn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
