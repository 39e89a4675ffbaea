//! The dispatcher: hands due jobs from the outbox to the queue, and hands again
//! what the queue lost.
//!
//! Woken by `NOTIFY animoca_jobs` (a trigger on `app.jobs`) and every poll
//! interval. Each round it:
//! 1. asks the queue whether it lost everything it held — Redis restarted
//!    empty (its epoch key is gone), or this is a fresh in-process queue — and
//!    if so returns every queued job to pending, then sets the key again;
//! 2. pushes due pending jobs, in batches, marking them queued in the same
//!    transaction that locked them (a crash before the commit pushes them
//!    again; the worker's claim makes the duplicate harmless);
//! 3. once per poll interval returns stale jobs to pending (queued too long,
//!    or running past their lease), enqueues Ethos checks of new markets and
//!    produces notifications from indexed events, then pushes again.

use std::{collections::HashMap, sync::Arc, time::Duration};

use apalis::prelude::{Task, TaskSink};
use apalis_redis::RedisStorage;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, postgres::PgListener};
use tokio::{sync::mpsc::UnboundedSender, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{JobsConfig, Queue, events, outbox, verification};

/// What travels through the queue: the outbox row's id. Postgres has the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    /// `app.jobs.id`.
    pub id: i64,
}

/// The queue the dispatcher pushes to.
pub(crate) enum Transport {
    /// apalis-redis, one storage per queue.
    Redis {
        /// For the epoch key.
        conn: redis::aio::ConnectionManager,
        /// Per queue.
        storages: HashMap<Queue, RedisStorage<JobRef>>,
        /// Set with NX: gone means Redis lost its data.
        epoch_key: String,
    },
    /// apalis' in-memory backend, fed through these senders.
    Memory {
        /// Per queue.
        senders: HashMap<Queue, UnboundedSender<Task<JobRef>>>,
        /// False until the first round (a fresh queue holds nothing).
        primed: bool,
    },
}

/// Why a round failed (it is retried next round).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DispatchError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("queue: {0}")]
    Push(String),
}

impl Transport {
    /// True when the queue holds none of what was handed to it before:
    /// Redis lost the epoch key (restarted empty, flushed), or the in-process
    /// queue is fresh. [`Transport::remember`] once the loss is handled.
    async fn lost_everything(&mut self) -> Result<bool, DispatchError> {
        match self {
            Transport::Redis { conn, epoch_key, .. } => {
                let exists: bool = redis::cmd("EXISTS").arg(&*epoch_key).query_async(conn).await?;
                Ok(!exists)
            }
            Transport::Memory { primed, .. } => Ok(!*primed),
        }
    }

    /// Marks the loss handled (only after every queued job went back to pending).
    async fn remember(&mut self) -> Result<(), DispatchError> {
        match self {
            Transport::Redis { conn, epoch_key, .. } => {
                let _: () = redis::cmd("SET").arg(&*epoch_key).arg(1).query_async(conn).await?;
            }
            Transport::Memory { primed, .. } => *primed = true,
        }
        Ok(())
    }

    async fn push(&mut self, queue: Queue, ids: Vec<i64>) -> Result<(), DispatchError> {
        match self {
            Transport::Redis { storages, .. } => {
                let storage =
                    storages.get_mut(&queue).ok_or_else(|| DispatchError::Push(format!("no queue {queue:?}")))?;
                let jobs = ids.into_iter().map(|id| JobRef { id }).collect();
                storage.push_bulk(jobs).await.map_err(|error| DispatchError::Push(error.to_string()))
            }
            Transport::Memory { senders, .. } => {
                let sender = senders.get(&queue).ok_or_else(|| DispatchError::Push(format!("no queue {queue:?}")))?;
                for id in ids {
                    sender
                        .send(Task::new(JobRef { id }))
                        .map_err(|_| DispatchError::Push("workers stopped".to_owned()))?;
                }
                Ok(())
            }
        }
    }
}

/// Longest a dispatch round may take.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);

/// Jobs pushed per transaction.
const BATCH: i64 = 500;

/// Runs until `shutdown`.
pub(crate) async fn run(pool: PgPool, mut transport: Transport, config: Arc<JobsConfig>, shutdown: CancellationToken) {
    let mut listener = None;
    let mut housekeeping_due = Instant::now();
    while !shutdown.is_cancelled() {
        if listener.is_none() {
            listener = listen(&pool).await;
        }
        let housekeeping = Instant::now() >= housekeeping_due;
        if housekeeping {
            housekeeping_due = Instant::now() + config.poll_interval;
        }
        // A round never outlives shutdown, nor hangs on a Redis that went away.
        let result = tokio::select! {
            () = shutdown.cancelled() => break,
            result = tokio::time::timeout(ROUND_TIMEOUT, round(&pool, &mut transport, &config, housekeeping)) => result,
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "job dispatch failed; retrying");
                metrics::counter!("jobs_dispatch_errors_total").increment(1);
            }
            Err(_) => {
                tracing::warn!(timeout = ?ROUND_TIMEOUT, "job dispatch timed out; retrying");
                metrics::counter!("jobs_dispatch_errors_total").increment(1);
            }
        }
        let wait = housekeeping_due.saturating_duration_since(Instant::now()).max(Duration::from_millis(10));
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
            woken = async {
                match listener.as_mut() {
                    Some(listener) => listener.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            } => {
                if let Err(error) = woken {
                    tracing::debug!(%error, "job notifications lost; reconnecting");
                    listener = None;
                }
            }
        }
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen("animoca_jobs").await.ok()?;
    Some(listener)
}

async fn round(
    pool: &PgPool,
    transport: &mut Transport,
    config: &JobsConfig,
    housekeeping: bool,
) -> Result<(), DispatchError> {
    if transport.lost_everything().await? {
        let requeued = outbox::requeue_lost(pool).await?;
        transport.remember().await?;
        if requeued > 0 {
            tracing::warn!(requeued, "the queue lost its jobs (Redis restarted empty?): handing them again");
        }
    }
    // Due jobs first: slow housekeeping never holds them back.
    push_due(pool, transport).await?;
    if housekeeping {
        let stale = outbox::requeue_stale(pool, config.stale_after).await?;
        if stale > 0 {
            tracing::warn!(stale, "jobs queued too long or past their lease: handing them again");
        }
        let new_markets = verification::enqueue_unchecked(pool).await?;
        if new_markets > 0 {
            tracing::info!(new_markets, "enqueued Ethos checks of new markets");
        }
        let notified = events::notify_new(pool, config.large_trade_usdc).await?;
        if notified > 0 {
            tracing::info!(notified, "notifications from indexed events");
        }
        push_due(pool, transport).await?;
    }
    Ok(())
}

/// Hands every due pending job to the queue, in batches.
async fn push_due(pool: &PgPool, transport: &mut Transport) -> Result<(), DispatchError> {
    loop {
        let mut tx = pool.begin().await?;
        let due = outbox::take_due(&mut tx, BATCH).await?;
        if due.is_empty() {
            return Ok(());
        }
        let mut by_queue: HashMap<Queue, Vec<i64>> = HashMap::new();
        let mut unknown = Vec::new();
        for (id, name) in &due {
            match Queue::from_name(name) {
                Some(queue) => by_queue.entry(queue).or_default().push(*id),
                None => unknown.push(*id),
            }
        }
        if !unknown.is_empty() {
            sqlx::query(
                "UPDATE app.jobs SET state = 'dead', last_error = 'no such queue', finished_at = now(), updated_at = now()
                  WHERE id = ANY($1)",
            )
            .bind(&unknown)
            .execute(&mut *tx)
            .await?;
        }
        let ids: Vec<i64> = by_queue.values().flatten().copied().collect();
        for (queue, ids) in by_queue {
            transport.push(queue, ids).await?;
        }
        outbox::mark_queued(&mut tx, &ids).await?;
        tx.commit().await?;
        metrics::counter!("jobs_dispatched_total").increment(ids.len() as u64);
        if (due.len() as i64) < BATCH {
            return Ok(());
        }
    }
}
