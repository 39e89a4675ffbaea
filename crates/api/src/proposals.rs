//! Governance reads: `/api/proposals` (list), `/api/proposals/{id}` (detail with
//! votes and `vote_breakdown`), `/api/proposals/{id}/votes`. Status and breakdown
//! follow SPEC §5 at `T`, the newest indexed block's time.

use alloy_primitives::{B256, U256};
use animoca_domain::{MarketType, ProposalStatus, Tally};
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
    params::{Params, Segments, bytes32},
    reply,
};

/// Status as SQL, at `T` = `$1` (Unix seconds); the same rule as [`Tally::status`].
const STATUS_SQL: &str = "CASE WHEN p.canceled THEN 'canceled' WHEN p.executed THEN 'executed'
            WHEN to_timestamp($1) < p.voting_ends_at THEN 'active'
            WHEN p.votes_for + p.votes_against >= p.quorum_required AND p.votes_for > p.votes_against THEN 'succeeded'
            ELSE 'defeated' END";

const PROPOSAL_COLUMNS: &str = "p.proposal_id::text AS proposal_id, p.market_type, p.market_id, p.proposer,
    p.slash_amount::text AS slash_amount, p.snapshot_block, p.voting_ends_at,
    extract(epoch FROM p.voting_ends_at)::bigint AS ends_unix, p.quorum_required::text AS quorum_required,
    p.votes_for::text AS votes_for, p.votes_against::text AS votes_against, p.votes_abstain::text AS votes_abstain,
    p.voter_count, p.executed, p.canceled, p.slashed_amount::text AS slashed_amount, p.created_at,
    p.created_tx_hash, p.resolved_at, md.title, md.description, md.evidence_links";

/// `GET /api/proposals`: `status`, `marketType`, `marketId`, `limit`, `offset`; newest first.
#[utoipa::path(get, operation_id = "proposals_list", path = "/api/proposals", tag = "governance", params(("status" = Option<String>, Query, description = "active, succeeded, defeated, executed or canceled"), ("marketType" = Option<String>, Query, description = "credential or persona"), ("marketId" = Option<String>, Query, description = "0x + 64 hex digits"), ("limit" = Option<i64>, Query, description = "1-100, default 50"), ("offset" = Option<i64>, Query, description = "Items to skip")), responses((status = 200, description = "OK", body = crate::openapi::ProposalList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn list(State(state): State<Shared>, RawQuery(query): RawQuery) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query.as_deref());
    let limit = params.limit(50, 100)?;
    let offset = params.offset()?;
    let names: Vec<&'static str> = ProposalStatus::ALL.iter().map(|s| s.as_str()).collect();
    let status = params.choice("status", &names)?;
    let market_type = params
        .choice("marketType", &["credential", "persona"])?
        .map(|t| t.parse::<MarketType>())
        .transpose()
        .map_err(|_| ApiError::bad("marketType", "not a market type"))?;
    let market_id = params.get("marketId").map(|id| bytes32("marketId", id)).transpose()?;
    let mut tx = crate::read_tx(&state).await?;
    let t = newest_time(&mut tx).await?;
    let sql = format!(
        "SELECT *, count(*) OVER () AS total FROM (
           SELECT {PROPOSAL_COLUMNS}, {STATUS_SQL} AS status
             FROM derived.proposals p LEFT JOIN app.proposal_metadata md USING (proposal_id)
            WHERE ($2::smallint IS NULL OR p.market_type = $2) AND ($3::bytea IS NULL OR p.market_id = $3)
         ) x
         WHERE $4::text IS NULL OR status = $4
         ORDER BY created_at DESC, proposal_id::numeric DESC LIMIT $5 OFFSET $6"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(t as f64)
        .bind(market_type.map(|m| i16::from(m.as_u8())))
        .bind(market_id.map(|id| id.to_vec()))
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    // The count rides on the rows; a page past the end has none (`total` unknown, null).
    let total: Option<i64> = match rows.first() {
        Some(row) => Some(row.try_get("total")?),
        None if offset == 0 => Some(0),
        None => None,
    };
    let data = rows.iter().map(proposal_json).collect::<Result<Vec<_>, _>>()?;
    Ok(reply::page(data, json!({ "limit": limit, "offset": offset, "total": total })))
}

/// `GET /api/proposals/{id}`: the proposal, its newest votes and its `vote_breakdown`.
#[utoipa::path(get, operation_id = "proposals_detail", path = "/api/proposals/{id}", tag = "governance", params(("id" = String, Path, description = "The proposal id, a decimal number")), responses((status = 200, description = "With votes and vote_breakdown", body = crate::openapi::ProposalReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn detail(State(state): State<Shared>, Segments(id): Segments<String>) -> Result<Json<Value>, ApiError> {
    let id = proposal_id(&id)?;
    let mut tx = crate::read_tx(&state).await?;
    let proposal = detail_json(&mut tx, id).await?;
    tx.commit().await?;
    Ok(reply::data(proposal))
}

/// A proposal as its detail route shows it (404 when not indexed).
pub(crate) async fn detail_json(conn: &mut PgConnection, id: U256) -> Result<Value, ApiError> {
    let t = newest_time(conn).await?;
    let row = proposal_row(conn, t, id).await?;
    let mut proposal = proposal_json(&row)?;
    let votes = votes_json(conn, id, 100, 0).await?;
    let tally = Tally {
        votes_for: u256(&row, "votes_for")?,
        votes_against: u256(&row, "votes_against")?,
        quorum_required: u256(&row, "quorum_required")?,
        voting_ends_at: row.try_get("ends_unix")?,
        executed: row.try_get("executed")?,
        canceled: row.try_get("canceled")?,
    };
    let b = tally.breakdown(t);
    if let Some(object) = proposal.as_object_mut() {
        object.insert("votes".to_owned(), Value::Array(votes));
        object.insert(
            "vote_breakdown".to_owned(),
            json!({
                "for_percentage": b.for_percentage,
                "against_percentage": b.against_percentage,
                "total_votes": animoca_domain::format_units(b.total_votes, animoca_domain::TOKEN_DECIMALS),
                "quorum_percentage": b.quorum_percentage,
                "quorum_reached": b.quorum_reached,
                "can_execute": b.can_execute,
                "time_remaining": b.time_remaining_ms,
            }),
        );
    }
    Ok(proposal)
}

/// `GET /api/proposals/{id}/votes`: newest first; `limit`, `offset`.
#[utoipa::path(get, operation_id = "proposals_votes", path = "/api/proposals/{id}/votes", tag = "governance", params(("id" = String, Path, description = "The proposal id, a decimal number"), ("limit" = Option<i64>, Query, description = "1-100, default 50"), ("offset" = Option<i64>, Query, description = "Items to skip")), responses((status = 200, description = "OK", body = crate::openapi::VoteList), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn votes(
    State(state): State<Shared>,
    Segments(id): Segments<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let id = proposal_id(&id)?;
    let params = Params::parse(query.as_deref());
    let limit = params.limit(50, 100)?;
    let offset = params.offset()?;
    let mut tx = crate::read_tx(&state).await?;
    let t = newest_time(&mut tx).await?;
    let row = proposal_row(&mut tx, t, id).await?;
    let votes = votes_json(&mut tx, id, limit, offset).await?;
    tx.commit().await?;
    let total: i32 = row.try_get("voter_count")?;
    Ok(reply::page(votes, json!({ "limit": limit, "offset": offset, "total": total })))
}

/// A proposal id: a decimal uint256.
pub(crate) fn proposal_id(text: &str) -> Result<U256, ApiError> {
    if text.is_empty() || text.len() > 78 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad("id", format!("{text:?} is not a proposal id (a decimal number)")));
    }
    text.parse().map_err(|_| ApiError::bad("id", "exceeds uint256"))
}

/// `T`: the newest indexed block's time (0 before anything is indexed).
async fn newest_time(conn: &mut PgConnection) -> Result<i64, ApiError> {
    let t: Option<i64> = sqlx::query_scalar("SELECT extract(epoch FROM as_of)::bigint FROM derived.window_state")
        .fetch_optional(&mut *conn)
        .await?;
    Ok(t.unwrap_or(0))
}

async fn proposal_row(conn: &mut PgConnection, t: i64, id: U256) -> Result<PgRow, ApiError> {
    let sql = format!(
        "SELECT {PROPOSAL_COLUMNS}, {STATUS_SQL} AS status
           FROM derived.proposals p LEFT JOIN app.proposal_metadata md USING (proposal_id)
          WHERE p.proposal_id = $2::numeric"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(t as f64)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ApiError::NotFound("proposal".to_owned()))
}

async fn votes_json(conn: &mut PgConnection, id: U256, limit: i64, offset: i64) -> Result<Vec<Value>, ApiError> {
    let sql = format!(
        "SELECT {VOTE_COLUMNS} FROM derived.votes WHERE proposal_id = $1::numeric
          ORDER BY block_number DESC, log_index DESC LIMIT $2 OFFSET $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(vote_json).collect()
}

/// The indexed vote of `voter` on proposal `id` cast in transaction `tx_hash`.
pub(crate) async fn vote_in_tx(
    conn: &mut PgConnection,
    id: U256,
    voter: &[u8],
    tx_hash: &[u8],
) -> Result<Option<Value>, ApiError> {
    let sql = format!(
        "SELECT {VOTE_COLUMNS} FROM derived.votes
          WHERE proposal_id = $1::numeric AND voter = $2 AND tx_hash = $3"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(voter)
        .bind(tx_hash)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(vote_json).transpose()
}

const VOTE_COLUMNS: &str = "voter, support, weight::text, tx_hash, block_number, block_timestamp";

fn vote_json(r: &PgRow) -> Result<Value, ApiError> {
    let time: DateTime<Utc> = r.try_get(5)?;
    Ok(json!({
        "voter_address": format::hex(&r.try_get::<Vec<u8>, _>(0)?),
        "vote_type": vote_type(u8::try_from(r.try_get::<i16, _>(1)?).unwrap_or(u8::MAX)),
        "voting_power": format::tokens(&r.try_get::<String, _>(2)?)?,
        "tx_hash": format::hex(&r.try_get::<Vec<u8>, _>(3)?),
        "block_number": r.try_get::<i64, _>(4)?,
        "block_timestamp": format::time(time),
    }))
}

/// The name of a `support` value (0 against, 1 for, 2 abstain).
pub(crate) fn vote_type(support: u8) -> &'static str {
    match support {
        0 => "against",
        1 => "for",
        _ => "abstain",
    }
}

fn u256(row: &PgRow, column: &str) -> Result<U256, ApiError> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|_| ApiError::Internal(format!("stored {column} {text:?} is not a uint256")))
}

fn proposal_json(row: &PgRow) -> Result<Value, ApiError> {
    let market_type = format::market_type(row.try_get("market_type")?)?;
    let market_id = B256::try_from(row.try_get::<Vec<u8>, _>("market_id")?.as_slice())
        .map_err(|_| ApiError::Internal("stored market id is not 32 bytes".to_owned()))?;
    let ends: DateTime<Utc> = row.try_get("voting_ends_at")?;
    let created: DateTime<Utc> = row.try_get("created_at")?;
    let resolved: Option<DateTime<Utc>> = row.try_get("resolved_at")?;
    let mut o = Map::new();
    o.insert("proposal_id".to_owned(), json!(row.try_get::<String, _>("proposal_id")?));
    o.insert("entity_type".to_owned(), json!(market_type.as_str()));
    let id_field = if market_type == MarketType::Persona { "persona_id" } else { "credential_id" };
    o.insert(id_field.to_owned(), json!(format::hex(market_id.as_slice())));
    o.insert("proposer_address".to_owned(), json!(format::hex(&row.try_get::<Vec<u8>, _>("proposer")?)));
    o.insert("title".to_owned(), json!(row.try_get::<Option<String>, _>("title")?));
    o.insert("description".to_owned(), json!(row.try_get::<Option<String>, _>("description")?));
    o.insert(
        "evidence_links".to_owned(),
        json!(row.try_get::<Option<Vec<String>>, _>("evidence_links")?.unwrap_or_default()),
    );
    o.insert("slash_amount".to_owned(), json!(format::usdc(&row.try_get::<String, _>("slash_amount")?)?));
    for field in ["votes_for", "votes_against", "votes_abstain", "quorum_required"] {
        o.insert(field.to_owned(), json!(format::tokens(&row.try_get::<String, _>(field)?)?));
    }
    o.insert("voter_count".to_owned(), json!(row.try_get::<i32, _>("voter_count")?));
    o.insert("snapshot_block".to_owned(), json!(row.try_get::<i64, _>("snapshot_block")?));
    o.insert("voting_ends_at".to_owned(), json!(format::time(ends)));
    o.insert("status".to_owned(), json!(row.try_get::<String, _>("status")?));
    let slashed: Option<String> = row.try_get("slashed_amount")?;
    o.insert("slashed_amount".to_owned(), json!(slashed.map(|s| format::usdc(&s)).transpose()?));
    o.insert("created_at".to_owned(), json!(format::time(created)));
    o.insert("tx_hash".to_owned(), json!(format::hex(&row.try_get::<Vec<u8>, _>("created_tx_hash")?)));
    o.insert("resolved_at".to_owned(), json!(resolved.map(format::time)));
    Ok(Value::Object(o))
}
