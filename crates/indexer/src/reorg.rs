//! Reorgs: notice that the stored checkpoint is no longer canonical, find the
//! common ancestor, remove everything above it, and replay the state of every
//! market it touched from the log store. Indexing then resumes from the
//! ancestor, so the result equals an index of the final chain from scratch.

use alloy::primitives::B256;
use animoca_store::{
    batch::{Batch, ChangeRow},
    indexing,
    rollback::{self, highest_stored_block, stored_block_hash},
};

use crate::{
    decode::Sources,
    derive::{Deriver, Prior},
    sync::{IndexError, Indexer},
};

impl Indexer {
    /// Rolls back a reorg if the checkpoint block is no longer canonical.
    /// Returns the common ancestor when it did.
    pub async fn handle_reorg(&mut self) -> Result<Option<u64>, IndexError> {
        let chain_id = self.config().chain_id;
        let Some(checkpoint) = self.tip() else { return Ok(None) };
        if self.canonical_hash(checkpoint.block_number).await? == Some(checkpoint.block_hash) {
            return Ok(None);
        }
        let floor = self.config().start_block.saturating_sub(1);
        let mut below = checkpoint.block_number;
        let (ancestor, ancestor_hash) = loop {
            let Some(candidate) = highest_stored_block(self.pool(), chain_id, below.saturating_sub(1)).await? else {
                break (floor, self.canonical_hash(floor).await?.unwrap_or_default());
            };
            if candidate < floor || below == 0 {
                break (floor, self.canonical_hash(floor).await?.unwrap_or_default());
            }
            let canonical = self.canonical_hash(candidate).await?;
            if canonical.is_some() && canonical == stored_block_hash(self.pool(), chain_id, candidate).await? {
                break (candidate, canonical.unwrap_or_default());
            }
            below = candidate;
        };
        tracing::warn!(checkpoint = checkpoint.block_number, ancestor, "reorg: rolling back above the common ancestor");
        self.roll_back_to(ancestor, ancestor_hash).await?;
        Ok(Some(ancestor))
    }

    async fn roll_back_to(&mut self, ancestor: u64, ancestor_hash: B256) -> Result<(), IndexError> {
        let chain_id = self.config().chain_id;
        let deployment = *self.sources().deployment();
        let mut tx = self.pool().begin().await?;
        let touched = rollback::markets_touched_after(&mut tx, chain_id, ancestor).await?;
        rollback::rollback_above(&mut tx, chain_id, ancestor, ancestor_hash).await?;

        // The tokens of the markets that survive.
        let mut sources = Sources::new(deployment);
        let mut tokens = std::collections::HashMap::new();
        for (token, market) in indexing::market_tokens(&mut tx).await? {
            sources.register_token(token, market);
            tokens.insert(market, token);
        }
        for market in touched {
            let Some(token) = tokens.get(&market).copied() else { continue };
            let logs = rollback::market_logs(
                &mut tx,
                chain_id,
                market,
                deployment.amm(market.market_type),
                deployment.stake_vault,
                token,
            )
            .await?;
            let mut events = Vec::with_capacity(logs.len());
            for raw in logs {
                if let Some(event) = sources.decode_stored(raw)? {
                    events.push(event);
                }
            }
            let mut replay = Deriver::new(self.fee_bps().clone());
            let mut batch = Batch { chain_id, ..Batch::default() };
            replay.derive(&sources, &events, Prior::default(), &mut batch)?;
            rollback::replace_market_state(&mut tx, market, &batch).await?;
        }
        rollback::rebuild_window(&mut tx, chain_id).await?;
        let change = ChangeRow { kind: "reorg".to_owned(), payload: serde_json::json!({ "from_block": ancestor + 1 }) };
        indexing::write_changes(&mut tx, &[change]).await?;
        tx.commit().await?;
        self.reload().await
    }

    async fn canonical_hash(&self, number: u64) -> Result<Option<B256>, IndexError> {
        Ok(self.header(number).await?.map(|b| b.hash))
    }
}
