//! The indexer against a real chain: a scripted session over both markets, then
//! every derived number compared with what the chain itself reports (views) or
//! what the test computes from the transactions it sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::{SolCall, SolEvent},
};
use animoca_chain::bindings::{GovernanceSlashing, MarketAMM, MarketToken};
use animoca_domain::{MarketType, Price};
use animoca_indexer::{IndexError, Indexer, IndexerConfig};
use animoca_store::StoreError;
use animoca_test_support::{MarketSpec, TestChain, TestDb, tokens, usdc};
use sqlx::Row;

struct Market {
    spec: MarketSpec,
    token: Address,
}

async fn indexer(chain: &TestChain, db: &TestDb, max_range: u64) -> Indexer {
    let mut config = IndexerConfig::new(31_337, chain.deployment.start_block, 0);
    config.max_range = max_range;
    Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap()
}

async fn scalar_text(db: &TestDb, sql: &str, binds: &[Vec<u8>]) -> String {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for bind in binds {
        query = query.bind(bind.clone());
    }
    query.fetch_one(&db.pool).await.unwrap().get::<String, _>(0)
}

#[tokio::test]
async fn indexes_both_markets_exactly() {
    let chain = TestChain::start_with(|p| {
        p.voting_period_secs = 3_600;
        p.quorum_bps = 500;
    })
    .await;
    let db = TestDb::migrated().await;
    let (creator_a, creator_b) = (chain.account(1), chain.account(2));
    let (alice, bob, carol, dave, proposer) =
        (chain.account(3), chain.account(4), chain.account(5), chain.account(6), chain.account(7));

    let mut markets = Vec::new();
    for (market, label, creator) in
        [(MarketType::Credential, "cred-a", creator_a), (MarketType::Persona, "persona-b", creator_b)]
    {
        let spec = MarketSpec::new(market, label);
        let (token, _) = chain.create_market(&spec, creator).await;
        markets.push(Market { spec, token });
    }
    let (a, b) = (&markets[0], &markets[1]);
    let mut swaps = Vec::new();
    swaps.push(chain.buy(alice, MarketType::Credential, a.spec.id, usdc(100), U256::ZERO).await.unwrap());
    swaps.push(chain.buy(bob, MarketType::Credential, a.spec.id, usdc(50), U256::ZERO).await.unwrap());
    let alice_tokens = chain.token_balance(a.token, alice).await;
    swaps.push(
        chain
            .sell(alice, MarketType::Credential, a.spec.id, a.token, alice_tokens / U256::from(2), U256::ZERO)
            .await
            .unwrap(),
    );
    chain.transfer_tokens(a.token, alice, carol, tokens(10)).await;
    swaps.push(chain.buy(bob, MarketType::Persona, b.spec.id, usdc(20), U256::ZERO).await.unwrap());
    chain.deposit_stake(creator_a, MarketType::Credential, a.spec.id, usdc(250)).await.unwrap();
    chain.withdraw_stake(creator_b, MarketType::Persona, b.spec.id, usdc(50)).await.unwrap();

    // Governance: dave gets enough weight for quorum (5% of 1.1M = 55k), then a slash passes.
    chain.transfer_tokens(a.token, creator_a, dave, tokens(60_000)).await;
    chain.mine().await;
    let (proposal, _) = chain.propose(proposer, MarketType::Credential, a.spec.id, usdc(100)).await.unwrap();
    chain.cast_vote(dave, proposal, 1).await.unwrap();
    chain.cast_vote(carol, proposal, 0).await.unwrap();
    chain.advance_time(3_601).await;
    chain.execute(proposer, proposal).await.unwrap();

    // Small ranges: state must carry across many batches.
    let mut idx = indexer(&chain, &db, 7).await;
    let head = idx.catch_up().await.unwrap().unwrap();
    assert_eq!(head, chain.block_number().await);

    let holders_everywhere: Vec<Address> = chain.accounts.clone();
    for m in &markets {
        let id = m.spec.id.to_vec();
        let pool =
            MarketAMM::new(chain.deployment.amm(m.spec.market), &chain.provider).pools(m.spec.id).call().await.unwrap();
        let row = sqlx::query(
            "SELECT token_reserves::text, usdc_reserves::text, price::text, fee_bps FROM derived.pools WHERE market_id = $1",
        )
        .bind(&id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(row.get::<String, _>(0), pool.tokenReserves.to_string());
        assert_eq!(row.get::<String, _>(1), pool.usdcReserves.to_string());
        assert_eq!(row.get::<String, _>(2), Price::spot(pool.usdcReserves, pool.tokenReserves).to_decimal_string());
        assert_eq!(row.get::<i32, _>(3), 30);

        let token = chain.token(m.token);
        let mut holders = 0;
        for holder in holders_everywhere.iter().copied().chain([chain.deployment.amm(m.spec.market)]) {
            let on_chain = token.balanceOf(holder).call().await.unwrap();
            let stored: Option<String> =
                sqlx::query_scalar("SELECT balance::text FROM derived.balances WHERE market_id = $1 AND holder = $2")
                    .bind(&id)
                    .bind(holder.to_vec())
                    .fetch_optional(&db.pool)
                    .await
                    .unwrap();
            assert_eq!(stored.unwrap_or_else(|| "0".into()), on_chain.to_string(), "balance of {holder}");
            if !on_chain.is_zero() && holder != chain.deployment.amm(m.spec.market) {
                holders += 1;
            }
        }
        let row = sqlx::query("SELECT holder_count, total_supply::text FROM derived.markets WHERE market_id = $1")
            .bind(&id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(row.get::<i32, _>(0), holders);
        assert_eq!(row.get::<String, _>(1), token.totalSupply().call().await.unwrap().to_string());

        let stake = chain.vault().stakeOf(m.spec.market.as_u8(), m.spec.id).call().await.unwrap();
        assert_eq!(
            scalar_text(
                &db,
                "SELECT current_stake::text FROM derived.stakes WHERE market_id = $1",
                std::slice::from_ref(&id)
            )
            .await,
            stake.to_string()
        );
    }

    // Swaps and candles: counts and volumes from the receipts' Swap events.
    let swap_events: Vec<MarketAMM::Swap> = swaps
        .iter()
        .flat_map(|r| {
            r.inner.logs().iter().filter_map(|l| l.log_decode::<MarketAMM::Swap>().ok()).map(|l| l.inner.data)
        })
        .collect();
    assert_eq!(swap_events.len(), 4);
    let stored_swaps: i64 = sqlx::query_scalar("SELECT count(*) FROM derived.swaps").fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored_swaps, 4);
    for m in &markets {
        let mine: Vec<_> = swap_events.iter().filter(|s| s.marketId == m.spec.id).collect();
        let volume: U256 = mine.iter().map(|s| s.usdcAmount.unsigned_abs()).sum();
        for timeframe in ["1m", "5m", "15m", "1h", "4h", "1d", "1w"] {
            let row = sqlx::query(
                "SELECT coalesce(sum(trade_count), 0)::bigint, coalesce(sum(volume_usdc), 0)::text
                   FROM derived.candles WHERE market_id = $1 AND timeframe = $2",
            )
            .bind(m.spec.id.to_vec())
            .bind(timeframe)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert_eq!(row.get::<i64, _>(0), i64::try_from(mine.len()).unwrap(), "{timeframe}");
            assert_eq!(row.get::<String, _>(1), volume.to_string(), "{timeframe}");
        }
    }

    // Proposal: tallies and outcome equal the contract's view.
    let view = chain.governance().proposals(proposal).call().await.unwrap();
    let row = sqlx::query(
        "SELECT votes_for::text, votes_against::text, quorum_required::text, snapshot_block, executed,
                slashed_amount::text, market_type, voter_count
           FROM derived.proposals WHERE proposal_id = $1::numeric",
    )
    .bind(proposal.to_string())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), view.forVotes.to_string());
    assert_eq!(row.get::<String, _>(1), view.againstVotes.to_string());
    assert_eq!(row.get::<String, _>(2), view.quorumRequired.to_string());
    assert_eq!(U256::from(row.get::<i64, _>(3)), view.snapshotBlock);
    assert!(row.get::<bool, _>(4));
    assert_eq!(row.get::<String, _>(5), usdc(100).to_string());
    assert_eq!(row.get::<i16, _>(6), 0);
    assert_eq!(row.get::<i32, _>(7), 2);

    // Cost basis of alice in A: paid 100 USDC (fee included), sold half, sent 10 tokens away.
    let alice_row = sqlx::query(
        "SELECT cost_basis::text, realized_pnl::text, position::text FROM derived.balances
          WHERE market_id = $1 AND holder = $2",
    )
    .bind(a.spec.id.to_vec())
    .bind(alice.to_vec())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let mut expected = animoca_domain::Position::default();
    let buy = &swap_events[0];
    expected.buy(buy.tokenAmount.unsigned_abs(), buy.usdcAmount.unsigned_abs() + buy.fee);
    let sell = &swap_events[2];
    expected.sell(sell.tokenAmount.unsigned_abs(), sell.usdcAmount.unsigned_abs() - sell.fee);
    expected.send(tokens(10));
    assert_eq!(buy.usdcAmount.unsigned_abs() + buy.fee, usdc(100), "the buy cost alice exactly 100 USDC");
    assert_eq!(alice_row.get::<String, _>(0), expected.cost_basis.to_string());
    assert_eq!(alice_row.get::<String, _>(1), expected.realized_pnl.to_string());
    assert_eq!(alice_row.get::<String, _>(2), chain.token_balance(a.token, alice).await.to_string());

    // The view results the derivation used are stored for RPC-free re-derivation:
    // `proposals(id)` at the creation block, each AMM's `feeBps()`.
    let calls = sqlx::query(
        "SELECT block_number, to_address, calldata, result FROM chain.call_results ORDER BY to_address, block_number",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(calls.len(), 3, "two fees and one proposal");
    let proposal_call = calls
        .iter()
        .find(|row| row.get::<Vec<u8>, _>(1) == chain.deployment.governance.to_vec())
        .expect("proposals(id) stored");
    let stored = GovernanceSlashing::proposalsCall::abi_decode_returns(&proposal_call.get::<Vec<u8>, _>(3)).unwrap();
    assert_eq!(stored.quorumRequired, view.quorumRequired);
    assert_eq!(stored.snapshotBlock, view.snapshotBlock);
    assert_eq!(
        proposal_call.get::<Vec<u8>, _>(2),
        GovernanceSlashing::proposalsCall::new((proposal,)).abi_encode(),
        "calldata of proposals(id)"
    );
    for amm in [chain.deployment.credential_amm, chain.deployment.persona_amm] {
        let fee = calls.iter().find(|row| row.get::<Vec<u8>, _>(1) == amm.to_vec()).expect("feeBps() stored");
        let bps = MarketAMM::feeBpsCall::abi_decode_returns(&fee.get::<Vec<u8>, _>(3)).unwrap();
        assert_eq!(bps, U256::from(chain.params.fee_bps));
    }

    // Every log is in the log store exactly once.
    let logs: i64 = sqlx::query_scalar("SELECT count(*) FROM chain.logs").fetch_one(&db.pool).await.unwrap();
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT (tx_hash, log_index)) FROM chain.logs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(logs, distinct);
    // ... and equals one `eth_getLogs` over the whole chain (the indexer fetched 7 blocks at a time).
    let d = chain.deployment;
    let core = Filter::new()
        .address(vec![
            d.credential_factory,
            d.persona_factory,
            d.credential_amm,
            d.persona_amm,
            d.stake_vault,
            d.governance,
        ])
        .event_signature(animoca_indexer::decode::EVENT_TOPICS.to_vec())
        .from_block(0u64)
        .to_block(head);
    let transfers = Filter::new()
        .address(vec![a.token, b.token])
        .event_signature(MarketToken::Transfer::SIGNATURE_HASH)
        .from_block(0u64)
        .to_block(head);
    let expected =
        chain.provider.get_logs(&core).await.unwrap().len() + chain.provider.get_logs(&transfers).await.unwrap().len();
    assert_eq!(usize::try_from(logs).unwrap(), expected);
}

#[tokio::test]
async fn a_restarted_indexer_continues_candles_and_refuses_a_replayed_range() {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let spec = MarketSpec::new(MarketType::Credential, "restart");
    chain.create_market(&spec, chain.account(1)).await;
    // Freeze the clock so every trade lands in the same one-minute bucket.
    let t0 = chain.latest_timestamp().await + 60 - (chain.latest_timestamp().await % 60);
    chain.set_next_block_timestamp(t0).await;
    chain.buy(chain.account(2), MarketType::Credential, spec.id, usdc(10), U256::ZERO).await.unwrap();
    let mut first = indexer(&chain, &db, 1_000).await;
    let indexed = first.catch_up().await.unwrap().unwrap();

    // Replaying an indexed range is refused: nothing is applied twice.
    let replay = first.index_range(chain.deployment.start_block, indexed).await;
    assert!(matches!(replay, Err(IndexError::Store(StoreError::CheckpointMoved { .. }))), "{replay:?}");

    // A new process picks up the open bucket from the database.
    drop(first);
    chain.set_next_block_timestamp(t0 + 20).await;
    chain.buy(chain.account(3), MarketType::Credential, spec.id, usdc(5), U256::ZERO).await.unwrap();
    chain.set_next_block_timestamp(t0 + 40).await;
    chain.buy(chain.account(2), MarketType::Credential, spec.id, usdc(7), U256::ZERO).await.unwrap();
    let mut second = indexer(&chain, &db, 1_000).await;
    second.catch_up().await.unwrap();

    let row = sqlx::query(
        "SELECT trade_count, unique_traders, open::text, close::text, extract(epoch FROM bucket_start)::bigint
           FROM derived.candles WHERE timeframe = '1m' ORDER BY bucket_start DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(row.get::<i32, _>(0), 3);
    assert_eq!(row.get::<i32, _>(1), 2);
    assert_eq!(u64::try_from(row.get::<i64, _>(4)).unwrap(), t0);
    let prices: Vec<String> =
        sqlx::query_scalar("SELECT price::text FROM derived.swaps ORDER BY block_number, log_index")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(prices.len(), 3);
    assert!(decimal_eq(&row.get::<String, _>(2), &prices[0]));
    assert!(decimal_eq(&row.get::<String, _>(3), &prices[2]));
}

/// Compares two decimal strings as numbers (trailing zeros do not matter).
fn decimal_eq(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s };
        s.to_owned()
    };
    norm(a) == norm(b)
}

#[tokio::test]
async fn each_committed_batch_publishes_its_changes() {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let spec = MarketSpec::new(MarketType::Persona, "feed");
    chain.create_market(&spec, chain.account(1)).await;
    let mut idx = indexer(&chain, &db, 1_000).await;
    idx.catch_up().await.unwrap();

    let mut listener = sqlx::postgres::PgListener::connect_with(&db.pool).await.unwrap();
    listener.listen(animoca_store::indexing::CHANGES_CHANNEL).await.unwrap();
    let before: i64 =
        sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM app.change_feed").fetch_one(&db.pool).await.unwrap();
    let receipt = chain.buy(chain.account(2), MarketType::Persona, spec.id, usdc(25), U256::ZERO).await.unwrap();
    idx.catch_up().await.unwrap();

    let note = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv()).await.unwrap().unwrap();
    let version: i64 = note.payload().parse().unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(
        version,
        animoca_store::indexing::change_version(&mut conn).await.unwrap(),
        "the payload is the version"
    );
    let rows: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT kind, payload FROM app.change_feed WHERE id > $1 ORDER BY id")
            .bind(before)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let kinds: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["trade", "price", "candle", "candle", "candle", "candle", "candle", "candle", "candle", "block"]
    );
    let trade = &rows[0].1;
    let swap = receipt.inner.logs().iter().find_map(|l| l.log_decode::<MarketAMM::Swap>().ok()).unwrap().inner.data;
    assert_eq!(trade["tx_hash"], receipt.transaction_hash.to_string());
    assert_eq!(trade["swap_type"], "buy");
    assert_eq!(trade["market"]["market_type"], "persona");
    assert_eq!(trade["usdc_amount"], animoca_domain::format_units(swap.usdcAmount.unsigned_abs(), 6));
    assert_eq!(trade["fee_amount"], animoca_domain::format_units(swap.fee, 6));
    let price = Price::of_trade(swap.usdcAmount.unsigned_abs(), swap.tokenAmount.unsigned_abs()).unwrap();
    assert_eq!(trade["price"], price.to_decimal_string());
    let pool = MarketAMM::new(chain.deployment.persona_amm, &chain.provider).pools(spec.id).call().await.unwrap();
    assert_eq!(rows[1].1["price"], Price::spot(pool.usdcReserves, pool.tokenReserves).to_decimal_string());
}

#[tokio::test]
async fn rolling_24h_metrics_follow_the_newest_block_time() {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let traded = MarketSpec::new(MarketType::Credential, "window");
    let quiet = MarketSpec::new(MarketType::Persona, "quiet");
    let (token, _) = chain.create_market(&traded, chain.account(1)).await;
    chain.create_market(&quiet, chain.account(2)).await;
    let mut idx = indexer(&chain, &db, 4).await;

    // (trader, usdc in, hours after the previous trade)
    let plan = [(3usize, 10u64, 0u64), (4, 20, 10), (3, 30, 10), (5, 40, 10), (4, 50, 3)];
    let mut trades = Vec::new(); // (timestamp, |usdc|, price, trader)
    for (trader, amount, hours) in plan {
        if hours > 0 {
            chain.advance_time(hours * 3_600).await;
        }
        let receipt = chain
            .buy(chain.account(trader), MarketType::Credential, traded.id, usdc(amount), U256::ZERO)
            .await
            .unwrap();
        let swap = receipt.inner.logs().iter().find_map(|l| l.log_decode::<MarketAMM::Swap>().ok()).unwrap().inner.data;
        let ts = chain.block_timestamp(receipt.block_number.unwrap()).await;
        let price = Price::of_trade(swap.usdcAmount.unsigned_abs(), swap.tokenAmount.unsigned_abs()).unwrap();
        trades.push((ts, swap.usdcAmount.unsigned_abs(), price, trader));
        // Index as we go: the window must slide correctly batch after batch.
        idx.catch_up().await.unwrap();
    }
    chain.advance_time(3_600).await;
    idx.catch_up().await.unwrap();

    let now = chain.latest_timestamp().await;
    let cut = now - 86_400;
    let inside: Vec<_> = trades.iter().filter(|t| t.0 > cut).collect();
    let volume: U256 = inside.iter().map(|t| t.1).sum();
    let traders: std::collections::BTreeSet<_> = inside.iter().map(|t| t.3).collect();
    let reference = trades.iter().rfind(|t| t.0 <= cut).or(inside.first().copied()).unwrap().2;
    let pool = MarketAMM::new(chain.deployment.credential_amm, &chain.provider).pools(traded.id).call().await.unwrap();
    let spot = Price::spot(pool.usdcReserves, pool.tokenReserves);
    let supply = chain.token(token).totalSupply().call().await.unwrap();

    let row = sqlx::query(
        "SELECT volume_24h::text, trades_24h, traders_24h, reference_price::text, price::text, price_change_24h,
                market_cap::text, (SELECT extract(epoch FROM as_of)::bigint FROM derived.window_state)
           FROM derived.market_stats WHERE market_id = $1",
    )
    .bind(traded.id.to_vec())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(trades.iter().any(|t| t.0 <= cut), "the scenario has trades that left the window");
    assert_eq!(row.get::<String, _>(0), volume.to_string());
    assert_eq!(row.get::<i32, _>(1), i32::try_from(inside.len()).unwrap());
    assert_eq!(row.get::<i32, _>(2), i32::try_from(traders.len()).unwrap());
    assert!(decimal_eq(&row.get::<String, _>(3), &reference.to_decimal_string()));
    assert!(decimal_eq(&row.get::<String, _>(4), &spot.to_decimal_string()));
    let change = spot.change_percent_from(reference);
    assert!((row.get::<f64, _>(5) - change).abs() <= change.abs() * 1e-9, "{} vs {change}", row.get::<f64, _>(5));
    assert_eq!(row.get::<String, _>(6), spot.value_of(supply).to_string());
    assert_eq!(u64::try_from(row.get::<i64, _>(7)).unwrap(), now);

    // A market without trades: zeros, and a change of 0.
    let row = sqlx::query("SELECT volume_24h::text, trades_24h, price_change_24h, reference_price FROM derived.market_stats WHERE market_id = $1")
        .bind(quiet.id.to_vec())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "0");
    assert_eq!(row.get::<i32, _>(1), 0);
    assert_eq!(row.get::<f64, _>(2), 0.0);
    assert!(row.get::<Option<String>, _>(3).is_none());
}

#[tokio::test]
async fn confirmations_keep_the_indexer_behind_the_head() {
    let chain = TestChain::start().await;
    let db = TestDb::migrated().await;
    let spec = MarketSpec::new(MarketType::Credential, "confirm");
    chain.create_market(&spec, chain.account(1)).await;
    let mut config = IndexerConfig::new(31_337, chain.deployment.start_block, 3);
    config.max_range = 1_000;
    let mut idx = Indexer::new(db.pool.clone(), chain.provider.clone(), chain.deployment, config).await.unwrap();
    let head = chain.block_number().await;
    assert_eq!(idx.catch_up().await.unwrap(), Some(head - 3));
    assert_eq!(idx.next_block().await.unwrap(), head - 2);
    chain.mine().await;
    assert_eq!(idx.catch_up().await.unwrap(), Some(head - 2));
}
