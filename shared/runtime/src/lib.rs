//! The zapfn functions runtime: configuration from the environment, the shared
//! [`Context`], the [`Function`] shape every function crate returns, the
//! embedded event consumers, API-key auth, problem responses, logging and an
//! axum server on `$PORT` that drains on SIGTERM.
//!
//! Like `lambda_http`, it is a thin adapter: a function is a plain axum
//! `Router` plus async event handlers, testable without a server.

pub mod auth;
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
pub mod retry;
pub mod server;

pub use config::Config;
pub use context::Context;
pub use function::{Function, Subscription};
pub use problem::Problem;

/// Runs one function as its own service: reads the configuration, starts its
/// event consumers and serves its routes (plus `/healthz`) on `$PORT`.
pub async fn run_function(build: fn(&Context) -> Function) -> anyhow::Result<()> {
    logging::init();
    let config = Config::from_env()?;
    let context = Context::open(config)?;
    auth::store_bootstrap_key(&context).await?;
    let function = build(&context);
    tracing::info!(function = function.name, "starting");
    let consumers = consumer::start(&context, function.subscriptions).await?;
    let router = function.router.merge(health::router(context.clone()));
    server::serve(router, context.config.listen_addr(), consumers).await
}
