//! `/api/analytics/overview`: the platform's totals, from the tables the
//! indexer keeps current (no scan of swaps).

use alloy_primitives::U256;
use animoca_domain::format_units;
use axum::{Json, extract::State};
use serde_json::{Value, json};
use sqlx::Row;

use crate::{AppState, error::ApiError};

/// `GET /api/analytics/overview`: markets (by type), TVL (Σ pool USDC reserves),
/// 24h volume, trades and distinct traders, total stake.
pub async fn overview(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM derived.markets),
                (SELECT count(*) FROM derived.markets WHERE market_type = 0),
                (SELECT count(*) FROM derived.markets WHERE market_type = 1),
                (SELECT coalesce(sum(usdc_reserves), 0)::text FROM derived.pools),
                (SELECT coalesce(sum(volume_24h), 0)::text FROM derived.market_stats),
                (SELECT coalesce(sum(trades_24h), 0)::bigint FROM derived.market_stats),
                (SELECT count(DISTINCT trader) FROM derived.market_window_traders),
                (SELECT coalesce(sum(current_stake), 0)::text FROM derived.stakes)",
    )
    .fetch_one(&state.pool)
    .await?;
    let usdc = |i: usize| -> Result<String, ApiError> {
        let text: String = row.try_get(i)?;
        let value: U256 = text.parse().map_err(|_| ApiError::Internal(format!("stored sum {text:?}")))?;
        Ok(format_units(value, 6))
    };
    Ok(Json(json!({
        "success": true,
        "data": {
            "total_markets": row.try_get::<i64, _>(0)?,
            "credential_markets": row.try_get::<i64, _>(1)?,
            "persona_markets": row.try_get::<i64, _>(2)?,
            "tvl": usdc(3)?,
            "volume_24h": usdc(4)?,
            "trades_24h": row.try_get::<i64, _>(5)?,
            "traders_24h": row.try_get::<i64, _>(6)?,
            "total_staked": usdc(7)?,
        },
    })))
}
