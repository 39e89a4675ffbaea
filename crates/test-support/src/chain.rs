//! A private anvil with the reference contracts deployed, and drivers for the
//! actions tests need (markets, trades, transfers, stakes, votes, time travel).

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ext::AnvilApi},
    rpc::types::TransactionReceipt,
};
use animoca_chain::{
    DeployParams, Deployment,
    bindings::{GovernanceSlashing, MarketAMM, MarketToken, MockUSDC, StakeVault},
};
use animoca_devnet::{Anvil, AnvilOptions, Driver};
use animoca_domain::MarketType;

pub use animoca_devnet::driver::{MarketSpec, tokens, usdc};

/// A running anvil with every contract deployed and wired. Dereferences to its
/// [`Driver`] (`buy`, `sell`, `call_factory`, … return `Result`s for revert tests).
pub struct TestChain {
    /// The node (killed on drop).
    pub anvil: Anvil,
    /// Signs with every anvil account (`from` picks one) and drives the contracts;
    /// its methods (`buy`, `sell`, `call_factory`, …) are reachable on `TestChain`.
    pub driver: Driver,
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
        let provider = anvil.wallet_provider().expect("a provider for anvil's accounts");
        let mut params = DeployParams::devnet(accounts[0]);
        // Fees and slashes go to an account tests do not trade with.
        params.fee_recipient = accounts[9];
        params.treasury = accounts[8];
        adjust(&mut params);
        let deployment = animoca_chain::deploy(&provider, accounts[0], &params).await.expect("contracts deploy");
        let driver = Driver { provider: provider.clone(), deployment };
        TestChain { anvil, driver, provider, deployment, accounts, params }
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
        self.driver.mint_usdc(to, amount).await.expect("mint USDC")
    }

    /// Approves `spender` for `amount` USDC from `owner`.
    pub async fn approve_usdc(&self, owner: Address, spender: Address, amount: U256) -> TransactionReceipt {
        self.driver.approve_usdc(owner, spender, amount).await.expect("approve USDC")
    }

    /// Creates a market as `creator`: mints and approves the USDC it needs, then
    /// calls the factory. Returns the token address and the receipt.
    pub async fn create_market(&self, spec: &MarketSpec, creator: Address) -> (Address, TransactionReceipt) {
        self.driver.create_market(spec, creator).await.expect("market created")
    }

    /// Transfers market tokens.
    pub async fn transfer_tokens(
        &self,
        token: Address,
        from: Address,
        to: Address,
        amount: U256,
    ) -> TransactionReceipt {
        self.driver.transfer_tokens(token, from, to, amount).await.expect("token transfer")
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

impl std::ops::Deref for TestChain {
    type Target = Driver;

    fn deref(&self) -> &Driver {
        &self.driver
    }
}
