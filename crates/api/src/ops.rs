//! `/health` (the process answers) and `/ready` (the database answers and the
//! indexer is not too far behind; Redis is reported, but only degrades: the
//! API answers from Postgres without it).

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::{AppState, Shared};

/// `GET /health`: 200 while the process runs.
#[utoipa::path(get, operation_id = "ops_health", path = "/health", tag = "ops", responses((status = 200, description = "The process runs", body = crate::openapi::ChecksReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn health() -> Json<Value> {
    Json(json!({ "success": true, "data": { "status": "ok" } }))
}

/// `GET /ready`: 200 when the database answers and the newest indexed block is
/// recent enough, else 503 saying which check failed.
#[utoipa::path(get, operation_id = "ops_ready", path = "/ready", tag = "ops", responses((status = 200, description = "Ready (Redis is reported, never fatal)", body = crate::openapi::ChecksReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn ready(State(state): State<Shared>) -> (StatusCode, Json<Value>) {
    let (database, lag_seconds, lag_blocks, measured) = indexer_lag(&state).await;
    let indexer_ok = lag_seconds.is_some_and(|lag| lag <= state.max_lag.as_secs_f64());
    let redis = match &state.cache {
        Some(cache) => match cache.ping_redis().await {
            Some(true) => "ok",
            Some(false) => "unreachable (serving from Postgres)",
            None => "not configured",
        },
        None => "not configured",
    };
    let ready = database && indexer_ok;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let checks = json!({
        "database": if database { "ok" } else { "unreachable" },
        "indexer": match lag_seconds {
            Some(_) if indexer_ok => "ok",
            Some(_) => "lagging",
            None => "no checkpoint",
        },
        "indexer_lag_seconds": lag_seconds,
        "indexer_lag_blocks": lag_blocks,
        "lag_measured_against": measured,
        "redis": redis,
        "cache_version": state.cache.as_ref().and_then(crate::cache::Cache::version),
    });
    if ready {
        (status, Json(json!({ "success": true, "data": checks })))
    } else {
        (
            status,
            Json(json!({
                "success": false,
                "error": { "code": "SERVICE_UNAVAILABLE", "message": "not ready", "details": checks },
            })),
        )
    }
}

/// Whether the database answered, and how far the indexer is behind: against
/// the chain head when `RPC_URL` is configured (seconds between the head's and
/// the checkpoint's block times, and blocks), else the time since the indexer
/// last committed (an idle chain then looks like lag).
async fn indexer_lag(state: &AppState) -> (bool, Option<f64>, Option<i64>, &'static str) {
    use alloy::providers::Provider;
    let checkpoint: Result<Option<(i64, Option<f64>, f64)>, sqlx::Error> = sqlx::query_as(
        "SELECT c.block_number, extract(epoch FROM b.timestamp)::float8,
                extract(epoch FROM now() - c.updated_at)::float8
           FROM chain.checkpoints c
           LEFT JOIN chain.blocks b ON b.chain_id = c.chain_id AND b.number = c.block_number
          WHERE c.chain_id = $1",
    )
    .bind(i64::try_from(state.auth.chain_id).unwrap_or(i64::MAX))
    .fetch_optional(&state.pool)
    .await;
    let Ok(checkpoint) = checkpoint else { return (false, None, None, "none") };
    let Some((block, block_time, since_commit)) = checkpoint else { return (true, None, None, "none") };
    if let Some(chain) = &state.chain {
        let head = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            chain.provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest),
        )
        .await;
        if let (Ok(Ok(Some(head))), Some(block_time)) = (head, block_time) {
            let number = i64::try_from(head.header.number).unwrap_or(i64::MAX);
            #[allow(clippy::cast_precision_loss)]
            let seconds = (head.header.timestamp as f64 - block_time).max(0.0);
            return (true, Some(seconds), Some((number - block).max(0)), "chain head");
        }
    }
    (true, Some(since_commit), None, "last commit")
}
