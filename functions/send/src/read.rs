//! The read API: messages by zapfn id or wamid, conversations, a conversation's messages.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use zapfn_runtime::auth::Caller;
use zapfn_runtime::{Context, Problem};
use zapfn_store::{Conversation, ConversationQuery, MessageView, Page, PageRequest, Scope};

/// Paging query parameters. `limit` is read as text and parsed here: a typed field
/// would not deserialize under `#[serde(flatten)]`, and its error would not be a problem body.
#[derive(Debug, Deserialize)]
pub struct Paging {
    cursor: Option<String>,
    limit: Option<String>,
}

impl Paging {
    fn request(self) -> Result<PageRequest, Problem> {
        let limit = match self.limit.as_deref() {
            None => 50,
            Some(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|limit| (1..=500).contains(limit))
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "limit must be an integer between 1 and 500",
                    )
                    .with_field("limit")
                })?,
        };
        Ok(PageRequest {
            cursor: self.cursor,
            limit,
        })
    }
}

/// The query parameters, or a 400 problem naming what is wrong with them.
fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| Problem::new(StatusCode::BAD_REQUEST, rejection.body_text()))
}

/// `GET /v1/messages/{id}`: by zapfn id or wamid.
pub async fn message(
    State(context): State<Context>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, Problem> {
    caller.require(Scope::Read)?;
    visible_message(&context, &caller, &id).await.map(Json)
}

/// A message the caller's key may see, or 404 (another number's message is
/// answered exactly like a missing one: its existence is not disclosed).
pub async fn visible_message(
    context: &Context,
    caller: &Caller,
    id: &str,
) -> Result<MessageView, Problem> {
    context
        .store
        .message(id)
        .await?
        .filter(|message| caller.sees(&message.phone_number_id))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                format!("no message with id or wamid {id:?}"),
            )
        })
}

/// A conversation the caller's key may see, or 404.
async fn visible_conversation(
    context: &Context,
    caller: &Caller,
    id: &str,
) -> Result<Conversation, Problem> {
    context
        .store
        .conversation(id)
        .await?
        .filter(|conversation| caller.sees(&conversation.phone_number_id))
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, format!("no conversation {id:?}")))
}

/// Filters of `GET /v1/conversations`.
#[derive(Debug, Deserialize)]
pub struct ConversationFilter {
    phone_number_id: Option<String>,
    wa_id: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

/// `GET /v1/conversations?phone_number_id=&wa_id=&cursor=&limit=`, most recent first.
/// A key limited to one number lists that number's; a key for several must name one.
pub async fn conversations(
    State(context): State<Context>,
    caller: Caller,
    filter: Result<Query<ConversationFilter>, QueryRejection>,
) -> Result<Json<Page<Conversation>>, Problem> {
    caller.require(Scope::Read)?;
    let filter = query(filter)?;
    let phone_number_id = match (filter.phone_number_id, caller.numbers()) {
        (Some(pnid), _) => {
            caller.require_for(Scope::Read, &pnid)?;
            Some(pnid)
        }
        (None, None) => None,
        (None, Some([only])) => Some(only.clone()),
        (None, Some(_)) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "this API key acts for several numbers: name one with phone_number_id",
            )
            .with_field("phone_number_id"))
        }
    };
    let query = ConversationQuery {
        phone_number_id,
        wa_id: filter.wa_id.map(|w| zapfn_whatsapp::wa_id(&w)),
        page: filter.paging.request()?,
    };
    Ok(Json(context.store.conversations(query).await?))
}

/// `GET /v1/conversations/{id}`.
pub async fn conversation(
    State(context): State<Context>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, Problem> {
    caller.require(Scope::Read)?;
    visible_conversation(&context, &caller, &id).await.map(Json)
}

/// `GET /v1/conversations/{id}/messages`, newest first.
pub async fn conversation_messages(
    State(context): State<Context>,
    caller: Caller,
    Path(id): Path<String>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<Page<MessageView>>, Problem> {
    caller.require(Scope::Read)?;
    let paging = query(paging)?;
    visible_conversation(&context, &caller, &id).await?;
    Ok(Json(
        context
            .store
            .conversation_messages(&id, paging.request()?)
            .await?,
    ))
}
