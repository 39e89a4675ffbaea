//! World ID proofs of personas (`worldid_persona` jobs, queued by
//! `POST /api/personas/{id}/verify/worldcoin`).
//!
//! `POST {WORLDCOIN_API_URL}/api/v2/verify/{WORLDCOIN_APP_ID}` with
//! `{nullifier_hash, merkle_root, proof, verification_level, action, signal_hash}`:
//! - 200 `{"success": true, …}`: the nullifier is stored once per action — a
//!   nullifier that already verified another persona is **rejected** even
//!   though the provider accepted it (one human, one persona);
//! - 400 `{"code", "detail", "attribute"}` (`invalid_proof`,
//!   `invalid_merkle_root`, `max_verifications_reached`, `validation_error`):
//!   **rejected** with the code and detail — an outcome, not a failure;
//! - 429, 5xx, timeouts: retried with backoff;
//! - 404 (`not_found`: unknown app) or any other answer: a dead letter (our
//!   configuration is wrong; `jobs retry` once fixed).
//!
//! Either outcome is stored (`app.verifications`, provider `worldid`) and
//! told to the owner (`verification` notification); a verified persona's
//! market is checked again, since World ID verifies its issuer.

use std::time::Duration;

use alloy_primitives::{Address, B256};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use url::Url;

use crate::{
    JobError,
    notify::{self, Notification},
    verification,
};

/// Where Worldcoin is and what we verify.
#[derive(Debug, Clone)]
pub struct WorldIdConfig {
    /// `WORLDCOIN_API_URL` (default `https://developer.worldcoin.org`).
    pub base_url: Url,
    /// `WORLDCOIN_APP_ID`; unset: proofs cannot be verified (dead letters).
    pub app_id: Option<String>,
    /// The incognito action proofs are made for (`WORLDCOIN_ACTION`, default `verify-persona`).
    pub action: String,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// The job's arguments, as the API queued them.
#[derive(Debug, Deserialize)]
struct Proof {
    persona_id: B256,
    address: Address,
    nullifier_hash: String,
    merkle_root: String,
    proof: String,
    verification_level: String,
    signal_hash: String,
}

/// Worldcoin's error body.
#[derive(Debug, Deserialize)]
struct ProviderError {
    code: Option<String>,
    detail: Option<String>,
}

/// Runs one proof verification.
pub async fn verify(
    pool: &PgPool,
    http: &reqwest::Client,
    config: &WorldIdConfig,
    job_id: i64,
    attempt: i32,
    payload: &Value,
) -> Result<Value, JobError> {
    let proof: Proof = serde_json::from_value(payload.clone())
        .map_err(|error| JobError::Permanent(format!("bad worldid_persona payload: {error}")))?;
    // Decided already (an earlier attempt stored the nullifier, then failed
    // before recording the outcome; or another persona holds it): no second
    // call to the provider, which would refuse a nullifier it has seen.
    let mut db = pool.acquire().await?;
    if let Some(outcome) = known_holder(&mut db, config, &proof).await? {
        drop(db);
        return store_outcome(pool, config, &proof, job_id, &outcome).await;
    }
    drop(db);
    let app_id = config
        .app_id
        .as_deref()
        .ok_or_else(|| JobError::Permanent("WORLDCOIN_APP_ID is not set on the job workers".to_owned()))?;
    let url = format!("{}/api/v2/verify/{app_id}", config.base_url.as_str().trim_end_matches('/'));
    let response = http
        .post(&url)
        .json(&json!({
            "nullifier_hash": proof.nullifier_hash,
            "merkle_root": proof.merkle_root,
            "proof": proof.proof,
            "verification_level": proof.verification_level,
            "action": config.action,
            "signal_hash": proof.signal_hash,
        }))
        .timeout(config.timeout)
        .send()
        .await
        .map_err(|error| JobError::Transient(format!("Worldcoin {url}: {error}")))?;
    let status = response.status();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let wait = crate::retry_after(&response);
        return Err(JobError::Throttled(
            format!("Worldcoin rate limited (429, Retry-After {wait:?})"),
            wait.unwrap_or_default(),
        ));
    }
    if status.is_server_error() {
        return Err(JobError::Transient(format!("Worldcoin answered {status}")));
    }
    let body = response.bytes().await.map_err(|error| JobError::Transient(format!("Worldcoin body: {error}")))?;
    let outcome = if status.is_success() {
        let answer: Value = serde_json::from_slice(&body).map_err(|error| {
            JobError::Permanent(format!("Worldcoin answered {status} with a body that is not JSON: {error}"))
        })?;
        if answer["success"] != json!(true) {
            return Err(JobError::Permanent(format!("Worldcoin answered {status} without success: {answer}")));
        }
        Outcome::Verified
    } else if status == reqwest::StatusCode::BAD_REQUEST {
        let error: ProviderError = serde_json::from_slice(&body).unwrap_or(ProviderError { code: None, detail: None });
        let code = error.code.unwrap_or_else(|| "bad_request".to_owned());
        let detail = error.detail.unwrap_or_default();
        if code == "max_verifications_reached" && attempt > 1 {
            // Maybe our own earlier attempt, whose answer was lost: not the
            // user's fault; leave it to an operator (`jobs retry` after a look).
            return Err(JobError::Permanent(format!(
                "Worldcoin answered max_verifications_reached on attempt {attempt}: an earlier attempt may have been accepted"
            )));
        }
        Outcome::Rejected(format!("World ID refused the proof: {code} ({detail})"))
    } else {
        return Err(JobError::Permanent(format!(
            "Worldcoin answered {status}: {}",
            String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
        )));
    };
    store_outcome(pool, config, &proof, job_id, &outcome).await
}

#[derive(Debug, Clone)]
enum Outcome {
    Verified,
    Rejected(String),
}

/// What the stored nullifiers already decide for this proof, if anything.
async fn known_holder(
    db: &mut PgConnection,
    config: &WorldIdConfig,
    proof: &Proof,
) -> Result<Option<Outcome>, sqlx::Error> {
    let holder: Option<(Vec<u8>, String)> = sqlx::query_as(
        "SELECT persona_id, nullifier_hash FROM app.worldid_nullifiers
          WHERE (action = $1 AND nullifier_hash = $2) OR persona_id = $3
          ORDER BY (action = $1 AND nullifier_hash = $2) DESC LIMIT 1",
    )
    .bind(&config.action)
    .bind(&proof.nullifier_hash)
    .bind(proof.persona_id.as_slice())
    .fetch_optional(db)
    .await?;
    Ok(holder.map(|(persona, nullifier)| {
        if persona == proof.persona_id.as_slice() && nullifier == proof.nullifier_hash {
            Outcome::Verified
        } else if persona == proof.persona_id.as_slice() {
            Outcome::Rejected("this persona is verified with another World ID already".to_owned())
        } else {
            // Not naming the other persona: the reason is public, and would link them.
            Outcome::Rejected("this World ID already verified another persona: one human, one persona".to_owned())
        }
    }))
}

/// Stores the nullifier (a verified outcome; once per action: a conflict
/// decides again) and the outcome, in one transaction.
async fn store_outcome(
    pool: &PgPool,
    config: &WorldIdConfig,
    proof: &Proof,
    job_id: i64,
    outcome: &Outcome,
) -> Result<Value, JobError> {
    let mut tx = pool.begin().await?;
    let mut outcome = outcome.clone();
    if matches!(outcome, Outcome::Verified) {
        let inserted = sqlx::query(
            "INSERT INTO app.worldid_nullifiers (action, nullifier_hash, persona_id, address, verification_level)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&config.action)
        .bind(&proof.nullifier_hash)
        .bind(proof.persona_id.as_slice())
        .bind(proof.address.as_slice())
        .bind(&proof.verification_level)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            outcome = known_holder(&mut tx, config, proof)
                .await?
                .ok_or_else(|| JobError::Transient("nullifier conflict vanished; retrying".to_owned()))?;
        }
    }
    let (status, reason) = match &outcome {
        Outcome::Verified => ("verified", "World ID proof of personhood verified".to_owned()),
        Outcome::Rejected(reason) => ("rejected", reason.clone()),
    };
    sqlx::query(
        "INSERT INTO app.verifications (subject, market_type, market_id, provider, status, level, reason, response)
         VALUES ($1, 1, $2, 'worldid', $3, $4, $5, $6)",
    )
    .bind(proof.address.as_slice())
    .bind(proof.persona_id.as_slice())
    .bind(status)
    .bind(&proof.verification_level)
    .bind(&reason)
    .bind(json!({ "nullifier_hash": proof.nullifier_hash, "job": job_id }))
    .execute(&mut *tx)
    .await?;
    notify::store(
        &mut tx,
        &Notification {
            recipient: proof.address,
            kind: "verification",
            title: format!("World ID {status} for your persona"),
            body: reason.clone(),
            data: json!({ "provider": "worldid", "market_type": "persona", "market_id": format!("{:#x}", proof.persona_id), "status": status }),
            idempotency_key: format!("worldid:{job_id}"),
        },
    )
    .await?;
    if matches!(outcome, Outcome::Verified) {
        // The market's status follows (World ID verifies its owner).
        verification::enqueue_check(&mut tx, 1, proof.persona_id, &format!("worldid-{job_id}")).await?;
    }
    tx.commit().await?;
    Ok(json!({ "status": status, "reason": reason }))
}
