//! Pure domain types and exact math for the Animoca Trade backend.
//!
//! Nothing here does I/O. Every function over money works on exact integers
//! (`U256` base units, `U512` for prices) and follows the conventions of
//! SPEC §5 to the digit; the worked examples in `shared/vectors/conventions.json`
//! are checked by this crate's tests.

pub mod amm;
pub mod amount;
pub mod candle;
pub mod governance;
pub mod market;
pub mod position;
pub mod price;

pub use amount::{TOKEN_DECIMALS, USDC_DECIMALS, format_units};
pub use candle::{Candle, Timeframe};
pub use governance::{ProposalStatus, Tally, VoteBreakdown};
pub use market::{MarketKey, MarketType, UnknownMarketType};
pub use position::Position;
pub use price::Price;

#[cfg(test)]
mod vectors;
