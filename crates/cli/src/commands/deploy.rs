//! `animoca-trade deploy`: deploy the reference contracts and print `.env` lines.

use alloy::{
    network::EthereumWallet,
    primitives::Address,
    providers::{Provider, ProviderBuilder},
};
use animoca_chain::{ChainError, DeployParams};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::DeployConfig;

/// Protocol parameters of a deployment (the addresses come from the environment).
#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// Use this existing USDC token instead of deploying MockUSDC.
    #[arg(long, value_parser = crate::config::address)]
    pub usdc: Option<Address>,
    /// Swap fee of both AMMs in basis points (at most 1000).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub fee_bps: u16,
    /// Receives swap fees (default: the deployer).
    #[arg(long, value_parser = crate::config::address)]
    pub fee_recipient: Option<Address>,
    /// Receives slashed stakes (default: the deployer).
    #[arg(long, value_parser = crate::config::address)]
    pub treasury: Option<Address>,
    /// Length of a slashing vote in seconds.
    #[arg(long, default_value_t = 3 * 24 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub voting_period: u64,
    /// Quorum in basis points of the token supply at the proposal's snapshot.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub quorum_bps: u16,
}

/// Deploys, then prints the addresses and start block as `.env` lines on stdout.
pub async fn run(config: DeployConfig, args: DeployArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let deployer = config.private_key.address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::new(config.private_key))
        .connect_http(config.rpc_url.clone())
        .erased();
    let work = async {
        let actual = provider.get_chain_id().await.map_err(|source| ChainError::Rpc { call: "eth_chainId", source })?;
        if let Some(expected) = config.chain_id
            && expected != actual
        {
            return Err(ChainError::WrongChain { expected, actual });
        }
        let params = DeployParams {
            usdc: args.usdc,
            fee_bps: args.fee_bps,
            fee_recipient: args.fee_recipient.unwrap_or(deployer),
            treasury: args.treasury.unwrap_or(deployer),
            voting_period_secs: args.voting_period,
            quorum_bps: args.quorum_bps,
        };
        animoca_chain::deploy(&provider, deployer, &params).await
    };
    let deployment = tokio::select! {
        deployment = work => deployment.with_context(|| format!("deploy to {}", config.rpc_url))?,
        () = shutdown.cancelled() => anyhow::bail!("interrupted; contracts deployed so far are left unwired"),
    };
    print!("# animoca-trade deploy by {deployer}\n{}", deployment.env_lines());
    Ok(())
}
