//! The test harness itself: anvil starts, contracts deploy, a market trades.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::U256;
use animoca_domain::MarketType;
use animoca_test_support::{MarketSpec, TestChain, TestDb, usdc};

#[tokio::test]
async fn deploys_creates_a_market_and_trades() {
    let chain = TestChain::start().await;
    let spec = MarketSpec::new(MarketType::Credential, "smoke");
    let creator = chain.account(1);
    let (token, _) = chain.create_market(&spec, creator).await;
    let pool = chain.amm(MarketType::Credential).pools(spec.id).call().await.unwrap();
    assert_eq!(pool.token, token);
    assert_eq!(pool.tokenReserves, spec.token_reserves);
    chain.buy(chain.account(2), MarketType::Credential, spec.id, usdc(100), U256::ZERO).await.unwrap();
    let balance = chain.token(token).balanceOf(chain.account(2)).call().await.unwrap();
    assert!(balance > U256::ZERO);
}

#[tokio::test]
async fn a_test_database_is_fresh_and_migrated() {
    let db = TestDb::migrated().await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema IN ('chain', 'derived', 'app')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(tables > 20, "{tables} tables");
}
