//! A user's own notifications (`/api/users/{address}/notifications`): only the
//! signed-in address reads or marks its notifications (403 for anyone else).
//! The jobs write them (`app.notifications`); Socket.IO pushes them live.

use alloy_primitives::Address;
use axum::{
    Json,
    extract::{RawQuery, State},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use crate::{
    Shared,
    auth::SignedIn,
    error::ApiError,
    format,
    params::{self, Params, Segments},
    reply,
};

pub(crate) fn own(path: &str, me: Address) -> Result<Address, ApiError> {
    let who = params::address("address", path)?;
    if who != me {
        return Err(ApiError::Forbidden(format!("notifications of {who:#x} are theirs only; you are {me:#x}")));
    }
    Ok(who)
}

/// `GET /api/users/{address}/notifications` (self only): newest first;
/// `unread=true`, `limit`, `cursor` (the previous page's `next_cursor`).
/// `pagination.unread` counts every unread notification.
#[utoipa::path(get, operation_id = "notifications_list", path = "/api/users/{address}/notifications", tag = "users", params(("address" = String, Path, description = "0x + 40 hex digits"), ("unread" = Option<String>, Query, description = "true: unread only"), ("limit" = Option<i64>, Query, description = "1-100, default 50"), ("cursor" = Option<String>, Query, description = "The previous page's next_cursor")), security(("bearer" = [])), responses((status = 200, description = "OK", body = crate::openapi::NotificationList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn list(
    State(state): State<Shared>,
    Segments(address): Segments<String>,
    SignedIn(me): SignedIn,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let who = own(&address, me)?;
    let params = Params::parse(query.as_deref());
    let limit = params.limit(50, 100)?;
    let unread_only = params.bool("unread", false)?;
    let before = params.int("cursor", 1..=i64::MAX, i64::MAX)?;
    let mut tx = crate::read_tx_on(&state.pool) /* personal, marked read here: the primary */
        .await?;
    let rows = sqlx::query(
        "SELECT id, kind, title, body, data, read_at, created_at FROM app.notifications
          WHERE address = $1 AND id < $2 AND (NOT $3 OR read_at IS NULL)
          ORDER BY id DESC LIMIT $4",
    )
    .bind(who.as_slice())
    .bind(before)
    .bind(unread_only)
    .bind(limit + 1)
    .fetch_all(&mut *tx)
    .await?;
    let unread: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app.notifications WHERE address = $1 AND read_at IS NULL")
            .bind(who.as_slice())
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    let mut items = Vec::with_capacity(rows.len());
    let mut last_id = None;
    for row in rows.iter().take(usize::try_from(limit).unwrap_or(usize::MAX)) {
        let id: i64 = row.try_get("id")?;
        last_id = Some(id);
        let read_at: Option<DateTime<Utc>> = row.try_get("read_at")?;
        items.push(json!({
            "id": id.to_string(),
            "kind": row.try_get::<String, _>("kind")?,
            "title": row.try_get::<String, _>("title")?,
            "body": row.try_get::<String, _>("body")?,
            "data": row.try_get::<Value, _>("data")?,
            "read": read_at.is_some(),
            "read_at": read_at.map(format::time),
            "created_at": format::time(row.try_get("created_at")?),
        }));
    }
    let next_cursor = if more { last_id.map(|id| id.to_string()) } else { None };
    Ok(reply::page(items, json!({ "limit": limit, "next_cursor": next_cursor, "unread": unread })))
}

/// The body of `POST /api/users/{address}/notifications/read`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The notifications to mark (absent: every unread one).
    ids: Option<Vec<String>>,
}

/// `POST /api/users/{address}/notifications/read` (self only): marks the given
/// notifications (or all) read; answers how many changed.
#[utoipa::path(post, operation_id = "notifications_mark_read", path = "/api/users/{address}/notifications/read", tag = "users", params(("address" = String, Path, description = "0x + 40 hex digits")), request_body = crate::notifications::MarkRead, security(("bearer" = [])), responses((status = 200, description = "OK", body = crate::openapi::UpdatedReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn mark_read(
    State(state): State<Shared>,
    Segments(address): Segments<String>,
    SignedIn(me): SignedIn,
    crate::params::RawBody(body): crate::params::RawBody,
) -> Result<Json<Value>, ApiError> {
    let who = own(&address, me)?;
    let body: MarkRead = if body.is_empty() { MarkRead { ids: None } } else { params::json_body(&body)? };
    let ids =
        body.ids
            .map(|ids| {
                if ids.len() > 500 {
                    return Err(ApiError::bad("ids", "at most 500 ids"));
                }
                ids.iter()
                    .enumerate()
                    .map(|(i, id)| {
                        id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                            ApiError::bad(&format!("ids[{i}]"), format!("{id:?} is not a notification id"))
                        })
                    })
                    .collect::<Result<Vec<i64>, ApiError>>()
            })
            .transpose()?;
    let updated = sqlx::query(
        "UPDATE app.notifications SET read_at = now()
          WHERE address = $1 AND read_at IS NULL AND ($2::bigint[] IS NULL OR id = ANY($2))",
    )
    .bind(who.as_slice())
    .bind(ids)
    .execute(&state.pool)
    .await?
    .rows_affected();
    Ok(reply::data(json!({ "updated": updated })))
}
