//! Configuration from the environment (documented in the README).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::backends::{Backends, BlobBackend};

/// Settings shared by every function.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen port (`PORT`, default 8080).
    pub port: u16,
    /// Listen address (`ZAPFN_HOST`, default 127.0.0.1; IPv6 with or without brackets).
    pub host: IpAddr,
    /// Where embedded state lives (`ZAPFN_DATA_DIR`, default `./.zapfn`).
    pub data_dir: PathBuf,
    /// Meta app secret for `X-Hub-Signature-256` (`WA_APP_SECRET`).
    pub app_secret: String,
    /// Token Meta echoes in the GET verification (`WA_VERIFY_TOKEN`).
    pub verify_token: String,
    /// Graph API token (`WA_ACCESS_TOKEN`); unset selects the built-in sandbox.
    pub access_token: Option<String>,
    /// Default business number (`WA_PHONE_NUMBER_ID`).
    pub phone_number_id: Option<String>,
    /// Graph API base URL (`WA_GRAPH_URL`; the sandbox on this server when unset in sandbox mode).
    pub graph_url: String,
    /// Graph API version (`WA_API_VERSION`, default v23.0).
    pub api_version: String,
    /// Graph API request timeout (`ZAPFN_GRAPH_TIMEOUT_MS`, default 10 s).
    pub graph_timeout: Duration,
    /// Sends per second per business number (`WA_RATE_LIMIT`, default 80).
    pub rate_limit: u32,
    /// Messages per recipient in a burst, and the steady interval (`WA_PAIR_BURST`, default 45;
    /// `WA_PAIR_INTERVAL_MS`, default 6000): Meta's pair rate limit.
    pub pair_burst: u32,
    pub pair_interval: Duration,
    /// Attempts per event or send before giving up (`ZAPFN_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// Age after which retries stop (`ZAPFN_MAX_RETRY_SECONDS`, default 300).
    pub max_retry_age: Duration,
    /// First retry delay; doubles each attempt (`ZAPFN_RETRY_BASE_MS`, default 1000).
    pub retry_base: Duration,
    /// The longest lease an embedded consumer takes in the store at once, renewed
    /// while its handler runs (`ZAPFN_STORE_LEASE_MS`, default 60000, at least 300):
    /// how soon the events of a process that died are delivered again.
    pub store_lease: Duration,
    /// How long a send that may have reached Meta (crash or timeout mid-send) waits for a
    /// status webhook naming it before being sent again (`ZAPFN_RECONCILE_SECONDS`, default 30);
    /// longer while statuses received in that time are still waiting to be applied.
    pub reconcile_window: Duration,
    /// Bootstrap API key (`ZAPFN_API_KEY`).
    pub bootstrap_api_key: Option<String>,
    /// Server-side pepper mixed into API key hashes (`ZAPFN_KEY_PEPPER`).
    pub key_pepper: String,
    /// Auto-reply rules file (`ZAPFN_RULES`); the built-in menu when unset.
    pub rules_path: Option<PathBuf>,
    /// `fsync` on every commit (`ZAPFN_SQLITE_SYNC=full`); default survives process crashes only.
    pub sqlite_full_sync: bool,
    /// Acknowledge webhooks once appended to the SQLite store's journal, and
    /// store them from there (`ZAPFN_WEBHOOK_JOURNAL`, default on; `0` stores
    /// each before acknowledging it).
    pub webhook_journal: bool,
    /// Nice value of the SQLite store's background threads (`ZAPFN_SQLITE_NICE`,
    /// default 5; 0 runs them at the process's priority).
    pub sqlite_nice: i32,
    /// Let outbound media links reach loopback and private addresses
    /// (`ZAPFN_ALLOW_PRIVATE_MEDIA_HOSTS=1`; tests and local development only).
    pub allow_private_media_hosts: bool,
    /// Messages, status events and media older than this many days are deleted by the
    /// retention job (`ZAPFN_RETENTION_DAYS`; unset keeps everything).
    pub retention_days: Option<u32>,
    /// What starts the media processors (`ZAPFN_MEDIA_TRIGGER`).
    pub media_trigger: MediaTrigger,
    /// Accept push tokens whose signature Cloud Run removed after checking them
    /// (`ZAPFN_PUSH_VERIFIED_BY=cloud-run`; only on private services).
    pub push_verified_by_cloud_run: bool,
    /// Store, blob store, event bus and task queue backends (`ZAPFN_STORE`, ...).
    pub backends: Backends,
}

/// What starts the media processors once media-fetch stored an original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaTrigger {
    /// `events` (default): media-fetch publishes a `media` event with it.
    Events,
    /// `storage`: the bucket's object-finalized events do (Eventarc, deployed),
    /// so media-fetch publishes none. Needs `ZAPFN_BLOBS=gcs`.
    Storage,
}

/// Secret used to sign sandbox webhooks when `WA_APP_SECRET` is unset in sandbox mode.
pub const SANDBOX_APP_SECRET: &str = "zapfn-sandbox-secret";
/// Verify token used in sandbox mode when `WA_VERIFY_TOKEN` is unset.
pub const SANDBOX_VERIFY_TOKEN: &str = "zapfn-sandbox-verify";

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(text) => text.trim().parse().map_err(|_| ConfigError {
                    name,
                    problem: format!("{text:?} is not a whole number"),
                }),
            }
        };
        let port = number("PORT", 8080)?;
        let port = u16::try_from(port).map_err(|_| ConfigError {
            name: "PORT",
            problem: format!("{port} is not a port"),
        })?;
        let access_token = lookup("WA_ACCESS_TOKEN");
        let sandbox = access_token.is_none();
        let app_secret = match (lookup("WA_APP_SECRET"), sandbox) {
            (Some(secret), _) => secret,
            (None, true) => SANDBOX_APP_SECRET.to_owned(),
            (None, false) => {
                return Err(ConfigError {
                    name: "WA_APP_SECRET",
                    problem: "required when WA_ACCESS_TOKEN is set (webhooks must be signed)"
                        .into(),
                })
            }
        };
        let verify_token = match (lookup("WA_VERIFY_TOKEN"), sandbox) {
            (Some(token), _) => token,
            (None, true) => SANDBOX_VERIFY_TOKEN.to_owned(),
            (None, false) => {
                return Err(ConfigError {
                    name: "WA_VERIFY_TOKEN",
                    problem: "required when WA_ACCESS_TOKEN is set".into(),
                })
            }
        };
        let rate_limit = number("WA_RATE_LIMIT", 80)?;
        if rate_limit == 0 {
            return Err(ConfigError {
                name: "WA_RATE_LIMIT",
                problem: "must be at least 1".into(),
            });
        }
        let retention_days = match lookup("ZAPFN_RETENTION_DAYS") {
            None => None,
            Some(text) => Some(
                text.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|days| (1..=36_500).contains(days))
                    .ok_or_else(|| ConfigError {
                        name: "ZAPFN_RETENTION_DAYS",
                        problem: format!("{text:?} is not a number of days from 1 to 36500"),
                    })?,
            ),
        };
        let backends = Backends::from_lookup(&lookup)?;
        let media_trigger = media_trigger(lookup("ZAPFN_MEDIA_TRIGGER"), &backends)?;
        let host = host(lookup("ZAPFN_HOST"))?;
        let push_verified_by_cloud_run =
            push_verified_by(lookup("ZAPFN_PUSH_VERIFIED_BY"), &backends)?;
        let graph_url = lookup("WA_GRAPH_URL").unwrap_or_else(|| {
            if sandbox {
                format!("http://127.0.0.1:{port}/graph")
            } else {
                "https://graph.facebook.com".into()
            }
        });
        Ok(Config {
            port,
            host,
            data_dir: lookup("ZAPFN_DATA_DIR")
                .unwrap_or_else(|| ".zapfn".into())
                .into(),
            app_secret,
            verify_token,
            access_token,
            phone_number_id: lookup("WA_PHONE_NUMBER_ID"),
            graph_url,
            api_version: lookup("WA_API_VERSION").unwrap_or_else(|| "v23.0".into()),
            graph_timeout: Duration::from_millis(number("ZAPFN_GRAPH_TIMEOUT_MS", 10_000)?),
            rate_limit: rate_limit as u32,
            pair_burst: number("WA_PAIR_BURST", 45)?.max(1) as u32,
            pair_interval: Duration::from_millis(number("WA_PAIR_INTERVAL_MS", 6_000)?),
            max_attempts: number("ZAPFN_MAX_ATTEMPTS", 5)?.max(1) as u32,
            max_retry_age: Duration::from_secs(number("ZAPFN_MAX_RETRY_SECONDS", 300)?),
            retry_base: Duration::from_millis(number("ZAPFN_RETRY_BASE_MS", 1_000)?),
            store_lease: Duration::from_millis(number("ZAPFN_STORE_LEASE_MS", 60_000)?.max(300)),
            reconcile_window: Duration::from_secs(number("ZAPFN_RECONCILE_SECONDS", 30)?),
            bootstrap_api_key: lookup("ZAPFN_API_KEY"),
            key_pepper: lookup("ZAPFN_KEY_PEPPER").unwrap_or_default(),
            rules_path: lookup("ZAPFN_RULES").map(PathBuf::from),
            sqlite_full_sync: lookup("ZAPFN_SQLITE_SYNC")
                .is_some_and(|v| v.eq_ignore_ascii_case("full")),
            webhook_journal: !lookup("ZAPFN_WEBHOOK_JOURNAL")
                .is_some_and(|v| matches!(v.trim(), "0" | "false" | "off")),
            sqlite_nice: number("ZAPFN_SQLITE_NICE", 5)?.min(19) as i32,
            allow_private_media_hosts: lookup("ZAPFN_ALLOW_PRIVATE_MEDIA_HOSTS")
                .is_some_and(|v| matches!(v.trim(), "1" | "true")),
            retention_days,
            media_trigger,
            push_verified_by_cloud_run,
            backends,
        })
    }

    /// True when sends go to the built-in Graph API sandbox.
    pub fn sandbox(&self) -> bool {
        self.access_token.is_none()
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("zapfn.db")
    }

    /// The embedded blob store's directory.
    pub fn media_dir(&self) -> PathBuf {
        self.data_dir.join("media")
    }
}

/// `ZAPFN_HOST`: an IPv4 or IPv6 address (`::1` or `[::1]`); 127.0.0.1 when unset.
fn host(value: Option<String>) -> Result<IpAddr, ConfigError> {
    let Some(text) = value else {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    };
    let trimmed = text.trim();
    let literal = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(trimmed);
    literal.parse().map_err(|_| ConfigError {
        name: "ZAPFN_HOST",
        problem: format!("{text:?} is not an IP address (e.g. 0.0.0.0, 127.0.0.1, ::)"),
    })
}

/// `ZAPFN_PUSH_VERIFIED_BY`: `cloud-run` trusts Cloud Run's own check of push
/// tokens (it needs `ZAPFN_PUSH_AUDIENCE`); unset checks every signature.
fn push_verified_by(value: Option<String>, backends: &Backends) -> Result<bool, ConfigError> {
    let problem = |problem: String| ConfigError {
        name: "ZAPFN_PUSH_VERIFIED_BY",
        problem,
    };
    match value.as_deref().map(str::trim) {
        None => Ok(false),
        Some("cloud-run") if backends.push_auth.is_some() => Ok(true),
        Some("cloud-run") => Err(problem("cloud-run needs ZAPFN_PUSH_AUDIENCE".into())),
        Some(other) => Err(problem(format!("{other:?} is not cloud-run"))),
    }
}

/// `ZAPFN_MEDIA_TRIGGER`: `events` or `storage` (a bucket's events need Cloud Storage).
fn media_trigger(value: Option<String>, backends: &Backends) -> Result<MediaTrigger, ConfigError> {
    let problem = |problem: String| ConfigError {
        name: "ZAPFN_MEDIA_TRIGGER",
        problem,
    };
    match value.as_deref().map(str::trim) {
        None | Some("events") => Ok(MediaTrigger::Events),
        Some("storage") if matches!(backends.blobs, BlobBackend::Gcs { .. }) => {
            Ok(MediaTrigger::Storage)
        }
        Some("storage") => Err(problem(
            "storage needs ZAPFN_BLOBS=gcs: local objects raise no events".into(),
        )),
        Some(other) => Err(problem(format!("{other:?} is not events or storage"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn sandbox_by_default_and_live_needs_secrets() {
        let sandbox = config(&[("PORT", "9000")]).unwrap();
        assert!(sandbox.sandbox());
        assert_eq!(sandbox.graph_url, "http://127.0.0.1:9000/graph");
        assert_eq!(sandbox.rate_limit, 80);
        let error = config(&[("WA_ACCESS_TOKEN", "EAAG")]).unwrap_err();
        assert_eq!(error.name, "WA_APP_SECRET");
        let live = config(&[
            ("WA_ACCESS_TOKEN", "EAAG"),
            ("WA_APP_SECRET", "s"),
            ("WA_VERIFY_TOKEN", "v"),
        ])
        .unwrap();
        assert_eq!(live.graph_url, "https://graph.facebook.com");
        assert!(config(&[("PORT", "http")]).is_err());
        assert!(config(&[("WA_RATE_LIMIT", "0")]).is_err());
        assert_eq!(sandbox.retention_days, None);
        assert_eq!(
            config(&[("ZAPFN_RETENTION_DAYS", "30")])
                .unwrap()
                .retention_days,
            Some(30)
        );
        for bad in ["0", "-1", "thirty", "36501"] {
            let error = config(&[("ZAPFN_RETENTION_DAYS", bad)]).unwrap_err();
            assert_eq!(error.name, "ZAPFN_RETENTION_DAYS", "{bad}");
        }
    }

    #[test]
    fn media_events_by_default_and_bucket_events_only_on_cloud_storage() {
        assert_eq!(config(&[]).unwrap().media_trigger, MediaTrigger::Events);
        let gcs = [("ZAPFN_BLOBS", "gcs"), ("ZAPFN_MEDIA_BUCKET", "media")];
        let storage = config(&[gcs[0], gcs[1], ("ZAPFN_MEDIA_TRIGGER", "storage")]).unwrap();
        assert_eq!(storage.media_trigger, MediaTrigger::Storage);
        for bad in [
            &[("ZAPFN_MEDIA_TRIGGER", "storage")][..],
            &[gcs[0], gcs[1], ("ZAPFN_MEDIA_TRIGGER", "eventarc")],
        ] {
            assert_eq!(config(bad).unwrap_err().name, "ZAPFN_MEDIA_TRIGGER");
        }
    }

    #[test]
    fn hosts_are_ip_addresses_and_ipv6_gets_brackets() {
        let listen = |host: &str| {
            config(&[("ZAPFN_HOST", host), ("PORT", "9000")])
                .unwrap()
                .listen_addr()
                .to_string()
        };
        assert_eq!(
            config(&[]).unwrap().listen_addr().to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(listen("0.0.0.0"), "0.0.0.0:9000");
        assert_eq!(listen("::"), "[::]:9000");
        assert_eq!(listen("[::1]"), "[::1]:9000");
        assert_eq!(listen(" ::1 "), "[::1]:9000");
        for bad in ["localhost", "0.0.0.0:80", "[::", "256.0.0.1", "::g"] {
            let error = config(&[("ZAPFN_HOST", bad)]).unwrap_err();
            assert_eq!(error.name, "ZAPFN_HOST", "{bad}");
        }
    }

    #[test]
    fn cloud_run_is_trusted_with_push_tokens_only_when_told() {
        let audience = ("ZAPFN_PUSH_AUDIENCE", "https://status.example.run.app");
        assert!(!config(&[audience]).unwrap().push_verified_by_cloud_run);
        let trusted = config(&[audience, ("ZAPFN_PUSH_VERIFIED_BY", "cloud-run")]).unwrap();
        assert!(trusted.push_verified_by_cloud_run);
        for bad in [
            &[("ZAPFN_PUSH_VERIFIED_BY", "cloud-run")][..],
            &[audience, ("ZAPFN_PUSH_VERIFIED_BY", "yes")],
        ] {
            assert_eq!(config(bad).unwrap_err().name, "ZAPFN_PUSH_VERIFIED_BY");
        }
    }
}
