//! The indexer's reads and writes: checkpoint, log store, derived rows of one
//! block range (in the caller's transaction), and the state a batch builds on.
//!
//! Numbers cross the wire as decimal text (`$n::text[]::numeric[]`): exact for
//! any uint256, and cheap next to the rest of a batch.

use std::collections::HashMap;

use alloy_primitives::{Address, B256, I256, U256};
use animoca_domain::{Candle, MarketKey, MarketType, Position, Price, Timeframe};
use sqlx::{PgConnection, PgPool, Row};

use crate::{
    StoreError,
    batch::{Batch, EventPosition, Outcome},
    copy::CopyRows,
};

/// Where the indexer stands: everything up to this block is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Last indexed block.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: B256,
}

/// The checkpoint of a chain, if it was ever indexed.
pub async fn checkpoint(pool: &PgPool, chain_id: u64) -> Result<Option<Checkpoint>, StoreError> {
    checkpoint_in(&mut *pool.acquire().await?, chain_id).await
}

/// The checkpoint of a chain, read on `conn` (in its transaction's snapshot).
pub async fn checkpoint_in(conn: &mut PgConnection, chain_id: u64) -> Result<Option<Checkpoint>, StoreError> {
    let row = sqlx::query("SELECT block_number, block_hash FROM chain.checkpoints WHERE chain_id = $1")
        .bind(int(chain_id))
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| {
        Ok(Checkpoint {
            block_number: uint(row.try_get::<i64, _>(0)?),
            block_hash: b256(&row.try_get::<Vec<u8>, _>(1)?),
        })
    })
    .transpose()
}

/// Every market token with its market (to rebuild the indexer's sources).
pub async fn market_tokens(conn: &mut PgConnection) -> Result<Vec<(Address, MarketKey)>, StoreError> {
    let rows = sqlx::query("SELECT token_address, market_type, market_id FROM markets").fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            Ok((address(&row.try_get::<Vec<u8>, _>(0)?), market_key(row.try_get(1)?, &row.try_get::<Vec<u8>, _>(2)?)))
        })
        .collect()
}

/// Balance and cost-basis position of each (market, holder) asked for that exists.
pub async fn holdings(
    conn: &mut PgConnection,
    keys: &[(MarketKey, Address)],
) -> Result<HashMap<(MarketKey, Address), (U256, Position)>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let types: Vec<i16> = keys.iter().map(|(m, _)| i16::from(m.market_type.as_u8())).collect();
    let ids: Vec<Vec<u8>> = keys.iter().map(|(m, _)| m.market_id.to_vec()).collect();
    let holders: Vec<Vec<u8>> = keys.iter().map(|(_, h)| h.to_vec()).collect();
    let rows = sqlx::query(
        "SELECT b.market_type, b.market_id, b.holder, b.balance::text, b.position::text,
                b.cost_basis::text, b.realized_pnl::text
           FROM unnest($1::smallint[], $2::bytea[], $3::bytea[]) AS k(market_type, market_id, holder)
           JOIN balances b USING (market_type, market_id, holder)",
    )
    .bind(types)
    .bind(ids)
    .bind(holders)
    .fetch_all(&mut *conn)
    .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let key =
            (market_key(row.try_get(0)?, &row.try_get::<Vec<u8>, _>(1)?), address(&row.try_get::<Vec<u8>, _>(2)?));
        let position = Position {
            balance: u256(&row.try_get::<String, _>(4)?)?,
            cost_basis: u256(&row.try_get::<String, _>(5)?)?,
            realized_pnl: i256(&row.try_get::<String, _>(6)?)?,
        };
        found.insert(key, (u256(&row.try_get::<String, _>(3)?)?, position));
    }
    Ok(found)
}

/// The newest candle of each (market, timeframe) with the traders of its bucket,
/// to continue buckets across restarts.
pub async fn newest_candles(pool: &PgPool) -> Result<Vec<StoredCandle>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.market_type, c.market_id, c.timeframe, extract(epoch FROM c.bucket_start)::bigint,
                c.open::text, c.high::text, c.low::text, c.close::text, c.volume_usdc::text, c.volume_token::text,
                c.trade_count, c.unique_traders, c.first_block, c.first_log, c.last_block, c.last_log,
                coalesce((SELECT array_agg(DISTINCT s.trader) FROM swaps s
                           WHERE s.market_type = c.market_type AND s.market_id = c.market_id
                             AND s.block_timestamp >= c.bucket_start
                             AND (s.block_number, s.log_index) <= (c.last_block, c.last_log)), '{}')
           FROM (SELECT DISTINCT ON (market_type, market_id, timeframe) *
                   FROM candles ORDER BY market_type, market_id, timeframe, bucket_start DESC) c",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let timeframe: String = row.try_get(2)?;
            let price = |i: usize| -> Result<Price, StoreError> {
                let text: String = row.try_get(i)?;
                Price::from_decimal_str(&text).ok_or_else(|| StoreError::Corrupt(format!("{text:?} is not a price")))
            };
            Ok(StoredCandle {
                market: market_key(row.try_get(0)?, &row.try_get::<Vec<u8>, _>(1)?),
                timeframe: timeframe.parse().map_err(|_| StoreError::Corrupt(format!("timeframe {timeframe}")))?,
                candle: Candle {
                    bucket_start: row.try_get(3)?,
                    open: price(4)?,
                    high: price(5)?,
                    low: price(6)?,
                    close: price(7)?,
                    volume_usdc: u256(&row.try_get::<String, _>(8)?)?,
                    volume_token: u256(&row.try_get::<String, _>(9)?)?,
                    trade_count: uint(i64::from(row.try_get::<i32, _>(10)?)),
                    unique_traders: uint(i64::from(row.try_get::<i32, _>(11)?)),
                    first: (uint(row.try_get(12)?), uint(i64::from(row.try_get::<i32, _>(13)?))),
                    last: (uint(row.try_get(14)?), uint(i64::from(row.try_get::<i32, _>(15)?))),
                },
                traders: row.try_get::<Vec<Vec<u8>>, _>(16)?.iter().map(|a| address(a)).collect(),
            })
        })
        .collect()
}

/// A stored candle as [`newest_candles`] returns it, with its bucket's traders.
#[derive(Debug, Clone)]
pub struct StoredCandle {
    /// Market.
    pub market: MarketKey,
    /// Timeframe.
    pub timeframe: Timeframe,
    /// The candle.
    pub candle: Candle,
    /// The bucket's traders.
    pub traders: Vec<Address>,
}

/// Writes one block range in the caller's transaction: logs, blocks, derived rows
/// and the new checkpoint. Fails with [`StoreError::CheckpointMoved`] unless the
/// stored checkpoint is exactly the block before the range (exactly-once).
pub async fn write_batch(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    write_range(conn, batch, true).await
}

/// [`write_batch`] without the raw logs, which the caller writes with
/// [`write_log_store`] in a transaction of its own, on another connection, in
/// parallel, **committed before this one**. A crash between the two commits
/// leaves logs above the checkpoint: [`delete_logs_above`] removes them before
/// indexing resumes.
pub async fn write_batch_without_logs(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    write_range(conn, batch, false).await
}

/// Appends a range's raw logs to the log store (see [`write_batch_without_logs`]).
pub async fn write_log_store(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    let mut timer = StepTimer::start();
    write_logs(conn, batch).await?;
    timer.step("logs");
    Ok(())
}

/// Refreshes the planner's statistics of the tables a backfill grew: until then
/// it plans head-block queries for the empty tables of the start (the first block
/// after a 1M-swap backfill took 650 ms instead of 10).
pub async fn analyze_grown_tables(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query(
        "ANALYZE swaps, transfers, balances, candles, stake_events,
                 votes, chain.logs, chain.blocks",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Vacuums the small tables every range rewrites (one row per market): after a
/// backfill of thousands of ranges their dead row versions, which autovacuum
/// only reaches once a minute, made each head block's refresh scan ~50 ms.
pub async fn vacuum_hot_tables(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query(
        "VACUUM (ANALYZE) market_stats, pools, markets, market_window_traders,
                          window_state, stakes, chain.checkpoints",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Namespace of the transaction-scoped advisory lock that orders a range's
/// separate log-store commit against [`delete_logs_above`] (second key: chain id).
const LOG_STORE_LOCK: i32 = 0x6c6f_6773;

/// Takes the log-store lock for the rest of the caller's transaction: a range
/// that writes its logs on another connection holds it from before that write
/// until its own commit, so no cleanup can run in between.
pub async fn lock_log_store(conn: &mut PgConnection, chain_id: u64) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(LOG_STORE_LOCK)
        .bind(lock_key(chain_id))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Removes logs above the stored checkpoint (every log of the chain when there is
/// none), left by a log-store transaction whose range did not commit. Waits for a
/// range being written (the log-store lock) and reads the checkpoint under it, so
/// a range whose logs are committed but whose own commit is pending is never cut.
/// Returns how many.
pub async fn delete_logs_above(pool: &PgPool, chain_id: u64) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    lock_log_store(&mut tx, chain_id).await?;
    let checkpoint: Option<i64> = sqlx::query_scalar("SELECT block_number FROM chain.checkpoints WHERE chain_id = $1")
        .bind(int(chain_id))
        .fetch_optional(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM chain.logs WHERE chain_id = $1 AND block_number > $2")
        .bind(int(chain_id))
        .bind(checkpoint.unwrap_or(-1))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected())
}

/// The chain id as the second key of an advisory lock.
fn lock_key(chain_id: u64) -> i32 {
    // Chain ids fit in 32 bits in practice; fold larger ones.
    i32::from_ne_bytes(u32::try_from(chain_id % (1 << 32)).unwrap_or(0).to_ne_bytes())
}

async fn write_range(conn: &mut PgConnection, batch: &Batch, with_logs: bool) -> Result<(), StoreError> {
    let chain = int(batch.chain_id);
    let stored: Option<i64> =
        sqlx::query_scalar("SELECT block_number FROM chain.checkpoints WHERE chain_id = $1 FOR UPDATE")
            .bind(chain)
            .fetch_optional(&mut *conn)
            .await?;
    let expected = batch.from_block.checked_sub(1);
    let stored_block = stored.map(uint);
    if stored_block.is_some() && stored_block != expected {
        return Err(StoreError::CheckpointMoved { expected, found: stored_block });
    }

    let mut timer = StepTimer::start();
    write_blocks(conn, batch).await?;
    write_call_results(conn, batch.chain_id, &batch.call_results).await?;
    timer.step("blocks");
    if with_logs {
        write_logs(conn, batch).await?;
        timer.step("logs");
    }
    write_derived_rows(conn, batch, &mut timer).await?;

    // The 24h window now ends at this batch's last block.
    let touched: Vec<(i16, Vec<u8>)> = batch
        .markets
        .iter()
        .map(|m| m.market)
        .chain(batch.reserves.iter().map(|r| r.market))
        .map(|m| (market_type(m), m.market_id.to_vec()))
        .collect();
    let t = i64::try_from(batch.to_block.timestamp).unwrap_or(i64::MAX);
    let refresh = crate::window::Refresh::Touched { markets: &touched, new_markets: !batch.markets.is_empty() };
    crate::window::slide(conn, batch.chain_id, batch.from_block, t, refresh).await?;
    timer.step("window");

    sqlx::query(
        "INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, updated_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (chain_id) DO UPDATE SET block_number = EXCLUDED.block_number,
                                              block_hash = EXCLUDED.block_hash, updated_at = now()",
    )
    .bind(chain)
    .bind(int(batch.to_block.number))
    .bind(batch.to_block.hash.to_vec())
    .execute(&mut *conn)
    .await?;
    timer.step("checkpoint");
    // Last: the version bump holds its row lock until the commit.
    write_changes(conn, &batch.changes).await?;
    timer.step("changes");
    Ok(())
}

/// Writes the derived rows of a batch (markets, pools, swaps, transfers,
/// balances, stakes, proposals, votes, candles) into the tables the connection's
/// `search_path` names: the live ones when indexing, the next generation's when
/// re-deriving. Not the log store, blocks, checkpoint, change feed or 24h window.
pub async fn write_derived(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    write_derived_rows(conn, batch, &mut StepTimer::start()).await
}

async fn write_derived_rows(conn: &mut PgConnection, batch: &Batch, timer: &mut StepTimer) -> Result<(), StoreError> {
    write_markets(conn, batch).await?;
    timer.step("markets_pools");
    write_swaps_and_transfers(conn, batch).await?;
    timer.step("swaps_transfers");
    write_balances(conn, batch).await?;
    timer.step("balances");
    write_stakes(conn, batch).await?;
    write_proposals(conn, batch).await?;
    timer.step("stakes_proposals");
    write_candles(conn, batch).await?;
    timer.step("candles");
    Ok(())
}

/// Times the steps of a batch write: histogram `animoca_indexer_write_step_seconds{step}`.
struct StepTimer(std::time::Instant);

impl StepTimer {
    fn start() -> Self {
        Self(std::time::Instant::now())
    }

    fn step(&mut self, step: &'static str) {
        let now = std::time::Instant::now();
        metrics::histogram!("animoca_indexer_write_step_seconds", "step" => step)
            .record(now.duration_since(self.0).as_secs_f64());
        self.0 = now;
    }
}

/// Writes only the state parts of a batch (reserves, balances, supply and holder
/// deltas, candles): for replaying a market after a reorg.
pub(crate) async fn write_state(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    write_markets(conn, batch).await?;
    write_balances(conn, batch).await?;
    write_candles(conn, batch).await
}

/// Stores contract view results (the same call at the same block is stored once).
pub async fn write_call_results(
    conn: &mut PgConnection,
    chain_id: u64,
    rows: &[crate::batch::CallResultRow],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO chain.call_results (chain_id, block_number, to_address, calldata, result)
         SELECT $1, block, addr, calldata, result
           FROM unnest($2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[]) AS c(block, addr, calldata, result)
         ON CONFLICT DO NOTHING",
    )
    .bind(int(chain_id))
    .bind(rows.iter().map(|r| int(r.block_number)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.to.to_vec()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.calldata.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.result.clone()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn write_blocks(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    let mut blocks = batch.blocks.clone();
    if !blocks.iter().any(|b| b.number == batch.to_block.number) {
        blocks.push(batch.to_block);
    }
    sqlx::query(
        "INSERT INTO chain.blocks (chain_id, number, hash, parent_hash, timestamp)
         SELECT $1, number, hash, parent_hash, to_timestamp(ts)
           FROM unnest($2::bigint[], $3::bytea[], $4::bytea[], $5::double precision[])
                AS b(number, hash, parent_hash, ts)
         ON CONFLICT (chain_id, number) DO UPDATE
            SET hash = EXCLUDED.hash, parent_hash = EXCLUDED.parent_hash, timestamp = EXCLUDED.timestamp",
    )
    .bind(int(batch.chain_id))
    .bind(blocks.iter().map(|b| int(b.number)).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.hash.to_vec()).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.parent_hash.to_vec()).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| secs(b.timestamp)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Below this many rows an `INSERT … SELECT unnest(…)` beats `COPY`: sqlx sends
/// `CopyDone` as a second small TCP write, which Nagle's algorithm holds until the
/// server's delayed ACK (~40 ms) — nothing next to a 60,000-row COPY, most of a
/// one-block batch's time when following the head.
const COPY_MIN_ROWS: usize = 2_000;

async fn write_logs(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    match batch.logs.len() {
        0 => Ok(()),
        n if n < COPY_MIN_ROWS => insert_logs(conn, batch).await,
        _ => copy_logs(conn, batch).await,
    }
}

async fn write_swaps_and_transfers(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    if batch.swaps.len() + batch.transfers.len() < COPY_MIN_ROWS {
        insert_swaps_and_transfers(conn, batch).await
    } else {
        copy_swaps_and_transfers(conn, batch).await
    }
}

async fn insert_logs(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    let logs = &batch.logs;
    let topic = |i: usize| logs.iter().map(|l| l.topics.get(i).map(|t| t.to_vec())).collect::<Vec<Option<Vec<u8>>>>();
    sqlx::query(
        "INSERT INTO chain.logs (chain_id, block_number, log_index, block_hash, block_timestamp, tx_hash, tx_index,
                                 address, topic0, topic1, topic2, topic3, data)
         SELECT $1, l.block_number, l.log_index, l.block_hash, to_timestamp(l.ts), l.tx_hash, l.tx_index,
                l.address, l.t0, l.t1, l.t2, l.t3, l.data
           FROM unnest($2::bigint[], $3::int[], $4::bytea[], $5::double precision[], $6::bytea[], $7::int[],
                       $8::bytea[], $9::bytea[], $10::bytea[], $11::bytea[], $12::bytea[], $13::bytea[])
                AS l(block_number, log_index, block_hash, ts, tx_hash, tx_index, address, t0, t1, t2, t3, data)
",
    )
    .bind(int(batch.chain_id))
    .bind(logs.iter().map(|l| int(l.position.block_number)).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| int32(l.position.log_index)).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.position.block_hash.to_vec()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| secs(l.position.block_timestamp)).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.position.tx_hash.to_vec()).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| int32(l.tx_index)).collect::<Vec<_>>())
    .bind(logs.iter().map(|l| l.address.to_vec()).collect::<Vec<_>>())
    .bind(topic(0))
    .bind(topic(1))
    .bind(topic(2))
    .bind(topic(3))
    .bind(logs.iter().map(|l| l.data.clone()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn copy_logs(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    let mut rows = CopyRows::new(13, batch.logs.len() * 420);
    for log in &batch.logs {
        let p = &log.position;
        rows.row()
            .int8(batch.chain_id)
            .int8(p.block_number)
            .int4(p.log_index)
            .bytes(p.block_hash.as_slice())
            .timestamp(p.block_timestamp)
            .bytes(p.tx_hash.as_slice())
            .int4(log.tx_index)
            .bytes(log.address.as_slice());
        for i in 0..4 {
            rows.opt_bytes(log.topics.get(i).map(|t| t.as_slice()));
        }
        rows.bytes(&log.data);
    }
    rows.send(
        conn,
        "COPY chain.logs (chain_id, block_number, log_index, block_hash, block_timestamp, tx_hash, tx_index, address,
                          topic0, topic1, topic2, topic3, data) FROM STDIN (FORMAT binary)",
    )
    .await?;
    Ok(())
}

async fn write_markets(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    let chain = int(batch.chain_id);
    if !batch.markets.is_empty() {
        let m = &batch.markets;
        sqlx::query(
            "INSERT INTO markets (market_type, market_id, token_address, creator_address, factory_address,
                                          amm_address, token_name, token_symbol, initial_stake, chain_id,
                                          created_block, created_block_hash, created_tx_hash, created_log_index,
                                          created_at)
             SELECT t, id, token, creator, factory, amm, name, symbol, stake::numeric, $1, block, bhash, tx, li,
                    to_timestamp(ts)
               FROM unnest($2::smallint[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::bytea[],
                           $8::text[], $9::text[], $10::text[], $11::bigint[], $12::bytea[], $13::bytea[],
                           $14::int[], $15::double precision[])
                    AS m(t, id, token, creator, factory, amm, name, symbol, stake, block, bhash, tx, li, ts)",
        )
        .bind(chain)
        .bind(m.iter().map(|r| market_type(r.market)).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.market.market_id.to_vec()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.token.to_vec()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.creator.to_vec()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.factory.to_vec()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.amm.to_vec()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.symbol.clone()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.initial_stake.to_string()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| int(r.position.block_number)).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.position.block_hash.to_vec()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| r.position.tx_hash.to_vec()).collect::<Vec<_>>())
        .bind(m.iter().map(|r| int32(r.position.log_index)).collect::<Vec<_>>())
        .bind(m.iter().map(|r| secs(r.position.block_timestamp)).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !batch.market_deltas.is_empty() {
        let d = &batch.market_deltas;
        sqlx::query(
            "UPDATE markets m
                SET total_supply = m.total_supply + d.minted::numeric - d.burned::numeric,
                    holder_count = m.holder_count + d.holders
               FROM unnest($1::smallint[], $2::bytea[], $3::text[], $4::text[], $5::int[])
                    AS d(market_type, market_id, minted, burned, holders)
              WHERE m.market_type = d.market_type AND m.market_id = d.market_id",
        )
        .bind(d.iter().map(|(m, _)| market_type(*m)).collect::<Vec<_>>())
        .bind(d.iter().map(|(m, _)| m.market_id.to_vec()).collect::<Vec<_>>())
        .bind(d.iter().map(|(_, x)| x.minted.to_string()).collect::<Vec<_>>())
        .bind(d.iter().map(|(_, x)| x.burned.to_string()).collect::<Vec<_>>())
        .bind(d.iter().map(|(_, x)| i32::try_from(x.holders).unwrap_or(i32::MAX)).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !batch.pools.is_empty() {
        let p = &batch.pools;
        sqlx::query(
            "INSERT INTO pools (market_type, market_id, amm_address, token_address, token_reserves,
                                        usdc_reserves, price, fee_bps, created_block, updated_block, updated_at)
             SELECT t, id, amm, token, tr::numeric, ur::numeric, price::numeric, fee, block, block, to_timestamp(ts)
               FROM unnest($1::smallint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::text[], $6::text[],
                           $7::text[], $8::int[], $9::bigint[], $10::double precision[])
                    AS p(t, id, amm, token, tr, ur, price, fee, block, ts)",
        )
        .bind(p.iter().map(|r| market_type(r.market)).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.market.market_id.to_vec()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.amm.to_vec()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.token.to_vec()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.token_reserves.to_string()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.usdc_reserves.to_string()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.price.to_decimal_string()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| i32::try_from(r.fee_bps).unwrap_or(i32::MAX)).collect::<Vec<_>>())
        .bind(p.iter().map(|r| int(r.created_block)).collect::<Vec<_>>())
        .bind(p.iter().map(|r| secs(r.created_at)).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !batch.reserves.is_empty() {
        let r = &batch.reserves;
        sqlx::query(
            "UPDATE pools p
                SET token_reserves = r.tr::numeric, usdc_reserves = r.ur::numeric, price = r.price::numeric,
                    updated_block = r.block, updated_at = to_timestamp(r.ts)
               FROM unnest($1::smallint[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                           $7::double precision[]) AS r(market_type, market_id, tr, ur, price, block, ts)
              WHERE p.market_type = r.market_type AND p.market_id = r.market_id",
        )
        .bind(r.iter().map(|x| market_type(x.market)).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.market.market_id.to_vec()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.token_reserves.to_string()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.usdc_reserves.to_string()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| x.price.to_decimal_string()).collect::<Vec<_>>())
        .bind(r.iter().map(|x| int(x.block_number)).collect::<Vec<_>>())
        .bind(r.iter().map(|x| secs(x.timestamp)).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn insert_swaps_and_transfers(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    let chain = int(batch.chain_id);
    if !batch.swaps.is_empty() {
        let s = &batch.swaps;
        sqlx::query(
            "INSERT INTO swaps (chain_id, block_number, block_hash, block_timestamp, tx_hash, log_index,
                                        market_type, market_id, amm_address, trader, is_buy, token_amount,
                                        usdc_amount, fee_amount, price)
             SELECT $1, block, bhash, to_timestamp(ts), tx, li, t, id, amm, trader, buy, ta::numeric, ua::numeric,
                    fee::numeric, price::numeric
               FROM unnest($2::bigint[], $3::bytea[], $4::double precision[], $5::bytea[], $6::int[],
                           $7::smallint[], $8::bytea[], $9::bytea[], $10::bytea[], $11::bool[], $12::text[],
                           $13::text[], $14::text[], $15::text[])
                    AS s(block, bhash, ts, tx, li, t, id, amm, trader, buy, ta, ua, fee, price)",
        )
        .bind(chain)
        .bind(s.iter().map(|r| int(r.position.block_number)).collect::<Vec<_>>())
        .bind(s.iter().map(|r| r.position.block_hash.to_vec()).collect::<Vec<_>>())
        .bind(s.iter().map(|r| secs(r.position.block_timestamp)).collect::<Vec<_>>())
        .bind(s.iter().map(|r| r.position.tx_hash.to_vec()).collect::<Vec<_>>())
        .bind(s.iter().map(|r| int32(r.position.log_index)).collect::<Vec<_>>())
        .bind(s.iter().map(|r| market_type(r.market)).collect::<Vec<_>>())
        .bind(s.iter().map(|r| r.market.market_id.to_vec()).collect::<Vec<_>>())
        .bind(s.iter().map(|r| r.amm.to_vec()).collect::<Vec<_>>())
        .bind(s.iter().map(|r| r.trader.to_vec()).collect::<Vec<_>>())
        .bind(s.iter().map(|r| r.is_buy).collect::<Vec<_>>())
        .bind(s.iter().map(|r| r.token_amount.to_string()).collect::<Vec<_>>())
        .bind(s.iter().map(|r| r.usdc_amount.to_string()).collect::<Vec<_>>())
        .bind(s.iter().map(|r| r.fee.to_string()).collect::<Vec<_>>())
        .bind(s.iter().map(|r| r.price.to_decimal_string()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !batch.transfers.is_empty() {
        let t = &batch.transfers;
        sqlx::query(
            "INSERT INTO transfers (chain_id, block_number, block_hash, block_timestamp, tx_hash, log_index,
                                            token_address, market_type, market_id, from_address, to_address, value)
             SELECT $1, block, bhash, to_timestamp(ts), tx, li, token, t, id, f, r, v::numeric
               FROM unnest($2::bigint[], $3::bytea[], $4::double precision[], $5::bytea[], $6::int[],
                           $7::bytea[], $8::smallint[], $9::bytea[], $10::bytea[], $11::bytea[], $12::text[])
                    AS x(block, bhash, ts, tx, li, token, t, id, f, r, v)",
        )
        .bind(chain)
        .bind(t.iter().map(|r| int(r.position.block_number)).collect::<Vec<_>>())
        .bind(t.iter().map(|r| r.position.block_hash.to_vec()).collect::<Vec<_>>())
        .bind(t.iter().map(|r| secs(r.position.block_timestamp)).collect::<Vec<_>>())
        .bind(t.iter().map(|r| r.position.tx_hash.to_vec()).collect::<Vec<_>>())
        .bind(t.iter().map(|r| int32(r.position.log_index)).collect::<Vec<_>>())
        .bind(t.iter().map(|r| r.token.to_vec()).collect::<Vec<_>>())
        .bind(t.iter().map(|r| market_type(r.market)).collect::<Vec<_>>())
        .bind(t.iter().map(|r| r.market.market_id.to_vec()).collect::<Vec<_>>())
        .bind(t.iter().map(|r| r.from.to_vec()).collect::<Vec<_>>())
        .bind(t.iter().map(|r| r.to.to_vec()).collect::<Vec<_>>())
        .bind(t.iter().map(|r| r.value.to_string()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The columns every event table starts with: chain_id, block_number, block_hash,
/// block_timestamp, tx_hash, log_index.
fn event_columns<'a>(rows: &'a mut CopyRows, chain_id: u64, p: &EventPosition) -> &'a mut CopyRows {
    rows.int8(chain_id)
        .int8(p.block_number)
        .bytes(p.block_hash.as_slice())
        .timestamp(p.block_timestamp)
        .bytes(p.tx_hash.as_slice())
        .int4(p.log_index)
}

async fn copy_swaps_and_transfers(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    let mut rows = CopyRows::new(15, batch.swaps.len() * 330);
    for s in &batch.swaps {
        event_columns(rows.row(), batch.chain_id, &s.position)
            .int2(market_type(s.market))
            .bytes(s.market.market_id.as_slice())
            .bytes(s.amm.as_slice())
            .bytes(s.trader.as_slice())
            .bool(s.is_buy)
            .numeric(&s.token_amount.to_string())
            .numeric(&s.usdc_amount.to_string())
            .numeric(&s.fee.to_string())
            .numeric(&s.price.to_decimal_string());
    }
    rows.send(
        conn,
        "COPY swaps (chain_id, block_number, block_hash, block_timestamp, tx_hash, log_index, market_type,
                             market_id, amm_address, trader, is_buy, token_amount, usdc_amount, fee_amount, price)
         FROM STDIN (FORMAT binary)",
    )
    .await?;

    let mut rows = CopyRows::new(12, batch.transfers.len() * 260);
    for t in &batch.transfers {
        event_columns(rows.row(), batch.chain_id, &t.position)
            .bytes(t.token.as_slice())
            .int2(market_type(t.market))
            .bytes(t.market.market_id.as_slice())
            .bytes(t.from.as_slice())
            .bytes(t.to.as_slice())
            .numeric(&t.value.to_string());
    }
    rows.send(
        conn,
        "COPY transfers (chain_id, block_number, block_hash, block_timestamp, tx_hash, log_index,
                                 token_address, market_type, market_id, from_address, to_address, value)
         FROM STDIN (FORMAT binary)",
    )
    .await?;
    Ok(())
}

async fn write_balances(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    if batch.balances.is_empty() {
        return Ok(());
    }
    let b = &batch.balances;
    sqlx::query(
        "INSERT INTO balances (market_type, market_id, holder, balance, position, cost_basis, realized_pnl,
                                       updated_block)
         SELECT t, id, h, bal::numeric, pos::numeric, basis::numeric, pnl::numeric, block
           FROM unnest($1::smallint[], $2::bytea[], $3::bytea[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::bigint[]) AS b(t, id, h, bal, pos, basis, pnl, block)
         ON CONFLICT (market_type, market_id, holder) DO UPDATE
            SET balance = EXCLUDED.balance, position = EXCLUDED.position, cost_basis = EXCLUDED.cost_basis,
                realized_pnl = EXCLUDED.realized_pnl, updated_block = EXCLUDED.updated_block",
    )
    .bind(b.iter().map(|r| market_type(r.market)).collect::<Vec<_>>())
    .bind(b.iter().map(|r| r.market.market_id.to_vec()).collect::<Vec<_>>())
    .bind(b.iter().map(|r| r.holder.to_vec()).collect::<Vec<_>>())
    .bind(b.iter().map(|r| r.balance.to_string()).collect::<Vec<_>>())
    .bind(b.iter().map(|r| r.position.balance.to_string()).collect::<Vec<_>>())
    .bind(b.iter().map(|r| r.position.cost_basis.to_string()).collect::<Vec<_>>())
    .bind(b.iter().map(|r| r.position.realized_pnl.to_string()).collect::<Vec<_>>())
    .bind(b.iter().map(|r| int(r.updated_block)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn write_stakes(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    if batch.stake_events.is_empty() {
        return Ok(());
    }
    let e = &batch.stake_events;
    sqlx::query(
        "INSERT INTO stake_events (chain_id, block_number, block_hash, block_timestamp, tx_hash, log_index,
                                           kind, market_type, market_id, staker, proposal_id, amount)
         SELECT $1, block, bhash, to_timestamp(ts), tx, li, kind, t, id, staker, pid::numeric, amount::numeric
           FROM unnest($2::bigint[], $3::bytea[], $4::double precision[], $5::bytea[], $6::int[], $7::text[],
                       $8::smallint[], $9::bytea[], $10::bytea[], $11::text[], $12::text[])
                AS e(block, bhash, ts, tx, li, kind, t, id, staker, pid, amount)",
    )
    .bind(int(batch.chain_id))
    .bind(e.iter().map(|r| int(r.position.block_number)).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.position.block_hash.to_vec()).collect::<Vec<_>>())
    .bind(e.iter().map(|r| secs(r.position.block_timestamp)).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.position.tx_hash.to_vec()).collect::<Vec<_>>())
    .bind(e.iter().map(|r| int32(r.position.log_index)).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.kind.as_str().to_owned()).collect::<Vec<_>>())
    .bind(e.iter().map(|r| market_type(r.market)).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.market.market_id.to_vec()).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.staker.map(|a| a.to_vec())).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.proposal_id.map(|p| p.to_string())).collect::<Vec<_>>())
    .bind(e.iter().map(|r| r.amount.to_string()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    add_stake_totals(conn, batch.chain_id, batch.from_block, batch.to_block.number).await
}

/// Adds the stake events of blocks `from..=to` to the running totals of their markets.
pub(crate) async fn add_stake_totals(
    conn: &mut PgConnection,
    chain_id: u64,
    from: u64,
    to: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO stakes AS s (market_type, market_id, total_deposited, total_withdrawn, total_slashed,
                                          current_stake, updated_block)
         SELECT market_type, market_id,
                coalesce(sum(amount) FILTER (WHERE kind = 'deposit'), 0),
                coalesce(sum(amount) FILTER (WHERE kind = 'withdraw'), 0),
                coalesce(sum(amount) FILTER (WHERE kind = 'slash'), 0),
                coalesce(sum(CASE kind WHEN 'deposit' THEN amount ELSE -amount END), 0),
                max(block_number)
           FROM stake_events
          WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3
          GROUP BY market_type, market_id
         ON CONFLICT (market_type, market_id) DO UPDATE
            SET total_deposited = s.total_deposited + EXCLUDED.total_deposited,
                total_withdrawn = s.total_withdrawn + EXCLUDED.total_withdrawn,
                total_slashed = s.total_slashed + EXCLUDED.total_slashed,
                current_stake = s.current_stake + EXCLUDED.current_stake,
                updated_block = EXCLUDED.updated_block",
    )
    .bind(int(chain_id))
    .bind(int(from))
    .bind(int(to))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn write_proposals(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    let chain = int(batch.chain_id);
    if !batch.proposals.is_empty() {
        let p = &batch.proposals;
        sqlx::query(
            "INSERT INTO proposals (proposal_id, market_type, market_id, proposer, slash_amount,
                                            snapshot_block, voting_ends_at, quorum_required, chain_id, created_block,
                                            created_block_hash, created_tx_hash, created_log_index, created_at)
             SELECT pid::numeric, t, id, proposer, amount::numeric, snap, to_timestamp(ends), quorum::numeric, $1,
                    block, bhash, tx, li, to_timestamp(ts)
               FROM unnest($2::text[], $3::smallint[], $4::bytea[], $5::bytea[], $6::text[], $7::bigint[],
                           $8::double precision[], $9::text[], $10::bigint[], $11::bytea[], $12::bytea[],
                           $13::int[], $14::double precision[])
                    AS p(pid, t, id, proposer, amount, snap, ends, quorum, block, bhash, tx, li, ts)",
        )
        .bind(chain)
        .bind(p.iter().map(|r| r.proposal_id.to_string()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| market_type(r.market)).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.market.market_id.to_vec()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.proposer.to_vec()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.slash_amount.to_string()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| int(r.snapshot_block)).collect::<Vec<_>>())
        .bind(p.iter().map(|r| secs(r.voting_ends_at)).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.quorum_required.to_string()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| int(r.position.block_number)).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.position.block_hash.to_vec()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| r.position.tx_hash.to_vec()).collect::<Vec<_>>())
        .bind(p.iter().map(|r| int32(r.position.log_index)).collect::<Vec<_>>())
        .bind(p.iter().map(|r| secs(r.position.block_timestamp)).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !batch.votes.is_empty() {
        let v = &batch.votes;
        sqlx::query(
            "INSERT INTO votes (chain_id, block_number, block_hash, block_timestamp, tx_hash, log_index,
                                        proposal_id, voter, support, weight)
             SELECT $1, block, bhash, to_timestamp(ts), tx, li, pid::numeric, voter, support, weight::numeric
               FROM unnest($2::bigint[], $3::bytea[], $4::double precision[], $5::bytea[], $6::int[], $7::text[],
                           $8::bytea[], $9::smallint[], $10::text[])
                    AS v(block, bhash, ts, tx, li, pid, voter, support, weight)",
        )
        .bind(chain)
        .bind(v.iter().map(|r| int(r.position.block_number)).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.position.block_hash.to_vec()).collect::<Vec<_>>())
        .bind(v.iter().map(|r| secs(r.position.block_timestamp)).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.position.tx_hash.to_vec()).collect::<Vec<_>>())
        .bind(v.iter().map(|r| int32(r.position.log_index)).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.proposal_id.to_string()).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.voter.to_vec()).collect::<Vec<_>>())
        .bind(v.iter().map(|r| i16::from(r.support)).collect::<Vec<_>>())
        .bind(v.iter().map(|r| r.weight.to_string()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !batch.tallies.is_empty() {
        let t = &batch.tallies;
        sqlx::query(
            "UPDATE proposals p
                SET votes_for = p.votes_for + t.f::numeric, votes_against = p.votes_against + t.a::numeric,
                    votes_abstain = p.votes_abstain + t.x::numeric, voter_count = p.voter_count + t.n
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[]) AS t(pid, f, a, x, n)
              WHERE p.proposal_id = t.pid::numeric",
        )
        .bind(t.iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>())
        .bind(t.iter().map(|(_, d)| d.votes_for.to_string()).collect::<Vec<_>>())
        .bind(t.iter().map(|(_, d)| d.votes_against.to_string()).collect::<Vec<_>>())
        .bind(t.iter().map(|(_, d)| d.votes_abstain.to_string()).collect::<Vec<_>>())
        .bind(t.iter().map(|(_, d)| i32::try_from(d.voters).unwrap_or(i32::MAX)).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    for (proposal_id, outcome, position) in &batch.outcomes {
        let (executed, canceled, slashed) = match outcome {
            Outcome::Executed(amount) => (true, false, Some(amount.to_string())),
            Outcome::Canceled => (false, true, None),
        };
        sqlx::query(
            "UPDATE proposals
                SET executed = executed OR $2, canceled = canceled OR $3, slashed_amount = $4::numeric,
                    resolved_block = $5, resolved_tx_hash = $6, resolved_at = to_timestamp($7)
              WHERE proposal_id = $1::numeric",
        )
        .bind(proposal_id.to_string())
        .bind(executed)
        .bind(canceled)
        .bind(slashed)
        .bind(int(position.block_number))
        .bind(position.tx_hash.to_vec())
        .bind(secs(position.block_timestamp))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn write_candles(conn: &mut PgConnection, batch: &Batch) -> Result<(), StoreError> {
    if batch.candles.is_empty() {
        return Ok(());
    }
    let c = &batch.candles;
    sqlx::query(
        "INSERT INTO candles (market_type, market_id, timeframe, bucket_start, open, high, low, close,
                                      volume_usdc, volume_token, trade_count, unique_traders, first_block, first_log,
                                      last_block, last_log)
         SELECT t, id, tf, to_timestamp(start), o::numeric, h::numeric, l::numeric, c::numeric, vu::numeric,
                vt::numeric, n, u, fb, fl, lb, ll
           FROM unnest($1::smallint[], $2::bytea[], $3::text[], $4::double precision[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::text[], $10::text[], $11::int[], $12::int[], $13::bigint[],
                       $14::int[], $15::bigint[], $16::int[])
                AS c(t, id, tf, start, o, h, l, c, vu, vt, n, u, fb, fl, lb, ll)
         ON CONFLICT (market_type, market_id, timeframe, bucket_start) DO UPDATE
            SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
                volume_usdc = EXCLUDED.volume_usdc, volume_token = EXCLUDED.volume_token,
                trade_count = EXCLUDED.trade_count, unique_traders = EXCLUDED.unique_traders,
                first_block = EXCLUDED.first_block, first_log = EXCLUDED.first_log,
                last_block = EXCLUDED.last_block, last_log = EXCLUDED.last_log",
    )
    .bind(c.iter().map(|r| market_type(r.market)).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.market.market_id.to_vec()).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.timeframe.as_str().to_owned()).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.candle.bucket_start as f64).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.candle.open.to_decimal_string()).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.candle.high.to_decimal_string()).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.candle.low.to_decimal_string()).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.candle.close.to_decimal_string()).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.candle.volume_usdc.to_string()).collect::<Vec<_>>())
    .bind(c.iter().map(|r| r.candle.volume_token.to_string()).collect::<Vec<_>>())
    .bind(c.iter().map(|r| i32::try_from(r.candle.trade_count).unwrap_or(i32::MAX)).collect::<Vec<_>>())
    .bind(c.iter().map(|r| i32::try_from(r.candle.unique_traders).unwrap_or(i32::MAX)).collect::<Vec<_>>())
    .bind(c.iter().map(|r| int(r.candle.first.0)).collect::<Vec<_>>())
    .bind(c.iter().map(|r| int32(r.candle.first.1)).collect::<Vec<_>>())
    .bind(c.iter().map(|r| int(r.candle.last.0)).collect::<Vec<_>>())
    .bind(c.iter().map(|r| int32(r.candle.last.1)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The channel a write `NOTIFY`s to have the indexer look for new blocks at
/// once instead of at its next poll (the payload, the block wanted, is informational).
pub const WAKE_CHANNEL: &str = "animoca_indexer_wake";

/// The channel `NOTIFY`d when change-feed rows are committed.
pub const CHANGES_CHANNEL: &str = "animoca_changes";

/// Bumps the change version (`app.change_version`), appends change-feed rows
/// stamped with it and notifies listeners with it (delivered on commit); returns
/// the new version (`None` when there were no rows). The bump locks the version
/// row until the transaction ends, so versions are assigned in commit order:
/// call this last.
pub async fn write_changes(
    conn: &mut PgConnection,
    changes: &[crate::batch::ChangeRow],
) -> Result<Option<i64>, StoreError> {
    if changes.is_empty() {
        return Ok(None);
    }
    // Bump first (the row lock then orders writers until commit), stamp the
    // rows with the new version, notify: one statement, one round trip.
    let version: i64 = sqlx::query_scalar(
        "WITH bumped AS (UPDATE app.change_version SET version = version + 1 RETURNING version),
              written AS (
                INSERT INTO app.change_feed (version, kind, payload)
                SELECT bumped.version, c.kind, c.payload
                  FROM bumped, unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS c(kind, payload, n)
                 ORDER BY n)
         SELECT version FROM bumped, LATERAL (SELECT pg_notify($3, version::text)) notified",
    )
    .bind(changes.iter().map(|c| c.kind.clone()).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.payload.clone()).collect::<Vec<_>>())
    .bind(CHANGES_CHANNEL)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(version))
}

/// The change version (0 before any change).
pub async fn change_version(conn: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT version FROM app.change_version").fetch_one(&mut *conn).await?)
}

/// One committed change-feed row, as the realtime relay reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChange {
    /// The change version of the transaction that wrote it.
    pub version: i64,
    /// Its order within the feed (within one version, the order written).
    pub id: i64,
    /// `trade`, `price`, `candle`, `proposal`, `vote`, `reorg`, `notification`, …
    pub kind: String,
    /// What changed (JSON, exact decimal strings).
    pub payload: serde_json::Value,
}

/// Change-feed rows of versions above `after`, oldest first: whole versions,
/// up to the one holding the `limit`-th row (a version is never split, so a
/// cursor set to the last version read skips nothing).
pub async fn changes_after(conn: &mut PgConnection, after: i64, limit: i64) -> Result<Vec<StoredChange>, StoreError> {
    let rows: Vec<(i64, i64, String, serde_json::Value)> = sqlx::query_as(
        "SELECT version, id, kind, payload FROM app.change_feed
          WHERE version > $1
            AND version <= coalesce((SELECT version FROM app.change_feed WHERE version > $1
                                      ORDER BY version, id OFFSET $2 - 1 LIMIT 1), 9223372036854775807)
          ORDER BY version, id",
    )
    .bind(after)
    .bind(limit.max(1))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(version, id, kind, payload)| StoredChange { version, id, kind, payload }).collect())
}

// ---- conversions between chain integers and Postgres types -------------------

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn int32(value: u64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Unix seconds for `to_timestamp` (exact for any realistic block time).
#[allow(clippy::cast_precision_loss)]
fn secs(value: u64) -> f64 {
    value as f64
}

fn market_type(market: MarketKey) -> i16 {
    i16::from(market.market_type.as_u8())
}

fn market_key(market_type: i16, id: &[u8]) -> MarketKey {
    let market_type = if market_type == 1 { MarketType::Persona } else { MarketType::Credential };
    MarketKey::new(market_type, b256(id))
}

fn b256(bytes: &[u8]) -> B256 {
    B256::try_from(bytes).unwrap_or_default()
}

fn address(bytes: &[u8]) -> Address {
    Address::try_from(bytes).unwrap_or_default()
}

fn u256(text: &str) -> Result<U256, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("{text:?} is not a uint256")))
}

fn i256(text: &str) -> Result<I256, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("{text:?} is not an int256")))
}
