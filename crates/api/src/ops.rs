//! `/health` (the process answers) and `/ready` (the database answers and the
//! indexer is not too far behind; Redis is reported, but only degrades: the
//! API answers from Postgres without it).

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::AppState;

/// `GET /health`: 200 while the process runs.
#[utoipa::path(get, operation_id = "ops_health", path = "/health", tag = "ops", responses((status = 200, description = "The process runs", body = crate::openapi::ChecksReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn health() -> Json<Value> {
    Json(json!({ "success": true, "data": { "status": "ok" } }))
}

/// `GET /ready`: 200 when the database answers and the newest indexed block is
/// recent enough, else 503 saying which check failed.
#[utoipa::path(get, operation_id = "ops_ready", path = "/ready", tag = "ops", responses((status = 200, description = "Ready (Redis is reported, never fatal)", body = crate::openapi::ChecksReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let lag: Result<Option<f64>, sqlx::Error> =
        sqlx::query_scalar("SELECT extract(epoch FROM now() - max(updated_at))::float8 FROM chain.checkpoints")
            .fetch_one(&state.pool)
            .await;
    let (database, lag_seconds) = match lag {
        Ok(lag) => (true, lag),
        Err(_) => (false, None),
    };
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
