//! Background jobs (`animoca-trade work`).
//!
//! Every job lives in Postgres ([`outbox`], table `app.jobs`): producers insert
//! it in the same transaction as its cause, with an idempotency key. The
//! [`dispatch`] loop hands due jobs to an apalis queue — Redis when `REDIS_URL`
//! is set (any number of `work` processes share it), else in process — and
//! hands again what the queue lost. Workers ([`runner`]) claim a job in
//! Postgres before running it, so a job delivered twice runs once, and put a
//! failed attempt back in the outbox with an exponential backoff; apalis
//! gives them a concurrency limit per queue, cron schedules and graceful
//! shutdown.
//!
//! Jobs: the Ethos check of every market's issuer/owner ([`verification`]),
//! World ID proofs of personas ([`worldid`]),
//! and maintenance on a cron (pruning the change feed and old jobs, re-checking
//! issuers that are not verified yet).

pub mod dispatch;
pub mod ethos;
pub mod events;
pub mod maintenance;
pub mod notify;
pub mod outbox;
pub mod reputation;
pub mod runner;
pub mod verification;
pub mod webhooks;
pub mod worldid;

use std::time::Duration;

use url::Url;

pub use runner::run;

/// A queue: its own workers, concurrency and attempt budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Third-party checks (Ethos, World ID).
    Verification,
    /// Cron work on our own tables.
    Maintenance,
    /// Webhook deliveries.
    Webhooks,
}

impl Queue {
    /// Every queue.
    pub const ALL: [Queue; 3] = [Queue::Verification, Queue::Maintenance, Queue::Webhooks];

    /// Its name in `app.jobs.queue` and in Redis keys.
    pub fn name(self) -> &'static str {
        match self {
            Queue::Verification => animoca_store::jobs::VERIFICATION_QUEUE,
            Queue::Maintenance => "maintenance",
            Queue::Webhooks => "webhooks",
        }
    }

    /// The queue named `name`.
    pub fn from_name(name: &str) -> Option<Queue> {
        Queue::ALL.into_iter().find(|queue| queue.name() == name)
    }

    /// Multiplier of `backoff_min` for this queue's first retry (webhook
    /// receivers get longer to come back).
    pub fn backoff_scale(self) -> u32 {
        match self {
            Queue::Webhooks => 10,
            Queue::Verification | Queue::Maintenance => 1,
        }
    }

    /// Attempts before a job becomes a dead letter.
    pub fn max_attempts(self) -> i32 {
        match self {
            Queue::Verification => animoca_store::jobs::VERIFICATION_MAX_ATTEMPTS,
            Queue::Maintenance => 3,
            Queue::Webhooks => 6,
        }
    }
}

/// The Worldcoin developer API the SPEC names.
pub const DEFAULT_WORLDCOIN_API_URL: &str = "https://developer.worldcoin.org";

/// How `work` runs.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// The shared queue (`REDIS_URL`); `None`: in process, one node.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key; `None`: `<namespace>:jobs`, the deployment's
    /// namespace read from the database (`animoca_store::redis_namespace`).
    pub redis_prefix: Option<String>,
    /// This process' name in `app.jobs.locked_by` and the workers' names.
    pub node: String,
    /// Ethos API.
    pub ethos: ethos::EthosConfig,
    /// Worldcoin API.
    pub worldid: worldid::WorldIdConfig,
    /// Jobs run at once per queue (`JOBS_CONCURRENCY`).
    pub concurrency: usize,
    /// Per-queue overrides (`JOBS_CONCURRENCY_<QUEUE>`).
    pub queue_concurrency: Vec<(Queue, usize)>,
    /// Backoff before the first retry; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// How long a claimed job is a worker's before others may take it over.
    pub lease: Duration,
    /// A job queued this long without a worker taking it is handed again.
    pub stale_after: Duration,
    /// How often the dispatcher looks for due jobs without being woken.
    pub poll_interval: Duration,
    /// On shutdown, how long running jobs may take to finish.
    pub shutdown_grace: Duration,
    /// Change-feed rows and done jobs older than this are pruned.
    pub retention: Duration,
    /// Cron of the maintenance job (seconds field first: `0 0 * * * *` hourly).
    pub maintenance_cron: String,
    /// Cron of the re-check of issuers not verified yet.
    pub recheck_cron: String,
    /// Cron of the reputation recomputation.
    pub reputation_cron: String,
    /// Trades of at least this many USDC base units notify the market's holders.
    pub large_trade_usdc: alloy_primitives::U256,
    /// Deliver webhooks to private and loopback addresses too (development, tests).
    pub webhooks_allow_private: bool,
}

impl JobsConfig {
    /// Defaults for everything but the URLs.
    pub fn new(ethos_base_url: Url) -> JobsConfig {
        JobsConfig {
            redis_url: None,
            redis_prefix: None,
            node: default_node_name(),
            ethos: ethos::EthosConfig {
                base_url: ethos_base_url.clone(),
                min_score: 1400,
                timeout: Duration::from_secs(10),
            },
            worldid: worldid::WorldIdConfig {
                base_url: Url::parse(DEFAULT_WORLDCOIN_API_URL).ok().unwrap_or_else(|| ethos_base_url.clone()),
                app_id: None,
                action: "verify-persona".to_owned(),
                timeout: Duration::from_secs(10),
            },
            concurrency: 4,
            queue_concurrency: Vec::new(),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            lease: Duration::from_secs(120),
            stale_after: Duration::from_secs(900),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            retention: Duration::from_secs(7 * 24 * 3600),
            maintenance_cron: "0 0 * * * *".to_owned(),
            recheck_cron: "0 30 3 * * *".to_owned(),
            reputation_cron: "0 */15 * * * *".to_owned(),
            large_trade_usdc: alloy_primitives::U256::from(10_000_000_000u64),
            webhooks_allow_private: false,
        }
    }
}

/// Whether `expression` is a cron schedule we can run (six or seven fields,
/// seconds first: `0 0 * * * *` is hourly).
pub fn check_cron(expression: &str) -> Result<(), String> {
    runner::schedule(expression).map(|_| ()).map_err(|error| error.to_string())
}

impl JobsConfig {
    /// Jobs `queue` runs at once on this node.
    pub fn concurrency_of(&self, queue: Queue) -> usize {
        self.queue_concurrency.iter().find(|(q, _)| *q == queue).map_or(self.concurrency, |(_, n)| *n).max(1)
    }
}

/// `host-pid`: unique per process on a host.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "node".to_owned() } else { host };
    format!("{host}-{}", std::process::id())
}

/// The `Retry-After` of a response, in seconds (the HTTP-date form is rare
/// from APIs and is treated as absent).
pub(crate) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(|secs| Duration::from_secs(secs.min(3600)))
}

/// Why a job attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (timeouts, 5xx, database hiccups).
    #[error("{0}")]
    Transient(String),
    /// Rate limited: another attempt, not before this long (`Retry-After`).
    #[error("{0}")]
    Throttled(String, Duration),
    /// Will never succeed (bad payload, a 4xx that is our fault).
    #[error("{0}")]
    Permanent(String),
}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        JobError::Transient(format!("database: {error}"))
    }
}

impl From<animoca_store::StoreError> for JobError {
    fn from(error: animoca_store::StoreError) -> Self {
        JobError::Transient(format!("database: {error}"))
    }
}

/// What can stop `work`.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// Postgres failed at start-up.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis could not be reached at start-up.
    #[error("cannot connect to Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A cron expression does not parse.
    #[error("bad cron expression {expression:?}: {reason}")]
    Cron {
        /// The expression.
        expression: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The backoff bounds are invalid (zero, or min above max).
    #[error("bad retry backoff: {0}")]
    Backoff(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}
