//! Inserting background jobs (`app.jobs`, run by `animoca-trade work`). Any
//! process may enqueue one in its own transaction; `animoca-jobs` owns the rest
//! of the table's life (dispatch, claims, outcomes).

use serde_json::Value;
use sqlx::PgConnection;

/// The queue of third-party checks (Ethos, World ID).
pub const VERIFICATION_QUEUE: &str = "verification";
/// Attempts a verification job gets before it is a dead letter.
pub const VERIFICATION_MAX_ATTEMPTS: i32 = 8;
/// Job kind: verify a World ID proof for a persona.
pub const WORLDID_PERSONA: &str = "worldid_persona";

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// The queue that runs it.
    pub queue: &'a str,
    /// What it does.
    pub kind: &'a str,
    /// Its arguments.
    pub payload: Value,
    /// The same key twice is one job.
    pub idempotency_key: String,
    /// Attempts before it is a dead letter.
    pub max_attempts: i32,
    /// Not before (`None`: now).
    pub run_after: Option<chrono::DateTime<chrono::Utc>>,
}

/// Inserts `job` unless a job with its idempotency key exists; returns the new
/// id, `None` for a duplicate. Wakes the dispatchers on commit.
pub async fn enqueue(conn: &mut PgConnection, job: &NewJob<'_>) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO app.jobs (queue, kind, payload, idempotency_key, max_attempts, run_after)
         VALUES ($1, $2, $3, $4, $5, coalesce($6, now()))
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING id",
    )
    .bind(job.queue)
    .bind(job.kind)
    .bind(&job.payload)
    .bind(&job.idempotency_key)
    .bind(job.max_attempts)
    .bind(job.run_after)
    .fetch_optional(conn)
    .await
}

/// Every notification kind the job workers write (webhooks subscribe to some
/// of them, or to all).
pub const NOTIFICATION_KINDS: [&str; 6] =
    ["verification", "proposal_created", "proposal_outcome", "stake_slashed", "large_trade", "webhook_disabled"];
