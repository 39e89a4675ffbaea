//! Folds decoded events, in chain order, into the rows a batch writes
//! (SPEC §5): swaps with price, balances with cost basis, supply and holder
//! counts, pools, stakes, proposals with tallies, candles of every timeframe.

use foldhash::{HashMap, HashMapExt};

use alloy::primitives::{Address, U256};
use animoca_domain::{MarketKey, Position, Price};
use animoca_store::batch::{
    BalanceRow, Batch, CandleRow, EventPosition, MarketDelta, MarketRow, Outcome, PoolRow, ProposalRow, ReservesRow,
    StakeEventRow, StakeKind, SwapRow, TallyDelta, TransferRow, VoteRow,
};

use crate::{
    candles::{CandleBook, Trade},
    decode::Sources,
    events::{ChainEvent, LogMeta},
};

/// A holder's state in one market.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holding {
    /// ERC-20 balance.
    pub balance: U256,
    /// Cost-basis position.
    pub position: Position,
}

/// On-chain parameters of a proposal, read from `proposals(id)` at its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProposalInfo {
    /// The market it targets (the log has no market type).
    pub market: MarketKey,
    /// Snapshot block.
    pub snapshot_block: u64,
    /// End of voting, Unix seconds.
    pub voting_ends_at: u64,
    /// for + against needed.
    pub quorum_required: U256,
}

impl ProposalInfo {
    /// The parameters in a `proposals(id)` result (`None`: an unknown market type).
    pub fn from_view(p: &animoca_chain::bindings::GovernanceSlashing::proposalsReturn) -> Option<Self> {
        let market_type = animoca_domain::MarketType::try_from(p.marketType).ok()?;
        Some(ProposalInfo {
            market: MarketKey::new(market_type, p.marketId),
            snapshot_block: u64::try_from(p.snapshotBlock).unwrap_or(u64::MAX),
            voting_ends_at: p.votingEndsAt,
            quorum_required: p.quorumRequired,
        })
    }
}

/// State from the database that a batch builds on.
#[derive(Debug, Default)]
pub struct Prior {
    /// Holdings of every (market, holder) the batch touches that exist already.
    pub holdings: HashMap<(MarketKey, Address), Holding>,
    /// Parameters of every proposal the batch creates.
    pub proposals: HashMap<U256, ProposalInfo>,
}

/// The (market, holder) pairs whose holdings `events` change, sorted, without
/// duplicates: what [`Prior::holdings`] must hold for them.
pub fn holding_keys(events: &[(LogMeta, ChainEvent)]) -> Vec<(MarketKey, Address)> {
    let mut keys: Vec<(MarketKey, Address)> = Vec::new();
    for (_, event) in events {
        match event {
            ChainEvent::Swap { market, trader, .. } => keys.push((*market, *trader)),
            ChainEvent::Transfer { market, from, to, .. } => {
                keys.extend([(*market, *from), (*market, *to)].into_iter().filter(|(_, a)| !a.is_zero()));
            }
            _ => {}
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Events that contradict what is stored: indexing cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// A transfer moves more than the sender holds.
    #[error("{0}")]
    Overdraft(Box<Overdraft>),
    /// `ProposalCreated` without its `proposals()` parameters.
    #[error("proposal {0} has no on-chain parameters loaded")]
    MissingProposal(U256),
}

/// A transfer of more tokens than the sender holds.
#[derive(Debug, thiserror::Error)]
#[error("block {block} log {log}: {holder} sends {value} of {market:?} but holds {balance}")]
pub struct Overdraft {
    /// Block.
    pub block: u64,
    /// Log index.
    pub log: u64,
    /// Market.
    pub market: MarketKey,
    /// Sender.
    pub holder: Address,
    /// Amount.
    pub value: U256,
    /// Balance before.
    pub balance: U256,
}

/// Derives batches; keeps the newest candle buckets between batches.
#[derive(Debug)]
pub struct Deriver {
    candles: CandleBook,
    fee_bps: HashMap<Address, u32>,
}

impl Deriver {
    /// A deriver for AMMs with these fees.
    pub fn new(fee_bps: HashMap<Address, u32>) -> Self {
        Self { candles: CandleBook::default(), fee_bps }
    }

    /// The candle book (seeded from the database at start-up, cleared on rollback).
    pub fn candles_mut(&mut self) -> &mut CandleBook {
        &mut self.candles
    }

    /// Folds `events` (chain order) onto `prior` into `batch`.
    pub fn derive(
        &mut self,
        sources: &Sources,
        events: &[(LogMeta, ChainEvent)],
        mut prior: Prior,
        batch: &mut Batch,
    ) -> Result<(), DeriveError> {
        let mut touched: HashMap<(MarketKey, Address), u64> = HashMap::new();
        let mut deltas: HashMap<MarketKey, MarketDelta> = HashMap::new();
        let mut reserves: HashMap<MarketKey, ReservesRow> = HashMap::new();
        let mut tallies: HashMap<U256, TallyDelta> = HashMap::new();

        for (meta, event) in events {
            let position = event_position(meta);
            match event {
                ChainEvent::MarketCreated { market, token, creator, name, symbol, stake_amount, factory } => {
                    batch.markets.push(MarketRow {
                        position,
                        market: *market,
                        token: *token,
                        creator: *creator,
                        factory: *factory,
                        amm: sources.deployment().amm(market.market_type),
                        name: name.clone(),
                        symbol: symbol.clone(),
                        initial_stake: *stake_amount,
                    });
                    deltas.entry(*market).or_default();
                }
                ChainEvent::PoolCreated { market, amm, token, token_reserves, usdc_reserves } => {
                    batch.pools.push(PoolRow {
                        market: *market,
                        amm: *amm,
                        token: *token,
                        token_reserves: *token_reserves,
                        usdc_reserves: *usdc_reserves,
                        price: Price::spot(*usdc_reserves, *token_reserves),
                        fee_bps: self.fee_bps.get(amm).copied().unwrap_or_default(),
                        created_block: meta.block_number,
                        created_at: meta.block_timestamp,
                    });
                }
                ChainEvent::ReservesUpdated { market, token_reserves, usdc_reserves } => {
                    reserves.insert(
                        *market,
                        ReservesRow {
                            market: *market,
                            token_reserves: *token_reserves,
                            usdc_reserves: *usdc_reserves,
                            price: Price::spot(*usdc_reserves, *token_reserves),
                            block_number: meta.block_number,
                            timestamp: meta.block_timestamp,
                        },
                    );
                }
                ChainEvent::Swap { market, amm, trader, token_amount, usdc_amount, fee } => {
                    let tokens = token_amount.unsigned_abs();
                    let usdc = usdc_amount.unsigned_abs();
                    let is_buy = usdc_amount.is_positive() || (usdc_amount.is_zero() && token_amount.is_negative());
                    let price = Price::of_trade(usdc, tokens).unwrap_or(Price::ZERO);
                    let holding = prior.holdings.entry((*market, *trader)).or_default();
                    if is_buy {
                        holding.position.buy(tokens, usdc.saturating_add(*fee));
                    } else {
                        holding.position.sell(tokens, usdc.saturating_sub(*fee));
                    }
                    touched.insert((*market, *trader), meta.block_number);
                    batch.swaps.push(SwapRow {
                        position,
                        market: *market,
                        amm: *amm,
                        trader: *trader,
                        is_buy,
                        token_amount: tokens,
                        usdc_amount: usdc,
                        fee: *fee,
                        price,
                    });
                    let timestamp = i64::try_from(meta.block_timestamp).unwrap_or(i64::MAX);
                    let trade = Trade {
                        timestamp,
                        position: (meta.block_number, meta.log_index),
                        price,
                        usdc,
                        tokens,
                        trader: *trader,
                    };
                    self.candles.add(*market, &trade);
                }
                ChainEvent::Transfer { market, token, from, to, value } => {
                    self.transfer(sources, meta, *market, *from, *to, *value, &mut prior, &mut deltas)?;
                    for holder in [*from, *to] {
                        if !holder.is_zero() {
                            touched.insert((*market, holder), meta.block_number);
                        }
                    }
                    batch.transfers.push(TransferRow {
                        position,
                        market: *market,
                        token: *token,
                        from: *from,
                        to: *to,
                        value: *value,
                    });
                }
                ChainEvent::StakeDeposited { market, staker, amount } => batch.stake_events.push(StakeEventRow {
                    position,
                    kind: StakeKind::Deposit,
                    market: *market,
                    staker: Some(*staker),
                    proposal_id: None,
                    amount: *amount,
                }),
                ChainEvent::StakeWithdrawn { market, staker, amount } => batch.stake_events.push(StakeEventRow {
                    position,
                    kind: StakeKind::Withdraw,
                    market: *market,
                    staker: Some(*staker),
                    proposal_id: None,
                    amount: *amount,
                }),
                ChainEvent::StakeSlashed { market, proposal_id, amount } => batch.stake_events.push(StakeEventRow {
                    position,
                    kind: StakeKind::Slash,
                    market: *market,
                    staker: None,
                    proposal_id: Some(*proposal_id),
                    amount: *amount,
                }),
                ChainEvent::ProposalCreated { proposal_id, proposer, market_id: _, slash_amount } => {
                    let info = prior.proposals.get(proposal_id).ok_or(DeriveError::MissingProposal(*proposal_id))?;
                    batch.proposals.push(ProposalRow {
                        position,
                        proposal_id: *proposal_id,
                        market: info.market,
                        proposer: *proposer,
                        slash_amount: *slash_amount,
                        snapshot_block: info.snapshot_block,
                        voting_ends_at: info.voting_ends_at,
                        quorum_required: info.quorum_required,
                    });
                }
                ChainEvent::VoteCast { proposal_id, voter, support, weight } => {
                    let tally = tallies.entry(*proposal_id).or_default();
                    match support {
                        0 => tally.votes_against = tally.votes_against.saturating_add(*weight),
                        1 => tally.votes_for = tally.votes_for.saturating_add(*weight),
                        _ => tally.votes_abstain = tally.votes_abstain.saturating_add(*weight),
                    }
                    tally.voters += 1;
                    batch.votes.push(VoteRow {
                        position,
                        proposal_id: *proposal_id,
                        voter: *voter,
                        support: *support,
                        weight: *weight,
                    });
                }
                ChainEvent::ProposalExecuted { proposal_id, slashed_amount } => {
                    batch.outcomes.push((*proposal_id, Outcome::Executed(*slashed_amount), position));
                }
                ChainEvent::ProposalCanceled { proposal_id } => {
                    batch.outcomes.push((*proposal_id, Outcome::Canceled, position));
                }
            }
        }

        let mut balances: Vec<BalanceRow> = touched
            .into_iter()
            .map(|((market, holder), updated_block)| {
                let holding = prior.holdings.get(&(market, holder)).copied().unwrap_or_default();
                BalanceRow { market, holder, balance: holding.balance, position: holding.position, updated_block }
            })
            .collect();
        balances.sort_by_key(|row| (row.market, row.holder));
        batch.balances = balances;
        batch.market_deltas = sorted(deltas);
        batch.reserves = sorted(reserves).into_iter().map(|(_, row)| row).collect();
        batch.tallies = sorted(tallies);
        batch.candles = self
            .candles
            .take_dirty()
            .into_iter()
            .map(|(market, timeframe, candle)| CandleRow { market, timeframe, candle })
            .collect();
        Ok(())
    }

    /// Applies a token transfer to balances, cost basis, supply and holder count.
    #[allow(clippy::too_many_arguments)]
    fn transfer(
        &self,
        sources: &Sources,
        meta: &LogMeta,
        market: MarketKey,
        from: Address,
        to: Address,
        value: U256,
        prior: &mut Prior,
        deltas: &mut HashMap<MarketKey, MarketDelta>,
    ) -> Result<(), DeriveError> {
        let delta = deltas.entry(market).or_default();
        let counts = |holder: Address| !holder.is_zero() && !sources.is_amm(holder);
        if from.is_zero() {
            delta.minted = delta.minted.saturating_add(value);
        } else {
            let holding = prior.holdings.entry((market, from)).or_default();
            let before = holding.balance;
            holding.balance = before.checked_sub(value).ok_or_else(|| {
                DeriveError::Overdraft(Box::new(Overdraft {
                    block: meta.block_number,
                    log: meta.log_index,
                    market,
                    holder: from,
                    value,
                    balance: before,
                }))
            })?;
            if counts(from) && !before.is_zero() && holding.balance.is_zero() {
                delta.holders -= 1;
            }
        }
        if to.is_zero() {
            delta.burned = delta.burned.saturating_add(value);
        } else {
            let holding = prior.holdings.entry((market, to)).or_default();
            let before = holding.balance;
            holding.balance = before.saturating_add(value);
            if counts(to) && before.is_zero() && !holding.balance.is_zero() {
                delta.holders += 1;
            }
        }
        // Cost basis: the swap itself moved the position for transfers to or from
        // an AMM; a transfer to oneself changes nothing.
        if from != to && !sources.is_amm(from) && !sources.is_amm(to) {
            if !from.is_zero() {
                prior.holdings.entry((market, from)).or_default().position.send(value);
            }
            if !to.is_zero() {
                prior.holdings.entry((market, to)).or_default().position.receive(value);
            }
        }
        Ok(())
    }
}

fn event_position(meta: &LogMeta) -> EventPosition {
    EventPosition {
        block_number: meta.block_number,
        block_hash: meta.block_hash,
        block_timestamp: meta.block_timestamp,
        tx_hash: meta.tx_hash,
        log_index: meta.log_index,
    }
}

fn sorted<K: Ord, V>(map: HashMap<K, V>) -> Vec<(K, V)> {
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{B256, I256};
    use animoca_chain::Deployment;
    use animoca_domain::{MarketType, Timeframe};

    fn deployment() -> Deployment {
        Deployment {
            chain_id: 31_337,
            usdc: Address::repeat_byte(0xa0),
            stake_vault: Address::repeat_byte(0xa1),
            credential_amm: Address::repeat_byte(0xa2),
            persona_amm: Address::repeat_byte(0xa3),
            credential_factory: Address::repeat_byte(0xa4),
            persona_factory: Address::repeat_byte(0xa5),
            governance: Address::repeat_byte(0xa6),
            start_block: 1,
        }
    }

    fn meta(block: u64, log: u64) -> LogMeta {
        LogMeta {
            block_number: block,
            block_hash: B256::repeat_byte(u8::try_from(block).unwrap()),
            block_timestamp: 1_700_000_000 + block * 30,
            tx_hash: B256::repeat_byte(0xee),
            tx_index: 0,
            log_index: log,
        }
    }

    fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
    }

    #[test]
    fn folds_a_market_lifecycle_into_rows() {
        let d = deployment();
        let amm = d.credential_amm;
        let token = Address::repeat_byte(0x70);
        let (issuer, alice, bob) = (Address::repeat_byte(1), Address::repeat_byte(2), Address::repeat_byte(3));
        let market = MarketKey::new(MarketType::Credential, B256::repeat_byte(9));
        let mut sources = Sources::new(d);
        sources.register_token(token, market);
        let transfer = |from, to, value| ChainEvent::Transfer { market, token, from, to, value };
        let events = vec![
            (meta(2, 0), transfer(Address::ZERO, amm, e18(1000))),
            (meta(2, 1), transfer(Address::ZERO, issuer, e18(100))),
            (
                meta(2, 2),
                ChainEvent::PoolCreated {
                    market,
                    amm,
                    token,
                    token_reserves: e18(1000),
                    usdc_reserves: U256::from(10_000_000u64),
                },
            ),
            (
                meta(2, 3),
                ChainEvent::MarketCreated {
                    market,
                    token,
                    creator: issuer,
                    name: "Cred".into(),
                    symbol: "CRD".into(),
                    stake_amount: U256::from(5u64),
                    factory: d.credential_factory,
                },
            ),
            // alice buys 10 tokens for 0.997 + 0.003 fee
            (meta(3, 0), transfer(amm, alice, e18(10))),
            (
                meta(3, 1),
                ChainEvent::Swap {
                    market,
                    amm,
                    trader: alice,
                    token_amount: I256::try_from(-10i64).unwrap() * I256::try_from(e18(1)).unwrap(),
                    usdc_amount: I256::try_from(997_000i64).unwrap(),
                    fee: U256::from(3_000u64),
                },
            ),
            (
                meta(3, 2),
                ChainEvent::ReservesUpdated {
                    market,
                    token_reserves: e18(990),
                    usdc_reserves: U256::from(10_997_000u64),
                },
            ),
            // alice gives bob 4, then sells 6 for 0.7 gross (fee 0.0021)
            (meta(4, 0), transfer(alice, bob, e18(4))),
            (meta(5, 0), transfer(alice, amm, e18(6))),
            (
                meta(5, 1),
                ChainEvent::Swap {
                    market,
                    amm,
                    trader: alice,
                    token_amount: I256::try_from(e18(6)).unwrap(),
                    usdc_amount: I256::try_from(-700_000i64).unwrap(),
                    fee: U256::from(2_100u64),
                },
            ),
        ];
        let mut deriver = Deriver::new([(amm, 30)].into_iter().collect());
        let mut batch = Batch::default();
        deriver.derive(&sources, &events, Prior::default(), &mut batch).unwrap();

        assert_eq!(batch.markets.len(), 1);
        assert_eq!(batch.markets[0].amm, amm);
        assert_eq!(batch.pools[0].fee_bps, 30);
        assert_eq!(batch.pools[0].price.to_decimal_string(), "0.010000000000000000");
        assert_eq!(batch.reserves[0].token_reserves, e18(990));
        assert_eq!(batch.swaps.len(), 2);
        assert!(batch.swaps[0].is_buy && !batch.swaps[1].is_buy);
        assert_eq!(batch.swaps[0].price.to_decimal_string(), "0.099700000000000000");
        assert_eq!(batch.transfers.len(), 5);

        let balance = |holder| batch.balances.iter().find(|b| b.holder == holder).unwrap().clone();
        let alice_row = balance(alice);
        assert_eq!(alice_row.balance, U256::ZERO);
        assert_eq!(alice_row.position.balance, U256::ZERO);
        // basis 1.0 USDC; 4 of 10 sent away (0.4 leaves), 6 sold for 0.6979: realized 0.0979
        assert_eq!(alice_row.position.cost_basis, U256::ZERO);
        assert_eq!(alice_row.position.realized_pnl, I256::try_from(97_900i64).unwrap());
        let bob_row = balance(bob);
        assert_eq!((bob_row.balance, bob_row.position.cost_basis), (e18(4), U256::ZERO));
        assert_eq!(balance(amm).balance, e18(996));
        assert_eq!(balance(issuer).position.balance, e18(100));

        let (_, delta) = &batch.market_deltas[0];
        assert_eq!(delta.minted, e18(1100));
        // issuer and bob hold; alice held and sold out; the AMM never counts
        assert_eq!(delta.holders, 2);

        let minute: Vec<_> = batch.candles.iter().filter(|c| c.timeframe == Timeframe::M1).collect();
        let trades: u64 = minute.iter().map(|c| c.candle.trade_count).sum();
        assert_eq!(trades, 2);
        // t = 1700000090 and 1700000150 straddle the 1m, 5m and 15m edge at 1700000100
        // bucket starts; they share the 1h, 4h, 1d and 1w buckets.
        let per_timeframe: Vec<usize> =
            Timeframe::ALL.iter().map(|tf| batch.candles.iter().filter(|c| c.timeframe == *tf).count()).collect();
        assert_eq!(per_timeframe, [2, 2, 2, 1, 1, 1, 1]);
        let week = batch.candles.iter().find(|c| c.timeframe == Timeframe::W1).unwrap();
        assert_eq!((week.candle.trade_count, week.candle.unique_traders), (2, 1));
        assert_eq!(week.candle.volume_usdc, U256::from(1_697_000u64));
        assert_eq!(week.candle.open, batch.swaps[0].price);
        assert_eq!(week.candle.close, batch.swaps[1].price);
    }

    #[test]
    fn an_overdraft_is_an_error_not_a_wrap() {
        let d = deployment();
        let token = Address::repeat_byte(0x70);
        let market = MarketKey::new(MarketType::Persona, B256::repeat_byte(9));
        let mut sources = Sources::new(d);
        sources.register_token(token, market);
        let events = vec![(
            meta(2, 0),
            ChainEvent::Transfer {
                market,
                token,
                from: Address::repeat_byte(1),
                to: Address::repeat_byte(2),
                value: U256::from(1u64),
            },
        )];
        let error = Deriver::new(HashMap::new()).derive(&sources, &events, Prior::default(), &mut Batch::default());
        assert!(matches!(error, Err(DeriveError::Overdraft(_))));
    }
}
