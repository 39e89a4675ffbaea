//! Chain proofs for writes (SPEC §6, last paragraph): a write names a
//! transaction, and the API believes only what the chain says about it. The
//! transaction must exist, have succeeded, have been sent by the signed-in
//! address to the contract the write is about, and have emitted the event the
//! write claims; everything else (ids, amounts, token addresses, blocks, times)
//! is read from the receipt and the indexed tables, never from the body.
//!
//! The indexer stays the only writer of the derived tables (so reorgs and
//! re-derivations stay exact, and posting a transaction the indexer already saw
//! is a no-op). A write wakes the indexer (`NOTIFY` on
//! [`animoca_store::indexing::WAKE_CHANNEL`]: it fetches the new blocks at once
//! instead of at its next poll), waits briefly for it to commit the
//! transaction's block and answers with the indexed rows; when the indexer is
//! further behind (a backfill), it answers `202 Accepted` with what the receipt
//! proves.

use std::time::{Duration, Instant};

use alloy::{
    primitives::{Address, B256, Log},
    providers::{DynProvider, Provider},
    rpc::types::TransactionReceipt,
    sol_types::SolEvent,
};
use animoca_chain::Deployment;

use crate::{AppState, error::ApiError, params};

/// What writes need to check transactions.
#[derive(Clone)]
pub struct ChainAccess {
    /// The node the indexer follows (or one on the same chain).
    pub provider: DynProvider,
    /// How long a write waits for the indexer to reach its transaction's block.
    pub index_wait: Duration,
}

/// A transaction that checked out: successful, sent by the caller to `contract`.
#[derive(Debug)]
pub struct ProvenTx {
    /// The transaction hash.
    pub hash: B256,
    /// The block it was mined in.
    pub block_number: u64,
    /// The logs `contract` emitted in it.
    logs: Vec<Log>,
}

impl ProvenTx {
    /// The `E` events of the checked contract in this transaction.
    pub fn events<E: SolEvent>(&self) -> Vec<E> {
        self.logs.iter().filter_map(|log| E::decode_log(log).ok().map(|decoded| decoded.data)).collect()
    }
}

/// The contracts this API's chain runs (`chain.deployments`, recorded by the indexer).
pub async fn deployment(state: &AppState) -> Result<Deployment, ApiError> {
    let chain_id = state.auth.chain_id;
    let mut conn = state.pool.acquire().await?;
    let (contracts, start_block) =
        animoca_store::derivation::stored_deployment(&mut conn, chain_id).await?.ok_or_else(|| {
            ApiError::Unavailable(format!("no contracts recorded for chain {chain_id}; start the indexer"))
        })?;
    let deployment: Deployment = serde_json::from_value(contracts)
        .map_err(|e| ApiError::Internal(format!("chain.deployments of chain {chain_id}: {e}")))?;
    Ok(Deployment { chain_id, start_block, ..deployment })
}

/// Checks that `tx_hash` (the body's `txHash`) succeeded, was sent by `caller`
/// and was sent to `contract` (named `what` in errors).
pub async fn prove(
    state: &AppState,
    tx_hash: &str,
    caller: Address,
    contract: Address,
    what: &str,
) -> Result<ProvenTx, ApiError> {
    let hash = params::bytes32("txHash", tx_hash)?;
    let chain =
        state.chain.as_ref().ok_or_else(|| ApiError::Unavailable("no chain RPC configured (RPC_URL)".to_owned()))?;
    let receipt: TransactionReceipt = chain
        .provider
        .get_transaction_receipt(hash)
        .await
        .map_err(|e| ApiError::Unavailable(format!("chain RPC: {e}")))?
        .ok_or_else(|| ApiError::Unprovable(format!("transaction {hash:#x} is not on chain (not mined yet?)")))?;
    if receipt.from != caller {
        return Err(ApiError::Forbidden(format!(
            "transaction {hash:#x} was sent by {:#x}, not by the signed-in {caller:#x}",
            receipt.from
        )));
    }
    if receipt.to != Some(contract) {
        let to = receipt.to.map_or_else(|| "a contract creation".to_owned(), |to| format!("{to:#x}"));
        return Err(ApiError::Unprovable(format!(
            "transaction {hash:#x} was sent to {to}, not to the {what} contract {contract:#x}"
        )));
    }
    if !receipt.status() {
        return Err(ApiError::Unprovable(format!("transaction {hash:#x} reverted")));
    }
    let block_number =
        receipt.block_number.ok_or_else(|| ApiError::Unprovable(format!("transaction {hash:#x} is still pending")))?;
    let logs =
        receipt.inner.logs().iter().filter(|log| log.address() == contract).map(|log| log.inner.clone()).collect();
    Ok(ProvenTx { hash, block_number, logs })
}

/// Waits (up to the configured `index_wait`) until the indexer has committed
/// `block`; `false` when it has not by then.
pub async fn indexed(state: &AppState, block: u64) -> Result<bool, ApiError> {
    let wait = state.chain.as_ref().map_or(Duration::ZERO, |chain| chain.index_wait);
    let deadline = Instant::now() + wait;
    let checkpoint = animoca_store::indexing::checkpoint(&state.pool, state.auth.chain_id).await?;
    if checkpoint.is_some_and(|c| c.block_number >= block) {
        return Ok(true);
    }
    // Ingest now: wake the indexer rather than wait for its next poll.
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(animoca_store::indexing::WAKE_CHANNEL)
        .bind(block.to_string())
        .execute(&state.pool)
        .await?;
    loop {
        let checkpoint = animoca_store::indexing::checkpoint(&state.pool, state.auth.chain_id).await?;
        if checkpoint.is_some_and(|c| c.block_number >= block) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
