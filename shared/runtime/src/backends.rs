//! Which backends a function uses, chosen per function by environment
//! variables (documented in the README): embedded by default, Google Cloud
//! services when deployed.

use std::path::PathBuf;

use crate::config::ConfigError;

/// Names earlier versions read, and the one name each setting has now
/// (old → new). An old name set without the new one stops the start with an
/// error that names the new one, rather than being ignored.
pub const RENAMED: [(&str, &str); 4] = [
    ("FIRESTORE_DATABASE", "ZAPFN_FIRESTORE_DATABASE"),
    ("DATABASE_URL", "ZAPFN_DATABASE_URL"),
    ("ZAPFN_BUCKET", "ZAPFN_MEDIA_BUCKET"),
    ("ZAPFN_TASKS_URL", "ZAPFN_DISPATCH_URL"),
];

/// Where state lives (`ZAPFN_STORE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// `sqlite` (default): the file under `ZAPFN_DATA_DIR`.
    Sqlite,
    /// `firestore`: `GOOGLE_CLOUD_PROJECT`, `ZAPFN_FIRESTORE_DATABASE`
    /// (default `(default)`), collections under `ZAPFN_FIRESTORE_PREFIX`
    /// (default `zapfn`).
    Firestore { database: String, prefix: String },
    /// `postgres`: `ZAPFN_DATABASE_URL`.
    Postgres { url: String },
}

/// Where media objects live (`ZAPFN_BLOBS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobBackend {
    /// `local` (default): `ZAPFN_DATA_DIR/media`.
    Local,
    /// `gcs`: the bucket `ZAPFN_MEDIA_BUCKET`; URLs signed with the key file
    /// `ZAPFN_SIGNING_KEY_FILE` when set, else by the runtime service account.
    Gcs {
        bucket: String,
        signing_key_file: Option<PathBuf>,
    },
}

/// How events reach their handlers (`ZAPFN_BUS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusBackend {
    /// `embedded` (default): consumers lease events from the store's outbox.
    Embedded,
    /// `pubsub`: the relay publishes them to `<ZAPFN_TOPIC_PREFIX><topic>`
    /// (default prefix `zapfn-`); handlers are served at `POST /_push/{topic}`.
    PubSub { topic_prefix: String },
}

/// How `dispatch` tasks reach the dispatch function (`ZAPFN_TASKS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskBackend {
    /// `embedded` (default): the dispatch consumer leases them from the outbox.
    Embedded,
    /// `cloudtasks`: the relay creates a named task per event on
    /// `ZAPFN_TASKS_QUEUE` (`projects/P/locations/L/queues/Q`) targeting
    /// `ZAPFN_DISPATCH_URL` (the dispatch function's `/_tasks/dispatch`),
    /// with an OIDC token of `ZAPFN_TASKS_SERVICE_ACCOUNT` when set.
    CloudTasks {
        queue: String,
        target_url: String,
        service_account: Option<String>,
    },
}

/// OIDC checks on push endpoints (`ZAPFN_PUSH_AUDIENCE` turns them on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushAuth {
    /// The `aud` every push token must carry.
    pub audience: String,
    /// Allowed service account emails (`ZAPFN_PUSH_SERVICE_ACCOUNTS`, comma
    /// separated); any Google-signed token for the audience when empty.
    pub service_accounts: Vec<String>,
    /// Signing keys (`ZAPFN_OIDC_JWKS_URL`, default Google's).
    pub jwks_url: String,
}

/// Every backend choice of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backends {
    pub store: StoreBackend,
    pub blobs: BlobBackend,
    pub bus: BusBackend,
    pub tasks: TaskBackend,
    pub push_auth: Option<PushAuth>,
    /// `GOOGLE_CLOUD_PROJECT` (detected from the credentials when unset).
    pub project_id: Option<String>,
}

impl Backends {
    /// Reads the backend variables through `lookup`.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Backends, ConfigError> {
        // A setting under its one name; an old name of it set alone is an error.
        let setting = |name: &'static str| -> Result<Option<String>, ConfigError> {
            match lookup(name) {
                Some(value) => Ok(Some(value)),
                None => match RENAMED.iter().find(|(_, new)| *new == name) {
                    Some((old, _)) if lookup(old).is_some() => Err(ConfigError {
                        name: old,
                        problem: format!("is no longer read: set {name} instead"),
                    }),
                    _ => Ok(None),
                },
            }
        };
        let required = |name: &'static str, why: &str| {
            setting(name)?.ok_or_else(|| ConfigError {
                name,
                problem: format!("required {why}"),
            })
        };
        let choice =
            |name: &'static str, allowed: &[&'static str]| -> Result<&'static str, ConfigError> {
                match lookup(name) {
                    None => Ok(allowed[0]),
                    Some(value) => allowed
                        .iter()
                        .find(|allowed| allowed.eq_ignore_ascii_case(value.trim()))
                        .copied()
                        .ok_or_else(|| ConfigError {
                            name,
                            problem: format!("{value:?} is not one of {}", allowed.join(", ")),
                        }),
                }
            };
        let store = match choice("ZAPFN_STORE", &["sqlite", "firestore", "postgres"])? {
            "firestore" => StoreBackend::Firestore {
                database: setting("ZAPFN_FIRESTORE_DATABASE")?
                    .unwrap_or_else(|| "(default)".into()),
                prefix: lookup("ZAPFN_FIRESTORE_PREFIX").unwrap_or_else(|| "zapfn".into()),
            },
            "postgres" => StoreBackend::Postgres {
                url: required("ZAPFN_DATABASE_URL", "with ZAPFN_STORE=postgres")?,
            },
            _ => StoreBackend::Sqlite,
        };
        let blobs = match choice("ZAPFN_BLOBS", &["local", "gcs"])? {
            "gcs" => BlobBackend::Gcs {
                bucket: required("ZAPFN_MEDIA_BUCKET", "with ZAPFN_BLOBS=gcs")?,
                signing_key_file: lookup("ZAPFN_SIGNING_KEY_FILE").map(PathBuf::from),
            },
            _ => BlobBackend::Local,
        };
        let bus = match choice("ZAPFN_BUS", &["embedded", "pubsub"])? {
            "pubsub" => BusBackend::PubSub {
                topic_prefix: lookup("ZAPFN_TOPIC_PREFIX").unwrap_or_else(|| "zapfn-".into()),
            },
            _ => BusBackend::Embedded,
        };
        let tasks = match choice("ZAPFN_TASKS", &["embedded", "cloudtasks"])? {
            "cloudtasks" => {
                let queue = lookup("ZAPFN_TASKS_QUEUE").ok_or_else(|| ConfigError {
                    name: "ZAPFN_TASKS_QUEUE",
                    problem: "required with ZAPFN_TASKS=cloudtasks".into(),
                })?;
                if queue.split('/').count() != 6 || !queue.starts_with("projects/") {
                    return Err(ConfigError {
                        name: "ZAPFN_TASKS_QUEUE",
                        problem: format!("{queue:?} is not projects/P/locations/L/queues/Q"),
                    });
                }
                TaskBackend::CloudTasks {
                    queue,
                    target_url: required("ZAPFN_DISPATCH_URL", "with ZAPFN_TASKS=cloudtasks")?,
                    service_account: lookup("ZAPFN_TASKS_SERVICE_ACCOUNT"),
                }
            }
            _ => TaskBackend::Embedded,
        };
        let push_auth = lookup("ZAPFN_PUSH_AUDIENCE").map(|audience| PushAuth {
            audience,
            service_accounts: lookup("ZAPFN_PUSH_SERVICE_ACCOUNTS")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|email| !email.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            jwks_url: lookup("ZAPFN_OIDC_JWKS_URL")
                .unwrap_or_else(|| zapfn_cloud::oidc::GOOGLE_JWKS_URL.into()),
        });
        Ok(Backends {
            store,
            blobs,
            bus,
            tasks,
            push_auth,
            project_id: lookup("GOOGLE_CLOUD_PROJECT"),
        })
    }

    /// Whether events of `topic` leave through Pub/Sub or Cloud Tasks (else the
    /// embedded consumers take them from the outbox).
    pub fn remote(&self, topic: &str) -> bool {
        if topic == zapfn_store::topics::DISPATCH {
            self.tasks != TaskBackend::Embedded
        } else {
            self.bus != BusBackend::Embedded
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn backends(pairs: &[(&str, &str)]) -> Result<Backends, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Backends::from_lookup(&|name: &str| map.get(name).cloned())
    }

    #[test]
    fn embedded_by_default() {
        let embedded = backends(&[]).unwrap();
        assert_eq!(embedded.store, StoreBackend::Sqlite);
        assert_eq!(embedded.blobs, BlobBackend::Local);
        assert_eq!(embedded.bus, BusBackend::Embedded);
        assert_eq!(embedded.tasks, TaskBackend::Embedded);
        assert_eq!(embedded.push_auth, None);
        assert!(!embedded.remote("messages") && !embedded.remote("dispatch"));
    }

    #[test]
    fn cloud_backends_need_their_settings() {
        let queue = "projects/p/locations/europe-west1/queues/zapfn-dispatch";
        let cloud = backends(&[
            ("ZAPFN_STORE", "firestore"),
            ("ZAPFN_BLOBS", "gcs"),
            ("ZAPFN_MEDIA_BUCKET", "zapfn-media"),
            ("ZAPFN_BUS", "PubSub"),
            ("ZAPFN_TASKS", "cloudtasks"),
            ("ZAPFN_TASKS_QUEUE", queue),
            (
                "ZAPFN_DISPATCH_URL",
                "https://dispatch.run.app/_tasks/dispatch",
            ),
            ("ZAPFN_PUSH_AUDIENCE", "https://dispatch.run.app"),
            (
                "ZAPFN_PUSH_SERVICE_ACCOUNTS",
                "a@p.iam.gserviceaccount.com, b@p.iam.gserviceaccount.com",
            ),
        ])
        .unwrap();
        assert_eq!(
            cloud.store,
            StoreBackend::Firestore {
                database: "(default)".into(),
                prefix: "zapfn".into()
            }
        );
        assert_eq!(
            cloud.bus,
            BusBackend::PubSub {
                topic_prefix: "zapfn-".into()
            }
        );
        assert!(cloud.remote("messages") && cloud.remote("dispatch"));
        let auth = cloud.push_auth.unwrap();
        assert_eq!(auth.service_accounts.len(), 2);
        assert_eq!(auth.jwks_url, zapfn_cloud::oidc::GOOGLE_JWKS_URL);

        let name = |pairs: &[(&str, &str)]| backends(pairs).unwrap_err().name;
        assert_eq!(name(&[("ZAPFN_STORE", "mysql")]), "ZAPFN_STORE");
        assert_eq!(name(&[("ZAPFN_STORE", "postgres")]), "ZAPFN_DATABASE_URL");
        assert_eq!(name(&[("ZAPFN_BLOBS", "gcs")]), "ZAPFN_MEDIA_BUCKET");
        assert_eq!(name(&[("ZAPFN_TASKS", "cloudtasks")]), "ZAPFN_TASKS_QUEUE");
        assert_eq!(
            name(&[
                ("ZAPFN_TASKS", "cloudtasks"),
                ("ZAPFN_TASKS_QUEUE", "zapfn-dispatch")
            ]),
            "ZAPFN_TASKS_QUEUE"
        );
        assert_eq!(
            name(&[("ZAPFN_TASKS", "cloudtasks"), ("ZAPFN_TASKS_QUEUE", queue)]),
            "ZAPFN_DISPATCH_URL"
        );
        let mixed = backends(&[("ZAPFN_BUS", "pubsub")]).unwrap();
        assert!(mixed.remote("statuses") && !mixed.remote("dispatch"));
    }

    #[test]
    fn an_old_name_set_alone_is_an_error_naming_the_new_one() {
        let queue = "projects/p/locations/l/queues/q";
        for (old, new, selected) in [
            (
                "FIRESTORE_DATABASE",
                "ZAPFN_FIRESTORE_DATABASE",
                ("ZAPFN_STORE", "firestore"),
            ),
            (
                "DATABASE_URL",
                "ZAPFN_DATABASE_URL",
                ("ZAPFN_STORE", "postgres"),
            ),
            ("ZAPFN_BUCKET", "ZAPFN_MEDIA_BUCKET", ("ZAPFN_BLOBS", "gcs")),
            (
                "ZAPFN_TASKS_URL",
                "ZAPFN_DISPATCH_URL",
                ("ZAPFN_TASKS", "cloudtasks"),
            ),
        ] {
            let base = [selected, ("ZAPFN_TASKS_QUEUE", queue)];
            let error = backends(&[base[0], base[1], (old, "value")]).unwrap_err();
            assert_eq!(error.name, old);
            assert!(error.to_string().contains(new), "{error}");
            // Set with the new name (other tools may read the old one), it is not used.
            let both = backends(&[base[0], base[1], (old, "old"), (new, "new")]).unwrap();
            let used = match (&both.store, &both.blobs, &both.tasks) {
                (StoreBackend::Firestore { database, .. }, ..) => database.clone(),
                (StoreBackend::Postgres { url }, ..) => url.clone(),
                (_, BlobBackend::Gcs { bucket, .. }, _) => bucket.clone(),
                (.., TaskBackend::CloudTasks { target_url, .. }) => target_url.clone(),
                _ => unreachable!("{old}"),
            };
            assert_eq!(used, "new", "{old}");
        }
        // Where the setting is not read, an old name changes nothing.
        assert_eq!(
            backends(&[("DATABASE_URL", "postgres://elsewhere")])
                .unwrap()
                .store,
            StoreBackend::Sqlite
        );
    }
}
