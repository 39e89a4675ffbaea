//! Backfill and head following: fetch the logs of a block range, decode, derive
//! and commit them with the checkpoint in one transaction, then move on.

use std::{collections::HashMap, future::IntoFuture, time::Duration};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, U256},
    providers::{DynProvider, Provider},
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
};
use animoca_chain::{
    Deployment,
    bindings::{GovernanceSlashing, MarketAMM, MarketToken},
    logs::{self as rpc, RetryPolicy, RpcReadError},
};
use animoca_domain::{MarketKey, MarketType, Position};
use animoca_store::{
    StoreError,
    batch::{Batch, BlockRow, EventPosition, RawLog},
    indexing,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    candles::OpenBucket,
    decode::{DecodeError, EVENT_TOPICS, Sources},
    derive::{DeriveError, Deriver, Holding, Prior, ProposalInfo},
    events::{ChainEvent, LogMeta},
};

/// What can stop the indexer.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The RPC failed beyond retries.
    #[error(transparent)]
    Rpc(#[from] RpcReadError),
    /// The RPC answered with something unusable (missing fields, unknown block).
    #[error("RPC returned malformed data: {0}")]
    Malformed(String),
    /// A contract call needed for derivation failed.
    #[error("contract call {call} failed: {source}")]
    Call {
        /// What we called.
        call: String,
        /// Why.
        source: Box<alloy::contract::Error>,
    },
    /// A log did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The events contradict stored state.
    #[error(transparent)]
    Derive(#[from] DeriveError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The connection holding the indexer lock closed: another process may index now.
    #[error("lost the indexer lock (its database connection closed)")]
    LostLeadership,
}

impl IndexError {
    /// Failures worth waiting out: the RPC or the database may come back, and an
    /// inconsistent answer (a block that changed while read) is read again.
    pub fn is_transient(&self) -> bool {
        match self {
            IndexError::Rpc(_) | IndexError::Malformed(_) | IndexError::Call { .. } => true,
            IndexError::Store(StoreError::Query(_) | StoreError::Connect { .. }) => true,
            IndexError::Store(_) | IndexError::Decode(_) | IndexError::Derive(_) | IndexError::LostLeadership => false,
        }
    }
}

impl From<sqlx::Error> for IndexError {
    fn from(error: sqlx::Error) -> Self {
        IndexError::Store(StoreError::Query(error))
    }
}

/// Indexer settings.
#[derive(Debug, Clone)]
pub struct IndexerConfig {
    /// Chain id stored with every row.
    pub chain_id: u64,
    /// First block to index when nothing is stored yet.
    pub start_block: u64,
    /// Blocks to stay behind the head (0 follows it).
    pub confirmations: u64,
    /// Largest block range per `eth_getLogs` and per transaction.
    pub max_range: u64,
    /// How often to look for a new head when caught up.
    pub poll_interval: Duration,
    /// Retries of RPC reads.
    pub retry: RetryPolicy,
}

impl IndexerConfig {
    /// Defaults for a chain: ranges of 2,000 blocks, polling every 100 ms.
    pub fn new(chain_id: u64, start_block: u64, confirmations: u64) -> Self {
        Self {
            chain_id,
            start_block,
            confirmations,
            max_range: 2_000,
            poll_interval: Duration::from_millis(100),
            retry: RetryPolicy::default(),
        }
    }
}

/// The indexer of one chain.
pub struct Indexer {
    pool: PgPool,
    provider: DynProvider,
    sources: Sources,
    deriver: Deriver,
    fee_bps: HashMap<Address, u32>,
    config: IndexerConfig,
}

impl Indexer {
    /// Rebuilds the in-memory state from the database: known tokens and the
    /// newest candle of every (market, timeframe). At start-up and after a rollback.
    pub(crate) async fn reload(&mut self) -> Result<(), IndexError> {
        let mut sources = Sources::new(*self.sources.deployment());
        for (token, market) in indexing::market_tokens(&self.pool).await? {
            sources.register_token(token, market);
        }
        let mut deriver = Deriver::new(self.fee_bps.clone());
        for stored in indexing::newest_candles(&self.pool).await? {
            let traders = stored.traders.into_iter().collect();
            deriver.candles_mut().seed(stored.market, stored.timeframe, OpenBucket { candle: stored.candle, traders });
        }
        self.sources = sources;
        self.deriver = deriver;
        Ok(())
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn config(&self) -> &IndexerConfig {
        &self.config
    }

    pub(crate) fn sources(&self) -> &Sources {
        &self.sources
    }

    pub(crate) fn fee_bps(&self) -> &HashMap<Address, u32> {
        &self.fee_bps
    }

    /// Loads what is stored (tokens, newest candles) and the AMMs' fees.
    pub async fn new(
        pool: PgPool,
        provider: DynProvider,
        deployment: Deployment,
        config: IndexerConfig,
    ) -> Result<Self, IndexError> {
        let mut fee_bps = HashMap::new();
        for amm in [deployment.credential_amm, deployment.persona_amm] {
            let contract = MarketAMM::new(amm, provider.clone());
            let fee = rpc::read(&config.retry, "feeBps()", || {
                let contract = contract.clone();
                async move { contract.feeBps().call().await }
            })
            .await?;
            fee_bps.insert(amm, u32::try_from(fee).unwrap_or(u32::MAX));
        }
        let mut indexer = Self {
            pool,
            provider,
            sources: Sources::new(deployment),
            deriver: Deriver::new(fee_bps.clone()),
            fee_bps,
            config,
        };
        indexer.reload().await?;
        Ok(indexer)
    }

    /// The next block to index.
    pub async fn next_block(&self) -> Result<u64, IndexError> {
        Ok(match indexing::checkpoint(&self.pool, self.config.chain_id).await? {
            Some(checkpoint) => checkpoint.block_number + 1,
            None => self.config.start_block,
        })
    }

    /// The newest block old enough to index.
    pub async fn safe_head(&self) -> Result<u64, IndexError> {
        let head = rpc::read(&self.config.retry, "eth_blockNumber", || self.provider.get_block_number()).await?;
        Ok(head.saturating_sub(self.config.confirmations))
    }

    /// Indexes up to the current safe head; returns the last block indexed.
    pub async fn catch_up(&mut self) -> Result<Option<u64>, IndexError> {
        if self.handle_reorg().await?.is_some() {
            metrics::counter!("animoca_indexer_reorgs_total").increment(1);
        }
        let head = self.safe_head().await?;
        let mut from = self.next_block().await?;
        let mut last = None;
        let mut progress = crate::progress::Progress::start(from, head);
        while from <= head {
            let to = head.min(from + self.config.max_range - 1);
            let started = std::time::Instant::now();
            let (logs, timestamp) = self.index_range(from, to).await?;
            progress.committed(to, logs, started.elapsed());
            crate::progress::record_lag(head + self.config.confirmations, to, timestamp);
            last = Some(to);
            from = to + 1;
        }
        if let Some(block) = last {
            progress.finish(block);
        }
        Ok(last)
    }

    /// Backfills, then follows the head until `shutdown` (or until `leader` loses
    /// its lock). Unreachable RPC or database are waited out; events that
    /// contradict the stored state stop the indexer.
    pub async fn run(&mut self, leader: &mut crate::Leader, shutdown: CancellationToken) -> Result<(), IndexError> {
        let mut failures = 0u32;
        loop {
            if !leader.is_held().await {
                return Err(IndexError::LostLeadership);
            }
            let result = tokio::select! {
                result = self.catch_up() => result,
                () = shutdown.cancelled() => return Ok(()),
            };
            match result {
                Ok(Some(block)) => {
                    failures = 0;
                    tracing::debug!(block, "caught up");
                }
                Ok(None) => failures = 0,
                Err(error) if error.is_transient() => {
                    failures = failures.saturating_add(1);
                    let delay = Duration::from_millis(200).saturating_mul(2u32.saturating_pow(failures.min(6)));
                    tracing::error!(%error, ?delay, "indexing failed; retrying the same range");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => return Ok(()),
                    }
                    continue;
                }
                Err(error) => return Err(error),
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Fetches, derives and commits blocks `from..=to`; returns the number of logs
    /// stored and the time of block `to`.
    pub async fn index_range(&mut self, from: u64, to: u64) -> Result<(usize, u64), IndexError> {
        let core = self
            .logs(Filter::new().address(self.sources.core_addresses()).event_signature(EVENT_TOPICS.to_vec()), from, to)
            .await?;
        // Market tokens created in this range emit their mints before the factory
        // event: learn them first, then fetch every known token's transfers.
        for log in &core {
            if let Some(ChainEvent::MarketCreated { market, token, .. }) = self.sources.decode(&log.inner)? {
                self.sources.register_token(token, market);
            }
        }
        let tokens = self.sources.token_addresses();
        let mut logs = core;
        if !tokens.is_empty() {
            let transfers = Filter::new().address(tokens).event_signature(MarketToken::Transfer::SIGNATURE_HASH);
            logs.extend(self.logs(transfers, from, to).await?);
        }
        let mut metas = Vec::with_capacity(logs.len());
        for log in &logs {
            metas.push(log_meta(log)?);
        }
        let mut order: Vec<usize> = (0..logs.len()).collect();
        order.sort_by_key(|&i| (metas[i].block_number, metas[i].log_index));

        let mut batch = Batch { chain_id: self.config.chain_id, from_block: from, ..Batch::default() };
        let mut events = Vec::with_capacity(logs.len());
        for &i in &order {
            let (log, meta) = (&logs[i], metas[i]);
            batch.logs.push(RawLog {
                position: EventPosition {
                    block_number: meta.block_number,
                    block_hash: meta.block_hash,
                    block_timestamp: meta.block_timestamp,
                    tx_hash: meta.tx_hash,
                    log_index: meta.log_index,
                },
                tx_index: meta.tx_index,
                address: log.address(),
                topics: log.topics().to_vec(),
                data: log.data().data.to_vec(),
            });
            if let Some(event) = self.sources.decode(&log.inner)? {
                events.push((meta, event));
            }
        }

        let prior = self.prior(&events).await?;
        self.deriver.derive(&self.sources, &events, prior, &mut batch)?;
        batch.to_block = self.block(to).await?;
        // The range must build on the stored checkpoint: a reorg between the check
        // and the fetch is caught here and handled on the next round.
        if let Some(checkpoint) = indexing::checkpoint(&self.pool, self.config.chain_id).await?
            && checkpoint.block_number + 1 == from
            && self.parent_of(from, &batch.to_block).await? != checkpoint.block_hash
        {
            return Err(IndexError::Malformed(format!("block {from} does not extend the checkpoint: reorg")));
        }
        batch.changes = crate::changes::changes_of(&batch);

        let mut tx = self.pool.begin().await?;
        indexing::write_batch(&mut tx, &batch).await?;
        tx.commit().await?;
        tracing::debug!(from, to, logs = batch.logs.len(), swaps = batch.swaps.len(), "indexed");
        Ok((batch.logs.len(), batch.to_block.timestamp))
    }

    /// Holdings the events touch, and the on-chain parameters of new proposals.
    async fn prior(&self, events: &[(LogMeta, ChainEvent)]) -> Result<Prior, IndexError> {
        let mut keys: Vec<(MarketKey, Address)> = Vec::new();
        let mut proposals = HashMap::new();
        for (meta, event) in events {
            match event {
                ChainEvent::Swap { market, trader, .. } => keys.push((*market, *trader)),
                ChainEvent::Transfer { market, from, to, .. } => {
                    keys.extend([(*market, *from), (*market, *to)].into_iter().filter(|(_, a)| !a.is_zero()));
                }
                ChainEvent::ProposalCreated { proposal_id, .. } => {
                    proposals.insert(*proposal_id, self.proposal_info(*proposal_id, meta.block_number).await?);
                }
                _ => {}
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let mut conn = self.pool.acquire().await?;
        let stored = indexing::holdings(&mut conn, &keys).await?;
        let holdings = stored
            .into_iter()
            .map(|(key, (balance, position)): (_, (U256, Position))| (key, Holding { balance, position }))
            .collect();
        Ok(Prior { holdings, proposals })
    }

    async fn proposal_info(&self, proposal_id: U256, block: u64) -> Result<ProposalInfo, IndexError> {
        let governance = GovernanceSlashing::new(self.sources.deployment().governance, self.provider.clone());
        let p = rpc::read(&self.config.retry, "proposals(id)", || {
            let governance = governance.clone();
            async move { governance.proposals(proposal_id).block(block.into()).call().await }
        })
        .await?;
        let market_type = MarketType::try_from(p.marketType)
            .map_err(|_| IndexError::Malformed(format!("proposal {proposal_id} has market type {}", p.marketType)))?;
        Ok(ProposalInfo {
            market: MarketKey::new(market_type, p.marketId),
            snapshot_block: u64::try_from(p.snapshotBlock).unwrap_or(u64::MAX),
            voting_ends_at: p.votingEndsAt,
            quorum_required: p.quorumRequired,
        })
    }

    async fn logs(&self, filter: Filter, from: u64, to: u64) -> Result<Vec<Log>, IndexError> {
        let mut logs = rpc::get_logs(&self.provider, &filter, from, to, &self.config.retry).await?;
        // Nodes that do not put the block time in logs: read it from the headers.
        let mut times: HashMap<u64, (alloy::primitives::B256, u64)> = HashMap::new();
        for log in &mut logs {
            if log.block_timestamp.is_some() {
                continue;
            }
            let number = log.block_number.unwrap_or_default();
            if let std::collections::hash_map::Entry::Vacant(slot) = times.entry(number) {
                let header = self.block(number).await?;
                slot.insert((header.hash, header.timestamp));
            }
            let (hash, timestamp) = times[&number];
            if log.block_hash != Some(hash) {
                return Err(IndexError::Malformed(format!("block {number} changed while reading it")));
            }
            log.block_timestamp = Some(timestamp);
        }
        Ok(logs)
    }

    /// The canonical header of block `number`, or `None` past the head.
    pub(crate) async fn header(&self, number: u64) -> Result<Option<BlockRow>, IndexError> {
        let block = rpc::read(&self.config.retry, "eth_getBlockByNumber", || {
            self.provider.get_block_by_number(BlockNumberOrTag::Number(number)).into_future()
        })
        .await?;
        Ok(block.map(|block| BlockRow {
            number,
            hash: block.header.hash,
            parent_hash: block.header.parent_hash,
            timestamp: block.header.timestamp,
        }))
    }

    /// Parent hash of block `number`, reusing `known` when it is that block
    /// (following the head, a range is one block).
    async fn parent_of(&self, number: u64, known: &BlockRow) -> Result<alloy::primitives::B256, IndexError> {
        if known.number == number { Ok(known.parent_hash) } else { Ok(self.block(number).await?.parent_hash) }
    }

    async fn block(&self, number: u64) -> Result<BlockRow, IndexError> {
        let block = rpc::read(&self.config.retry, "eth_getBlockByNumber", || {
            self.provider.get_block_by_number(BlockNumberOrTag::Number(number)).into_future()
        })
        .await?
        .ok_or_else(|| IndexError::Malformed(format!("block {number} not found")))?;
        Ok(BlockRow {
            number,
            hash: block.header.hash,
            parent_hash: block.header.parent_hash,
            timestamp: block.header.timestamp,
        })
    }
}

fn log_meta(log: &Log) -> Result<LogMeta, IndexError> {
    let missing = |field: &str| IndexError::Malformed(format!("log without {field}: {log:?}"));
    Ok(LogMeta {
        block_number: log.block_number.ok_or_else(|| missing("blockNumber"))?,
        block_hash: log.block_hash.ok_or_else(|| missing("blockHash"))?,
        block_timestamp: log.block_timestamp.ok_or_else(|| missing("blockTimestamp"))?,
        tx_hash: log.transaction_hash.ok_or_else(|| missing("transactionHash"))?,
        tx_index: log.transaction_index.ok_or_else(|| missing("transactionIndex"))?,
        log_index: log.log_index.ok_or_else(|| missing("logIndex"))?,
    })
}
