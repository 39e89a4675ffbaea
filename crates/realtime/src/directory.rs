//! What a `subscribe` needs to know without a database round trip each time:
//! which markets and proposals exist, and the change version this node knows
//! to be committed.
//!
//! A subscription storm (10,000 clients joining one market after a deploy)
//! asks the database once per market: positive answers are cached (markets and
//! proposals are only ever removed by a reorg, after which a subscription to
//! one simply stays quiet), concurrent lookups of one id share one query, and
//! negative answers are never cached (a market may be created a block later).

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};
use std::time::Duration;

use animoca_store::indexing::CHANGES_CHANNEL;
use sqlx::{PgPool, postgres::PgListener};
use tokio_util::sync::CancellationToken;

use crate::channels::Channel;

/// Why a lookup has no positive answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Missing {
    /// The market or proposal does not exist.
    #[error("does not exist")]
    Absent,
    /// The database did not answer.
    #[error("{0}")]
    Unavailable(String),
}

/// Existence of markets and proposals, and the committed change version.
#[derive(Clone)]
pub struct Directory {
    pool: PgPool,
    exists: moka::future::Cache<Channel, ()>,
    version: Arc<AtomicI64>,
}

impl Directory {
    /// A directory over `pool`; [`Directory::watch_version`] keeps its version current.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, exists: moka::future::Cache::new(100_000), version: Arc::default() }
    }

    /// Whether the market or proposal of `channel` exists (other channels always do).
    pub async fn check(&self, channel: &Channel) -> Result<(), Missing> {
        if !matches!(channel, Channel::Market(_) | Channel::Proposal(_)) {
            return Ok(());
        }
        let pool = self.pool.clone();
        let channel = *channel;
        self.exists
            .try_get_with(channel, Box::pin(async move { lookup(&pool, &channel).await }))
            .await
            .map_err(|error| (*error).clone())
    }

    /// A change version whose changes are all committed: a client that refetches
    /// from the API after hearing it has everything up to it.
    pub fn version(&self) -> i64 {
        self.version.load(Ordering::Acquire)
    }

    /// Follows the committed change version (`NOTIFY animoca_changes <version>`)
    /// until `shutdown`; re-reads it after every reconnection.
    pub async fn watch_version(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.follow(&shutdown).await {
                tracing::warn!(%error, "change version watcher interrupted; retrying in 1 s");
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    async fn follow(&self, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        let current: i64 = sqlx::query_scalar("SELECT version FROM app.change_version").fetch_one(&self.pool).await?;
        self.version.fetch_max(current, Ordering::AcqRel);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                note = listener.try_recv() => match note? {
                    Some(note) => {
                        if let Ok(version) = note.payload().parse::<i64>() {
                            self.version.fetch_max(version, Ordering::AcqRel);
                        }
                    }
                    // The connection dropped: notifications may have been missed.
                    None => return Ok(()),
                },
            }
        }
    }
}

async fn lookup(pool: &PgPool, channel: &Channel) -> Result<(), Missing> {
    let query = match channel {
        Channel::Market(id) => {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM derived.markets WHERE market_id = $1)").bind(id.to_vec())
        }
        Channel::Proposal(id) => {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM derived.proposals WHERE proposal_id = $1::numeric)")
                .bind(id.to_string())
        }
        _ => return Ok(()),
    };
    match query.fetch_one(pool).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Missing::Absent),
        Err(error) => Err(Missing::Unavailable(error.to_string())),
    }
}
