//! Reorg support: remove everything above a common ancestor, and replace one
//! market's derived state with a state replayed from the log store.

use alloy_primitives::{Address, B256};
use animoca_domain::MarketKey;
use sqlx::{PgConnection, PgPool, Row};

use crate::{StoreError, batch::Batch};

/// Hash of block `number` as stored (the reorg window, or any stored log of it).
pub async fn stored_block_hash(pool: &PgPool, chain_id: u64, number: u64) -> Result<Option<B256>, StoreError> {
    let hash: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT hash FROM chain.blocks WHERE chain_id = $1 AND number = $2
         UNION ALL
         (SELECT block_hash FROM chain.logs WHERE chain_id = $1 AND block_number = $2 LIMIT 1)
         LIMIT 1",
    )
    .bind(int(chain_id))
    .bind(int(number))
    .fetch_optional(pool)
    .await?;
    Ok(hash.and_then(|h| B256::try_from(h.as_slice()).ok()))
}

/// Highest block at or below `below` that has a stored hash.
pub async fn highest_stored_block(pool: &PgPool, chain_id: u64, below: u64) -> Result<Option<u64>, StoreError> {
    let block: Option<i64> = sqlx::query_scalar(
        "SELECT greatest((SELECT max(number) FROM chain.blocks WHERE chain_id = $1 AND number <= $2),
                         (SELECT max(block_number) FROM chain.logs WHERE chain_id = $1 AND block_number <= $2))",
    )
    .bind(int(chain_id))
    .bind(int(below))
    .fetch_one(pool)
    .await?;
    Ok(block.and_then(|b| u64::try_from(b).ok()))
}

/// Markets with any stored event above `ancestor` (whose state must be replayed).
pub async fn markets_touched_after(
    conn: &mut PgConnection,
    chain_id: u64,
    ancestor: u64,
) -> Result<Vec<MarketKey>, StoreError> {
    // `chain_id` first: the event tables' block indexes are (chain_id, block_number).
    let rows = sqlx::query(
        "SELECT market_type, market_id FROM swaps WHERE chain_id = $2 AND block_number > $1
         UNION SELECT market_type, market_id FROM transfers WHERE chain_id = $2 AND block_number > $1
         UNION SELECT market_type, market_id FROM stake_events WHERE chain_id = $2 AND block_number > $1
         UNION SELECT p.market_type, p.market_id FROM pools p WHERE p.updated_block > $1
         ORDER BY 1, 2",
    )
    .bind(int(ancestor))
    .bind(int(chain_id))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|row| Ok(market_key(row.try_get(0)?, &row.try_get::<Vec<u8>, _>(1)?))).collect()
}

/// Deletes every stored row above `ancestor` and moves the checkpoint to it.
/// Running totals that do not replay per market (stakes, proposal tallies) are
/// recomputed from the remaining events; per-market state is the caller's to replay.
pub async fn rollback_above(
    conn: &mut PgConnection,
    chain_id: u64,
    ancestor: u64,
    ancestor_hash: B256,
) -> Result<(), StoreError> {
    let chain = int(chain_id);
    let above = int(ancestor);
    for table in ["swaps", "transfers", "stake_events", "votes"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE chain_id = $1 AND block_number > $2")))
            .bind(chain)
            .bind(above)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("DELETE FROM pools WHERE created_block > $1").bind(above).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM proposals WHERE chain_id = $1 AND created_block > $2")
        .bind(chain)
        .bind(above)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE proposals SET executed = false, canceled = false, slashed_amount = NULL,
                resolved_block = NULL, resolved_tx_hash = NULL, resolved_at = NULL
          WHERE chain_id = $1 AND resolved_block > $2",
    )
    .bind(chain)
    .bind(above)
    .execute(&mut *conn)
    .await?;
    // Markets created above the ancestor go with everything that hangs off them.
    let gone = "(SELECT market_type, market_id FROM markets WHERE chain_id = $1 AND created_block > $2)";
    for table in ["balances", "candles", "stakes", "market_stats"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE (market_type, market_id) IN {gone}")))
            .bind(chain)
            .bind(above)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("DELETE FROM markets WHERE chain_id = $1 AND created_block > $2")
        .bind(chain)
        .bind(above)
        .execute(&mut *conn)
        .await?;
    for table in ["chain.logs", "chain.call_results"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE chain_id = $1 AND block_number > $2")))
            .bind(chain)
            .bind(above)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("DELETE FROM chain.blocks WHERE chain_id = $1 AND number > $2")
        .bind(chain)
        .bind(above)
        .execute(&mut *conn)
        .await?;

    // Running totals from the events that remain.
    sqlx::query("DELETE FROM stakes").execute(&mut *conn).await?;
    crate::indexing::add_stake_totals(conn, chain_id, 0, ancestor).await?;
    sqlx::query(
        "UPDATE proposals p
            SET votes_for = coalesce(v.f, 0), votes_against = coalesce(v.a, 0), votes_abstain = coalesce(v.x, 0),
                voter_count = coalesce(v.n, 0)
           FROM proposals q
           LEFT JOIN (SELECT proposal_id, sum(weight) FILTER (WHERE support = 1) f,
                             sum(weight) FILTER (WHERE support = 0) a, sum(weight) FILTER (WHERE support = 2) x,
                             count(*)::int n
                        FROM votes GROUP BY proposal_id) v USING (proposal_id)
          WHERE p.proposal_id = q.proposal_id",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE chain.checkpoints SET block_number = $2, block_hash = $3, updated_at = now() WHERE chain_id = $1",
    )
    .bind(chain)
    .bind(above)
    .bind(ancestor_hash.to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rebuilds the 24h window at the stored checkpoint's time (after a rollback and
/// the replay of the touched markets).
pub async fn rebuild_window(conn: &mut PgConnection, chain_id: u64) -> Result<(), StoreError> {
    let t: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM b.timestamp)::float8 FROM chain.blocks b
           JOIN chain.checkpoints c ON c.chain_id = b.chain_id AND b.number <= c.block_number
          WHERE b.chain_id = $1 ORDER BY b.number DESC LIMIT 1",
    )
    .bind(int(chain_id))
    .fetch_optional(&mut *conn)
    .await?;
    #[allow(clippy::cast_possible_truncation)]
    crate::window::rebuild(conn, chain_id, t.map_or(0, |t| t as i64)).await
}

/// The stored logs a market's state is derived from (its pool's AMM logs, its
/// token's transfers, its stake events), in chain order, up to `through`.
pub async fn market_logs(
    conn: &mut PgConnection,
    chain_id: u64,
    market: MarketKey,
    amm: Address,
    vault: Address,
    token: Address,
) -> Result<Vec<crate::batch::RawLog>, StoreError> {
    let market_type_topic = B256::left_padding_from(&[market.market_type.as_u8()]);
    let rows = sqlx::query(
        "SELECT block_number, log_index, block_hash, extract(epoch FROM block_timestamp)::bigint, tx_hash, tx_index,
                address, topic0, topic1, topic2, topic3, data
           FROM chain.logs
          WHERE chain_id = $1
            AND ((address = $2 AND topic1 = $3)
              OR address = $4
              OR (address = $5 AND topic1 = $6 AND topic2 = $3))
          ORDER BY block_number, log_index",
    )
    .bind(int(chain_id))
    .bind(amm.to_vec())
    .bind(market.market_id.to_vec())
    .bind(token.to_vec())
    .bind(vault.to_vec())
    .bind(market_type_topic.to_vec())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let topics = [7, 8, 9, 10]
                .into_iter()
                .filter_map(|i| row.try_get::<Option<Vec<u8>>, _>(i).ok().flatten())
                .map(|t| B256::try_from(t.as_slice()).unwrap_or_default())
                .collect();
            Ok(crate::batch::RawLog {
                position: crate::batch::EventPosition {
                    block_number: uint(row.try_get(0)?),
                    block_hash: B256::try_from(row.try_get::<Vec<u8>, _>(2)?.as_slice()).unwrap_or_default(),
                    block_timestamp: uint(row.try_get(3)?),
                    tx_hash: B256::try_from(row.try_get::<Vec<u8>, _>(4)?.as_slice()).unwrap_or_default(),
                    log_index: uint(i64::from(row.try_get::<i32, _>(1)?)),
                },
                tx_index: uint(i64::from(row.try_get::<i32, _>(5)?)),
                address: Address::try_from(row.try_get::<Vec<u8>, _>(6)?.as_slice()).unwrap_or_default(),
                topics,
                data: row.try_get(11)?,
            })
        })
        .collect()
}

/// Replaces a market's derived state (balances, candles, pool reserves, supply,
/// holder count) with `replayed`, a batch folded from its whole log history.
pub async fn replace_market_state(
    conn: &mut PgConnection,
    market: MarketKey,
    replayed: &Batch,
) -> Result<(), StoreError> {
    let (t, id) = (i16::from(market.market_type.as_u8()), market.market_id.to_vec());
    for table in ["balances", "candles"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE market_type = $1 AND market_id = $2")))
            .bind(t)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("UPDATE markets SET total_supply = 0, holder_count = 0 WHERE market_type = $1 AND market_id = $2")
        .bind(t)
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    let state = Batch {
        chain_id: replayed.chain_id,
        reserves: replayed.reserves.clone(),
        balances: replayed.balances.clone(),
        market_deltas: replayed.market_deltas.clone(),
        candles: replayed.candles.clone(),
        ..Batch::default()
    };
    crate::indexing::write_state(conn, &state).await
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn market_key(market_type: i16, id: &[u8]) -> MarketKey {
    let market_type =
        if market_type == 1 { animoca_domain::MarketType::Persona } else { animoca_domain::MarketType::Credential };
    MarketKey::new(market_type, B256::try_from(id).unwrap_or_default())
}
