//! `work`: the apalis workers (one per queue, concurrency-limited), the cron
//! schedules and the dispatcher, until shutdown.
//!
//! A worker claims its job in the outbox before running it (a job delivered
//! twice runs once) and records the outcome there: done; a transient failure
//! goes back to pending with an exponential backoff ([`backoff`], or the
//! provider's `Retry-After`) and the dispatcher hands it again when due; the
//! last attempt's failure, or a permanent one, is a dead letter. apalis never
//! retries by itself (the handler answers `Ok` or `AbortError`). On shutdown
//! the workers stop taking jobs, running ones get `shutdown_grace` to finish,
//! and whatever this node still holds returns to pending for any node to retry.

use std::{collections::HashMap, str::FromStr, sync::Arc, time::Duration};

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use apalis_redis::RedisStorage;
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    JobError, JobsConfig, Queue, WorkError,
    dispatch::{self, JobRef, Transport},
    maintenance, outbox, reputation, verification, webhooks, worldid,
};

/// What every job handler shares.
struct Context {
    pool: PgPool,
    http: reqwest::Client,
    config: Arc<JobsConfig>,
    /// Webhook deliveries: no redirects (a redirect could aim a signed POST elsewhere).
    webhook_http: reqwest::Client,
    /// The Redis queues, vacuumed by `prune` (empty without Redis).
    redis_storages: Vec<RedisStorage<JobRef>>,
}

macro_rules! build_worker {
    ($name:expr, $backend:expr, $queue:expr, $context:expr) => {{
        WorkerBuilder::new($name)
            .backend($backend)
            .data($context.clone())
            .concurrency($context.config.concurrency_of($queue))
            .catch_panic()
            .build(handle)
    }};
}

/// Runs the workers, cron schedules and dispatcher until `shutdown`.
pub async fn run(pool: PgPool, config: JobsConfig, shutdown: CancellationToken) -> Result<(), WorkError> {
    let maintenance_schedule = schedule(&config.maintenance_cron)?;
    let recheck_schedule = schedule(&config.recheck_cron)?;
    let reputation_schedule = schedule(&config.reputation_cron)?;
    if config.backoff_min.is_zero() || config.backoff_min > config.backoff_max {
        return Err(WorkError::Backoff(format!("{:?} to {:?}", config.backoff_min, config.backoff_max)));
    }
    let http = reqwest::Client::builder().user_agent("animoca-trade").build()?;
    let webhook_http = webhooks::client(config.webhooks_allow_private)?;
    let config = Arc::new(config);
    let redis = match &config.redis_url {
        Some(url) => Some(redis::Client::open(url.as_str())?.get_connection_manager().await?),
        None => None,
    };
    let prefix = match (&redis, &config.redis_prefix) {
        (None, _) => String::new(),
        (Some(_), Some(prefix)) => prefix.clone(),
        (Some(_), None) => format!("{}:jobs", animoca_store::redis_namespace(&pool).await?),
    };
    let storages: Vec<(Queue, RedisStorage<JobRef>)> = match &redis {
        Some(conn) => Queue::ALL
            .into_iter()
            .map(|queue| {
                let queue_config = apalis_redis::Config::default().queue(format!("{prefix}:{}", queue.name()));
                (queue, RedisStorage::<JobRef>::new(conn.clone()).with_config(queue_config))
            })
            .collect(),
        None => Vec::new(),
    };
    let context = Arc::new(Context {
        pool: pool.clone(),
        http,
        config: config.clone(),
        webhook_http,
        redis_storages: storages.iter().map(|(_, storage)| storage.clone()).collect(),
    });

    let mut monitor = Monitor::new();
    let transport = match redis {
        Some(conn) => {
            for (queue, storage) in &storages {
                let (queue, storage) = (*queue, storage.clone());
                let context = context.clone();
                // Redis does not wake an idle worker: it polls for new jobs.
                let poll = IntervalStrategy::new(config.poll_interval.min(std::time::Duration::from_millis(250)));
                monitor = monitor.register(move |run| {
                    let name = format!("{}-{}-{run}", queue.name(), context.config.node);
                    build_worker!(name, PollWith::new(storage.clone(), poll.clone()), queue, context)
                });
            }
            Transport::Redis { conn, storages: storages.into_iter().collect(), epoch_key: format!("{prefix}:epoch") }
        }
        None => {
            let mut senders = HashMap::new();
            for queue in Queue::ALL {
                let (sender, receiver) = mpsc::unbounded_channel::<Task<JobRef>>();
                senders.insert(queue, sender);
                // Shared so a restarted worker reads the same channel.
                let receiver = Arc::new(Mutex::new(receiver));
                let context = context.clone();
                monitor = monitor.register(move |run| {
                    let name = format!("{}-{}-{run}", queue.name(), context.config.node);
                    build_worker!(name, memory_backend(receiver.clone()), queue, context)
                });
            }
            Transport::Memory { senders, primed: false }
        }
    };
    for (kind, schedule) in [
        (maintenance::PRUNE, maintenance_schedule),
        (maintenance::RECHECK, recheck_schedule),
        (reputation::KIND, reputation_schedule),
    ] {
        let context = context.clone();
        monitor = monitor.register(move |run| {
            WorkerBuilder::new(format!("cron-{kind}-{}-{run}", context.config.node))
                .backend(CronScheduler::new(schedule.clone()))
                .data(context.clone())
                .data(CronKind(kind))
                .build(on_tick)
        });
    }
    // Backend errors (Redis down) stop a worker; start it again.
    let monitor = monitor.should_restart(|worker, error| {
        tracing::warn!(worker = worker.name(), %error, "job worker stopped; restarting");
        true
    });

    let dispatcher = tokio::spawn(dispatch::run(pool.clone(), transport, config.clone(), shutdown.clone()));
    let grace = config.shutdown_grace;
    let signal = shutdown.clone();
    let result = monitor
        .shutdown_timeout(grace)
        .run_with_signal(async move {
            signal.cancelled().await;
            Ok(())
        })
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "job workers stopped with an error");
    }
    let _ = dispatcher.await;
    match outbox::release_all(&pool, &config.node).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "returned unfinished jobs to the queue"),
        Err(error) => tracing::warn!(%error, "could not return unfinished jobs; their leases will expire"),
    }
    Ok(())
}

pub(crate) fn schedule(expression: &str) -> Result<cron::Schedule, WorkError> {
    cron::Schedule::from_str(expression)
        .map_err(|error| WorkError::Cron { expression: expression.to_owned(), reason: error.to_string() })
}

/// apalis' in-memory backend reading `receiver` (the dispatcher holds the sender).
fn memory_backend(receiver: Arc<Mutex<mpsc::UnboundedReceiver<Task<JobRef>>>>) -> MemoryStorage<JobRef> {
    let stream = futures_util::stream::unfold(receiver, |receiver| async move {
        let task = receiver.lock().await.recv().await?;
        Some((task, receiver))
    })
    .boxed();
    // Nothing is pushed through the storage itself: the sink only has to be ready.
    let sink = futures_util::sink::drain().sink_map_err(|never| match never {});
    let sink: Box<dyn futures_util::Sink<Task<JobRef>, Error = MemoryStorageError> + Send + Sync + Unpin> =
        Box::new(sink);
    MemoryStorage::new_with(MemorySink::new(Arc::new(futures_util::lock::Mutex::new(sink))), stream)
}

/// Runs one delivered job. Never a plain error to apalis: the outbox decides
/// retries, so an error (e.g. the database away) is logged and the task
/// aborted; the job comes back through its lease or the stale sweep.
async fn handle(job: JobRef, context: Data<Arc<Context>>) -> Result<(), BoxDynError> {
    match run_job(job, &context).await {
        Ok(()) => Ok(()),
        Err(error) if error.downcast_ref::<AbortError>().is_some() => Err(error),
        Err(error) => {
            tracing::warn!(job = job.id, %error, "job could not be run or recorded; it returns through its lease");
            metrics::counter!("jobs_handler_errors_total").increment(1);
            Err(AbortError::new(error).into())
        }
    }
}

async fn run_job(job: JobRef, context: &Context) -> Result<(), BoxDynError> {
    let config = &context.config;
    let Some(claimed) = outbox::claim(&context.pool, job.id, &config.node, config.lease).await? else {
        // Done, dead, or another worker holds it: a duplicate delivery.
        metrics::counter!("jobs_duplicate_deliveries_total").increment(1);
        return Ok(());
    };
    let started = std::time::Instant::now();
    // Finish well inside the lease, or another node would take the job over.
    let limit = config.lease.mul_f64(0.8);
    let outcome = match tokio::time::timeout(limit, execute(context, &claimed)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(JobError::Transient(format!("timed out after {limit:?}"))),
    };
    metrics::histogram!("jobs_run_seconds", "kind" => claimed.kind.clone()).record(started.elapsed().as_secs_f64());
    match outcome {
        Ok(result) => {
            if !outbox::finish(&context.pool, &claimed, &result).await? {
                tracing::warn!(job = claimed.id, "job finished after its lease passed to another worker");
            }
            metrics::counter!("jobs_done_total", "kind" => claimed.kind.clone()).increment(1);
            Ok(())
        }
        Err(JobError::Transient(reason) | JobError::Throttled(reason, _))
            if claimed.attempt >= claimed.max_attempts =>
        {
            dead(context, &claimed, reason).await
        }
        Err(JobError::Permanent(reason)) => dead(context, &claimed, reason).await,
        Err(JobError::Transient(reason)) => retry_later(context, &claimed, reason, None).await,
        Err(JobError::Throttled(reason, after)) => retry_later(context, &claimed, reason, Some(after)).await,
    }
}

/// A failed attempt with attempts left: back to pending in the outbox until
/// its backoff (or the provider's `Retry-After`, if longer) has passed. The
/// queue's copy is acknowledged: the dispatcher hands the job again when due,
/// so a backoff holds no worker slot and survives restarts.
async fn retry_later(
    context: &Context,
    claimed: &outbox::Claimed,
    reason: String,
    retry_after: Option<Duration>,
) -> Result<(), BoxDynError> {
    let queue = Queue::from_name(&claimed.queue).unwrap_or(Queue::Maintenance);
    let delay = backoff(&context.config, queue, claimed.attempt).max(retry_after.unwrap_or_default());
    tracing::info!(job = claimed.id, kind = claimed.kind, attempt = claimed.attempt, ?delay, %reason, "job failed; will retry");
    outbox::retry_later(&context.pool, claimed, &reason, delay).await?;
    metrics::counter!("jobs_retried_total", "kind" => claimed.kind.clone()).increment(1);
    Ok(())
}

/// Out of attempts or refused for good: the dead-letter state (and, for a
/// webhook delivery, the failed delivery), in one transaction, fenced by the
/// attempt.
async fn dead(context: &Context, claimed: &outbox::Claimed, reason: String) -> Result<(), BoxDynError> {
    tracing::warn!(job = claimed.id, kind = claimed.kind, attempt = claimed.attempt, %reason, "job is a dead letter");
    let mut tx = context.pool.begin().await?;
    if outbox::bury(&mut tx, claimed, &reason).await? && claimed.kind == webhooks::KIND {
        webhooks::on_dead(&mut tx, claimed, &reason).await?;
    }
    tx.commit().await?;
    metrics::counter!("jobs_dead_total", "kind" => claimed.kind.clone()).increment(1);
    Err(AbortError::new(reason).into())
}

/// The wait before attempt `attempt + 1`: the queue's base (`backoff_min`, ten
/// times that for webhooks) doubling per attempt, at most `backoff_max`, minus
/// up to 25 % jitter so that jobs failing together do not retry together.
pub fn backoff(config: &JobsConfig, queue: Queue, attempt: i32) -> Duration {
    let base = config.backoff_min.saturating_mul(queue.backoff_scale());
    let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(30);
    let full = base.saturating_mul(1u32 << doublings).min(config.backoff_max);
    let jitter = {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_i32(attempt);
        (hasher.finish() % 1000) as f64 / 1000.0 * 0.25
    };
    full.mul_f64(1.0 - jitter)
}

async fn execute(context: &Context, job: &outbox::Claimed) -> Result<Value, JobError> {
    match job.kind.as_str() {
        verification::KIND => {
            verification::check_issuer(&context.pool, &context.http, &context.config.ethos, job.id, &job.payload).await
        }
        webhooks::KIND => webhooks::deliver(&context.pool, &context.webhook_http, &context.config, job).await,
        animoca_store::jobs::WORLDID_PERSONA => {
            worldid::verify(&context.pool, &context.http, &context.config.worldid, job.id, job.attempt, &job.payload)
                .await
        }
        reputation::KIND => reputation::recompute(&context.pool).await,
        maintenance::PRUNE | maintenance::RECHECK => {
            let mut result = maintenance::run(&context.pool, &job.kind, &job.payload, context.config.retention).await?;
            if job.kind == maintenance::PRUNE && !context.redis_storages.is_empty() {
                result["redis_tasks"] = json!(vacuum_redis(&context.redis_storages).await?);
            }
            Ok(result)
        }
        other => Err(JobError::Permanent(format!("unknown job kind {other:?}"))),
    }
}

/// Drops what apalis keeps in Redis about finished tasks (their data,
/// metadata and results, and the done and dead sets): Postgres has the record.
async fn vacuum_redis(storages: &[RedisStorage<JobRef>]) -> Result<usize, JobError> {
    use apalis_core::backend::Vacuum;
    let mut removed = 0;
    for storage in storages {
        let mut storage = storage.clone();
        removed += storage.vacuum().await.map_err(|error| JobError::Transient(format!("Redis vacuum: {error}")))?;
        let (done, dead) = (storage.get_config().done_jobs_set(), storage.get_config().dead_jobs_set());
        let _: () = redis::cmd("DEL")
            .arg(done)
            .arg(dead)
            .query_async(storage.get_connection())
            .await
            .map_err(|error| JobError::Transient(format!("Redis: {error}")))?;
    }
    Ok(removed)
}

/// Which cron job a schedule enqueues.
#[derive(Debug, Clone, Copy)]
struct CronKind(&'static str);

async fn on_tick(tick: Tick, context: Data<Arc<Context>>, kind: Data<CronKind>) -> Result<(), BoxDynError> {
    let at = i64::try_from(tick.get_timestamp()).ok().and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0));
    let at = at.unwrap_or_else(Utc::now);
    maintenance::enqueue_tick(&context.pool, kind.0.0, at).await?;
    Ok(())
}
