//! The change feed: what a committed batch changed, as JSON the realtime layer
//! and caches consume (SPEC §7 events). Written in the batch's transaction into
//! `app.change_feed`; a `NOTIFY` wakes the relays after commit.
//!
//! Amounts are exact decimal strings in token units (USDC 6 decimals, tokens and
//! prices 18), ids and addresses lowercase `0x` hex (as the REST API serves them),
//! times Unix seconds.

use std::collections::BTreeMap;

use animoca_domain::{MarketKey, TOKEN_DECIMALS, Timeframe, USDC_DECIMALS, format_units};
use animoca_store::batch::{Batch, ChangeRow, Outcome};
use serde_json::json;

/// Batches with more swaps than this publish one `backfill` change instead of
/// their trades, prices, candles and proposals: clients refetch rather than
/// replay history (and a backfill does not write thousands of feed rows).
pub const MAX_TRADE_EVENTS: usize = 500;

fn market_json(market: MarketKey) -> serde_json::Value {
    json!({ "market_type": market.market_type.as_str(), "market_id": market.market_id.to_string() })
}

/// The changes of a batch, in the order clients should apply them, ending with
/// one `block` change: the newest indexed block moved, so every figure relative
/// to it (24h window, proposal status at T) may have changed; caches key on it.
pub fn changes_of(batch: &Batch) -> Vec<ChangeRow> {
    let mut changes = events_of(batch);
    changes.push(ChangeRow {
        kind: "block".to_owned(),
        payload: json!({ "block_number": batch.to_block.number, "block_hash": batch.to_block.hash.to_string(),
                         "block_timestamp": batch.to_block.timestamp }),
    });
    changes
}

fn events_of(batch: &Batch) -> Vec<ChangeRow> {
    let mut changes = Vec::new();
    let mut row = |kind: &str, payload: serde_json::Value| changes.push(ChangeRow { kind: kind.to_owned(), payload });

    if batch.swaps.len() > MAX_TRADE_EVENTS {
        let markets: Vec<_> = batch.reserves.iter().map(|r| market_json(r.market)).collect();
        row(
            "backfill",
            json!({ "from_block": batch.from_block, "to_block": batch.to_block.number,
                    "swaps": batch.swaps.len(), "markets": markets }),
        );
        return changes;
    } else {
        for swap in &batch.swaps {
            row(
                "trade",
                json!({
                    "market": market_json(swap.market),
                    "tx_hash": swap.position.tx_hash.to_string(),
                    "log_index": swap.position.log_index,
                    "block_number": swap.position.block_number,
                    "block_timestamp": swap.position.block_timestamp,
                    "trader_address": format!("{:#x}", swap.trader),
                    "swap_type": if swap.is_buy { "buy" } else { "sell" },
                    "token_amount": format_units(swap.token_amount, TOKEN_DECIMALS),
                    "usdc_amount": format_units(swap.usdc_amount, USDC_DECIMALS),
                    "fee_amount": format_units(swap.fee, USDC_DECIMALS),
                    "price": swap.price.to_decimal_string(),
                }),
            );
        }
    }
    for reserves in &batch.reserves {
        row(
            "price",
            json!({
                "market": market_json(reserves.market),
                "price": reserves.price.to_decimal_string(),
                "token_reserves": format_units(reserves.token_reserves, TOKEN_DECIMALS),
                "usdc_reserves": format_units(reserves.usdc_reserves, USDC_DECIMALS),
                "block_number": reserves.block_number,
                "block_timestamp": reserves.timestamp,
            }),
        );
    }
    // The newest candle of each (market, timeframe) the batch touched.
    let mut newest: BTreeMap<(MarketKey, Timeframe), &animoca_store::batch::CandleRow> = BTreeMap::new();
    for candle in &batch.candles {
        let slot = newest.entry((candle.market, candle.timeframe)).or_insert(candle);
        if candle.candle.bucket_start > slot.candle.bucket_start {
            *slot = candle;
        }
    }
    for ((market, timeframe), candle_row) in newest {
        let c = &candle_row.candle;
        row(
            "candle",
            json!({
                "market": market_json(market),
                "timeframe": timeframe.as_str(),
                "time": c.bucket_start,
                "open": c.open.to_decimal_string(),
                "high": c.high.to_decimal_string(),
                "low": c.low.to_decimal_string(),
                "close": c.close.to_decimal_string(),
                "volume_usdc": format_units(c.volume_usdc, USDC_DECIMALS),
                "volume_token": format_units(c.volume_token, TOKEN_DECIMALS),
                "trade_count": c.trade_count,
                "unique_traders": c.unique_traders,
            }),
        );
    }
    for proposal in &batch.proposals {
        row(
            "proposal",
            json!({ "proposal_id": proposal.proposal_id.to_string(), "event": "created",
                    "market": market_json(proposal.market), "block_number": proposal.position.block_number }),
        );
    }
    for vote in &batch.votes {
        let vote_type = match vote.support {
            0 => "against",
            1 => "for",
            _ => "abstain",
        };
        row(
            "vote",
            json!({ "proposal_id": vote.proposal_id.to_string(), "voter_address": format!("{:#x}", vote.voter),
                    "vote_type": vote_type, "voting_power": format_units(vote.weight, TOKEN_DECIMALS),
                    "tx_hash": vote.position.tx_hash.to_string(), "block_number": vote.position.block_number }),
        );
    }
    for (proposal_id, outcome, position) in &batch.outcomes {
        let event = match outcome {
            Outcome::Executed(_) => "executed",
            Outcome::Canceled => "canceled",
        };
        row(
            "proposal",
            json!({ "proposal_id": proposal_id.to_string(), "event": event, "block_number": position.block_number }),
        );
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, B256, U256};
    use animoca_domain::{MarketType, Price};
    use animoca_store::batch::{EventPosition, SwapRow};

    #[test]
    fn a_large_batch_publishes_one_backfill_change_instead_of_every_trade() {
        let swap = SwapRow {
            position: EventPosition {
                block_number: 1,
                block_hash: B256::ZERO,
                block_timestamp: 0,
                tx_hash: B256::ZERO,
                log_index: 0,
            },
            market: MarketKey::new(MarketType::Credential, B256::ZERO),
            amm: Address::ZERO,
            trader: Address::ZERO,
            is_buy: true,
            token_amount: U256::from(1u64),
            usdc_amount: U256::from(1u64),
            fee: U256::ZERO,
            price: Price::ZERO,
        };
        let mut batch = Batch { swaps: vec![swap; MAX_TRADE_EVENTS], ..Batch::default() };
        assert_eq!(changes_of(&batch).iter().filter(|c| c.kind == "trade").count(), MAX_TRADE_EVENTS);
        batch.swaps.push(batch.swaps[0].clone());
        let changes = changes_of(&batch);
        assert_eq!(changes.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(), ["backfill", "block"]);
        assert_eq!(changes[0].payload["swaps"], MAX_TRADE_EVENTS + 1);
    }
}
