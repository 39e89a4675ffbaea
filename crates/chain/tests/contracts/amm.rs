//! MarketAMM: buys and sells against the constant-product math and fee of
//! docs/contracts.md computed here, the `Swap`/`ReservesUpdated` events, balances,
//! quotes, k, slippage guards and the other documented reverts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::{
    primitives::{Address, B256, U256},
    sol_types::SolEvent,
};
use animoca_chain::{
    bindings::{
        MarketAMM::{self, MarketAMMErrors as AmmError},
        MarketToken,
        MockUSDC::{self, MockUSDCErrors as UsdcError},
    },
    deploy::send,
};
use animoca_domain::MarketType;
use animoca_test_support::{MarketSpec, TestChain, tokens, usdc};

use crate::common::{
    Market, address_topic, buy_math, events, expect_revert, int, log_signatures, market, reserves, sell_math,
    single_event, topics,
};

/// Everything a trade can move, read in one go so reverts can be shown to change nothing.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    reserves: (U256, U256),
    trader_usdc: U256,
    trader_tokens: U256,
    fee_recipient_usdc: U256,
    amm_usdc: U256,
    amm_tokens: U256,
}

async fn snapshot(chain: &TestChain, m: &Market, trader: Address) -> Snapshot {
    let amm = chain.deployment.amm(m.spec.market);
    Snapshot {
        reserves: reserves(chain, m.spec.market, m.spec.id).await,
        trader_usdc: chain.usdc_balance(trader).await,
        trader_tokens: chain.token_balance(m.token, trader).await,
        fee_recipient_usdc: chain.usdc_balance(chain.params.fee_recipient).await,
        amm_usdc: chain.usdc_balance(amm).await,
        amm_tokens: chain.token_balance(m.token, amm).await,
    }
}

/// The pool's constant product.
fn k((token_reserves, usdc_reserves): (U256, U256)) -> U256 {
    token_reserves * usdc_reserves
}

/// Mints and approves `usdc_in` for `trader` without trading.
async fn prepare_buy(chain: &TestChain, market: MarketType, trader: Address, usdc_in: U256) {
    chain.mint_usdc(trader, usdc_in).await;
    chain.approve_usdc(trader, chain.deployment.amm(market), usdc_in).await;
}

#[tokio::test]
async fn buy_then_sell_match_the_documented_worked_example() {
    // docs/contracts.md: R = 1,000,000e18, U = 10,000e6, feeBps = 30 (the devnet default).
    let chain = TestChain::start().await;
    assert_eq!(chain.amm(MarketType::Credential).feeBps().call().await.unwrap(), U256::from(30));
    let m = market(&chain, MarketType::Credential, "worked-example").await;
    let trader = chain.account(2);
    let id = m.spec.id;

    let buy = chain.buy(trader, MarketType::Credential, id, usdc(1_000), U256::ZERO).await.unwrap();
    let swap = single_event::<MarketAMM::Swap>(&buy, chain.deployment.credential_amm);
    let bought: U256 = "90661089388014913158134".parse().unwrap();
    assert_eq!(swap.fee, U256::from(3_000_000));
    assert_eq!(swap.usdcAmount, int(U256::from(997_000_000)));
    assert_eq!(swap.tokenAmount, -int(bought));
    assert_eq!(
        reserves(&chain, MarketType::Credential, id).await,
        ("909338910611985086841866".parse().unwrap(), U256::from(10_997_000_000u64))
    );

    let tokens_in: U256 = "45330544694007456579067".parse().unwrap();
    let sell = chain.sell(trader, MarketType::Credential, id, m.token, tokens_in, U256::ZERO).await.unwrap();
    let swap = single_event::<MarketAMM::Swap>(&sell, chain.deployment.credential_amm);
    assert_eq!(swap.usdcAmount, -int(U256::from(522_170_262)));
    assert_eq!(swap.fee, U256::from(1_566_510));
    assert_eq!(swap.tokenAmount, int(tokens_in));
    assert_eq!(chain.usdc_balance(trader).await, U256::from(520_603_752));
}

#[tokio::test]
async fn buy_pays_constant_product_tokens_and_the_fee() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "buy").await;
    let trader = chain.account(2);
    let amm = chain.deployment.credential_amm;
    let usdc_in = U256::from(1_234_567_891u64); // 1,234.567891 USDC
    let expected = buy_math(m.spec.token_reserves, m.spec.usdc_reserves, usdc_in, chain.params.fee_bps);
    assert_eq!(expected.fee, U256::from(3_703_703)); // 1234567891 * 30 / 10000, rounded down

    prepare_buy(&chain, MarketType::Credential, trader, usdc_in).await;
    let before = snapshot(&chain, &m, trader).await;
    let quote = chain.amm(MarketType::Credential).quoteBuy(m.spec.id, usdc_in).call().await.unwrap();
    assert_eq!(quote, expected.tokens_out);

    let receipt =
        send("buy", chain.amm(MarketType::Credential).buy(m.spec.id, usdc_in, quote).from(trader)).await.unwrap();

    let swap = single_event::<MarketAMM::Swap>(&receipt, amm);
    assert_eq!(swap.marketId, m.spec.id);
    assert_eq!(swap.trader, trader);
    assert_eq!(swap.tokenAmount, -int(expected.tokens_out));
    assert_eq!(swap.usdcAmount, int(expected.net));
    assert_eq!(swap.fee, expected.fee);
    let updated = single_event::<MarketAMM::ReservesUpdated>(&receipt, amm);
    assert_eq!(
        (updated.marketId, updated.tokenReserves, updated.usdcReserves),
        (m.spec.id, expected.token_reserves, expected.usdc_reserves)
    );
    // Swap's indexed fields are topics; USDC in, fee out, tokens out, then the two AMM events.
    let swap_index = receipt.inner.logs().len() - 2;
    assert_eq!(topics(&receipt, swap_index), vec![MarketAMM::Swap::SIGNATURE_HASH, m.spec.id, address_topic(trader)]);
    assert_eq!(
        log_signatures(&receipt),
        vec![
            (chain.deployment.usdc, MockUSDC::Transfer::SIGNATURE_HASH),
            (chain.deployment.usdc, MockUSDC::Transfer::SIGNATURE_HASH),
            (m.token, MarketToken::Transfer::SIGNATURE_HASH),
            (amm, MarketAMM::Swap::SIGNATURE_HASH),
            (amm, MarketAMM::ReservesUpdated::SIGNATURE_HASH),
        ]
    );
    let usdc_moves: Vec<_> = events::<MockUSDC::Transfer>(&receipt, chain.deployment.usdc)
        .into_iter()
        .map(|t| (t.from, t.to, t.value))
        .collect();
    assert_eq!(usdc_moves, vec![(trader, amm, usdc_in), (amm, chain.params.fee_recipient, expected.fee)]);
    let token_move = single_event::<MarketToken::Transfer>(&receipt, m.token);
    assert_eq!((token_move.from, token_move.to, token_move.value), (amm, trader, expected.tokens_out));

    let after = snapshot(&chain, &m, trader).await;
    assert_eq!(
        after,
        Snapshot {
            reserves: (expected.token_reserves, expected.usdc_reserves),
            trader_usdc: before.trader_usdc - usdc_in,
            trader_tokens: before.trader_tokens + expected.tokens_out,
            fee_recipient_usdc: before.fee_recipient_usdc + expected.fee,
            amm_usdc: before.amm_usdc + expected.net,
            amm_tokens: before.amm_tokens - expected.tokens_out,
        }
    );
    assert!(k(after.reserves) >= k(before.reserves));
}

#[tokio::test]
async fn sell_pays_constant_product_usdc_minus_the_fee() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Persona, "sell").await;
    let seller = m.creator;
    let amm = chain.deployment.persona_amm;
    let tokens_in = tokens(12_345) + U256::from(6_789);
    let expected = sell_math(m.spec.token_reserves, m.spec.usdc_reserves, tokens_in, chain.params.fee_bps);
    assert!(expected.fee > U256::ZERO);

    send("approve", chain.token(m.token).approve(amm, tokens_in).from(seller)).await.unwrap();
    let before = snapshot(&chain, &m, seller).await;
    let quote = chain.amm(MarketType::Persona).quoteSell(m.spec.id, tokens_in).call().await.unwrap();
    assert_eq!(quote, expected.usdc_out);

    let receipt =
        send("sell", chain.amm(MarketType::Persona).sell(m.spec.id, tokens_in, quote).from(seller)).await.unwrap();

    let swap = single_event::<MarketAMM::Swap>(&receipt, amm);
    assert_eq!(swap.marketId, m.spec.id);
    assert_eq!(swap.trader, seller);
    assert_eq!(swap.tokenAmount, int(tokens_in));
    assert_eq!(swap.usdcAmount, -int(expected.gross));
    assert_eq!(swap.fee, expected.fee);
    let updated = single_event::<MarketAMM::ReservesUpdated>(&receipt, amm);
    assert_eq!(
        (updated.marketId, updated.tokenReserves, updated.usdcReserves),
        (m.spec.id, expected.token_reserves, expected.usdc_reserves)
    );
    let usdc_moves: Vec<_> = events::<MockUSDC::Transfer>(&receipt, chain.deployment.usdc)
        .into_iter()
        .map(|t| (t.from, t.to, t.value))
        .collect();
    assert_eq!(usdc_moves, vec![(amm, seller, expected.usdc_out), (amm, chain.params.fee_recipient, expected.fee)]);
    let token_move = single_event::<MarketToken::Transfer>(&receipt, m.token);
    assert_eq!((token_move.from, token_move.to, token_move.value), (seller, amm, tokens_in));

    let after = snapshot(&chain, &m, seller).await;
    assert_eq!(
        after,
        Snapshot {
            reserves: (expected.token_reserves, expected.usdc_reserves),
            trader_usdc: before.trader_usdc + expected.usdc_out,
            trader_tokens: before.trader_tokens - tokens_in,
            fee_recipient_usdc: before.fee_recipient_usdc + expected.fee,
            amm_usdc: before.amm_usdc - expected.gross,
            amm_tokens: before.amm_tokens + tokens_in,
        }
    );
    assert!(k(after.reserves) >= k(before.reserves));
}

#[tokio::test]
async fn quotes_equal_executed_trades_and_k_never_decreases() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "sequence").await;
    let amm = chain.amm(MarketType::Credential);
    let id = m.spec.id;
    let (alice, bob) = (chain.account(2), chain.account(3));
    let fee_bps = chain.params.fee_bps;

    enum Trade {
        Buy(Address, U256),
        Sell(Address, U256),
    }
    let trades = [
        Trade::Buy(alice, usdc(2_500)),
        Trade::Buy(bob, U256::from(1)), // 1 base unit: no fee at all, still some tokens
        Trade::Sell(alice, tokens(100_000)),
        Trade::Buy(bob, usdc(777) + U256::from(7)),
        Trade::Sell(m.creator, tokens(99_999) + U256::from(1)),
        Trade::Sell(bob, U256::from(10u64).pow(U256::from(16))), // 0.01 token: 112 base units, fee rounds to 0
        Trade::Buy(alice, usdc(50_000)),
        Trade::Sell(alice, tokens(50_000)),
    ];

    let mut model = (m.spec.token_reserves, m.spec.usdc_reserves);
    let mut fees = U256::ZERO;
    for (step, trade) in trades.iter().enumerate() {
        let before = reserves(&chain, MarketType::Credential, id).await;
        assert_eq!(before, model, "step {step}: reserves follow the model");
        let (receipt, trader, expected_swap) = match *trade {
            Trade::Buy(trader, usdc_in) => {
                let expected = buy_math(model.0, model.1, usdc_in, fee_bps);
                let quote = amm.quoteBuy(id, usdc_in).call().await.unwrap();
                assert_eq!(quote, expected.tokens_out, "step {step}: quoteBuy");
                let tokens_before = chain.token_balance(m.token, trader).await;
                let receipt = chain.buy(trader, MarketType::Credential, id, usdc_in, quote).await.unwrap();
                assert_eq!(
                    chain.token_balance(m.token, trader).await - tokens_before,
                    quote,
                    "step {step}: tokens received"
                );
                model = (expected.token_reserves, expected.usdc_reserves);
                fees += expected.fee;
                (receipt, trader, (-int(expected.tokens_out), int(expected.net), expected.fee))
            }
            Trade::Sell(trader, tokens_in) => {
                let expected = sell_math(model.0, model.1, tokens_in, fee_bps);
                let quote = amm.quoteSell(id, tokens_in).call().await.unwrap();
                assert_eq!(quote, expected.usdc_out, "step {step}: quoteSell");
                let usdc_before = chain.usdc_balance(trader).await;
                let receipt = chain.sell(trader, MarketType::Credential, id, m.token, tokens_in, quote).await.unwrap();
                assert_eq!(chain.usdc_balance(trader).await - usdc_before, quote, "step {step}: USDC received");
                model = (expected.token_reserves, expected.usdc_reserves);
                fees += expected.fee;
                (receipt, trader, (int(tokens_in), -int(expected.gross), expected.fee))
            }
        };
        let swap = single_event::<MarketAMM::Swap>(&receipt, chain.deployment.credential_amm);
        assert_eq!(swap.trader, trader);
        assert_eq!((swap.tokenAmount, swap.usdcAmount, swap.fee), expected_swap, "step {step}: Swap");
        let after = reserves(&chain, MarketType::Credential, id).await;
        assert_eq!(after, model, "step {step}: reserves after");
        assert!(k(after) >= k(before), "step {step}: k decreased from {} to {}", k(before), k(after));
    }
    assert_eq!(chain.usdc_balance(chain.params.fee_recipient).await, fees);
    // The AMM holds exactly the pool's USDC (fees left in the same transaction).
    assert_eq!(chain.usdc_balance(chain.deployment.credential_amm).await, model.1);
    assert_eq!(chain.token_balance(m.token, chain.deployment.credential_amm).await, model.0);
}

#[tokio::test]
async fn buy_below_min_tokens_out_reverts_and_changes_nothing() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "buy-slippage").await;
    let trader = chain.account(2);
    let usdc_in = usdc(500);
    prepare_buy(&chain, MarketType::Credential, trader, usdc_in).await;
    let before = snapshot(&chain, &m, trader).await;
    let quote = chain.amm(MarketType::Credential).quoteBuy(m.spec.id, usdc_in).call().await.unwrap();
    let min = quote + U256::from(1);

    let result = send("buy", chain.amm(MarketType::Credential).buy(m.spec.id, usdc_in, min).from(trader)).await;
    let error = expect_revert!(result, AmmError::SlippageExceeded);
    assert_eq!((error.out, error.min), (quote, min));
    assert_eq!(snapshot(&chain, &m, trader).await, before);

    // At exactly the quote it goes through.
    send("buy", chain.amm(MarketType::Credential).buy(m.spec.id, usdc_in, quote).from(trader)).await.unwrap();
    assert_eq!(chain.token_balance(m.token, trader).await, quote);
}

#[tokio::test]
async fn sell_below_min_usdc_out_reverts_and_changes_nothing() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Persona, "sell-slippage").await;
    let seller = m.creator;
    let tokens_in = tokens(5_000);
    send("approve", chain.token(m.token).approve(chain.deployment.persona_amm, tokens_in).from(seller)).await.unwrap();
    let before = snapshot(&chain, &m, seller).await;
    let quote = chain.amm(MarketType::Persona).quoteSell(m.spec.id, tokens_in).call().await.unwrap();
    let min = quote + U256::from(1);

    let result = send("sell", chain.amm(MarketType::Persona).sell(m.spec.id, tokens_in, min).from(seller)).await;
    let error = expect_revert!(result, AmmError::SlippageExceeded);
    assert_eq!((error.out, error.min), (quote, min));
    assert_eq!(snapshot(&chain, &m, seller).await, before);

    send("sell", chain.amm(MarketType::Persona).sell(m.spec.id, tokens_in, quote).from(seller)).await.unwrap();
    assert_eq!(chain.usdc_balance(seller).await, before.trader_usdc + quote);
}

#[tokio::test]
async fn trades_and_quotes_on_an_unknown_pool_revert() {
    let chain = TestChain::start().await;
    // A market of the other type: its id has no pool on this AMM.
    let m = market(&chain, MarketType::Persona, "other-amm").await;
    let amm = chain.amm(MarketType::Credential);
    let trader = chain.account(2);
    prepare_buy(&chain, MarketType::Credential, trader, usdc(10)).await;

    for id in [m.spec.id, B256::repeat_byte(0xab)] {
        let pool = amm.pools(id).call().await.unwrap();
        assert_eq!((pool.tokenReserves, pool.usdcReserves, pool.token), (U256::ZERO, U256::ZERO, Address::ZERO));
        let e =
            expect_revert!(send("buy", amm.buy(id, usdc(10), U256::ZERO).from(trader)).await, AmmError::UnknownPool);
        assert_eq!(e.marketId, id);
        let e = expect_revert!(
            send("sell", amm.sell(id, tokens(1), U256::ZERO).from(m.creator)).await,
            AmmError::UnknownPool
        );
        assert_eq!(e.marketId, id);
        assert_eq!(expect_revert!(amm.quoteBuy(id, usdc(10)).call().await, AmmError::UnknownPool).marketId, id);
        assert_eq!(expect_revert!(amm.quoteSell(id, tokens(1)).call().await, AmmError::UnknownPool).marketId, id);
    }
    assert_eq!(chain.usdc_balance(trader).await, usdc(10));
}

#[tokio::test]
async fn zero_amount_trades_revert_and_quote_zero() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "zero-amount").await;
    let amm = chain.amm(MarketType::Credential);
    let trader = chain.account(2);
    prepare_buy(&chain, MarketType::Credential, trader, usdc(1)).await;
    let before = snapshot(&chain, &m, trader).await;

    expect_revert!(send("buy", amm.buy(m.spec.id, U256::ZERO, U256::ZERO).from(trader)).await, AmmError::ZeroAmount);
    expect_revert!(
        send("sell", amm.sell(m.spec.id, U256::ZERO, U256::ZERO).from(m.creator)).await,
        AmmError::ZeroAmount
    );
    assert_eq!(amm.quoteBuy(m.spec.id, U256::ZERO).call().await.unwrap(), U256::ZERO);
    assert_eq!(amm.quoteSell(m.spec.id, U256::ZERO).call().await.unwrap(), U256::ZERO);
    assert_eq!(snapshot(&chain, &m, trader).await, before);
}

#[tokio::test]
async fn dust_sell_reverts_with_zero_output() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "dust").await;
    let amm = chain.amm(MarketType::Credential);
    // 1 base unit of token is worth U * 1 / (R + 1) = 0 USDC.
    assert_eq!(sell_math(m.spec.token_reserves, m.spec.usdc_reserves, U256::from(1), 30).gross, U256::ZERO);
    assert_eq!(amm.quoteSell(m.spec.id, U256::from(1)).call().await.unwrap(), U256::ZERO);
    send("approve", chain.token(m.token).approve(chain.deployment.credential_amm, U256::from(1)).from(m.creator))
        .await
        .unwrap();
    let result = send("sell", amm.sell(m.spec.id, U256::from(1), U256::ZERO).from(m.creator)).await;
    expect_revert!(result, AmmError::ZeroOutput);
    assert_eq!(
        reserves(&chain, MarketType::Credential, m.spec.id).await,
        (m.spec.token_reserves, m.spec.usdc_reserves)
    );
}

#[tokio::test]
async fn buy_without_allowance_reverts_with_the_usdc_error() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "no-allowance").await;
    let trader = chain.account(2);
    chain.mint_usdc(trader, usdc(100)).await;
    chain.approve_usdc(trader, chain.deployment.credential_amm, usdc(99)).await;
    let before = snapshot(&chain, &m, trader).await;
    let result =
        send("buy", chain.amm(MarketType::Credential).buy(m.spec.id, usdc(100), U256::ZERO).from(trader)).await;
    let error = expect_revert!(result, UsdcError::ERC20InsufficientAllowance);
    assert_eq!((error.spender, error.allowance, error.needed), (chain.deployment.credential_amm, usdc(99), usdc(100)));
    assert_eq!(snapshot(&chain, &m, trader).await, before);
}

#[tokio::test]
async fn fee_bps_is_a_deployment_parameter_shared_by_both_amms() {
    let chain = TestChain::start_with(|p| p.fee_bps = 100).await;
    for market_type in [MarketType::Credential, MarketType::Persona] {
        let amm = chain.amm(market_type);
        assert_eq!(amm.feeBps().call().await.unwrap(), U256::from(100));
        assert_eq!(amm.feeRecipient().call().await.unwrap(), chain.params.fee_recipient);
    }
    let m = market(&chain, MarketType::Persona, "one-percent").await;
    let trader = chain.account(2);
    let usdc_in = usdc(2_000);
    let bought = buy_math(m.spec.token_reserves, m.spec.usdc_reserves, usdc_in, 100);
    assert_eq!(bought.fee, usdc(20));
    let receipt = chain.buy(trader, MarketType::Persona, m.spec.id, usdc_in, U256::ZERO).await.unwrap();
    let swap = single_event::<MarketAMM::Swap>(&receipt, chain.deployment.persona_amm);
    assert_eq!((swap.tokenAmount, swap.usdcAmount, swap.fee), (-int(bought.tokens_out), int(usdc(1_980)), usdc(20)));

    let sold = sell_math(bought.token_reserves, bought.usdc_reserves, bought.tokens_out, 100);
    let receipt =
        chain.sell(trader, MarketType::Persona, m.spec.id, m.token, bought.tokens_out, U256::ZERO).await.unwrap();
    let swap = single_event::<MarketAMM::Swap>(&receipt, chain.deployment.persona_amm);
    assert_eq!((swap.tokenAmount, swap.usdcAmount, swap.fee), (int(bought.tokens_out), -int(sold.gross), sold.fee));
    // Round trip: the trader lost the two fees plus the rounding, never more.
    assert_eq!(chain.usdc_balance(trader).await, sold.usdc_out);
    assert!(sold.usdc_out < usdc_in - bought.fee);
    assert_eq!(chain.usdc_balance(chain.params.fee_recipient).await, bought.fee + sold.fee);
    // The credential AMM saw nothing.
    assert_eq!(chain.usdc_balance(chain.deployment.credential_amm).await, U256::ZERO);
}

#[tokio::test]
async fn zero_fee_amm_sends_nothing_to_the_fee_recipient() {
    let chain = TestChain::start_with(|p| p.fee_bps = 0).await;
    let m = market(&chain, MarketType::Credential, "no-fee").await;
    let trader = chain.account(2);
    let bought = buy_math(m.spec.token_reserves, m.spec.usdc_reserves, usdc(300), 0);
    let receipt = chain.buy(trader, MarketType::Credential, m.spec.id, usdc(300), U256::ZERO).await.unwrap();
    let swap = single_event::<MarketAMM::Swap>(&receipt, chain.deployment.credential_amm);
    assert_eq!((swap.tokenAmount, swap.usdcAmount, swap.fee), (-int(bought.tokens_out), int(usdc(300)), U256::ZERO));
    // Only the trader's payment moved: no zero-value fee transfer.
    assert_eq!(events::<MockUSDC::Transfer>(&receipt, chain.deployment.usdc).len(), 1);
    assert_eq!(chain.usdc_balance(chain.params.fee_recipient).await, U256::ZERO);
    assert_eq!(chain.token_balance(m.token, trader).await, bought.tokens_out);
}

#[tokio::test]
async fn tokens_sent_directly_to_the_amm_do_not_move_prices() {
    let chain = TestChain::start().await;
    let m = market(&chain, MarketType::Credential, "donation").await;
    let amm = chain.amm(MarketType::Credential);
    let quote_before = amm.quoteBuy(m.spec.id, usdc(100)).call().await.unwrap();
    chain.transfer_tokens(m.token, m.creator, chain.deployment.credential_amm, tokens(50_000)).await;
    chain.mint_usdc(chain.deployment.credential_amm, usdc(5_000)).await;
    assert_eq!(
        reserves(&chain, MarketType::Credential, m.spec.id).await,
        (m.spec.token_reserves, m.spec.usdc_reserves)
    );
    assert_eq!(amm.quoteBuy(m.spec.id, usdc(100)).call().await.unwrap(), quote_before);
    let spec = MarketSpec::new(MarketType::Credential, "donation");
    assert_eq!(quote_before, buy_math(spec.token_reserves, spec.usdc_reserves, usdc(100), 30).tokens_out);
}
