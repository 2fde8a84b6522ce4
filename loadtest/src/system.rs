//! The system under test: a `zapfn dev` child process on loopback, which the
//! SIGKILL variant kills and restarts on the same state; and what it looks
//! like from outside (RSS from `/proc`, queue depths from `/healthz`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;

/// How to start the system.
pub struct Setup {
    pub binary: PathBuf,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
}

/// The running child (replaced on restart).
pub struct System {
    setup: Setup,
    child: Mutex<Option<Child>>,
    http: reqwest::Client,
}

impl System {
    /// Starts the child and waits until `/healthz` answers.
    pub async fn start(setup: Setup) -> anyhow::Result<System> {
        let system = System {
            setup,
            child: Mutex::new(None),
            http: reqwest::Client::new(),
        };
        system.spawn().await?;
        Ok(system)
    }

    async fn spawn(&self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.setup.log)?;
        let mut command = Command::new(&self.setup.binary);
        command
            .arg("dev")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PORT", self.setup.port.to_string())
            .env("ZAPFN_DATA_DIR", &self.setup.data_dir)
            .envs(self.setup.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.setup.binary.display()))?;
        *self.child.lock().unwrap() = Some(child);
        self.wait_healthy().await
    }

    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(response) = self.http.get(self.url("/healthz")).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(status) = self
                .child
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "zapfn dev exited with {status}; see {}",
                    self.setup.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("zapfn dev did not answer /healthz within 30 s")
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.setup.port)
    }

    /// The child's pid, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(Child::id)
    }

    /// SIGKILLs the child, waits for it, and starts it again on the same state.
    pub async fn kill_and_restart(&self) -> anyhow::Result<Duration> {
        let down = Instant::now();
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill()?;
            child.wait()?;
        }
        self.spawn().await?;
        Ok(down.elapsed())
    }

    /// Stops the child with SIGTERM (SIGKILL after 15 s).
    pub fn stop(&self) {
        let Some(mut child) = self.child.lock().unwrap().take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Events waiting (per topic, plus unstored journaled webhooks) and dead letters, from `/healthz`.
    pub async fn queues(&self) -> Option<(u64, u64, Value)> {
        let health: Value = self
            .http
            .get(self.url("/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let queues = health.get("queues")?.clone();
        // Webhooks acknowledged from the journal but not stored yet count as one
        // more pending item, so nothing is reconciled before they are stored.
        let journaled = health["webhook_backlog_bytes"].as_u64().unwrap_or(0) > 0;
        let pending = queues["pending"]
            .as_object()
            .map(|topics| topics.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
            + u64::from(journaled);
        let dead = queues["dead_letters"].as_u64().unwrap_or(0);
        Some((pending, dead, queues))
    }
}

impl Drop for System {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Resident memory of a process in KiB (`VmRSS`), if it runs.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A free loopback port (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `zapfn` binary next to this one (same profile), if none is given.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().map(Path::to_path_buf).unwrap_or_default();
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "no {} (build it: cargo build -p zapfn, or pass --zapfn)",
            path.display()
        );
    }
    Ok(path)
}
