//! Reorgs while following the head: after each one the database equals a fresh
//! index of the final chain (fingerprint of every derived table and the log store).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::{primitives::U256, providers::ext::AnvilApi};
use animoca_domain::MarketType;
use animoca_indexer::{Indexer, IndexerConfig};
use animoca_store::fingerprint::fingerprint;
use animoca_test_support::{MarketSpec, TestChain, TestDb, tokens, usdc};

async fn index_from_scratch(chain: &TestChain) -> TestDb {
    let db = TestDb::migrated().await;
    let config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    let mut indexer = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    indexer.catch_up().await.unwrap();
    db
}

#[tokio::test]
async fn reorgs_of_several_depths_end_where_a_fresh_index_ends() {
    let chain = TestChain::start().await;
    let credential = MarketSpec::new(MarketType::Credential, "reorg-c");
    let persona = MarketSpec::new(MarketType::Persona, "reorg-p");
    let (c_token, _) = chain.create_market(&credential, chain.account(1)).await;
    chain.create_market(&persona, chain.account(2)).await;
    chain.buy(chain.account(3), MarketType::Credential, credential.id, usdc(40), U256::ZERO).await.unwrap();

    let live = TestDb::migrated().await;
    let mut config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    config.max_range = 3;
    let mut indexer = Indexer::new(live.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    indexer.catch_up().await.unwrap();

    for (round, depth) in [1u64, 6, 23].into_iter().enumerate() {
        let round = u64::try_from(round).unwrap();
        let snapshot = chain.provider.anvil_snapshot().await.unwrap();
        // The branch the indexer sees first: `depth` blocks of trades, a transfer, a new market.
        let mut mined = 0;
        while mined < depth {
            chain
                .buy(chain.account(4), MarketType::Credential, credential.id, usdc(5 + round), U256::ZERO)
                .await
                .unwrap();
            mined += 3; // mint, approve, buy
        }
        chain.transfer_tokens(c_token, chain.account(1), chain.account(6), tokens(7)).await;
        let doomed = MarketSpec::new(MarketType::Credential, &format!("orphan-{round}"));
        chain.create_market(&doomed, chain.account(5)).await;
        indexer.catch_up().await.unwrap();

        // The chain switches to another branch, longer than the first.
        assert!(chain.provider.anvil_revert(snapshot).await.unwrap());
        for i in 0..=(depth / 3 + 2) {
            chain.buy(chain.account(7), MarketType::Persona, persona.id, usdc(3 + i), U256::ZERO).await.unwrap();
        }
        chain
            .sell(chain.account(3), MarketType::Credential, credential.id, c_token, tokens(1), U256::ZERO)
            .await
            .unwrap();
        indexer.catch_up().await.unwrap();

        let fresh = index_from_scratch(&chain).await;
        let expected = fingerprint(&fresh.pool).await.unwrap();
        assert_eq!(fingerprint(&live.pool).await.unwrap(), expected, "after a reorg of depth ≥ {depth}");
        let reorgs: i64 = sqlx::query_scalar("SELECT count(*) FROM app.change_feed WHERE kind = 'reorg'")
            .fetch_one(&live.pool)
            .await
            .unwrap();
        assert_eq!(reorgs, i64::try_from(round + 1).unwrap(), "one reorg change per reorg");
    }
}
