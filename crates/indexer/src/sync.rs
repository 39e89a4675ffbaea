//! Backfill and head following: fetch the logs of a block range, decode, derive
//! and commit them with the checkpoint in one transaction, then move on.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, U256},
    providers::DynProvider,
    rpc::types::Log,
    sol_types::SolCall,
};
use animoca_chain::{
    Deployment,
    bindings::{GovernanceSlashing, MarketAMM},
    logs::{self as rpc, RetryPolicy, RpcReadError},
};
use animoca_domain::MarketKey;
use animoca_store::{
    StoreError,
    batch::{Batch, BlockRow, CallResultRow, EventPosition, RawLog},
    indexing,
};
use foldhash::{HashMap, HashMapExt};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    candles::OpenBucket,
    decode::{DecodeError, Sources},
    derive::{DeriveError, Deriver, Holding, Prior, ProposalInfo},
    events::{ChainEvent, LogMeta},
    fetch::{FetchedRange, Fetcher},
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
    /// Re-deriving the database (an older derivation version) failed.
    #[error("re-deriving from the log store failed: {0}")]
    Rederive(#[from] crate::rederive::RederiveError),
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
            // Only this process writes (leader lock): a moved checkpoint means a write of
            // ours finished after we gave up on it; reloading the state resolves it.
            IndexError::Store(
                StoreError::Query(_) | StoreError::Connect { .. } | StoreError::CheckpointMoved { .. },
            ) => true,
            IndexError::Rederive(crate::rederive::RederiveError::Store(
                StoreError::Query(_) | StoreError::Connect { .. },
            )) => true,
            IndexError::Store(_)
            | IndexError::Decode(_)
            | IndexError::Derive(_)
            | IndexError::Rederive(_)
            | IndexError::LostLeadership => false,
        }
    }
}

impl From<sqlx::Error> for IndexError {
    fn from(error: sqlx::Error) -> Self {
        IndexError::Store(StoreError::Query(error))
    }
}

async fn wake_listener(pool: &PgPool) -> Option<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await.ok()?;
    listener.listen(animoca_store::indexing::WAKE_CHANNEL).await.ok()?;
    Some(listener)
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
    /// Logs a range should hold: the range size adapts to the chain's log
    /// density (memory and transaction size stay bounded, sparse spans go fast).
    pub target_logs: usize,
    /// Ranges with at least this many logs store them on a second connection, in
    /// parallel with the derived rows (PostgreSQL runs one backend per connection).
    pub parallel_log_store_rows: usize,
    /// Ranges fetched ahead of the one being derived and written (at least 1).
    /// A range with more than twice `target_logs` is written in parts.
    pub fetch_ahead: usize,
    /// How often to look for a new head when caught up.
    pub poll_interval: Duration,
    /// Retries of RPC reads.
    pub retry: RetryPolicy,
}

impl IndexerConfig {
    /// Defaults for a chain: ranges of up to 2,000 blocks and about 30,000 logs,
    /// one fetched ahead, polling every 100 ms.
    pub fn new(chain_id: u64, start_block: u64, confirmations: u64) -> Self {
        Self {
            chain_id,
            start_block,
            confirmations,
            max_range: 2_000,
            target_logs: 30_000,
            parallel_log_store_rows: 5_000,
            fetch_ahead: 1,
            poll_interval: Duration::from_millis(100),
            retry: RetryPolicy::default(),
        }
    }
}

/// The indexer of one chain.
///
/// A catch-up is a pipeline: ranges are fetched ahead (`fetch_ahead` RPC tasks),
/// derived in order on this task, and written by a task of their own, so range
/// N is committed while N+1 is derived and N+2 fetched. One transaction per
/// range, with the checkpoint; the in-memory state (tokens, open candles, the
/// newest block) is reloaded from the database after anything goes wrong.
pub struct Indexer {
    pool: PgPool,
    fetcher: Fetcher,
    sources: Sources,
    deriver: Deriver,
    fee_bps: HashMap<Address, u32>,
    config: IndexerConfig,
    /// The newest stored block: what the next range must extend.
    tip: Option<indexing::Checkpoint>,
    /// Holdings written by the range in flight (the database may not have them yet).
    in_flight: HashMap<(MarketKey, Address), Holding>,
    /// The in-memory state may be ahead of the database (a range was derived
    /// but its write did not finish): reload before going on.
    stale: bool,
    /// New-head notifications, when the node offers a WebSocket.
    heads: Option<crate::Heads>,
}

/// How a pipeline run ended.
enum Flow {
    /// Every range up to this block is committed (`None`: there was nothing to do).
    Done(Option<u64>),
    /// A fetched range does not extend the stored chain.
    Reorg,
}

/// What the write task reports for a committed range.
struct Written {
    last: BlockRow,
    logs: usize,
    took: Duration,
}

impl Indexer {
    /// Rebuilds the in-memory state from the database: known tokens, the newest
    /// candle of every (market, timeframe) and the checkpoint. At start-up,
    /// after a rollback and after a failed range.
    pub(crate) async fn reload(&mut self) -> Result<(), IndexError> {
        // Until this finishes, nothing in memory can be trusted.
        self.stale = true;
        let mut sources = Sources::new(*self.sources.deployment());
        for (token, market) in indexing::market_tokens(&mut *self.pool.acquire().await?).await? {
            sources.register_token(token, market);
        }
        let mut deriver = Deriver::new(self.fee_bps.clone());
        for stored in indexing::newest_candles(&self.pool).await? {
            let traders = stored.traders.into_iter().collect();
            deriver.candles_mut().seed(stored.market, stored.timeframe, OpenBucket { candle: stored.candle, traders });
        }
        // Logs of a range whose transaction did not commit (see `write`).
        let orphans = indexing::delete_logs_above(&self.pool, self.config.chain_id).await?;
        if orphans > 0 {
            tracing::info!(orphans, "removed logs above the checkpoint left by an interrupted range");
        }
        self.sources = sources;
        self.deriver = deriver;
        self.tip = indexing::checkpoint(&self.pool, self.config.chain_id).await?;
        self.in_flight.clear();
        self.stale = false;
        Ok(())
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn config(&self) -> &IndexerConfig {
        &self.config
    }

    /// The newest stored block, as of the last reload or commit.
    pub(crate) fn tip(&self) -> Option<indexing::Checkpoint> {
        self.tip
    }

    pub(crate) fn sources(&self) -> &Sources {
        &self.sources
    }

    pub(crate) fn fee_bps(&self) -> &HashMap<Address, u32> {
        &self.fee_bps
    }

    /// Loads what is stored (tokens, newest candles, checkpoint) and the AMMs' fees.
    pub async fn new(
        pool: PgPool,
        provider: DynProvider,
        deployment: Deployment,
        config: IndexerConfig,
    ) -> Result<Self, IndexError> {
        let mut fee_bps = HashMap::new();
        let mut calls = Vec::new();
        for amm in [deployment.credential_amm, deployment.persona_amm] {
            let contract = MarketAMM::new(amm, provider.clone());
            let fee = rpc::read(&config.retry, "feeBps()", || {
                let contract = contract.clone();
                async move { contract.feeBps().call().await }
            })
            .await?;
            fee_bps.insert(amm, u32::try_from(fee).unwrap_or(u32::MAX));
            // `feeBps` is immutable: stored at block 0, which no rollback reaches.
            calls.push(CallResultRow {
                block_number: 0,
                to: amm,
                calldata: MarketAMM::feeBpsCall::new(()).abi_encode(),
                result: MarketAMM::feeBpsCall::abi_encode_returns(&fee),
            });
        }
        let mut conn = pool.acquire().await?;
        indexing::write_call_results(&mut conn, config.chain_id, &calls).await?;
        drop(conn);
        // Records the contracts; re-derives tables built by an older derivation.
        // (`index` calls this first, interruptibly; then this finds it done.)
        let chain = Deployment { chain_id: config.chain_id, ..deployment };
        crate::rederive::prepare(&pool, &chain, &CancellationToken::new()).await?;
        let mut indexer = Self {
            pool,
            fetcher: Fetcher::new(provider, config.retry.clone()),
            sources: Sources::new(deployment),
            deriver: Deriver::new(fee_bps.clone()),
            fee_bps,
            config,
            tip: None,
            in_flight: HashMap::new(),
            stale: false,
            heads: None,
        };
        indexer.reload().await?;
        Ok(indexer)
    }

    /// Wakes [`Indexer::run`] on every head `heads` announces, besides polling.
    pub fn follow_heads(&mut self, heads: crate::Heads) {
        self.heads = Some(heads);
    }

    /// The next block to index (from the database).
    pub async fn next_block(&self) -> Result<u64, IndexError> {
        Ok(match indexing::checkpoint(&self.pool, self.config.chain_id).await? {
            Some(checkpoint) => checkpoint.block_number + 1,
            None => self.config.start_block,
        })
    }

    /// The newest block old enough to index.
    pub async fn safe_head(&self) -> Result<u64, IndexError> {
        Ok(self.fetcher.head().await?.saturating_sub(self.config.confirmations))
    }

    /// Indexes up to the current safe head; returns the last block indexed
    /// (`None` when there was nothing new).
    pub async fn catch_up(&mut self) -> Result<Option<u64>, IndexError> {
        // A reorg is handled, then indexing resumes; a chain that keeps changing
        // under us is reported (and retried by `run`).
        for _ in 0..8 {
            if self.stale {
                self.reload().await?;
            }
            let head = self.safe_head().await?;
            let from = self.tip.map_or(self.config.start_block, |tip| tip.block_number + 1);
            if from > head {
                // Nothing new; the newest stored block may still have been replaced.
                match self.handle_reorg().await? {
                    None => return Ok(None),
                    Some(_) => {
                        metrics::counter!("animoca_indexer_reorgs_total").increment(1);
                        continue;
                    }
                }
            }
            self.stale = true;
            let flow = self.pipeline(from, head).await?;
            self.stale = false;
            match flow {
                Flow::Done(last) => return Ok(last),
                Flow::Reorg => {
                    if self.handle_reorg().await?.is_some() {
                        metrics::counter!("animoca_indexer_reorgs_total").increment(1);
                    }
                }
            }
        }
        Err(IndexError::Malformed("the chain keeps reorganising under the indexer".to_owned()))
    }

    /// Backfills, then follows the head until `shutdown` (or until `leader` loses
    /// its lock). Unreachable RPC or database are waited out; events that
    /// contradict the stored state stop the indexer.
    pub async fn run(&mut self, leader: &mut crate::Leader, shutdown: CancellationToken) -> Result<(), IndexError> {
        let mut failures = 0u32;
        let mut wake = wake_listener(&self.pool).await;
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
            let new_head = async {
                match self.heads.as_mut() {
                    Some(heads) => heads.changed().await,
                    None => std::future::pending().await,
                }
            };
            // The API asks for a transaction it is proving to be ingested now.
            let asked = async {
                match wake.as_mut() {
                    Some(listener) => {
                        if listener.recv().await.is_err() {
                            // Lost: polling goes on; listen again on the next round.
                            wake = None;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = new_head => {}
                () = asked => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            if wake.is_none() {
                wake = wake_listener(&self.pool).await;
            }
        }
    }

    /// Fetches, derives and commits blocks `from..=to` as one range, without
    /// the pipeline; returns the number of logs stored and the time of block `to`.
    pub async fn index_range(&mut self, from: u64, to: u64) -> Result<(usize, u64), IndexError> {
        self.stale = true;
        let range = self.fetcher.range(self.sources.log_addresses(), self.sources.discovered_tokens().len(), from, to);
        let range = range.await?;
        if let Some(tip) = self.tip
            && tip.block_number + 1 == from
            && range.first.parent_hash != tip.block_hash
        {
            return Err(IndexError::Malformed(format!("block {from} does not extend the checkpoint: reorg")));
        }
        let batch = self.derive_range(range).await?;
        let written = write(self.pool.clone(), batch, self.config.parallel_log_store_rows).await?;
        self.reload().await?;
        Ok((written.logs, written.last.timestamp))
    }

    /// Indexes `from..=head` through the pipeline.
    async fn pipeline(&mut self, from: u64, head: u64) -> Result<Flow, IndexError> {
        let mut tasks = Tasks::default();
        let result = self.run_pipeline(from, head, &mut tasks).await;
        // Whatever happened, nothing may keep writing behind our back.
        for fetch in tasks.fetches.drain(..) {
            fetch.abort();
        }
        // (`run_pipeline` awaits its writes unless it failed: then the outcome of
        // the last one does not matter, the state is reloaded either way.)
        if let Some(write) = tasks.write.take() {
            let _ = write.await;
        }
        result
    }

    async fn run_pipeline(&mut self, from: u64, head: u64, tasks: &mut Tasks) -> Result<Flow, IndexError> {
        let mut progress = crate::progress::Progress::start(from, head);
        let mut next = from;
        let max_range = self.config.max_range.max(1);
        // Blocks per range: starts small, then follows the log density (growing at most 1.5x).
        let mut span = max_range.min(INITIAL_SPAN);
        let mut expected_parent = self.tip.map(|tip| tip.block_hash);
        let mut last = None;
        let mut ranges = 0usize;
        loop {
            while tasks.fetches.len() < self.config.fetch_ahead.max(1) && next <= head {
                let to = head.min(next.saturating_add(span - 1));
                let fetcher = self.fetcher.clone();
                let (addresses, known) = (self.sources.log_addresses(), self.sources.discovered_tokens().len());
                tasks.fetches.push_back(tokio::spawn(async move { fetcher.range(addresses, known, next, to).await }));
                next = to.saturating_add(1);
            }
            let Some(fetch) = tasks.fetches.pop_front() else { break };
            let mut phase = Instant::now();
            let range = fetch.await.map_err(join_error)??;
            lap(&mut phase, "wait_fetch");
            span = next_span(span, &range, self.config.target_logs, max_range);
            if expected_parent.is_some_and(|parent| parent != range.first.parent_hash) {
                tracing::warn!(block = range.from, "range does not extend the stored chain: reorg");
                if let Some(write) = tasks.write.take() {
                    self.committed(write.await.map_err(join_error)??, head, &mut progress);
                }
                self.in_flight.clear();
                return Ok(Flow::Reorg);
            }
            expected_parent = Some(range.last.hash);
            for part in self.split(range).await? {
                let batch = self.derive_range(part).await?;
                phase = Instant::now();
                if let Some(write) = tasks.write.take() {
                    self.committed(write.await.map_err(join_error)??, head, &mut progress);
                }
                lap(&mut phase, "wait_write");
                last = Some(batch.to_block.number);
                self.in_flight = batch
                    .balances
                    .iter()
                    .map(|b| ((b.market, b.holder), Holding { balance: b.balance, position: b.position }))
                    .collect();
                tasks.write = Some(tokio::spawn(write(self.pool.clone(), batch, self.config.parallel_log_store_rows)));
                ranges += 1;
            }
        }
        if let Some(write) = tasks.write.take() {
            self.committed(write.await.map_err(join_error)??, head, &mut progress);
        }
        self.in_flight.clear();
        if let Some(block) = last {
            progress.finish(block);
        }
        if ranges >= VACUUM_AFTER_RANGES {
            indexing::analyze_grown_tables(&self.pool).await?;
            // In the background: following the head must not wait for it (VACUUM
            // does not block the writes of the next blocks).
            let pool = self.pool.clone();
            tokio::spawn(async move {
                if let Err(error) = indexing::vacuum_hot_tables(&pool).await {
                    tracing::warn!(%error, "vacuum after the backfill failed");
                }
            });
        }
        Ok(Flow::Done(last))
    }

    /// Bookkeeping after a range's transaction committed.
    fn committed(&mut self, written: Written, head: u64, progress: &mut crate::progress::Progress) {
        let last = written.last;
        self.tip = Some(indexing::Checkpoint { block_number: last.number, block_hash: last.hash });
        progress.committed(last.number, written.logs, written.took);
        crate::progress::record_lag(head + self.config.confirmations, last.number, last.timestamp);
    }

    /// Cuts a range that came back with more than twice `target_logs` logs into
    /// parts of about `target_logs` at block boundaries (reading the header of each
    /// part's last block), so that no transaction and no batch in memory grows with
    /// a sudden jump in the chain's log density.
    async fn split(&self, range: FetchedRange) -> Result<Vec<FetchedRange>, IndexError> {
        let target = self.config.target_logs.max(1);
        if range.logs.len() <= target.saturating_mul(2) || range.from == range.to {
            return Ok(vec![range]);
        }
        let mut per_block: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
        for log in &range.logs {
            *per_block.entry(log.block_number.unwrap_or_default()).or_default() += 1;
        }
        let mut ends = Vec::new();
        let mut count = 0;
        for (&block, &logs) in &per_block {
            count += logs;
            if count >= target && block < range.to {
                ends.push(block);
                count = 0;
            }
        }
        let headers = futures_util::future::try_join_all(ends.iter().map(|&block| self.fetcher.block(block))).await?;
        let FetchedRange { from, to, mut logs, first, last, tokens_known } = range;
        logs.sort_by_key(|log| (log.block_number.unwrap_or_default(), log.log_index.unwrap_or_default()));
        let mut parts = Vec::with_capacity(headers.len() + 1);
        let mut start = from;
        let mut rest = logs.into_iter().peekable();
        for header in headers.into_iter().map(Some).chain([None]) {
            let (end, part_last) = header.map_or((to, last), |h| (h.number, h));
            let mut part_logs = Vec::new();
            while let Some(log) = rest.next_if(|log| log.block_number.unwrap_or_default() <= end) {
                if log.block_number == Some(end) && log.block_hash != Some(part_last.hash) {
                    return Err(IndexError::Malformed(format!("block {end} changed while reading it")));
                }
                part_logs.push(log);
            }
            let part_first = if start == from { first } else { BlockRow { number: start, ..BlockRow::default() } };
            parts.push(FetchedRange {
                from: start,
                to: end,
                logs: part_logs,
                first: part_first,
                last: part_last,
                tokens_known,
            });
            start = end + 1;
        }
        tracing::debug!(from, to, parts = parts.len(), "split a dense range");
        Ok(parts)
    }

    /// Decodes and derives a fetched range into a batch (learning the market
    /// tokens it creates, and fetching their transfers if the range's filter
    /// did not know them yet).
    async fn derive_range(&mut self, range: FetchedRange) -> Result<Batch, IndexError> {
        let mut phase = Instant::now();
        let FetchedRange { from, to, mut logs, first: _, last, tokens_known } = range;
        // Market tokens created in this range emit their mints before the factory
        // event: learn them first, then fetch any transfers the filter missed.
        for log in &logs {
            if let Some(ChainEvent::MarketCreated { market, token, .. }) = self.sources.decode(&log.inner)? {
                self.sources.register_token(token, market);
            }
        }
        let missed = self.sources.discovered_tokens().get(tokens_known..).unwrap_or_default().to_vec();
        if !missed.is_empty() {
            logs.extend(self.fetcher.transfers(missed, from, to).await?);
            lap(&mut phase, "fetch_new_tokens");
        }
        let mut metas = Vec::with_capacity(logs.len());
        for log in &logs {
            metas.push(log_meta(log)?);
        }
        let mut order: Vec<usize> = (0..logs.len()).collect();
        order.sort_by_key(|&i| (metas[i].block_number, metas[i].log_index));

        let mut batch = Batch { chain_id: self.config.chain_id, from_block: from, to_block: last, ..Batch::default() };
        let mut events = Vec::with_capacity(logs.len());
        batch.logs.reserve(logs.len());
        for &i in &order {
            let (log, meta) = (&logs[i], metas[i]);
            if let Some(event) = self.sources.decode(&log.inner)? {
                events.push((meta, event));
            }
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
        }
        drop(logs);
        lap(&mut phase, "decode");
        let (prior, calls) = self.prior(&events).await?;
        batch.call_results = calls;
        lap(&mut phase, "read_prior");
        self.deriver.derive(&self.sources, &events, prior, &mut batch)?;
        batch.changes = crate::changes::changes_of(&batch);
        lap(&mut phase, "derive");
        Ok(batch)
    }

    /// Holdings the events touch, and the on-chain parameters of new proposals
    /// (with the view calls that read them, to store).
    async fn prior(&self, events: &[(LogMeta, ChainEvent)]) -> Result<(Prior, Vec<CallResultRow>), IndexError> {
        let mut proposals = HashMap::new();
        let mut calls = Vec::new();
        for (meta, event) in events {
            if let ChainEvent::ProposalCreated { proposal_id, .. } = event {
                let (info, call) = self.proposal_info(*proposal_id, meta.block_number).await?;
                proposals.insert(*proposal_id, info);
                calls.push(call);
            }
        }
        let mut keys = crate::derive::holding_keys(events);
        // The range in flight wrote these; the database may not show them yet.
        let mut holdings: HashMap<(MarketKey, Address), Holding> = HashMap::new();
        keys.retain(|key| match self.in_flight.get(key) {
            Some(holding) => {
                holdings.insert(*key, *holding);
                false
            }
            None => true,
        });
        let mut conn = self.pool.acquire().await?;
        for (key, (balance, position)) in indexing::holdings(&mut conn, &keys).await? {
            holdings.insert(key, Holding { balance, position });
        }
        Ok((Prior { holdings, proposals }, calls))
    }

    async fn proposal_info(&self, proposal_id: U256, block: u64) -> Result<(ProposalInfo, CallResultRow), IndexError> {
        let governance = GovernanceSlashing::new(self.sources.deployment().governance, self.fetcher.provider().clone());
        let p = rpc::read(&self.config.retry, "proposals(id)", || {
            let governance = governance.clone();
            async move { governance.proposals(proposal_id).block(block.into()).call().await }
        })
        .await?;
        let call = CallResultRow {
            block_number: block,
            to: *governance.address(),
            calldata: GovernanceSlashing::proposalsCall::new((proposal_id,)).abi_encode(),
            result: GovernanceSlashing::proposalsCall::abi_encode_returns(&p),
        };
        let info = ProposalInfo::from_view(&p)
            .ok_or_else(|| IndexError::Malformed(format!("proposal {proposal_id} has market type {}", p.marketType)))?;
        Ok((info, call))
    }

    /// The canonical header of block `number`, or `None` past the head.
    pub(crate) async fn header(&self, number: u64) -> Result<Option<BlockRow>, IndexError> {
        self.fetcher.header(number).await
    }
}

/// A catch-up of at least this many ranges (a backfill) refreshes the planner's
/// statistics and vacuums the per-market tables before following the head.
const VACUUM_AFTER_RANGES: usize = 20;

/// Blocks in the first range of a catch-up, before the log density is known.
const INITIAL_SPAN: u64 = 20;

/// The size of the next range: what would have held `target_logs` at the density of
/// `fetched`, at most 1.5 times the current size, within `1..=max_range`.
fn next_span(current: u64, fetched: &FetchedRange, target_logs: usize, max_range: u64) -> u64 {
    let blocks = fetched.to - fetched.from + 1;
    let logs = u64::try_from(fetched.logs.len()).unwrap_or(u64::MAX).max(1);
    let target = u64::try_from(target_logs).unwrap_or(u64::MAX).max(1);
    let ideal = blocks.saturating_mul(target) / logs;
    ideal.min(current.saturating_add(current.div_ceil(2))).clamp(1, max_range)
}

/// The tasks a pipeline run has in flight.
#[derive(Default)]
struct Tasks {
    fetches: VecDeque<JoinHandle<Result<FetchedRange, IndexError>>>,
    write: Option<JoinHandle<Result<Written, IndexError>>>,
}

/// Writes and commits one range (a task of its own, beside the next range's derive).
///
/// A large range writes its raw logs on a second connection, in parallel with the
/// derived rows, and commits them first; the range (with the checkpoint) commits
/// only after them. If it then fails, logs above the checkpoint are left over:
/// [`Indexer::reload`], which always runs before a failed range is retried,
/// deletes them.
async fn write(pool: PgPool, batch: Batch, parallel_log_store_rows: usize) -> Result<Written, IndexError> {
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    if batch.logs.len() >= parallel_log_store_rows {
        // Held until this transaction ends: no orphan cleanup between the two commits.
        indexing::lock_log_store(&mut tx, batch.chain_id).await?;
        let log_store = async {
            let mut logs_tx = pool.begin().await?;
            indexing::write_log_store(&mut logs_tx, &batch).await?;
            logs_tx.commit().await?;
            Ok::<_, IndexError>(())
        };
        let (logs, derived) = tokio::join!(log_store, indexing::write_batch_without_logs(&mut tx, &batch));
        derived?;
        logs?;
    } else {
        indexing::write_batch(&mut tx, &batch).await?;
    }
    let mut phase = Instant::now();
    tx.commit().await?;
    lap(&mut phase, "commit");
    metrics::histogram!("animoca_indexer_phase_seconds", "phase" => "write").record(started.elapsed().as_secs_f64());
    tracing::debug!(
        from = batch.from_block,
        to = batch.to_block.number,
        logs = batch.logs.len(),
        took_ms = started.elapsed().as_millis(),
        "indexed"
    );
    Ok(Written { last: batch.to_block, logs: batch.logs.len(), took: started.elapsed() })
}

fn join_error(error: tokio::task::JoinError) -> IndexError {
    IndexError::Malformed(format!("indexer task failed: {error}"))
}

/// Records the time since `since` as phase `phase` of a range and restarts the clock.
fn lap(since: &mut Instant, phase: &'static str) {
    let now = Instant::now();
    metrics::histogram!("animoca_indexer_phase_seconds", "phase" => phase)
        .record(now.duration_since(*since).as_secs_f64());
    *since = now;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(from: u64, to: u64, logs: usize) -> FetchedRange {
        FetchedRange {
            from,
            to,
            logs: vec![Log::default(); logs],
            first: BlockRow::default(),
            last: BlockRow::default(),
            tokens_known: 0,
        }
    }

    #[test]
    fn ranges_follow_the_log_density_within_bounds() {
        // 20 blocks of 600 logs: 30,000 logs fit in 50 blocks, but growth is at most 1.5x.
        assert_eq!(next_span(20, &fetched(1, 20, 12_000), 30_000, 2_000), 30);
        assert_eq!(next_span(40, &fetched(21, 60, 24_000), 30_000, 2_000), 50);
        // Denser than expected: shrink at once.
        assert_eq!(next_span(50, &fetched(61, 110, 150_000), 30_000, 2_000), 10);
        // Empty ranges grow up to max_range; never below one block.
        assert_eq!(next_span(1_500, &fetched(1, 1_500, 0), 30_000, 2_000), 2_000);
        assert_eq!(next_span(1, &fetched(5, 5, 1_000_000), 30_000, 2_000), 1);
    }
}
