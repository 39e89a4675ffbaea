//! Re-derivation: rebuild every derived table from the log store alone (no RPC),
//! with the same decoding, derivation and write code as the indexer, into a
//! schema beside the live one; then swap it in (`rederive`) or compare it with
//! the live one (`verify`).
//!
//! A build is one transaction on one connection (plus a read-only one streaming
//! the logs, sharing its snapshot): interrupted, it leaves nothing behind.
//! Pipeline: the log store streams through a binary `COPY` on one task, this
//! task decodes and derives chunks of whole blocks, a third writes them (event
//! tables without indexes; those are built once at the end).

use std::time::{Duration, Instant};

use alloy::{
    primitives::{Address, Log, LogData, U256},
    sol_types::SolCall,
};
use animoca_chain::{
    Deployment,
    bindings::{GovernanceSlashing, MarketAMM},
};
use animoca_domain::{MarketKey, Timeframe};
use animoca_store::{
    StoreError,
    batch::{
        BalanceRow, Batch, BlockRow, CallResultRow, CandleRow, ChangeRow, EventPosition, MarketDelta, Outcome, RawLog,
        ReservesRow, TallyDelta,
    },
    derivation,
    generation::{self, Generation, SwapPolicy, TableDiff},
    indexing, log_reader, rollback,
};
use foldhash::{HashMap, HashMapExt};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    decode::{DecodeError, Sources},
    derive::{DeriveError, Deriver, Holding, Prior, ProposalInfo, holding_keys},
    events::ChainEvent,
    progress::RederiveProgress,
};

/// Version of the derivation code. Bump it whenever a change makes the derived
/// tables differ for the same logs (a fixed rule, a new column, a new metric):
/// `index` then re-derives a database built by an older version before going on.
pub const DERIVATION_VERSION: i32 = 1;

/// Schema `rederive` builds the next generation in.
const NEXT_SCHEMA: &str = "derived_next";
/// Schema `verify` builds its scratch copy in (never committed).
const VERIFY_SCHEMA: &str = "derived_verify";

/// Sizes of a build (the defaults suit any chain; tests shrink them to run
/// every path on a small chain).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Logs per derived chunk (cut at block boundaries): bounds memory.
    pub chunk_logs: usize,
    /// Merged state rows kept in memory before they are written (bounds memory
    /// on chains with very many holders or candles).
    pub pending_state_rows: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { chunk_logs: 50_000, pending_state_rows: 250_000 }
    }
}

/// What can stop a re-derivation.
#[derive(Debug, thiserror::Error)]
pub enum RederiveError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored log did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The stored logs contradict each other.
    #[error(transparent)]
    Derive(#[from] DeriveError),
    /// Nothing is indexed, so there is nothing to re-derive.
    #[error("nothing is indexed in this database yet (no checkpoint)")]
    NothingIndexed,
    /// Several chains are indexed: the derived tables hold them all, and
    /// re-deriving one would drop the others.
    #[error("this database indexes chains {0:?}; re-deriving supports one chain per database")]
    SeveralChains(Vec<u64>),
    /// The chain asked for is not the one this database indexes.
    #[error("chain {asked} is not indexed in this database (it indexes {indexed})")]
    OtherChain {
        /// Asked for.
        asked: u64,
        /// Indexed.
        indexed: u64,
    },
    /// The checkpoint moved while re-deriving (another indexer wrote): the new
    /// tables would miss its blocks, so nothing was swapped.
    #[error("the checkpoint moved from block {built} while re-deriving (did an indexer run?); nothing was changed")]
    CheckpointMoved {
        /// The block the new tables were built up to.
        built: u64,
    },
    /// The contracts of the chain were never recorded.
    #[error("chain {0} has no recorded contracts (chain.deployments); run `index` once to record them")]
    NoDeployment(u64),
    /// The database was indexed with other contracts than configured.
    #[error("chain {chain_id} was indexed with other contracts: stored {stored}, configured {configured}")]
    DeploymentChanged {
        /// The chain.
        chain_id: u64,
        /// What the database holds.
        stored: String,
        /// What this process was given.
        configured: String,
    },
    /// A view-call result the derivation needs is not stored.
    #[error("the log store lacks the result of {0}; it cannot be re-derived without RPC")]
    MissingCall(String),
    /// The database was derived by newer code than this binary.
    #[error("the derived tables were built by derivation version {stored}, newer than this binary's {ours}")]
    NewerVersion {
        /// Recorded version.
        stored: i32,
        /// [`DERIVATION_VERSION`].
        ours: i32,
    },
    /// Stopped by the caller (shutdown): nothing was changed.
    #[error("interrupted; the live tables are unchanged")]
    Interrupted,
    /// A pipeline task failed.
    #[error("re-derivation task failed: {0}")]
    Task(String),
}

impl From<sqlx::Error> for RederiveError {
    fn from(error: sqlx::Error) -> Self {
        RederiveError::Store(StoreError::Query(error))
    }
}

/// What a build read and how long each part took.
#[derive(Debug, Clone, Default)]
pub struct BuildStats {
    /// The chain.
    pub chain_id: u64,
    /// Block the derived state is at (the checkpoint).
    pub checkpoint: u64,
    /// Logs read from the log store.
    pub logs: u64,
    /// Swaps derived.
    pub swaps: u64,
    /// Streaming, deriving and writing the rows.
    pub load: Duration,
    /// Building the deferred indexes and statistics.
    pub indexes: Duration,
    /// Rebuilding the 24h window.
    pub window: Duration,
    /// The swap into place (`rederive` only).
    pub swap: Duration,
    /// Everything.
    pub total: Duration,
}

/// Outcome of [`verify`].
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The build.
    pub stats: BuildStats,
    /// Tables whose live contents differ from the re-derived ones (empty: identical).
    pub diffs: Vec<TableDiff>,
    /// Tables compared.
    pub tables: usize,
}

/// Rebuilds every derived table of the chain from the log store and swaps the
/// result in for the live tables in one transaction, with one `rederive`
/// change-feed event. The caller must hold the indexer lock of the chain (no
/// indexer may write meanwhile). Readers keep reading the old tables until the
/// commit; off-chain data (`app`) is untouched.
pub async fn rederive(
    pool: &PgPool,
    chain_id: Option<u64>,
    shutdown: &CancellationToken,
) -> Result<BuildStats, RederiveError> {
    rederive_with(pool, chain_id, Options::default(), shutdown).await
}

/// [`rederive`] with explicit [`Options`].
pub async fn rederive_with(
    pool: &PgPool,
    chain_id: Option<u64>,
    options: Options,
    shutdown: &CancellationToken,
) -> Result<BuildStats, RederiveError> {
    let started = Instant::now();
    let (mut conn, generation, mut stats, mut progress) = build(pool, chain_id, NEXT_SCHEMA, options, shutdown).await?;
    progress.phase("swapping in");
    let swap_started = Instant::now();
    // Nobody may have indexed meanwhile (the caller holds the indexer lock; this
    // makes sure): lock the checkpoint row. Under this transaction's snapshot a
    // concurrent update fails the lock, a different block fails the check.
    let now: Option<i64> =
        sqlx::query_scalar("SELECT block_number FROM chain.checkpoints WHERE chain_id = $1 FOR UPDATE")
            .bind(i64::try_from(stats.chain_id).unwrap_or(i64::MAX))
            .fetch_optional(&mut conn)
            .await
            .map_err(|error| match &error {
                // "could not serialize access due to concurrent update"
                sqlx::Error::Database(e) if e.code().as_deref() == Some("40001") => {
                    RederiveError::CheckpointMoved { built: stats.checkpoint }
                }
                _ => error.into(),
            })?;
    if now.and_then(|b| u64::try_from(b).ok()) != Some(stats.checkpoint) {
        return Err(RederiveError::CheckpointMoved { built: stats.checkpoint });
    }
    // Waiting for readers to let go of the live tables can take a while under
    // load; a shutdown meanwhile abandons the transaction (live tables kept).
    tokio::select! {
        swapped = generation.swap_in(&mut conn, SwapPolicy::default()) => swapped?,
        () = shutdown.cancelled() => return Err(RederiveError::Interrupted),
    }
    let change = ChangeRow {
        kind: "rederive".to_owned(),
        payload: serde_json::json!({
            "chain_id": stats.chain_id,
            "block": stats.checkpoint,
            "derivation_version": DERIVATION_VERSION,
        }),
    };
    indexing::write_changes(&mut conn, &[change]).await?;
    sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
    conn.close().await?;
    stats.swap = swap_started.elapsed();
    stats.total = started.elapsed();
    progress.finish(&stats);
    Ok(stats)
}

/// Re-derives into a scratch schema and compares every table with the live one,
/// in the snapshot the logs were read in (an indexer may keep running). Changes
/// nothing.
pub async fn verify(
    pool: &PgPool,
    chain_id: Option<u64>,
    shutdown: &CancellationToken,
) -> Result<VerifyReport, RederiveError> {
    verify_with(pool, chain_id, Options::default(), shutdown).await
}

/// [`verify`] with explicit [`Options`].
pub async fn verify_with(
    pool: &PgPool,
    chain_id: Option<u64>,
    options: Options,
    shutdown: &CancellationToken,
) -> Result<VerifyReport, RederiveError> {
    let started = Instant::now();
    let (mut conn, generation, mut stats, mut progress) =
        build(pool, chain_id, VERIFY_SCHEMA, options, shutdown).await?;
    progress.phase("comparing");
    let diffs = generation::compare(&mut conn, generation.schema(), 3).await?;
    let tables = generation.tables().iter().filter(|t| *t != "meta").count();
    sqlx::raw_sql("ROLLBACK").execute(&mut conn).await?;
    conn.close().await?;
    stats.total = started.elapsed();
    progress.finish(&stats);
    Ok(VerifyReport { stats, diffs, tables })
}

/// Records the contracts of the chain (or checks them against the recorded
/// ones), then re-derives if the derived tables were built by an older
/// derivation version. Called by the indexer before it loads its state; the
/// caller holds the indexer lock. Returns whether it re-derived.
pub async fn prepare(
    pool: &PgPool,
    deployment: &Deployment,
    shutdown: &CancellationToken,
) -> Result<bool, RederiveError> {
    let chain_id = deployment.chain_id;
    let mut conn = pool.acquire().await?;
    let configured = contracts_json(deployment);
    match derivation::stored_deployment(&mut conn, chain_id).await? {
        None => derivation::record_deployment(&mut conn, chain_id, deployment.start_block, &configured).await?,
        Some((stored, _)) if stored != configured => {
            return Err(RederiveError::DeploymentChanged {
                chain_id,
                stored: stored.to_string(),
                configured: configured.to_string(),
            });
        }
        Some(_) => {}
    }
    let version = derivation::derivation_version(&mut conn).await?;
    let indexed = indexing::checkpoint_in(&mut conn, chain_id).await?.is_some();
    match version {
        Some(stored) if stored > DERIVATION_VERSION => {
            Err(RederiveError::NewerVersion { stored, ours: DERIVATION_VERSION })
        }
        Some(stored) if stored == DERIVATION_VERSION => Ok(false),
        None if !indexed => {
            derivation::record_derivation_version(&mut conn, DERIVATION_VERSION).await?;
            Ok(false)
        }
        stored => {
            drop(conn);
            tracing::info!(
                stored = stored.unwrap_or(0),
                current = DERIVATION_VERSION,
                "derived tables were built by an older derivation: re-deriving from the log store"
            );
            let stats = rederive(pool, Some(chain_id), shutdown).await?;
            tracing::info!(logs = stats.logs, took_ms = stats.total.as_millis(), "re-derived");
            Ok(true)
        }
    }
}

/// The contract addresses (not the start block) as recorded in `chain.deployments`.
fn contracts_json(deployment: &Deployment) -> serde_json::Value {
    serde_json::to_value(Deployment { start_block: 0, ..*deployment }).unwrap_or_default()
}

/// The chain a re-derivation works on: the one chain the database indexes
/// (`asked`, if given, must be it). The derived tables hold every chain of the
/// database, and re-deriving one must not drop another's: one chain per database.
pub async fn indexed_chain(conn: &mut PgConnection, asked: Option<u64>) -> Result<u64, RederiveError> {
    let indexed = match derivation::indexed_chains(conn).await?.as_slice() {
        [] => return Err(RederiveError::NothingIndexed),
        [one] => *one,
        many => return Err(RederiveError::SeveralChains(many.to_vec())),
    };
    match asked {
        Some(asked) if asked != indexed => Err(RederiveError::OtherChain { asked, indexed }),
        _ => Ok(indexed),
    }
}

/// Builds a complete derived schema `schema` from the log store, in an open
/// transaction on the returned connection (the caller commits or rolls back).
async fn build(
    pool: &PgPool,
    chain_id: Option<u64>,
    schema: &str,
    options: Options,
    shutdown: &CancellationToken,
) -> Result<(PgConnection, Generation, BuildStats, RederiveProgress), RederiveError> {
    let started = Instant::now();
    // Dedicated connections, detached from the pool: their search_path and
    // long transactions never reach a pooled connection.
    let mut reader = pool.acquire().await?.detach();
    let mut writer = pool.acquire().await?.detach();
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut reader).await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()").fetch_one(&mut reader).await?;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ").execute(&mut writer).await?;
    // A snapshot id is hex digits and dashes (e.g. 00000003-0000001B-1); it cannot be a bind parameter.
    if !snapshot.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(StoreError::Corrupt(format!("unexpected snapshot id {snapshot:?}")).into());
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET TRANSACTION SNAPSHOT '{snapshot}'"))).execute(&mut writer).await?;

    let chain_id = indexed_chain(&mut writer, chain_id).await?;
    let checkpoint =
        indexing::checkpoint_in(&mut writer, chain_id).await?.ok_or(RederiveError::NothingIndexed)?.block_number;
    let (contracts, start_block) =
        derivation::stored_deployment(&mut writer, chain_id).await?.ok_or(RederiveError::NoDeployment(chain_id))?;
    let deployment: Deployment = serde_json::from_value(contracts)
        .map_err(|e| StoreError::Corrupt(format!("chain.deployments of chain {chain_id}: {e}")))?;
    let deployment = Deployment { chain_id, start_block, ..deployment };
    let calls = StoredCalls::new(derivation::call_results(&mut writer, chain_id).await?);
    let fee_bps = calls.fees(&deployment)?;
    // For the progress bar: the planner's estimate, or a count if it has none.
    let mut estimate: f64 =
        sqlx::query_scalar("SELECT greatest(reltuples, 0)::float8 FROM pg_class WHERE oid = 'chain.logs'::regclass")
            .fetch_one(&mut writer)
            .await?;
    if estimate < 1.0 {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM chain.logs WHERE chain_id = $1")
            .bind(i64::try_from(chain_id).unwrap_or(i64::MAX))
            .fetch_one(&mut writer)
            .await?;
        estimate = count as f64;
    }

    let mut generation = Generation::create(&mut writer, schema).await?;
    animoca_store::set_search_path(&mut writer, schema).await?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let mut progress = RederiveProgress::start(estimate as u64);
    progress.phase("loading");

    // Reader → (chunks of whole blocks) → this task → (batches) → writer.
    let (logs_tx, mut logs_rx) = mpsc::channel::<Vec<RawLog>>(1);
    let read: JoinHandle<Result<(PgConnection, u64), StoreError>> = tokio::spawn(async move {
        let count = log_reader::stream_logs(&mut reader, chain_id, checkpoint, options.chunk_logs, logs_tx).await?;
        sqlx::raw_sql("COMMIT").execute(&mut reader).await?;
        Ok((reader, count))
    });
    let (batch_tx, mut batch_rx) = mpsc::channel::<Batch>(1);
    let write: JoinHandle<Result<PgConnection, StoreError>> = tokio::spawn(async move {
        let mut busy = Duration::ZERO;
        while let Some(batch) = batch_rx.recv().await {
            let started = Instant::now();
            indexing::write_derived(&mut writer, &batch).await?;
            busy += started.elapsed();
        }
        tracing::debug!(busy_ms = busy.as_millis(), "re-derive writer");
        Ok(writer)
    });

    let mut state = Derivation {
        chain_id,
        sources: Sources::new(deployment),
        deriver: Deriver::new(fee_bps),
        holdings: HashMap::new(),
        calls,
    };
    let mut stats = BuildStats { chain_id, checkpoint, ..BuildStats::default() };
    let mut derive_busy = Duration::ZERO;
    let mut pending = PendingState::default();
    let derived = async {
        loop {
            let chunk = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Err(RederiveError::Interrupted),
                chunk = logs_rx.recv() => chunk,
            };
            let Some(chunk) = chunk else { break };
            let logs = chunk.len() as u64;
            let started = Instant::now();
            let mut batch = state.derive(chunk)?;
            pending.absorb(&mut batch);
            derive_busy += started.elapsed();
            stats.logs += logs;
            stats.swaps += batch.swaps.len() as u64;
            progress.advance(logs);
            if batch_tx.send(batch).await.is_err() {
                break; // the writer failed: its error is reported below
            }
            if pending.len() >= options.pending_state_rows && batch_tx.send(pending.take(chain_id)).await.is_err() {
                break;
            }
        }
        if pending.len() > 0 {
            let _ = batch_tx.send(pending.take(chain_id)).await;
        }
        Ok(())
    }
    .await;
    drop(batch_tx);
    drop(logs_rx);
    tracing::debug!(busy_ms = derive_busy.as_millis(), "re-derive decode + derive");
    let written = write.await.map_err(|e| RederiveError::Task(e.to_string()))?;
    let read = read.await.map_err(|e| RederiveError::Task(e.to_string()))?;
    derived?;
    let mut writer = written?;
    let (reader, read_logs) = read?;
    reader.close().await?;
    if read_logs != stats.logs {
        return Err(RederiveError::Task(format!("read {read_logs} logs but derived {}", stats.logs)));
    }
    stats.load = started.elapsed();

    progress.phase("building indexes");
    let phase = Instant::now();
    generation.finish(&mut writer).await?;
    stats.indexes = phase.elapsed();
    if shutdown.is_cancelled() {
        return Err(RederiveError::Interrupted);
    }

    progress.phase("24h window");
    let phase = Instant::now();
    rollback::rebuild_window(&mut writer, chain_id).await?;
    derivation::record_derivation_version(&mut writer, DERIVATION_VERSION).await?;
    sqlx::raw_sql("ANALYZE market_stats, market_window_traders").execute(&mut writer).await?;
    stats.window = phase.elapsed();
    if shutdown.is_cancelled() {
        return Err(RederiveError::Interrupted);
    }
    Ok((writer, generation, stats, progress))
}

/// State rows of many chunks merged, to be written once instead of per chunk
/// (the same final rows: each balance, candle and pool row is a complete image,
/// so the newest wins; supply, holder and tally changes add up; outcomes keep
/// their order). Event rows (swaps, transfers, ...) are written per chunk.
#[derive(Default)]
struct PendingState {
    balances: HashMap<(MarketKey, Address), BalanceRow>,
    candles: HashMap<(MarketKey, Timeframe, i64), CandleRow>,
    reserves: HashMap<MarketKey, ReservesRow>,
    deltas: HashMap<MarketKey, MarketDelta>,
    tallies: HashMap<U256, TallyDelta>,
    outcomes: Vec<(U256, Outcome, EventPosition)>,
}

impl PendingState {
    /// Moves the state rows of `batch` (a later chunk) in.
    fn absorb(&mut self, batch: &mut Batch) {
        for row in std::mem::take(&mut batch.balances) {
            self.balances.insert((row.market, row.holder), row);
        }
        for row in std::mem::take(&mut batch.candles) {
            self.candles.insert((row.market, row.timeframe, row.candle.bucket_start), row);
        }
        for row in std::mem::take(&mut batch.reserves) {
            self.reserves.insert(row.market, row);
        }
        for (market, delta) in std::mem::take(&mut batch.market_deltas) {
            self.deltas.entry(market).or_default().merge(&delta);
        }
        for (proposal, delta) in std::mem::take(&mut batch.tallies) {
            self.tallies.entry(proposal).or_default().merge(&delta);
        }
        self.outcomes.append(&mut batch.outcomes);
    }

    fn len(&self) -> usize {
        self.balances.len()
            + self.candles.len()
            + self.reserves.len()
            + self.deltas.len()
            + self.tallies.len()
            + self.outcomes.len()
    }

    /// A batch of just the merged state rows, leaving this empty.
    fn take(&mut self, chain_id: u64) -> Batch {
        let taken = std::mem::take(self);
        Batch {
            chain_id,
            balances: taken.balances.into_values().collect(),
            candles: taken.candles.into_values().collect(),
            reserves: taken.reserves.into_values().collect(),
            market_deltas: taken.deltas.into_iter().collect(),
            tallies: taken.tallies.into_iter().collect(),
            outcomes: taken.outcomes,
            ..Batch::default()
        }
    }
}

/// The derivation's state across chunks.
struct Derivation {
    chain_id: u64,
    sources: Sources,
    deriver: Deriver,
    /// Every holding so far (what the indexer reads from `balances`).
    holdings: HashMap<(MarketKey, Address), Holding>,
    calls: StoredCalls,
}

impl Derivation {
    /// Decodes and derives one chunk of whole blocks, in chain order.
    fn derive(&mut self, chunk: Vec<RawLog>) -> Result<Batch, RederiveError> {
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else { return Ok(Batch::default()) };
        let mut batch = Batch {
            chain_id: self.chain_id,
            from_block: first.position.block_number,
            to_block: BlockRow {
                number: last.position.block_number,
                hash: last.position.block_hash,
                timestamp: last.position.block_timestamp,
                ..BlockRow::default()
            },
            ..Batch::default()
        };
        // A token's first transfers precede the factory event announcing it.
        let deployment = *self.sources.deployment();
        let factories = [deployment.credential_factory, deployment.persona_factory];
        for raw in chunk.iter().filter(|raw| factories.contains(&raw.address)) {
            let log =
                Log { address: raw.address, data: LogData::new_unchecked(raw.topics.clone(), raw.data.clone().into()) };
            if let Some(ChainEvent::MarketCreated { market, token, .. }) = self.sources.decode(&log)? {
                self.sources.register_token(token, market);
            }
        }
        let mut events = Vec::with_capacity(chunk.len());
        for raw in chunk {
            if let Some(event) = self.sources.decode_stored(raw)? {
                events.push(event);
            }
        }
        let mut prior = Prior::default();
        for key in holding_keys(&events) {
            if let Some(holding) = self.holdings.get(&key) {
                prior.holdings.insert(key, *holding);
            }
        }
        for (meta, event) in &events {
            if let ChainEvent::ProposalCreated { proposal_id, .. } = event {
                prior
                    .proposals
                    .insert(*proposal_id, self.calls.proposal(&deployment, *proposal_id, meta.block_number)?);
            }
        }
        self.deriver.derive(&self.sources, &events, prior, &mut batch)?;
        for row in &batch.balances {
            self.holdings.insert((row.market, row.holder), Holding { balance: row.balance, position: row.position });
        }
        Ok(batch)
    }
}

/// The stored view-call results, by (block, contract, calldata).
struct StoredCalls(HashMap<(u64, Address, Vec<u8>), Vec<u8>>);

impl StoredCalls {
    fn new(rows: Vec<CallResultRow>) -> Self {
        Self(rows.into_iter().map(|r| ((r.block_number, r.to, r.calldata), r.result)).collect())
    }

    fn get(&self, block: u64, to: Address, calldata: Vec<u8>) -> Option<&Vec<u8>> {
        self.0.get(&(block, to, calldata))
    }

    /// `feeBps()` of both AMMs (stored at block 0: it is immutable).
    fn fees(&self, deployment: &Deployment) -> Result<HashMap<Address, u32>, RederiveError> {
        let mut fees = HashMap::new();
        for amm in [deployment.credential_amm, deployment.persona_amm] {
            let missing = || RederiveError::MissingCall(format!("feeBps() of {amm}"));
            let result = self.get(0, amm, MarketAMM::feeBpsCall::new(()).abi_encode()).ok_or_else(missing)?;
            let fee = MarketAMM::feeBpsCall::abi_decode_returns(result).map_err(|_| missing())?;
            fees.insert(amm, u32::try_from(fee).unwrap_or(u32::MAX));
        }
        Ok(fees)
    }

    /// `proposals(id)` at the block of its `ProposalCreated`.
    fn proposal(&self, deployment: &Deployment, id: U256, block: u64) -> Result<ProposalInfo, RederiveError> {
        let missing = || RederiveError::MissingCall(format!("proposals({id}) at block {block}"));
        let calldata = GovernanceSlashing::proposalsCall::new((id,)).abi_encode();
        let result = self.get(block, deployment.governance, calldata).ok_or_else(missing)?;
        let p = GovernanceSlashing::proposalsCall::abi_decode_returns(result).map_err(|_| missing())?;
        ProposalInfo::from_view(&p).ok_or_else(missing)
    }
}
