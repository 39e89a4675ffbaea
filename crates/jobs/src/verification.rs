//! Issuer verification: every market's issuer (credential) or owner (persona)
//! is checked with Ethos once the indexer has seen the market, and again daily
//! while it is not verified.
//!
//! The rules ([`decide`]), with `min` = `ETHOS_MIN_SCORE` (default 1400):
//! - **verified** when the Ethos score is at least `min`, or the owner proved
//!   personhood with World ID;
//! - **rejected** when the score is *untrusted* (below 800) and there is no
//!   World ID;
//! - **pending** otherwise: no Ethos profile, or a score in 800..min. A later
//!   check (the daily re-check, or a World ID proof) may verify it.

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};

use crate::{
    JobError, Queue,
    ethos::{self, EthosConfig, EthosScore},
    notify::{self, Notification},
    outbox::{self, NewJob},
};

/// The job kind of an issuer check.
pub const KIND: &str = "ethos_issuer";

/// Scores below this are Ethos' `untrusted` level.
pub const UNTRUSTED_BELOW: u32 = 800;

/// A market's verification status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Trusted.
    Verified,
    /// Not decided yet.
    Pending,
    /// Distrusted.
    Rejected,
}

impl Status {
    /// As stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Pending => "pending",
            Status::Rejected => "rejected",
        }
    }
}

/// The rules of the module docs: the status and the reason shown to users.
pub fn decide(ethos: Option<&EthosScore>, has_world_id: bool, min_score: u32) -> (Status, String) {
    match ethos {
        Some(found) if found.score >= min_score => {
            (Status::Verified, format!("Ethos score {} ({}) is at least {min_score}", found.score, found.level))
        }
        _ if has_world_id => (Status::Verified, "the owner proved personhood with World ID".to_owned()),
        Some(found) if found.score < UNTRUSTED_BELOW => (
            Status::Rejected,
            format!("Ethos score {} ({}) is untrusted (below {UNTRUSTED_BELOW})", found.score, found.level),
        ),
        Some(found) => (Status::Pending, format!("Ethos score {} ({}) is below {min_score}", found.score, found.level)),
        None => (Status::Pending, "no Ethos profile yet".to_owned()),
    }
}

/// The arguments of a check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckIssuer {
    /// 0 credential, 1 persona.
    pub market_type: i16,
    /// The market id.
    pub market_id: B256,
}

/// Enqueues a check for every indexed market that has neither been checked
/// nor has a check queued. Cheap to run often (index lookups per market).
pub async fn enqueue_unchecked(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO app.jobs (queue, kind, payload, idempotency_key, max_attempts)
         SELECT $1, $2,
                jsonb_build_object('market_type', m.market_type, 'market_id', '0x' || encode(m.market_id, 'hex')),
                k.key, $3
           FROM markets m
          CROSS JOIN LATERAL (SELECT $2 || ':' || m.market_type || ':0x' || encode(m.market_id, 'hex') AS key) k
          WHERE NOT EXISTS (SELECT 1 FROM app.jobs j WHERE j.idempotency_key = k.key)
            AND NOT EXISTS (SELECT 1 FROM app.market_metadata md
                             WHERE md.market_type = m.market_type AND md.market_id = m.market_id
                               AND md.ethos_checked_at IS NOT NULL)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(Queue::Verification.name())
    .bind(KIND)
    .bind(Queue::Verification.max_attempts())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Enqueues a fresh check (keyed by `round`, e.g. the day) of every market not
/// verified yet.
pub async fn enqueue_recheck(conn: &mut PgConnection, round: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO app.jobs (queue, kind, payload, idempotency_key, max_attempts)
         SELECT $1, $2,
                jsonb_build_object('market_type', m.market_type, 'market_id', '0x' || encode(m.market_id, 'hex')),
                $2 || ':' || m.market_type || ':0x' || encode(m.market_id, 'hex') || ':' || $4, $3
           FROM markets m
           LEFT JOIN app.market_metadata md ON md.market_type = m.market_type AND md.market_id = m.market_id
          WHERE coalesce(md.verification_status, 'pending') <> 'verified'
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(Queue::Verification.name())
    .bind(KIND)
    .bind(Queue::Verification.max_attempts())
    .bind(round)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Runs one check: asks Ethos, applies [`decide`], stores the check, the
/// market's status and (when the status changed) a notification to the owner.
pub async fn check_issuer(
    pool: &PgPool,
    http: &reqwest::Client,
    config: &EthosConfig,
    job_id: i64,
    payload: &Value,
) -> Result<Value, JobError> {
    let args: CheckIssuer = serde_json::from_value(payload.clone())
        .map_err(|error| JobError::Permanent(format!("bad {KIND} payload {payload}: {error}")))?;
    let creator: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT creator_address FROM markets WHERE market_type = $1 AND market_id = $2")
            .bind(args.market_type)
            .bind(args.market_id.as_slice())
            .fetch_optional(pool)
            .await?;
    let Some(creator) = creator else {
        // Reorged away (or a re-derive is under way): nothing to check.
        return Ok(json!({ "skipped": "market not indexed" }));
    };
    let owner = Address::try_from(creator.as_slice())
        .map_err(|_| JobError::Permanent(format!("stored creator address has {} bytes", creator.len())))?;

    let found = ethos::score(http, config, owner).await?;

    let mut tx = pool.begin().await?;
    // Checks of one market decide one at a time, each on the World ID state
    // at its commit (a check racing a World ID proof cannot undo it).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('animoca_issuer_check'), hashtext($1))")
        .bind(format!("{}:{:#x}", args.market_type, args.market_id))
        .execute(&mut *tx)
        .await?;
    let has_world_id: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM app.worldid_nullifiers WHERE address = $1)")
            .bind(owner.as_slice())
            .fetch_one(&mut *tx)
            .await?;
    let (status, reason) = decide(found.as_ref(), has_world_id, config.min_score);
    let previous: Option<String> = sqlx::query_scalar(
        "SELECT verification_status FROM app.market_metadata WHERE market_type = $1 AND market_id = $2 FOR UPDATE",
    )
    .bind(args.market_type)
    .bind(args.market_id.as_slice())
    .fetch_optional(&mut *tx)
    .await?;
    let response = json!({ "ethos": found, "world_id": has_world_id });
    sqlx::query(
        "INSERT INTO app.verifications (subject, market_type, market_id, provider, status, score, level, reason, response)
         VALUES ($1, $2, $3, 'ethos', $4, $5, $6, $7, $8)",
    )
    .bind(owner.as_slice())
    .bind(args.market_type)
    .bind(args.market_id.as_slice())
    .bind(status.as_str())
    .bind(found.as_ref().map(|f| i32::try_from(f.score).unwrap_or(i32::MAX)))
    .bind(found.as_ref().map(|f| f.level.as_str()))
    .bind(&reason)
    .bind(&response)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO app.market_metadata AS md
                (market_type, market_id, registered_by, verification_status, verification_reason, verified_at,
                 ethos_score, ethos_level, ethos_checked_at)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 = 'verified' THEN now() END, $6, $7, now())
         ON CONFLICT (market_type, market_id) DO UPDATE SET
                verification_status = EXCLUDED.verification_status,
                verification_reason = EXCLUDED.verification_reason,
                verified_at = CASE WHEN EXCLUDED.verification_status = 'verified'
                                   THEN coalesce(md.verified_at, now()) END,
                ethos_score = EXCLUDED.ethos_score,
                ethos_level = EXCLUDED.ethos_level,
                ethos_checked_at = now(),
                updated_at = now()",
    )
    .bind(args.market_type)
    .bind(args.market_id.as_slice())
    .bind(owner.as_slice())
    .bind(status.as_str())
    .bind(&reason)
    .bind(found.as_ref().map(|f| i32::try_from(f.score).unwrap_or(i32::MAX)))
    .bind(found.as_ref().map(|f| f.level.as_str()))
    .execute(&mut *tx)
    .await?;
    let changed = previous.as_deref() != Some(status.as_str());
    let mut notified = None;
    if changed {
        let market = if args.market_type == 0 { "credential" } else { "persona" };
        notified = notify::store(
            &mut tx,
            &Notification {
                recipient: owner,
                kind: "verification",
                title: format!("Your {market} market is {}", status.as_str()),
                body: reason.clone(),
                data: json!({
                    "market_type": market,
                    "market_id": format!("{:#x}", args.market_id),
                    "status": status.as_str(),
                    "ethos_score": found.as_ref().map(|f| f.score),
                }),
                idempotency_key: format!("verification:{job_id}:{}", status.as_str()),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(json!({ "status": status.as_str(), "reason": reason, "ethos": found, "notification": notified }))
}

/// Enqueues one check of a market now (e.g. after a World ID proof), keyed by
/// `reason` so a repeat is one job.
pub async fn enqueue_check(
    conn: &mut PgConnection,
    market_type: i16,
    market_id: B256,
    reason: &str,
) -> Result<Option<i64>, sqlx::Error> {
    outbox::enqueue(
        conn,
        &NewJob {
            queue: Queue::Verification,
            kind: KIND,
            payload: json!({ "market_type": market_type, "market_id": format!("{market_id:#x}") }),
            idempotency_key: format!("{KIND}:{market_type}:{market_id:#x}:{reason}"),
            run_after: None,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(score: u32, level: &str) -> EthosScore {
        EthosScore { score, level: level.to_owned() }
    }

    #[test]
    fn rules() {
        let min = 1400;
        assert_eq!(decide(Some(&score(1400, "known")), false, min).0, Status::Verified);
        assert_eq!(decide(Some(&score(2800, "renowned")), false, min).0, Status::Verified);
        assert_eq!(decide(Some(&score(1399, "neutral")), false, min).0, Status::Pending);
        assert_eq!(decide(Some(&score(800, "questionable")), false, min).0, Status::Pending);
        assert_eq!(decide(Some(&score(799, "untrusted")), false, min).0, Status::Rejected);
        assert_eq!(decide(Some(&score(0, "untrusted")), true, min).0, Status::Verified);
        assert_eq!(decide(None, false, min).0, Status::Pending);
        assert_eq!(decide(None, true, min).0, Status::Verified);
        assert_eq!(decide(Some(&score(1200, "neutral")), false, 1000).0, Status::Verified);
        let (_, reason) = decide(Some(&score(500, "untrusted")), false, min);
        assert_eq!(reason, "Ethos score 500 (untrusted) is untrusted (below 800)");
    }
}
