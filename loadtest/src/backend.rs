//! The store the child runs on (`--store`): SQLite in its data dir, or
//! PostgreSQL in a schema of its own created for the run; the child's
//! environment for it, and the end state read back as [`Facts`].

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
}

/// The store of one run.
pub enum Backend {
    /// The file `zapfn dev` keeps in its data dir.
    Sqlite { database: PathBuf },
    /// A fresh schema on a PostgreSQL server.
    Postgres(postgres::Schema),
}

impl Backend {
    /// Makes the store ready for a run of `kind` whose child keeps its data in
    /// `data_dir`; PostgreSQL needs `database_url` (an error without it, not a skip).
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
                        "--store postgres needs --database-url or ZAPFN_TEST_DATABASE_URL \
                         (`bash scripts/emulators.sh start`, then `. \"$(bash scripts/emulators.sh env)\"`)"
                    );
                };
                Backend::Postgres(postgres::Schema::create(url).await?)
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
        }
    }

    /// The store, in a few words for the report.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite { .. } => "SQLite (the embedded store)".into(),
            Backend::Postgres(schema) => schema.describe(),
        }
    }

    /// What the store holds now.
    pub async fn facts(&self) -> anyhow::Result<Facts> {
        match self {
            Backend::Sqlite { database } => sqlite::facts(database),
            Backend::Postgres(schema) => schema.facts().await,
        }
    }

    /// Cleans up after a run: a PostgreSQL schema is dropped when the run
    /// passed, and kept (and named) for a look when it did not.
    pub async fn finish(self, passed: bool) -> anyhow::Result<()> {
        match self {
            Backend::Sqlite { .. } => Ok(()),
            Backend::Postgres(schema) if passed => schema.drop().await,
            Backend::Postgres(schema) => {
                eprintln!("loadtest: PostgreSQL schema {} kept", schema.name());
                Ok(())
            }
        }
    }
}
