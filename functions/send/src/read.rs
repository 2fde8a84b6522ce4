//! The read API: messages by zapfn id or wamid, conversations, a conversation's messages.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use zapfn_runtime::{Context, Problem};
use zapfn_store::{Conversation, ConversationQuery, MessageView, Page, PageRequest};

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
    Path(id): Path<String>,
) -> Result<Json<MessageView>, Problem> {
    context.store.message(&id).await?.map(Json).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            format!("no message with id or wamid {id:?}"),
        )
    })
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
pub async fn conversations(
    State(context): State<Context>,
    filter: Result<Query<ConversationFilter>, QueryRejection>,
) -> Result<Json<Page<Conversation>>, Problem> {
    let filter = query(filter)?;
    let query = ConversationQuery {
        phone_number_id: filter.phone_number_id,
        wa_id: filter.wa_id.map(|w| zapfn_whatsapp::wa_id(&w)),
        page: filter.paging.request()?,
    };
    Ok(Json(context.store.conversations(query).await?))
}

/// `GET /v1/conversations/{id}`.
pub async fn conversation(
    State(context): State<Context>,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, Problem> {
    context
        .store
        .conversation(&id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, format!("no conversation {id:?}")))
}

/// `GET /v1/conversations/{id}/messages`, newest first.
pub async fn conversation_messages(
    State(context): State<Context>,
    Path(id): Path<String>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<Page<MessageView>>, Problem> {
    let paging = query(paging)?;
    if context.store.conversation(&id).await?.is_none() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("no conversation {id:?}"),
        ));
    }
    Ok(Json(
        context
            .store
            .conversation_messages(&id, paging.request()?)
            .await?,
    ))
}
