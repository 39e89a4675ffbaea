//! RPC reads of the indexer: the logs and boundary headers of a block range,
//! cheap to clone into tasks so that ranges are fetched ahead of the writes.

use std::{collections::HashMap, future::IntoFuture};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::{Filter, Log},
    sol_types::SolEvent as _,
};
use animoca_chain::logs::{self as rpc, RetryPolicy};
use animoca_store::batch::BlockRow;

use crate::{decode::EVENT_TOPICS, sync::IndexError};

/// Reads blocks and logs with retries (see [`RetryPolicy`]).
#[derive(Clone)]
pub struct Fetcher {
    provider: DynProvider,
    retry: RetryPolicy,
}

/// The logs of blocks `from..=to` and the headers that bound them.
#[derive(Debug)]
pub struct FetchedRange {
    /// First block.
    pub from: u64,
    /// Last block.
    pub to: u64,
    /// Every log of the filtered contracts, in no particular order.
    pub logs: Vec<Log>,
    /// Header of `from` (its parent hash links the range to what is stored).
    pub first: BlockRow,
    /// Header of `to` (the new checkpoint).
    pub last: BlockRow,
    /// How many market tokens (in discovery order) the filter included.
    pub tokens_known: usize,
}

impl Fetcher {
    /// Reads through `provider` with `retry`.
    pub fn new(provider: DynProvider, retry: RetryPolicy) -> Self {
        Self { provider, retry }
    }

    /// The provider.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The node's newest block number.
    pub async fn head(&self) -> Result<u64, IndexError> {
        Ok(rpc::read(&self.retry, "eth_blockNumber", || self.provider.get_block_number()).await?)
    }

    /// One `eth_getLogs` over `addresses` (the core contracts and the first
    /// `tokens_known` market tokens) for every indexed event, plus the two
    /// boundary headers, all at once.
    pub async fn range(
        &self,
        addresses: Vec<Address>,
        tokens_known: usize,
        from: u64,
        to: u64,
    ) -> Result<FetchedRange, IndexError> {
        let filter = Filter::new().address(addresses).event_signature(EVENT_TOPICS.to_vec());
        let (logs, first, last) = if from == to {
            let (logs, header) = tokio::try_join!(self.logs(filter, from, to), self.block(to))?;
            (logs, header, header)
        } else {
            tokio::try_join!(self.logs(filter, from, to), self.block(from), self.block(to))?
        };
        // Logs of the boundary blocks must come from the same chain as the headers.
        for log in &logs {
            let number = log.block_number.unwrap_or_default();
            for header in [first, last] {
                if number == header.number && log.block_hash != Some(header.hash) {
                    return Err(IndexError::Malformed(format!("block {number} changed while reading it")));
                }
            }
        }
        Ok(FetchedRange { from, to, logs, first, last, tokens_known })
    }

    /// The `Transfer` logs of `tokens` in blocks `from..=to`.
    pub async fn transfers(&self, tokens: Vec<Address>, from: u64, to: u64) -> Result<Vec<Log>, IndexError> {
        let filter = Filter::new()
            .address(tokens)
            .event_signature(animoca_chain::bindings::MarketToken::Transfer::SIGNATURE_HASH);
        self.logs(filter, from, to).await
    }

    /// The logs matching `filter` in `from..=to`, each with its block's time.
    pub async fn logs(&self, filter: Filter, from: u64, to: u64) -> Result<Vec<Log>, IndexError> {
        let mut logs = rpc::get_logs(&self.provider, &filter, from, to, &self.retry).await?;
        // Nodes that do not put the block time in logs: read it from the headers.
        let mut times: HashMap<u64, (B256, u64)> = HashMap::new();
        for log in &mut logs {
            if log.block_timestamp.is_some() {
                continue;
            }
            let number = log.block_number.unwrap_or_default();
            if let std::collections::hash_map::Entry::Vacant(slot) = times.entry(number) {
                let header = self.block(number).await?;
                slot.insert((header.hash, header.timestamp));
            }
            let (hash, timestamp) = times[&number];
            if log.block_hash != Some(hash) {
                return Err(IndexError::Malformed(format!("block {number} changed while reading it")));
            }
            log.block_timestamp = Some(timestamp);
        }
        Ok(logs)
    }

    /// The canonical header of block `number`, or `None` past the head.
    pub async fn header(&self, number: u64) -> Result<Option<BlockRow>, IndexError> {
        let block = rpc::read(&self.retry, "eth_getBlockByNumber", || {
            self.provider.get_block_by_number(BlockNumberOrTag::Number(number)).into_future()
        })
        .await?;
        Ok(block.map(|block| BlockRow {
            number,
            hash: block.header.hash,
            parent_hash: block.header.parent_hash,
            timestamp: block.header.timestamp,
        }))
    }

    /// The header of block `number`, which must exist.
    pub async fn block(&self, number: u64) -> Result<BlockRow, IndexError> {
        self.header(number).await?.ok_or_else(|| IndexError::Malformed(format!("block {number} not found")))
    }
}
