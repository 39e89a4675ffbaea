//! OHLCV candles of every timeframe, built trade by trade (SPEC §5).
//!
//! The book keeps the newest bucket of each (market, timeframe) with its set of
//! traders, so a bucket that spans several batches counts unique traders
//! exactly without re-reading its swaps.

use foldhash::{HashMap, HashSet};

use alloy::primitives::{Address, U256};
use animoca_domain::{Candle, Price, Timeframe};

use crate::events::MarketKey;

/// A trade as candles see it.
#[derive(Debug, Clone, Copy)]
pub struct Trade {
    /// Block timestamp, Unix seconds.
    pub timestamp: i64,
    /// (block, log index).
    pub position: (u64, u64),
    /// Trade price.
    pub price: Price,
    /// |usdcAmount|.
    pub usdc: U256,
    /// |tokenAmount|.
    pub tokens: U256,
    /// The trader.
    pub trader: Address,
}

/// The newest bucket of one (market, timeframe) and who traded in it.
#[derive(Debug, Clone)]
pub struct OpenBucket {
    /// The candle so far.
    pub candle: Candle,
    /// Its traders.
    pub traders: HashSet<Address>,
}

/// Newest buckets by (market, timeframe); what a batch changed is reported by
/// [`CandleBook::take_dirty`]. A rollback replaces the whole book (`Indexer::reload`).
#[derive(Debug, Default)]
pub struct CandleBook {
    open: HashMap<(MarketKey, Timeframe), OpenBucket>,
    dirty: HashMap<(MarketKey, Timeframe, i64), Candle>,
}

impl CandleBook {
    /// Seeds the newest stored bucket (at start-up or after a rollback).
    pub fn seed(&mut self, market: MarketKey, timeframe: Timeframe, bucket: OpenBucket) {
        self.open.insert((market, timeframe), bucket);
    }

    /// Adds a trade to every timeframe's bucket. Trades must come in (block, log) order.
    pub fn add(&mut self, market: MarketKey, trade: &Trade) {
        for timeframe in Timeframe::ALL {
            let bucket_start = timeframe.bucket_start(trade.timestamp);
            let entry = self.open.entry((market, timeframe));
            let bucket = entry
                .and_modify(|b| {
                    if b.candle.bucket_start != bucket_start {
                        *b = OpenBucket::first(bucket_start, trade);
                    } else if b.candle.last < trade.position {
                        b.extend(trade);
                    }
                })
                .or_insert_with(|| OpenBucket::first(bucket_start, trade));
            self.dirty.insert((market, timeframe, bucket_start), bucket.candle.clone());
        }
    }

    /// The candles changed since the last call, each in its final state, in key order.
    pub fn take_dirty(&mut self) -> Vec<(MarketKey, Timeframe, Candle)> {
        let mut changed: Vec<_> =
            std::mem::take(&mut self.dirty).into_iter().map(|((m, tf, _), candle)| (m, tf, candle)).collect();
        changed.sort_by_key(|(market, timeframe, candle)| (*market, *timeframe, candle.bucket_start));
        changed
    }
}

impl OpenBucket {
    fn first(bucket_start: i64, trade: &Trade) -> Self {
        let candle = Candle {
            bucket_start,
            open: trade.price,
            high: trade.price,
            low: trade.price,
            close: trade.price,
            volume_usdc: trade.usdc,
            volume_token: trade.tokens,
            trade_count: 1,
            unique_traders: 1,
            first: trade.position,
            last: trade.position,
        };
        OpenBucket { candle, traders: [trade.trader].into_iter().collect() }
    }

    fn extend(&mut self, trade: &Trade) {
        let c = &mut self.candle;
        c.high = c.high.max(trade.price);
        c.low = c.low.min(trade.price);
        c.close = trade.price;
        c.volume_usdc = c.volume_usdc.saturating_add(trade.usdc);
        c.volume_token = c.volume_token.saturating_add(trade.tokens);
        c.trade_count += 1;
        c.last = trade.position;
        if self.traders.insert(trade.trader) {
            c.unique_traders += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{B256, U512};
    use animoca_domain::MarketType;

    fn market() -> MarketKey {
        MarketKey { market_type: MarketType::Credential, market_id: B256::repeat_byte(1) }
    }

    fn trade(timestamp: i64, position: (u64, u64), price: u64, trader: u8) -> Trade {
        Trade {
            timestamp,
            position,
            price: Price::from_scaled(U512::from(price)),
            usdc: U256::from(price * 10),
            tokens: U256::from(7u64),
            trader: Address::repeat_byte(trader),
        }
    }

    #[test]
    fn builds_ohlcv_and_rolls_buckets_at_edges() {
        let mut book = CandleBook::default();
        // 1704067199 is the last second of a week; 1704067200 starts the next (a Monday).
        book.add(market(), &trade(1_704_067_170, (1, 0), 5, 1));
        book.add(market(), &trade(1_704_067_199, (1, 3), 9, 2));
        book.add(market(), &trade(1_704_067_199, (2, 0), 3, 1));
        book.add(market(), &trade(1_704_067_200, (3, 0), 4, 3));
        let dirty = book.take_dirty();
        let get = |tf: Timeframe, start: i64| {
            dirty.iter().find(|(_, t, c)| *t == tf && c.bucket_start == start).map(|(_, _, c)| c.clone()).unwrap()
        };
        let minute = get(Timeframe::M1, 1_704_067_140);
        assert_eq!(
            (minute.open, minute.high, minute.low, minute.close),
            (
                Price::from_scaled(U512::from(5u64)),
                Price::from_scaled(U512::from(9u64)),
                Price::from_scaled(U512::from(3u64)),
                Price::from_scaled(U512::from(3u64))
            )
        );
        assert_eq!((minute.trade_count, minute.unique_traders), (3, 2));
        assert_eq!(minute.volume_usdc, U256::from(170u64));
        let next_week = get(Timeframe::W1, 1_704_067_200);
        assert_eq!((next_week.trade_count, next_week.unique_traders), (1, 1));
        let old_week = get(Timeframe::W1, 1_703_462_400);
        assert_eq!(old_week.trade_count, 3);
        assert_eq!(dirty.len(), 14, "two buckets of each of 7 timeframes");
    }

    #[test]
    fn a_replayed_trade_is_not_counted_twice() {
        let mut book = CandleBook::default();
        let t = trade(60, (1, 0), 5, 1);
        book.add(market(), &t);
        book.add(market(), &t);
        let dirty = book.take_dirty();
        assert!(dirty.iter().all(|(_, _, c)| c.trade_count == 1));
    }

    #[test]
    fn seeded_buckets_continue_across_batches() {
        let mut book = CandleBook::default();
        book.add(market(), &trade(120, (1, 0), 5, 1));
        let first = book.take_dirty();
        let mut resumed = CandleBook::default();
        for (m, tf, candle) in first {
            let traders = [Address::repeat_byte(1)].into_iter().collect::<HashSet<_>>();
            resumed.seed(m, tf, OpenBucket { candle, traders });
        }
        resumed.add(market(), &trade(121, (2, 0), 6, 1));
        resumed.add(market(), &trade(122, (3, 0), 4, 2));
        let minute = resumed.take_dirty().into_iter().find(|(_, tf, _)| *tf == Timeframe::M1).unwrap().2;
        assert_eq!((minute.trade_count, minute.unique_traders), (3, 2));
        assert_eq!(minute.open, Price::from_scaled(U512::from(5u64)));
        assert_eq!(minute.close, Price::from_scaled(U512::from(4u64)));
    }
}
