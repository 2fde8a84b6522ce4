//! The zapfn functions runtime: configuration from the environment, the shared
//! [`Context`], the [`Function`] shape every function crate returns, the
//! embedded event consumers, API-key auth, problem responses, logging and an
//! axum server on `$PORT` that drains on SIGTERM.
//!
//! Like `lambda_http`, it is a thin adapter: a function is a plain axum
//! `Router` plus async event handlers, testable without a server.

pub mod audit;
pub mod auth;
pub mod backends;
pub mod config;
pub mod consumer;
pub mod context;
mod fan_out;
pub mod function;
pub mod health;
pub mod limits;
pub mod listen;
pub mod logging;
pub mod problem;
pub mod push;
pub mod rate_limit;
pub mod relay;
pub mod retry;
pub mod server;
pub mod service;

pub use config::{Config, MediaTrigger};
pub use context::Context;
pub use function::{Function, Subscription};
pub use problem::Problem;

/// Runs one function as its own service: reads the configuration, connects its
/// backends, serves its routes (plus `/healthz`, push routes and `/_relay` when
/// its bus or task queue is remote) on `$PORT`, and runs its embedded consumers
/// and outbox relay.
pub async fn run_function(build: fn(&Context) -> Function) -> anyhow::Result<()> {
    logging::init();
    let config = Config::from_env()?;
    let context = Context::connect(config).await?;
    auth::store_bootstrap_key(&context).await?;
    let function = build(&context);
    tracing::info!(function = function.name, "starting");
    let service = service::assemble(&context, function).await?;
    server::serve(
        service.router,
        context.config.listen_addr(),
        service.consumers,
    )
    .await
}
