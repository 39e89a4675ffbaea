//! Reputation reads (`GET /api/users/{address}/reputation`,
//! `GET /api/{kind}/{id}/reputation`): the score the job workers computed
//! (0-1000), its components (the formula in `docs/jobs.md`) and its history
//! for charts, oldest first.

use axum::{
    Json,
    extract::{RawQuery, State},
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::{
    Shared,
    error::ApiError,
    format,
    params::{self, MarketPath, Params, Segments},
    reply,
};

/// The history and newest components of `subject` (of `kind`), merged into `head`.
async fn with_history(
    db: &mut sqlx::PgConnection,
    kind: &str,
    subject: &[u8],
    limit: i64,
    mut head: Map<String, Value>,
) -> Result<Json<Value>, ApiError> {
    let history: Vec<(DateTime<Utc>, i32, Value)> = sqlx::query_as(
        "SELECT computed_at, score, components FROM app.reputation_history
          WHERE kind = $1 AND subject = $2 ORDER BY computed_at DESC LIMIT $3",
    )
    .bind(kind)
    .bind(subject)
    .bind(limit)
    .fetch_all(&mut *db)
    .await?;
    head.insert("components".to_owned(), history.first().map(|h| h.2.clone()).unwrap_or(Value::Null));
    let points: Vec<Value> = history
        .iter()
        .rev()
        .map(|(at, score, _)| json!({ "computed_at": format::time(*at), "score": score }))
        .collect();
    head.insert("history".to_owned(), Value::Array(points));
    Ok(reply::data(Value::Object(head)))
}

/// `GET /api/users/{address}/reputation`: `limit` newest history points
/// (default 100, at most 1000). 404 before the first computation.
#[utoipa::path(get, operation_id = "users_reputation", path = "/api/users/{address}/reputation", tag = "users", params(("address" = String, Path, description = "0x + 40 hex digits"), ("limit" = Option<i64>, Query, description = "History points, 1-1000, default 100")), responses((status = 200, description = "OK", body = crate::openapi::ReputationReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn user(
    State(state): State<Shared>,
    Segments(who): Segments<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let who = params::address("address", &who)?;
    let limit = Params::parse(query.as_deref()).limit(100, 1000)?;
    let mut db = crate::read_tx(&state).await?;
    let current: Option<(i32, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT reputation_score, reputation_at FROM app.users WHERE address = $1")
            .bind(who.as_slice())
            .fetch_optional(&mut *db)
            .await?;
    let Some((score, Some(computed_at))) = current else {
        return Err(ApiError::NotFound("reputation of this address (not computed yet)".to_owned()));
    };
    let mut head = Map::new();
    head.insert("address".to_owned(), json!(format!("{who:#x}")));
    head.insert("score".to_owned(), json!(score));
    head.insert("computed_at".to_owned(), json!(format::time(computed_at)));
    with_history(&mut db, "user", who.as_slice(), limit, head).await
}

/// `GET /api/{kind}/{id}/reputation`: the market's score, components and
/// history (`limit` as for users). 404 before the first computation.
#[utoipa::path(get, operation_id = "markets_reputation", path = "/api/{kind}/{id}/reputation", tag = "markets", params(("kind" = crate::openapi::MarketKind, Path, description = "credentials or personas"), ("id" = String, Path, description = "The market id, 0x + 64 hex digits"), ("limit" = Option<i64>, Query, description = "History points, 1-1000, default 100")), responses((status = 200, description = "OK", body = crate::openapi::MarketReputationReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn market(
    State(state): State<Shared>,
    MarketPath { market_type, id }: MarketPath,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let limit = Params::parse(query.as_deref()).limit(100, 1000)?;
    let mut db = crate::read_tx(&state).await?;
    let current: Option<(Option<i32>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT reputation_score, reputation_at FROM app.market_metadata WHERE market_type = $1 AND market_id = $2",
    )
    .bind(i16::from(market_type.as_u8()))
    .bind(id.as_slice())
    .fetch_optional(&mut *db)
    .await?;
    let Some((Some(score), Some(computed_at))) = current else {
        return Err(ApiError::NotFound("reputation of this market (not computed yet)".to_owned()));
    };
    let kind = market_type.as_str();
    let mut head = Map::new();
    head.insert("market_type".to_owned(), json!(kind));
    head.insert("market_id".to_owned(), json!(format!("{id:#x}")));
    head.insert("score".to_owned(), json!(score));
    head.insert("computed_at".to_owned(), json!(format::time(computed_at)));
    with_history(&mut db, kind, id.as_slice(), limit, head).await
}
