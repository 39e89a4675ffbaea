//! Turns raw logs into [`ChainEvent`]s: which contract emitted a log decides how
//! it is read (a credential AMM's `Swap` is a credential market's swap).

use std::collections::HashMap;

use alloy::{
    primitives::{Address, B256, Log},
    sol_types::SolEvent,
};
use animoca_chain::{
    Deployment,
    bindings::{
        CredentialTokenFactory::CredentialTokenCreated,
        GovernanceSlashing::{ProposalCanceled, ProposalCreated, ProposalExecuted, VoteCast},
        MarketAMM::{PoolCreated, ReservesUpdated, Swap},
        MarketToken::Transfer,
        PersonaTokenFactory::PersonaTokenCreated,
        StakeVault::{StakeDeposited, StakeSlashed, StakeWithdrawn},
    },
};
use animoca_domain::MarketType;

use crate::events::{ChainEvent, MarketKey};

/// A log from one of our contracts that does not decode as its event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The topics or data do not match the event's ABI.
    #[error("log of {address} with topic0 {topic0} does not decode as {event}: {source}")]
    Abi {
        /// Emitter.
        address: Address,
        /// First topic.
        topic0: B256,
        /// The event we expected.
        event: &'static str,
        /// The ABI decoder's error.
        source: Box<alloy::sol_types::Error>,
    },
    /// A vault event names a market type other than 0 or 1.
    #[error("log of {address} names unknown market type {market_type}")]
    MarketType {
        /// Emitter.
        address: Address,
        /// The value found.
        market_type: u8,
    },
}

/// The contracts we index and the market tokens discovered so far.
#[derive(Debug, Clone)]
pub struct Sources {
    deployment: Deployment,
    tokens: HashMap<Address, MarketKey>,
    /// The tokens in the order they were registered (fetches record how many they saw).
    discovered: Vec<Address>,
}

/// topic0 of every event the indexer reads (SPEC §4), for the `eth_getLogs` filter.
pub const EVENT_TOPICS: [B256; 13] = [
    CredentialTokenCreated::SIGNATURE_HASH,
    PersonaTokenCreated::SIGNATURE_HASH,
    PoolCreated::SIGNATURE_HASH,
    Swap::SIGNATURE_HASH,
    ReservesUpdated::SIGNATURE_HASH,
    Transfer::SIGNATURE_HASH,
    StakeDeposited::SIGNATURE_HASH,
    StakeWithdrawn::SIGNATURE_HASH,
    StakeSlashed::SIGNATURE_HASH,
    ProposalCreated::SIGNATURE_HASH,
    VoteCast::SIGNATURE_HASH,
    ProposalExecuted::SIGNATURE_HASH,
    ProposalCanceled::SIGNATURE_HASH,
];

impl Sources {
    /// The deployment's contracts, with no market token known yet.
    pub fn new(deployment: Deployment) -> Self {
        Self { deployment, tokens: HashMap::new(), discovered: Vec::new() }
    }

    /// The contracts indexed.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Records a market token (from a factory event, or loaded from the database).
    pub fn register_token(&mut self, token: Address, market: MarketKey) {
        if self.tokens.insert(token, market).is_none() {
            self.discovered.push(token);
        }
    }

    /// The market tokens in the order they were registered.
    pub fn discovered_tokens(&self) -> &[Address] {
        &self.discovered
    }

    /// Core contracts and every known token: the addresses of one `eth_getLogs`.
    pub fn log_addresses(&self) -> Vec<Address> {
        let mut addresses = self.core_addresses();
        addresses.extend_from_slice(&self.discovered);
        addresses
    }

    /// The market of a known token.
    pub fn market_of_token(&self, token: Address) -> Option<MarketKey> {
        self.tokens.get(&token).copied()
    }

    /// Factories, AMMs, vault and governance: the addresses whose logs create
    /// markets and move pools, stakes and proposals.
    pub fn core_addresses(&self) -> Vec<Address> {
        let d = &self.deployment;
        vec![d.credential_factory, d.persona_factory, d.credential_amm, d.persona_amm, d.stake_vault, d.governance]
    }

    /// Whether `address` is one of the AMMs (its token transfers belong to swaps).
    pub fn is_amm(&self, address: Address) -> bool {
        address == self.deployment.credential_amm || address == self.deployment.persona_amm
    }

    /// Decodes a stored log (the log store's row) with its position; consumes it
    /// (topics and data move, nothing is copied).
    pub fn decode_stored(
        &self,
        raw: animoca_store::batch::RawLog,
    ) -> Result<Option<(crate::events::LogMeta, ChainEvent)>, DecodeError> {
        let p = raw.position;
        let log =
            Log { address: raw.address, data: alloy::primitives::LogData::new_unchecked(raw.topics, raw.data.into()) };
        Ok(self.decode(&log)?.map(|event| {
            let meta = crate::events::LogMeta {
                block_number: p.block_number,
                block_hash: p.block_hash,
                block_timestamp: p.block_timestamp,
                tx_hash: p.tx_hash,
                tx_index: raw.tx_index,
                log_index: p.log_index,
            };
            (meta, event)
        }))
    }

    /// Decodes a log. `Ok(None)` for logs the indexer does not read (other events
    /// of our contracts, transfers of unknown tokens).
    pub fn decode(&self, log: &Log) -> Result<Option<ChainEvent>, DecodeError> {
        let Some(topic0) = log.topics().first().copied() else { return Ok(None) };
        let d = &self.deployment;
        let address = log.address;
        let abi =
            |event: &'static str| move |source| DecodeError::Abi { address, topic0, event, source: Box::new(source) };
        let event = if address == d.credential_factory && topic0 == CredentialTokenCreated::SIGNATURE_HASH {
            let e = CredentialTokenCreated::decode_log_data(&log.data).map_err(abi("CredentialTokenCreated"))?;
            ChainEvent::MarketCreated {
                market: MarketKey::new(MarketType::Credential, e.credentialId),
                token: e.token,
                creator: e.issuer,
                name: e.name,
                symbol: e.symbol,
                stake_amount: e.stakeAmount,
                factory: address,
            }
        } else if address == d.persona_factory && topic0 == PersonaTokenCreated::SIGNATURE_HASH {
            let e = PersonaTokenCreated::decode_log_data(&log.data).map_err(abi("PersonaTokenCreated"))?;
            ChainEvent::MarketCreated {
                market: MarketKey::new(MarketType::Persona, e.personaId),
                token: e.token,
                creator: e.owner,
                name: e.name,
                symbol: e.symbol,
                stake_amount: e.stakeAmount,
                factory: address,
            }
        } else if let Some(market_type) = self.amm_market_type(address) {
            match topic0 {
                t if t == Swap::SIGNATURE_HASH => {
                    let e = Swap::decode_log_data(&log.data).map_err(abi("Swap"))?;
                    ChainEvent::Swap {
                        market: MarketKey::new(market_type, e.marketId),
                        amm: address,
                        trader: e.trader,
                        token_amount: e.tokenAmount,
                        usdc_amount: e.usdcAmount,
                        fee: e.fee,
                    }
                }
                t if t == ReservesUpdated::SIGNATURE_HASH => {
                    let e = ReservesUpdated::decode_log_data(&log.data).map_err(abi("ReservesUpdated"))?;
                    ChainEvent::ReservesUpdated {
                        market: MarketKey::new(market_type, e.marketId),
                        token_reserves: e.tokenReserves,
                        usdc_reserves: e.usdcReserves,
                    }
                }
                t if t == PoolCreated::SIGNATURE_HASH => {
                    let e = PoolCreated::decode_log_data(&log.data).map_err(abi("PoolCreated"))?;
                    ChainEvent::PoolCreated {
                        market: MarketKey::new(market_type, e.marketId),
                        amm: address,
                        token: e.token,
                        token_reserves: e.tokenReserves,
                        usdc_reserves: e.usdcReserves,
                    }
                }
                _ => return Ok(None),
            }
        } else if address == d.stake_vault {
            match topic0 {
                t if t == StakeDeposited::SIGNATURE_HASH => {
                    let e = StakeDeposited::decode_log_data(&log.data).map_err(abi("StakeDeposited"))?;
                    ChainEvent::StakeDeposited {
                        market: self.vault_market(address, e.marketType, e.marketId)?,
                        staker: e.staker,
                        amount: e.amount,
                    }
                }
                t if t == StakeWithdrawn::SIGNATURE_HASH => {
                    let e = StakeWithdrawn::decode_log_data(&log.data).map_err(abi("StakeWithdrawn"))?;
                    ChainEvent::StakeWithdrawn {
                        market: self.vault_market(address, e.marketType, e.marketId)?,
                        staker: e.staker,
                        amount: e.amount,
                    }
                }
                t if t == StakeSlashed::SIGNATURE_HASH => {
                    let e = StakeSlashed::decode_log_data(&log.data).map_err(abi("StakeSlashed"))?;
                    ChainEvent::StakeSlashed {
                        market: self.vault_market(address, e.marketType, e.marketId)?,
                        proposal_id: e.proposalId,
                        amount: e.amount,
                    }
                }
                _ => return Ok(None),
            }
        } else if address == d.governance {
            match topic0 {
                t if t == ProposalCreated::SIGNATURE_HASH => {
                    let e = ProposalCreated::decode_log_data(&log.data).map_err(abi("ProposalCreated"))?;
                    ChainEvent::ProposalCreated {
                        proposal_id: e.proposalId,
                        proposer: e.proposer,
                        market_id: e.marketId,
                        slash_amount: e.slashAmount,
                    }
                }
                t if t == VoteCast::SIGNATURE_HASH => {
                    let e = VoteCast::decode_log_data(&log.data).map_err(abi("VoteCast"))?;
                    ChainEvent::VoteCast {
                        proposal_id: e.proposalId,
                        voter: e.voter,
                        support: e.support,
                        weight: e.weight,
                    }
                }
                t if t == ProposalExecuted::SIGNATURE_HASH => {
                    let e = ProposalExecuted::decode_log_data(&log.data).map_err(abi("ProposalExecuted"))?;
                    ChainEvent::ProposalExecuted { proposal_id: e.proposalId, slashed_amount: e.slashedAmount }
                }
                t if t == ProposalCanceled::SIGNATURE_HASH => {
                    let e = ProposalCanceled::decode_log_data(&log.data).map_err(abi("ProposalCanceled"))?;
                    ChainEvent::ProposalCanceled { proposal_id: e.proposalId }
                }
                _ => return Ok(None),
            }
        } else if topic0 == Transfer::SIGNATURE_HASH {
            let Some(market) = self.market_of_token(address) else { return Ok(None) };
            let e = Transfer::decode_log_data(&log.data).map_err(abi("Transfer"))?;
            ChainEvent::Transfer { market, token: address, from: e.from, to: e.to, value: e.value }
        } else {
            return Ok(None);
        };
        Ok(Some(event))
    }

    fn amm_market_type(&self, address: Address) -> Option<MarketType> {
        if address == self.deployment.credential_amm {
            Some(MarketType::Credential)
        } else if address == self.deployment.persona_amm {
            Some(MarketType::Persona)
        } else {
            None
        }
    }

    fn vault_market(&self, address: Address, market_type: u8, market_id: B256) -> Result<MarketKey, DecodeError> {
        let market_type =
            MarketType::try_from(market_type).map_err(|_| DecodeError::MarketType { address, market_type })?;
        Ok(MarketKey::new(market_type, market_id))
    }
}
