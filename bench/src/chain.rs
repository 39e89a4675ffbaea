//! The benchmark chain: cached anvil states with many markets and swaps, the
//! anvil process that serves them, and the `SwapBatcher` helper contract.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, TxHash},
    providers::{DynProvider, Provider, ProviderBuilder},
};
use animoca_chain::Deployment;
use anyhow::{Context, ensure};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

/// Batches many swaps (and single trades) into one transaction.
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod batcher {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        SwapBatcher,
        "../contracts/artifacts/SwapBatcher.json"
    );
}

/// anvil's first well-known development key (public, devnet only).
pub const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// The bench chain's id.
pub const CHAIN_ID: u64 = 31_337;
/// Seconds between the timestamps of consecutive built blocks.
pub const BLOCK_SPACING_SECS: u64 = 12;

/// What a cached chain holds, beside anvil's state dump.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChainMeta {
    pub usdc: Address,
    pub stake_vault: Address,
    pub credential_amm: Address,
    pub persona_amm: Address,
    pub credential_factory: Address,
    pub persona_factory: Address,
    pub governance: Address,
    pub start_block: u64,
    /// (market type as u8, market id, token)
    pub markets: Vec<(u8, B256, Address)>,
    pub batchers: Vec<Address>,
    pub swaps: u64,
    pub churn_txs: u64,
    pub head_block: u64,
    pub build_secs: f64,
}

impl ChainMeta {
    /// The contracts.
    pub fn deployment(&self) -> Deployment {
        Deployment {
            chain_id: CHAIN_ID,
            usdc: self.usdc,
            stake_vault: self.stake_vault,
            credential_amm: self.credential_amm,
            persona_amm: self.persona_amm,
            credential_factory: self.credential_factory,
            persona_factory: self.persona_factory,
            governance: self.governance,
            start_block: self.start_block,
        }
    }
}

/// The cache files of a chain: (anvil state, metadata).
pub fn cache_files(cache_dir: &Path, key: &str) -> (PathBuf, PathBuf) {
    (cache_dir.join(format!("{key}.state.json")), cache_dir.join(format!("{key}.meta.json")))
}

/// Waits for a transaction's receipt (polling every millisecond, at most 120 s).
pub async fn wait_receipt(
    provider: &DynProvider,
    hash: TxHash,
) -> anyhow::Result<alloy::rpc::types::TransactionReceipt> {
    let started = Instant::now();
    loop {
        if let Some(receipt) = provider.get_transaction_receipt(hash).await? {
            return Ok(receipt);
        }
        ensure!(started.elapsed() < Duration::from_secs(120), "no receipt for {hash} within 120 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// An anvil started by the bench itself (the devnet's `AnvilOptions` has no gas-limit
/// or dump/load-state options). Killed when dropped.
pub struct AnvilProcess {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Its JSON-RPC URL.
    pub url: String,
}

impl AnvilProcess {
    /// Starts anvil on a free port with `extra` arguments; waits until it answers.
    pub async fn spawn(extra: &[String]) -> anyhow::Result<AnvilProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let binary = animoca_devnet::Anvil::binary()?;
        let mut command = Command::new(&binary);
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--chain-id", &CHAIN_ID.to_string()])
            // Room for big churn blocks; gas is free so fees never drain the dev account.
            .args(["--gas-limit", "3000000000", "--block-base-fee-per-gas", "0", "--quiet"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        let child = command.spawn().with_context(|| format!("start {}", binary.display()))?;
        let pid = child.id().context("anvil has no pid")?;
        let url = format!("http://127.0.0.1:{port}");
        let provider = ProviderBuilder::new().connect_http(url.parse()?).erased();
        let started = Instant::now();
        while provider.get_chain_id().await.is_err() {
            ensure!(started.elapsed() < Duration::from_secs(1_800), "anvil did not answer within 30 min");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(AnvilProcess { child, pid, url })
    }

    /// SIGTERM (anvil writes `--dump-state` on a graceful exit), then wait.
    pub async fn terminate_and_wait(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status().await?;
        ensure!(status.success(), "kill -TERM {} failed", self.pid);
        tokio::time::timeout(Duration::from_secs(1_800), self.child.wait())
            .await
            .context("anvil did not exit within 30 min of SIGTERM")??;
        Ok(())
    }

    /// Kills it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
