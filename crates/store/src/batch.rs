//! What the indexer writes for one block range, as plain rows. The indexer
//! fills a [`Batch`]; [`crate::indexing::write_batch`] writes it in one transaction.

use alloy_primitives::{Address, B256, U256};
use animoca_domain::{Candle, MarketKey, Position, Price, Timeframe};

/// Position of an event's log on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPosition {
    /// Block number.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Block timestamp, Unix seconds.
    pub block_timestamp: u64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Log index in the block.
    pub log_index: u64,
}

/// A raw log for the log store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLog {
    /// Where it is.
    pub position: EventPosition,
    /// Transaction index in the block.
    pub tx_index: u64,
    /// Emitter.
    pub address: Address,
    /// Up to four topics.
    pub topics: Vec<B256>,
    /// ABI data.
    pub data: Vec<u8>,
}

/// A contract view call made at a block and its ABI-encoded result, stored in
/// `chain.call_results` so that re-deriving from the log store needs no RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResultRow {
    /// The block the call was made at.
    pub block_number: u64,
    /// The contract.
    pub to: Address,
    /// ABI-encoded call (selector and arguments).
    pub calldata: Vec<u8>,
    /// ABI-encoded return data.
    pub result: Vec<u8>,
}

/// A block header the indexer saw (reorg window, timestamps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockRow {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Parent hash.
    pub parent_hash: B256,
    /// Timestamp, Unix seconds.
    pub timestamp: u64,
}

/// A market created by a factory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketRow {
    /// The factory event's position.
    pub position: EventPosition,
    /// The market.
    pub market: MarketKey,
    /// Its token.
    pub token: Address,
    /// Issuer or owner.
    pub creator: Address,
    /// The factory.
    pub factory: Address,
    /// The AMM holding its pool.
    pub amm: Address,
    /// Token name.
    pub name: String,
    /// Token symbol.
    pub symbol: String,
    /// Stake at creation.
    pub initial_stake: U256,
}

/// A pool opened by `PoolCreated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    /// The market.
    pub market: MarketKey,
    /// The AMM.
    pub amm: Address,
    /// The token.
    pub token: Address,
    /// Token reserves.
    pub token_reserves: U256,
    /// USDC reserves.
    pub usdc_reserves: U256,
    /// Spot price.
    pub price: Price,
    /// Fee of the AMM.
    pub fee_bps: u32,
    /// Block of `PoolCreated`.
    pub created_block: u64,
    /// Time of `PoolCreated`, Unix seconds.
    pub created_at: u64,
}

/// A pool's reserves after the batch (its last `ReservesUpdated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservesRow {
    /// The market.
    pub market: MarketKey,
    /// Token reserves.
    pub token_reserves: U256,
    /// USDC reserves.
    pub usdc_reserves: U256,
    /// Spot price.
    pub price: Price,
    /// Block of the update.
    pub block_number: u64,
    /// Its time, Unix seconds.
    pub timestamp: u64,
}

/// A swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapRow {
    /// Where.
    pub position: EventPosition,
    /// The market.
    pub market: MarketKey,
    /// The AMM.
    pub amm: Address,
    /// The trader.
    pub trader: Address,
    /// Buy (USDC in) or sell.
    pub is_buy: bool,
    /// |tokenAmount|.
    pub token_amount: U256,
    /// |usdcAmount|.
    pub usdc_amount: U256,
    /// Fee.
    pub fee: U256,
    /// Trade price.
    pub price: Price,
}

/// A market-token transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    /// Where.
    pub position: EventPosition,
    /// The market.
    pub market: MarketKey,
    /// The token.
    pub token: Address,
    /// Sender.
    pub from: Address,
    /// Receiver.
    pub to: Address,
    /// Amount.
    pub value: U256,
}

/// A holder's balance and cost basis after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRow {
    /// The market.
    pub market: MarketKey,
    /// The holder.
    pub holder: Address,
    /// ERC-20 balance.
    pub balance: U256,
    /// Cost-basis position (SPEC §5).
    pub position: Position,
    /// Last block that changed it.
    pub updated_block: u64,
}

/// Changes to a market's token supply and holder count in the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketDelta {
    /// Minted (transfers from the zero address).
    pub minted: U256,
    /// Burned (transfers to the zero address).
    pub burned: U256,
    /// Holders gained minus holders lost.
    pub holders: i64,
}

impl MarketDelta {
    /// Adds the changes of a later batch.
    pub fn merge(&mut self, later: &MarketDelta) {
        self.minted = self.minted.saturating_add(later.minted);
        self.burned = self.burned.saturating_add(later.burned);
        self.holders += later.holders;
    }
}

/// Kind of a stake event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StakeKind {
    /// `StakeDeposited`.
    Deposit,
    /// `StakeWithdrawn`.
    Withdraw,
    /// `StakeSlashed`.
    Slash,
}

impl StakeKind {
    /// Database name.
    pub fn as_str(self) -> &'static str {
        match self {
            StakeKind::Deposit => "deposit",
            StakeKind::Withdraw => "withdraw",
            StakeKind::Slash => "slash",
        }
    }
}

/// A stake event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StakeEventRow {
    /// Where.
    pub position: EventPosition,
    /// Kind.
    pub kind: StakeKind,
    /// The market.
    pub market: MarketKey,
    /// Depositor or withdrawer (none for a slash).
    pub staker: Option<Address>,
    /// Proposal of a slash.
    pub proposal_id: Option<U256>,
    /// USDC base units.
    pub amount: U256,
}

/// A new proposal with its on-chain parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRow {
    /// Where `ProposalCreated` is.
    pub position: EventPosition,
    /// Id.
    pub proposal_id: U256,
    /// The market.
    pub market: MarketKey,
    /// Proposer.
    pub proposer: Address,
    /// Requested slash.
    pub slash_amount: U256,
    /// Snapshot block of voting weights.
    pub snapshot_block: u64,
    /// End of voting, Unix seconds.
    pub voting_ends_at: u64,
    /// for + against needed.
    pub quorum_required: U256,
}

/// A vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteRow {
    /// Where.
    pub position: EventPosition,
    /// Proposal.
    pub proposal_id: U256,
    /// Voter.
    pub voter: Address,
    /// 0 against, 1 for, 2 abstain.
    pub support: u8,
    /// Weight.
    pub weight: U256,
}

/// Tally changes of a proposal in the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TallyDelta {
    /// Added for-votes.
    pub votes_for: U256,
    /// Added against-votes.
    pub votes_against: U256,
    /// Added abstentions.
    pub votes_abstain: U256,
    /// Added voters.
    pub voters: u64,
}

impl TallyDelta {
    /// Adds the votes of a later batch.
    pub fn merge(&mut self, later: &TallyDelta) {
        self.votes_for = self.votes_for.saturating_add(later.votes_for);
        self.votes_against = self.votes_against.saturating_add(later.votes_against);
        self.votes_abstain = self.votes_abstain.saturating_add(later.votes_abstain);
        self.voters += later.voters;
    }
}

/// How a proposal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Executed, slashing this much.
    Executed(U256),
    /// Canceled by its proposer.
    Canceled,
}

/// A candle in its state after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandleRow {
    /// The market.
    pub market: MarketKey,
    /// Timeframe.
    pub timeframe: Timeframe,
    /// The candle.
    pub candle: Candle,
}

/// One change-feed entry (`app.change_feed`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    /// price, trade, candle, proposal, vote, backfill, reorg.
    pub kind: String,
    /// What changed.
    pub payload: serde_json::Value,
}

/// Everything one block range writes. Rows are in chain order.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Chain id.
    pub chain_id: u64,
    /// First block of the range.
    pub from_block: u64,
    /// Last block of the range (the new checkpoint).
    pub to_block: BlockRow,
    /// Headers seen in the range.
    pub blocks: Vec<BlockRow>,
    /// Every ingested log.
    pub logs: Vec<RawLog>,
    /// New markets.
    pub markets: Vec<MarketRow>,
    /// Pools opened.
    pub pools: Vec<PoolRow>,
    /// Reserves of pools touched, final state.
    pub reserves: Vec<ReservesRow>,
    /// Swaps.
    pub swaps: Vec<SwapRow>,
    /// Transfers.
    pub transfers: Vec<TransferRow>,
    /// Balances touched, final state.
    pub balances: Vec<BalanceRow>,
    /// Supply and holder-count changes per market.
    pub market_deltas: Vec<(MarketKey, MarketDelta)>,
    /// Stake events.
    pub stake_events: Vec<StakeEventRow>,
    /// New proposals.
    pub proposals: Vec<ProposalRow>,
    /// Votes.
    pub votes: Vec<VoteRow>,
    /// Tally changes.
    pub tallies: Vec<(U256, TallyDelta)>,
    /// Outcomes.
    pub outcomes: Vec<(U256, Outcome, EventPosition)>,
    /// Candles touched, final state.
    pub candles: Vec<CandleRow>,
    /// What to tell subscribers after commit.
    pub changes: Vec<ChangeRow>,
    /// Contract view results the derivation used (re-deriving needs no RPC).
    pub call_results: Vec<CallResultRow>,
}
