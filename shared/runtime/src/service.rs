//! One function as its own service: its routes, its event handlers served the
//! way its backends say (embedded consumers, or push routes for remote topics),
//! the outbox relay when anything is remote, and OIDC checks on what Google calls.

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::Router;
use zapfn_cloud::oidc::OidcVerifier;

use crate::consumer::{self, Consumers};
use crate::relay::{self, Relay};
use crate::{health, push, Config, Context, Function};

/// A function ready to serve.
pub struct Service {
    pub router: Router,
    pub consumers: Consumers,
}

/// Wires `function` for `context`'s backends.
pub async fn assemble(context: &Context, function: Function) -> anyhow::Result<Service> {
    let backends = &context.config.backends;
    let (remote, embedded): (Vec<_>, Vec<_>) = function
        .subscriptions
        .into_iter()
        .partition(|subscription| backends.remote(subscription.topic));
    let verifier = push_verifier(&context.config);
    let guarded = |router: Router| match &verifier {
        Some(verifier) => router.layer(from_fn_with_state(verifier.clone(), push::require_oidc)),
        None => router,
    };
    let mut router = function.router;
    if !remote.is_empty() {
        router = router.merge(guarded(push::router(context, remote)));
    }
    let relay = Relay::connect(context).await?;
    let mut consumers = consumer::start(context, embedded).await?;
    if let Some(relay) = relay {
        router = router
            .layer(from_fn_with_state(relay.clone(), relay::flush_after_writes))
            .merge(guarded(relay::router(relay.clone())));
        consumers = consumers.with_relay(relay, context.published.clone());
    }
    Ok(Service {
        router: router.merge(health::router(context.clone())),
        consumers,
    })
}

/// The OIDC check of requests Google sends, when `ZAPFN_PUSH_AUDIENCE` is set.
pub fn push_verifier(config: &Config) -> Option<Arc<OidcVerifier>> {
    config.backends.push_auth.as_ref().map(|auth| {
        Arc::new(
            OidcVerifier::new(
                auth.audience.clone(),
                auth.service_accounts.clone(),
                auth.jwks_url.clone(),
            )
            .accept_removed_signatures(config.push_verified_by_cloud_run),
        )
    })
}
