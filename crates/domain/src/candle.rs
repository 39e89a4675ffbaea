//! OHLCV timeframes and bucket starts (SPEC §5).

use std::{fmt, str::FromStr};

use alloy_primitives::U256;

use crate::Price;

/// Monday 1970-01-05 00:00 UTC: weekly buckets start on Mondays.
const FIRST_MONDAY: i64 = 4 * 86_400;

/// A candle length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timeframe {
    /// One minute.
    M1,
    /// Five minutes.
    M5,
    /// Fifteen minutes.
    M15,
    /// One hour.
    H1,
    /// Four hours.
    H4,
    /// One day (UTC).
    D1,
    /// One week, starting Monday 00:00 UTC.
    W1,
}

/// A timeframe name that is not one of `1m 5m 15m 1h 4h 1d 1w`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown timeframe {0:?}: expected one of 1m, 5m, 15m, 1h, 4h, 1d, 1w")]
pub struct UnknownTimeframe(pub String);

impl Timeframe {
    /// Every timeframe, shortest first.
    pub const ALL: [Timeframe; 7] =
        [Timeframe::M1, Timeframe::M5, Timeframe::M15, Timeframe::H1, Timeframe::H4, Timeframe::D1, Timeframe::W1];

    /// Length of one bucket in seconds.
    pub const fn seconds(self) -> i64 {
        match self {
            Timeframe::M1 => 60,
            Timeframe::M5 => 300,
            Timeframe::M15 => 900,
            Timeframe::H1 => 3_600,
            Timeframe::H4 => 14_400,
            Timeframe::D1 => 86_400,
            Timeframe::W1 => 604_800,
        }
    }

    /// The API and database name (`1m` … `1w`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Timeframe::M1 => "1m",
            Timeframe::M5 => "5m",
            Timeframe::M15 => "15m",
            Timeframe::H1 => "1h",
            Timeframe::H4 => "4h",
            Timeframe::D1 => "1d",
            Timeframe::W1 => "1w",
        }
    }

    /// Start (Unix seconds, UTC) of the bucket containing `t`.
    pub const fn bucket_start(self, t: i64) -> i64 {
        let len = self.seconds();
        let origin = match self {
            Timeframe::W1 => FIRST_MONDAY,
            _ => 0,
        };
        (t - origin).div_euclid(len) * len + origin
    }
}

impl FromStr for Timeframe {
    type Err = UnknownTimeframe;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timeframe::ALL.into_iter().find(|tf| tf.as_str() == s).ok_or_else(|| UnknownTimeframe(s.to_owned()))
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One OHLCV candle (SPEC §5): open = first trade's price in the bucket, close =
/// last, high/low = max/min, volumes = Σ|amount|, with the positions of its first
/// and last trade so a later batch can extend it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candle {
    /// Bucket start, Unix seconds.
    pub bucket_start: i64,
    /// First trade's price.
    pub open: Price,
    /// Highest trade price.
    pub high: Price,
    /// Lowest trade price.
    pub low: Price,
    /// Last trade's price.
    pub close: Price,
    /// Σ |usdcAmount| (USDC base units).
    pub volume_usdc: U256,
    /// Σ |tokenAmount| (token base units).
    pub volume_token: U256,
    /// Trades in the bucket.
    pub trade_count: u64,
    /// Distinct traders in the bucket.
    pub unique_traders: u64,
    /// (block, log index) of the first trade.
    pub first: (u64, u64),
    /// (block, log index) of the last trade.
    pub last: (u64, u64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::conventions;

    #[test]
    fn bucket_starts_match_the_vectors() {
        for case in conventions()["candle_bucket_start"].as_array().unwrap() {
            let t = case["t"].as_i64().unwrap();
            for tf in Timeframe::ALL {
                assert_eq!(tf.bucket_start(t), case[tf.as_str()].as_i64().unwrap(), "{tf} of {t}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for tf in Timeframe::ALL {
            assert_eq!(tf.as_str().parse::<Timeframe>(), Ok(tf));
        }
        assert!("2m".parse::<Timeframe>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn a_time_lies_in_its_bucket(t in -10_000_000_000i64..10_000_000_000) {
            for tf in Timeframe::ALL {
                let start = tf.bucket_start(t);
                proptest::prop_assert!(start <= t && t < start + tf.seconds());
                proptest::prop_assert_eq!(tf.bucket_start(start), start);
            }
        }
    }
}
