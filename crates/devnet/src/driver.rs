//! Actions on a deployed devnet: create markets, trade, mint test USDC.
//! Shared by `animoca-trade dev` and the test harness.

use alloy::{
    primitives::{Address, B256, U256},
    providers::DynProvider,
    rpc::types::TransactionReceipt,
};
use animoca_chain::{
    ChainError, Deployment,
    bindings::{
        CredentialTokenFactory, GovernanceSlashing, MarketAMM, MarketToken, MockUSDC, PersonaTokenFactory, StakeVault,
    },
    deploy::send,
};
use animoca_domain::MarketType;

/// `n` whole market tokens in base units.
pub fn tokens(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// `n` whole USDC in base units.
pub fn usdc(n: u64) -> U256 {
    U256::from(n) * U256::from(1_000_000u64)
}

/// What a factory call creates.
#[derive(Debug, Clone)]
pub struct MarketSpec {
    /// Credential or persona.
    pub market: MarketType,
    /// The market id (bytes32).
    pub id: B256,
    /// Token name.
    pub name: String,
    /// Token symbol.
    pub symbol: String,
    /// USDC staked.
    pub stake: U256,
    /// Tokens minted into the pool.
    pub token_reserves: U256,
    /// USDC put into the pool.
    pub usdc_reserves: U256,
    /// Tokens minted to the creator.
    pub creator_tokens: U256,
}

impl MarketSpec {
    /// A market with 1,000,000 tokens against 10,000 USDC in the pool (spot 0.01),
    /// a 1,000 USDC stake and 100,000 tokens for the creator; the id is
    /// `keccak256(label)`.
    pub fn new(market: MarketType, label: &str) -> Self {
        Self {
            market,
            id: alloy::primitives::keccak256(label.as_bytes()),
            name: format!("{label} token"),
            symbol: label.chars().filter(char::is_ascii_alphanumeric).take(6).collect::<String>().to_uppercase(),
            stake: usdc(1_000),
            token_reserves: tokens(1_000_000),
            usdc_reserves: usdc(10_000),
            creator_tokens: tokens(100_000),
        }
    }
}

/// A deployment plus a provider whose wallet can sign for the accounts used.
#[derive(Debug, Clone)]
pub struct Driver {
    /// Signs for every account registered in its wallet; `from` picks one.
    pub provider: DynProvider,
    /// The contracts.
    pub deployment: Deployment,
}

impl Driver {
    /// Mints MockUSDC (devnet only).
    pub async fn mint_usdc(&self, to: Address, amount: U256) -> Result<TransactionReceipt, ChainError> {
        send("mint USDC", MockUSDC::new(self.deployment.usdc, &self.provider).mint(to, amount)).await
    }

    /// Approves `spender` for `amount` USDC of `owner`.
    pub async fn approve_usdc(
        &self,
        owner: Address,
        spender: Address,
        amount: U256,
    ) -> Result<TransactionReceipt, ChainError> {
        send("approve USDC", MockUSDC::new(self.deployment.usdc, &self.provider).approve(spender, amount).from(owner))
            .await
    }

    /// Mints and approves the USDC a market needs, creates it, and returns its token.
    pub async fn create_market(
        &self,
        spec: &MarketSpec,
        creator: Address,
    ) -> Result<(Address, TransactionReceipt), ChainError> {
        self.mint_usdc(creator, spec.stake + spec.usdc_reserves).await?;
        self.approve_usdc(creator, self.deployment.stake_vault, spec.stake).await?;
        self.approve_usdc(creator, self.deployment.amm(spec.market), spec.usdc_reserves).await?;
        let receipt = self.call_factory(spec, creator).await?;
        let token = self.token_of(spec.market, spec.id).await?;
        Ok((token, receipt))
    }

    /// The token of a market (zero address if none).
    pub async fn token_of(&self, market: MarketType, id: B256) -> Result<Address, ChainError> {
        let step = || format!("token of {market} market {id}");
        match market {
            MarketType::Credential => {
                CredentialTokenFactory::new(self.deployment.credential_factory, &self.provider)
                    .getTokenByCredential(id)
                    .call()
                    .await
            }
            MarketType::Persona => {
                PersonaTokenFactory::new(self.deployment.persona_factory, &self.provider)
                    .getTokenByPersona(id)
                    .call()
                    .await
            }
        }
        .map_err(|source| ChainError::Contract { step: step(), source })
    }

    /// Calls the factory as `creator` with no preparation (approvals must exist).
    pub async fn call_factory(&self, spec: &MarketSpec, creator: Address) -> Result<TransactionReceipt, ChainError> {
        match spec.market {
            MarketType::Credential => {
                let factory = CredentialTokenFactory::new(self.deployment.credential_factory, &self.provider);
                let call = factory
                    .createCredentialToken(
                        spec.id,
                        spec.name.clone(),
                        spec.symbol.clone(),
                        spec.stake,
                        spec.token_reserves,
                        spec.usdc_reserves,
                        spec.creator_tokens,
                    )
                    .from(creator);
                send("createCredentialToken", call).await
            }
            MarketType::Persona => {
                let factory = PersonaTokenFactory::new(self.deployment.persona_factory, &self.provider);
                let call = factory
                    .createPersonaToken(
                        spec.id,
                        spec.name.clone(),
                        spec.symbol.clone(),
                        spec.stake,
                        spec.token_reserves,
                        spec.usdc_reserves,
                        spec.creator_tokens,
                    )
                    .from(creator);
                send("createPersonaToken", call).await
            }
        }
    }

    /// Buys with `usdc_in`, minting and approving the USDC first.
    pub async fn buy(
        &self,
        trader: Address,
        market: MarketType,
        id: B256,
        usdc_in: U256,
        min_tokens_out: U256,
    ) -> Result<TransactionReceipt, ChainError> {
        self.mint_usdc(trader, usdc_in).await?;
        self.approve_usdc(trader, self.deployment.amm(market), usdc_in).await?;
        let amm = MarketAMM::new(self.deployment.amm(market), &self.provider);
        send("buy", amm.buy(id, usdc_in, min_tokens_out).from(trader)).await
    }

    /// Sells `tokens_in` of `token`, approving the AMM first.
    pub async fn sell(
        &self,
        trader: Address,
        market: MarketType,
        id: B256,
        token: Address,
        tokens_in: U256,
        min_usdc_out: U256,
    ) -> Result<TransactionReceipt, ChainError> {
        let amm_address = self.deployment.amm(market);
        send("approve tokens", MarketToken::new(token, &self.provider).approve(amm_address, tokens_in).from(trader))
            .await?;
        let amm = MarketAMM::new(amm_address, &self.provider);
        send("sell", amm.sell(id, tokens_in, min_usdc_out).from(trader)).await
    }

    /// Transfers market tokens.
    pub async fn transfer_tokens(
        &self,
        token: Address,
        from: Address,
        to: Address,
        amount: U256,
    ) -> Result<TransactionReceipt, ChainError> {
        send("transfer", MarketToken::new(token, &self.provider).transfer(to, amount).from(from)).await
    }

    /// The market owner tops up its stake (minting and approving the USDC first).
    pub async fn deposit_stake(
        &self,
        owner: Address,
        market: MarketType,
        id: B256,
        amount: U256,
    ) -> Result<TransactionReceipt, ChainError> {
        self.mint_usdc(owner, amount).await?;
        self.approve_usdc(owner, self.deployment.stake_vault, amount).await?;
        let vault = StakeVault::new(self.deployment.stake_vault, &self.provider);
        send("deposit stake", vault.deposit(market.as_u8(), id, amount).from(owner)).await
    }

    /// The market owner withdraws stake.
    pub async fn withdraw_stake(
        &self,
        owner: Address,
        market: MarketType,
        id: B256,
        amount: U256,
    ) -> Result<TransactionReceipt, ChainError> {
        let vault = StakeVault::new(self.deployment.stake_vault, &self.provider);
        send("withdraw stake", vault.withdraw(market.as_u8(), id, amount).from(owner)).await
    }

    /// Gas limit of `propose`, well above what it uses.
    const PROPOSE_GAS: u64 = 1_000_000;

    /// Proposes to slash `amount` of a market's stake; returns the proposal id
    /// (from `ProposalCreated`) and the receipt.
    pub async fn propose(
        &self,
        proposer: Address,
        market: MarketType,
        id: B256,
        amount: U256,
    ) -> Result<(U256, TransactionReceipt), ChainError> {
        let governance = GovernanceSlashing::new(self.deployment.governance, &self.provider);
        // A fixed gas limit, not an estimate: whether `propose` extends the stake lock (an
        // extra storage write) depends on the timestamp of the block it lands in, which
        // can be a second later than the estimate's.
        let call = governance.propose(market.as_u8(), id, amount).from(proposer).gas(Self::PROPOSE_GAS);
        let receipt = send("propose", call).await?;
        let proposal_id = receipt
            .inner
            .logs()
            .iter()
            .find_map(|log| log.log_decode::<GovernanceSlashing::ProposalCreated>().ok())
            .map(|log| log.inner.data.proposalId)
            .ok_or(ChainError::Reverted {
                step: "propose (no ProposalCreated)".into(),
                tx_hash: receipt.transaction_hash,
            })?;
        Ok((proposal_id, receipt))
    }

    /// Votes on a proposal: 0 against, 1 for, 2 abstain.
    pub async fn cast_vote(
        &self,
        voter: Address,
        proposal_id: U256,
        support: u8,
    ) -> Result<TransactionReceipt, ChainError> {
        let governance = GovernanceSlashing::new(self.deployment.governance, &self.provider);
        send("castVote", governance.castVote(proposal_id, support).from(voter)).await
    }

    /// Executes a succeeded proposal.
    pub async fn execute(&self, caller: Address, proposal_id: U256) -> Result<TransactionReceipt, ChainError> {
        let governance = GovernanceSlashing::new(self.deployment.governance, &self.provider);
        send("execute", governance.execute(proposal_id).from(caller)).await
    }

    /// Cancels an active proposal (proposer only).
    pub async fn cancel(&self, caller: Address, proposal_id: U256) -> Result<TransactionReceipt, ChainError> {
        let governance = GovernanceSlashing::new(self.deployment.governance, &self.provider);
        send("cancel", governance.cancel(proposal_id).from(caller)).await
    }
}
