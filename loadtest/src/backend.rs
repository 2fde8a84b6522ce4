//! The store the child runs on (`--store`): SQLite in its data dir,
//! PostgreSQL in a schema of its own created for the run, or a project of its
//! own on the Firestore emulator; the child's environment for it, and the end
//! state read back as [`Facts`].

mod firestore;
mod postgres;
mod sqlite;

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::reconcile::Facts;

/// `--store`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded store (`zapfn dev`'s default).
    Sqlite,
    /// `ZAPFN_STORE=postgres`.
    Postgres,
    /// `ZAPFN_STORE=firestore`, on the emulator.
    Firestore,
}

/// How to get the emulators' settings, for errors that miss them.
const EMULATORS_HINT: &str =
    "`bash scripts/emulators.sh start`, then `. \"$(bash scripts/emulators.sh env)\"`";

/// A name for the run's store of its own: `loadtest`, the time and the pid,
/// joined by `separator`.
fn run_name(separator: char) -> anyhow::Result<String> {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(format!(
        "loadtest{separator}{}{separator}{}",
        since_epoch.as_millis(),
        std::process::id()
    ))
}

/// The store of one run.
pub enum Backend {
    /// The file `zapfn dev` keeps in its data dir.
    Sqlite { database: PathBuf },
    /// A fresh schema on a PostgreSQL server.
    Postgres(postgres::Schema),
    /// A fresh project on the Firestore emulator.
    Firestore(firestore::Project),
}

impl Backend {
    /// Makes the store ready for a run of `kind` whose child keeps its data in
    /// `data_dir`; PostgreSQL needs `database_url`, Firestore the emulator of
    /// `FIRESTORE_EMULATOR_HOST` (which its client reads too): an error
    /// without them, not a skip.
    pub async fn prepare(
        kind: StoreKind,
        database_url: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<Backend> {
        Ok(match kind {
            StoreKind::Sqlite => Backend::Sqlite {
                database: data_dir.join("zapfn.db"),
            },
            StoreKind::Postgres => {
                let Some(url) = database_url else {
                    bail!(
                        "--store postgres needs --database-url or ZAPFN_TEST_DATABASE_URL ({EMULATORS_HINT})"
                    );
                };
                Backend::Postgres(postgres::Schema::create(url).await?)
            }
            StoreKind::Firestore => {
                let Ok(emulator) = std::env::var("FIRESTORE_EMULATOR_HOST") else {
                    bail!("--store firestore needs FIRESTORE_EMULATOR_HOST ({EMULATORS_HINT})");
                };
                Backend::Firestore(firestore::Project::create(&emulator).await?)
            }
        })
    }

    /// What the child's environment needs to use this store.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Backend::Sqlite { .. } => Vec::new(),
            Backend::Postgres(schema) => vec![
                ("ZAPFN_STORE".into(), "postgres".into()),
                ("ZAPFN_DATABASE_URL".into(), schema.url().into()),
            ],
            Backend::Firestore(project) => project.env(),
        }
    }

    /// The store, in a few words for the report.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite { .. } => "SQLite (the embedded store)".into(),
            Backend::Postgres(schema) => schema.describe(),
            Backend::Firestore(project) => project.describe(),
        }
    }

    /// What the store holds now.
    pub async fn facts(&self) -> anyhow::Result<Facts> {
        match self {
            Backend::Sqlite { database } => sqlite::facts(database),
            Backend::Postgres(schema) => schema.facts().await,
            Backend::Firestore(project) => project.facts().await,
        }
    }

    /// Cleans up after a run: a PostgreSQL schema or Firestore project is
    /// deleted when the run passed, and kept (and named) for a look when it did not.
    pub async fn finish(self, passed: bool) -> anyhow::Result<()> {
        match self {
            Backend::Sqlite { .. } => Ok(()),
            Backend::Postgres(schema) if passed => schema.drop().await,
            Backend::Postgres(schema) => {
                eprintln!("loadtest: PostgreSQL schema {} kept", schema.name());
                Ok(())
            }
            Backend::Firestore(project) if passed => project.delete().await,
            Backend::Firestore(project) => {
                eprintln!(
                    "loadtest: Firestore emulator project {} kept",
                    project.name()
                );
                Ok(())
            }
        }
    }
}
