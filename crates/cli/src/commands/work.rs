//! `animoca-trade work`: the background job workers; `animoca-trade jobs`:
//! queue statistics and dead-letter retries.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{MigrateConfig, WorkConfig};

/// Connects, migrates, runs the job workers until `shutdown` (running jobs get
/// `JOBS_SHUTDOWN_GRACE_SECS` to finish; the rest return to the queue).
pub async fn run(config: WorkConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    if let Some(addr) = config.metrics_addr {
        crate::telemetry::serve_metrics(addr)?;
    }
    let pool = animoca_store::connect(config.database.clone(), 8).await?;
    animoca_store::migrate(&pool).await?;
    tracing::info!(
        queue = if config.jobs.redis_url.is_some() { "redis" } else { "in process (no REDIS_URL)" },
        ethos = %config.jobs.ethos.base_url,
        node = config.jobs.node,
        "job workers starting"
    );
    animoca_jobs::run(pool.clone(), config.jobs, shutdown).await.context("job workers")?;
    pool.close().await;
    Ok(())
}

/// What `jobs` does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum JobsCommand {
    /// Jobs per queue and state, as JSON (pending, queued, running, done, dead).
    Stats,
    /// Recompute every user's and market's reputation now (queued for the job workers).
    Reputation,
    /// Send dead jobs back to the queue with a fresh attempt budget.
    Retry {
        /// Only this queue's dead jobs.
        #[arg(long)]
        queue: Option<String>,
        /// Only this job.
        #[arg(long)]
        id: Option<i64>,
    },
}

/// Runs a `jobs` subcommand.
pub async fn jobs(config: MigrateConfig, command: JobsCommand) -> anyhow::Result<()> {
    let pool = animoca_store::connect(config.database.clone(), 2).await?;
    animoca_store::migrate(&pool).await?;
    match command {
        JobsCommand::Stats => {
            let stats = animoca_jobs::outbox::stats(&pool).await?;
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "queues": stats }))?);
        }
        JobsCommand::Reputation => {
            let job =
                animoca_jobs::maintenance::enqueue_tick(&pool, animoca_jobs::reputation::KIND, chrono::Utc::now())
                    .await?;
            match job {
                Some(id) => println!("queued reputation job {id}; a running `work` picks it up"),
                None => println!("a reputation job for this second is queued already"),
            }
        }
        JobsCommand::Retry { queue, id } => {
            if let Some(name) = &queue {
                anyhow::ensure!(
                    animoca_jobs::Queue::from_name(name).is_some(),
                    "unknown queue {name:?}; queues: {}",
                    animoca_jobs::Queue::ALL.map(|q| q.name()).join(", ")
                );
            }
            let retried = animoca_jobs::outbox::retry_dead(&pool, queue.as_deref(), id).await?;
            println!("{retried} dead job(s) sent back to the queue");
        }
    }
    pool.close().await;
    Ok(())
}
