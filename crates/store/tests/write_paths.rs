//! Large batches go to PostgreSQL by binary `COPY`, small ones by `INSERT … unnest`:
//! both must store exactly the same values, extremes included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy_primitives::{Address, B256, U256};
use animoca_domain::{MarketKey, MarketType, Price};
use animoca_store::batch::{Batch, BlockRow, EventPosition, RawLog, SwapRow, TransferRow};
use animoca_test_support::TestDb;

/// A batch of `n` logs, swaps and transfers with varied and extreme values.
fn batch(n: u64) -> Batch {
    let market = MarketKey::new(MarketType::Persona, B256::repeat_byte(0x42));
    let block_of = |i: u64| 10 + i / 50;
    let position = |i: u64| EventPosition {
        block_number: block_of(i),
        block_hash: B256::from(U256::from(block_of(i))),
        // 2001-09-09 and a few days on; one log before the PostgreSQL epoch (2000).
        block_timestamp: if i == 0 { 900_000_000 } else { 1_000_000_000 + i * 7 },
        tx_hash: B256::from(U256::from(i * 1_000_003)),
        log_index: i % 50,
    };
    let amounts =
        [U256::ZERO, U256::from(1), U256::from(9_999), U256::from(10_000), U256::from(10u64.pow(18)), U256::MAX];
    let mut batch = Batch {
        chain_id: 31_337,
        from_block: 10,
        to_block: BlockRow {
            number: block_of(n),
            hash: B256::repeat_byte(7),
            parent_hash: B256::repeat_byte(6),
            timestamp: 1_000_000_000 + n * 7,
        },
        ..Batch::default()
    };
    for i in 0..n {
        let amount = amounts[usize::try_from(i).unwrap() % amounts.len()];
        let topics: Vec<B256> = (0..(i % 5)).map(|t| B256::from(U256::from(i * 10 + t))).collect();
        batch.logs.push(RawLog {
            position: position(i),
            tx_index: i % 7,
            address: Address::repeat_byte(u8::try_from(i % 250).unwrap()),
            topics,
            data: (0..(i % 70)).map(|b| u8::try_from(b).unwrap()).collect(),
        });
        let price = Price::of_trade(amount.max(U256::from(1)) % U256::from(10).pow(U256::from(30)), U256::from(i + 1))
            .unwrap_or(Price::ZERO);
        batch.swaps.push(SwapRow {
            position: position(i),
            market,
            amm: Address::repeat_byte(0xaa),
            trader: Address::repeat_byte(u8::try_from(i % 9).unwrap()),
            is_buy: i % 2 == 0,
            token_amount: amount,
            usdc_amount: U256::from(i),
            fee: U256::from(i % 3),
            price,
        });
        batch.transfers.push(TransferRow {
            position: position(i),
            market,
            token: Address::repeat_byte(0xbb),
            from: Address::ZERO,
            to: Address::repeat_byte(3),
            value: amount,
        });
    }
    batch
}

/// Every stored log, swap and transfer as text, in chain order.
async fn stored(db: &TestDb) -> Vec<String> {
    let mut rows: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws('|', chain_id, block_number, log_index, encode(block_hash, 'hex'),
                          extract(epoch FROM block_timestamp)::bigint, encode(tx_hash, 'hex'), tx_index,
                          encode(address, 'hex'), encode(topic0, 'hex'), encode(topic1, 'hex'),
                          encode(topic2, 'hex'), encode(topic3, 'hex'), encode(data, 'hex'),
                          topic0 IS NULL, topic3 IS NULL)
           FROM chain.logs ORDER BY block_number, log_index",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    rows.extend(
        sqlx::query_scalar::<_, String>(
            "SELECT concat_ws('|', chain_id, block_number, encode(block_hash, 'hex'),
                              extract(epoch FROM block_timestamp)::bigint, encode(tx_hash, 'hex'), log_index,
                              market_type, encode(market_id, 'hex'), encode(amm_address, 'hex'),
                              encode(trader, 'hex'), is_buy, token_amount, usdc_amount, fee_amount, price)
               FROM derived.swaps ORDER BY block_number, log_index",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap(),
    );
    rows.extend(
        sqlx::query_scalar::<_, String>(
            "SELECT concat_ws('|', chain_id, block_number, encode(block_hash, 'hex'),
                              extract(epoch FROM block_timestamp)::bigint, encode(tx_hash, 'hex'), log_index,
                              encode(token_address, 'hex'), market_type, encode(market_id, 'hex'),
                              encode(from_address, 'hex'), encode(to_address, 'hex'), value)
               FROM derived.transfers ORDER BY block_number, log_index",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap(),
    );
    rows
}

async fn write(batch: &Batch) -> TestDb {
    let db = TestDb::migrated().await;
    let mut tx = db.pool.begin().await.unwrap();
    animoca_store::indexing::write_batch(&mut tx, batch).await.unwrap();
    tx.commit().await.unwrap();
    db
}

#[tokio::test]
async fn copy_and_insert_store_the_same_values() {
    // 3,000 rows per table go by COPY; the first 30 of them again by INSERT.
    let large = batch(3_000);
    let mut small = batch(30);
    small.to_block = large.to_block;
    let copied = stored(&write(&large).await).await;
    let inserted = stored(&write(&small).await).await;
    assert_eq!(copied.len(), 9_000);
    assert_eq!(inserted.len(), 90);
    for (table, offset) in [("logs", 0), ("swaps", 3_000), ("transfers", 6_000)] {
        for i in 0..30 {
            assert_eq!(copied[offset + i], inserted[i + offset / 100], "{table} row {i}");
        }
    }
    // Values the encoders must get exactly right.
    let max = U256::MAX.to_string();
    assert!(copied[3_005].contains(&format!("|{max}|")), "{}", copied[3_005]);
    assert!(copied[0].contains("|900000000|"), "a time before 2000: {}", copied[0]);
    let price_of = |row: &String| row.rsplit('|').next().unwrap().to_owned();
    for i in 0..3_000 {
        let swap = &large.swaps[i];
        assert_eq!(price_of(&copied[3_000 + i]), swap.price.to_decimal_string(), "swap {i} price");
    }
}

#[tokio::test]
async fn orphan_cleanup_waits_for_a_range_whose_logs_are_committed_but_itself_is_not() {
    let db = TestDb::migrated().await;
    let chain_id = 31_337u64;
    // The range's main transaction takes the log-store lock first...
    let mut range = db.pool.begin().await.unwrap();
    animoca_store::indexing::lock_log_store(&mut range, chain_id).await.unwrap();
    // ...then its raw logs commit on another connection.
    sqlx::query(
        "INSERT INTO chain.logs (chain_id, block_number, log_index, block_hash, block_timestamp, tx_hash, tx_index,
                                 address, data)
         VALUES ($1, 5, 0, '\\x01', now(), '\\x02', 0, '\\x03', '\\x')",
    )
    .bind(i64::try_from(chain_id).unwrap())
    .execute(&db.pool)
    .await
    .unwrap();
    // A cleanup started now must wait for the range instead of seeing its logs as orphans.
    let pool = db.pool.clone();
    let cleanup = tokio::spawn(async move { animoca_store::indexing::delete_logs_above(&pool, chain_id).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!cleanup.is_finished(), "the cleanup waits for the range's lock");
    sqlx::query("INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES ($1, 5, '\\x01')")
        .bind(i64::try_from(chain_id).unwrap())
        .execute(&mut *range)
        .await
        .unwrap();
    range.commit().await.unwrap();
    assert_eq!(cleanup.await.unwrap().unwrap(), 0, "nothing above the new checkpoint");
    let logs: i64 = sqlx::query_scalar("SELECT count(*) FROM chain.logs").fetch_one(&db.pool).await.unwrap();
    assert_eq!(logs, 1);
    // With no range in flight, logs above the checkpoint are removed.
    sqlx::query("UPDATE chain.checkpoints SET block_number = 4").execute(&db.pool).await.unwrap();
    assert_eq!(animoca_store::indexing::delete_logs_above(&db.pool, chain_id).await.unwrap(), 1);
}
