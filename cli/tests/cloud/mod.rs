//! The deployed topology on loopback: every function binary as its own process
//! on its own port, on the Firestore (or PostgreSQL), Pub/Sub, Cloud Storage
//! and Cloud Tasks emulators, wired as `infra/` wires them (see [`topology`]:
//! push subscriptions and Cloud Scheduler's relay sweep), with the Graph API
//! sandbox standing in for Meta.
#![allow(dead_code)]

pub mod topology;

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zapfn_cloud::pubsub::{PubSubBus, PushSubscription};
use zapfn_cloud::storage::GcsBlobStore;
use zapfn_cloud::tasks::{CloudTasksQueue, TaskTarget};
use zapfn_runtime::Config;
use zapfn_sandbox::{Sandbox, SandboxConfig};
use zapfn_store::Store;

/// Emulator variables every cloud test needs.
pub const EMULATORS: [&str; 4] = [
    "FIRESTORE_EMULATOR_HOST",
    "PUBSUB_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "CLOUD_TASKS_EMULATOR_HOST",
];
pub const API_KEY: &str = "e2e-cloud-key";
pub const SECRET: &str = "e2e-cloud-secret";
pub const PHONE_NUMBER_ID: &str = "106540352242922";

/// True when every emulator is configured; otherwise prints a loud SKIPPED line
/// (or fails, with `ZAPFN_REQUIRE_EMULATORS=1`).
pub fn emulators_up(test: &str) -> bool {
    let missing: Vec<&str> = EMULATORS
        .into_iter()
        .filter(|var| std::env::var(var).map_or(true, |v| v.is_empty()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("ZAPFN_REQUIRE_EMULATORS").as_deref() != Ok("1"),
        "{test}: {missing:?} not set but ZAPFN_REQUIRE_EMULATORS=1 (scripts/emulators.sh start)"
    );
    eprintln!(
        "SKIPPED {test}: {missing:?} not set (start them: make emulators; or run make e2e-cloud)"
    );
    false
}

/// The function binaries of the workspace: every `functions/*` member, by package name.
pub fn function_packages() -> Vec<String> {
    let root = workspace_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    manifest
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("\"functions/"))
        .filter_map(|rest| rest.split('"').next())
        .map(|dir| {
            let crate_manifest =
                std::fs::read_to_string(root.join("functions").join(dir).join("Cargo.toml"))
                    .unwrap();
            crate_manifest
                .lines()
                .find_map(|line| line.trim().strip_prefix("name = \""))
                .and_then(|rest| rest.split('"').next())
                .expect("a package name")
                .to_owned()
        })
        .collect()
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Builds the function binaries (debug, the test's own target dir) and returns their directory.
pub fn build(packages: &[String]) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.arg("build").current_dir(workspace_root());
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command.status().expect("cargo runs");
    assert!(status.success(), "building the function binaries failed");
    // The test binary lives in <target>/debug/deps.
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One function process.
pub struct Process {
    pub name: String,
    pub port: u16,
    binary: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.binary)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// SIGKILL, as a crash or an OOM would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port with the same settings.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        wait_healthy(&self.url(), &self.name, &self.log).await;
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_healthy(url: &str, name: &str, log: &Path) {
    let start = Instant::now();
    loop {
        if let Ok(response) = reqwest::get(format!("{url}/healthz")).await {
            if response.status().is_success() {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name} did not become healthy:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The running topology.
pub struct Deployment {
    pub functions: HashMap<String, Process>,
    pub sandbox: Sandbox,
    pub project: String,
    /// `ZAPFN_STORE` of every function: `firestore` or `postgres`.
    pub store: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// Every function's settings (but `PORT`).
    env: Vec<(String, String)>,
    /// Cloud Scheduler's relay job (see [`schedule_relay_sweeps`]).
    scheduler: tokio::task::JoinHandle<()>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.scheduler.abort();
    }
}

/// How often the stand-in for Cloud Scheduler calls the relay sweep (infra's
/// job runs every minute; a test has less time).
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Cloud Scheduler's relay job: `POST` the sweep `url` every [`SWEEP_EVERY`].
async fn schedule_relay_sweeps(http: reqwest::Client, url: String) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        if let Err(error) = http.post(&url).send().await {
            eprintln!("e2e-cloud: relay sweep {url}: {error}");
        }
    }
}

impl Deployment {
    /// Creates the cloud resources of a fresh project, starts the sandbox and
    /// every function binary (`packages`, built into `bin_dir`).
    pub async fn start(packages: &[String], bin_dir: &Path) -> Deployment {
        let run = format!("{:x}", chrono::Utc::now().timestamp_micros());
        let project = format!("zapfn-e2e-{run}");
        let prefix = format!("e2e{run}-");
        let queue = format!("projects/{project}/locations/local/queues/sending");
        let bucket = format!("zapfn-e2e-media-{run}");
        let dir = tempfile::tempdir().unwrap();
        // The Firestore emulator; ZAPFN_E2E_STORE=postgres picks PostgreSQL
        // (ZAPFN_TEST_DATABASE_URL) instead.
        let store = std::env::var("ZAPFN_E2E_STORE").unwrap_or_else(|_| "firestore".into());

        let ports: HashMap<String, u16> = packages
            .iter()
            .map(|p| (short_name(p), free_port()))
            .collect();
        let url_of = |function: &str| format!("http://127.0.0.1:{}", ports[function]);

        // Meta: the sandbox, posting signed statuses to the webhook function.
        let sandbox = Sandbox::new(SandboxConfig::new(
            SECRET,
            format!("{}/webhook", url_of("webhook")),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let graph_url = format!("http://{}/graph", listener.local_addr().unwrap());
        let router = sandbox.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

        // Resources infra/ declares: bucket, topics, push subscriptions, the queue.
        GcsBlobStore::connect(&bucket, None)
            .await
            .unwrap()
            .ensure_bucket(&project)
            .await
            .unwrap();
        let bus = PubSubBus::connect(Some(project.clone()), &prefix)
            .await
            .unwrap();
        for topic in zapfn_runtime::relay::BUS_TOPICS {
            bus.ensure_topic(topic).await.unwrap();
        }
        for route in topology::SUBSCRIPTIONS {
            if !ports.contains_key(route.function) {
                continue;
            }
            let mut spec = PushSubscription::new(
                format!("{prefix}{}-{}", route.function, route.topic),
                route.topic,
                format!("{}/_push/{}", url_of(route.function), route.topic),
            );
            spec.filter = (!route.filter.is_empty()).then(|| route.filter.to_owned());
            spec.max_delivery_attempts = 5;
            bus.ensure_push_subscription(&spec).await.unwrap();
        }
        let dispatch_url = format!("{}/_tasks/dispatch", url_of("dispatch"));
        CloudTasksQueue::connect(TaskTarget {
            queue: queue.clone(),
            url: dispatch_url.clone(),
            oidc_service_account: None,
            oidc_audience: None,
        })
        .await
        .unwrap()
        .ensure_queue()
        .await
        .unwrap();

        let common: Vec<(String, String)> = [
            ("ZAPFN_HOST", "127.0.0.1".to_owned()),
            (
                "ZAPFN_DATA_DIR",
                dir.path().join("data").to_str().unwrap().to_owned(),
            ),
            ("ZAPFN_STORE", store.clone()),
            (
                "ZAPFN_DATABASE_URL",
                std::env::var("ZAPFN_TEST_DATABASE_URL").unwrap_or_default(),
            ),
            ("GOOGLE_CLOUD_PROJECT", project.clone()),
            ("ZAPFN_BLOBS", "gcs".into()),
            ("ZAPFN_MEDIA_BUCKET", bucket.clone()),
            ("ZAPFN_MEDIA_TRIGGER", "storage".into()),
            ("ZAPFN_BUS", "pubsub".into()),
            ("ZAPFN_TOPIC_PREFIX", prefix.clone()),
            ("ZAPFN_TASKS", "cloudtasks".into()),
            ("ZAPFN_TASKS_QUEUE", queue.clone()),
            ("ZAPFN_DISPATCH_URL", dispatch_url.clone()),
            ("WA_APP_SECRET", SECRET.into()),
            ("WA_VERIFY_TOKEN", "e2e-verify".into()),
            ("WA_GRAPH_URL", graph_url.clone()),
            ("ZAPFN_API_KEY", API_KEY.into()),
            ("ZAPFN_RETRY_BASE_MS", "200".into()),
            ("ZAPFN_RECONCILE_SECONDS", "3".into()),
            ("ZAPFN_ALLOW_PRIVATE_MEDIA_HOSTS", "1".into()),
            ("ZAPFN_LOG_FORMAT", "pretty".into()),
            // Plain lines: the scenarios read the logs.
            ("NO_COLOR", "1".into()),
            ("RUST_LOG", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();

        let mut functions = HashMap::new();
        for (n, package) in packages.iter().enumerate() {
            let name = short_name(package);
            let mut env = common.clone();
            env.push(("PORT".into(), ports[&name].to_string()));
            let mut process = Process {
                port: ports[&name],
                binary: bin_dir.join(package),
                env,
                log: dir.path().join(format!("{name}.log")),
                child: None,
                name: name.clone(),
            };
            process.spawn();
            if n == 0 {
                // The first one stores the bootstrap API key; the others then
                // find it and start without writing, as every start after a
                // deployment's first does (ten first writes at once on one
                // emulator document wait on each other's locks).
                wait_healthy(&process.url(), &process.name, &process.log).await;
            }
            functions.insert(name, process);
        }
        for process in functions.values() {
            wait_healthy(&process.url(), &process.name, &process.log).await;
        }
        let http = reqwest::Client::new();
        let scheduler = tokio::spawn(schedule_relay_sweeps(
            http.clone(),
            format!(
                "{}{}",
                url_of(topology::RELAY_JOB.function),
                topology::RELAY_JOB.path
            ),
        ));
        Deployment {
            functions,
            sandbox,
            project,
            store,
            dir,
            http,
            env: common,
            scheduler,
        }
    }

    /// A handle on the deployment's store, as another instance would open it.
    pub async fn store(&self) -> Arc<dyn Store> {
        let config = Config::from_lookup(|name| {
            self.env
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })
        .unwrap();
        zapfn_runtime::context::connect_store(&config)
            .await
            .unwrap()
            .0
    }

    pub fn function(&mut self, name: &str) -> &mut Process {
        self.functions
            .get_mut(name)
            .unwrap_or_else(|| panic!("no function {name}"))
    }

    pub fn url(&self, function: &str) -> String {
        self.functions[function].url()
    }

    /// Every function's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut names: Vec<&String> = self.functions.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|name| format!("===== {name}\n{}", tail(&self.functions[name].log(), 40)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The lines of every function's log that contain one of `needles`.
    pub fn log_lines(&self, needles: &[&str]) -> Vec<String> {
        self.functions
            .values()
            .flat_map(|process| {
                process
                    .log()
                    .lines()
                    .filter(|line| needles.iter().any(|needle| line.contains(needle)))
                    .map(|line| format!("{}: {line}", process.name))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Signs `body` with the app secret and posts it to the webhook function.
    pub async fn post_webhook(&self, body: &[u8]) -> u16 {
        zapfn_sandbox::post_signed(
            &self.http,
            &format!("{}/webhook", self.url("webhook")),
            SECRET.as_bytes(),
            body,
        )
        .await
        .unwrap()
        .as_u16()
    }

    /// GET on the send function's read API; (status, JSON or Null).
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url("send")))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// POST JSON to the send function; (status, JSON or Null).
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url("send")))
            .bearer_auth(API_KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// The sandbox's accepted sends to `to`.
    pub fn sent_to(&self, to: &str) -> Vec<zapfn_sandbox::SentMessage> {
        self.sandbox
            .sent()
            .into_iter()
            .filter(|m| m.to.as_deref() == Some(to))
            .collect()
    }
}

/// `zapfn-webhook` → `webhook`.
pub fn short_name(package: &str) -> String {
    package.trim_start_matches("zapfn-").to_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `check` every 100 ms until it returns Some, or panics after `limit`
/// with `context()` (the functions' logs) appended.
pub async fn eventually<T, F, Fut>(
    limit: Duration,
    what: &str,
    context: impl Fn() -> String,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() > limit {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                context()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
