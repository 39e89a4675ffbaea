//! Shared helpers of the contract tests: event decoding, custom-error decoding, the
//! AMM math of docs/contracts.md computed independently, and small fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::fmt::Debug;

use alloy::{
    primitives::{Address, B256, I256, U256},
    rpc::types::TransactionReceipt,
    sol_types::{SolEvent, SolInterface},
};
use animoca_chain::ChainError;
use animoca_domain::MarketType;
use animoca_test_support::{MarketSpec, TestChain};

/// Basis-point denominator of the contracts.
pub const BPS: u64 = 10_000;

// ------------------------------------------------------------------ events

/// Every `E` event that `emitter` logged in `receipt`, in log order.
pub fn events<E: SolEvent>(receipt: &TransactionReceipt, emitter: Address) -> Vec<E> {
    receipt
        .inner
        .logs()
        .iter()
        .filter(|log| log.address() == emitter && log.topic0() == Some(&E::SIGNATURE_HASH))
        .map(|log| log.log_decode::<E>().expect("event decodes").inner.data)
        .collect()
}

/// The one `E` event that `emitter` logged in `receipt`.
pub fn single_event<E: SolEvent>(receipt: &TransactionReceipt, emitter: Address) -> E {
    let mut found = events::<E>(receipt, emitter);
    assert_eq!(found.len(), 1, "exactly one {} from {emitter}", E::SIGNATURE);
    found.remove(0)
}

/// `(emitter, topic0)` of every log of `receipt`, in log order.
pub fn log_signatures(receipt: &TransactionReceipt) -> Vec<(Address, B256)> {
    receipt.inner.logs().iter().map(|log| (log.address(), log.topic0().copied().unwrap_or_default())).collect()
}

/// The raw topics of the `index`-th log of `receipt`.
pub fn topics(receipt: &TransactionReceipt, index: usize) -> Vec<B256> {
    receipt.inner.logs()[index].topics().to_vec()
}

/// A 32-byte topic holding an address (left-padded).
pub fn address_topic(address: Address) -> B256 {
    address.into_word()
}

/// A 32-byte topic holding a uint.
pub fn uint_topic(value: u64) -> B256 {
    B256::from(U256::from(value))
}

// ------------------------------------------------------------------ reverts

/// A failed contract interaction whose revert data can be decoded as a custom error of `E`.
pub trait Reverted {
    /// The decoded custom error; panics if the call succeeded or reverted with something else.
    fn revert_error<E: SolInterface + Debug>(self) -> E;
}

fn decode<E: SolInterface + Debug>(error: &alloy::contract::Error) -> E {
    error.as_decoded_interface_error::<E>().unwrap_or_else(|| {
        panic!("revert data {:?} is not one of the expected errors: {error}", error.as_revert_data())
    })
}

impl Reverted for Result<TransactionReceipt, ChainError> {
    fn revert_error<E: SolInterface + Debug>(self) -> E {
        match self {
            Ok(receipt) => panic!("expected a revert, but the transaction was mined: {:?}", receipt.transaction_hash),
            Err(ChainError::Contract { source, .. }) => decode(&source),
            Err(other) => panic!("expected a decodable revert, got {other}"),
        }
    }
}

impl<T: Debug> Reverted for Result<T, alloy::contract::Error> {
    fn revert_error<E: SolInterface + Debug>(self) -> E {
        match self {
            Ok(value) => panic!("expected a revert, but the call returned {value:?}"),
            Err(error) => decode(&error),
        }
    }
}

/// Asserts that `$result` reverted with the custom error `$errors::$variant` and evaluates
/// to that error's struct, e.g. `expect_revert!(result, AmmError::SlippageExceeded)`.
macro_rules! expect_revert {
    ($result:expr, $errors:ident :: $variant:ident) => {{
        use $crate::common::Reverted as _;
        match $result.revert_error::<$errors>() {
            $errors::$variant(error) => error,
            #[allow(unreachable_patterns)]
            other => panic!("expected {}, got {other:?}", stringify!($variant)),
        }
    }};
}
pub(crate) use expect_revert;

// ------------------------------------------------------------------ AMM math (docs/contracts.md)

/// What a buy of `usdc_in` does, computed independently of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuyMath {
    /// `usdcIn * feeBps / 10000`, to the fee recipient.
    pub fee: U256,
    /// `usdcIn - fee`, into the pool.
    pub net: U256,
    /// `R * net / (U + net)`, to the trader.
    pub tokens_out: U256,
    /// Token reserves after.
    pub token_reserves: U256,
    /// USDC reserves after.
    pub usdc_reserves: U256,
}

/// Buy math on reserves `(r, u)`.
pub fn buy_math(r: U256, u: U256, usdc_in: U256, fee_bps: u16) -> BuyMath {
    let fee = usdc_in * U256::from(fee_bps) / U256::from(BPS);
    let net = usdc_in - fee;
    let tokens_out = r * net / (u + net);
    BuyMath { fee, net, tokens_out, token_reserves: r - tokens_out, usdc_reserves: u + net }
}

/// What a sell of `tokens_in` does, computed independently of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SellMath {
    /// `U * tokensIn / (R + tokensIn)`, out of the pool.
    pub gross: U256,
    /// `gross * feeBps / 10000`, to the fee recipient.
    pub fee: U256,
    /// `gross - fee`, to the trader.
    pub usdc_out: U256,
    /// Token reserves after.
    pub token_reserves: U256,
    /// USDC reserves after.
    pub usdc_reserves: U256,
}

/// Sell math on reserves `(r, u)`.
pub fn sell_math(r: U256, u: U256, tokens_in: U256, fee_bps: u16) -> SellMath {
    let gross = u * tokens_in / (r + tokens_in);
    let fee = gross * U256::from(fee_bps) / U256::from(BPS);
    SellMath { gross, fee, usdc_out: gross - fee, token_reserves: r + tokens_in, usdc_reserves: u - gross }
}

/// `value` as a positive int256.
pub fn int(value: U256) -> I256 {
    I256::try_from(value).expect("fits in int256")
}

/// Current `(tokenReserves, usdcReserves)` of a pool.
pub async fn reserves(chain: &TestChain, market: MarketType, id: B256) -> (U256, U256) {
    let pool = chain.amm(market).pools(id).call().await.unwrap();
    (pool.tokenReserves, pool.usdcReserves)
}

// ------------------------------------------------------------------ fixtures

/// A market created by account 1 from the default [`MarketSpec`].
pub struct Market {
    /// What was created.
    pub spec: MarketSpec,
    /// The market token.
    pub token: Address,
    /// The creator (issuer / persona owner): account 1.
    pub creator: Address,
    /// The creation receipt.
    pub receipt: TransactionReceipt,
}

/// Creates a default market `label` of `market` type as account 1.
pub async fn market(chain: &TestChain, market: MarketType, label: &str) -> Market {
    market_with(chain, MarketSpec::new(market, label)).await
}

/// Creates the market `spec` as account 1.
pub async fn market_with(chain: &TestChain, spec: MarketSpec) -> Market {
    let creator = chain.account(1);
    let (token, receipt) = chain.create_market(&spec, creator).await;
    Market { spec, token, creator, receipt }
}
