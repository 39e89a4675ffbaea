//! User reads: `/api/users/{address}/portfolio` (holdings × price, average cost
//! basis, realized and unrealized PnL per SPEC §5).

use alloy_primitives::{I256, U256};
use animoca_domain::{Price, format_units};
use axum::{Json, extract::State};
use serde_json::{Value, json};
use sqlx::Row;

use crate::{Shared, error::ApiError, format, params::Segments, reply};

/// `GET /api/users/{address}/portfolio`: the markets the address holds (a
/// balance above 0) with value at the spot price, cost basis and PnL; totals
/// over every market it ever held (realized PnL of closed positions included).
#[utoipa::path(get, operation_id = "users_portfolio", path = "/api/users/{address}/portfolio", tag = "users", params(("address" = String, Path, description = "0x + 40 hex digits")), responses((status = 200, description = "OK", body = crate::openapi::PortfolioReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn portfolio(State(state): State<Shared>, Segments(who): Segments<String>) -> Result<Json<Value>, ApiError> {
    let who = crate::params::address("address", &who)?;
    let mut tx = crate::read_tx(&state).await?;
    let rows = sqlx::query(
        "SELECT b.market_type, b.market_id, m.token_symbol, b.balance::text, b.cost_basis::text,
                b.realized_pnl::text, coalesce(p.price, 0)::text
           FROM derived.balances b
           JOIN derived.markets m USING (market_type, market_id)
           LEFT JOIN derived.pools p USING (market_type, market_id)
          WHERE b.holder = $1
          ORDER BY b.market_type, b.market_id",
    )
    .bind(who.as_slice())
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        ensure_known(&mut tx, who).await?;
    }
    tx.commit().await?;
    let (mut total_value, mut total_basis) = (U256::ZERO, U256::ZERO);
    let (mut total_realized, mut total_unrealized) = (I256::ZERO, I256::ZERO);
    let mut holdings = Vec::new();
    for row in &rows {
        let number = |i: usize| -> Result<String, ApiError> { Ok(row.try_get::<String, _>(i)?) };
        let corrupt = |what: &str| ApiError::Internal(format!("stored {what} is not a number"));
        let balance: U256 = number(3)?.parse().map_err(|_| corrupt("balance"))?;
        let basis: U256 = number(4)?.parse().map_err(|_| corrupt("cost_basis"))?;
        let realized: I256 = number(5)?.parse().map_err(|_| corrupt("realized_pnl"))?;
        let price = Price::from_decimal_str(&number(6)?).ok_or_else(|| corrupt("price"))?;
        let value = price.value_of(balance);
        let value = if value.bit_len() <= 256 { U256::from_limbs_slice(&value.as_limbs()[..4]) } else { U256::MAX };
        let unrealized = signed(value).saturating_sub(signed(basis));
        total_value = total_value.saturating_add(value);
        total_basis = total_basis.saturating_add(basis);
        total_realized = total_realized.saturating_add(realized);
        total_unrealized = total_unrealized.saturating_add(unrealized);
        if balance.is_zero() {
            continue;
        }
        let market_type = format::market_type(row.try_get(0)?)?;
        holdings.push(json!({
            "market_id": format::hex(&row.try_get::<Vec<u8>, _>(1)?),
            "market_type": market_type.as_str(),
            "token_symbol": row.try_get::<String, _>(2)?,
            "balance": format_units(balance, 18),
            "price": price.to_decimal_string(),
            "value": format_units(value, 6),
            "cost_basis": format_units(basis, 6),
            "realized_pnl": format::signed_usdc(realized),
            "unrealized_pnl": format::signed_usdc(unrealized),
        }));
    }
    Ok(reply::data(json!({
        "address": format!("{who:#x}"),
        "holdings": holdings,
        "total_value": format_units(total_value, 6),
        "total_cost_basis": format_units(total_basis, 6),
        "total_realized_pnl": format::signed_usdc(total_realized),
        "total_unrealized_pnl": format::signed_usdc(total_unrealized),
    })))
}

/// 404 for an address the platform has never seen (no profile, no trade,
/// balance, market, proposal, vote or stake).
async fn ensure_known(conn: &mut sqlx::PgConnection, who: alloy_primitives::Address) -> Result<(), ApiError> {
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM app.users WHERE address = $1)
             OR EXISTS (SELECT 1 FROM derived.balances WHERE holder = $1)
             OR EXISTS (SELECT 1 FROM derived.swaps WHERE trader = $1)
             OR EXISTS (SELECT 1 FROM derived.markets WHERE creator_address = $1)
             OR EXISTS (SELECT 1 FROM derived.proposals WHERE proposer = $1)
             OR EXISTS (SELECT 1 FROM derived.votes WHERE voter = $1)
             OR EXISTS (SELECT 1 FROM derived.stake_events WHERE staker = $1)",
    )
    .bind(who.as_slice())
    .fetch_one(&mut *conn)
    .await?;
    if known { Ok(()) } else { Err(ApiError::NotFound("user".to_owned())) }
}

fn signed(value: U256) -> I256 {
    I256::try_from(value).unwrap_or(I256::MAX)
}

/// `GET /api/users/{address}`: profile (off-chain), reputation, the newest
/// verification per provider, and on-chain activity counts. 404 for an address
/// the platform has never seen.
#[utoipa::path(get, operation_id = "users_profile", path = "/api/users/{address}", tag = "users", params(("address" = String, Path, description = "0x + 40 hex digits")), responses((status = 200, description = "OK", body = crate::openapi::ProfileReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn profile(State(state): State<Shared>, Segments(who): Segments<String>) -> Result<Json<Value>, ApiError> {
    let who = crate::params::address("address", &who)?;
    let mut tx = crate::read_tx(&state).await?;
    let row = sqlx::query(
        "SELECT u.username, u.display_name, u.bio, u.avatar_url, coalesce(u.reputation_score, 0), u.created_at,
                (SELECT count(*) FROM derived.markets WHERE creator_address = $1),
                (SELECT count(*) FROM derived.swaps WHERE trader = $1),
                (SELECT count(*) FROM derived.balances WHERE holder = $1 AND balance > 0),
                (SELECT count(*) FROM derived.proposals WHERE proposer = $1),
                (SELECT count(*) FROM derived.votes WHERE voter = $1)
           FROM (SELECT 1) one LEFT JOIN app.users u ON u.address = $1",
    )
    .bind(who.as_slice())
    .fetch_one(&mut *tx)
    .await?;
    let known: bool = row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(5)?.is_some()
        || (6..=10).map(|i| row.try_get::<i64, _>(i)).collect::<Result<Vec<_>, _>>()?.iter().any(|n| *n > 0);
    if !known {
        return Err(ApiError::NotFound("user".to_owned()));
    }
    let verifications = sqlx::query(
        "SELECT DISTINCT ON (provider) provider, status, score, level, created_at
           FROM app.verifications WHERE subject = $1 ORDER BY provider, created_at DESC",
    )
    .bind(who.as_slice())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut verification = serde_json::Map::new();
    for v in &verifications {
        let at: chrono::DateTime<chrono::Utc> = v.try_get(4)?;
        verification.insert(
            v.try_get::<String, _>(0)?,
            json!({
                "status": v.try_get::<String, _>(1)?,
                "score": v.try_get::<Option<i32>, _>(2)?,
                "level": v.try_get::<Option<String>, _>(3)?,
                "checked_at": format::time(at),
            }),
        );
    }
    Ok(reply::data(json!({
        "address": format!("{who:#x}"),
        "username": row.try_get::<Option<String>, _>(0)?,
        "display_name": row.try_get::<Option<String>, _>(1)?,
        "bio": row.try_get::<Option<String>, _>(2)?,
        "avatar_url": row.try_get::<Option<String>, _>(3)?,
        "reputation_score": row.try_get::<i32, _>(4)?,
        "verification": verification,
        "stats": {
            "markets_created": row.try_get::<i64, _>(6)?,
            "trades": row.try_get::<i64, _>(7)?,
            "markets_held": row.try_get::<i64, _>(8)?,
            "proposals": row.try_get::<i64, _>(9)?,
            "votes": row.try_get::<i64, _>(10)?,
        },
    })))
}

/// `GET /api/users/{address}/activity`: trades, votes, stake moves and proposals
/// of the address, newest first; `limit`, `offset`.
#[utoipa::path(get, operation_id = "users_activity", path = "/api/users/{address}/activity", tag = "users", params(("address" = String, Path, description = "0x + 40 hex digits"), ("limit" = Option<i64>, Query, description = "1-100, default 50"), ("offset" = Option<i64>, Query, description = "Items to skip")), responses((status = 200, description = "OK", body = crate::openapi::ActivityList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn activity(
    State(state): State<Shared>,
    Segments(who): Segments<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Json<Value>, ApiError> {
    let who = crate::params::address("address", &who)?;
    let params = crate::params::Params::parse(query.as_deref());
    let limit = params.limit(50, 100)?;
    let offset = params.offset()?;
    let mut tx = crate::read_tx(&state).await?;
    let rows = sqlx::query(
        "SELECT * FROM (
           (SELECT 'trade' AS kind, block_number, log_index, block_timestamp, tx_hash, market_type, market_id,
                   CASE WHEN is_buy THEN 'buy' ELSE 'sell' END AS action, usdc_amount::text AS usdc, token_amount::text AS tokens
              FROM derived.swaps WHERE trader = $1 ORDER BY block_number DESC, log_index DESC LIMIT $4)
            UNION ALL
           (SELECT 'vote', v.block_number, v.log_index, v.block_timestamp, v.tx_hash, p.market_type, p.market_id,
                   CASE v.support WHEN 0 THEN 'against' WHEN 1 THEN 'for' ELSE 'abstain' END, NULL, v.weight::text
              FROM derived.votes v JOIN derived.proposals p USING (proposal_id) WHERE v.voter = $1
             ORDER BY v.block_number DESC, v.log_index DESC LIMIT $4)
            UNION ALL
           (SELECT 'stake', block_number, log_index, block_timestamp, tx_hash, market_type, market_id, kind,
                   amount::text, NULL
              FROM derived.stake_events WHERE staker = $1 ORDER BY block_number DESC, log_index DESC LIMIT $4)
            UNION ALL
           (SELECT 'proposal', created_block, created_log_index, created_at, created_tx_hash, market_type, market_id,
                   'propose', slash_amount::text, NULL
              FROM derived.proposals WHERE proposer = $1 ORDER BY created_block DESC LIMIT $4)
         ) a ORDER BY block_number DESC, log_index DESC LIMIT $2 OFFSET $3",
    )
    .bind(who.as_slice())
    .bind(limit)
    .bind(offset)
    .bind(limit + offset) // each kind's newest `limit + offset` suffice
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        ensure_known(&mut tx, who).await?;
    }
    tx.commit().await?;
    let data = rows
        .iter()
        .map(|r| {
            let at: chrono::DateTime<chrono::Utc> = r.try_get("block_timestamp")?;
            let market_type = format::market_type(r.try_get("market_type")?)?.as_str();
            let usdc: Option<String> = r.try_get("usdc")?;
            let tokens: Option<String> = r.try_get("tokens")?;
            Ok(json!({
                "type": r.try_get::<String, _>("kind")?,
                "action": r.try_get::<String, _>("action")?,
                "market_type": market_type,
                "market_id": format::hex(&r.try_get::<Vec<u8>, _>("market_id")?),
                "usdc_amount": usdc.map(|u| format::usdc(&u)).transpose()?,
                "token_amount": tokens.map(|t| format::tokens(&t)).transpose()?,
                "tx_hash": format::hex(&r.try_get::<Vec<u8>, _>("tx_hash")?),
                "block_number": r.try_get::<i64, _>("block_number")?,
                "block_timestamp": format::time(at),
            }))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(reply::page(data, json!({ "limit": limit, "offset": offset })))
}

/// The body of `PATCH /api/users/me`: the fields to change (absent: unchanged;
/// `null`: cleared, except `username` which can only be changed).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    username: Option<String>,
    #[serde(default, with = "serde_with_null")]
    #[schema(value_type = Option<String>)]
    display_name: Option<Option<String>>,
    #[serde(default, with = "serde_with_null")]
    #[schema(value_type = Option<String>)]
    bio: Option<Option<String>>,
    #[serde(default, with = "serde_with_null")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
}

/// Distinguishes an absent field (`None`) from `null` (`Some(None)`).
mod serde_with_null {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::<String>::deserialize(d)?))
    }
}

/// `PATCH /api/users/me` (signed in): updates the caller's profile.
#[utoipa::path(patch, operation_id = "users_update_me", path = "/api/users/me", tag = "users", request_body = crate::users::ProfilePatch, security(("bearer" = [])), responses((status = 200, description = "OK", body = crate::openapi::ProfileUpdateReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn update_me(
    State(state): State<Shared>,
    crate::auth::SignedIn(me): crate::auth::SignedIn,
    crate::params::RawBody(body): crate::params::RawBody,
) -> Result<Json<Value>, ApiError> {
    let patch: ProfilePatch = crate::params::json_body(&body)?;
    if let Some(username) = &patch.username
        && (username.is_empty()
            || username.len() > 64
            || !username.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(ApiError::bad("username", "1-64 letters, digits or _"));
    }
    if let Some(Some(name)) = &patch.display_name {
        crate::params::body_text("display_name", name, 64)?;
    }
    if let Some(Some(bio)) = &patch.bio {
        crate::params::body_text("bio", bio, 500)?;
    }
    if let Some(Some(url)) = &patch.avatar_url {
        crate::params::http_url("avatar_url", url)?;
    }
    let mut db = state.pool.begin().await?;
    let result = sqlx::query(
        "INSERT INTO app.users (address, username, display_name, bio, avatar_url)
         VALUES ($1, $2, $4, $6, $8)
         ON CONFLICT (address) DO UPDATE SET
            username = coalesce($2, app.users.username),
            display_name = CASE WHEN $3 THEN $4 ELSE app.users.display_name END,
            bio = CASE WHEN $5 THEN $6 ELSE app.users.bio END,
            avatar_url = CASE WHEN $7 THEN $8 ELSE app.users.avatar_url END,
            updated_at = now()
         RETURNING username, display_name, bio, avatar_url",
    )
    .bind(me.as_slice())
    .bind(&patch.username)
    .bind(patch.display_name.is_some())
    .bind(patch.display_name.clone().flatten())
    .bind(patch.bio.is_some())
    .bind(patch.bio.clone().flatten())
    .bind(patch.avatar_url.is_some())
    .bind(patch.avatar_url.clone().flatten())
    .fetch_one(&mut *db)
    .await;
    let row = match result {
        Ok(row) => row,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
            return Err(ApiError::Conflict("that username is taken".to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    let change = crate::record_change(&mut db, "profile", json!({ "address": format!("{me:#x}") })).await?;
    db.commit().await?;
    state.saw(change);
    Ok(reply::data(json!({
        "address": format!("{me:#x}"),
        "username": row.try_get::<Option<String>, _>(0)?,
        "display_name": row.try_get::<Option<String>, _>(1)?,
        "bio": row.try_get::<Option<String>, _>(2)?,
        "avatar_url": row.try_get::<Option<String>, _>(3)?,
    })))
}
