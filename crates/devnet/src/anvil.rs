//! Runs anvil, the local EVM node, as a child process on a free port.
//!
//! The binary comes from the pinned npm package `@foundry-rs/anvil` installed by
//! `scripts/install-tools` into `node_modules/`; `ANVIL_BIN` overrides it.

use std::{path::PathBuf, process::Stdio, str::FromStr, time::Duration};

use alloy::{
    network::EthereumWallet,
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// Where the project's install script puts anvil, relative to the workspace root.
const BUNDLED_ANVIL: &str = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";

/// What can go wrong starting anvil.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    /// The binary is not installed where we look.
    #[error("anvil not found (looked at {looked_at}); run `scripts/install-tools` or set ANVIL_BIN")]
    NotInstalled {
        /// The path tried.
        looked_at: String,
    },
    /// The process could not be started.
    #[error("cannot start anvil at {path}: {source}")]
    Spawn {
        /// Binary path.
        path: String,
        /// OS error.
        source: std::io::Error,
    },
    /// anvil exited or never said where it listens.
    #[error("anvil did not start: {0}")]
    Startup(String),
}

/// The private key of anvil's first development account (the deployer in `dev`).
/// Public knowledge: never use it on a real chain.
pub const FIRST_DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// How to start anvil.
#[derive(Debug, Clone)]
pub struct AnvilOptions {
    /// Chain id (default 31337).
    pub chain_id: u64,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Seconds between blocks; `None` mines one block per transaction.
    pub block_time: Option<u64>,
    /// Keep chain state in this file across restarts (`--state`).
    pub state_file: Option<PathBuf>,
    /// Timestamp of the genesis block (Unix seconds).
    pub genesis_timestamp: Option<u64>,
    /// Funded development accounts (`--accounts`; anvil's default is 10).
    pub accounts: Option<u32>,
}

impl Default for AnvilOptions {
    fn default() -> Self {
        Self { chain_id: 31_337, port: 0, block_time: None, state_file: None, genesis_timestamp: None, accounts: None }
    }
}

/// A running anvil; killed when dropped.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    port: u16,
    chain_id: u64,
    keys: Vec<PrivateKeySigner>,
}

impl Anvil {
    /// The anvil binary: `ANVIL_BIN`, else the project's bundled one, else `anvil` on `PATH`.
    pub fn binary() -> Result<PathBuf, AnvilError> {
        if let Some(path) = std::env::var_os("ANVIL_BIN") {
            return Ok(PathBuf::from(path));
        }
        let bundled = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(BUNDLED_ANVIL);
        if bundled.exists() {
            return Ok(bundled);
        }
        let local = PathBuf::from(BUNDLED_ANVIL);
        if local.exists() {
            return Ok(local);
        }
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("anvil")).find(|p| p.exists()))
            .ok_or_else(|| AnvilError::NotInstalled { looked_at: bundled.display().to_string() })
    }

    /// Starts anvil and waits until it listens.
    pub async fn spawn(options: &AnvilOptions) -> Result<Anvil, AnvilError> {
        let path = Self::binary()?;
        let mut command = Command::new(&path);
        command
            .args(["--host", "127.0.0.1", "--port", &options.port.to_string()])
            .args(["--chain-id", &options.chain_id.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group: a terminal's Ctrl-C reaches only us, and we stop
        // anvil after everything that uses it (kill_on_drop covers crashes).
        #[cfg(unix)]
        command.process_group(0);
        if let Some(seconds) = options.block_time {
            command.args(["--block-time", &seconds.to_string()]);
        }
        if let Some(file) = &options.state_file {
            // Also written every few seconds, so a crash loses little.
            command.arg("--state").arg(file).args(["--state-interval", "5"]);
        }
        if let Some(accounts) = options.accounts {
            command.args(["--accounts", &accounts.to_string()]);
        }
        if let Some(timestamp) = options.genesis_timestamp {
            command.args(["--timestamp", &timestamp.to_string()]);
        }
        let mut child =
            command.spawn().map_err(|source| AnvilError::Spawn { path: path.display().to_string(), source })?;
        let stdout = child.stdout.take().ok_or_else(|| AnvilError::Startup("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();

        let mut keys = Vec::new();
        let startup = async {
            while let Some(line) = lines.next_line().await.map_err(|e| AnvilError::Startup(e.to_string()))? {
                if let Some(port) = parse_listening_port(&line) {
                    return Ok(port);
                }
                if let Some(key) = parse_private_key(&line) {
                    keys.push(key);
                }
            }
            Err(AnvilError::Startup("anvil exited before listening".into()))
        };
        let port = tokio::time::timeout(Duration::from_secs(30), startup)
            .await
            .map_err(|_| AnvilError::Startup("no `Listening on` line within 30 s".into()))??;

        // anvil logs every request: keep its pipe drained so it never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(target: "anvil", "{line}");
                }
            });
        }
        Ok(Anvil { child, port, chain_id: options.chain_id, keys })
    }

    /// HTTP JSON-RPC endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The WebSocket JSON-RPC endpoint (same port; subscriptions such as `newHeads`).
    pub fn ws_endpoint(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The port anvil listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The chain id anvil reports.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The funded development accounts anvil printed, in order.
    pub fn keys(&self) -> &[PrivateKeySigner] {
        &self.keys
    }

    /// A provider that signs for every dev account (`from` picks one; account 0
    /// by default).
    ///
    /// Nonces are fetched per transaction rather than cached: alloy's cached nonce
    /// manager hands a nonce out before gas estimation, so a call that reverts in
    /// `eth_estimateGas` would leave a gap and the sender's next transaction would
    /// wait in anvil's pool forever.
    pub fn wallet_provider(&self) -> Result<DynProvider, AnvilError> {
        let (first, rest) = self.keys.split_first().ok_or_else(|| AnvilError::Startup("no dev keys".into()))?;
        let mut wallet = EthereumWallet::new(first.clone());
        for key in rest {
            wallet.register_signer(key.clone());
        }
        let url = self.endpoint().parse().map_err(|e| AnvilError::Startup(format!("endpoint: {e}")))?;
        Ok(ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(wallet)
            .connect_http(url)
            .erased())
    }

    /// Stops the process and waits for it.
    pub async fn stop(mut self) {
        // SIGINT first: anvil then writes its `--state` file before exiting.
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status().await;
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

fn parse_listening_port(line: &str) -> Option<u16> {
    let address = line.trim().strip_prefix("Listening on ")?;
    address.rsplit(':').next()?.trim().parse().ok()
}

fn parse_private_key(line: &str) -> Option<PrivateKeySigner> {
    // "(0) 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    let rest = line.trim().strip_prefix('(')?;
    let (_, key) = rest.split_once(") ")?;
    let key = key.trim();
    if key.len() != 66 {
        return None;
    }
    PrivateKeySigner::from_str(key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_anvil_banner_lines() {
        assert_eq!(parse_listening_port("Listening on 127.0.0.1:40123"), Some(40123));
        assert_eq!(parse_listening_port("Available Accounts"), None);
        let key = parse_private_key("(0) 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80").unwrap();
        assert_eq!(key.address().to_string(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
        assert!(parse_private_key("(0) 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (10000 ETH)").is_none());
    }
}
