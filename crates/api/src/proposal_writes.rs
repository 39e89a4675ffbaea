//! Governance writes, each proven by its transaction (SPEC §6):
//! `POST /api/proposals` (the off-chain text of a proposal the caller made on
//! chain), `POST /api/proposals/{id}/vote` and `POST /api/proposals/{id}/execute`
//! (the caller's `castVote` / `execute` transaction, answered from the indexed
//! tables as soon as the indexer has the block; idempotent).

use alloy::primitives::U256;
use animoca_chain::bindings::GovernanceSlashing;
use animoca_domain::{MarketType, format_units};
use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    AppState, Shared,
    auth::SignedIn,
    error::ApiError,
    format,
    params::{self, Segments},
    proof,
    proposals::{self, proposal_id, vote_type},
    reply,
};

/// The body of `POST /api/proposals` (snake_case; the seed's camelCase accepted).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProposal {
    /// The `propose` transaction.
    #[serde(alias = "txHash", alias = "proposalTxHash")]
    tx_hash: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default, alias = "evidenceLinks")]
    evidence_links: Vec<String>,
    /// Claims checked against the chain.
    #[serde(alias = "proposalId")]
    proposal_id: Option<String>,
    #[serde(alias = "marketType", alias = "entity_type")]
    market_type: Option<String>,
    #[serde(alias = "marketId")]
    market_id: Option<String>,
    #[serde(alias = "proposerAddress")]
    proposer_address: Option<String>,
    /// USDC, as a decimal string.
    #[serde(alias = "slashAmount")]
    slash_amount: Option<String>,
}

/// `POST /api/proposals` (signed in, the proposer only): stores the proposal's
/// title, description and evidence. 201 first time, 200 on a repeat (updated),
/// 202 when the indexer has not reached the transaction yet.
#[utoipa::path(post, operation_id = "proposal_writes_create", path = "/api/proposals", tag = "governance", request_body = crate::proposal_writes::CreateProposal, security(("bearer" = [])), responses((status = 201, description = "Described (indexed)", body = crate::openapi::ProposalReply), (status = 200, description = "Described again by the proposer", body = crate::openapi::ProposalReply), (status = 202, description = "Stored; not indexed yet", body = crate::openapi::PendingGovernanceReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn create(
    State(state): State<Shared>,
    SignedIn(me): SignedIn,
    crate::params::RawBody(body): crate::params::RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: CreateProposal = params::json_body(&body)?;
    if body.title.trim().is_empty() {
        return Err(ApiError::bad("title", "must not be empty"));
    }
    params::body_text("title", &body.title, 200)?;
    params::body_text("description", &body.description, 10_000)?;
    if body.evidence_links.len() > 20 {
        return Err(ApiError::bad("evidence_links", "at most 20 links"));
    }
    for (i, link) in body.evidence_links.iter().enumerate() {
        params::http_url(&format!("evidence_links[{i}]"), link)?;
    }
    let claimed_id = body.proposal_id.as_deref().map(|id| proposal_id_field("proposal_id", id)).transpose()?;
    let claimed_type = body
        .market_type
        .as_deref()
        .map(|t| t.parse::<MarketType>().map_err(|_| ApiError::bad("market_type", "credential or persona")))
        .transpose()?;
    let claimed_market = body.market_id.as_deref().map(|id| params::bytes32("market_id", id)).transpose()?;
    let claimed_proposer =
        body.proposer_address.as_deref().map(|a| params::address("proposer_address", a)).transpose()?;
    let claimed_slash = body.slash_amount.as_deref().map(|a| format::parse_units("slash_amount", a, 6)).transpose()?;

    let deployment = proof::deployment(&state).await?;
    let tx = proof::prove(&state, &body.tx_hash, me, deployment.governance, "governance").await?;
    let created = tx.events::<GovernanceSlashing::ProposalCreated>();
    let event = match claimed_id {
        Some(id) => created.into_iter().find(|e| e.proposalId == id).ok_or_else(|| {
            ApiError::Unprovable(format!("transaction {:#x} emitted no ProposalCreated for proposal {id}", tx.hash))
        })?,
        None => created
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::Unprovable(format!("transaction {:#x} emitted no ProposalCreated", tx.hash)))?,
    };
    if event.proposer != me {
        return Err(ApiError::Forbidden(format!(
            "proposal {} was made by {:#x}, not by the signed-in {me:#x}",
            event.proposalId, event.proposer
        )));
    }
    let mismatch = |field: &str, claimed: String, actual: String| {
        ApiError::Unprovable(format!("{field}: the body says {claimed}, the chain says {actual}"))
    };
    if let Some(market) = claimed_market
        && market != event.marketId
    {
        return Err(mismatch("market_id", format!("{market:#x}"), format!("{:#x}", event.marketId)));
    }
    if let Some(proposer) = claimed_proposer
        && proposer != event.proposer
    {
        return Err(mismatch("proposer_address", format!("{proposer:#x}"), format!("{:#x}", event.proposer)));
    }
    if let Some(slash) = claimed_slash
        && slash != event.slashAmount
    {
        return Err(mismatch("slash_amount", format_units(slash, 6), format_units(event.slashAmount, 6)));
    }
    if let Some(market_type) = claimed_type {
        let actual = on_chain_market_type(&state, deployment.governance, event.proposalId).await?;
        if actual != Some(market_type) {
            let actual = actual.map_or("unknown", MarketType::as_str);
            return Err(mismatch("market_type", market_type.as_str().to_owned(), actual.to_owned()));
        }
    }

    let mut db = state.pool.begin().await?;
    let inserted: Option<bool> = sqlx::query_scalar(
        "INSERT INTO app.proposal_metadata AS md (proposal_id, title, description, evidence_links, submitted_by, tx_hash)
         VALUES ($1::numeric, $2, $3, $4, $5, $6)
         ON CONFLICT (proposal_id) DO UPDATE SET
                title = EXCLUDED.title, description = EXCLUDED.description, evidence_links = EXCLUDED.evidence_links
          WHERE md.submitted_by = EXCLUDED.submitted_by
         RETURNING (xmax = 0)",
    )
    .bind(event.proposalId.to_string())
    .bind(&body.title)
    .bind(&body.description)
    .bind(&body.evidence_links)
    .bind(me.as_slice())
    .bind(tx.hash.as_slice())
    .fetch_optional(&mut *db)
    .await?;
    let Some(inserted) = inserted else {
        return Err(ApiError::Forbidden(format!("proposal {} is described by another address", event.proposalId)));
    };
    let payload = json!({ "proposal_id": event.proposalId.to_string(), "event": "described" });
    let change = crate::record_change(&mut db, "metadata", payload).await?;
    db.commit().await?;
    state.saw(change);
    let status = if inserted { StatusCode::CREATED } else { StatusCode::OK };
    if let Some(detail) = indexed_proposal(&state, tx.block_number, event.proposalId).await? {
        return Ok((status, reply::data(detail)));
    }
    Ok((
        StatusCode::ACCEPTED,
        reply::data(json!({
            "proposal_id": event.proposalId.to_string(),
            "proposer_address": format!("{:#x}", event.proposer),
            "market_id": format!("{:#x}", event.marketId),
            "slash_amount": format_units(event.slashAmount, 6),
            "title": body.title,
            "description": body.description,
            "evidence_links": body.evidence_links,
            "tx_hash": format!("{:#x}", tx.hash),
            "block_number": tx.block_number,
            "indexed": false,
        })),
    ))
}

/// The body of `/vote` and `/execute`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvenAction {
    #[serde(alias = "txHash", alias = "voteTxHash", alias = "executionTxHash")]
    tx_hash: String,
    /// `/vote` only: the vote the caller expects (checked against the event).
    #[serde(default, alias = "voteType")]
    vote_type: Option<String>,
}

/// `POST /api/proposals/{id}/vote` (signed in, the voter): the caller's vote
/// as indexed (200), or as the receipt proves it (202) while the indexer catches up.
#[utoipa::path(post, operation_id = "proposal_writes_vote", path = "/api/proposals/{id}/vote", tag = "governance", params(("id" = String, Path, description = "The proposal id, a decimal number")), request_body = crate::proposal_writes::ProvenAction, security(("bearer" = [])), responses((status = 200, description = "The indexed vote", body = crate::openapi::VoteReply), (status = 202, description = "Proven; not indexed yet", body = crate::openapi::PendingGovernanceReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn vote(
    State(state): State<Shared>,
    Segments(id): Segments<String>,
    SignedIn(me): SignedIn,
    crate::params::RawBody(body): crate::params::RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = proposal_id(&id)?;
    let body: ProvenAction = params::json_body(&body)?;
    let claimed = body
        .vote_type
        .as_deref()
        .map(|t| match t {
            "against" => Ok(0u8),
            "for" => Ok(1),
            "abstain" => Ok(2),
            _ => Err(ApiError::bad("vote_type", "for, against or abstain")),
        })
        .transpose()?;
    let deployment = proof::deployment(&state).await?;
    let tx = proof::prove(&state, &body.tx_hash, me, deployment.governance, "governance").await?;
    let event = tx
        .events::<GovernanceSlashing::VoteCast>()
        .into_iter()
        .find(|e| e.proposalId == id && e.voter == me)
        .ok_or_else(|| {
        ApiError::Unprovable(format!("transaction {:#x} cast no vote of yours on proposal {id}", tx.hash))
    })?;
    if let Some(support) = claimed
        && support != event.support
    {
        return Err(ApiError::Unprovable(format!(
            "vote_type: the body says {}, the chain says {}",
            vote_type(support),
            vote_type(event.support)
        )));
    }
    if proof::indexed(&state, tx.block_number).await? {
        let mut read = crate::read_tx_on(&state.pool).await?;
        let vote = proposals::vote_in_tx(&mut read, id, me.as_slice(), tx.hash.as_slice()).await?;
        read.commit().await?;
        if let Some(mut vote) = vote {
            vote["proposal_id"] = json!(id.to_string());
            vote["indexed"] = json!(true);
            return Ok((StatusCode::OK, reply::data(vote)));
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        reply::data(json!({
            "proposal_id": id.to_string(),
            "voter_address": format!("{me:#x}"),
            "vote_type": vote_type(event.support),
            "voting_power": format_units(event.weight, 18),
            "tx_hash": format!("{:#x}", tx.hash),
            "block_number": tx.block_number,
            "indexed": false,
        })),
    ))
}

/// `POST /api/proposals/{id}/execute` (signed in, the caller of `execute`):
/// the executed proposal as indexed (200), or as the receipt proves it (202).
#[utoipa::path(post, operation_id = "proposal_writes_execute", path = "/api/proposals/{id}/execute", tag = "governance", params(("id" = String, Path, description = "The proposal id, a decimal number")), request_body = crate::proposal_writes::ProvenAction, security(("bearer" = [])), responses((status = 200, description = "The executed proposal", body = crate::openapi::ProposalReply), (status = 202, description = "Proven; not indexed yet", body = crate::openapi::PendingGovernanceReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn execute(
    State(state): State<Shared>,
    Segments(id): Segments<String>,
    SignedIn(me): SignedIn,
    crate::params::RawBody(body): crate::params::RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = proposal_id(&id)?;
    let body: ProvenAction = params::json_body(&body)?;
    if body.vote_type.is_some() {
        return Err(ApiError::bad("vote_type", "not a field of an execution"));
    }
    let deployment = proof::deployment(&state).await?;
    let tx = proof::prove(&state, &body.tx_hash, me, deployment.governance, "governance").await?;
    let event = tx
        .events::<GovernanceSlashing::ProposalExecuted>()
        .into_iter()
        .find(|e| e.proposalId == id)
        .ok_or_else(|| ApiError::Unprovable(format!("transaction {:#x} did not execute proposal {id}", tx.hash)))?;
    if let Some(detail) = indexed_proposal(&state, tx.block_number, id).await?
        && detail["status"] == "executed"
    {
        return Ok((StatusCode::OK, reply::data(detail)));
    }
    Ok((
        StatusCode::ACCEPTED,
        reply::data(json!({
            "proposal_id": id.to_string(),
            "status": "executed",
            "slashed_amount": format_units(event.slashedAmount, 6),
            "tx_hash": format!("{:#x}", tx.hash),
            "block_number": tx.block_number,
            "indexed": false,
        })),
    ))
}

/// The proposal's detail once the indexer has `block` (`None` if it has not in time).
async fn indexed_proposal(state: &AppState, block: u64, id: U256) -> Result<Option<Value>, ApiError> {
    if !proof::indexed(state, block).await? {
        return Ok(None);
    }
    let mut read = crate::read_tx_on(&state.pool).await?;
    let detail = match proposals::detail_json(&mut read, id).await {
        Ok(mut detail) => {
            detail["indexed"] = json!(true);
            Some(detail)
        }
        // Indexed past the block, yet no proposal: the block was reorganised away.
        Err(ApiError::NotFound(_)) => None,
        Err(other) => return Err(other),
    };
    read.commit().await?;
    Ok(detail)
}

/// The market type of a proposal, from the contract's `proposals(id)` view.
async fn on_chain_market_type(
    state: &AppState,
    governance: alloy::primitives::Address,
    id: U256,
) -> Result<Option<MarketType>, ApiError> {
    let chain =
        state.chain.as_ref().ok_or_else(|| ApiError::Unavailable("no chain RPC configured (RPC_URL)".to_owned()))?;
    let view = GovernanceSlashing::new(governance, &chain.provider)
        .proposals(id)
        .call()
        .await
        .map_err(|e| ApiError::Unavailable(format!("chain RPC: {e}")))?;
    Ok(MarketType::try_from(view.marketType).ok())
}

fn proposal_id_field(field: &str, text: &str) -> Result<U256, ApiError> {
    proposal_id(text).map_err(|_| ApiError::bad(field, format!("{text:?} is not a proposal id (a decimal number)")))
}
