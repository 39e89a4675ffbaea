//! Everything that talks to the chain: contract bindings, deployment and (as the
//! indexer lands) the resilient RPC client and log fetching.

pub mod bindings;
pub mod deploy;
pub mod logs;

pub use deploy::{DeployParams, Deployment, deploy};

/// What can go wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC endpoint failed or answered with an error.
    #[error("RPC call {call} failed: {source}")]
    Rpc {
        /// What we were doing.
        call: &'static str,
        /// The transport or node error.
        source: alloy::transports::TransportError,
    },
    /// A contract call or transaction failed (including reverts, with their reason).
    #[error("{step} failed: {source}")]
    Contract {
        /// What we were doing.
        step: String,
        /// The contract error (decoded revert data when available).
        source: alloy::contract::Error,
    },
    /// A transaction was mined but reverted.
    #[error("{step}: transaction {tx_hash} reverted")]
    Reverted {
        /// What we were doing.
        step: String,
        /// The transaction.
        tx_hash: alloy::primitives::TxHash,
    },
    /// Waiting for a receipt failed.
    #[error("{step}: no receipt: {source}")]
    Receipt {
        /// What we were doing.
        step: String,
        /// Why.
        source: alloy::providers::PendingTransactionError,
    },
    /// The node is on a different chain than configured.
    #[error("RPC_URL serves chain id {actual}, but CHAIN_ID is {expected}")]
    WrongChain {
        /// CHAIN_ID from the configuration.
        expected: u64,
        /// What the node reports.
        actual: u64,
    },
}
