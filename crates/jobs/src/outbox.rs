//! The job outbox (`app.jobs`): every job and its state, in Postgres.
//!
//! A producer inserts a job in the same transaction as what caused it
//! ([`enqueue`]); the dispatcher hands due jobs to the queue ([`take_due`]);
//! a worker [`claim`]s a job before running it, so a job delivered twice runs
//! once, and records the outcome ([`finish`], [`retry_later`], [`bury`]).
//! Whatever the queue loses (a Redis restart, a worker killed) is pushed
//! again ([`requeue_lost`], [`requeue_stale`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::Queue;

/// A job to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The queue that runs it.
    pub queue: Queue,
    /// What it does (the worker dispatches on it).
    pub kind: &'static str,
    /// Its arguments.
    pub payload: Value,
    /// The same key twice is one job.
    pub idempotency_key: String,
    /// Not before.
    pub run_after: Option<DateTime<Utc>>,
}

/// Inserts `job` unless a job with its idempotency key exists; returns the new
/// id, `None` for a duplicate.
pub async fn enqueue(conn: &mut PgConnection, job: &NewJob) -> Result<Option<i64>, sqlx::Error> {
    animoca_store::jobs::enqueue(
        conn,
        &animoca_store::jobs::NewJob {
            queue: job.queue.name(),
            kind: job.kind,
            payload: job.payload.clone(),
            idempotency_key: job.idempotency_key.clone(),
            max_attempts: job.queue.max_attempts(),
            run_after: job.run_after,
        },
    )
    .await
}

/// Locks up to `limit` due pending jobs in `tx` (skipping rows another
/// dispatcher holds); [`mark_queued`] them once the queue has them.
pub(crate) async fn take_due(tx: &mut PgConnection, limit: i64) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, queue FROM app.jobs
          WHERE state = 'pending' AND run_after <= now()
          ORDER BY run_after, id LIMIT $1
          FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(tx)
    .await
}

/// Marks `ids` as handed to the queue.
pub(crate) async fn mark_queued(tx: &mut PgConnection, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE app.jobs SET state = 'queued', enqueued_at = now(), updated_at = now()
          WHERE id = ANY($1) AND state = 'pending'",
    )
    .bind(ids)
    .execute(tx)
    .await?;
    Ok(())
}

/// The queue lost everything it held (Redis restarted empty, or an in-process
/// queue started): every queued job goes back to pending. Running jobs keep
/// their lease; [`requeue_stale`] returns them if their worker is gone.
pub(crate) async fn requeue_lost(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE app.jobs SET state = 'pending', updated_at = now()
          WHERE state = 'queued'",
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Returns to pending what looks lost: queued longer than `queued_for`
/// without a worker taking it, or running past its lease.
pub(crate) async fn requeue_stale(pool: &PgPool, queued_for: Duration) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE app.jobs SET state = 'pending', locked_by = NULL, locked_until = NULL, updated_at = now()
          WHERE (state = 'queued' AND enqueued_at < now() - make_interval(secs => $1))
             OR (state = 'running' AND locked_until < now())",
    )
    .bind(queued_for.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// A job a worker holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// What it does.
    pub kind: String,
    /// Its arguments.
    pub payload: Value,
    /// This attempt's number, from 1 (also the fencing token of the outcome).
    pub attempt: i32,
    /// The last attempt allowed.
    pub max_attempts: i32,
}

/// Takes the job for `lease` on behalf of `worker` unless it is done, dead,
/// waiting out a backoff or held by a live lease: `None` means "not yours (or
/// not now), drop the delivery" — the dispatcher hands it again when due.
pub(crate) async fn claim(
    pool: &PgPool,
    id: i64,
    worker: &str,
    lease: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    let row: Option<(String, String, Value, i32, i32)> = sqlx::query_as(
        "UPDATE app.jobs
            SET state = 'running', attempts = attempts + 1, locked_by = $2,
                locked_until = now() + make_interval(secs => $3), updated_at = now()
          WHERE id = $1
            AND (state = 'queued'
                 OR (state = 'pending' AND run_after <= now())
                 OR (state = 'running' AND locked_until < now()))
         RETURNING queue, kind, payload, attempts, max_attempts",
    )
    .bind(id)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(queue, kind, payload, attempt, max_attempts)| Claimed {
        id,
        queue,
        kind,
        payload,
        attempt,
        max_attempts,
    }))
}

/// Records success. False when the lease was lost meanwhile (another worker
/// took the job over: its outcome counts).
pub(crate) async fn finish(pool: &PgPool, job: &Claimed, result: &Value) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE app.jobs
            SET state = 'done', result = $3, last_error = NULL, locked_by = NULL, locked_until = NULL,
                finished_at = now(), updated_at = now()
          WHERE id = $1 AND state = 'running' AND attempts = $2",
    )
    .bind(job.id)
    .bind(job.attempt)
    .bind(result)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A failed attempt with attempts left: pending again, due after `delay`.
pub(crate) async fn retry_later(pool: &PgPool, job: &Claimed, error: &str, delay: Duration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE app.jobs
            SET state = 'pending', last_error = $3, run_after = now() + make_interval(secs => $4),
                locked_by = NULL, locked_until = NULL, updated_at = now()
          WHERE id = $1 AND state = 'running' AND attempts = $2",
    )
    .bind(job.id)
    .bind(job.attempt)
    .bind(error)
    .bind(delay.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// The dead-letter state: out of attempts, or refused for good.
/// False when the lease was lost meanwhile (the job is not ours to bury).
pub(crate) async fn bury(conn: &mut PgConnection, job: &Claimed, error: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE app.jobs
            SET state = 'dead', last_error = $3, locked_by = NULL, locked_until = NULL,
                finished_at = now(), updated_at = now()
          WHERE id = $1 AND state = 'running' AND attempts = $2",
    )
    .bind(job.id)
    .bind(job.attempt)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// At shutdown: what this worker still holds goes back to pending at once
/// (instead of waiting for its lease to run out).
pub(crate) async fn release_all(pool: &PgPool, worker: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE app.jobs SET state = 'pending', locked_by = NULL, locked_until = NULL, updated_at = now()
          WHERE state = 'running' AND locked_by = $1",
    )
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Sends dead jobs back to pending with a fresh attempt budget: one job by id,
/// or every dead job of a queue (their failed webhook deliveries become
/// pending again). Returns how many.
pub async fn retry_dead(pool: &PgPool, queue: Option<&str>, id: Option<i64>) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let revived: Vec<(String, Value)> = sqlx::query_as(
        "UPDATE app.jobs SET state = 'pending', attempts = 0, run_after = now(), finished_at = NULL, updated_at = now()
          WHERE state = 'dead' AND ($1::text IS NULL OR queue = $1) AND ($2::bigint IS NULL OR id = $2)
         RETURNING kind, payload",
    )
    .bind(queue)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let deliveries: Vec<String> = revived
        .iter()
        .filter(|(kind, _)| kind == crate::webhooks::KIND)
        .filter_map(|(_, payload)| payload["delivery_id"].as_str().map(str::to_owned))
        .collect();
    if !deliveries.is_empty() {
        sqlx::query(
            "UPDATE app.webhook_deliveries SET status = 'pending'
              WHERE delivery_id = ANY($1::text[]::uuid[]) AND status = 'failed'",
        )
        .bind(&deliveries)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(revived.len() as u64)
}

/// Jobs per state of one queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Waiting to be handed to the queue (includes backoff and scheduled jobs).
    pub pending: i64,
    /// In the queue, not started.
    pub queued: i64,
    /// Held by a worker.
    pub running: i64,
    /// Succeeded.
    pub done: i64,
    /// Dead letters: out of attempts or refused.
    pub dead: i64,
    /// Age in seconds of the oldest due pending job (how far behind the queue is).
    pub oldest_due_secs: Option<f64>,
}

/// Jobs per queue and state.
pub async fn stats(pool: &PgPool) -> Result<Vec<QueueStats>, sqlx::Error> {
    sqlx::query_as(
        "SELECT queue,
                count(*) FILTER (WHERE state = 'pending') AS pending,
                count(*) FILTER (WHERE state = 'queued') AS queued,
                count(*) FILTER (WHERE state = 'running') AS running,
                count(*) FILTER (WHERE state = 'done') AS done,
                count(*) FILTER (WHERE state = 'dead') AS dead,
                extract(epoch FROM now() - min(run_after) FILTER (WHERE state = 'pending' AND run_after <= now()))::float8
                    AS oldest_due_secs
           FROM app.jobs GROUP BY queue ORDER BY queue",
    )
    .fetch_all(pool)
    .await
}

/// Deletes finished (done) jobs older than `age`; dead ones stay until retried
/// or deleted by hand. Returns how many.
pub(crate) async fn prune_done(pool: &PgPool, age: Duration) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM app.jobs WHERE state = 'done' AND finished_at < now() - make_interval(secs => $1)")
            .bind(age.as_secs_f64())
            .execute(pool)
            .await?;
    Ok(done.rows_affected())
}
