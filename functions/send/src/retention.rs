//! Retention: with `ZAPFN_RETENTION_DAYS` set, messages older than that many
//! days are deleted with their status history and media objects, and so are
//! conversations left without messages, dead letters and raw webhook events
//! past the same age. Unset keeps everything.
//!
//! `POST /_jobs/retention` runs it (Cloud Scheduler calls it when deployed) and
//! answers with counts. It takes an admin API key for every number, or, when
//! `ZAPFN_PUSH_AUDIENCE` is set, the Google OIDC token Cloud Scheduler sends
//! (checked like the push routes'). In embedded mode (a SQLite store) the
//! service also runs it itself, a minute after start and then hourly.
//!
//! Work goes in bounded batches (each one short store transaction, media
//! objects deleted before their rows), and one run stops after [`RUN_BUDGET`]
//! answering `"complete": false`: the next run carries on.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{middleware, Json, Router};
use serde::Serialize;
use zapfn_cloud::oidc::OidcVerifier;
use zapfn_runtime::auth::hash_key;
use zapfn_runtime::backends::StoreBackend;
use zapfn_runtime::{audit, Context, Problem};
use zapfn_store::{AuditEntry, Erased, Scope};

use crate::erase::{self, Counts, Doomed, BATCH};

/// Longest one run works before answering (Cloud Scheduler's default attempt
/// deadline is 180 s).
pub const RUN_BUDGET: Duration = Duration::from_secs(120);
/// How often the embedded service runs retention itself.
pub const EMBEDDED_INTERVAL: Duration = Duration::from_secs(3600);
/// How long after start the embedded service first runs it: a start is busy
/// enough (the journal's backlog, redelivered events), and a crash loop should
/// not delete on every start.
pub const EMBEDDED_FIRST_RUN: Duration = Duration::from_secs(60);
/// The route Cloud Scheduler calls.
pub const ROUTE: &str = "/_jobs/retention";

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// None when retention is off (`ZAPFN_RETENTION_DAYS` unset): nothing was deleted.
    pub retention_days: Option<u32>,
    /// What was older than this (Unix seconds) was deleted.
    pub cutoff: Option<i64>,
    pub deleted: Counts,
    /// False when the run stopped at its time budget with more to delete.
    pub complete: bool,
}

/// Runs retention once for `context`'s `ZAPFN_RETENTION_DAYS`, within `budget`.
pub async fn run(context: &Context, budget: Duration) -> Result<RetentionReport, Problem> {
    let Some(days) = context.config.retention_days else {
        return Ok(RetentionReport {
            retention_days: None,
            cutoff: None,
            deleted: erase::counts(&Erased::default(), 0),
            complete: true,
        });
    };
    let cutoff = chrono::Utc::now().timestamp() - i64::from(days) * 86_400;
    let started = Instant::now();
    let (mut deleted, mut objects) = (Erased::default(), 0);
    let mut complete = false;
    while started.elapsed() < budget {
        let batch = context.store.messages_before(cutoff, BATCH).await?;
        if batch.is_empty() {
            complete = true;
            break;
        }
        let doomed = batch
            .into_iter()
            .map(|message| Doomed {
                blob_keys: message.blob_keys(),
                id: message.id,
            })
            .collect();
        let (erased, deleted_objects) = erase::delete_messages(context, doomed).await?;
        deleted += erased;
        objects += deleted_objects;
    }
    while complete {
        let purged = context.store.purge_expired(cutoff, BATCH).await?;
        deleted += purged;
        let full = [purged.conversations, purged.events, purged.raw_events]
            .iter()
            .any(|count| *count as usize >= BATCH);
        if !full {
            break;
        }
        if started.elapsed() >= budget {
            complete = false;
        }
    }
    Ok(RetentionReport {
        retention_days: Some(days),
        cutoff: Some(cutoff),
        deleted: erase::counts(&deleted, objects),
        complete,
    })
}

/// `POST /_jobs/retention`, guarded by [`require_job_caller`].
pub fn router(context: Context) -> Router {
    let verifier = context.config.backends.push_auth.as_ref().map(|auth| {
        Arc::new(OidcVerifier::new(
            auth.audience.clone(),
            auth.service_accounts.clone(),
            auth.jwks_url.clone(),
        ))
    });
    let guard = JobGuard {
        context: context.clone(),
        verifier,
    };
    Router::new()
        .route(ROUTE, post(run_job))
        .route_layer(middleware::from_fn_with_state(guard, require_job_caller))
        .with_state(context)
}

async fn run_job(State(context): State<Context>) -> Result<Json<RetentionReport>, Problem> {
    let report = run(&context, RUN_BUDGET).await?;
    tracing::info!(
        messages = report.deleted.messages,
        media_objects = report.deleted.media_objects,
        complete = report.complete,
        "retention run"
    );
    Ok(Json(report))
}

/// Who may run jobs.
#[derive(Clone)]
struct JobGuard {
    context: Context,
    verifier: Option<Arc<OidcVerifier>>,
}

/// Middleware: the caller is a live admin API key for every number, or (when
/// `ZAPFN_PUSH_AUDIENCE` is set) presents a valid Google OIDC token; 401
/// otherwise, 403 for a key without that reach. The run is audited.
async fn require_job_caller(
    State(guard): State<JobGuard>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bearer = authorization
        .as_deref()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    let Some(bearer) = bearer else {
        return unauthorized("send `Authorization: Bearer <admin API key or OIDC token>`");
    };
    let context = &guard.context;
    let hash = hash_key(&context.config.key_pepper, bearer);
    let who = match context.store.api_key(&hash).await {
        Err(error) => return Problem::from(error).into_response(),
        Ok(Some(key)) if key.allows(Scope::Admin) && key.numbers().is_none() => key.name,
        Ok(Some(key)) => {
            return Problem::new(
                StatusCode::FORBIDDEN,
                format!(
                    "the API key {:?} is not an admin key for every number, which retention needs",
                    key.name
                ),
            )
            .into_response()
        }
        Ok(None) => match &guard.verifier {
            None => return unauthorized("the API key is not valid or was revoked"),
            // Cloud Scheduler sends the custom audience: no other is accepted here.
            Some(verifier) => match verifier.verify(authorization.as_deref(), None).await {
                Ok(claims) => format!(
                    "oidc:{}",
                    claims.email.unwrap_or(claims.sub.unwrap_or_default())
                ),
                Err(error) => {
                    tracing::warn!(%error, "retention job refused");
                    return unauthorized(&error.to_string());
                }
            },
        },
    };
    let request_id = audit::request_id(request.headers());
    let response = next.run(request).await;
    let entry = AuditEntry {
        at_ms: chrono::Utc::now().timestamp_millis(),
        key_name: who,
        method: "POST".into(),
        route: ROUTE.into(),
        target: None,
        status: response.status().as_u16(),
        request_id,
    };
    audit::record(context, &entry).await;
    response
}

fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, detail).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// In embedded mode (a SQLite store) with retention on, runs it after
/// [`EMBEDDED_FIRST_RUN`] and then every [`EMBEDDED_INTERVAL`] in the
/// background, until the store is dropped.
pub fn start_embedded(context: &Context) {
    if context.config.retention_days.is_none()
        || context.config.backends.store != StoreBackend::Sqlite
    {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    // Weak handles: the loop ends once the service that owns the store is gone.
    let handles = Handles {
        config: context.config.clone(),
        store: Arc::downgrade(&context.store),
        blobs: Arc::downgrade(&context.blobs),
        graph: context.graph.clone(),
        published: context.published.clone(),
    };
    drop(runtime.spawn(embedded_loop(handles)));
}

/// A [`Context`] whose store and blob store are not kept alive by the loop.
struct Handles {
    config: Arc<zapfn_runtime::Config>,
    store: Weak<dyn zapfn_store::Store>,
    blobs: Weak<dyn zapfn_blob::BlobStore>,
    graph: zapfn_whatsapp::graph::GraphClient,
    published: Arc<tokio::sync::Notify>,
}

async fn embedded_loop(handles: Handles) {
    let Handles {
        config,
        store,
        blobs,
        graph,
        published,
    } = handles;
    let mut pause = EMBEDDED_FIRST_RUN;
    loop {
        tokio::time::sleep(pause).await;
        pause = EMBEDDED_INTERVAL;
        let (Some(store), Some(blobs)) = (store.upgrade(), blobs.upgrade()) else {
            return;
        };
        let context = Context {
            config: config.clone(),
            store,
            blobs,
            graph: graph.clone(),
            published: published.clone(),
        };
        match run(&context, RUN_BUDGET).await {
            Ok(report) => tracing::info!(
                messages = report.deleted.messages,
                media_objects = report.deleted.media_objects,
                complete = report.complete,
                "embedded retention run"
            ),
            Err(problem) => {
                tracing::warn!(detail = problem.detail, "embedded retention run failed")
            }
        }
        drop(context);
    }
}
