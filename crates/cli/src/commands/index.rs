//! `animoca-trade index`: backfill from `START_BLOCK`, then follow the head.
//! Several may run; one indexes (Postgres advisory lock), the others stand by.

use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder};
use animoca_chain::ChainError;
use animoca_indexer::{Heads, Indexer, IndexerConfig, Leader};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::IndexConfig;

/// Tuning of the indexer.
#[derive(Debug, Clone, clap::Args)]
pub struct IndexArgs {
    /// Most blocks per eth_getLogs request and per database transaction.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_range: u64,
    /// Ranges with at least this many logs write the raw logs on a second database
    /// connection, in parallel with the derived rows (committed first).
    #[arg(long, default_value_t = 5_000)]
    pub parallel_log_store_rows: usize,
    /// Logs per range to aim for: the range size follows the chain's log density.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub target_logs: u64,
    /// Ranges fetched concurrently ahead of the one being written (more needs more memory).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub fetch_ahead: u64,
}

/// Migrates, waits for the indexer lock, then indexes until `shutdown`.
pub async fn run(config: IndexConfig, args: IndexArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    if let Some(addr) = config.metrics_addr {
        crate::telemetry::serve_metrics(addr)?;
    }
    let pool = animoca_store::connect(config.database.clone(), 8).await?;
    animoca_store::migrate(&pool).await?;
    let provider = ProviderBuilder::new().connect_http(config.rpc_url.clone()).erased();
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(|source| ChainError::Rpc { call: "eth_chainId", source })
        .with_context(|| format!("reach RPC_URL {}", config.rpc_url))?;
    if let Some(expected) = config.chain_id {
        anyhow::ensure!(expected == chain_id, ChainError::WrongChain { expected, actual: chain_id });
    }
    let deployment = config.contracts.deployment(chain_id, config.start_block);
    let Some(mut leader) = Leader::acquire(&config.database, chain_id, Duration::from_secs(1), &shutdown).await? else {
        return Ok(());
    };
    // Re-derive first if the tables were built by an older derivation (interruptible).
    match animoca_indexer::rederive::prepare(&pool, &deployment, &shutdown).await {
        Err(animoca_indexer::rederive::RederiveError::Interrupted) => return Ok(()),
        other => other.context("prepare the derived tables")?,
    };
    let mut settings = IndexerConfig::new(chain_id, config.start_block, config.confirmations);
    settings.max_range = args.max_range;
    settings.parallel_log_store_rows = args.parallel_log_store_rows;
    settings.target_logs = usize::try_from(args.target_logs).unwrap_or(usize::MAX);
    settings.fetch_ahead = usize::try_from(args.fetch_ahead).unwrap_or(1);
    settings.retry.rate_cap = config.rpc_max_rps.map(animoca_chain::logs::RateCap::per_second);
    let mut indexer = Indexer::new(pool.clone(), provider, deployment, settings).await?;
    if let Some(ws_url) = &config.rpc_ws_url {
        indexer.follow_heads(Heads::subscribe(ws_url.to_string(), shutdown.clone()));
    }
    tracing::info!(next_block = indexer.next_block().await?, "indexing");
    indexer.run(&mut leader, shutdown).await?;
    pool.close().await;
    Ok(())
}
