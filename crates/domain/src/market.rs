//! The two markets of the platform and their on-chain discriminant.

use std::{fmt, str::FromStr};

use alloy_primitives::B256;

/// Which market a token belongs to; `marketType` on chain (0 = credential, 1 = persona).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarketType {
    /// A tokenized credential, created by its issuer.
    Credential,
    /// A tokenized persona, created by its owner.
    Persona,
}

/// A `marketType` value or name that is neither credential nor persona.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown market type {0:?}: expected `credential` (0) or `persona` (1)")]
pub struct UnknownMarketType(pub String);

impl MarketType {
    /// Both market types, in on-chain order.
    pub const ALL: [MarketType; 2] = [MarketType::Credential, MarketType::Persona];

    /// The on-chain `uint8` discriminant.
    pub const fn as_u8(self) -> u8 {
        match self {
            MarketType::Credential => 0,
            MarketType::Persona => 1,
        }
    }

    /// The API and database name.
    pub const fn as_str(self) -> &'static str {
        match self {
            MarketType::Credential => "credential",
            MarketType::Persona => "persona",
        }
    }
}

/// A market's identity: its type and bytes32 id (ids are unique per type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarketKey {
    /// Credential or persona.
    pub market_type: MarketType,
    /// The credential or persona id.
    pub market_id: B256,
}

impl MarketKey {
    /// A market of `market_type` with id `market_id`.
    pub const fn new(market_type: MarketType, market_id: B256) -> Self {
        Self { market_type, market_id }
    }
}

impl TryFrom<u8> for MarketType {
    type Error = UnknownMarketType;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(MarketType::Credential),
            1 => Ok(MarketType::Persona),
            other => Err(UnknownMarketType(other.to_string())),
        }
    }
}

impl FromStr for MarketType {
    type Err = UnknownMarketType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "credential" | "0" => Ok(MarketType::Credential),
            "persona" | "1" => Ok(MarketType::Persona),
            other => Err(UnknownMarketType(other.to_owned())),
        }
    }
}

impl fmt::Display for MarketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_u8_and_str() {
        for market in MarketType::ALL {
            assert_eq!(MarketType::try_from(market.as_u8()), Ok(market));
            assert_eq!(market.as_str().parse::<MarketType>(), Ok(market));
        }
        assert!(MarketType::try_from(2).is_err());
        assert!("stock".parse::<MarketType>().is_err());
    }
}
