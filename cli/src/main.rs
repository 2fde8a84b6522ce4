//! `zapfn`: run the embedded system, manage API keys, replay and simulate webhooks.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use zapfn::replay::{self, CustomerInput};
use zapfn_runtime::auth::{self, KeyGrant};
use zapfn_runtime::backends::StoreBackend;
use zapfn_runtime::config::SANDBOX_APP_SECRET;
use zapfn_runtime::{logging, Config};
use zapfn_store::{Scope, ALL_NUMBERS};

#[derive(Parser)]
#[command(
    name = "zapfn",
    version,
    about = "WhatsApp Cloud API backend: serverless functions, embedded mode"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every function in one process (state in ./.zapfn, Graph API sandbox unless WA_ACCESS_TOKEN is set).
    Dev,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Sign webhook payload files with the app secret and POST them, as Meta would.
    Replay {
        files: Vec<PathBuf>,
        #[arg(long, default_value = "http://127.0.0.1:8080/webhook")]
        url: String,
        #[arg(long, env = "WA_APP_SECRET", default_value = SANDBOX_APP_SECRET, hide_env_values = true)]
        secret: String,
    },
    /// Play a customer: send a signed inbound message webhook.
    Simulate {
        /// Text the customer sends.
        #[arg(long, conflicts_with_all = ["button", "list"])]
        text: Option<String>,
        /// Reply-button id the customer taps (title = id unless --title).
        #[arg(long)]
        button: Option<String>,
        /// List-row id the customer picks.
        #[arg(long)]
        list: Option<String>,
        #[arg(long)]
        title: Option<String>,
        #[arg(long, default_value = "5511999990000")]
        from: String,
        #[arg(long, default_value = "Maria Silva")]
        name: String,
        #[arg(long, env = "WA_PHONE_NUMBER_ID", default_value = "106540352242922")]
        phone_number_id: String,
        #[arg(long, default_value = "http://127.0.0.1:8080/webhook")]
        url: String,
        #[arg(long, env = "WA_APP_SECRET", default_value = SANDBOX_APP_SECRET, hide_env_values = true)]
        secret: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key; it is printed once and stored only as a hash.
    Create {
        #[arg(long, default_value = "default")]
        name: String,
        /// What it may do: send, read, admin (admin includes the others).
        #[arg(long, value_delimiter = ',', default_value = "send,read")]
        scope: Vec<Scope>,
        /// A business number it acts for (repeat or comma-separate for several).
        #[arg(long, value_delimiter = ',', required_unless_present = "all_numbers")]
        phone_number_id: Vec<String>,
        /// Act for every business number instead.
        #[arg(long, conflicts_with = "phone_number_id")]
        all_numbers: bool,
        /// Requests per second it may make (token bucket); unlimited if absent.
        #[arg(long)]
        rate: Option<u32>,
    },
    /// Revoke every live key with this name (at once: the next request is refused).
    Revoke { name: String },
    /// List keys (never the keys themselves: they are stored only as hashes).
    List,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev => {
            logging::init();
            zapfn::dev::run(Config::from_env()?).await
        }
        Command::Keys { command } => keys(command).await,
        Command::Replay { files, url, secret } => {
            anyhow::ensure!(!files.is_empty(), "name at least one payload file");
            let mut failed = 0;
            for (file, status) in replay::replay_files(&files, &url, &secret).await? {
                println!("{status} {file}");
                failed += usize::from(status != 200);
            }
            anyhow::ensure!(failed == 0, "{failed} payload(s) were not answered 200");
            Ok(())
        }
        Command::Simulate {
            text,
            button,
            list,
            title,
            from,
            name,
            phone_number_id,
            url,
            secret,
        } => {
            let input = match (text, button, list) {
                (_, Some(id), _) => CustomerInput::ButtonReply {
                    title: title.unwrap_or_else(|| id.clone()),
                    id,
                },
                (_, _, Some(id)) => CustomerInput::ListReply {
                    title: title.unwrap_or_else(|| id.clone()),
                    id,
                },
                (Some(text), _, _) => CustomerInput::Text(text),
                _ => CustomerInput::Text("hi".into()),
            };
            let (wamid, status) =
                replay::simulate(&url, &secret, &phone_number_id, &from, &name, input).await?;
            println!("{status} {wamid}");
            anyhow::ensure!(status == 200, "the webhook answered {status}");
            Ok(())
        }
    }
}

/// `zapfn keys create|revoke|list` on the store `ZAPFN_STORE` names (SQLite,
/// Firestore or PostgreSQL), with the pepper `ZAPFN_KEY_PEPPER` the servers use.
async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let (store, _) = zapfn_runtime::context::connect_store(&config).await?;
    match command {
        KeysCommand::Create {
            name,
            scope,
            phone_number_id,
            all_numbers,
            rate,
        } => {
            let phone_number_ids = match all_numbers {
                true => vec![ALL_NUMBERS.to_owned()],
                false => phone_number_id,
            };
            let grant = KeyGrant {
                name,
                scopes: scope,
                phone_number_ids,
                rate_per_second: rate,
            };
            let (key, stored) = auth::issue_key(&*store, &config.key_pepper, grant)
                .await
                .map_err(|problem| match problem.field {
                    Some(field) => anyhow::anyhow!("{field}: {}", problem.detail),
                    None => anyhow::anyhow!(problem.detail),
                })?;
            println!("{key}");
            eprintln!(
                "stored key {:?} in {} (shown once; keep it secret)",
                stored.name,
                describe(&config)
            );
        }
        KeysCommand::Revoke { name } => {
            let revoked = store.revoke_api_key(&name).await?;
            anyhow::ensure!(revoked > 0, "no live key is named {name:?}");
            eprintln!("revoked {revoked} key(s) named {name:?}");
        }
        KeysCommand::List => {
            for key in store.api_keys().await? {
                let scopes: Vec<_> = key.scopes.iter().map(|s| s.as_str()).collect();
                let rate = key
                    .rate_per_second
                    .map_or("unlimited".to_owned(), |rate| format!("{rate}/s"));
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else {
                    "live"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    key.name,
                    scopes.join(","),
                    key.phone_number_ids.join(","),
                    rate,
                    state
                );
            }
        }
    }
    Ok(())
}

/// Where keys are stored, for the operator (no credentials: URLs are cut at their host).
fn describe(config: &Config) -> String {
    match &config.backends.store {
        StoreBackend::Sqlite => config.database_path().display().to_string(),
        StoreBackend::Postgres { .. } => "PostgreSQL (ZAPFN_DATABASE_URL)".to_owned(),
        StoreBackend::Firestore { database, prefix } => format!(
            "Firestore database {database:?} of project {}, under {prefix}/v1",
            config.backends.project_id.as_deref().unwrap_or("?")
        ),
    }
}
