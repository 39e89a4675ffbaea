//! Cron work: the schedule enqueues a job per tick (keyed by the tick, so
//! several `work` nodes ticking together enqueue it once), a worker runs it.
//!
//! - `prune`: deletes change-feed rows and done jobs older than the retention
//!   (never a change the elected realtime relay has not broadcast yet);
//! - `recheck_issuers`: enqueues a fresh Ethos check of every market that is
//!   not verified yet.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::{
    JobError, Queue,
    outbox::{self, NewJob},
    verification,
};

/// Job kind: prune old rows.
pub const PRUNE: &str = "prune";
/// Job kind: re-check unverified issuers.
pub const RECHECK: &str = "recheck_issuers";

/// Enqueues the job `kind` for the cron tick at `tick` (once across nodes).
pub async fn enqueue_tick(pool: &PgPool, kind: &'static str, tick: DateTime<Utc>) -> Result<Option<i64>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    outbox::enqueue(
        &mut conn,
        &NewJob {
            queue: Queue::Maintenance,
            kind,
            payload: json!({ "tick": tick }),
            idempotency_key: format!("{kind}:{}", tick.timestamp()),
            run_after: None,
        },
    )
    .await
}

/// Runs a maintenance job.
pub async fn run(pool: &PgPool, kind: &str, payload: &Value, retention: Duration) -> Result<Value, JobError> {
    match kind {
        PRUNE => {
            let changes = prune_change_feed(pool, retention).await?;
            let jobs = outbox::prune_done(pool, retention).await?;
            Ok(json!({ "change_feed_rows": changes, "done_jobs": jobs }))
        }
        RECHECK => {
            let round = payload["tick"].as_str().unwrap_or("manual").to_owned();
            let mut conn = pool.acquire().await?;
            let enqueued = verification::enqueue_recheck(&mut conn, &round).await?;
            Ok(json!({ "enqueued": enqueued }))
        }
        other => Err(JobError::Permanent(format!("unknown maintenance job {other:?}"))),
    }
}

/// Deletes change-feed rows older than `retention`, keeping every row the
/// elected realtime relay has not broadcast yet.
pub async fn prune_change_feed(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM app.change_feed
          WHERE created_at < now() - make_interval(secs => $1)
            AND version <= coalesce((SELECT version FROM app.realtime_relay), 9223372036854775807)",
    )
    .bind(retention.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
