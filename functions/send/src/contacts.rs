//! The data-protection routes for one contact (a customer's `wa_id`):
//! `GET /v1/contacts/{wa_id}/export` (read scope) streams everything stored
//! about them, and `DELETE /v1/contacts/{wa_id}` (admin scope) erases it.
//! Both cover the business number named by `?phone_number_id=`, or else every
//! number the API key acts for; a number the key does not act for answers 404,
//! as another tenant's records do on every route.
//!
//! Both calls are audited without the phone number: the audit entry names the
//! contact by a peppered hash ([`contact_pseudonym`]).

use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde::Deserialize;
use serde_json::json;
use zapfn_runtime::auth::{hash_key, require_api_key, ApiAuth, Caller};
use zapfn_runtime::{audit, Context, Problem};
use zapfn_store::{AuditEntry, Conversation, ConversationQuery, PageRequest, Scope};

use crate::{erase, export};

/// The contact routes, behind `auth`, audited by [`audit_contact_calls`].
pub fn router(context: Context, auth: ApiAuth) -> Router {
    Router::new()
        .route("/v1/contacts/{wa_id}/export", get(export_contact))
        .route("/v1/contacts/{wa_id}", axum::routing::delete(erase_contact))
        .route_layer(middleware::from_fn_with_state(
            context.clone(),
            audit_contact_calls,
        ))
        .route_layer(middleware::from_fn_with_state(auth, require_api_key))
        .with_state(context)
}

/// Query of the contact routes.
#[derive(Debug, Deserialize)]
pub struct ContactQuery {
    phone_number_id: Option<String>,
}

/// Which contact, on which business numbers (None: every number).
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub wa_id: String,
    pub numbers: Option<Vec<String>>,
}

impl Contact {
    /// The contact of a request: a valid `wa_id`, and the numbers it may cover
    /// for `caller` with `scope`.
    fn resolve(
        caller: &Caller,
        scope: Scope,
        wa_id: &str,
        query: Result<Query<ContactQuery>, QueryRejection>,
    ) -> Result<Contact, Problem> {
        caller.require(scope)?;
        let Query(query) = query
            .map_err(|rejection| Problem::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
        let wa_id = valid_wa_id(wa_id)?;
        let numbers = match query.phone_number_id {
            Some(pnid) if pnid.is_empty() || !pnid.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "phone_number_id must be the numeric id of a business number",
                )
                .with_field("phone_number_id"))
            }
            // Another tenant's number: answered like a contact with no data.
            Some(pnid) if !caller.sees(&pnid) => return Err(not_found(&wa_id)),
            Some(pnid) => Some(vec![pnid]),
            None => caller.numbers().map(<[String]>::to_vec),
        };
        Ok(Contact { wa_id, numbers })
    }

    /// The contact's conversations on the numbers it covers.
    pub async fn conversations(&self, context: &Context) -> Result<Vec<Conversation>, Problem> {
        let mut found = Vec::new();
        match &self.numbers {
            Some(numbers) => {
                for pnid in numbers {
                    let page = context
                        .store
                        .conversations(self.query(Some(pnid.clone()), None))
                        .await?;
                    found.extend(page.items);
                }
            }
            None => {
                let mut cursor = None;
                loop {
                    let page = context
                        .store
                        .conversations(self.query(None, cursor))
                        .await?;
                    found.extend(page.items);
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
            }
        }
        Ok(found)
    }

    fn query(&self, phone_number_id: Option<String>, cursor: Option<String>) -> ConversationQuery {
        ConversationQuery {
            phone_number_id,
            wa_id: Some(self.wa_id.clone()),
            page: PageRequest { cursor, limit: 500 },
        }
    }
}

/// A `wa_id` as Meta writes it (digits; `+`, spaces and dashes are dropped) or a
/// business-scoped user id (`US.…`), or 400.
fn valid_wa_id(text: &str) -> Result<String, Problem> {
    if zapfn_whatsapp::is_user_id(text) {
        return Ok(text.to_owned());
    }
    let wa_id = zapfn_whatsapp::wa_id(text);
    let allowed = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-'));
    if !allowed || !(1..=32).contains(&wa_id.len()) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "wa_id must be the contact's phone number in international format (digits) \
             or its business-scoped user id (US.…)",
        )
        .with_field("wa_id"));
    }
    Ok(wa_id)
}

/// 404 for a contact with nothing stored (or only on numbers the key does not act for).
pub fn not_found(wa_id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        format!("nothing is stored about contact {wa_id} on the numbers this API key may read"),
    )
}

/// `GET /v1/contacts/{wa_id}/export?phone_number_id=`: one JSON document, streamed.
async fn export_contact(
    State(context): State<Context>,
    caller: Caller,
    Path(wa_id): Path<String>,
    query: Result<Query<ContactQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let contact = Contact::resolve(&caller, Scope::Read, &wa_id, query)?;
    export::respond(context, contact).await
}

/// `DELETE /v1/contacts/{wa_id}?phone_number_id=`: 200 with what was deleted
/// (zero counts when there was nothing, so a repeat answers the same way).
async fn erase_contact(
    State(context): State<Context>,
    caller: Caller,
    Path(wa_id): Path<String>,
    query: Result<Query<ContactQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let contact = Contact::resolve(&caller, Scope::Admin, &wa_id, query)?;
    let report = erase::erase_contact(&context, &contact).await?;
    tracing::info!(
        messages = report.deleted.messages,
        media_objects = report.media_objects,
        "contact erased"
    );
    Ok((
        StatusCode::OK,
        Json(json!({
            "wa_id": contact.wa_id,
            "phone_number_ids": report.phone_number_ids,
            "deleted": report.counts(),
        })),
    )
        .into_response())
}

/// The contact as the audit log names it: a peppered hash of the `wa_id`, which
/// matches the same contact across entries but does not disclose the number.
pub fn contact_pseudonym(pepper: &str, wa_id: &str) -> String {
    format!("hmac:{}", &hash_key(pepper, wa_id)[..16])
}

/// Middleware: records every contact call (exports too: they disclose personal
/// data) in the audit log, with the contact pseudonymised.
async fn audit_contact_calls(
    State(context): State<Context>,
    Path(wa_id): Path<String>,
    query: Result<Query<ContactQuery>, QueryRejection>,
    request: Request,
    next: Next,
) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return next.run(request).await;
    };
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("/v1/contacts/{wa_id}", MatchedPath::as_str)
        .to_owned();
    let request_id = audit::request_id(request.headers());
    let mut target = vec![format!(
        "contact={}",
        contact_pseudonym(&context.config.key_pepper, &zapfn_whatsapp::wa_id(&wa_id))
    )];
    if let Some(pnid) = query.ok().and_then(|Query(query)| query.phone_number_id) {
        target.insert(0, format!("phone_number_id={pnid}"));
    }
    let response = next.run(request).await;
    let entry = AuditEntry {
        at_ms: chrono::Utc::now().timestamp_millis(),
        key_name: caller.name().to_owned(),
        method,
        route,
        target: Some(target.join(",")),
        status: response.status().as_u16(),
        request_id,
    };
    audit::record(&context, &entry).await;
    response
}
