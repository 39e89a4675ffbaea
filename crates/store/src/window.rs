//! The rolling 24h metrics of SPEC §5, kept current at index time: for each
//! batch, the swaps that enter the window `(T − 24h, T]` are added and those that
//! leave it are subtracted, so the work is proportional to the swaps that move,
//! never to the window's size.

use sqlx::PgConnection;

use crate::StoreError;

const DAY: i64 = 86_400;

/// Which markets to refresh (price, reference, change, traders, market cap).
pub enum Refresh<'a> {
    /// Markets touched by the window's moves plus these (new markets, reserve changes);
    /// `new_markets` when the batch created markets (they get their stats row).
    Touched {
        /// Markets to refresh besides those the window's moves touch.
        markets: &'a [(i16, Vec<u8>)],
        /// Whether the batch created markets.
        new_markets: bool,
    },
    /// Every market (after a rollback).
    All,
}

/// Moves the window end from the stored `T` to `t` (Unix seconds): adds the
/// swaps of blocks `>= from_block` inside the new window, subtracts the older
/// swaps that fell out, and refreshes the affected markets.
pub async fn slide(
    conn: &mut PgConnection,
    chain_id: u64,
    from_block: u64,
    t: i64,
    refresh: Refresh<'_>,
) -> Result<(), StoreError> {
    let previous: Option<f64> = sqlx::query_scalar("SELECT extract(epoch FROM as_of)::float8 FROM window_state")
        .fetch_optional(&mut *conn)
        .await?;
    // Blocks can share a timestamp, so "new" means a block of this batch, not a later time.
    let cut = t - DAY;
    // No previous window: nothing can leave it.
    #[allow(clippy::cast_possible_truncation)]
    let prev_cut = previous.map_or(cut, |p| p as i64 - DAY);
    let from = i64::try_from(from_block).unwrap_or(i64::MAX);
    // Entering swaps come from swaps_block_idx (chain_id, block_number): filtering a
    // time-index scan of the whole window by block took 300 ms at 1M swaps. Leaving
    // swaps come from swaps_time_idx alone (`+ 0` keeps the planner from AND-ing in
    // a scan of swaps_block_idx over every older block: 40 ms at 1M swaps).
    let moves = "SELECT market_type, market_id, trader, usdc_amount AS v, 1 AS n FROM swaps
                  WHERE chain_id = $4 AND block_number >= $1 AND block_timestamp > to_timestamp($2)
                 UNION ALL
                 SELECT market_type, market_id, trader, -usdc_amount, -1 FROM swaps
                  WHERE chain_id + 0 = $4 AND block_number + 0 < $1 AND block_timestamp > to_timestamp($3)
                    AND block_timestamp <= to_timestamp($2)";
    let chain = i64::try_from(chain_id).unwrap_or(i64::MAX);
    #[allow(clippy::cast_precision_loss)]
    let (cut_f, prev_f) = (cut as f64, prev_cut as f64);

    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO market_window_traders AS w (market_type, market_id, trader, trades)
         SELECT market_type, market_id, trader, sum(n) FROM ({moves}) m GROUP BY 1, 2, 3 HAVING sum(n) <> 0
         ON CONFLICT (market_type, market_id, trader) DO UPDATE SET trades = w.trades + EXCLUDED.trades"
    )))
    .bind(from)
    .bind(cut_f)
    .bind(prev_f)
    .bind(chain)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM market_window_traders WHERE trades <= 0").execute(&mut *conn).await?;

    if matches!(refresh, Refresh::All | Refresh::Touched { new_markets: true, .. }) {
        sqlx::query(
            "INSERT INTO market_stats (market_type, market_id, price)
             SELECT market_type, market_id, 0 FROM markets
             ON CONFLICT (market_type, market_id) DO NOTHING",
        )
        .execute(&mut *conn)
        .await?;
    }
    let moved: Vec<(i16, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH agg AS (SELECT market_type, market_id, sum(v) v, sum(n) n FROM ({moves}) m GROUP BY 1, 2)
         UPDATE market_stats s SET volume_24h = s.volume_24h + agg.v, trades_24h = s.trades_24h + agg.n
           FROM agg WHERE s.market_type = agg.market_type AND s.market_id = agg.market_id
         RETURNING s.market_type, s.market_id"
    )))
    .bind(from)
    .bind(cut_f)
    .bind(prev_f)
    .bind(chain)
    .fetch_all(&mut *conn)
    .await?;

    let (types, ids): (Vec<i16>, Vec<Vec<u8>>) = match refresh {
        Refresh::All => sqlx::query_as::<_, (i16, Vec<u8>)>("SELECT market_type, market_id FROM market_stats")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .unzip(),
        Refresh::Touched { markets, .. } => moved.into_iter().chain(markets.iter().cloned()).unzip(),
    };
    sqlx::query(
        "UPDATE market_stats s
            SET price = coalesce(p.price, 0),
                traders_24h = (SELECT count(*) FROM market_window_traders w
                                WHERE w.market_type = s.market_type AND w.market_id = s.market_id),
                reference_price = coalesce(
                    (SELECT x.price FROM swaps x
                      WHERE x.market_type = s.market_type AND x.market_id = s.market_id
                        AND x.block_timestamp <= to_timestamp($3)
                      ORDER BY x.block_timestamp DESC, x.block_number DESC, x.log_index DESC LIMIT 1),
                    (SELECT x.price FROM swaps x
                      WHERE x.market_type = s.market_type AND x.market_id = s.market_id
                        AND x.block_timestamp > to_timestamp($3)
                      ORDER BY x.block_timestamp, x.block_number, x.log_index LIMIT 1)),
                last_trade_at = (SELECT max(x.block_timestamp) FROM swaps x
                                  WHERE x.market_type = s.market_type AND x.market_id = s.market_id),
                market_cap = trunc(coalesce(p.price, 0) * m.total_supply / 1000000000000)
           FROM markets m
           LEFT JOIN pools p USING (market_type, market_id)
          WHERE m.market_type = s.market_type AND m.market_id = s.market_id
            AND (s.market_type, s.market_id) IN (SELECT * FROM unnest($1::smallint[], $2::bytea[]))",
    )
    .bind(&types)
    .bind(&ids)
    .bind(cut_f)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE market_stats
            SET price_change_24h = CASE WHEN coalesce(reference_price, 0) = 0 THEN 0
                                        ELSE ((price - reference_price) / reference_price * 100)::float8 END
          WHERE (market_type, market_id) IN (SELECT * FROM unnest($1::smallint[], $2::bytea[]))",
    )
    .bind(&types)
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO window_state (singleton, as_of) VALUES (true, to_timestamp($1))
         ON CONFLICT (singleton) DO UPDATE SET as_of = EXCLUDED.as_of",
    )
    .bind(t as f64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rebuilds the window from scratch at time `t` (after a rollback).
pub async fn rebuild(conn: &mut PgConnection, chain_id: u64, t: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM market_window_traders").execute(&mut *conn).await?;
    sqlx::query("DELETE FROM market_stats").execute(&mut *conn).await?;
    sqlx::query("DELETE FROM window_state").execute(&mut *conn).await?;
    slide(conn, chain_id, 0, t, Refresh::All).await
}
