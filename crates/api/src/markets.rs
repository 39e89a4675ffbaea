//! Market routes, the same for both types (`/api/credentials…`, `/api/personas…`):
//! list, detail, pool, chart, trades, holders. Everything the list sorts on is
//! kept current at index time (`derived.market_stats`), never summed per request.

use alloy_primitives::B256;
use animoca_domain::{MarketType, Timeframe};
use axum::{
    Json,
    extract::{RawQuery, State},
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, Row, postgres::PgRow};

use crate::{
    Shared,
    error::ApiError,
    format,
    params::{MarketPath, Params, Segments, market_kind},
    reply,
};

/// The columns of a market as lists and details show it.
pub(crate) const MARKET_COLUMNS: &str = "
    m.market_type, m.market_id, m.token_address, m.token_name, m.token_symbol, m.creator_address, m.created_at,
    coalesce(md.verification_status, 'pending') AS verification_status, md.reputation_score,
    coalesce(s.price, p.price, 0)::text AS price, coalesce(s.price_change_24h, 0) AS price_change_24h,
    coalesce(s.volume_24h, 0)::text AS volume_24h, coalesce(s.trades_24h, 0) AS trades_24h,
    coalesce(s.traders_24h, 0) AS traders_24h, m.holder_count, coalesce(s.market_cap, 0)::text AS market_cap,
    coalesce(st.current_stake, 0)::text AS total_staked,
    md.display_name, md.category, md.description, md.image_url, md.website_url";

pub(crate) const MARKET_JOINS: &str = "
      FROM derived.markets m
      LEFT JOIN derived.market_stats s USING (market_type, market_id)
      LEFT JOIN derived.pools p USING (market_type, market_id)
      LEFT JOIN derived.stakes st USING (market_type, market_id)
      LEFT JOIN app.market_metadata md USING (market_type, market_id)";

/// `GET /api/{credentials|personas}`: `sortBy`, `search`, `status`, `type`, `limit`, `offset`.
#[utoipa::path(get, operation_id = "markets_list", path = "/api/{kind}", tag = "markets", params(("kind" = crate::openapi::MarketKind, Path, description = "credentials or personas"), ("sortBy" = Option<String>, Query, description = "volume, holders, created, price or change (descending; default volume)"), ("search" = Option<String>, Query, description = "Substring of name or symbol"), ("status" = Option<String>, Query, description = "pending, verified, rejected or all (default verified)"), ("type" = Option<String>, Query, description = "Category"), ("limit" = Option<i64>, Query, description = "1-100, default 50"), ("offset" = Option<i64>, Query, description = "Items to skip")), responses((status = 200, description = "OK", body = crate::openapi::MarketList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn list(
    State(state): State<Shared>,
    Segments(kind): Segments<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let market_type = market_kind(&kind)?;
    let params = Params::parse(query.as_deref());
    let limit = params.limit(50, 100)?;
    let offset = params.offset()?;
    let order = match params.choice("sortBy", &["volume", "holders", "created", "price", "change"])? {
        None | Some("volume") => "coalesce(s.volume_24h, 0) DESC, m.market_id",
        Some("holders") => "m.holder_count DESC, m.market_id",
        Some("created") => "m.created_at DESC, m.market_id",
        Some("price") => "coalesce(s.price, p.price, 0) DESC, m.market_id",
        Some(_) => "coalesce(s.price_change_24h, 0) DESC, m.market_id",
    };
    let status = match params.choice("status", &["pending", "verified", "rejected", "all"])? {
        None => Some("verified"),
        Some("all") => None,
        other => other,
    };
    let search = params.text("search", 100)?.map(|s| {
        let escaped = s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        format!("%{escaped}%")
    });
    let category = params.text("type", 64)?;
    // The page's ids first (sorting needs only the stats), then every column for
    // those rows alone: numeric-to-text conversions and the other joins for one
    // page, not for every market of the type. The ORDER BY is one of the
    // constants above, never input.
    let filters = "m.market_type = $1
            AND ($2::text IS NULL OR coalesce(md.verification_status, 'pending') = $2)
            AND ($3::text IS NULL OR (lower(m.token_name) || ' ' || lower(m.token_symbol)) LIKE $3 ESCAPE '\\')
            AND ($4::text IS NULL OR md.category = $4)";
    let sql = format!(
        "WITH page AS (
            SELECT m.market_type, m.market_id
              FROM derived.markets m
              LEFT JOIN derived.market_stats s USING (market_type, market_id)
              LEFT JOIN derived.pools p USING (market_type, market_id)
              LEFT JOIN app.market_metadata md USING (market_type, market_id)
             WHERE {filters}
             ORDER BY {order} LIMIT $5 OFFSET $6)
         SELECT {MARKET_COLUMNS} {MARKET_JOINS} JOIN page USING (market_type, market_id) ORDER BY {order}"
    );
    let count = format!(
        "SELECT count(*) FROM derived.markets m LEFT JOIN app.market_metadata md USING (market_type, market_id)
          WHERE {filters}"
    );
    let mut tx = crate::read_tx(&state).await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i16::from(market_type.as_u8()))
        .bind(status)
        .bind(&search)
        .bind(category)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
        .bind(i16::from(market_type.as_u8()))
        .bind(status)
        .bind(&search)
        .bind(category)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    // Past the last page `total` is unknown to the page itself: null, as before.
    let total = (offset == 0 || !rows.is_empty()).then_some(total);
    let data = rows.iter().map(|row| market_json(market_type, row)).collect::<Result<Vec<_>, _>>()?;
    Ok(reply::page(data, json!({ "limit": limit, "offset": offset, "total": total })))
}

/// `GET /api/{kind}/{id}`: the market with its pool and 24h metrics; a persona
/// also with its linked credentials and social links.
#[utoipa::path(get, operation_id = "markets_detail", path = "/api/{kind}/{id}", tag = "markets", params(("kind" = crate::openapi::MarketKind, Path, description = "credentials or personas"), ("id" = String, Path, description = "The market id, 0x + 64 hex digits")), responses((status = 200, description = "The market with its pool; personas add linked credentials and social links", body = crate::openapi::MarketReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn detail(
    State(state): State<Shared>,
    MarketPath { market_type, id }: MarketPath,
) -> Result<Json<Value>, ApiError> {
    // One transaction: every table read from the same generation (a `rederive`
    // swap waits for it), and from one indexed state.
    let mut tx = crate::read_tx(&state).await?;
    let market = detail_json(&mut tx, market_type, id).await?;
    tx.commit().await?;
    Ok(reply::data(market))
}

/// A market as its detail route shows it (404 when not indexed).
pub(crate) async fn detail_json(conn: &mut PgConnection, market_type: MarketType, id: B256) -> Result<Value, ApiError> {
    let row = market_row(conn, market_type, id).await?;
    let mut market = market_json(market_type, &row)?;
    let pool = pool_json(conn, market_type, id).await?;
    if let Some(object) = market.as_object_mut() {
        object.insert("pool".to_owned(), pool.unwrap_or(Value::Null));
        if market_type == MarketType::Persona {
            object.insert("linked_credentials".to_owned(), linked_credentials(conn, id).await?);
            object.insert("social_links".to_owned(), social_links(conn, id).await?);
        }
    }
    Ok(market)
}

/// `GET /api/{kind}/{id}/pool`.
#[utoipa::path(get, operation_id = "markets_pool", path = "/api/{kind}/{id}/pool", tag = "markets", params(("kind" = crate::openapi::MarketKind, Path, description = "credentials or personas"), ("id" = String, Path, description = "The market id, 0x + 64 hex digits")), responses((status = 200, description = "OK", body = crate::openapi::PoolReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn pool(
    State(state): State<Shared>,
    MarketPath { market_type, id }: MarketPath,
) -> Result<Json<Value>, ApiError> {
    let mut tx = crate::read_tx(&state).await?;
    let pool = pool_json(&mut tx, market_type, id).await?.ok_or_else(|| not_found(market_type))?;
    tx.commit().await?;
    Ok(reply::data(pool))
}

/// `GET /api/{kind}/{id}/trades`: newest first; `limit`, `cursor` (from the
/// previous page's `next_cursor`).
#[utoipa::path(get, operation_id = "markets_trades", path = "/api/{kind}/{id}/trades", tag = "markets", params(("kind" = crate::openapi::MarketKind, Path, description = "credentials or personas"), ("id" = String, Path, description = "The market id, 0x + 64 hex digits"), ("limit" = Option<i64>, Query, description = "1-100, default 50"), ("cursor" = Option<String>, Query, description = "The previous page's next_cursor")), responses((status = 200, description = "OK", body = crate::openapi::TradeList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn trades(
    State(state): State<Shared>,
    MarketPath { market_type, id }: MarketPath,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query.as_deref());
    let limit = params.limit(50, 100)?;
    let cursor = params.get("cursor").map(parse_trade_cursor).transpose()?;
    let mut tx = crate::read_tx(&state).await?;
    ensure_market(&mut tx, market_type, id).await?;
    // No cursor: the newest page (no bound), not a made-up "end of time".
    let (ts, block, log) = cursor.map_or((None, None, None), |(t, b, l)| (Some(t as f64), Some(b), Some(l)));
    // Two statement texts, so each keeps its own plan: with a cursor the row
    // comparison is an index condition on swaps_market_time_idx; without one the
    // (always true) NULL checks only keep the parameter list the same.
    let after_cursor = if ts.is_some() {
        "(block_timestamp, block_number, log_index) < (to_timestamp($3), $4, $5)"
    } else {
        "$3::float8 IS NULL AND $4::bigint IS NULL AND $5::int IS NULL"
    };
    let sql = format!(
        "SELECT tx_hash, log_index, block_number, block_timestamp, trader, is_buy, token_amount::text,
                usdc_amount::text, fee_amount::text, price::text, extract(epoch FROM block_timestamp)::bigint
           FROM derived.swaps
          WHERE market_type = $1 AND market_id = $2
            AND {after_cursor}
          ORDER BY block_timestamp DESC, block_number DESC, log_index DESC
          LIMIT $6"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i16::from(market_type.as_u8()))
        .bind(id.as_slice())
        .bind(ts)
        .bind(block)
        .bind(log)
        .bind(limit + 1)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    let page = &rows[..rows.len().min(usize::try_from(limit).unwrap_or(usize::MAX))];
    let mut data = Vec::with_capacity(page.len());
    for row in page {
        let time: DateTime<Utc> = row.try_get(3)?;
        data.push(json!({
            "tx_hash": format::hex(&row.try_get::<Vec<u8>, _>(0)?),
            "log_index": row.try_get::<i32, _>(1)?,
            "block_number": row.try_get::<i64, _>(2)?,
            "block_timestamp": format::time(time),
            "trader_address": format::hex(&row.try_get::<Vec<u8>, _>(4)?),
            "swap_type": if row.try_get::<bool, _>(5)? { "buy" } else { "sell" },
            "token_amount": format::tokens(&row.try_get::<String, _>(6)?)?,
            "usdc_amount": format::usdc(&row.try_get::<String, _>(7)?)?,
            "fee_amount": format::usdc(&row.try_get::<String, _>(8)?)?,
            "price": format::price(&row.try_get::<String, _>(9)?)?,
        }));
    }
    let next_cursor = match (more, page.last()) {
        (true, Some(last)) => Some(format!(
            "{}.{}.{}",
            last.try_get::<i64, _>(10)?,
            last.try_get::<i64, _>(2)?,
            last.try_get::<i32, _>(1)?
        )),
        _ => None,
    };
    Ok(reply::page(data, json!({ "limit": limit, "next_cursor": next_cursor })))
}

/// `GET /api/{kind}/{id}/holders`: balance > 0, not the AMM, largest first; `limit`, `offset`.
#[utoipa::path(get, operation_id = "markets_holders", path = "/api/{kind}/{id}/holders", tag = "markets", params(("kind" = crate::openapi::MarketKind, Path, description = "credentials or personas"), ("id" = String, Path, description = "The market id, 0x + 64 hex digits"), ("limit" = Option<i64>, Query, description = "1-100, default 50"), ("offset" = Option<i64>, Query, description = "Items to skip")), responses((status = 200, description = "OK", body = crate::openapi::HolderList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn holders(
    State(state): State<Shared>,
    MarketPath { market_type, id }: MarketPath,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query.as_deref());
    let limit = params.limit(50, 100)?;
    let offset = params.offset()?;
    let mut tx = crate::read_tx(&state).await?;
    let row = market_row(&mut tx, market_type, id).await?;
    let rows = sqlx::query(
        "SELECT b.holder, b.balance::text
           FROM derived.balances b
          WHERE b.market_type = $1 AND b.market_id = $2 AND b.balance > 0
            AND b.holder NOT IN (SELECT DISTINCT amm_address FROM derived.markets)
          ORDER BY b.balance DESC, b.holder LIMIT $3 OFFSET $4",
    )
    .bind(i16::from(market_type.as_u8()))
    .bind(id.as_slice())
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let data = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "address": format::hex(&r.try_get::<Vec<u8>, _>(0)?),
                "balance": format::tokens(&r.try_get::<String, _>(1)?)?,
            }))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let total = row.try_get::<i32, _>("holder_count")?;
    Ok(reply::page(data, json!({ "limit": limit, "offset": offset, "total": total })))
}

/// `GET /api/{kind}/{id}/quote?side=buy|sell&amount=`: exactly what the AMM
/// would do at the current reserves (`amount` in USDC for a buy, fee included;
/// in tokens for a sell), with the fee, the prices before and after, and the
/// price impact (execution price against the spot price, fee excluded, percent).
#[utoipa::path(get, operation_id = "markets_quote", path = "/api/{kind}/{id}/quote", tag = "markets", params(("kind" = crate::openapi::MarketKind, Path, description = "credentials or personas"), ("id" = String, Path, description = "The market id, 0x + 64 hex digits"), ("side" = String, Query, description = "buy or sell"), ("amount" = String, Query, description = "USDC in for a buy (fee included), tokens in for a sell")), responses((status = 200, description = "OK", body = crate::openapi::QuoteReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn quote(
    State(state): State<Shared>,
    MarketPath { market_type, id }: MarketPath,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    use animoca_domain::{
        Price,
        amm::{QuoteError, quote_buy, quote_sell},
    };
    let params = Params::parse(query.as_deref());
    let side =
        params.choice("side", &["buy", "sell"])?.ok_or_else(|| ApiError::bad("side", "required: buy or sell"))?;
    let amount_text = params.get("amount").ok_or_else(|| ApiError::bad("amount", "required"))?;
    let buy = side == "buy";
    let amount = format::parse_units("amount", amount_text, if buy { 6 } else { 18 })?;
    let mut tx = crate::read_tx(&state).await?;
    let row = sqlx::query(
        "SELECT token_reserves::text, usdc_reserves::text, fee_bps FROM derived.pools
          WHERE market_type = $1 AND market_id = $2",
    )
    .bind(i16::from(market_type.as_u8()))
    .bind(id.as_slice())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| not_found(market_type))?;
    tx.commit().await?;
    let reserve = |i: usize| -> Result<alloy_primitives::U256, ApiError> {
        let text: String = row.try_get(i)?;
        text.parse().map_err(|_| ApiError::Internal(format!("stored reserve {text:?} is not a uint256")))
    };
    let (tokens, usdc) = (reserve(0)?, reserve(1)?);
    let fee_bps = u32::try_from(row.try_get::<i32, _>(2)?).unwrap_or(0);
    let quoted = if buy { quote_buy(tokens, usdc, fee_bps, amount) } else { quote_sell(tokens, usdc, fee_bps, amount) };
    let q = quoted.map_err(|e: QuoteError| ApiError::bad("amount", e.to_string()))?;
    let before = Price::spot(usdc, tokens);
    let after = Price::spot(q.usdc_reserves_after, q.token_reserves_after);
    let traded_tokens = if buy { q.amount_out } else { amount };
    let execution = Price::of_trade(q.usdc_pool_delta, traded_tokens).unwrap_or(Price::ZERO);
    let (amount_in, amount_out) = if buy {
        (animoca_domain::format_units(amount, 6), animoca_domain::format_units(q.amount_out, 18))
    } else {
        (animoca_domain::format_units(amount, 18), animoca_domain::format_units(q.amount_out, 6))
    };
    Ok(reply::data(json!({
        "side": side,
        "amount_in": amount_in,
        "amount_out": amount_out,
        "fee": animoca_domain::format_units(q.fee, 6),
        "fee_bps": fee_bps,
        "price_before": before.to_decimal_string(),
        "price_after": after.to_decimal_string(),
        "execution_price": execution.to_decimal_string(),
        "price_impact": execution.change_percent_from(before).abs(),
        "token_reserves_after": animoca_domain::format_units(q.token_reserves_after, 18),
        "usdc_reserves_after": animoca_domain::format_units(q.usdc_reserves_after, 6),
    })))
}

/// `GET /api/{kind}/{id}/chart`: `timeFrame` (default 1h), `limit` (1–1000, default
/// 100), `from`, `to` (ISO-8601 or Unix seconds), `fill` (gap filling), per SPEC §5.
#[utoipa::path(get, operation_id = "markets_chart", path = "/api/{kind}/{id}/chart", tag = "markets", params(("kind" = crate::openapi::MarketKind, Path, description = "credentials or personas"), ("id" = String, Path, description = "The market id, 0x + 64 hex digits"), ("timeFrame" = Option<String>, Query, description = "1m, 5m, 15m, 1h, 4h, 1d or 1w (default 1h)"), ("limit" = Option<i64>, Query, description = "1-1000, default 100"), ("from" = Option<String>, Query, description = "ISO-8601 or Unix seconds"), ("to" = Option<String>, Query, description = "ISO-8601 or Unix seconds (default: the newest indexed block)"), ("fill" = Option<String>, Query, description = "true: empty buckets carry the previous close")), responses((status = 200, description = "OK", body = crate::openapi::CandleList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn chart(
    State(state): State<Shared>,
    MarketPath { market_type, id }: MarketPath,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query.as_deref());
    let timeframe = params.timeframe("timeFrame", Timeframe::H1)?;
    let limit = params.int("limit", 1..=1000, 100)?;
    let from = params.time("from")?;
    let to = params.time("to")?;
    let fill = params.bool("fill", false)?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::bad("from", "must not be after `to`"));
    }
    let mut tx = crate::read_tx(&state).await?;
    ensure_market(&mut tx, market_type, id).await?;
    let newest: Option<f64> = sqlx::query_scalar("SELECT extract(epoch FROM as_of)::float8 FROM derived.window_state")
        .fetch_optional(&mut *tx)
        .await?;
    #[allow(clippy::cast_possible_truncation)]
    let t = newest.map_or(0, |t| t as i64);
    let to = to.map_or(t, |to| to.min(t));
    let from = from.unwrap_or(i64::MIN / 2);
    let rows = sqlx::query(
        "SELECT extract(epoch FROM bucket_start)::bigint, open::text, high::text, low::text, close::text,
                volume_usdc::text, volume_token::text, trade_count, unique_traders
           FROM derived.candles
          WHERE market_type = $1 AND market_id = $2 AND timeframe = $3
            AND bucket_start >= to_timestamp($4) AND bucket_start <= to_timestamp($5)
          ORDER BY bucket_start DESC LIMIT $6",
    )
    .bind(i16::from(market_type.as_u8()))
    .bind(id.as_slice())
    .bind(timeframe.as_str())
    .bind(from.max(0) as f64)
    .bind(to as f64)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut candles = rows.iter().rev().map(Candle::from_row).collect::<Result<Vec<_>, _>>()?;
    if fill {
        candles = fill_gaps(&mut tx, market_type, id, timeframe, from, to, limit, candles).await?;
    }
    tx.commit().await?;
    let data: Vec<Value> = candles.iter().map(Candle::json).collect();
    Ok(reply::data(data))
}

/// One candle as served.
#[derive(Debug, Clone)]
struct Candle {
    start: i64,
    open: String,
    high: String,
    low: String,
    close: String,
    volume_usdc: String,
    volume_token: String,
    trade_count: i32,
    unique_traders: i32,
}

impl Candle {
    /// A candles row: bucket start (Unix seconds), open, high, low, close, volumes, counts.
    fn from_row(row: &PgRow) -> Result<Self, ApiError> {
        Ok(Candle {
            start: row.try_get(0)?,
            open: format::price(&row.try_get::<String, _>(1)?)?,
            high: format::price(&row.try_get::<String, _>(2)?)?,
            low: format::price(&row.try_get::<String, _>(3)?)?,
            close: format::price(&row.try_get::<String, _>(4)?)?,
            volume_usdc: format::usdc(&row.try_get::<String, _>(5)?)?,
            volume_token: format::tokens(&row.try_get::<String, _>(6)?)?,
            trade_count: row.try_get(7)?,
            unique_traders: row.try_get(8)?,
        })
    }

    /// An empty bucket carrying the previous close.
    fn empty(start: i64, close: &str) -> Self {
        Candle {
            start,
            open: close.to_owned(),
            high: close.to_owned(),
            low: close.to_owned(),
            close: close.to_owned(),
            volume_usdc: "0.000000".to_owned(),
            volume_token: "0.000000000000000000".to_owned(),
            trade_count: 0,
            unique_traders: 0,
        }
    }

    fn json(&self) -> Value {
        json!({
            "time": format::unix_time(self.start),
            "open": self.open, "high": self.high, "low": self.low, "close": self.close,
            "volume_usdc": self.volume_usdc, "volume_token": self.volume_token,
            "trade_count": self.trade_count, "unique_traders": self.unique_traders,
        })
    }
}

/// The gap-filled series (SPEC §5 "Charts"): every bucket from the market's first
/// trade to the bucket containing `to`, of which those starting in `[from, to]`,
/// the newest `limit`, oldest first. Empty buckets carry the previous close
/// (from a trade before `from` when the window starts with a gap).
#[allow(clippy::too_many_arguments)]
async fn fill_gaps(
    conn: &mut PgConnection,
    market_type: MarketType,
    id: B256,
    timeframe: Timeframe,
    from: i64,
    to: i64,
    limit: i64,
    found: Vec<Candle>,
) -> Result<Vec<Candle>, ApiError> {
    let first: Option<i64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM min(bucket_start))::bigint FROM derived.candles
          WHERE market_type = $1 AND market_id = $2 AND timeframe = $3",
    )
    .bind(i16::from(market_type.as_u8()))
    .bind(id.as_slice())
    .bind(timeframe.as_str())
    .fetch_one(&mut *conn)
    .await?;
    let Some(first) = first else { return Ok(Vec::new()) };
    let last = timeframe.bucket_start(to);
    if last < first {
        return Ok(Vec::new());
    }
    // Bucket starts from `last` back, newest first, at most `limit`, none before
    // `from` or the first trade's bucket.
    let step = timeframe.seconds();
    let lowest = first.max(from);
    let mut starts = Vec::new();
    let mut start = last;
    while start >= lowest && i64::try_from(starts.len()).unwrap_or(i64::MAX) < limit {
        starts.push(start);
        start -= step;
    }
    starts.reverse();
    let Some(&oldest) = starts.first() else { return Ok(Vec::new()) };
    // Candles between `oldest` and the oldest found (the found ones are the newest `limit` with trades).
    let mut by_start: std::collections::BTreeMap<i64, Candle> = found.into_iter().map(|c| (c.start, c)).collect();
    let missing_before = by_start.keys().next().copied().unwrap_or(last + 1);
    if oldest < missing_before {
        let rows = sqlx::query(
            "SELECT extract(epoch FROM bucket_start)::bigint, open::text, high::text, low::text, close::text,
                    volume_usdc::text, volume_token::text, trade_count, unique_traders
               FROM derived.candles
              WHERE market_type = $1 AND market_id = $2 AND timeframe = $3
                AND bucket_start >= to_timestamp($4) AND bucket_start < to_timestamp($5)",
        )
        .bind(i16::from(market_type.as_u8()))
        .bind(id.as_slice())
        .bind(timeframe.as_str())
        .bind(oldest as f64)
        .bind(missing_before as f64)
        .fetch_all(&mut *conn)
        .await?;
        for row in &rows {
            let candle = Candle::from_row(row)?;
            by_start.insert(candle.start, candle);
        }
    }
    // The close before the oldest bucket, for a leading gap.
    let previous_close: Option<String> = sqlx::query_scalar(
        "SELECT close::text FROM derived.candles
          WHERE market_type = $1 AND market_id = $2 AND timeframe = $3 AND bucket_start < to_timestamp($4)
          ORDER BY bucket_start DESC LIMIT 1",
    )
    .bind(i16::from(market_type.as_u8()))
    .bind(id.as_slice())
    .bind(timeframe.as_str())
    .bind(oldest as f64)
    .fetch_optional(&mut *conn)
    .await?;
    let mut previous = previous_close.map(|close| format::price(&close)).transpose()?;
    let mut series = Vec::with_capacity(starts.len());
    for start in starts {
        let candle = match by_start.remove(&start) {
            Some(candle) => candle,
            None => match &previous {
                Some(close) => Candle::empty(start, close),
                // Before any trade (cannot happen from the first trade's bucket on).
                None => continue,
            },
        };
        previous = Some(candle.close.clone());
        series.push(candle);
    }
    Ok(series)
}

/// `time.block.log` of the last trade of a page.
fn parse_trade_cursor(text: &str) -> Result<(i64, i64, i32), ApiError> {
    let bad = || ApiError::bad("cursor", format!("{text:?} is not a cursor from a previous page"));
    let mut parts = text.split('.');
    let (Some(ts), Some(block), Some(log), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let ts: i64 = ts.parse().map_err(|_| bad())?;
    let block: i64 = block.parse().map_err(|_| bad())?;
    let log: i32 = log.parse().map_err(|_| bad())?;
    if !(0..=253_402_300_799).contains(&ts) || block < 0 || log < 0 {
        return Err(bad());
    }
    Ok((ts, block, log))
}

fn not_found(market_type: MarketType) -> ApiError {
    ApiError::NotFound(market_type.as_str().to_owned())
}

async fn market_row(conn: &mut PgConnection, market_type: MarketType, id: B256) -> Result<PgRow, ApiError> {
    let sql = format!("SELECT {MARKET_COLUMNS} {MARKET_JOINS} WHERE m.market_type = $1 AND m.market_id = $2");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i16::from(market_type.as_u8()))
        .bind(id.as_slice())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| not_found(market_type))
}

async fn ensure_market(conn: &mut PgConnection, market_type: MarketType, id: B256) -> Result<(), ApiError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM derived.markets WHERE market_type = $1 AND market_id = $2)")
            .bind(i16::from(market_type.as_u8()))
            .bind(id.as_slice())
            .fetch_one(&mut *conn)
            .await?;
    if exists { Ok(()) } else { Err(not_found(market_type)) }
}

pub(crate) fn market_json(market_type: MarketType, row: &PgRow) -> Result<Value, ApiError> {
    let (id_field, creator_field) = match market_type {
        MarketType::Credential => ("credential_id", "issuer_address"),
        MarketType::Persona => ("persona_id", "owner_address"),
    };
    let created: DateTime<Utc> = row.try_get("created_at")?;
    let mut object = Map::new();
    object.insert(id_field.to_owned(), json!(format::hex(&row.try_get::<Vec<u8>, _>("market_id")?)));
    object.insert("market_type".to_owned(), json!(market_type.as_str()));
    object.insert("token_address".to_owned(), json!(format::hex(&row.try_get::<Vec<u8>, _>("token_address")?)));
    object.insert("token_name".to_owned(), json!(row.try_get::<String, _>("token_name")?));
    object.insert("token_symbol".to_owned(), json!(row.try_get::<String, _>("token_symbol")?));
    object.insert(creator_field.to_owned(), json!(format::hex(&row.try_get::<Vec<u8>, _>("creator_address")?)));
    object.insert("verification_status".to_owned(), json!(row.try_get::<String, _>("verification_status")?));
    object.insert("reputation_score".to_owned(), json!(row.try_get::<Option<i32>, _>("reputation_score")?));
    object.insert("created_at".to_owned(), json!(format::time(created)));
    object.insert("price".to_owned(), json!(format::price(&row.try_get::<String, _>("price")?)?));
    object.insert("price_change_24h".to_owned(), json!(row.try_get::<f64, _>("price_change_24h")?));
    object.insert("volume_24h".to_owned(), json!(format::usdc(&row.try_get::<String, _>("volume_24h")?)?));
    object.insert("trades_24h".to_owned(), json!(row.try_get::<i32, _>("trades_24h")?));
    object.insert("traders_24h".to_owned(), json!(row.try_get::<i32, _>("traders_24h")?));
    object.insert("holders".to_owned(), json!(row.try_get::<i32, _>("holder_count")?));
    object.insert("market_cap".to_owned(), json!(format::usdc(&row.try_get::<String, _>("market_cap")?)?));
    object.insert("total_staked".to_owned(), json!(format::usdc(&row.try_get::<String, _>("total_staked")?)?));
    for field in ["display_name", "category", "description", "image_url", "website_url"] {
        object.insert(field.to_owned(), json!(row.try_get::<Option<String>, _>(field)?));
    }
    Ok(Value::Object(object))
}

async fn pool_json(conn: &mut PgConnection, market_type: MarketType, id: B256) -> Result<Option<Value>, ApiError> {
    let row = sqlx::query(
        "SELECT token_address, token_reserves::text, usdc_reserves::text, price::text, fee_bps
           FROM derived.pools WHERE market_type = $1 AND market_id = $2",
    )
    .bind(i16::from(market_type.as_u8()))
    .bind(id.as_slice())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(json!({
            "token_address": format::hex(&row.try_get::<Vec<u8>, _>(0)?),
            "token_reserves": format::tokens(&row.try_get::<String, _>(1)?)?,
            "usdc_reserves": format::usdc(&row.try_get::<String, _>(2)?)?,
            "price": format::price(&row.try_get::<String, _>(3)?)?,
            "fee_bps": row.try_get::<i32, _>(4)?,
        }))
    })
    .transpose()
}

pub(crate) async fn linked_credentials(conn: &mut PgConnection, persona: B256) -> Result<Value, ApiError> {
    let rows = sqlx::query(
        "SELECT pc.credential_id, m.token_symbol, m.token_name
           FROM app.persona_credentials pc
           LEFT JOIN derived.markets m ON m.market_type = 0 AND m.market_id = pc.credential_id
          WHERE pc.persona_id = $1 ORDER BY pc.created_at, pc.credential_id",
    )
    .bind(persona.as_slice())
    .fetch_all(&mut *conn)
    .await?;
    let list = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "credential_id": format::hex(&r.try_get::<Vec<u8>, _>(0)?),
                "token_symbol": r.try_get::<Option<String>, _>(1)?,
                "token_name": r.try_get::<Option<String>, _>(2)?,
            }))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Value::Array(list))
}

async fn social_links(conn: &mut PgConnection, persona: B256) -> Result<Value, ApiError> {
    let rows = sqlx::query(
        "SELECT platform, handle, url, verified FROM app.social_links WHERE persona_id = $1 ORDER BY platform",
    )
    .bind(persona.as_slice())
    .fetch_all(&mut *conn)
    .await?;
    let list = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "platform": r.try_get::<String, _>(0)?,
                "handle": r.try_get::<String, _>(1)?,
                "url": r.try_get::<Option<String>, _>(2)?,
                "verified": r.try_get::<bool, _>(3)?,
            }))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Value::Array(list))
}
