//! A private anvil with the reference contracts deployed, and drivers for the
//! actions tests need (markets, trades, transfers, stakes, votes, time travel).

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder, ext::AnvilApi},
    rpc::types::TransactionReceipt,
};
use animoca_chain::{
    DeployParams, Deployment,
    bindings::{
        CredentialTokenFactory, GovernanceSlashing, MarketAMM, MarketToken, MockUSDC, PersonaTokenFactory, StakeVault,
    },
    deploy::send,
};
use animoca_devnet::{Anvil, AnvilOptions};
use animoca_domain::MarketType;

/// One USDC in base units.
pub const USDC: u64 = 1_000_000;

/// `n` whole market tokens in base units.
pub fn tokens(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// `n` whole USDC in base units.
pub fn usdc(n: u64) -> U256 {
    U256::from(n) * U256::from(USDC)
}

/// A running anvil with every contract deployed and wired.
pub struct TestChain {
    /// The node (killed on drop).
    pub anvil: Anvil,
    /// Signs with every anvil account; `from` picks one (account 0 by default).
    pub provider: DynProvider,
    /// The contract addresses.
    pub deployment: Deployment,
    /// Anvil's funded accounts; account 0 deployed the contracts.
    pub accounts: Vec<Address>,
    /// The deployment parameters used.
    pub params: DeployParams,
}

impl TestChain {
    /// Starts anvil on a free port and deploys with [`DeployParams::devnet`].
    pub async fn start() -> TestChain {
        Self::start_with(|_| {}).await
    }

    /// Like [`TestChain::start`], adjusting the deployment parameters first.
    pub async fn start_with(adjust: impl FnOnce(&mut DeployParams)) -> TestChain {
        let anvil = Anvil::spawn(&AnvilOptions::default()).await.expect("anvil starts (run scripts/install-tools)");
        let keys = anvil.keys().to_vec();
        assert!(!keys.is_empty(), "anvil printed its dev keys");
        let accounts: Vec<Address> = keys.iter().map(|k| k.address()).collect();
        let mut wallet = EthereumWallet::new(keys[0].clone());
        for key in &keys[1..] {
            wallet.register_signer(key.clone());
        }
        let provider = ProviderBuilder::new()
            .wallet(wallet)
            .connect_http(anvil.endpoint().parse().expect("anvil endpoint is a URL"))
            .erased();
        let mut params = DeployParams::devnet(accounts[0]);
        // Fees and slashes go to an account tests do not trade with.
        params.fee_recipient = accounts[9];
        params.treasury = accounts[8];
        adjust(&mut params);
        let deployment = animoca_chain::deploy(&provider, accounts[0], &params).await.expect("contracts deploy");
        TestChain { anvil, provider, deployment, accounts, params }
    }

    /// Account `index` of anvil.
    pub fn account(&self, index: usize) -> Address {
        self.accounts[index]
    }

    /// The USDC token.
    pub fn usdc(&self) -> MockUSDC::MockUSDCInstance<DynProvider> {
        MockUSDC::new(self.deployment.usdc, self.provider.clone())
    }

    /// The stake vault.
    pub fn vault(&self) -> StakeVault::StakeVaultInstance<DynProvider> {
        StakeVault::new(self.deployment.stake_vault, self.provider.clone())
    }

    /// The AMM of a market type.
    pub fn amm(&self, market: MarketType) -> MarketAMM::MarketAMMInstance<DynProvider> {
        MarketAMM::new(self.deployment.amm(market), self.provider.clone())
    }

    /// The governance contract.
    pub fn governance(&self) -> GovernanceSlashing::GovernanceSlashingInstance<DynProvider> {
        GovernanceSlashing::new(self.deployment.governance, self.provider.clone())
    }

    /// A market token.
    pub fn token(&self, address: Address) -> MarketToken::MarketTokenInstance<DynProvider> {
        MarketToken::new(address, self.provider.clone())
    }

    /// Mints `amount` USDC base units to `to`.
    pub async fn mint_usdc(&self, to: Address, amount: U256) -> TransactionReceipt {
        send("mint USDC", self.usdc().mint(to, amount)).await.expect("mint USDC")
    }

    /// Approves `spender` for `amount` USDC from `owner`.
    pub async fn approve_usdc(&self, owner: Address, spender: Address, amount: U256) -> TransactionReceipt {
        send("approve USDC", self.usdc().approve(spender, amount).from(owner)).await.expect("approve USDC")
    }

    /// Creates a market as `creator`: mints and approves the USDC it needs, then
    /// calls the factory. Returns the token address and the receipt.
    pub async fn create_market(&self, spec: &MarketSpec, creator: Address) -> (Address, TransactionReceipt) {
        self.mint_usdc(creator, spec.stake + spec.usdc_reserves).await;
        self.approve_usdc(creator, self.deployment.stake_vault, spec.stake).await;
        self.approve_usdc(creator, self.deployment.amm(spec.market), spec.usdc_reserves).await;
        let receipt = self.try_create_market(spec, creator).await.expect("market created");
        let token = match spec.market {
            MarketType::Credential => {
                CredentialTokenFactory::new(self.deployment.credential_factory, &self.provider)
                    .getTokenByCredential(spec.id)
                    .call()
                    .await
            }
            MarketType::Persona => {
                PersonaTokenFactory::new(self.deployment.persona_factory, &self.provider)
                    .getTokenByPersona(spec.id)
                    .call()
                    .await
            }
        }
        .expect("token lookup");
        (token, receipt)
    }

    /// Calls the factory without any preparation (for revert tests).
    pub async fn try_create_market(
        &self,
        spec: &MarketSpec,
        creator: Address,
    ) -> Result<TransactionReceipt, animoca_chain::ChainError> {
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

    /// Buys with `usdc_in` (minting and approving the USDC first).
    pub async fn buy(
        &self,
        trader: Address,
        market: MarketType,
        id: B256,
        usdc_in: U256,
        min_tokens_out: U256,
    ) -> Result<TransactionReceipt, animoca_chain::ChainError> {
        self.mint_usdc(trader, usdc_in).await;
        self.approve_usdc(trader, self.deployment.amm(market), usdc_in).await;
        send("buy", self.amm(market).buy(id, usdc_in, min_tokens_out).from(trader)).await
    }

    /// Sells `tokens_in` (approving the AMM first).
    pub async fn sell(
        &self,
        trader: Address,
        market: MarketType,
        id: B256,
        token: Address,
        tokens_in: U256,
        min_usdc_out: U256,
    ) -> Result<TransactionReceipt, animoca_chain::ChainError> {
        send("approve tokens", self.token(token).approve(self.deployment.amm(market), tokens_in).from(trader))
            .await
            .expect("approve tokens");
        send("sell", self.amm(market).sell(id, tokens_in, min_usdc_out).from(trader)).await
    }

    /// Transfers market tokens.
    pub async fn transfer_tokens(
        &self,
        token: Address,
        from: Address,
        to: Address,
        amount: U256,
    ) -> TransactionReceipt {
        send("transfer", self.token(token).transfer(to, amount).from(from)).await.expect("token transfer")
    }

    /// Moves the chain's clock forward and mines a block.
    pub async fn advance_time(&self, seconds: u64) {
        self.provider.anvil_increase_time(seconds).await.expect("evm_increaseTime");
        self.mine().await;
    }

    /// Mines one empty block.
    pub async fn mine(&self) {
        self.provider.anvil_mine(Some(1), None).await.expect("anvil_mine");
    }

    /// The latest block number.
    pub async fn block_number(&self) -> u64 {
        self.provider.get_block_number().await.expect("eth_blockNumber")
    }

    /// The timestamp (unix seconds) of block `number`.
    pub async fn block_timestamp(&self, number: u64) -> u64 {
        self.provider
            .get_block_by_number(number.into())
            .await
            .expect("eth_getBlockByNumber")
            .expect("block exists")
            .header
            .timestamp
    }

    /// The timestamp (unix seconds) of the latest block.
    pub async fn latest_timestamp(&self) -> u64 {
        self.block_timestamp(self.block_number().await).await
    }

    /// Makes the next mined block carry exactly `timestamp` (unix seconds).
    pub async fn set_next_block_timestamp(&self, timestamp: u64) {
        self.provider.anvil_set_next_block_timestamp(timestamp).await.expect("anvil_setNextBlockTimestamp");
    }

    /// USDC balance of `owner`, in base units.
    pub async fn usdc_balance(&self, owner: Address) -> U256 {
        self.usdc().balanceOf(owner).call().await.expect("USDC balanceOf")
    }

    /// Market-token balance of `owner`, in base units.
    pub async fn token_balance(&self, token: Address, owner: Address) -> U256 {
        self.token(token).balanceOf(owner).call().await.expect("token balanceOf")
    }
}

/// What to create with [`TestChain::create_market`].
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
    /// a 1,000 USDC stake and 100,000 tokens for the creator.
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
