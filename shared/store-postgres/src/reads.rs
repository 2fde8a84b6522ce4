//! The reads the API serves: messages with their status history, conversations
//! and keyset-paginated lists (cursor `{timestamp}:{id}`, as the SQLite store's).

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use zapfn_store::{
    Conversation, ConversationQuery, MessageView, Page, PageRequest, StatusEntry, StoreError,
};

use crate::db::{json, query, query_opt, utf8, DbResult};

const MESSAGE_COLUMNS: &str =
    "id, wa_message_id, phone_number_id, conversation_id, direction, type,
     from_id, to_id, text, media::text, context::text, status, errors::text, raw, timestamp";

fn message_row(row: &Row) -> DbResult<MessageView> {
    Ok(MessageView {
        id: row.get(0),
        wamid: row.get(1),
        phone_number_id: row.get(2),
        conversation_id: row.get(3),
        direction: row.get(4),
        message_type: row.get(5),
        from: row.get(6),
        to: row.get(7),
        text: utf8(row.get(8)),
        media: json(row.get(9))?,
        context: json(row.get(10))?,
        status: row.get(11),
        errors: json(row.get(12))?,
        raw: json(row.get(13))?,
        timestamp: row.get(14),
        status_history: Vec::new(),
    })
}

/// A message by zapfn id or wamid, with its history.
pub(crate) async fn message(db: &impl GenericClient, key: &str) -> DbResult<Option<MessageView>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1
         UNION ALL SELECT {MESSAGE_COLUMNS} FROM messages WHERE wa_message_id = $1 LIMIT 1"
    );
    let Some(row) = query_opt(db, &sql, &[&key]).await? else {
        return Ok(None);
    };
    let mut messages = vec![message_row(&row)?];
    add_histories(db, &mut messages).await?;
    Ok(messages.pop())
}

/// Fills in the status history of each message (by its id and its wamid) in one query.
async fn add_histories(db: &impl GenericClient, messages: &mut [MessageView]) -> DbResult<()> {
    let subjects: Vec<&str> = messages
        .iter()
        .flat_map(|m| std::iter::once(m.id.as_str()).chain(m.wamid.as_deref()))
        .collect();
    if subjects.is_empty() {
        return Ok(());
    }
    let rows = query(
        db,
        "SELECT subject, status, timestamp, errors::text, participant FROM status_events
         WHERE subject = ANY($1)",
        &[&subjects],
    )
    .await?;
    let mut by_subject: HashMap<String, Vec<StatusEntry>> = HashMap::new();
    for row in rows {
        by_subject.entry(row.get(0)).or_default().push(StatusEntry {
            status: row.get(1),
            timestamp: row.get(2),
            errors: json(row.get(3))?,
            participant: Some(row.get::<_, String>(4)).filter(|p| !p.is_empty()),
        });
    }
    for message in messages {
        let mut entries = by_subject.remove(&message.id).unwrap_or_default();
        if let Some(wamid) = &message.wamid {
            entries.extend(by_subject.remove(wamid).unwrap_or_default());
        }
        entries.sort_by_key(|entry| {
            (
                entry.timestamp,
                zapfn_whatsapp::status::rank(&entry.status).unwrap_or(i64::MAX),
            )
        });
        message.status_history = entries;
    }
    Ok(())
}

const CONVERSATION_COLUMNS: &str =
    "id, phone_number_id, wa_id, contact_name, last_inbound_at, last_message_at";

fn conversation_row(row: &Row) -> Conversation {
    Conversation {
        id: row.get(0),
        phone_number_id: row.get(1),
        wa_id: row.get(2),
        contact_name: utf8(row.get(3)),
        last_inbound_at: row.get(4),
        last_message_at: row.get(5),
    }
}

/// Splits a `{timestamp}:{id}` cursor; none starts before everything.
fn parse_cursor(cursor: Option<&str>) -> DbResult<(i64, String)> {
    match cursor {
        None => Ok((i64::MAX, String::new())),
        Some(cursor) => cursor
            .split_once(':')
            .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
            .ok_or_else(|| {
                StoreError::Invalid(format!("cursor {cursor:?} is not one this API gave out"))
                    .into()
            }),
    }
}

/// Trims the extra row fetched to learn whether another page exists.
fn page<T>(mut items: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor_of)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// Conversations, most recent first. One statement per filter combination, so
/// each uses its own index.
pub(crate) async fn conversations(
    db: &impl GenericClient,
    request: &ConversationQuery,
) -> DbResult<Page<Conversation>> {
    let (before_at, before_id) = parse_cursor(request.page.cursor.as_deref())?;
    let limit = request.page.limit.clamp(1, 500);
    let fetch = limit as i64 + 1;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&before_at, &before_id, &fetch];
    let mut filters = String::new();
    if let Some(phone_number_id) = &request.phone_number_id {
        params.push(phone_number_id);
        filters.push_str(&format!(" AND phone_number_id = ${}", params.len()));
    }
    if let Some(wa_id) = &request.wa_id {
        params.push(wa_id);
        filters.push_str(&format!(" AND wa_id = ${}", params.len()));
    }
    let sql = format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations
         WHERE (last_message_at, id) < ($1, $2){filters}
         ORDER BY last_message_at DESC, id DESC LIMIT $3"
    );
    let items = query(db, &sql, &params)
        .await?
        .iter()
        .map(conversation_row)
        .collect();
    Ok(page(items, limit, |c| {
        format!("{}:{}", c.last_message_at, c.id)
    }))
}

pub(crate) async fn conversation(
    db: &impl GenericClient,
    id: &str,
) -> DbResult<Option<Conversation>> {
    let sql = format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1");
    Ok(query_opt(db, &sql, &[&id])
        .await?
        .as_ref()
        .map(conversation_row))
}

/// A conversation's messages, newest first, with their histories.
pub(crate) async fn conversation_messages(
    db: &impl GenericClient,
    conversation_id: &str,
    request: &PageRequest,
) -> DbResult<Page<MessageView>> {
    let (before_at, before_id) = parse_cursor(request.cursor.as_deref())?;
    let limit = request.limit.clamp(1, 500);
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE conversation_id = $1 AND (timestamp, id) < ($2, $3)
         ORDER BY timestamp DESC, id DESC LIMIT $4"
    );
    let rows = query(
        db,
        &sql,
        &[
            &conversation_id,
            &before_at,
            &before_id,
            &(limit as i64 + 1),
        ],
    )
    .await?;
    let items = rows.iter().map(message_row).collect::<DbResult<Vec<_>>>()?;
    let mut page = page(items, limit, |m| format!("{}:{}", m.timestamp, m.id));
    add_histories(db, &mut page.items).await?;
    Ok(page)
}

/// When the customer last wrote (the 24-hour window), by any spelling of their number.
pub(crate) async fn last_inbound_at(
    db: &impl GenericClient,
    phone_number_id: &str,
    wa_id: &str,
) -> DbResult<Option<i64>> {
    let row = query_opt(
        db,
        "SELECT last_inbound_at FROM conversations WHERE phone_number_id = $1 AND wa_id = $2",
        &[&phone_number_id, &zapfn_whatsapp::wa_id(wa_id)],
    )
    .await?;
    Ok(row.and_then(|row| row.get(0)))
}
