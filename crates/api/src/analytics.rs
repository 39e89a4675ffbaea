//! `/api/analytics/…`: the platform's totals (`overview`), the most traded
//! markets (`trending`) and the best traders (`leaderboard`), from the tables
//! the indexer keeps current (no scan of swaps).

use alloy_primitives::{I256, U256};
use animoca_domain::{MarketType, format_units};
use axum::{
    Json,
    extract::{RawQuery, State},
};
use serde_json::{Value, json};
use sqlx::Row;

use crate::{
    Shared,
    error::ApiError,
    format,
    markets::{MARKET_COLUMNS, MARKET_JOINS, market_json},
    params::Params,
    reply,
};

/// `GET /api/analytics/overview`: markets (by type), TVL (Σ pool USDC reserves),
/// 24h volume, trades and distinct traders, total stake.
#[utoipa::path(get, operation_id = "analytics_overview", path = "/api/analytics/overview", tag = "analytics", responses((status = 200, description = "OK", body = crate::openapi::OverviewReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn overview(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    let mut tx = crate::read_tx(&state).await?;
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
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let usdc = |i: usize| -> Result<String, ApiError> {
        let text: String = row.try_get(i)?;
        let value: U256 = text.parse().map_err(|_| ApiError::Internal(format!("stored sum {text:?}")))?;
        Ok(format_units(value, 6))
    };
    Ok(reply::data(json!({
        "total_markets": row.try_get::<i64, _>(0)?,
        "credential_markets": row.try_get::<i64, _>(1)?,
        "persona_markets": row.try_get::<i64, _>(2)?,
        "tvl": usdc(3)?,
        "volume_24h": usdc(4)?,
        "trades_24h": row.try_get::<i64, _>(5)?,
        "traders_24h": row.try_get::<i64, _>(6)?,
        "total_staked": usdc(7)?,
    })))
}

/// `GET /api/analytics/trending`: markets with trades in the 24h window, most
/// traded first (then by volume); `type=credential|persona`, `status` (default
/// verified, as the market lists), `limit`, `offset`.
#[utoipa::path(get, operation_id = "analytics_trending", path = "/api/analytics/trending", tag = "analytics", params(("type" = Option<String>, Query, description = "credential or persona"), ("status" = Option<String>, Query, description = "pending, verified, rejected or all (default verified)"), ("limit" = Option<i64>, Query, description = "1-100, default 50"), ("offset" = Option<i64>, Query, description = "Items to skip")), responses((status = 200, description = "Markets traded in the last 24 h, most traded first", body = crate::openapi::MarketList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn trending(State(state): State<Shared>, RawQuery(query): RawQuery) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query.as_deref());
    let limit = params.limit(50, 100)?;
    let offset = params.offset()?;
    let status = match params.choice("status", &["pending", "verified", "rejected", "all"])? {
        None => Some("verified"),
        Some("all") => None,
        other => other,
    };
    let market_type = params
        .choice("type", &["credential", "persona"])?
        .map(|t| t.parse::<MarketType>().map(|m| i16::from(m.as_u8())))
        .transpose()
        .map_err(|_| ApiError::bad("type", "not a market type"))?;
    let sql = format!(
        "SELECT {MARKET_COLUMNS} {MARKET_JOINS}
          WHERE coalesce(s.trades_24h, 0) > 0 AND ($1::smallint IS NULL OR m.market_type = $1)
            AND ($2::text IS NULL OR coalesce(md.verification_status, 'pending') = $2)
          ORDER BY s.trades_24h DESC, s.volume_24h DESC, m.market_id LIMIT $3 OFFSET $4"
    );
    let mut tx = crate::read_tx(&state).await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(market_type)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let data = rows
        .iter()
        .map(|row| {
            let t = format::market_type(row.try_get("market_type")?)?;
            market_json(t, row)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(reply::page(data, json!({ "limit": limit, "offset": offset })))
}

/// `GET /api/analytics/leaderboard`: addresses ranked by `by=realized_pnl`
/// (default: realized PnL over every market, USDC) or `by=reputation`; `limit`,
/// `offset`. AMMs are not traders.
#[utoipa::path(get, operation_id = "analytics_leaderboard", path = "/api/analytics/leaderboard", tag = "analytics", params(("by" = Option<String>, Query, description = "realized_pnl (default) or reputation"), ("limit" = Option<i64>, Query, description = "1-100, default 50"), ("offset" = Option<i64>, Query, description = "Items to skip")), responses((status = 200, description = "OK", body = crate::openapi::LeaderboardList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn leaderboard(State(state): State<Shared>, RawQuery(query): RawQuery) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query.as_deref());
    let limit = params.limit(50, 100)?;
    let offset = params.offset()?;
    let by = params.choice("by", &["realized_pnl", "reputation"])?.unwrap_or("realized_pnl");
    let data = if by == "reputation" {
        let mut tx = crate::read_tx(&state).await?;
        let rows = sqlx::query(
            "SELECT address, reputation_score, username FROM app.users
              ORDER BY reputation_score DESC, address LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(json!({
                    "rank": offset + i64::try_from(i).unwrap_or(0) + 1,
                    "address": format::hex(&r.try_get::<Vec<u8>, _>(0)?),
                    "reputation_score": r.try_get::<i32, _>(1)?,
                    "username": r.try_get::<Option<String>, _>(2)?,
                }))
            })
            .collect::<Result<Vec<_>, ApiError>>()?
    } else {
        let mut tx = crate::read_tx(&state).await?;
        let rows = sqlx::query(
            "SELECT b.holder, sum(b.realized_pnl)::text, count(*)
               FROM derived.balances b
              WHERE b.holder NOT IN (SELECT DISTINCT amm_address FROM derived.markets)
              GROUP BY b.holder ORDER BY sum(b.realized_pnl) DESC, b.holder LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let text: String = r.try_get(1)?;
                let pnl: I256 = text.parse().map_err(|_| ApiError::Internal(format!("stored sum {text:?}")))?;
                Ok(json!({
                    "rank": offset + i64::try_from(i).unwrap_or(0) + 1,
                    "address": format::hex(&r.try_get::<Vec<u8>, _>(0)?),
                    "realized_pnl": format::signed_usdc(pnl),
                    "markets": r.try_get::<i64, _>(2)?,
                }))
            })
            .collect::<Result<Vec<_>, ApiError>>()?
    };
    Ok(reply::page(data, json!({ "limit": limit, "offset": offset })))
}
