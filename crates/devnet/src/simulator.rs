//! A trade simulator: random buys and sells by the devnet's traders, at a
//! configurable rate, with now and then a slashing proposal and votes on the
//! open ones, so every live view has something to show.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use animoca_chain::{ChainError, bindings::MarketToken};
use tokio_util::sync::CancellationToken;

use crate::{
    driver::{Driver, MarketSpec, usdc},
    sample::SampleMarket,
};

/// A market the simulator trades, with its token.
#[derive(Debug, Clone)]
pub struct LiveMarket {
    /// The market.
    pub spec: MarketSpec,
    /// Its token.
    pub token: Address,
}

impl LiveMarket {
    /// Pairs a created sample with its token.
    pub fn new(sample: &SampleMarket, token: Address) -> Self {
        Self { spec: sample.spec.clone(), token }
    }
}

/// xorshift64*: deterministic, dependency-free randomness for the simulation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator (0 is replaced by a fixed odd constant).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// Next value in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound.max(1)
    }
}

/// Runs until `stop` is cancelled: every `interval`, one trader buys (60%) or
/// sells part of their balance (40%) in a random market; one tick in 40 also
/// opens a small slashing proposal, one in 5 votes on an open one. A failed
/// transaction is logged and skipped.
pub async fn run(
    driver: Driver,
    markets: Vec<LiveMarket>,
    traders: Vec<Address>,
    interval: Duration,
    stop: CancellationToken,
) {
    if markets.is_empty() || traders.is_empty() {
        return;
    }
    let mut rng = Rng::new(0x00A1_1CE5);
    let mut ticker = tokio::time::interval(interval);
    let mut trades = 0u64;
    let mut governance = Governance::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let market = &markets[usize::try_from(rng.below(markets.len() as u64)).unwrap_or(0)];
        let trader = traders[usize::try_from(rng.below(traders.len() as u64)).unwrap_or(0)];
        // Now and then a slashing proposal, and votes on the open ones.
        if rng.below(PROPOSAL_EVERY) == 0 {
            governance.propose(&driver, market, trader, &mut rng).await;
        } else if rng.below(VOTE_EVERY) == 0 {
            governance.vote(&driver, trader, &mut rng).await;
        }
        match trade_once(&driver, market, trader, &mut rng).await {
            Ok(Some(side)) => {
                trades += 1;
                tracing::debug!(trades, side, market = %market.spec.symbol, %trader, "simulated trade");
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, market = %market.spec.symbol, "simulated trade failed"),
        }
    }
    tracing::info!(trades, "trade simulator stopped");
}

/// One tick in this many opens a slashing proposal.
const PROPOSAL_EVERY: u64 = 40;
/// One tick in this many casts a vote on an open proposal.
const VOTE_EVERY: u64 = 5;

/// The proposals the simulator opened and who voted on them (a second vote
/// by the same address would revert).
#[derive(Debug, Default)]
struct Governance {
    proposals: Vec<(U256, Vec<Address>)>,
}

impl Governance {
    async fn propose(&mut self, driver: &Driver, market: &LiveMarket, proposer: Address, rng: &mut Rng) {
        let amount = usdc(1 + rng.below(20));
        match driver.propose(proposer, market.spec.market, market.spec.id, amount).await {
            Ok((id, _)) => {
                tracing::debug!(%id, market = %market.spec.symbol, "simulated proposal");
                self.proposals.push((id, Vec::new()));
                // The newest few stay open for votes.
                if self.proposals.len() > 8 {
                    self.proposals.remove(0);
                }
            }
            Err(error) => tracing::debug!(%error, market = %market.spec.symbol, "simulated proposal refused"),
        }
    }

    async fn vote(&mut self, driver: &Driver, voter: Address, rng: &mut Rng) {
        if self.proposals.is_empty() {
            return;
        }
        let index = usize::try_from(rng.below(self.proposals.len() as u64)).unwrap_or(0);
        let (id, voters) = &mut self.proposals[index];
        if voters.contains(&voter) {
            return;
        }
        // Mostly for, sometimes against, now and then abstain.
        let support = match rng.below(10) {
            0..6 => 1,
            6..9 => 0,
            _ => 2,
        };
        voters.push(voter);
        if let Err(error) = driver.cast_vote(voter, *id, support).await {
            // No voting power at the snapshot, or voting ended: both normal here.
            tracing::debug!(%error, %id, "simulated vote refused");
        }
    }
}

async fn trade_once(
    driver: &Driver,
    market: &LiveMarket,
    trader: Address,
    rng: &mut Rng,
) -> Result<Option<&'static str>, ChainError> {
    if rng.below(10) < 6 {
        let amount = usdc(5 + rng.below(250));
        driver.buy(trader, market.spec.market, market.spec.id, amount, U256::ZERO).await?;
        return Ok(Some("buy"));
    }
    let balance = MarketToken::new(market.token, &driver.provider)
        .balanceOf(trader)
        .call()
        .await
        .map_err(|source| ChainError::Contract { step: "balanceOf".into(), source })?;
    if balance.is_zero() {
        return Ok(None);
    }
    let share = U256::from(10 + rng.below(60));
    let amount = balance * share / U256::from(100u64);
    if amount.is_zero() {
        return Ok(None);
    }
    driver.sell(trader, market.spec.market, market.spec.id, market.token, amount, U256::ZERO).await?;
    Ok(Some("sell"))
}
