//! The catch-up pipeline (ranges fetched ahead while earlier ones are derived and
//! written) and push-based head following.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use animoca_domain::MarketType;
use animoca_indexer::{Heads, Indexer, IndexerConfig, Leader};
use animoca_store::fingerprint::fingerprint;
use animoca_test_support::{MarketSpec, TestChain, TestDb, tokens, usdc};
use tokio_util::sync::CancellationToken;

/// An indexer of `chain` into `db`, with the defaults changed by `adjust`.
async fn indexer(chain: &TestChain, db: &TestDb, adjust: impl FnOnce(&mut IndexerConfig)) -> Indexer {
    let mut config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    adjust(&mut config);
    Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap()
}

async fn index(chain: &TestChain, max_range: u64, fetch_ahead: usize, target_logs: usize) -> TestDb {
    let db = TestDb::migrated().await;
    let mut indexer = indexer(chain, &db, |config| {
        config.max_range = max_range;
        config.fetch_ahead = fetch_ahead;
        config.target_logs = target_logs;
    })
    .await;
    assert_eq!(indexer.catch_up().await.unwrap(), Some(chain.block_number().await));
    db
}

#[tokio::test]
async fn one_block_ranges_fetched_far_ahead_equal_one_big_range() {
    // Markets are created between trades, so ranges fetched ahead were filtered
    // without tokens that an earlier range creates: their transfers must still arrive.
    let chain = TestChain::start().await;
    let first = MarketSpec::new(MarketType::Credential, "pipe-a");
    let (first_token, _) = chain.create_market(&first, chain.account(1)).await;
    chain.buy(chain.account(2), MarketType::Credential, first.id, usdc(30), U256::ZERO).await.unwrap();
    let second = MarketSpec::new(MarketType::Persona, "pipe-b");
    let (second_token, _) = chain.create_market(&second, chain.account(3)).await;
    chain.buy(chain.account(4), MarketType::Persona, second.id, usdc(12), U256::ZERO).await.unwrap();
    chain.transfer_tokens(second_token, chain.account(3), chain.account(5), tokens(2)).await;
    chain.transfer_tokens(first_token, chain.account(2), chain.account(6), tokens(1)).await;
    chain.sell(chain.account(4), MarketType::Persona, second.id, second_token, tokens(1), U256::ZERO).await.unwrap();

    let whole = index(&chain, 10_000, 1, 1_000_000).await;
    let expected = fingerprint(&whole.pool).await.unwrap();
    assert!(expected["derived.transfers"].rows >= 6, "{expected:?}");
    for fetch_ahead in [1, 8] {
        let piecewise = index(&chain, 1, fetch_ahead, 1_000_000).await;
        assert_eq!(fingerprint(&piecewise.pool).await.unwrap(), expected, "max_range 1, fetch_ahead {fetch_ahead}");
    }
    // Every range's raw logs on a second connection, committed before the range.
    let db = TestDb::migrated().await;
    let mut indexer = indexer(&chain, &db, |config| {
        config.max_range = 2;
        config.parallel_log_store_rows = 1;
    })
    .await;
    indexer.catch_up().await.unwrap();
    assert_eq!(fingerprint(&db.pool).await.unwrap(), expected, "log store written in parallel");
}

#[tokio::test]
async fn a_range_far_denser_than_the_target_is_written_in_parts() {
    let chain = TestChain::start().await;
    let spec = MarketSpec::new(MarketType::Credential, "dense");
    let (token, _) = chain.create_market(&spec, chain.account(1)).await;
    for i in 0..4 {
        chain
            .buy(chain.account(2 + i), MarketType::Credential, spec.id, usdc(10 + i as u64), U256::ZERO)
            .await
            .unwrap();
    }
    chain.transfer_tokens(token, chain.account(2), chain.account(7), tokens(1)).await;
    let later = MarketSpec::new(MarketType::Persona, "dense-later");
    chain.create_market(&later, chain.account(3)).await;
    chain.buy(chain.account(4), MarketType::Persona, later.id, usdc(9), U256::ZERO).await.unwrap();

    let whole = index(&chain, 10_000, 1, 1_000_000).await;
    // Three logs per range at most: every range is cut at block boundaries.
    let parts = index(&chain, 10_000, 2, 3).await;
    assert_eq!(fingerprint(&parts.pool).await.unwrap(), fingerprint(&whole.pool).await.unwrap());
    let checkpoints: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chain.blocks").fetch_one(&parts.pool).await.unwrap();
    let single: i64 = sqlx::query_scalar("SELECT count(*) FROM chain.blocks").fetch_one(&whole.pool).await.unwrap();
    assert!(checkpoints > single, "parts wrote their own end blocks: {checkpoints} vs {single}");
}

#[tokio::test]
async fn new_heads_wake_the_indexer_long_before_its_next_poll() {
    let chain = TestChain::start().await;
    let spec = MarketSpec::new(MarketType::Credential, "heads");
    chain.create_market(&spec, chain.account(1)).await;
    let db = TestDb::migrated().await;
    // Polling alone would take a minute to notice a block.
    let mut indexer = indexer(&chain, &db, |config| config.poll_interval = Duration::from_secs(60)).await;
    let shutdown = CancellationToken::new();
    indexer.follow_heads(Heads::subscribe(chain.anvil.ws_endpoint(), shutdown.clone()));
    let options = db.pool.connect_options().as_ref().clone();
    let mut leader = Leader::acquire(&options, 31_337, Duration::from_millis(100), &shutdown).await.unwrap().unwrap();
    let stop = shutdown.clone();
    let running = tokio::spawn(async move { indexer.run(&mut leader, stop).await });

    let swaps = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM derived.swaps").fetch_one(&db.pool).await.unwrap()
    };
    // Wait for the backfill, then for the subscription to be live.
    let checkpoint = || async {
        sqlx::query_scalar::<_, Option<i64>>("SELECT max(block_number) FROM chain.checkpoints")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    let head = i64::try_from(chain.block_number().await).unwrap();
    while checkpoint().await < Some(head) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    for round in 1..=3 {
        chain.buy(chain.account(2), MarketType::Credential, spec.id, usdc(5), U256::ZERO).await.unwrap();
        let mined = Instant::now();
        while swaps().await < round {
            assert!(mined.elapsed() < Duration::from_secs(10), "trade {round} not indexed 10 s after its block");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn logs_left_above_the_checkpoint_by_an_interrupted_range_are_removed() {
    // Large ranges commit their raw logs first, on a connection of their own; a
    // crash before the range itself commits leaves them above the checkpoint.
    let chain = TestChain::start().await;
    let spec = MarketSpec::new(MarketType::Credential, "orphans");
    chain.create_market(&spec, chain.account(1)).await;
    let db = TestDb::migrated().await;
    let mut first = indexer(&chain, &db, |config| config.max_range = 1_000).await;
    let checkpoint = first.catch_up().await.unwrap().unwrap();
    drop(first);
    // The next block's logs "committed" without their range, at the log indexes it will use.
    chain.buy(chain.account(2), MarketType::Credential, spec.id, usdc(8), U256::ZERO).await.unwrap();
    let head = chain.block_number().await;
    let orphaned = sqlx::query(
        "INSERT INTO chain.logs (chain_id, block_number, log_index, block_hash, block_timestamp, tx_hash, tx_index,
                                 address, topic0, data)
         SELECT chain_id, $1, g, block_hash, block_timestamp, tx_hash, tx_index, address, topic0, data
           FROM chain.logs, generate_series(0, 9) g WHERE block_number = $2 LIMIT 10",
    )
    .bind(i64::try_from(head).unwrap())
    .bind(i64::try_from(checkpoint).unwrap())
    .execute(&db.pool)
    .await
    .unwrap();
    assert!(orphaned.rows_affected() > 0);

    let mut second = indexer(&chain, &db, |config| config.max_range = 1_000).await;
    assert_eq!(second.catch_up().await.unwrap(), Some(head));
    let clean = index(&chain, 1_000, 1, 30_000).await;
    assert_eq!(fingerprint(&db.pool).await.unwrap(), fingerprint(&clean.pool).await.unwrap());
}
