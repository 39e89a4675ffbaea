//! World ID for personas: `POST /api/personas/{id}/verify/worldcoin` takes an
//! IDKit proof from the persona's owner and queues its verification with the
//! Worldcoin API (a `work` job); `GET` reads the outcome.
//!
//! The proof's signal must be the signed-in address: we compute its
//! `signal_hash` (IDKit's `hashToField`: keccak256 of the 20 address bytes,
//! shifted right by 8 bits) and send that, so a proof made for another address
//! fails. A nullifier already stored for another persona is refused with 409
//! here, and again by the job (one human, one persona).

use alloy_primitives::{Address, B256, U256, keccak256};
use animoca_store::jobs::{self, NewJob};
use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    Shared,
    auth::SignedIn,
    error::ApiError,
    format,
    params::{self, MarketPath},
    reply,
};

/// The body: what IDKit's `onSuccess` hands the app.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorldIdProof {
    /// 0x + 64 hex digits.
    nullifier_hash: String,
    /// 0x + 64 hex digits.
    merkle_root: String,
    /// The packed zero-knowledge proof, 0x + hex.
    proof: String,
    /// `orb`, `secure_document`, `document` or `device`.
    verification_level: String,
    /// Optional: must be the hash of the signed-in address when given.
    signal_hash: Option<String>,
}

const LEVELS: [&str; 4] = ["orb", "secure_document", "document", "device"];

/// IDKit's `hashToField(address)`: keccak256 of the 20 bytes, `>> 8`.
pub fn signal_hash(address: Address) -> B256 {
    let hashed: U256 = U256::from_be_bytes(keccak256(address.as_slice()).0) >> 8usize;
    B256::from(hashed.to_be_bytes::<32>())
}

fn field(name: &str, value: &str) -> Result<U256, ApiError> {
    let digits = hex_field(name, value, 32)?;
    U256::from_str_radix(&digits[2..], 16)
        .map_err(|_| ApiError::bad(name, "must be 0x followed by at most 64 hex digits"))
}

fn hex_field(field: &str, value: &str, max_bytes: usize) -> Result<String, ApiError> {
    let digits = value.strip_prefix("0x").ok_or_else(|| ApiError::bad(field, "must be 0x followed by hex digits"))?;
    if digits.is_empty() || digits.len() > max_bytes * 2 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad(field, format!("must be 0x followed by 1 to {} hex digits", max_bytes * 2)));
    }
    Ok(format!("0x{}", digits.to_ascii_lowercase()))
}

/// `POST /api/personas/{id}/verify/worldcoin` (the persona's owner): queues the
/// proof's verification; 202 with the job, or 200 when this persona is
/// verified with this nullifier already (or this proof was decided: its
/// status); 409 when the nullifier verified another persona.
#[utoipa::path(post, operation_id = "worldid_verify", path = "/api/personas/{id}/verify/worldcoin", tag = "markets", params(("id" = String, Path, description = "The persona id, 0x + 64 hex digits")), request_body = crate::worldid::WorldIdProof, security(("bearer" = [])), responses((status = 202, description = "Queued: the outcome arrives as a `verification` notification and on GET", body = crate::openapi::WorldIdQueuedReply), (status = 200, description = "Already verified with this nullifier, or this very proof was decided (its status: verified or rejected)", body = crate::openapi::WorldIdQueuedReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, not the owner (403), unknown persona (404), nullifier used by another persona (409), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn verify(
    State(state): State<Shared>,
    MarketPath { market_type, id }: MarketPath,
    SignedIn(me): SignedIn,
    params::RawBody(body): params::RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if market_type != animoca_domain::MarketType::Persona {
        return Err(ApiError::NotFound("route".to_owned()));
    }
    let body: WorldIdProof = params::json_body(&body)?;
    // Field elements: one canonical spelling (0x + 64 digits), so the same
    // nullifier cannot be stored twice under two spellings.
    let nullifier_hash = format!("{:#x}", B256::from(field("nullifier_hash", &body.nullifier_hash)?));
    let merkle_root = format!("{:#x}", B256::from(field("merkle_root", &body.merkle_root)?));
    let proof = hex_field("proof", &body.proof, 1024)?;
    if !LEVELS.contains(&body.verification_level.as_str()) {
        return Err(ApiError::bad("verification_level", format!("must be one of {}", LEVELS.join(", "))));
    }
    let signal = signal_hash(me);
    if let Some(given) = &body.signal_hash
        && params::bytes32("signal_hash", given)? != signal
    {
        return Err(ApiError::bad("signal_hash", format!("the proof's signal must be your address {me:#x}")));
    }

    let mut db = state.pool.begin().await?;
    crate::registration::ensure_persona_owner(&mut db, id, me, "verify it").await?;
    let used_by: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT persona_id FROM app.worldid_nullifiers WHERE nullifier_hash = $1 LIMIT 1")
            .bind(&nullifier_hash)
            .fetch_optional(&mut *db)
            .await?;
    match used_by {
        Some(persona) if persona == id.as_slice() => {
            return Ok((StatusCode::OK, reply::data(json!({ "status": "verified", "job_id": null }))));
        }
        Some(_) => {
            return Err(ApiError::Conflict(
                "this World ID already verified another persona: one human, one persona".to_owned(),
            ));
        }
        None => {}
    }
    // One job per proof: the same proof again answers that job.
    let sent = format!("{merkle_root}:{}:{proof}", body.verification_level);
    let key = format!("{}:{id:#x}:{nullifier_hash}:{}", jobs::WORLDID_PERSONA, keccak256(sent.as_bytes()));
    let job = jobs::enqueue(
        &mut db,
        &NewJob {
            queue: jobs::VERIFICATION_QUEUE,
            kind: jobs::WORLDID_PERSONA,
            payload: json!({
                "persona_id": format!("{id:#x}"),
                "address": format!("{me:#x}"),
                "nullifier_hash": nullifier_hash,
                "merkle_root": merkle_root,
                "proof": proof,
                "verification_level": body.verification_level,
                "signal_hash": format!("{signal:#x}"),
            }),
            idempotency_key: key.clone(),
            max_attempts: jobs::VERIFICATION_MAX_ATTEMPTS,
            run_after: None,
        },
    )
    .await?;
    let job_id = match job {
        Some(job_id) => job_id,
        None => {
            let (job_id, state, result): (i64, String, Option<Value>) =
                sqlx::query_as("SELECT id, state, result FROM app.jobs WHERE idempotency_key = $1")
                    .bind(&key)
                    .fetch_one(&mut *db)
                    .await?;
            match state.as_str() {
                // Decided: the same proof gets the same answer.
                "done" => {
                    let status = result.as_ref().and_then(|r| r["status"].as_str()).unwrap_or("rejected").to_owned();
                    db.commit().await?;
                    return Ok((
                        StatusCode::OK,
                        reply::data(json!({ "status": status, "job_id": job_id.to_string() })),
                    ));
                }
                // It could not be checked (e.g. the provider was down for
                // every attempt): try again.
                "dead" => {
                    sqlx::query(
                        "UPDATE app.jobs SET state = 'pending', attempts = 0, run_after = now(), finished_at = NULL,
                                updated_at = now() WHERE id = $1 AND state = 'dead'",
                    )
                    .bind(job_id)
                    .execute(&mut *db)
                    .await?;
                    job_id
                }
                _ => job_id,
            }
        }
    };
    db.commit().await?;
    Ok((StatusCode::ACCEPTED, reply::data(json!({ "status": "pending", "job_id": job_id.to_string() }))))
}

/// A stored outcome: status, reason, level, when.
type Outcome = (String, Option<String>, Option<String>, chrono::DateTime<chrono::Utc>);

/// `GET /api/personas/{id}/verify/worldcoin`: the newest World ID outcome of the
/// persona (`none` before any proof).
#[utoipa::path(get, operation_id = "worldid_status", path = "/api/personas/{id}/verify/worldcoin", tag = "markets", params(("id" = String, Path, description = "The persona id, 0x + 64 hex digits")), responses((status = 200, description = "OK", body = crate::openapi::WorldIdStatusReply), (status = "4XX", description = "Bad input (a 400 names the field), not signed in, forbidden, not found, conflict, chain proof failed (422), rate limited (429 with Retry-After)", body = crate::openapi::ErrorReply), (status = "5XX", description = "A dependency is down (503) or a bug (500)", body = crate::openapi::ErrorReply)))]
pub async fn status(
    State(state): State<Shared>,
    MarketPath { market_type, id }: MarketPath,
) -> Result<Json<Value>, ApiError> {
    if market_type != animoca_domain::MarketType::Persona {
        return Err(ApiError::NotFound("route".to_owned()));
    }
    let mut db = crate::read_tx_on(&state.pool).await?;
    let row: Option<Outcome> = sqlx::query_as(
        "SELECT status, reason, level, created_at FROM app.verifications
          WHERE provider = 'worldid' AND market_type = 1 AND market_id = $1
          ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(id.as_slice())
    .fetch_optional(&mut *db)
    .await?;
    let pending: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM app.jobs WHERE kind = $1 AND payload->>'persona_id' = $2
                          AND state IN ('pending', 'queued', 'running'))",
    )
    .bind(jobs::WORLDID_PERSONA)
    .bind(format!("{id:#x}"))
    .fetch_one(&mut *db)
    .await?;
    let data = match row {
        _ if pending => json!({ "status": "pending", "reason": null, "verification_level": null, "checked_at": null }),
        Some((status, reason, level, at)) => {
            json!({ "status": status, "reason": reason, "verification_level": level, "checked_at": format::time(at) })
        }
        None => json!({ "status": "none", "reason": null, "verification_level": null, "checked_at": null }),
    };
    Ok(reply::data(data))
}
