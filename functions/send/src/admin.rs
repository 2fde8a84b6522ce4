//! Admin routes (admin scope): API keys (`POST /v1/keys`, `GET /v1/keys`,
//! `DELETE /v1/keys/{name}`) and the audit log (`GET /v1/audit`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use zapfn_runtime::auth::{issue_key, Caller, KeyGrant};
use zapfn_runtime::{Context, Problem};
use zapfn_store::{ApiKey, Scope};

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
    scopes: Vec<Scope>,
    phone_number_ids: Vec<String>,
    #[serde(default)]
    rate_per_second: Option<u32>,
}

/// `POST /v1/keys`: 201 with the new key, shown this once.
pub async fn create_key(
    State(context): State<Context>,
    caller: Caller,
    body: Result<Json<NewKey>, JsonRejection>,
) -> Result<Response, Problem> {
    caller.require(Scope::Admin)?;
    let Json(new) =
        body.map_err(|rejection| Problem::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let grant = KeyGrant {
        name: new.name,
        scopes: new.scopes,
        phone_number_ids: new.phone_number_ids,
        rate_per_second: new.rate_per_second,
    };
    let (key, stored) = issue_key(&*context.store, &context.config.key_pepper, grant).await?;
    let mut body = key_view(&stored);
    body["key"] = Value::String(key);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/keys`: every key's name, scopes, numbers, rate and state (never hashes).
pub async fn list_keys(
    State(context): State<Context>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    caller.require(Scope::Admin)?;
    let keys = context.store.api_keys().await?;
    Ok(Json(
        json!({ "items": keys.iter().map(key_view).collect::<Vec<_>>() }),
    ))
}

/// `DELETE /v1/keys/{name}`: revokes every live key with that name; 404 when none was live.
pub async fn revoke_key(
    State(context): State<Context>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require(Scope::Admin)?;
    match context.store.revoke_api_key(&name).await? {
        0 => Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("no live API key is named {name:?}"),
        )),
        revoked => Ok(Json(json!({ "name": name, "revoked": revoked }))),
    }
}

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    limit: Option<usize>,
}

/// `GET /v1/audit?limit=`: the latest entries (default 100, at most 1000), newest first.
pub async fn audit_log(
    State(context): State<Context>,
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    caller.require(Scope::Admin)?;
    let Query(query) =
        query.map_err(|rejection| Problem::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(
            Problem::new(StatusCode::BAD_REQUEST, "limit must be between 1 and 1000")
                .with_field("limit"),
        );
    }
    let entries = context.store.audit_log(limit).await?;
    Ok(Json(json!({ "items": entries })))
}

fn key_view(key: &ApiKey) -> Value {
    json!({
        "name": key.name,
        "scopes": key.scopes,
        "phone_number_ids": key.phone_number_ids,
        "rate_per_second": key.rate_per_second,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    })
}
