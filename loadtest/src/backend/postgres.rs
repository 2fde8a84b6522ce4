//! A schema of its own on a PostgreSQL server for one run (as the store's
//! tests isolate themselves): created empty before the child starts, which
//! migrates it; the child reaches it through `search_path` in its URL; the end
//! state is read back from it.

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use tokio_postgres::{Client, NoTls};

use crate::reconcile::{Facts, Outbound};

/// The run's schema.
pub struct Schema {
    /// The server's URL as given.
    server: String,
    /// The URL with `search_path` set to the schema.
    url: String,
    name: String,
    /// Server version and durability settings, for the report.
    settings: String,
}

impl Schema {
    /// Creates a fresh, empty schema on the server at `server`.
    pub async fn create(server: &str) -> anyhow::Result<Schema> {
        let name = super::run_name('_')?;
        let client = connect(server).await?;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .with_context(|| format!("creating schema {name}"))?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), current_setting('fsync'),
                        current_setting('synchronous_commit')",
                &[],
            )
            .await?;
        let settings = format!(
            "PostgreSQL {} (fsync {}, synchronous_commit {})",
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2)
        );
        let separator = if server.contains('?') { '&' } else { '?' };
        Ok(Schema {
            server: server.to_owned(),
            url: format!("{server}{separator}options=-c%20search_path%3D{name}"),
            name,
            settings,
        })
    }

    /// The URL the child connects with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server and how the run used it, for the report.
    pub fn describe(&self) -> String {
        format!("{}, a fresh schema for the run", self.settings)
    }

    /// Reads [`Facts`] from the schema.
    pub async fn facts(&self) -> anyhow::Result<Facts> {
        let db = connect(&self.url).await?;

        let mut inbound: HashMap<String, u64> = HashMap::new();
        for row in db
            .query(
                "SELECT wa_message_id FROM messages WHERE direction = 'inbound'",
                &[],
            )
            .await?
        {
            *inbound.entry(row.try_get(0)?).or_default() += 1;
        }

        let outbound = db
            .query(
                "SELECT id, wa_message_id, status, idempotency_key, raw IS NULL FROM messages
                 WHERE direction = 'outbound'",
                &[],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(Outbound {
                    id: row.try_get(0)?,
                    wamid: row.try_get(1)?,
                    status: row.try_get(2)?,
                    idempotency_key: row.try_get(3)?,
                    placeholder: row.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;

        let statuses = db
            .query("SELECT subject, status FROM status_events", &[])
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<HashSet<_>, tokio_postgres::Error>>()?;

        let image_objects = db
            .query(
                "SELECT wa_message_id, media -> 'object' ->> 'status' FROM messages
                 WHERE direction = 'inbound' AND type = 'image'",
                &[],
            )
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<HashMap<_, _>, tokio_postgres::Error>>()?;

        Ok(Facts {
            inbound,
            outbound,
            statuses,
            image_objects,
            dead_letters: count(&db, "dead_letters").await?,
            outbox: count(&db, "outbox").await?,
        })
    }

    /// Drops the schema and everything in it.
    pub async fn drop(self) -> anyhow::Result<()> {
        connect(&self.server)
            .await?
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .with_context(|| format!("dropping schema {}", self.name))
    }
}

/// A connection to `url`, its driver spawned.
async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    Ok(client)
}

/// Rows in `table`.
async fn count(db: &Client, table: &str) -> anyhow::Result<u64> {
    let n: i64 = db
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0);
    Ok(n as u64)
}
