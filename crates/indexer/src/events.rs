//! Domain events decoded from chain logs, with the position of their log.

use alloy::primitives::{Address, B256, I256, U256};
pub use animoca_domain::MarketKey;

/// Where a log sits on chain. Ordering is (block, log index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogMeta {
    /// Block number.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Block timestamp (Unix seconds).
    pub block_timestamp: u64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Index of the transaction in its block.
    pub tx_index: u64,
    /// Index of the log in its block.
    pub log_index: u64,
}

/// One decoded event of SPEC §4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEvent {
    /// `CredentialTokenCreated` / `PersonaTokenCreated` from a factory.
    MarketCreated {
        /// The new market.
        market: MarketKey,
        /// Its ERC-20 token.
        token: Address,
        /// Issuer (credential) or owner (persona).
        creator: Address,
        /// Token name.
        name: String,
        /// Token symbol.
        symbol: String,
        /// USDC staked at creation.
        stake_amount: U256,
        /// The factory that emitted it.
        factory: Address,
    },
    /// `PoolCreated` from an AMM.
    PoolCreated {
        /// The market (type from the AMM that emitted it).
        market: MarketKey,
        /// The AMM.
        amm: Address,
        /// The market token.
        token: Address,
        /// Initial token reserves.
        token_reserves: U256,
        /// Initial USDC reserves.
        usdc_reserves: U256,
    },
    /// `Swap` from an AMM: signed deltas from the pool's side.
    Swap {
        /// The market.
        market: MarketKey,
        /// The AMM.
        amm: Address,
        /// Whose tokens and USDC moved.
        trader: Address,
        /// Token delta of the pool (negative on a buy).
        token_amount: I256,
        /// USDC delta of the pool (positive on a buy), fee excluded.
        usdc_amount: I256,
        /// Fee in USDC base units.
        fee: U256,
    },
    /// `ReservesUpdated` from an AMM.
    ReservesUpdated {
        /// The market.
        market: MarketKey,
        /// Token reserves after.
        token_reserves: U256,
        /// USDC reserves after.
        usdc_reserves: U256,
    },
    /// `Transfer` of a market token.
    Transfer {
        /// The market whose token moved.
        market: MarketKey,
        /// The token.
        token: Address,
        /// Sender (zero on a mint).
        from: Address,
        /// Receiver (zero on a burn).
        to: Address,
        /// Amount in base units.
        value: U256,
    },
    /// `StakeDeposited` from the vault.
    StakeDeposited {
        /// The market.
        market: MarketKey,
        /// Whose USDC moved in.
        staker: Address,
        /// USDC base units.
        amount: U256,
    },
    /// `StakeWithdrawn` from the vault.
    StakeWithdrawn {
        /// The market.
        market: MarketKey,
        /// Who received the USDC.
        staker: Address,
        /// USDC base units.
        amount: U256,
    },
    /// `StakeSlashed` from the vault.
    StakeSlashed {
        /// The market.
        market: MarketKey,
        /// The executed proposal.
        proposal_id: U256,
        /// USDC base units actually slashed.
        amount: U256,
    },
    /// `ProposalCreated` from governance (its market type comes from `proposals()`).
    ProposalCreated {
        /// Proposal id.
        proposal_id: U256,
        /// Who proposed.
        proposer: Address,
        /// The market id (type unknown from the log alone).
        market_id: B256,
        /// Requested slash in USDC base units.
        slash_amount: U256,
    },
    /// `VoteCast` from governance.
    VoteCast {
        /// Proposal id.
        proposal_id: U256,
        /// The voter.
        voter: Address,
        /// 0 against, 1 for, 2 abstain.
        support: u8,
        /// Balance at the snapshot block.
        weight: U256,
    },
    /// `ProposalExecuted` from governance.
    ProposalExecuted {
        /// Proposal id.
        proposal_id: U256,
        /// USDC base units slashed.
        slashed_amount: U256,
    },
    /// `ProposalCanceled` from governance.
    ProposalCanceled {
        /// Proposal id.
        proposal_id: U256,
    },
}
