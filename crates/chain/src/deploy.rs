//! Deploys and wires the reference contracts (the `deploy` command, tests, `dev`).
//!
//! Order: USDC (MockUSDC unless an existing token is given), StakeVault, the two
//! MarketAMMs, the two factories, GovernanceSlashing; then the vault learns its
//! factories and governance and each AMM its factory.

use alloy::{
    contract::{CallBuilder, CallDecoder},
    network::{Ethereum, TransactionBuilder},
    primitives::{Address, Bytes},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
};
use animoca_domain::MarketType;
use serde::Serialize;

use crate::{
    ChainError,
    bindings::{CredentialTokenFactory, GovernanceSlashing, MarketAMM, MockUSDC, PersonaTokenFactory, StakeVault},
};

/// Protocol parameters chosen at deployment.
#[derive(Debug, Clone)]
pub struct DeployParams {
    /// Use this USDC token instead of deploying `MockUSDC`.
    pub usdc: Option<Address>,
    /// AMM fee in basis points (both AMMs).
    pub fee_bps: u16,
    /// Receives swap fees.
    pub fee_recipient: Address,
    /// Receives slashed stakes.
    pub treasury: Address,
    /// Length of a slashing vote, in seconds.
    pub voting_period_secs: u64,
    /// Quorum as basis points of the token supply at the snapshot.
    pub quorum_bps: u16,
}

impl DeployParams {
    /// Defaults for a devnet: fees and slashes go to `deployer`, 0.3% fee,
    /// 3-day votes, 4% quorum.
    pub fn devnet(deployer: Address) -> Self {
        Self {
            usdc: None,
            fee_bps: 30,
            fee_recipient: deployer,
            treasury: deployer,
            voting_period_secs: 3 * 24 * 3600,
            quorum_bps: 400,
        }
    }
}

/// Addresses of a deployment, and the block to start indexing from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Deployment {
    /// Chain the contracts live on.
    pub chain_id: u64,
    /// The USDC token.
    pub usdc: Address,
    /// Holds every market's stake.
    pub stake_vault: Address,
    /// AMM of credential markets.
    pub credential_amm: Address,
    /// AMM of persona markets.
    pub persona_amm: Address,
    /// Creates credential markets.
    pub credential_factory: Address,
    /// Creates persona markets.
    pub persona_factory: Address,
    /// Slashing governance.
    pub governance: Address,
    /// First block holding one of these contracts.
    pub start_block: u64,
}

impl Deployment {
    /// The factory of a market type.
    pub fn factory(&self, market: MarketType) -> Address {
        match market {
            MarketType::Credential => self.credential_factory,
            MarketType::Persona => self.persona_factory,
        }
    }

    /// The AMM of a market type.
    pub fn amm(&self, market: MarketType) -> Address {
        match market {
            MarketType::Credential => self.credential_amm,
            MarketType::Persona => self.persona_amm,
        }
    }

    /// The deployment as `.env` lines, ready to paste.
    pub fn env_lines(&self) -> String {
        [
            ("CHAIN_ID", self.chain_id.to_string()),
            ("USDC_ADDRESS", self.usdc.to_string()),
            ("STAKE_VAULT", self.stake_vault.to_string()),
            ("CREDENTIAL_AMM", self.credential_amm.to_string()),
            ("PERSONA_AMM", self.persona_amm.to_string()),
            ("CREDENTIAL_TOKEN_FACTORY", self.credential_factory.to_string()),
            ("PERSONA_TOKEN_FACTORY", self.persona_factory.to_string()),
            ("GOVERNANCE_SLASHING", self.governance.to_string()),
            ("START_BLOCK", self.start_block.to_string()),
        ]
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect()
    }
}

/// Deploys and wires every contract. `owner` (the provider's signer) owns the
/// vault and AMMs; ownership only matters for the one-time wiring done here.
pub async fn deploy(provider: &DynProvider, owner: Address, params: &DeployParams) -> Result<Deployment, ChainError> {
    let chain_id = provider.get_chain_id().await.map_err(|source| ChainError::Rpc { call: "eth_chainId", source })?;

    let usdc = match params.usdc {
        Some(address) => address,
        None => create("deploy MockUSDC", provider, MockUSDC::deploy_builder(provider).calldata().clone()).await?.0,
    };
    let (stake_vault, start_block) = create(
        "deploy StakeVault",
        provider,
        StakeVault::deploy_builder(provider, usdc, params.treasury, owner).calldata().clone(),
    )
    .await?;
    let fee = alloy::primitives::U256::from(params.fee_bps);
    let credential_amm = create(
        "deploy credential MarketAMM",
        provider,
        MarketAMM::deploy_builder(provider, usdc, fee, params.fee_recipient, owner).calldata().clone(),
    )
    .await?
    .0;
    let persona_amm = create(
        "deploy persona MarketAMM",
        provider,
        MarketAMM::deploy_builder(provider, usdc, fee, params.fee_recipient, owner).calldata().clone(),
    )
    .await?
    .0;
    let credential_factory = create(
        "deploy CredentialTokenFactory",
        provider,
        CredentialTokenFactory::deploy_builder(provider, usdc, stake_vault, credential_amm).calldata().clone(),
    )
    .await?
    .0;
    let persona_factory = create(
        "deploy PersonaTokenFactory",
        provider,
        PersonaTokenFactory::deploy_builder(provider, usdc, stake_vault, persona_amm).calldata().clone(),
    )
    .await?
    .0;
    let governance = create(
        "deploy GovernanceSlashing",
        provider,
        GovernanceSlashing::deploy_builder(
            provider,
            stake_vault,
            credential_factory,
            persona_factory,
            params.voting_period_secs,
            params.quorum_bps,
        )
        .calldata()
        .clone(),
    )
    .await?
    .0;

    let vault = StakeVault::new(stake_vault, provider);
    send("StakeVault.setFactory(credential)", vault.setFactory(MarketType::Credential.as_u8(), credential_factory))
        .await?;
    send("StakeVault.setFactory(persona)", vault.setFactory(MarketType::Persona.as_u8(), persona_factory)).await?;
    send("StakeVault.setGovernance", vault.setGovernance(governance)).await?;
    send("credential MarketAMM.setFactory", MarketAMM::new(credential_amm, provider).setFactory(credential_factory))
        .await?;
    send("persona MarketAMM.setFactory", MarketAMM::new(persona_amm, provider).setFactory(persona_factory)).await?;

    let deployment = Deployment {
        chain_id,
        usdc,
        stake_vault,
        credential_amm,
        persona_amm,
        credential_factory,
        persona_factory,
        governance,
        start_block,
    };
    tracing::info!(?deployment, "contracts deployed");
    Ok(deployment)
}

/// Sends a contract-creation transaction; returns the new address and its block.
async fn create(step: &str, provider: &DynProvider, init_code: Bytes) -> Result<(Address, u64), ChainError> {
    let request = TransactionRequest::default().with_deploy_code(init_code);
    let pending = provider
        .send_transaction(request)
        .await
        .map_err(|source| ChainError::Rpc { call: "eth_sendTransaction", source })?;
    let receipt =
        pending.get_receipt().await.map_err(|source| ChainError::Receipt { step: step.to_owned(), source })?;
    if !receipt.status() {
        return Err(ChainError::Reverted { step: step.to_owned(), tx_hash: receipt.transaction_hash });
    }
    let address = receipt.contract_address.ok_or_else(|| ChainError::Reverted {
        step: format!("{step} (no contract address in receipt)"),
        tx_hash: receipt.transaction_hash,
    })?;
    let block = receipt.block_number.ok_or_else(|| ChainError::Reverted {
        step: format!("{step} (receipt without a block number)"),
        tx_hash: receipt.transaction_hash,
    })?;
    Ok((address, block))
}

/// Sends a contract call as a transaction and waits for a successful receipt.
pub async fn send<P, D>(
    step: &str,
    call: CallBuilder<P, D, Ethereum>,
) -> Result<alloy::rpc::types::TransactionReceipt, ChainError>
where
    P: Provider<Ethereum>,
    D: CallDecoder,
{
    let pending = call.send().await.map_err(|source| ChainError::Contract { step: step.to_owned(), source })?;
    let receipt =
        pending.get_receipt().await.map_err(|source| ChainError::Receipt { step: step.to_owned(), source })?;
    if !receipt.status() {
        return Err(ChainError::Reverted { step: step.to_owned(), tx_hash: receipt.transaction_hash });
    }
    Ok(receipt)
}
